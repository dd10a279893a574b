"""The learner registry, and rebuilding a trained model from its run directory.

``load_model(run_dir)`` reads ``config.json`` (the learner's name, its constructor arguments and
dtype), builds the model and loads the run's current checkpoint — sha256-verified and read with
``torch.load(weights_only=True)`` only (:func:`symflow.training.load_checkpoint`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from symflow.integrators.errors import InvalidArgumentError
from symflow.integrators.registry import Registry
from symflow.training import CheckpointError, load_checkpoint
from symflow.training.checkpoint import load_module_state

from .pinn import IVPPINN, FlowMapPINN
from .sympflow import SympFlow


@dataclass(frozen=True)
class LearnerSpec:
    name: str
    cls: type[nn.Module]
    summary: str
    flow_map: bool


LEARNERS: Registry[LearnerSpec] = Registry("learner")
LEARNERS.register(
    "sympflow",
    LearnerSpec("sympflow", SympFlow, "exactly symplectic neural flow map (Canizares et al. 2024)", True),
)
LEARNERS.register(
    "pinn",
    LearnerSpec("pinn", FlowMapPINN, "flow-map PINN N(t, x0), unconstrained baseline", True),
    aliases=("flow_pinn", "pinn_flow"),
)
LEARNERS.register(
    "pinn_ivp",
    LearnerSpec("pinn_ivp", IVPPINN, "PINN for one initial value problem N(t)", False),
    aliases=("ivp_pinn",),
)

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def dtype_name(dtype: torch.dtype) -> str:
    for name, value in DTYPES.items():
        if value == dtype:
            return name
    raise InvalidArgumentError("dtype", dtype, "torch.float32 or torch.float64")


def parse_dtype(value: str | torch.dtype) -> torch.dtype:
    if isinstance(value, torch.dtype):
        dtype_name(value)
        return value
    if value not in DTYPES:
        raise InvalidArgumentError("dtype", value, "'float32' or 'float64'")
    return DTYPES[value]


def build_model(learner: str, args: dict[str, Any], *, dtype: str | torch.dtype = "float64") -> nn.Module:
    """A fresh (randomly initialised) model of the registered ``learner`` from constructor ``args``."""
    spec = LEARNERS.get(learner)
    if not isinstance(args, dict):
        raise InvalidArgumentError("args", args, "a dict of constructor arguments")
    args = dict(args)
    if spec.cls is IVPPINN:
        x0 = args.pop("x0")
        return IVPPINN(torch.as_tensor(x0, dtype=parse_dtype(dtype)), **args)
    try:
        return spec.cls(**args, dtype=parse_dtype(dtype))
    except TypeError as err:
        raise InvalidArgumentError(
            "args", args, f"constructor arguments of {spec.cls.__name__} ({err})"
        ) from err


def read_config(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise CheckpointError(f"{run_dir}: no config.json here; is this a symflow training run directory?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from err


def load_model(run_dir: str | Path, *, map_location: str | torch.device = "cpu") -> nn.Module:
    """The trained model of a run directory (``config.json`` + verified ``weights_only`` checkpoint).

    The model is returned in eval mode on ``map_location``; its ``derivatives`` setting is the one
    it was trained with. A run trained with ``keep_best`` gives its best weights (lowest validation
    loss), as training returned them.
    """
    config = read_config(run_dir)
    for key in ("learner", "model", "dtype"):
        if key not in config:
            raise CheckpointError(f"{run_dir}/config.json: missing {key!r}; not a learner run")
    model = build_model(config["learner"], config["model"], dtype=config["dtype"])
    ckpt = load_checkpoint(Path(run_dir) / "checkpoints", map_location=map_location)
    best = ckpt.state.get("extra", {}).get("best", {}).get("model")
    if config.get("options", {}).get("keep_best") and best:
        ckpt.state["model"] = best  # the run kept its best validation weights: those are the model
    load_module_state(model, ckpt)  # one-line CheckpointError if the weights do not fit
    return model.to(map_location).eval()
