"""How well a learned field reproduces the true system.

For held-out initial conditions the learned model and the true system are integrated with tight
tolerances over ``[0, t_end]``, and reported are:

* **trajectory error**: per sample ``max_t ‖ŷ(t) − y(t)‖ / max_t ‖y(t)‖`` (relative), median and max;
* **energy error** of the learned trajectories measured with the *true* ``H``:
  ``max_t |H(ŷ(t)) − H(y₀)| / |H(y₀)|``;
* for Hamiltonian models, the **learned H vs true H up to a constant**: with
  ``c = mean(H − H_θ)`` over states drawn from the system's sampler,
  ``RMS(H_θ + c − H) / std(H)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from symflow.integrators import solve
from symflow.systems import HamiltonianSystem, get_system, vector_field

from .models import observed_solve

Tensor = torch.Tensor


@torch.no_grad()
def evaluate_discovery(
    model: nn.Module,
    system: str | HamiltonianSystem,
    *,
    y0: Tensor | None = None,
    n: int = 64,
    t_end: float = 10.0,
    n_times: int = 101,
    seed: int = 12345,
    energy: float | None = None,
    method: str = "dopri5",
    rtol: float = 1e-9,
    atol: float = 1e-11,
) -> dict[str, Any]:
    """Held-out comparison of a learned field with the true system: ``n`` new states (seeded sampler, or
    ``y0``) integrated to ``t_end`` by both; relative trajectory error (max over time of ‖Δy‖ / max‖y‖),
    relative error of the true energy, and the learned H against the true H up to a constant when the
    model has one.
    """
    system = get_system(system)
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    if y0 is None:
        y0 = system.sample(n, seed=seed, energy=energy, dtype=dtype, device=device)
    ts = torch.linspace(0.0, t_end, n_times, dtype=dtype, device=device)
    truth = solve(vector_field(system), y0, ts, method, rtol=rtol, atol=atol).ys
    pred = observed_solve(model, y0, ts, method, rtol=rtol, atol=atol, throw=False)
    ok = pred.success
    err = (pred.ys - truth).norm(dim=-1).amax(-1) / truth.norm(dim=-1).amax(-1)
    e0 = system.energy(y0)
    e_pred = system.energy(pred.ys)
    energy_err = ((e_pred - e0.unsqueeze(-1)).abs() / e0.abs().clamp(min=1e-12).unsqueeze(-1)).amax(-1)
    report: dict[str, Any] = {
        "t_end": t_end,
        "samples": int(y0.shape[0]),
        "failed_samples": int((~ok).sum()),
        "trajectory_rel_error_median": float(err[ok].median()) if ok.any() else float("nan"),
        "trajectory_rel_error_max": float(err[ok].max()) if ok.any() else float("nan"),
        "energy_rel_error_max": float(energy_err[ok].max()) if ok.any() else float("nan"),
        "energy_rel_error_median": float(energy_err[ok].median()) if ok.any() else float("nan"),
    }
    if hasattr(model, "hamiltonian"):
        states = system.sample(2048, seed=seed + 1, energy=energy, dtype=dtype, device=device)
        h_true = system.energy(states)
        h_learned = model.hamiltonian(states)
        offset = (h_true - h_learned).mean()
        report["hamiltonian_rel_rms"] = float(
            ((h_learned + offset - h_true).pow(2).mean().sqrt()) / h_true.std()
        )
        report["hamiltonian_offset"] = float(offset)
    return report
