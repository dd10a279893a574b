"""Warm start: fit the field to secant slopes of the data before the trajectory (adjoint) objective.

For consecutive observations ``(t_k, y_k)``, ``(t_{k+1}, y_{k+1})`` of one trajectory the secant slope
is, by the midpoint rule,

    (y_{k+1} − y_k) / h = f(t_k + h/2, (y_k + y_{k+1}) / 2) + O(h²),   h = t_{k+1} − t_k,

so a least-squares fit of ``f_θ`` to these slopes costs one field evaluation per pair and no ODE solve.
It is biased by O(h²) and amplifies the observation noise σ to about σ√2 / h, which is why pairs with
``h`` below ``min_gap`` (noise-dominated) or above ``max_gap`` (bias-dominated) are left out, and why it
is only a start: the trajectory objective with the continuous adjoint then removes the bias. On the
Hénon–Heiles data of the discovery benchmark (gaps ≈ 0.4, σ = 1e-3), 2,000 warm-start steps take
seconds and reach the accuracy of several hundred adjoint steps.

This is gradient matching (collocation) as used to initialise neural ODEs; see e.g. Roesch et al.,
"Collocation based training of neural ordinary differential equations", Stat. Appl. Genet. Mol. Biol.
2021.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

Tensor = torch.Tensor


def secant_pairs(
    ts: Tensor, ys: Tensor, mask: Tensor, *, min_gap: float, max_gap: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Midpoint times, midpoint states and secant slopes of consecutive observed pairs.

    ``ts (B, T)``, ``ys (B, T, D)``, ``mask (B, T)`` as the data layer's batches; returns ``(t_mid (M,),
    y_mid (M, D), slope (M, D))`` for the pairs whose gap lies in ``[min_gap, max_gap]``.
    """
    h = ts[:, 1:] - ts[:, :-1]
    ok = mask[:, 1:] & mask[:, :-1] & torch.isfinite(h) & (h >= min_gap) & (h <= max_gap)
    a, b, gap = ys[:, :-1][ok], ys[:, 1:][ok], h[ok]
    t_mid = ts[:, :-1][ok] + gap / 2
    return t_mid, (a + b) / 2, (b - a) / gap.unsqueeze(-1)


def warm_start(
    model: nn.Module,
    ts: Tensor,
    ys: Tensor,
    mask: Tensor,
    *,
    steps: int,
    batch_size: int = 1024,
    lr: float = 3e-3,
    min_gap: float = 0.1,
    max_gap: float = 1.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit ``model(t, y)`` to the secant slopes of the data with Adam (cosine schedule); in place.

    Returns a summary: number of pairs used, final mean squared slope residual, and ``steps``. Raises
    ``ValueError`` when no pair of observations has a usable gap.
    """
    t_mid, y_mid, slope = secant_pairs(ts, ys, mask, min_gap=min_gap, max_gap=max_gap)
    n = int(t_mid.shape[0])
    if n == 0:
        raise ValueError(
            f"warm start: no consecutive observations with a gap in [{min_gap:g}, {max_gap:g}]; "
            "set warm_start_steps=0 or adjust the gap limits"
        )
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=lr * 0.01)
    loss = torch.tensor(math.nan)
    for _ in range(steps):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen).to(t_mid.device)
        loss = (model(t_mid[idx], y_mid[idx]) - slope[idx]).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        full = (model(t_mid, y_mid) - slope).square().mean()
    return {
        "pairs": n,
        "steps": steps,
        "slope_mse": float(full.detach()),
        "last_batch_mse": float(loss.detach()),
    }
