"""Diagnose a trained model from its run directory.

A run directory (``config.json`` + verified checkpoints, written by ``symflow train ...``) names the
learner it holds, and that decides how the model moves states forward:

* ``node`` (neural ODE / HNN, :mod:`symflow.discovery`): the learned field ``f_θ(t, y)`` integrated by
  a method of :mod:`symflow.integrators` (by default Gauss–Legendre of order 6, so that an HNN's map is
  exactly symplectic and the structure diagnostics measure the learned *system*, not the integrator);
  the true system is the one named by the training file's attributes.
* ``sympflow`` / ``pinn`` (flow maps, :mod:`symflow.learners`): ``N(t, x0)`` on ``[0, Δt]``, composed
  for longer times (:meth:`~symflow.diagnostics.sources.FlowMapSource.from_model`); the true system is
  the one the map was trained on (Hamiltonian matching), or the one its trajectory file names
  (trained from data: ``config.json`` records it, or why there is none).

The learners are imported only here, lazily, so the rest of the diagnostics package does not depend
on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symflow.integrators import InvalidArgumentError, get_method
from symflow.integrators.reprs import compact_repr
from symflow.systems import HamiltonianSystem, get_system
from symflow.training.runs import RunDirectoryError  # the run-directory problem, wherever it is found

from .sources import FlowMapSource, FlowSource, IntegratorSource

#: How a learned vector field is integrated when the caller does not say.
DEFAULT_FIELD_METHOD = "gl6"
DEFAULT_FIELD_DT = 0.1


@dataclass
class RunSource:
    """A trained model ready for :func:`~symflow.diagnostics.diagnose`."""

    source: FlowSource
    system: HamiltonianSystem
    learner: str
    model: Any
    info: dict[str, Any]

    def __repr__(self) -> str:
        return compact_repr(self, fields=("learner", "source", "system", "model"))


def source_from_run(
    run_dir: str | Path,
    *,
    method: str | None = None,
    dt: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    system: HamiltonianSystem | None = None,
) -> RunSource:
    """Load the model of ``run_dir`` and wrap it as a flow source.

    Args:
        run_dir: a ``symflow train node|sympflow|pinn`` run directory.
        method, dt, rtol, atol: how a learned *vector field* is integrated (default ``gl6`` with
            ``dt = 0.1``; adaptive methods default to ``rtol = 1e-9``, ``atol = 1e-11``). Flow-map
            learners are their own integrator: giving these for them is an error.
        system: the true system, when the run does not name one (a node trained on a plain file).
    """
    path = Path(run_dir)
    config_path = path / "config.json"
    if not path.is_dir():
        raise RunDirectoryError(f"{path} is not a directory")
    if not config_path.exists():
        raise RunDirectoryError(
            f"{path} has no config.json: not a training run directory "
            "(symflow train ... --out DIR writes one)"
        )
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise RunDirectoryError(f"{config_path} is not valid JSON ({err.msg})") from None
    learner = config.get("learner")
    info: dict[str, Any] = {"kind": "run", "path": str(path)}
    model_config = config.get("model") if isinstance(config.get("model"), dict) else {}
    family = model_config.get("param_ranges") or config.get("param_ranges")
    if family:  # refused before any work: which member to diagnose is not the run's to guess
        ranges = ", ".join(f"{k} ∈ [{lo:g}, {hi:g}]" for k, (lo, hi) in family.items())
        raise RunDirectoryError(
            f"{path} holds a model of a parametric family ({ranges}); diagnose one member of it in "
            "Python: load_model(run).at(NAME=VALUE) for flow maps, load_node(run).field(t, y, mu) for "
            "vector fields (see docs/parametric.md)"
        )
    if learner == "node":
        return _node(path, config, info, method, dt, rtol, atol, system)
    if learner in ("sympflow", "pinn"):
        if any(v is not None for v in (method, dt, rtol, atol)):
            raise RunDirectoryError(
                f"{path} holds a {learner} flow map, which is its own integrator: "
                "drop --method/--dt/--rtol/--atol"
            )
        from symflow.learners import load_model
        from symflow.learners.training import system_from_config

        model = load_model(path)
        true_system = system
        if true_system is None:
            if not config.get("system"):
                note = config.get("system_note") or "the run names no system"
                raise RunDirectoryError(
                    f"{path}: no true system to compare with ({note}); pass one (--system NAME)"
                )
            true_system = system_from_config(config)
        projected = getattr(true_system, "doubling", None) is not None
        if projected:
            # A damped system on the doubled phase space: follow the learned map with the projection
            # onto the physical limit after every step (docs/damped.md); without it the anti-damped
            # mirror modes amplify the map's error off the limit.
            from symflow.learners import PhysicalLimitFlow

            model = PhysicalLimitFlow(model, true_system)
        source = FlowMapSource.from_model(model, system=true_system)
        if projected:
            source.name += ", projected onto the physical limit every step"
        info["description"] = f"{learner} run {path} ({source.name})"
        return RunSource(source, true_system, learner, model, info)
    raise RunDirectoryError(
        f"{path} holds a {learner!r} run; diagnostics apply to learned Hamiltonian dynamics "
        "(node, sympflow or pinn runs)"
    )


def _node(
    path: Path,
    config: dict[str, Any],
    info: dict[str, Any],
    method: str | None,
    dt: float | None,
    rtol: float | None,
    atol: float | None,
    system: HamiltonianSystem | None,
) -> RunSource:
    from symflow.discovery.training import load_node

    attrs = config.get("data_attrs") or {}
    if system is None:
        name = attrs.get("system")
        if not name:
            raise RunDirectoryError(
                f"{path}: the training file names no system, so there is no true system to compare with; "
                "pass one (--system NAME)"
            )
        from symflow.data.reader import system_args

        # Text that is not a JSON object is an error, never silently the default parameters.
        system = get_system(name, **system_args(attrs, path / "config.json"))
    model = load_node(path)
    if getattr(model, "augment_dim", 0):
        raise RunDirectoryError(
            f"{path}: an augmented neural ODE (model 'anode') has its field in R^(d+{model.augment_dim}), "
            "not in phase space, so its energy, symplecticity and sections are not defined; evaluate it with "
            "symflow.discovery.evaluate_discovery instead"
        )
    spec = get_method(method or DEFAULT_FIELD_METHOD)
    options: dict[str, Any] = {}
    if spec.adaptive and dt is None:
        options = {"rtol": 1e-9 if rtol is None else rtol, "atol": 1e-11 if atol is None else atol}
    else:
        if rtol is not None or atol is not None:
            raise InvalidArgumentError("rtol/atol", (rtol, atol), f"none: {spec.name} runs with a fixed dt")
        options = {"dt": DEFAULT_FIELD_DT if dt is None else dt}
    source = IntegratorSource(model, spec.name, system=system, **options)
    source.name = f"learned {config.get('model', 'node')} field, {source.name}"
    info["description"] = f"node run {path} ({source.name})"
    return RunSource(source, system, "node", model, info)
