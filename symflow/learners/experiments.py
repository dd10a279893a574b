"""The seed's reference experiments as named training configurations.

Shared by the examples, ``benchmarks/bench_sympflow.py`` and the slow tests, so that the figures
quoted in the docs come from exactly these settings. Each entry is a dict of keyword arguments for
:func:`~symflow.learners.training.train_flow_map` (``system``, ``learner`` and the fields of the
learner's configuration dataclass); :func:`quick` shrinks one to a smoke-test size.

* ``oscillator``: harmonic oscillator, unsupervised, ``Ω = {H ≤ 1/2}`` (the unit disc), ``Δt = 1``,
  1,224 weights.
* ``henon_heiles``: Hénon–Heiles, unsupervised, ``Δt = 1``, ``Ω = {H ≤ 1/12}``, 4 layers of width 10
  (1,280 weights), 700 fresh collocation points per Adam step (the published code's count; its
  Hénon–Heiles runs use 3 layers on the box ``[−1, 1]⁴`` instead, see ``docs/learners.md``).
* ``henon_heiles_pinn``: the flow-map PINN on the same problem with about as many weights.
"""

from __future__ import annotations

import copy
from typing import Any

EXPERIMENTS: dict[str, dict[str, Any]] = {
    "oscillator": {
        "system": "harmonic_oscillator",
        "learner": "sympflow",
        "dt": 1.0,
        "energy_max": 0.5,
        "layers": 3,
        "width": 12,
        "adam_steps": 200,
        "lbfgs_steps": 200,
        "collocation": 700,
        "lbfgs_points": 1000,
        "lbfgs_resample": 20,
        "lr": 1e-2,
        "horizon": 100.0,
        "energy_horizon": 100.0,
    },
    "henon_heiles": {
        "system": "henon_heiles",
        "learner": "sympflow",
        "dt": 1.0,
        "energy_max": 1 / 12,
        "layers": 4,
        "width": 10,
        "adam_steps": 1000,
        "lbfgs_steps": 300,
        "collocation": 700,
        "lbfgs_points": 2000,
        "lbfgs_resample": 20,
        "lr": 1e-2,
        "horizon": 10.0,
        "energy_horizon": 1000.0,
    },
    "henon_heiles_pinn": {
        "system": "henon_heiles",
        "learner": "pinn",
        "dt": 1.0,
        "energy_max": 1 / 12,
        "width": 30,
        "adam_steps": 1000,
        "lbfgs_steps": 300,
        "collocation": 700,
        "lbfgs_points": 2000,
        "lbfgs_resample": 20,
        "lr": 1e-2,
        "horizon": 10.0,
        "energy_horizon": 1000.0,
    },
}


def experiment(name: str) -> dict[str, Any]:
    """A fresh copy of a named configuration (see :data:`EXPERIMENTS`)."""
    if name not in EXPERIMENTS:
        from symflow.integrators.errors import UnknownNameError

        raise UnknownNameError("experiment", name, list(EXPERIMENTS), [])
    return copy.deepcopy(EXPERIMENTS[name])


def quick(config: dict[str, Any], *, horizon: float = 20.0, energy_horizon: float = 50.0) -> dict[str, Any]:
    """A smoke-test version of ``config``: a few dozen steps, short horizons (well under a minute)."""
    out = copy.deepcopy(config)
    out.update(
        adam_steps=min(config["adam_steps"], 120),
        lbfgs_steps=min(config["lbfgs_steps"], 4),
        lbfgs_points=min(config["lbfgs_points"], 300),
        lbfgs_resample=2,
        horizon=min(config["horizon"], horizon),
        energy_horizon=min(config["energy_horizon"], energy_horizon),
        eval_samples=4,
    )
    return out
