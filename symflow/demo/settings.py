"""The sizes of the demo: the full run (under 5 minutes on a 2-core CPU) and the quick one (tests)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class DemoSettings:
    """Everything that sizes :func:`~symflow.demo.run_demo`; recorded in ``report.json``.

    Data: ``trajectories`` Hénon–Heiles orbits (energies 0.02–0.12) observed at ``observations``
    uniformly random times in ``[0, t_end]`` each, with Gaussian noise ``noise``.
    HNN: a Hamiltonian neural network (``width`` × ``depth``, tanh), warm-started on secant slopes of the
    data for ``hnn_warm_start`` steps, then (optionally) ``hnn_steps`` Adam steps on random
    ``hnn_window``-observation windows with the continuous adjoint, then ``hnn_lbfgs`` full-batch L-BFGS
    steps (``hnn_lbfgs_iterations`` iterations each) on the one-step error of every consecutive pair of
    observations (:class:`~symflow.discovery.pairs.PairObjective`).
    SympFlow: ``sympflow_layers`` layers of width ``sympflow_width``, ``Δt = 1``, trained *from the same
    file* as the HNN on every pair of observations at most ``Δt`` apart: ``sympflow_adam`` Adam steps of
    ``sympflow_batch`` pairs (one-cycle learning rate peaking at ``sympflow_lr``), then ``sympflow_lbfgs``
    L-BFGS steps on ``sympflow_lbfgs_points`` pairs; ``sympflow_test`` of the trajectories are held out
    (a subset of the HNN's validation trajectories, see :mod:`symflow.demo.heldout`); its energy error
    is followed to ``sympflow_energy_horizon``.
    Diagnostics: ``orbits`` orbits at energy ``energy`` followed to ``orbit_t_end`` by the Gauss–Legendre
    reference (``reference_method`` with step ``reference_dt`` on the true field), the HNN's field
    (``hnn_method``) and the composed SympFlow map.
    """

    trajectories: int = 200
    t_end: float = 20.0
    observations: int = 50
    noise: float = 1e-3
    hnn_width: int = 32
    hnn_depth: int = 2
    hnn_window: int = 4
    hnn_batch: int = 64
    hnn_input_scale: float = 3.0
    hnn_warm_start: int = 2000
    hnn_steps: int = 0
    hnn_lr: float = 3e-3
    hnn_lbfgs: int = 60
    hnn_lbfgs_iterations: int = 10
    hnn_method: str = "dopri5"
    hnn_rtol: float = 1e-8
    sympflow_layers: int = 4
    sympflow_width: int = 10
    sympflow_adam: int = 3000
    sympflow_batch: int = 512
    sympflow_lr: float = 2e-2
    sympflow_lbfgs: int = 30
    sympflow_lbfgs_points: int = 8000
    sympflow_test: float = 0.1
    sympflow_energy_horizon: float = 1000.0
    energy: float = 1 / 12
    orbits: int = 16
    orbit_t_end: float = 200.0
    reference_method: str = "gl6"
    reference_dt: float = 0.1
    samples: int = 401
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, **changes: Any) -> DemoSettings:
        return replace(self, **changes)


FULL = DemoSettings()

QUICK = DemoSettings(
    trajectories=16,
    t_end=6.0,
    observations=12,
    hnn_width=16,
    hnn_batch=8,
    hnn_warm_start=50,
    hnn_steps=4,
    hnn_lbfgs=2,
    hnn_lbfgs_iterations=3,
    sympflow_width=6,
    sympflow_layers=2,
    sympflow_adam=20,
    sympflow_batch=64,
    sympflow_lbfgs=1,
    sympflow_lbfgs_points=256,
    sympflow_test=0.2,
    sympflow_energy_horizon=50.0,
    orbits=3,
    orbit_t_end=12.0,
    reference_dt=0.2,
    samples=61,
)


def hnn_plan(s: DemoSettings | dict[str, Any]) -> str:
    """The HNN's training phases in words, e.g. "2000 warm-start steps, 40×10 L-BFGS on pair errors"."""
    get = s.get if isinstance(s, dict) else lambda k, d=None: getattr(s, k, d)
    parts = []
    if get("hnn_warm_start", 0):
        parts.append(f"{get('hnn_warm_start')} warm-start steps")
    if get("hnn_steps", 0):
        parts.append(f"{get('hnn_steps')} adjoint steps")
    if get("hnn_lbfgs", 0):
        parts.append(f"{get('hnn_lbfgs')}×{get('hnn_lbfgs_iterations', 10)} L-BFGS on pair errors")
    return ", ".join(parts) or "no training"
