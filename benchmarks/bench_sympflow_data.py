"""SympFlow trained from trajectory data: the published supervised experiment, and the demo's data.

1. **The published supervised Hénon–Heiles experiment** (Canizares, Murari, Schönlieb, Sherry &
   Shumaylov, arXiv:2412.16787, 2024; the authors' code, ``mainSupervised.py``): N = 100 initial
   states uniform in ``[−1, 1]⁴``, M = 50 sorted uniformly random times in ``[0, 1]`` each, integrated
   by SciPy's RK45 at ``rtol = atol = 1e-10``, no noise; pairs ``x0 → x(t_j)``; SympFlow with 5 layers
   of width 10, Δt = 1. The data are written to an HDF5 file and trained on with
   ``train_sympflow(data=FILE)`` — the same path a user takes. Two settings:

   * ``published``: the authors' training settings in symflow (float32, 500 epochs of batch 512,
     Adam with a one-cycle learning rate peaking at 5e-2, first-observation pairs);
   * ``tuned``: symflow's settings for this data (see ``TUNED`` and ``benchmarks/README.md``).

   Metrics, as the issue measured the authors' code on this machine (one thread): training MSE per
   component; the mean over 100 states uniform in ``{H ≤ 1/12}`` of the relative error
   ``‖N(t, x) − φ_t(x)‖ / ‖φ_t(x)‖`` at t = 1, 10, 100 (composition; reference: ``dopri5`` at
   ``rtol = 1e-10``); the largest ``|H(x_t) − H(x_0)|`` to T = 1000 from ``z0 = (0.3, −0.3, 0.3, 0.15)``,
   sampled every 0.1. The authors' figures: 4.6e-6; 0.021 / 0.106 / 0.995; 1.25e-2; 333 s.
2. **The demo's data** (200 irregularly observed Hénon–Heiles trajectories, 50 noisy observations
   each, σ = 1e-3; :mod:`symflow.demo.settings`): the demo's SympFlow, trained from that file, against
   the demo's HNN trained on the same file: median held-out trajectory error to T = 10 on
   trajectories neither model trained on, the true energy's drift exponent to T = 1000, the learned
   H̃'s relative RMS against the true H, and the CPU time.

    python -m benchmarks.bench_sympflow_data [--quick] [--only published|demo]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

#: The authors' figures, measured by running their code on this machine (one thread), from the issue.
PUBLISHED = {
    "train_mse": 4.6e-6,
    "relative_error": {"1": 0.021, "10": 0.106, "100": 0.995},
    "max_energy_error": 1.25e-2,
    "train_seconds": 333.0,
}
Z0 = (0.3, -0.3, 0.3, 0.15)
TIME_LIMIT = 160.0  # training seconds, one thread: half of the authors' 333 s


def henon_heiles_rhs(t: float, y: np.ndarray) -> list[float]:
    """Hénon–Heiles (λ = 1) for SciPy: ``q̇ = p``, ``ṗ = (−x − 2xy, −y − x² + y²)``."""
    x, yy, px, py = y
    return [px, py, -x - 2 * x * yy, -yy - x * x + yy * yy]


def published_data(path: Path, *, n: int = 100, m: int = 50, seed: int = 0) -> Path:
    """The authors' supervised data set, as a trajectory file: each row is ``x0`` at t = 0 followed by
    the ``m`` observations at sorted uniform times in ``[0, 1]`` (RK45, ``rtol = atol = 1e-10``)."""
    from scipy.integrate import solve_ivp

    from symflow.data import write_trajectories

    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-1.0, 1.0, size=(n, 4))
    times = np.sort(rng.uniform(0.0, 1.0, size=(n, m)), axis=1)
    t = np.concatenate([np.zeros((n, 1)), times], axis=1)
    y = np.empty((n, m + 1, 4))
    for i in range(n):
        sol = solve_ivp(
            henon_heiles_rhs,
            (0.0, times[i, -1]),
            x0[i],
            t_eval=times[i],
            method="RK45",
            rtol=1e-10,
            atol=1e-10,
        )
        y[i, 0] = x0[i]
        y[i, 1:] = sol.y.T
    attrs = {
        "system": "henon_heiles",
        "system_args": {"lam": 1.0},
        "integrator": "scipy RK45",
        "rtol": 1e-10,
        "atol": 1e-10,
        "seed": seed,
        "origin": "Canizares et al. 2024, supervised Hénon–Heiles setting",
    }
    return write_trajectories(path, t, y, attrs=attrs, overwrite=True)


def published_metrics(model: Any, *, samples: int = 100, seed: int = 0) -> dict[str, Any]:
    """The issue's metrics of a flow map on Hénon–Heiles (module docstring)."""
    from symflow.learners.data_evaluation import errors_at, reference_states
    from symflow.learners.domains import EnergySublevel
    from symflow.systems import get_system

    hh = get_system("henon_heiles")
    x0 = EnergySublevel(hh, 1 / 12).sample(samples, torch.Generator().manual_seed(seed))
    times = torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)
    ref, ok = reference_states(hh, x0, times)
    at = errors_at(model, x0, times, ref, ok)
    z0 = torch.tensor([Z0], dtype=torch.float64)
    ts = torch.arange(10001, dtype=torch.float64) * 0.1
    p = next(model.parameters())
    with torch.no_grad():
        traj = model.rollout(z0.to(p), ts.to(p)).double().cpu()
    dh = (hh.energy(traj) - hh.energy(z0)[:, None]).abs()
    return {
        "relative_error": {k: v["relative_error_mean"] for k, v in at.items()},
        "reference_ok": int(ok.sum()),
        "max_energy_error": float(dh.max()),
        "energy_z0": float(hh.energy(z0)),
    }
