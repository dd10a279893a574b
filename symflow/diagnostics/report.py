"""The diagnostics report: ``report.json`` (documented keys, validated) and a short ``REPORT.md``.

``report.json`` keys (``REPORT_KEYS``; nested sections in ``ENERGY_KEYS``, ``STRUCTURE_KEYS``,
``POINCARE_KEYS``, ``FIGURE_KEYS``). Sections that were not computed are ``null``:

=================== ============ ================================================================
key                 type         meaning
=================== ============ ================================================================
``schema``          str          ``"symflow.diagnostics.report"``
``schema_version``  int          ``1``
``symflow_version`` str          version that wrote it
``created``         str          ISO 8601 UTC time
``input``           object       ``kind`` (``file``/``system``/``source``), ``path``, ``system``,
                                 ``system_args``, ``description``; for trajectory files also
                                 ``failed_trajectories_skipped`` (failed solves left out)
``settings``        object       the options the diagnostics ran with (method, tolerances, t_end…)
``energy``          object|null  per Hamiltonian name (``true``, ``learned``): ``ENERGY_KEYS``
``structure``       object|null  ``STRUCTURE_KEYS`` (symplecticity defect, volume, reversibility)
``poincare``        object|null  ``POINCARE_KEYS`` (section summary and optional distance)
``figures``         list         one ``FIGURE_KEYS`` object per figure (paths relative to the report)
``summary``         str          file name of the markdown summary (``REPORT.md``)
=================== ============ ================================================================
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from symflow.integrators import SymflowError
from symflow.training.checkpoint import atomic_write_text

from .plots import FigureFile

SCHEMA = "symflow.diagnostics.report"
SCHEMA_VERSION = 1

_NUM = (int, float, type(None))

REPORT_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "schema": ((str,), "always 'symflow.diagnostics.report'"),
    "schema_version": ((int,), "format version, 1"),
    "symflow_version": ((str,), "version of symflow that wrote the report"),
    "created": ((str,), "ISO 8601 UTC creation time"),
    "input": ((dict,), "what was diagnosed: kind, path, system, system_args, description"),
    "settings": ((dict,), "options the diagnostics ran with"),
    "energy": ((dict, type(None)), "per Hamiltonian name: energy error summary (ENERGY_KEYS)"),
    "structure": ((dict, type(None)), "symplecticity defect / volume / reversibility (STRUCTURE_KEYS)"),
    "poincare": ((dict, type(None)), "Poincaré section summary and distance (POINCARE_KEYS)"),
    "figures": ((list,), "every figure written (FIGURE_KEYS each)"),
    "summary": ((str,), "file name of the markdown summary"),
}
REPORT_OPTIONAL_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "physical_energy": (
        (dict,),
        "damped systems on the doubled phase space: physical energy E(t) - E(0) of the projected states, "
        "its relative error against the reference, next to the doubled H (symflow.diagnostics.dissipative)",
    ),
}
INPUT_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "kind": ((str,), "'file', 'system', 'run' (a training run directory) or 'source'"),
    "path": ((str, type(None)), "input file, if any"),
    "system": ((str, type(None)), "registry name of the system, if known"),
    "system_args": ((dict,), "its parameters"),
    "description": ((str,), "one line describing the input"),
}
# Keys of ``input`` present only for some inputs.
INPUT_OPTIONAL_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "failed_trajectories_skipped": ((int,), "trajectories of a file left out because their solve failed"),
}
ENERGY_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "which Hamiltonian ('true', 'learned')"),
    "n_samples": ((int,), "trajectories measured"),
    "relative_samples": ((int,), "samples with a relative (not absolute) error"),
    "max_error": (_NUM, "largest error over samples and times"),
    "median_max_error": (_NUM, "median over samples of each sample's maximum error"),
    "rms_error": (_NUM, "root-mean-square error over samples and times"),
    "median_drift_exponent": (_NUM, "median drift exponent (0: bounded, 1: linear drift)"),
    "median_drift_rate": (_NUM, "median least-squares slope of the error envelope per unit time"),
    "drifting_samples": ((int,), "samples with drift exponent above drift_threshold"),
    "drift_threshold": ((int, float), "the threshold (0.5)"),
}
#: Keys of an energy entry added after the first release of schema version 1: checked when present, not
#: required, so that earlier reports still load.
ENERGY_OPTIONAL_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "initial_energy_min": (_NUM, "smallest H of the trajectories' first states (the orbits' energy)"),
    "initial_energy_median": (_NUM, "median H of the first states"),
    "initial_energy_max": (_NUM, "largest H of the first states"),
}
STRUCTURE_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "source": ((str,), "the map measured"),
    "n_states": ((int,), "states at which Jacobians were taken"),
    "max_defect": (_NUM, "largest relative symplecticity defect"),
    "max_volume_error": (_NUM, "largest |det M - 1|"),
    "max_reversibility_error": (_NUM, "largest reversibility error (null when not computed)"),
    "per_time": ((list,), "per duration t: max/median defect, volume and reversibility errors"),
}
POINCARE_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "surface": ((str,), "the surface of section, e.g. 'x = 0, p_x > 0'"),
    "labels": ((list,), "names of the two plotted coordinates"),
    "source": ((str,), "the map that produced the section"),
    "n_orbits": ((int,), "orbits followed"),
    "t_end": ((int, float), "time they were followed to"),
    "n_crossings": ((int,), "crossings found"),
    "mean_crossings_per_orbit": ((int, float), "average crossings per orbit"),
    "min_crossings_per_orbit": ((int,), "fewest crossings of any orbit"),
    "failed_orbits": ((int,), "orbits whose propagation failed (kept up to the failure)"),
    "distance": ((dict, type(None)), "section distance to a reference: kind, reference, median, max"),
}
FIGURE_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "figure kind (poincare_section, energy_error, structure_histogram, trajectories)"),
    "png": ((str,), "PNG path relative to the report directory"),
    "pdf": ((str, type(None)), "PDF path, or null"),
    "caption": ((str,), "what the figure shows"),
}


class ReportError(SymflowError, ValueError):
    """A report does not match its documented keys; the message lists every problem."""


def build_report(
    *,
    input: Mapping[str, Any],
    settings: Mapping[str, Any] | None = None,
    energy: Mapping[str, Any] | None = None,
    structure: Any = None,
    poincare: Any = None,
    distance: Mapping[str, Any] | None = None,
    figures: Sequence[FigureFile] = (),
    root: str | Path = ".",
) -> dict[str, Any]:
    """Assemble the report dictionary from diagnostics results.

    ``energy`` maps Hamiltonian names to :class:`~symflow.diagnostics.energy.EnergyReport` (or their
    summaries), ``structure`` is a :class:`~symflow.diagnostics.symplectic.StructureReport`,
    ``poincare`` a :class:`~symflow.diagnostics.poincare.PoincareSection`; figure paths are stored
    relative to ``root`` (the report directory).
    """
    from symflow import __version__

    root = Path(root)
    inp = {"kind": "source", "path": None, "system": None, "system_args": {}, "description": ""}
    inp.update(dict(input))
    section = None
    if poincare is not None:
        section = dict(poincare.summary() if hasattr(poincare, "summary") else poincare)
        section["distance"] = dict(distance) if distance is not None else None
    return jsonable(
        {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "symflow_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "input": inp,
            "settings": dict(settings or {}),
            "energy": None
            if energy is None
            else {k: (v.summary() if hasattr(v, "summary") else dict(v)) for k, v in energy.items()},
            "structure": None
            if structure is None
            else (structure.summary() if hasattr(structure, "summary") else dict(structure)),
            "poincare": section,
            "figures": [
                {
                    "name": f.name,
                    "png": _relative(f.png, root),
                    "pdf": None if f.pdf is None else _relative(f.pdf, root),
                    "caption": f.caption,
                }
                for f in figures
            ],
            "summary": "REPORT.md",
        }
    )


def validate_report(report: Any, *, root: str | Path | None = None) -> None:
    """Check a report against the documented keys; with ``root``, also that every figure file exists.

    Raises :class:`ReportError` listing every problem found (missing, unknown or mistyped keys).
    """
    problems: list[str] = []
    if not isinstance(report, dict):
        raise ReportError(f"report: expected a JSON object, got {type(report).__name__}")
    _check(report, REPORT_KEYS, "report", problems, optional=REPORT_OPTIONAL_KEYS)
    if report.get("schema") not in (None, SCHEMA):
        problems.append(f"report.schema: expected {SCHEMA!r}, got {report.get('schema')!r}")
    if isinstance(report.get("schema_version"), int) and report["schema_version"] != SCHEMA_VERSION:
        problems.append(f"report.schema_version: expected {SCHEMA_VERSION}, got {report['schema_version']}")
    if isinstance(report.get("input"), dict):
        _check(report["input"], INPUT_KEYS, "report.input", problems, optional=INPUT_OPTIONAL_KEYS)
    if isinstance(report.get("energy"), dict):
        if not report["energy"]:
            problems.append("report.energy: expected at least one Hamiltonian or null")
        for name, entry in report["energy"].items():
            if not isinstance(entry, dict):
                problems.append(f"report.energy.{name}: expected an object")
            else:
                _check(entry, ENERGY_KEYS, f"report.energy.{name}", problems, optional=ENERGY_OPTIONAL_KEYS)
    if isinstance(report.get("structure"), dict):
        _check(report["structure"], STRUCTURE_KEYS, "report.structure", problems)
    if isinstance(report.get("poincare"), dict):
        _check(report["poincare"], POINCARE_KEYS, "report.poincare", problems)
    if isinstance(report.get("figures"), list):
        for i, fig in enumerate(report["figures"]):
            where = f"report.figures[{i}]"
            if not isinstance(fig, dict):
                problems.append(f"{where}: expected an object")
                continue
            _check(fig, FIGURE_KEYS, where, problems)
            if root is not None:
                for key in ("png", "pdf"):
                    rel = fig.get(key)
                    if isinstance(rel, str) and not (Path(root) / rel).is_file():
                        problems.append(f"{where}.{key}: file {rel!r} does not exist under {root}")
    if problems:
        raise ReportError("invalid diagnostics report:\n  " + "\n  ".join(problems))


def _check(
    obj: dict,
    keys: Mapping[str, tuple[tuple[type, ...], str]],
    where: str,
    problems: list[str],
    *,
    optional: Mapping[str, tuple[tuple[type, ...], str]] | None = None,
) -> None:
    optional = optional or {}
    for key, (types, _) in {**keys, **optional}.items():
        if key not in obj:
            if key in keys:
                problems.append(f"{where}.{key}: missing")
        elif not isinstance(obj[key], types) or (isinstance(obj[key], bool) and bool not in types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            problems.append(f"{where}.{key}: expected {names}, got {type(obj[key]).__name__}")
    for key in obj:
        if key not in keys and key not in optional:
            problems.append(f"{where}.{key}: unknown key")


def write_report(report: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """Validate ``report``, then write ``report.json`` and ``REPORT.md`` into ``out_dir`` atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    validate_report(report, root=out)
    json_path = out / "report.json"
    md_path = out / report["summary"]
    atomic_write_text(json_path, json.dumps(report, indent=2, allow_nan=False) + "\n")
    atomic_write_text(md_path, render_markdown(report))
    return json_path, md_path


def load_report(path: str | Path) -> dict[str, Any]:
    """Read and validate a ``report.json`` (figure files are checked next to it)."""
    path = Path(path)
    report = json.loads(path.read_text())
    validate_report(report, root=path.parent)
    return report


def render_markdown(report: dict[str, Any]) -> str:
    """The short human summary written as ``REPORT.md``."""
    inp = report["input"]
    lines = [
        "# symflow diagnostics report",
        "",
        f"- input: {inp['description'] or inp['kind']}",
        f"- system: {inp['system'] or 'unknown'} {_args(inp['system_args'])}".rstrip(),
        f"- created: {report['created']} (symflow {report['symflow_version']})",
    ]
    if inp.get("failed_trajectories_skipped"):
        lines.append(f"- failed trajectories left out: {inp['failed_trajectories_skipped']}")
    if report["settings"]:
        lines.append("- settings: " + ", ".join(f"{k}={v}" for k, v in report["settings"].items()))
    if report["energy"]:
        lines += [
            "",
            "## Energy error",
            "",
            "| H | samples | max error | median of max | RMS | median drift exponent | drifting |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, e in report["energy"].items():
            lines.append(
                f"| {name} | {e['n_samples']} | {_g(e['max_error'])} | {_g(e['median_max_error'])} | "
                f"{_g(e['rms_error'])} | {_g(e['median_drift_exponent'])} | "
                f"{e['drifting_samples']}/{e['n_samples']} |"
            )
        threshold = next(iter(report["energy"].values()))["drift_threshold"]
        lines += [
            "",
            "Drift exponent: slope of log(max error per log-spaced window) against log t; ≈0 bounded, "
            f"≈1 linear drift; 'drifting' means above {threshold}.",
        ]
        stated = [(name, orbit_energy(e)) for name, e in report["energy"].items()]
        if any(text for _, text in stated):
            lines += ["", "Energy of the orbits (H of their initial states): "]
            lines[-1] += "; ".join(f"{name} H {text}" for name, text in stated if text) + "."
    if report.get("physical_energy"):
        pe = report["physical_energy"]
        lines += [
            "",
            "## Physical energy (damped system, projected from the doubled phase space)",
            "",
            f"- E(0) median {_g(pe['physical_energy_initial_median'])}; E(end)/E(0) median "
            f"{_g(pe['physical_energy_final_over_initial_median'])}; max |E(t) - E(0)| "
            f"{_g(pe['physical_energy_change_max'])}",
            f"- max relative error of E(t) against the reference (while E > {pe['energy_floor']:g} E(0)): "
            f"{_g(pe['physical_energy_relative_error_max'])}; max state error {_g(pe['state_error_max'])}",
            f"- doubled H: max |H(t) - H(0)| {_g(pe['doubled_hamiltonian_change_max'])}; max distance from "
            f"the physical limit {_g(pe['limit_defect_max'])}",
        ]
    if report["structure"]:
        s = report["structure"]
        lines += [
            "",
            f"## Structure of {s['source']} ({s['n_states']} states)",
            "",
            "| t | max defect | median defect | max volume error | max reversibility error |",
            "|---|---|---|---|---|",
        ]
        for row in s["per_time"]:
            lines.append(
                f"| {row['t']:g} | {_g(row['max_defect'])} | {_g(row['median_defect'])} | "
                f"{_g(row['max_volume_error'])} | {_g(row.get('max_reversibility_error'))} |"
            )
    if report["poincare"]:
        p = report["poincare"]
        lines += [
            "",
            "## Poincaré section",
            "",
            f"{p['n_crossings']} crossings of {p['surface']} by {p['n_orbits']} orbits to "
            f"t = {p['t_end']:g} ({p['mean_crossings_per_orbit']:.1f} per orbit on average, "
            f"{p['failed_orbits']} failed orbits), "
            f"computed with {p['source']}.",
        ]
        if p.get("distance"):
            d = p["distance"]
            lines.append(
                f"Section distance ({d.get('kind')}) to {d.get('reference')}: median {_g(d.get('median'))}, "
                f"max {_g(d.get('max'))}."
            )
    if report["figures"]:
        lines += ["", "## Figures", ""]
        for fig in report["figures"]:
            lines += [f"![{fig['caption']}]({fig['png']})", "", f"*{fig['caption']}*", ""]
    return "\n".join(lines).rstrip() + "\n"


def orbit_energy(entry: Mapping[str, Any]) -> str:
    """``"= 0.125"`` when every orbit has (to round-off) the same energy, else ``"from a to b (median c)"``;
    empty when the report predates these keys."""
    lo, med, hi = (entry.get(f"initial_energy_{k}") for k in ("min", "median", "max"))
    if lo is None or hi is None:
        return ""
    if hi - lo <= 1e-9 * max(1.0, abs(lo), abs(hi)):
        return f"= {med:.6g}"
    return f"from {lo:.6g} to {hi:.6g} (median {med:.6g})"


def _args(args: Mapping[str, Any]) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in args.items()) + ")" if args else ""


def _g(x: Any) -> str:
    return "–" if x is None else f"{x:.3g}" if isinstance(x, float) else str(x)


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(Path(path).resolve(), root.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return Path(path).as_posix()


def jsonable(x: Any) -> Any:
    """Plain JSON types; non-finite floats become null (JSON has no NaN/inf)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, (str, int)):
        return x
    if isinstance(x, float):
        return x if x == x and abs(x) != float("inf") else None
    if hasattr(x, "item"):
        return jsonable(x.item())
    if isinstance(x, Path):
        return x.as_posix()
    return str(x)
