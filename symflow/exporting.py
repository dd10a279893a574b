"""Trained models as ``torch.export`` programs for simulation pipelines (``symflow export``).

A pipeline that steps a surrogate inside its own loop should not need symflow (nor its version) to
load it. :func:`export` turns the model of a training run directory into ``torch.export`` programs
(``.pt2`` files) that plain ``torch.export.load(path).module()`` runs, each with a **dynamic batch
size** ``B``, plus a small JSON of metadata:

==================  ==============  ============================================================
learner             program         signature (``D`` state dimension, ``B`` any batch size ≥ 1)
==================  ==============  ============================================================
``node``            ``field``       ``f(t (B,), y (B, D)) -> dy/dt (B, D)`` (primary)
``node`` (HNN)      ``hamiltonian`` ``H(y (B, D)) -> (B,)``
``node`` (HNN)      ``grad_h``      ``∇H(y (B, D)) -> (B, D)`` (so ``f = J∇H``)
``sympflow/pinn``   ``step``        ``x (B, D) -> N(Δt, x) (B, D)``, the one-step map (primary)
``sympflow/pinn``   ``flow``        ``N(t (B,), x (B, D)) -> (B, D)`` for ``0 ≤ t ≤ Δt``
``cnf``             ``log_prob``    ``x (B, D) -> log p(x) (B,)`` (primary)
``cnf``             ``field``       ``v(t (B,), y (B, D)) -> (B, D)``, the flow's velocity
==================  ==============  ============================================================

The primary program goes to the output path (``model.pt2``), the others next to it
(``model.grad_h.pt2``, ...), and the metadata to ``model.json``: state layout ``[q₁…qₙ, p₁…pₙ]``,
``Δt``, dtype, the system and its parameters, a hash of the training data, and every program's
file and signature. The metadata is also stored *inside* each archive (``extra_files``
entry :data:`METADATA_ENTRY`), so a ``.pt2`` copied alone still says what it is.

Times are one per sample (``t`` of shape ``(B,)``), the most general form of the vector-field
convention; a caller with one shared time passes ``t.expand(B)``.

**What is traced.** ``torch.export`` records the operations of one call, so the exported program
uses derivative code without ``torch.func`` transforms (which do not trace into a program):

* an HNN's ``∇H_θ`` by the explicit backward sweep through its MLP
  (:func:`~symflow.discovery.models.mlp_input_gradient`, equal to ``torch.func.grad`` to round-off);
* SympFlow's potential gradients in closed form (its ``derivatives="closed_form"``, same map);
* the CNF's log-density by the field's exact Jacobian trace (closed form through the MLP), integrated
  by the run's fixed-step Runge–Kutta method unrolled into the program. A CNF trained with an
  adaptive method has no fixed step sequence to record: it is exported with ``cnf_steps`` steps of
  ``rk4`` (default 20; every step is unrolled into the program, so exporting takes seconds per
  step), and the metadata says so — that program is then a fixed-step approximation of the
  adaptive density, not the same number.

Every export is checked before it is written: each program is run on a batch of random states (of a
batch size other than the one traced) and compared with the model (``atol`` 1e-10 in float64,
1e-4 in float32), so a wrong program is never written.

Reference: PyTorch documentation, "torch.export" (dynamic shapes with ``torch.export.Dim``).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from symflow.integrators import InvalidArgumentError, get_method
from symflow.integrators.errors import CapabilityError, SymflowError
from symflow.training.runs import RunDirectoryError

Tensor = torch.Tensor

#: Name of the metadata entry inside every exported archive (``torch.export.save(extra_files=...)``).
METADATA_ENTRY = "symflow_metadata.json"
FORMAT = "symflow.export"
FORMAT_VERSION = 1
#: Steps of ``rk4`` for the density of a CNF trained with an adaptive method.
DEFAULT_CNF_STEPS = 20


class ExportExistsError(SymflowError, FileExistsError):
    """An output file of the export exists and ``overwrite=True`` was not given."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote: program name → file, the metadata and where it is."""

    programs: dict[str, Path]
    metadata: dict[str, Any]
    metadata_path: Path
    max_abs_error: dict[str, float] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """The primary program's file (the ``-o`` path)."""
        return self.programs[self.metadata["primary"]]

    def __str__(self) -> str:
        lines = [f"exported {self.metadata['learner']} run → {self.path}"]
        for name, path in self.programs.items():
            sig = self.metadata["programs"][name]["signature"]
            err = self.max_abs_error.get(name)
            check = f"  (checked: max |Δ| = {err:.1e})" if err is not None else ""
            lines.append(f"  {name:<12} {path.name:<28} {sig}{check}")
        lines.append(f"  metadata     {self.metadata_path.name}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# The traced wrappers: plain tensor code, no torch.func, no value-dependent Python control flow.
# --------------------------------------------------------------------------------------------------

_ACTIVATION_SLOPES: dict[type, Callable[[Tensor], Tensor]] = {
    nn.Softplus: torch.sigmoid,
    nn.Tanh: lambda z: 1 - torch.tanh(z) ** 2,
    nn.SiLU: lambda z: torch.sigmoid(z) * (1 + z * (1 - torch.sigmoid(z))),
    # GELU(z) = z Φ(z): slope Φ(z) + z φ(z).
    nn.GELU: lambda z: (
        0.5 * (1 + torch.erf(z / math.sqrt(2))) + z * torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    ),
    nn.ELU: lambda z: torch.where(z > 0, torch.ones_like(z), torch.exp(torch.clamp(z, max=0.0))),
}


def _slope(act: nn.Module) -> Callable[[Tensor], Tensor]:
    fn = _ACTIVATION_SLOPES.get(type(act))
    if fn is None:
        raise CapabilityError(f"cannot export the derivative of the activation {type(act).__name__}")
    if isinstance(act, nn.Softplus) and (act.beta != 1 or act.threshold != 20):
        raise CapabilityError("cannot export a Softplus with beta ≠ 1 or threshold ≠ 20")
    if isinstance(act, nn.GELU) and act.approximate != "none":
        raise CapabilityError("cannot export the tanh-approximated GELU's derivative")
    if isinstance(act, nn.ELU) and act.alpha != 1.0:
        raise CapabilityError("cannot export an ELU with alpha ≠ 1")
    return fn


def _scalar_mlp_gradient(net: nn.Sequential, y: Tensor) -> Tensor:
    """``∇_y net(y)`` of a scalar ``Linear, act, …, Linear`` MLP by the explicit backward sweep."""
    layers = list(net)
    linears, acts = layers[0::2], layers[1::2]
    slopes = []
    a = y
    for lin, act in zip(linears[:-1], acts):
        z = nn.functional.linear(a, lin.weight, lin.bias)
        slopes.append(_slope(act)(z))
        a = act(z)
    g = linears[-1].weight[0].expand(a.shape)
    for lin, s in zip(reversed(linears[:-1]), reversed(slopes)):
        g = (g * s) @ lin.weight
    return g


class _HamiltonianGradient(nn.Module):
    """``∇H_θ(y)`` of an HNN or a separable HNN, without ``torch.func``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        for net in self._nets():
            for act in list(net)[1::2]:
                _slope(act)  # refuse unsupported activations before tracing

    def _nets(self):
        m = self.model
        if hasattr(m, "kinetic_net"):
            return [m.kinetic_net, m.potential_net]
        return [m.net]

    def forward(self, y: Tensor) -> Tensor:
        m = self.model
        if hasattr(m, "kinetic_net"):
            n = m.n
            dq = _scalar_mlp_gradient(m.potential_net, y[..., :n])
            dp = _scalar_mlp_gradient(m.kinetic_net, y[..., n:])
            return torch.cat([dq, dp], dim=-1)
        s = m.input_scale
        return _scalar_mlp_gradient(m.net, y * s) * s


class _HamiltonianField(nn.Module):
    """``f(t, y) = J∇H_θ(y)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.grad_h = _HamiltonianGradient(model)
        self.n = model.dim // 2

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        g = self.grad_h(y)
        return torch.cat([g[..., self.n :], -g[..., : self.n]], dim=-1)


class _Hamiltonian(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, y: Tensor) -> Tensor:
        return self.model.hamiltonian(y)


class _Field(nn.Module):
    """A vector-field module ``f(t, y)`` with one time per sample."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        return self.model(t, y)


def _flow_map_how(model: nn.Module) -> str:
    # SympFlow's closed-form potential gradients are plain tensor code; the other modes use
    # torch.func / autograd, which do not trace into a program. The PINN ignores the mode.
    return "closed_form" if model.learner == "sympflow" else model.derivatives


class _Step(nn.Module):
    """``x ↦ N(Δt, x)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.how = _flow_map_how(model)

    def forward(self, x: Tensor) -> Tensor:
        t = x.new_full(x.shape[:-1], self.model.dt)
        return self.model._forward_with(t, x, self.how)


class _Flow(nn.Module):
    """``(t, x) ↦ N(t, x)``, one time per sample."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.how = _flow_map_how(model)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.model._forward_with(t, x, self.how)


def _time_mlp_with_trace(field: nn.Module, t: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """``v(t, y)`` and ``tr ∂v/∂y`` of a :class:`~symflow.cnf.fields.TimeMLP`, in closed form.

    Forward-mode chain rule through the layers: ``J = W_L' diag σ'(z_{L−1}) W_{L−1}' ⋯ diag σ'(z_1)
    W_1'`` with ``W_k'`` the weights without their time column; ``(B, width, D)`` tangents.
    """
    slope = _slope(field.act)
    tt = t.unsqueeze(-1)
    h = y
    jac = None  # (B, width, D)
    last = len(field.layers) - 1
    for i, layer in enumerate(field.layers):
        w = layer.weight[:, :-1]
        z = layer(torch.cat([h, tt], dim=-1))
        jac = w.expand(y.shape[0], *w.shape) if jac is None else w @ jac
        if i < last:
            jac = slope(z).unsqueeze(-1) * jac
            h = field.act(z)
        else:
            h = z
    return h, torch.diagonal(jac, dim1=-2, dim2=-1).sum(-1)


class _CNFLogProb(nn.Module):
    """``log p(x)``: integrate ``[y, ℓ]`` from ``t1`` back to 0 with ``dℓ/dt = −tr ∂v/∂y`` by an
    explicit Runge–Kutta method of ``steps`` equal steps, then ``log N(z) − ℓ − Σ log scale``."""

    def __init__(self, cnf: nn.Module, method: str, steps: int) -> None:
        super().__init__()
        self.cnf = cnf
        tab = get_method(method).tableau
        self.a = [list(row) for row in tab.a]
        self.b = list(tab.b)
        self.c = list(tab.c)
        self.steps = steps

    def forward(self, x: Tensor) -> Tensor:
        cnf = self.cnf
        y = (x - cnf.loc) / cnf.scale
        ell = torch.zeros_like(y[..., 0])
        h = -cnf.t1 / self.steps
        batch = y.shape[:-1]

        def rhs(t: float, y: Tensor) -> tuple[Tensor, Tensor]:
            v, tr = _time_mlp_with_trace(cnf.field, y.new_full(batch, t), y)
            return v, -tr

        for k in range(self.steps):
            t = cnf.t1 + k * h
            ks: list[tuple[Tensor, Tensor]] = []
            for i in range(len(self.b)):
                yi, li = y, ell
                for j in range(i):
                    if self.a[i][j] != 0.0:
                        yi = yi + (h * self.a[i][j]) * ks[j][0]
                        li = li + (h * self.a[i][j]) * ks[j][1]
                ks.append(rhs(t + self.c[i] * h, yi))
            dy = sum((h * bi) * kv for bi, (kv, _) in zip(self.b, ks) if bi != 0.0)
            dl = sum((h * bi) * kl for bi, (_, kl) in zip(self.b, ks) if bi != 0.0)
            y, ell = y + dy, ell + dl
        d = y.shape[-1]
        base = -0.5 * (y * y).sum(-1) - 0.5 * d * math.log(2 * math.pi)
        return base - ell - torch.log(cnf.scale).sum()


# --------------------------------------------------------------------------------------------------
# Loading runs
# --------------------------------------------------------------------------------------------------


def _read_config(run_dir: Path) -> dict[str, Any]:
    if not run_dir.is_dir():
        raise RunDirectoryError(f"{run_dir} is not a directory")
    path = run_dir / "config.json"
    if not path.exists():
        raise RunDirectoryError(
            f"{run_dir} has no config.json: not a training run directory "
            "(symflow train ... --out DIR writes one)"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RunDirectoryError(f"{path} is not valid JSON ({err.msg})") from None


def _learner_of(config: dict[str, Any]) -> str:
    if "learner" in config:
        return str(config["learner"])
    if "cnf" in config:  # CNF runs store the flow's settings under "cnf"
        return "cnf"
    return "unknown"


def _file_sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _training_data(config: dict[str, Any], run_dir: Path) -> dict[str, Any] | None:
    """Where the training data came from and a hash of it."""
    data = config.get("data")
    if isinstance(data, dict):  # flow maps from a file: the fingerprint of what was trained on
        path = data.get("path") or data.get("file")
        out = {
            "source": data.get("kind", "file"),
            "path": path,
            "fingerprint_sha256": data.get("fingerprint"),
            "fingerprint_of": "observed times, states and mask as trained on",
        }
        if path:
            out["file_sha256"] = _file_sha256(Path(path))
        return out
    if isinstance(data, str):  # neural ODE runs: the trajectory file
        return {"source": "file", "path": data, "file_sha256": _file_sha256(Path(data))}
    cli = config.get("cli") or {}
    if "data" in cli:  # CNF: a toy data set (generated from a seed) or the states of a file
        params = cli.get("data_params") or {}
        if isinstance(params, dict) and params.get("points_sha256"):
            return {
                "source": "file",
                "path": params.get("path"),
                "points_sha256": params["points_sha256"],
                "file_sha256": _file_sha256(Path(params["path"])) if params.get("path") else None,
            }
        return {"source": "generated", "name": cli["data"], "params": params, "seed": cli.get("seed")}
    return None  # trained from a system's equations, no data


def _system_of(config: dict[str, Any], learner: str) -> dict[str, Any] | None:
    if learner == "node":
        attrs = config.get("data_attrs") or {}
        name = attrs.get("system")
        if not name or name == "unknown":
            return None
        args = attrs.get("system_args") or {}
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                args = {}
        return {"name": name, "args": args}
    spec = config.get("system")
    if isinstance(spec, dict) and spec.get("name"):
        return {"name": spec["name"], "args": spec.get("args", {})}
    return None


def load_cnf(run_dir: str | Path, *, map_location: str | torch.device = "cpu") -> nn.Module:
    """The trained :class:`~symflow.cnf.CNF` of a ``symflow train cnf`` run directory."""
    from symflow.cnf.fields import TimeMLP
    from symflow.cnf.model import CNF
    from symflow.training import load_checkpoint
    from symflow.training.checkpoint import load_module_state

    run_dir = Path(run_dir)
    config = _read_config(run_dir)
    cli, flow = config.get("cli") or {}, config.get("cnf") or {}
    if not flow or "hidden" not in cli:
        raise RunDirectoryError(f"{run_dir}/config.json: not a `symflow train cnf` run (no cnf/cli settings)")
    dtype = torch.float64 if cli.get("dtype") == "float64" else torch.float32
    field_ = TimeMLP(int(flow["dim"]), tuple(cli["hidden"]), cli.get("activation", "softplus")).to(dtype)
    cnf = CNF(
        field_,
        int(flow["dim"]),
        trace=flow.get("trace", "exact"),
        probe=flow.get("probe", "gaussian"),
        probes=flow.get("probes", 1),
        t1=flow.get("t1", 1.0),
        method=flow.get("method", "dopri5"),
        rtol=flow.get("rtol", 1e-5),
        atol=flow.get("atol", 1e-5),
        dt=flow.get("dt"),
        norm=flow.get("norm", "sample"),
    )
    ck = load_checkpoint(run_dir / "checkpoints", map_location=map_location)
    load_module_state(cnf, ck)
    return cnf.to(map_location).eval()


# --------------------------------------------------------------------------------------------------
# export()
# --------------------------------------------------------------------------------------------------


@dataclass
class _Program:
    name: str
    module: nn.Module
    inputs: tuple[str, ...]  # "t" (B,) or "y"/"x" (B, D)
    output: str  # "(B, D)" or "(B,)"
    doc: str
    reference: Callable[..., Tensor]  # the model's own computation, for the check


def _programs(learner: str, model: nn.Module, config: dict[str, Any], cnf_steps: int | None):
    """The programs of a run and the metadata particular to its learner."""
    if learner == "node":
        if getattr(model, "augment_dim", 0):
            raise CapabilityError(
                "an augmented neural ODE (model 'anode') has its field in R^(d+p), not in phase space; "
                "only node models mlp, hnn and separable_hnn can be exported"
            )
        progs = []
        if hasattr(model, "hamiltonian"):
            progs.append(
                _Program(
                    "field",
                    _HamiltonianField(model),
                    ("t", "y"),
                    "(B, D)",
                    "dy/dt = f(t, y) = J∇H(y)",
                    lambda t, y: model(t, y),
                )
            )
            progs.append(
                _Program(
                    "hamiltonian",
                    _Hamiltonian(model),
                    ("y",),
                    "(B,)",
                    "the learned Hamiltonian H(y)",
                    model.hamiltonian,
                )
            )
            progs.append(
                _Program(
                    "grad_h",
                    _HamiltonianGradient(model),
                    ("y",),
                    "(B, D)",
                    "∇H(y) = [∂H/∂q, ∂H/∂p]",
                    _autograd_gradient(model.hamiltonian),
                )
            )
        else:
            progs.append(
                _Program(
                    "field", _Field(model), ("t", "y"), "(B, D)", "dy/dt = f(t, y)", lambda t, y: model(t, y)
                )
            )
        return progs, {"dt": None, "model": config.get("model")}
    if learner in ("sympflow", "pinn"):
        progs = [
            _Program("step", _Step(model), ("x",), "(B, D)", "one step x ↦ N(Δt, x)",
                     lambda x: model(model.dt, x)),
            _Program("flow", _Flow(model), ("t", "x"), "(B, D)", "N(t, x) for 0 ≤ t ≤ Δt",
                     lambda t, x: model(t, x)),
        ]  # fmt: skip
        return progs, {"dt": model.dt, "model": {"learner": learner, **model.config()}}
    if learner == "cnf":
        from symflow.cnf.fields import TimeMLP

        if not isinstance(model.field, TimeMLP):
            raise CapabilityError("only CNFs over the TimeMLP field can be exported")
        spec = get_method(model.method)
        if model.dt is not None and spec.family in ("explicit", "embedded"):
            steps = max(1, math.ceil(model.t1 / model.dt * (1 - 1e-12)))
            method, note = (
                model.method,
                f"the run's fixed-step {model.method} with {steps} steps (same density)",
            )
            if cnf_steps is not None:
                raise InvalidArgumentError(
                    "cnf_steps", cnf_steps, "None: this CNF already runs with a fixed step"
                )
        else:
            steps = DEFAULT_CNF_STEPS if cnf_steps is None else cnf_steps
            method = "rk4"
            note = (
                f"the run uses {model.method} (adaptive); the program integrates with {steps} rk4 steps, "
                "a fixed-step approximation of the run's density"
            )

        def reference_log_prob(x: Tensor) -> Tensor:
            ref = _cnf_with(model, method, model.t1 / steps)
            with torch.enable_grad():
                return ref.log_prob(x, trace="exact").detach()

        progs = [
            _Program("log_prob", _CNFLogProb(model, method, steps), ("x",), "(B,)",
                     "log-density log p(x) (exact trace)", reference_log_prob),
            _Program("field", _Field(model.field), ("t", "y"), "(B, D)",
                     "velocity v(t, y) of the flow, t ∈ [0, t1]", lambda t, y: model.field(t, y)),
        ]  # fmt: skip
        extra = {
            "dt": None,
            "model": {"learner": "cnf", **model.config()},
            "density": {"method": method, "steps": steps, "t1": model.t1, "note": note},
        }
        return progs, extra
    raise RunDirectoryError(
        f"cannot export a {learner!r} run (node, sympflow, pinn or cnf runs can be exported)"
    )


def _cnf_with(cnf: nn.Module, method: str, dt: float) -> nn.Module:
    from symflow.cnf.model import CNF

    return CNF(
        cnf.field, cnf.dim, trace="exact", t1=cnf.t1, method=method, dt=dt, loc=cnf.loc, scale=cnf.scale
    )


def _autograd_gradient(energy: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    def gradient(y: Tensor) -> Tensor:
        with torch.enable_grad():
            u = y.detach().requires_grad_()
            (g,) = torch.autograd.grad(energy(u).sum(), u)
        return g

    return gradient


def _load(run_dir: Path, learner: str, config: dict[str, Any]) -> nn.Module:
    if learner == "node":
        from symflow.discovery.training import load_node

        return load_node(run_dir)
    if learner in ("sympflow", "pinn"):
        from symflow.learners import load_model

        return load_model(run_dir)
    if learner == "cnf":
        return load_cnf(run_dir)
    raise RunDirectoryError(
        f"{run_dir} holds a {learner!r} run; node, sympflow, pinn or cnf runs can be exported"
    )


def _example_inputs(names: tuple[str, ...], batch: int, dim: int, dtype: torch.dtype, g: torch.Generator, dt):
    out = []
    for name in names:
        if name == "t":
            span = dt if dt is not None else 1.0
            out.append(torch.rand(batch, generator=g, dtype=dtype) * span)
        else:
            out.append(torch.randn(batch, dim, generator=g, dtype=dtype))
    return tuple(out)


def _atomic_save(write: Callable[[Path], None], path: Path) -> None:
    # torch.export.save wants a name ending in .pt2; the dot prefix keeps it out of listings.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export(
    run_dir: str | Path,
    output: str | Path,
    *,
    overwrite: bool = False,
    cnf_steps: int | None = None,
    check: bool = True,
) -> ExportResult:
    """Export the trained model of ``run_dir`` as ``torch.export`` programs (see the module doc).

    Args:
        run_dir: a ``symflow train node|sympflow|pinn|cnf`` run directory.
        output: the primary program's path (``.pt2``); the others and ``<stem>.json`` go next to it.
        overwrite: replace existing output files (otherwise :class:`ExportExistsError`).
        cnf_steps: ``rk4`` steps of the exported density of a CNF trained with an adaptive method.
        check: compare every program with the model on fresh random inputs before writing.

    Returns:
        an :class:`ExportResult` (files, metadata, the checks' largest deviations).
    """
    run_dir = Path(run_dir)
    output = Path(output)
    if output.suffix != ".pt2":
        raise InvalidArgumentError("output", str(output), "a path ending in .pt2")
    if cnf_steps is not None and (
        isinstance(cnf_steps, bool) or not isinstance(cnf_steps, int) or cnf_steps < 1
    ):
        raise InvalidArgumentError("cnf_steps", cnf_steps, "a positive integer")
    if not output.parent.is_dir():
        raise InvalidArgumentError(
            "output", str(output), f"a path in an existing directory ({output.parent} is not one)"
        )
    config = _read_config(run_dir)
    learner = _learner_of(config)
    model = _load(run_dir, learner, config)
    programs, extra = _programs(learner, model, config, cnf_steps)

    stem = output.name[: -len(".pt2")]
    files = {
        p.name: output if i == 0 else output.with_name(f"{stem}.{p.name}.pt2") for i, p in enumerate(programs)
    }
    meta_path = output.with_name(f"{stem}.json")
    if not overwrite:
        for path in [*files.values(), meta_path]:
            if path.exists():
                raise ExportExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")

    params = [p for p in model.parameters()]
    dtype = params[0].dtype if params else torch.get_default_dtype()
    dim = int(model.dim)
    n = dim // 2
    from symflow import __version__

    metadata: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "learner": learner,
        "primary": programs[0].name,
        "state": {
            "dim": dim,
            "layout": "[q_1..q_n, p_1..p_n]" if learner != "cnf" else "data coordinates x (B, D)",
            "names": [f"q{i + 1}" for i in range(n)] + [f"p{i + 1}" for i in range(n)]
            if learner != "cnf"
            else [f"x{i + 1}" for i in range(dim)],
        },
        "dtype": str(dtype).removeprefix("torch."),
        **extra,
        "system": _system_of(config, learner),
        "training_data": _training_data(config, run_dir),
        "run_dir": str(run_dir.resolve()),
        "symflow_version": __version__,
        "torch_version": torch.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "programs": {},
    }
    for p in programs:
        shapes = {"t": "(B,)", "y": "(B, D)", "x": "(B, D)"}
        sig = f"{p.name}({', '.join(f'{a} {shapes[a]}' for a in p.inputs)}) -> {p.output}"
        metadata["programs"][p.name] = {
            "file": files[p.name].name,
            "inputs": [{"name": a, "shape": shapes[a]} for a in p.inputs],
            "output": p.output,
            "signature": sig.replace("(B, D)", f"(B, {dim})"),
            "doc": p.doc,
        }
    meta_text = json.dumps(metadata, indent=2)

    g = torch.Generator().manual_seed(0)
    batch = torch.export.Dim("batch", min=1)
    exported = {}
    errors: dict[str, float] = {}
    for p in programs:
        example = _example_inputs(p.inputs, 4, dim, dtype, g, extra.get("dt"))
        try:
            ep = torch.export.export(
                p.module.eval(), example, dynamic_shapes=tuple({0: batch} for _ in p.inputs)
            )
        except Exception as err:  # torch.export raises many types; report it as one line
            raise CapabilityError(
                f"torch.export could not trace the {p.name!r} program ({_first_line(err)})"
            ) from err
        if check:
            errors[p.name] = _check_program(ep, p, dim, dtype, g, extra.get("dt"))
        exported[p.name] = ep

    for name, ep in exported.items():
        _atomic_save(
            lambda tmp, ep=ep: torch.export.save(ep, tmp, extra_files={METADATA_ENTRY: meta_text}),
            files[name],
        )
    _atomic_save(lambda tmp: tmp.write_text(meta_text + "\n"), meta_path)
    return ExportResult(dict(files), metadata, meta_path, errors)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _check_program(ep, program: _Program, dim: int, dtype: torch.dtype, g: torch.Generator, dt) -> float:
    """Largest deviation of the program from the model on fresh inputs (batch sizes 1 and 7)."""
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    worst = 0.0
    module = ep.module()
    for b in (1, 7):
        inputs = _example_inputs(program.inputs, b, dim, dtype, g, dt)
        with torch.no_grad():
            got = module(*inputs)
        want = program.reference(*inputs).detach()
        scale = 1.0 + float(want.abs().max())
        err = float((got - want).abs().max())
        if not err <= tol * scale:  # NaN fails too
            raise SymflowError(
                f"the exported {program.name!r} program differs from the model by {err:.3g} "
                f"(tolerance {tol:.0e}); nothing was written"
            )
        worst = max(worst, err)
    return worst
