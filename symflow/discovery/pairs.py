"""The pair objective: every consecutive pair of observations at once, for full-batch L-BFGS.

For consecutive observations ``(t_k, y_k)``, ``(t_{k+1}, y_{k+1})`` of one trajectory, ``h = t_{k+1} − t_k``,
the residual is the one-step prediction error of the learned flow from the observed start:

* **short gaps** (``h ≤ collocation_gap``): the Hermite–Simpson defect (the 3-stage Lobatto IIIA
  collocation method, order 4; Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.7)

      r = y_{k+1} − y_k − h/6 (f_k + 4 f_m + f_{k+1}),
      f_m = f(t_k + h/2, (y_k + y_{k+1})/2 + h/8 (f_k − f_{k+1})),

  explicit in the data: no ODE solve, and ``f`` at an observation is shared by its two pairs, so about
  two field evaluations per pair;
* **long gaps**: a shot, ``r = Φ_h(y_k) − y_{k+1}`` with equal classical Runge–Kutta steps (order 4)
  no longer than ``shot_dt`` (their number rounded up to a power of two, so shots batch into a few
  solves), differentiated by backprop.

Both equal the exact one-step error up to ``O(h⁵)`` (Hermite–Simpson defect = −(shot residual) + O(h⁵)).
With Gaussian observation noise σ, the residual of the *true* field has variance ≈ σ²(1 + ‖∂Φ/∂y‖²_F/D)
≈ 2σ² per component, the floor of the loss ``L = Σ‖r‖² / (D · pairs)``. On the discovery benchmark's
data (σ = 1e-3), the true field's Hermite–Simpson defect on noise-free data is below 1e-8 (mean square)
for gaps under 0.8 — negligible against 2σ² = 2e-6 — and 1.5e-4 above 1, hence the split; a shot with
steps ≤ 0.5 is biased by 3e-9.

The two limits are in the data's time units; by default they scale with its rate
``ω̂`` (:func:`data_rate`): ``collocation_gap = 0.8/ω̂``, ``shot_dt = 0.5/ω̂``.
:meth:`PairObjective.integration_check` measures what the choice costs for the learned field.

Estimating a vector field from one-step errors of noisy data is gradient matching's consistent
cousin; it is the one-interval case of multiple shooting (Bock, 1983; for neural ODEs e.g. Turan &
Jäschke, "Multiple shooting for training neural differential equations on time series", IEEE
Control Syst. Lett. 2022) with the observations as the shooting nodes.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from symflow.integrators import solve

from .models import AugmentedNeuralODE

Tensor = torch.Tensor

COLLOCATION_GAP = 0.8  # × 1/ω̂
SHOT_DT = 0.5  # × 1/ω̂


def data_rate(ts: Tensor, ys: Tensor, mask: Tensor) -> float:
    """A rate ``ω̂`` of the dynamics from the data alone: the median, over pairs with a gap no longer than
    the median gap, of ``‖Δy/h‖ / s_i``, with ``s_i`` the rms distance of trajectory ``i``'s states from
    their mean. A harmonic oscillator of frequency ω gives ``ω̂ ≈ ω``; Hénon–Heiles at the benchmark's
    energies about 1. ``1.0`` when there is no pair to measure."""
    m = mask.unsqueeze(-1)
    count = mask.sum(1, keepdim=True).clamp(min=1).unsqueeze(-1)
    clean = torch.where(m, ys, torch.zeros_like(ys))
    mean = clean.sum(1, keepdim=True) / count
    spread = (torch.where(m, ys - mean, torch.zeros_like(ys)).square().sum((1, 2)) / count[:, 0, 0]).sqrt()
    h = ts[:, 1:] - ts[:, :-1]
    ok = mask[:, 1:] & mask[:, :-1] & torch.isfinite(h) & (h > 0) & (spread > 0).unsqueeze(1)
    if not bool(ok.any()):
        return 1.0
    short = ok & (h <= h[ok].median())
    speed = (ys[:, 1:] - ys[:, :-1]).norm(dim=-1) / h.clamp(min=1e-300)
    rate = (speed / spread.unsqueeze(1).clamp(min=1e-300))[short]
    value = float(rate.median())
    return value if math.isfinite(value) and value > 0 else 1.0


class PairObjective(nn.Module):
    """Mean squared one-step residual over every consecutive pair of observations (module docstring).

    Args:
        field: the model ``f(t, y)``; an :class:`~.models.AugmentedNeuralODE` is shot from its lift and
            read out by its projection (no collocation: its field lives in the augmented space).
        ts, ys, mask: whole trajectories as the data layer batches them, ``(N, T)``, ``(N, T, D)``,
            ``(N, T)``; they are kept (not registered as buffers: under DDP every rank keeps its own).
        collocation_gap: gaps up to this use the Hermite–Simpson defect (``None``: ``0.8/ω̂``).
        shot_dt: largest RK4 step of a shot (``None``: ``0.5/ω̂``).
    """

    def __init__(
        self,
        field: nn.Module,
        ts: Tensor,
        ys: Tensor,
        mask: Tensor,
        *,
        collocation_gap: float | None = None,
        shot_dt: float | None = None,
    ) -> None:
        super().__init__()
        self.field = field
        rate = data_rate(ts, ys, mask)
        self.rate = rate
        self.collocation_gap = COLLOCATION_GAP / rate if collocation_gap is None else float(collocation_gap)
        self.shot_dt = SHOT_DT / rate if shot_dt is None else float(shot_dt)
        if isinstance(field, AugmentedNeuralODE):
            self.collocation_gap = 0.0
        h = ts[:, 1:] - ts[:, :-1]
        ok = mask[:, 1:] & mask[:, :-1] & torch.isfinite(h) & (h > 0)
        n, t = mask.shape
        index = torch.arange(n * t, device=ys.device).reshape(n, t)
        first, second = index[:, :-1][ok], index[:, 1:][ok]
        gap = h[ok]
        self.dim = ys.shape[-1]
        self.pairs = int(gap.numel())
        flat_t, flat_y = ts.reshape(-1), ys.reshape(-1, self.dim)
        colloc = gap <= self.collocation_gap
        # Collocation: f is evaluated once at every observation that starts or ends such a pair.
        c0, c1 = first[colloc], second[colloc]
        nodes, inverse = torch.unique(torch.cat([c0, c1]), return_inverse=True)
        self._nodes_t, self._nodes_y = flat_t[nodes], flat_y[nodes]
        self._c0, self._c1 = inverse[: c0.numel()], inverse[c0.numel() :]
        self._c_h = gap[colloc].unsqueeze(-1)
        # Shots, grouped by their number of RK4 steps so each group is one batched solve.
        self._pair_t0, self._pair_h = flat_t[first], gap
        self._pair_y0, self._pair_y1 = flat_y[first], flat_y[second]
        self._shots = self._shot_groups(~colloc, self.shot_dt)
        self.collocation_pairs = int(c0.numel())
        self.shot_pairs = self.pairs - self.collocation_pairs
        self.shot_steps = int(sum(g.shape[0] * (g.shape[1] - 1) for g, _, _ in self._shots))

    def _shot_groups(self, select: Tensor, dt: float) -> list[tuple[Tensor, Tensor, Tensor]]:
        """``(grid (B, k + 1), y0, y1)`` per number ``k`` (a power of two) of equal RK4 steps ≤ ``dt``."""
        h, t0 = self._pair_h[select], self._pair_t0[select]
        y0, y1 = self._pair_y0[select], self._pair_y1[select]
        steps = torch.ceil(h / dt * (1 - 1e-12)).clamp(min=1)
        # Rounded up to a power of two: a handful of larger batched solves instead of one per step
        # count (on 10 observations per trajectory, 22 groups → 5, 2.4× less time per evaluation);
        # steps only get shorter.
        steps = torch.exp2(torch.ceil(torch.log2(steps))).to(torch.long)
        groups = []
        for k in torch.unique(steps).tolist():
            sel = steps == k
            frac = torch.linspace(0.0, 1.0, k + 1, dtype=h.dtype, device=h.device)
            groups.append((t0[sel].unsqueeze(-1) + h[sel].unsqueeze(-1) * frac, y0[sel], y1[sel]))
        return groups

    def describe(self) -> dict[str, Any]:
        """What the objective is made of (for the run's summary)."""
        return {
            "pairs": self.pairs,
            "collocation_pairs": self.collocation_pairs,
            "shot_pairs": self.shot_pairs,
            "shot_rk4_steps": self.shot_steps,
            "data_rate": self.rate,
            "collocation_gap": self.collocation_gap,
            "shot_dt": self.shot_dt,
        }

    def residual_sums(self, shot_dt: float | None = None) -> tuple[Tensor, Tensor]:
        """Sums of squared residuals of the collocation pairs and of the shots (``shot_dt``: shoot every
        pair instead, with that step; used by :meth:`integration_check`)."""
        f = self.field
        zero = self._nodes_y.new_zeros(())
        colloc = zero
        if self.collocation_pairs and shot_dt is None:
            fn = f(self._nodes_t, self._nodes_y)
            y0, y1 = self._nodes_y[self._c0], self._nodes_y[self._c1]
            f0, f1, h = fn[self._c0], fn[self._c1], self._c_h
            t_mid = self._nodes_t[self._c0] + h.squeeze(-1) / 2
            fm = f(t_mid, (y0 + y1) / 2 + h / 8 * (f0 - f1))
            colloc = (y1 - y0 - h / 6 * (f0 + 4 * fm + f1)).square().sum()
        shots = zero
        groups = (
            self._shots
            if shot_dt is None
            else self._shot_groups(torch.ones_like(self._pair_h, dtype=torch.bool), shot_dt)
        )
        for grid, y0, y1 in groups:
            pred = self._shoot(grid, y0)
            shots = shots + (pred - y1).square().sum()
        return colloc, shots

    def _shoot(self, grid: Tensor, y0: Tensor) -> Tensor:
        f = self.field
        if isinstance(f, AugmentedNeuralODE):
            return f.project(solve(f, f.lift(y0), grid, "rk4", throw=False).ys[:, -1])
        return solve(f, y0, grid, "rk4", throw=False).ys[:, -1]

    def forward(self) -> Tensor:
        colloc, shots = self.residual_sums()
        return (colloc + shots) / max(self.pairs * self.dim, 1)

    @torch.no_grad()
    def integration_check(self) -> dict[str, float]:
        """The loss as it is computed, and the same pairs all shot with RK4 at a quarter of ``shot_dt``
        (an accurate one-step error for the learned field): ``relative_change`` well below 1 means
        the collocation limit and the shot step do not bias the objective."""
        loss = float(self())
        colloc, shots = self.residual_sums(shot_dt=self.shot_dt / 4)
        fine = float((colloc + shots) / max(self.pairs * self.dim, 1))
        return {"loss": loss, "fine_loss": fine, "relative_change": abs(fine - loss) / max(loss, 1e-300)}
