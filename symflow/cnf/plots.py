"""Pictures of learned densities: heatmaps of ``p(x)`` and histograms of samples (PNG, Agg).

Figures are built with ``matplotlib.figure.Figure`` (Agg canvas), never through ``pyplot``, so
nothing depends on a display or changes the global backend.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .model import CNF, eval_mode

Tensor = torch.Tensor


@torch.no_grad()
def log_density_grid(
    log_prob: Callable[[Tensor], Tensor],
    bounds: tuple[float, float],
    *,
    resolution: int = 100,
    dims: tuple[int, int] = (0, 1),
    batch_size: int = 2500,
    dtype: torch.dtype = torch.float64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``log p`` on a ``resolution × resolution`` grid over the square ``bounds`` (2-D densities).

    Returns ``(xs, ys, logp)`` with ``logp[i, j]`` at ``(xs[j], ys[i])``.
    """
    lo, hi = bounds
    axis = torch.linspace(lo, hi, resolution, dtype=dtype)
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)
    values = torch.cat([log_prob(chunk) for chunk in pts.split(batch_size)])
    return axis.numpy(), axis.numpy(), values.reshape(resolution, resolution).double().cpu().numpy()


def plot_density_panels(
    path: str | Path,
    *,
    data: Tensor,
    samples: Tensor,
    bounds: tuple[float, float],
    model_log_prob: Callable[[Tensor], Tensor] | None = None,
    exact_log_prob: Callable[[Tensor], Tensor] | None = None,
    title: str = "",
    resolution: int = 100,
    model_dtype: torch.dtype = torch.float32,
) -> Path:
    """One PNG: data histogram, model-sample histogram, model density (and the exact density).

    For ``D > 2`` the histograms show the first two coordinates and no density panels are drawn.
    """
    from matplotlib.figure import Figure

    dim = data.shape[-1]
    panels: list[tuple[str, str, object]] = [("data", "hist", data), ("model samples", "hist", samples)]
    if dim == 2 and model_log_prob is not None:
        panels.append(("model density p(x)", "grid", (model_log_prob, model_dtype)))
    if dim == 2 and exact_log_prob is not None:
        panels.append(("exact density", "grid", (exact_log_prob, torch.float64)))
    fig = Figure(figsize=(3.6 * len(panels), 3.8), dpi=110)
    lo, hi = bounds
    edges = np.linspace(lo, hi, 121)
    for k, (name, kind, payload) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        if kind == "hist":
            pts = payload.detach().double().cpu().numpy()  # type: ignore[union-attr]
            ax.hist2d(pts[:, 0], pts[:, 1], bins=[edges, edges], cmap="magma")
            where = f", first 2 of {dim} coordinates" if dim > 2 else ""
            ax.set_title(f"{name} (n={len(pts)}{where})", fontsize=9)
        else:
            fn, dtype = payload  # type: ignore[misc]
            xs, ys, logp = log_density_grid(fn, bounds, resolution=resolution, dtype=dtype)
            ax.pcolormesh(xs, ys, np.exp(logp), cmap="magma", shading="auto")
            ax.set_title(name, fontsize=9)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_xlabel("x₀" if dim > 2 else "x")
        ax.set_ylabel("x₁" if dim > 2 else "y")
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def plot_cnf(
    path: str | Path,
    cnf: CNF,
    data: Tensor,
    *,
    bounds: tuple[float, float],
    exact_log_prob: Callable[[Tensor], Tensor] | None = None,
    samples: int = 5000,
    seed: int = 0,
    title: str = "",
    resolution: int = 80,
) -> Path:
    """Draw ``samples`` from ``cnf`` and plot them next to ``data`` and the model/exact densities."""
    gen = torch.Generator(device=cnf.loc.device).manual_seed(seed)
    with torch.no_grad(), eval_mode(cnf):
        x = cnf.sample(samples, generator=gen)
    dtype = cnf.loc.dtype

    def model_lp(pts: Tensor) -> Tensor:
        # Exact trace: a Hutchinson estimate would speckle the picture with probe noise.
        with eval_mode(cnf):  # per-sample steps: the picture does not depend on the grid's chunks
            return cnf.log_prob(pts.to(dtype=dtype, device=cnf.loc.device), trace="exact", adjoint=False)

    return plot_density_panels(
        path,
        data=data,
        samples=x,
        bounds=bounds,
        model_log_prob=model_lp,
        exact_log_prob=exact_log_prob,
        title=title,
        resolution=resolution,
        model_dtype=dtype,
    )
