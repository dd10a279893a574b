"""The demo's ``report.json`` (keys documented and checked in :data:`DEMO_KEYS`) and ``REPORT.md``.

``REPORT.md`` embeds the side-by-side figures, states the measured figures in tables, and repeats the
CLI command of each stage. Both files are written atomically.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from symflow.diagnostics import FigureFile, ReportError
from symflow.diagnostics.report import jsonable
from symflow.training.checkpoint import atomic_write_text

from .settings import DemoSettings, hnn_plan

SCHEMA = "symflow.demo_report"
SCHEMA_VERSION = 1

#: Top-level keys of ``report.json`` and what they hold.
DEMO_KEYS: dict[str, str] = {
    "schema": "'symflow.demo_report'",
    "schema_version": "1",
    "symflow_version": "version that wrote it",
    "torch_version": "torch version",
    "created": "UTC time stamp",
    "device": "device of simulation and HNN training",
    "threads": "torch intra-op threads",
    "settings": "every DemoSettings field",
    "data": "the simulated file: path, trajectories, observations, dim, failed, seconds",
    "hnn": "HNN training: steps, losses, held-out evaluation to T = 10, run directory",
    "sympflow": "SympFlow trained from the same file: fit, held-out errors, energy drift, learned H̃, run",
    "heldout": "both models on the trajectories neither trained on: median RMS error to T = 10",
    "diagnostics": "per map (reference, hnn, sympflow): energy, defect and section figures, report path",
    "figures": "the side-by-side figures: name, png, caption",
    "commands": "the CLI command that runs each stage alone",
    "timings_s": "wall seconds per stage and in total",
}


def _f(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _map_summary(d: Any, out: Path) -> dict[str, Any]:
    """The figures of one map's diagnostics that the demo report tabulates."""
    r = d.report
    energy = r["energy"]["true"]
    per_time = r["structure"]["per_time"]
    section = r["poincare"] or {}
    distance = section.get("distance") or {}
    return {
        "source": r["settings"]["source"],
        "energy_max_error": energy["max_error"],
        "energy_median_max_error": energy["median_max_error"],
        "energy_median_drift_exponent": energy["median_drift_exponent"],
        "energy_drifting_orbits": energy["drifting_samples"],
        "learned_energy_max_error": (r["energy"].get("learned") or {}).get("max_error"),
        "max_defect": r["structure"]["max_defect"],
        "defect_times": [row["t"] for row in per_time],
        "median_defect": [row["median_defect"] for row in per_time],
        "crossings": section.get("n_crossings"),
        "section_distance_median": distance.get("median"),
        "section_distance_max": distance.get("max"),
        "report": os.path.relpath(d.paths[1], out),
    }


def _sympflow_summary(s: dict[str, Any], out: Path) -> dict[str, Any]:
    """The SympFlow run's figures the demo reports (trained from the data file)."""
    recovery = s.get("hamiltonian_recovery") or {}
    held = s.get("heldout") or {}
    return {
        "run": os.path.relpath(out / "runs" / "sympflow", out),
        "parameters": s.get("parameters"),
        "steps": s.get("steps"),
        "train_seconds": _f(s.get("train_seconds")),
        "train_cpu_seconds": _f(s.get("train_cpu_seconds")),
        "trajectories": s.get("trajectories"),
        "pairs": s.get("pairs"),
        "train_mse": _f(s.get("train_mse")),
        "val_mse": _f(s.get("val_mse")),
        "heldout_error_rms_median": _f(held.get("error_rms_median")),
        "heldout_horizon": _f(held.get("horizon")),
        "error_at": s.get("error_at"),
        "energy_horizon": _f(s.get("energy_error_horizon")),
        "energy_error_max": _f(s.get("energy_error_max")),
        "energy_drift_exponent_median": _f(s.get("energy_error_drift_exponent_median")),
        "energy_drift_exponent_max": _f(s.get("energy_error_drift_exponent_max")),
        "energy_drifting_samples": s.get("energy_error_drifting_samples"),
        "energy_samples": s.get("energy_error_samples"),
        "hamiltonian_slope": _f(recovery.get("slope")),
        "hamiltonian_relative_rms": _f(recovery.get("relative_rms")),
        "hamiltonian_unit_slope_relative_rms": _f(recovery.get("unit_slope_relative_rms")),
        "symplecticity_defect_max": _f(s.get("symplecticity_defect_max")),
    }


def build_demo_report(
    *,
    settings: DemoSettings,
    device: str,
    data: Any,
    hnn: dict[str, Any],
    sympflow: dict[str, Any],
    heldout: dict[str, Any],
    diagnostics: dict[str, Any],
    figures: list[FigureFile],
    timings: dict[str, float],
    commands: dict[str, str],
    out: Path,
) -> dict[str, Any]:
    from symflow import __version__

    ev = hnn.get("evaluation") or {}
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "symflow_version": __version__,
        "torch_version": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "threads": torch.get_num_threads(),
        "settings": settings.to_dict(),
        "data": {
            "path": os.path.relpath(data.path, out),
            "trajectories": data.n,
            "observations_per_trajectory": data.n_times,
            "dim": data.dim,
            "failed": data.n_failed,
            "seconds": data.seconds,
        },
        "hnn": {
            "run": os.path.relpath(out / "runs" / "hnn", out),
            "steps": hnn.get("steps"),
            "train_loss": _f(hnn.get("train_loss")),
            "val_loss": _f(hnn.get("val_loss")),
            "eval_t_end": ev.get("t_end"),
            "eval_samples": ev.get("samples"),
            "trajectory_rel_error_median": _f(ev.get("trajectory_rel_error_median")),
            "trajectory_rel_error_max": _f(ev.get("trajectory_rel_error_max")),
            "energy_rel_error_median": _f(ev.get("energy_rel_error_median")),
            "energy_rel_error_max": _f(ev.get("energy_rel_error_max")),
            "hamiltonian_rel_rms": _f(ev.get("hamiltonian_rel_rms")),
        },
        "sympflow": _sympflow_summary(sympflow, out),
        "heldout": {
            "trajectories": len(heldout["trajectories"]),
            "rows": list(heldout["trajectories"]),
            "t_max": heldout["t_max"],
            "sympflow": {k: _f(v) for k, v in heldout["sympflow"].items()},
            "hnn": {k: (v if k == "integrator" else _f(v)) for k, v in heldout["hnn"].items()},
        },
        "diagnostics": {name: _map_summary(d, out) for name, d in diagnostics.items()},
        "figures": [
            {"name": f.name, "png": os.path.relpath(f.png, out), "caption": f.caption} for f in figures
        ],
        "commands": dict(commands),
        "timings_s": dict(timings),
    }


def validate_demo_report(report: Any) -> None:
    """Raise :class:`~symflow.diagnostics.ReportError` unless ``report`` has exactly :data:`DEMO_KEYS`."""
    if not isinstance(report, dict):
        raise ReportError(f"a demo report is a JSON object, got {type(report).__name__}")
    missing = [k for k in DEMO_KEYS if k not in report]
    unknown = [k for k in report if k not in DEMO_KEYS]
    if missing or unknown:
        raise ReportError(f"invalid demo report: missing {missing}, unknown {unknown}")
    if report["schema"] != SCHEMA or report["schema_version"] != SCHEMA_VERSION:
        raise ReportError(
            f"not a version-{SCHEMA_VERSION} {SCHEMA}: {report['schema']!r} {report['schema_version']!r}"
        )
    for name in ("reference", "hnn", "sympflow"):
        if name not in report["diagnostics"]:
            raise ReportError(f"invalid demo report: no diagnostics of {name!r}")


def _g(x: Any, digits: int = 3) -> str:
    v = _f(x)
    return "n/a" if v is None else f"{v:.{digits}g}"


def _pct(x: Any) -> str:
    v = _f(x)
    return "n/a" if v is None else f"{100 * v:.3g}%"


def render_demo_markdown(r: dict[str, Any]) -> str:
    s, h, sf, d, t = r["settings"], r["hnn"], r["sympflow"], r["diagnostics"], r["timings_s"]
    lines = [
        "# symflow demo report",
        "",
        f"Written {r['created']} by symflow {r['symflow_version']} (torch {r['torch_version']}, "
        f"device {r['device']}, {r['threads']} threads) in **{t['total']:.0f} s** "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in t.items() if k != 'total')}).",
        "",
        "## Data",
        "",
        f"{r['data']['trajectories']} Hénon–Heiles trajectories (energies 0.02–0.12), each observed at "
        f"{s['observations']} uniformly random times in [0, {s['t_end']:g}] "
        f"with Gaussian noise σ = {s['noise']:g}: "
        f"`{r['data']['path']}` ({r['data']['failed']} failed solves).",
        "",
        "## Training",
        "",
        "| model | trained on | steps | fit | held-out test |",
        "| --- | --- | --- | --- | --- |",
        f"| HNN (J∇H_θ, {s['hnn_width']}×{s['hnn_depth']} tanh): {hnn_plan(s)} | the noisy file | "
        f"{h['steps']} | train loss {_g(h['train_loss'])}, val loss {_g(h['val_loss'])} | "
        f"{h['eval_samples']} new orbits to T = {_g(h['eval_t_end'])}: trajectory error median "
        f"{_pct(h['trajectory_rel_error_median'])} (max {_pct(h['trajectory_rel_error_max'])}), "
        f"energy error median {_pct(h['energy_rel_error_median'])}; learned H vs true H: "
        f"{_pct(h['hamiltonian_rel_rms'])} rms |",
        f"| SympFlow ({sf['parameters']} weights, Δt = 1), supervised on {sf['pairs']} observed pairs "
        f"≤ Δt apart | the same file | {sf['steps']} | train MSE {_g(sf['train_mse'])}, val MSE "
        f"{_g(sf['val_mse'])} | held-out error (RMS) median {_g(sf['heldout_error_rms_median'])} to "
        f"T = {_g(sf['heldout_horizon'])}; energy error to T = {_g(sf['energy_horizon'], 6)}: max "
        f"{_pct(sf['energy_error_max'])}, drift exponent median {_g(sf['energy_drift_exponent_median'], 2)} "
        f"(max {_g(sf['energy_drift_exponent_max'], 2)}; {sf['energy_drifting_samples']} of "
        f"{sf['energy_samples']} held-out states above ½); "
        f"learned H̃ vs true H: slope {_g(sf['hamiltonian_slope'], 4)}, "
        f"{_pct(sf['hamiltonian_relative_rms'])} rms |",
        "",
        f"**Held out by both** ({r['heldout']['trajectories']} trajectories of the file neither model "
        f"trained on, each predicted from its first observation at its own observation times to "
        f"T = {r['heldout']['t_max']:g}; RMS error against the noisy observations, median over "
        f"trajectories): SympFlow **{_g(r['heldout']['sympflow'].get('error_rms_median'))}**, HNN "
        f"**{_g(r['heldout']['hnn'].get('error_rms_median'))}** ({r['heldout']['hnn'].get('integrator')}).",
        "",
        "## Diagnostics",
        "",
        f"{s['orbits']} orbits at E = {s['energy']:.4g} (not in the training data) followed to t = "
        f"{s['orbit_t_end']:g} by each map. Energy errors use the true H; the section distance is the "
        "median over orbits of the chamfer distance to the reference's section.",
        "",
        "| map | max energy error | drift exponent (0 = bounded) | symplecticity defect ‖MᵀJM − J‖ "
        "| crossings | section distance |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, label in (("reference", "reference"), ("hnn", "HNN"), ("sympflow", "SympFlow")):
        m = d[name]
        defect = ", ".join(f"{_g(v, 2)} (t = {tt:g})" for tt, v in zip(m["defect_times"], m["median_defect"]))
        lines.append(
            f"| {label}: {m['source']} | {_pct(m['energy_max_error'])} | "
            f"{_g(m['energy_median_drift_exponent'], 2)} | {defect} | {m['crossings']} | "
            f"{_g(m['section_distance_median']) if name != 'reference' else '—'} |"
        )
    lines += ["", "## Figures", ""]
    for fig in r["figures"]:
        lines += [f"![{fig['name']}]({fig['png']})", "", f"*{fig['caption']}*", ""]
    lines += [
        "Each map's own report (energy, structure histogram, trajectory comparison, section) is in "
        + ", ".join(f"[`{m['report']}`]({m['report']})" for m in d.values())
        + ".",
        "",
        "## Run a stage alone",
        "",
        "```bash",
        *r["commands"].values(),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_demo_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Validate, then write ``report.json`` and ``REPORT.md`` into ``out``."""
    report = jsonable(report)  # non-finite floats → null, tensors and paths → plain values
    validate_demo_report(report)
    json_path, md_path = out / "report.json", out / "REPORT.md"
    atomic_write_text(json_path, json.dumps(report, indent=2, allow_nan=False) + "\n")
    atomic_write_text(md_path, render_demo_markdown(report))
    return json_path, md_path
