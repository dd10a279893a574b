"""Figures of the diagnostics (matplotlib, Agg; PNG and optionally PDF).

Figures are built on :class:`matplotlib.figure.Figure` directly — no pyplot, no global backend state —
so they work headless and in threads. Every function writes ``<path>.png`` (and ``<path>.pdf`` when
``pdf=True``; ``path`` is given without suffix) and returns a :class:`FigureFile` for the report.

* :func:`plot_section` — Poincaré section scatter coloured by orbit (side by side with a reference);
* :func:`plot_energy_error` — energy error against time on a log axis (median, max, some samples);
* :func:`plot_structure` — histograms of symplecticity defect, volume and reversibility errors;
* :func:`plot_trajectories` — two sets of trajectories compared component by component.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from symflow.integrators import InvalidArgumentError

from .energy import EnergyReport
from .poincare import PoincareSection
from .symplectic import StructureReport

Tensor = torch.Tensor


@dataclass(frozen=True)
class FigureFile:
    """A written figure: its name, PNG path, optional PDF path and a one-line caption."""

    name: str
    png: Path
    pdf: Path | None
    caption: str


def _save(fig: Figure, path: str | Path, pdf: bool, name: str, caption: str) -> FigureFile:
    base = Path(path)
    if base.suffix.lower() in (".png", ".pdf"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    png = base.with_suffix(".png")
    fig.savefig(png, dpi=120)
    out_pdf = None
    if pdf:
        out_pdf = base.with_suffix(".pdf")
        fig.savefig(out_pdf)
    return FigureFile(name, png, out_pdf, caption)


def _np(x: Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float64).numpy()


def _positive(x: np.ndarray) -> np.ndarray:
    """Values for a log axis: exact zeros (e.g. the error at t = 0) become gaps, not fake tiny values."""
    return np.where(x > 0, x, np.nan)


def plot_section(
    section: PoincareSection,
    path: str | Path,
    *,
    reference: PoincareSection | None = None,
    names: tuple[str, str] = ("reference", "model"),
    title: str | None = None,
    pdf: bool = False,
    point_size: float | None = None,
) -> FigureFile:
    """Scatter of the section in its plotted plane, each orbit in its own colour (colour bar: orbit).

    With ``reference`` the two sections are drawn side by side on shared axes (``names`` label them,
    reference first), coloured alike so orbit ``i`` can be compared with orbit ``i``.
    """
    if not isinstance(section, PoincareSection):
        raise InvalidArgumentError("section", section, "a PoincareSection")
    panels = [(names[1] if reference is not None else section.source, section)]
    if reference is not None:
        if reference.n_orbits != section.n_orbits:
            raise InvalidArgumentError("reference", reference.n_orbits, f"{section.n_orbits} orbits")
        panels.insert(0, (names[0], reference))
    fig = Figure(figsize=(5.6 * len(panels) + 0.8, 5.2), layout="constrained")
    axes = fig.subplots(1, len(panels), sharex=True, sharey=True, squeeze=False)[0]
    n = max(section.n_orbits, 1)
    cmap = "turbo"
    scatter = None
    for k, (ax, (label, sec)) in enumerate(zip(axes, panels)):
        pts = _np(sec.points)
        size = point_size if point_size is not None else max(0.3, min(6.0, 3000.0 / max(len(pts), 1)))
        scatter = ax.scatter(
            pts[:, 0],
            pts[:, 1],
            c=_np(sec.orbit.to(torch.float64)),
            cmap=cmap,
            vmin=0,
            vmax=n - 1 if n > 1 else 1,
            s=size,
            linewidths=0,
            rasterized=len(pts) > 20000,
        )
        ax.set_xlabel(sec.labels[0])
        if k == 0:  # shared y axis: label it once
            ax.set_ylabel(sec.labels[1])
        ax.set_title(f"{label}\n{len(sec)} crossings", fontsize=10)
        ax.grid(True, alpha=0.25)
    if scatter is not None:
        bar = fig.colorbar(scatter, ax=list(axes), shrink=0.9)
        bar.set_label("orbit index")
    fig.suptitle(
        title
        or f"Poincaré section {section.description}: {section.n_orbits} orbits to t = {section.t_end:g}",
        fontsize=11,
    )
    return _save(
        fig,
        path,
        pdf,
        "poincare_section",
        f"Poincaré section ({section.description}) of {section.n_orbits} orbits in "
        f"({section.labels[0]}, {section.labels[1]}), coloured by orbit",
    )


def plot_energy_error(
    reports: EnergyReport | Mapping[str, EnergyReport],
    path: str | Path,
    *,
    max_samples: int = 12,
    logx: bool = False,
    title: str | None = None,
    pdf: bool = False,
) -> FigureFile:
    """Energy error against time on a logarithmic error axis.

    For each Hamiltonian (``"true"``, ``"learned"``, ...): thin lines for up to ``max_samples``
    samples, the median over samples (bold) and the maximum over samples (dashed).
    """
    if isinstance(reports, EnergyReport):
        reports = {reports.name: reports}
    if not reports:
        raise InvalidArgumentError("reports", reports, "one or more EnergyReport")
    fig = Figure(figsize=(8.0, 4.8), layout="constrained")
    ax = fig.subplots()
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    kinds = set()
    for i, (name, rep) in enumerate(reports.items()):
        colour = colours[i % len(colours)]
        t = _np(rep.t)
        err = _positive(_np(rep.error))
        kinds.add("relative" if bool(rep.relative.all()) else "absolute/relative")
        for k in range(min(max_samples, t.shape[0])):
            ax.plot(t[k], err[k], color=colour, lw=0.5, alpha=0.35)
        grid, med, top = _envelopes(t, err)
        ax.plot(grid, med, color=colour, lw=2.0, label=f"H {name}: median over {t.shape[0]} samples")
        ax.plot(grid, top, color=colour, lw=1.2, ls="--", label=f"H {name}: max over samples")
    ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel("time t")
    label = "relative" if kinds == {"relative"} else "relative (absolute where |H₀| ≈ 0)"
    ax.set_ylabel(f"{label} energy error |H(t) − H(0)|/|H(0)|")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title or "Energy error along trajectories", fontsize=11)
    names = ", ".join(reports)
    return _save(fig, path, pdf, "energy_error", f"energy error against time (log scale), H: {names}")


def _envelopes(t: np.ndarray, err: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and max over samples; per-sample grids are binned onto a common time grid."""
    valid = np.isfinite(t) & np.isfinite(err)
    shared = np.all(np.isfinite(t)) and np.allclose(t, t[:1], equal_nan=False)
    if shared:
        e = np.where(valid, err, np.nan)
        with warnings.catch_warnings():  # columns with no positive error (t = 0) are gaps: expected
            warnings.simplefilter("ignore", RuntimeWarning)
            return t[0], np.nanmedian(e, axis=0), np.nanmax(e, axis=0)
    lo, hi = np.nanmin(t), np.nanmax(t)
    bins = np.linspace(lo, hi, 101)
    idx = np.clip(np.digitize(t, bins) - 1, 0, 99)
    med, top = np.full(100, np.nan), np.full(100, np.nan)
    for b in range(100):
        sel = valid & (idx == b)
        if sel.any():
            med[b], top[b] = np.median(err[sel]), np.max(err[sel])
    return 0.5 * (bins[:-1] + bins[1:]), med, top


def plot_structure(
    report: StructureReport, path: str | Path, *, title: str | None = None, pdf: bool = False
) -> FigureFile:
    """Histograms (log-spaced bins) of the symplecticity defect, volume error and reversibility error,
    one colour per duration ``t`` of the map."""
    if not isinstance(report, StructureReport):
        raise InvalidArgumentError("report", report, "a StructureReport")
    quantities = [
        ("symplecticity defect ‖MᵀJM − J‖_F / ‖J‖_F", report.defect),
        ("volume error |det M − 1|", report.volume_error),
    ]
    if report.reversibility is not None:
        quantities.append(("reversibility ‖Φ₋ₜ∘Φₜ(y) − y‖ / ‖y‖", report.reversibility))
    fig = Figure(figsize=(4.6 * len(quantities), 4.2), layout="constrained")
    axes = fig.subplots(1, len(quantities), squeeze=False)[0]
    for ax, (label, values) in zip(axes, quantities):
        v = _np(values)
        positive = v[np.isfinite(v) & (v > 0)]
        lo = math.floor(math.log10(positive.min())) if positive.size else -17
        hi = math.ceil(math.log10(positive.max())) if positive.size else -15
        bins = np.logspace(lo, max(hi, lo + 1), 4 * max(hi - lo, 1) + 1)
        for k, t in enumerate(report.times.tolist()):
            row = v[k][np.isfinite(v[k])]
            zeros = int((row == 0).sum())
            note = f" ({zeros} exactly 0, not drawn)" if zeros else ""
            ax.hist(row[row > 0], bins=bins, alpha=0.6, label=f"t = {t:g}{note}", histtype="stepfilled")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("number of states")
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=8)
    fig.suptitle(title or f"Structure of {report.source} over {report.defect.shape[1]} states", fontsize=11)
    return _save(
        fig,
        path,
        pdf,
        "structure_histogram",
        f"histograms of symplecticity defect, volume and reversibility errors of {report.source}",
    )


def plot_trajectories(
    t: Tensor,
    trajectories: Mapping[str, Tensor],
    path: str | Path,
    *,
    labels: Sequence[str] | None = None,
    samples: Sequence[int] = (0,),
    title: str | None = None,
    pdf: bool = False,
) -> FigureFile:
    """Compare two (or more) sets of trajectories ``(N, T, D)`` on the times ``t`` (``(T,)`` or ``(N, T)``).

    One panel per state component (solid: the first set, dashed: the others) for the chosen
    ``samples``, and a last panel with the distance of each other set to the first (log scale).
    """
    if not isinstance(trajectories, Mapping) or len(trajectories) < 2:
        raise InvalidArgumentError(
            "trajectories", trajectories, "a mapping of two or more names -> (N, T, D)"
        )
    names = list(trajectories)
    first = trajectories[names[0]]
    n, steps, d = first.shape
    for name in names[1:]:
        if tuple(trajectories[name].shape) != (n, steps, d):
            raise InvalidArgumentError(
                f"trajectories[{name!r}]", trajectories[name], f"shape {(n, steps, d)}"
            )
    labels = list(labels) if labels is not None else [f"y{i}" for i in range(d)]
    tt = _np(t if t.dim() == 2 else t.expand(n, steps))
    samples = [s for s in samples if 0 <= s < n] or [0]
    cols = min(3, d + 1)
    rows = math.ceil((d + 1) / cols)
    fig = Figure(figsize=(4.4 * cols, 3.0 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    styles = ["-", "--", ":", "-."]
    colours = [f"C{i}" for i in range(10)]
    for c in range(d):
        ax = axes[c]
        for si, s in enumerate(samples):
            for ni, name in enumerate(names):
                ax.plot(
                    tt[s],
                    _np(trajectories[name][s, :, c]),
                    color=colours[si % 10],
                    ls=styles[ni % len(styles)],
                    lw=1.0,
                    label=f"{name}, sample {s}" if c == 0 else None,
                )
        ax.set_xlabel("time t")
        ax.set_ylabel(labels[c])
        ax.grid(True, alpha=0.25)
    ax = axes[d]
    for name in names[1:]:
        diff = (trajectories[name] - first).norm(dim=-1)
        for si, s in enumerate(samples):
            ax.plot(
                tt[s],
                _positive(_np(diff[s])),
                color=colours[si % 10],
                ls=styles[names.index(name) % len(styles)],
                label=f"sample {s}" if len(names) == 2 else f"{name}, sample {s}",
            )
    ax.set_title(f"distance to {names[0]}", fontsize=9)
    ax.set_yscale("log")
    ax.set_xlabel("time t")
    ax.set_ylabel("state distance")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    if len(axes) > d + 1:  # a spare panel holds the legend of the component panels
        handles, names_ = axes[0].get_legend_handles_labels()
        axes[d + 1].legend(handles, names_, loc="center", fontsize=8, frameon=False)
        axes[d + 1].set_axis_off()
    else:
        axes[0].legend(fontsize=7)
    for extra in axes[d + 2 :]:
        extra.set_visible(False)
    fig.suptitle(title or f"Trajectories: {' vs '.join(names)}", fontsize=11)
    return _save(
        fig, path, pdf, "trajectories", f"trajectory comparison ({' vs '.join(names)}), samples {samples}"
    )
