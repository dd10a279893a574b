"""The demo's side-by-side figures (matplotlib, Agg): sections, energy error, prediction error.

Each diagnostics run already wrote its own figures under ``diagnostics/<name>/``; these put the three
maps — the Gauss–Legendre reference, the HNN and SympFlow — on common axes.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import torch

from symflow.diagnostics import FigureFile

TITLES = {
    "reference": "reference (Gauss–Legendre, true H)",
    "hnn": "HNN (learned from data)",
    "sympflow": "SympFlow (learned from data)",
}
COLOURS = {"reference": "black", "hnn": "tab:blue", "sympflow": "tab:orange"}


def write_figures(out: Path, diag: dict[str, Any], heldout: dict[str, Any] | None = None) -> list[FigureFile]:
    """Write the comparison figures into ``out``; ``diag`` maps name → Diagnostics, ``heldout`` is
    :func:`~symflow.demo.heldout.compare_heldout`'s result (the held-out figure is skipped without it)."""
    figures = [_sections(out, diag), _energy(out, diag), _prediction(out, diag)]
    if heldout is not None:
        figures.append(_heldout(out, heldout))
    return figures


def _save(fig: Any, path: Path, caption: str, name: str) -> FigureFile:
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return FigureFile(name=name, png=path, pdf=None, caption=caption)


def _sections(out: Path, diag: dict[str, Any]) -> FigureFile:
    names = [n for n in ("reference", "hnn", "sympflow") if diag[n].section is not None]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4.2), sharex=True, sharey=True)
    axes = np.atleast_1d(axes)
    cmap = plt.get_cmap("viridis")
    for ax, name in zip(axes, names):
        sec = diag[name].section
        pts = sec.points.detach().cpu().numpy()
        colour = cmap(sec.orbit.cpu().numpy() / max(sec.n_orbits - 1, 1))
        ax.scatter(pts[:, 0], pts[:, 1], s=1.5, c=colour, linewidths=0)
        distance = diag[name].report["poincare"].get("distance") if name != "reference" else None
        median = (distance or {}).get("median")
        subtitle = f"\nchamfer distance to reference: median {median:.2g}" if median is not None else ""
        ax.set_title(f"{TITLES[name]}{subtitle}", fontsize=9)
        ax.set_xlabel(sec.labels[0])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(diag[names[0]].section.labels[1])
    sec = diag[names[0]].section
    fig.suptitle(
        f"Poincaré sections ({sec.description}) of the same {sec.n_orbits} orbits to t = {sec.t_end:g}",
        y=1.06,  # above the two-line panel titles
    )
    caption = (
        "Poincaré sections of the same orbits followed by the reference, the HNN and SympFlow "
        "(colour = orbit)."
    )
    return _save(fig, out / "poincare_side_by_side.png", caption, "poincare_side_by_side")


def _plot_envelope(ax: Any, name: str, t: torch.Tensor, err: torch.Tensor) -> None:
    """Max (solid) and median (dotted) over orbits of ``err (N, T)`` on the shared grid ``t (N, T)``."""
    t0 = t[0].detach().cpu().numpy()
    e = err.detach().cpu().numpy()
    with np.errstate(all="ignore"):
        med, mx = np.nanmedian(e, axis=0), np.nanmax(e, axis=0)
    keep = t0 > 0  # log axes: the errors vanish at t = 0
    ax.semilogy(t0[keep], np.maximum(mx[keep], 1e-17), color=COLOURS[name], label=f"{TITLES[name]}: max")
    ax.semilogy(t0[keep], np.maximum(med[keep], 1e-17), color=COLOURS[name], ls=":", label="median")


def _energy(out: Path, diag: dict[str, Any]) -> FigureFile:
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for name in ("reference", "hnn", "sympflow"):
        rep = diag[name].energy["true"]
        _plot_envelope(ax, name, rep.t, rep.error)
    ax.set_xlabel("t")
    ax.set_ylabel("relative error of the true energy")
    ax.set_title("Energy error along the orbits (no secular growth = bounded error)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=3, loc="lower right")
    caption = "Relative error of the true H along the orbits: max (solid) and median (dotted) over orbits."
    return _save(fig, out / "energy_error.png", caption, "energy_error")


def _prediction(out: Path, diag: dict[str, Any]) -> FigureFile:
    ref = diag["reference"].trajectories
    scale = ref.y.norm(dim=-1).nan_to_num(0.0).amax(dim=-1, keepdim=True)  # (N, 1)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for name in ("hnn", "sympflow"):
        traj = diag[name].trajectories
        _plot_envelope(ax, name, ref.t, (traj.y - ref.y).norm(dim=-1) / scale)
    ax.set_xlabel("t")
    ax.set_ylabel("‖y(t) − y_ref(t)‖ / max‖y_ref‖")
    ax.set_title("Prediction error against the Gauss–Legendre reference")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    caption = (
        "State error of the HNN and SympFlow orbits relative to the reference: max (solid), median (dotted)."
    )
    return _save(fig, out / "prediction_error.png", caption, "prediction_error")


def _heldout(out: Path, heldout: dict[str, Any]) -> FigureFile:
    """Per-observation errors of both models on the trajectories neither trained on, against time."""
    curves = heldout["curves"]
    used = curves["used"]
    t = curves["elapsed"][used].cpu().numpy()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    edges = np.linspace(0.0, heldout["t_max"], 11)
    for name in ("hnn", "sympflow"):
        err = curves[name][used].cpu().numpy()
        ax.semilogy(t, np.maximum(err, 1e-17), ".", ms=2.5, alpha=0.35, color=COLOURS[name])
        mid = 0.5 * (edges[1:] + edges[:-1])
        med = [np.median(err[(t > a) & (t <= b)]) if ((t > a) & (t <= b)).any() else np.nan
               for a, b in itertools.pairwise(edges)]  # fmt: skip
        summary = heldout[name].get("error_rms_median")
        ax.semilogy(
            mid, med, "-o", ms=3, color=COLOURS[name], label=f"{TITLES[name]}: median (RMS {summary:.2g})"
        )
    ax.set_xlabel("t − t₀ (since the trajectory's first observation)")
    ax.set_ylabel("‖prediction − observation‖")
    ax.set_title(f"{len(heldout['trajectories'])} trajectories of the file neither model trained on")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    caption = (
        "Held-out trajectories of the training file, predicted from their first observation by the HNN "
        "(integrated) and SympFlow (composed): error at every observation (dots) and its median per time bin."
    )
    return _save(fig, out / "heldout_error.png", caption, "heldout_error")
