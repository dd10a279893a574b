"""Figures of a training run (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

Tensor = torch.Tensor


def plot_trajectories(
    ts: Tensor,
    predictions: Mapping[str, Tensor],
    reference: Tensor,
    labels: Sequence[str],
    path: str | Path,
    *,
    title: str = "",
    sample: int = 0,
) -> Path:
    """Each coordinate of one sample against time (reference dashed), plus the error norms (log)."""
    d = reference.shape[-1]
    cols = 2 if d > 2 else d
    rows = -(-d // cols) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 2.3 * rows), squeeze=False, sharex=True)
    t = ts.cpu().numpy()
    ref = reference[sample].cpu().numpy()
    for k in range(d):
        ax = axes[k // cols][k % cols]
        ax.plot(t, ref[:, k], "k--", lw=1.2, label="reference")
        for name, pred in predictions.items():
            ax.plot(t, pred[sample, :, k].cpu().numpy(), lw=1.0, label=name)
        ax.set_ylabel(labels[k])
    axes[0][0].legend(fontsize=8, loc="upper right")
    err_ax = axes[-1][0]
    for name, pred in predictions.items():  # from the second time on: the error at t = 0 is exactly 0
        err = (pred[sample, 1:] - reference[sample, 1:]).norm(dim=-1).clamp_min(1e-17).cpu().numpy()
        err_ax.semilogy(t[1:], err, lw=1.0, label=name)
    err_ax.set_ylabel("‖error‖")
    err_ax.set_xlabel("t")
    err_ax.legend(fontsize=8)
    for ax in axes[-1][1:]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_energy(
    curves: Mapping[str, tuple[Tensor, Tensor]],
    path: str | Path,
    *,
    title: str = "",
    ylabel: str = "|H(x_t) − H(x_0)| / |H(x_0)|",
) -> Path:
    """Relative energy error against time, log scale: max over samples (solid) and median (dotted)."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, (name, (ts, rel)) in enumerate(curves.items()):
        color = f"C{i}"
        t = ts[1:].cpu().numpy()
        ax.semilogy(
            t,
            rel[:, 1:].amax(dim=0).clamp_min(1e-17).cpu().numpy(),
            color=color,
            lw=1.0,
            label=f"{name} (max)",
        )
        ax.semilogy(
            t,
            rel[:, 1:].median(dim=0).values.clamp_min(1e-17).cpu().numpy(),
            ":",
            color=color,
            lw=1.0,
            label=f"{name} (median)",
        )
    ax.set_xlabel("t")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return _save(fig, path)


def plot_hamiltonian(true: Tensor, learned: Tensor, path: str | Path, *, title: str = "") -> Path:
    """Recovered ``H̃`` against the true ``H`` (both shifted to mean zero), with the diagonal."""
    x = (true - true.mean()).cpu().numpy()
    y = (learned - learned.mean()).cpu().numpy()
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    ax.scatter(x, y, s=4, alpha=0.5)
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_xlabel("H − mean (true)")
    ax.set_ylabel("H̃ − mean (recovered)")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_heldout(
    model: torch.nn.Module,
    heldout: Mapping[str, Any],
    labels: Sequence[str],
    path: str | Path,
    *,
    name: str = "model",
    sample: int = 0,
) -> Path:
    """A held-out trajectory (observations as dots, the model's rollout from its first observation as a
    line, per coordinate) and the error of every test trajectory against time since its first
    observation (thin lines; log scale)."""
    test = heldout["test"]
    d = test.dim
    cols = 2 if d > 2 else d
    rows = -(-d // cols) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 2.3 * rows), squeeze=False)
    obs = test.mask[sample]
    t_obs = heldout["elapsed"][sample][obs]
    y_obs = test.ys[sample][obs]
    p = next(model.parameters())
    dense = torch.linspace(0.0, float(t_obs.max()), 400, dtype=torch.float64)
    with torch.no_grad():
        curve = model.rollout(y_obs[:1].to(p), dense.to(p)).double().cpu()[0]
    for k in range(d):
        ax = axes[k // cols][k % cols]
        ax.plot(t_obs.numpy(), y_obs[:, k].numpy(), "k.", ms=4, label="observed (held out)")
        ax.plot(dense.numpy(), curve[:, k].numpy(), lw=1.0, label=f"{name} from the first observation")
        ax.set_ylabel(labels[k])
    axes[0][0].legend(fontsize=7, loc="upper right")
    err_ax = axes[-1][0]
    used, err, elapsed = heldout["used"], heldout["error"], heldout["elapsed"]
    for b in range(test.n):
        if used[b].any():
            err_ax.semilogy(
                elapsed[b][used[b]].numpy(), err[b][used[b]].clamp_min(1e-17).numpy(), lw=0.6, alpha=0.5
            )
    err_ax.set_xlabel("t − t₀ (since the first observation)")
    err_ax.set_ylabel("‖prediction − observation‖")
    err_ax.set_title(f"{test.n} held-out trajectories", fontsize=9)
    for ax in axes[-1][1:]:
        ax.axis("off")
    fig.suptitle(
        f"{name}: held-out trajectory {int(test.rows[sample])} and the error of every test trajectory"
    )
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
