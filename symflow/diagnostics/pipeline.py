"""One call that runs the diagnostics on an input and writes figures and the report.

Used by ``symflow diagnose`` and by the examples; each step is also available on its own
(:mod:`.energy`, :mod:`.symplectic`, :mod:`.poincare`, :mod:`.plots`, :mod:`.report`).

Inputs: trajectories already computed (a file's, with the system that should have generated them),
or a system alone (initial conditions from its sampler, trajectories from ``source``). ``source`` is
the map whose structure is measured and that follows the orbits for the Poincaré section; a learned
flow map plugs in here as a :class:`~symflow.diagnostics.sources.FlowMapSource` (then ``reference``,
by default the system's integrated field, gives the section it is scored against).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from symflow.integrators import InvalidArgumentError, solve
from symflow.integrators.reprs import compact_repr, short
from symflow.systems import HamiltonianSystem, vector_field

from .dissipative import physical_energy_report
from .energy import EnergyReport, energy_errors
from .plots import FigureFile, plot_energy_error, plot_section, plot_structure, plot_trajectories
from .poincare import PoincareSection, poincare_section, section_distance
from .report import build_report, jsonable, write_report
from .sources import FlowMapSource, FlowSource, IntegratorSource, Trajectories
from .symplectic import StructureReport, structure

Tensor = torch.Tensor


@dataclass
class Diagnostics:
    """Everything one :func:`diagnose` call computed, with the report written from it."""

    report: dict[str, Any]
    energy: dict[str, EnergyReport] = field(default_factory=dict)
    structure: StructureReport | None = None
    section: PoincareSection | None = None
    reference_section: PoincareSection | None = None
    distance: Tensor | None = None
    figures: list[FigureFile] = field(default_factory=list)
    paths: tuple[Path, Path] | None = None
    trajectories: Trajectories | None = None  # the trajectories whose energy was measured

    def __repr__(self) -> str:
        return compact_repr(
            self,
            fields=("energy", "structure", "section", "reference_section"),
            figures=len(self.figures),
            report=short(None if self.paths is None else self.paths[1]),
        )


def diagnose(
    out_dir: str | Path,
    *,
    system: HamiltonianSystem,
    source: FlowSource,
    trajectories: Trajectories | None = None,
    input_info: Mapping[str, Any] | None = None,
    orbits: int = 100,
    t_end: float = 1000.0,
    energy_level: float | None = None,
    samples: int = 500,
    seed: int = 0,
    poincare: bool = False,
    reference: FlowSource | PoincareSection | None = None,
    learned_hamiltonian: Callable[[Tensor], Tensor] | None = None,
    structure_states: int = 32,
    structure_times: tuple[float, ...] | None = None,
    compare_span: float | None = None,
    pdf: bool = False,
    progress: bool = False,
    settings: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> Diagnostics:
    """Run energy, structure and (optionally) Poincaré diagnostics; write figures and the report.

    Args:
        out_dir: report directory (created).
        system: the Hamiltonian system (true energy, default surface of section).
        source: the map diagnosed (structure, trajectories in system mode, sections).
        trajectories: data to measure the energy of (file mode; failed solves, whose status is not
            success, are left out and counted as ``failed_trajectories_skipped`` in the report's
            input section); ``None``: ``orbits`` initial
            conditions from the system's sampler (at ``energy_level``) followed by ``source`` to
            ``t_end`` on ``samples`` time points.
        orbits: number of orbits (sampled, or the first ones of ``trajectories``).
        poincare: compute the section of those orbits to ``t_end``.
        reference: a second map whose section the first is scored against (``section_distance``),
            or its section already computed for the same orbits and ``t_end``; by default, for a
            flow-map source, the system's field integrated with dopri5 (rtol 1e-10).
        learned_hamiltonian: a learned ``H(y)`` reported next to the true one.
        structure_states, structure_times: states and durations of the structure diagnostics
            (default durations: one and ten steps of the map, or 0.1 and 1).
        compare_span: length of the trajectory-comparison figure (the comparison is against the
            system's field integrated with dopri5 at ``rtol=1e-11`` over this span); default ``t_end``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs: list[FigureFile] = []
    for name, value in (("orbits", orbits), ("samples", samples), ("structure_states", structure_states)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(name, value, "a positive integer")
    if isinstance(t_end, bool) or not isinstance(t_end, (int, float)) or not 0 < t_end < math.inf:
        raise InvalidArgumentError("t_end", t_end, "a positive finite time")

    # Failed solves (kept in files with their status) are no evidence about the map: leave them out.
    skipped = None
    if trajectories is not None and trajectories.status is not None:
        ok = trajectories.status == 0
        skipped = int((~ok).sum())
        if skipped == trajectories.n:
            raise InvalidArgumentError(
                "trajectories", f"{trajectories.n} trajectories, all failed", "at least one successful solve"
            )
        if skipped:
            log(f"leaving out {skipped} failed trajectories (their status is not success)")
            trajectories = trajectories.select(ok.nonzero().squeeze(1))
    # Initial conditions and the trajectories whose energy is measured.
    if trajectories is None:
        y0 = system.sample(orbits, seed=seed, energy=energy_level)
        log(f"integrating {orbits} orbits of {system.name} to t = {t_end:g} with {source.name}")
        ts = torch.linspace(0.0, float(t_end), samples, dtype=y0.dtype)
        trajectories = source.trajectory(y0, ts, progress=progress)
    else:
        y0 = trajectories.y0[:orbits]
    hams: dict[str, Any] = {"true": system}
    if learned_hamiltonian is not None:
        hams["learned"] = learned_hamiltonian
    elif isinstance(source, FlowMapSource) and source.hamiltonian is not None:
        hams["learned"] = source.hamiltonian
    log("energy error")
    energy = energy_errors(trajectories, hams)
    physical = None
    if getattr(system, "doubling", None) is not None:
        log("physical energy of the projected trajectories (doubled phase space)")
        physical = physical_energy_report(trajectories, system)
    title = f"Energy error along {trajectories.origin or 'the trajectories'} ({system.name})"
    figs.append(plot_energy_error(energy, out / "energy_error", pdf=pdf, title=title))

    # Trajectory comparison: the trajectories against the system's field integrated tightly.
    span = float(t_end) if compare_span is None else float(compare_span)
    comparison = _comparison_figure(out, system, trajectories, span, pdf)
    if comparison is not None:
        figs.append(comparison)

    # Structure of the map.
    times = structure_times or _default_times(source)
    log(f"symplecticity defect of {source.name} at t = {', '.join(f'{t:g}' for t in times)}")
    struct = structure(source, y0[:structure_states], times)
    figs.append(plot_structure(struct, out / "structure_histogram", pdf=pdf))

    section = ref_section = dist = None
    distance_info = None
    if poincare:
        log(f"Poincaré section of {y0.shape[0]} orbits to t = {t_end:g}")
        section = poincare_section(source, y0, float(t_end), progress=progress)
        if reference is None and isinstance(source, FlowMapSource):
            reference = IntegratorSource.for_system(system, "dopri5", rtol=1e-10, atol=1e-12)
        if isinstance(reference, PoincareSection):
            ref_section = reference
            if ref_section.n_orbits != y0.shape[0] or ref_section.t_end != float(t_end):
                raise InvalidArgumentError(
                    "reference",
                    f"a section of {ref_section.n_orbits} orbits to t = {ref_section.t_end:g}",
                    f"a section of the same {y0.shape[0]} orbits to t = {float(t_end):g}",
                )
        elif reference is not None:
            log(f"reference section with {reference.name}")
            ref_section = poincare_section(reference, y0, float(t_end), progress=progress)
        if ref_section is not None:
            dist = section_distance(ref_section, section)
            finite = dist[torch.isfinite(dist)]
            distance_info = {
                "kind": "chamfer",
                "reference": ref_section.source,
                "median": float(finite.median()) if finite.numel() else None,
                "max": float(dist.max()) if dist.numel() else None,
                "orbits_without_crossings": int((~torch.isfinite(dist)).sum()),
            }
        figs.append(
            plot_section(
                section,
                out / "poincare_section",
                reference=ref_section,
                names=(ref_section.source if ref_section is not None else "reference", source.name),
                pdf=pdf,
            )
        )

    info = {"kind": "system", "path": None, "system": system.name, "system_args": dict(system.params)}
    info["description"] = f"{system.name} sampled at E = {energy_level}" if energy_level else system.name
    info.update(dict(input_info or {}))
    if skipped is not None:
        info["failed_trajectories_skipped"] = skipped
    run_settings = {
        "source": source.name,
        "orbits": int(y0.shape[0]),
        "t_end": float(t_end),
        "poincare": bool(poincare),
        "structure_times": list(times),
        **dict(settings or {}),
    }
    report = build_report(
        input=info,
        settings=run_settings,
        energy=energy,
        structure=struct,
        poincare=section,
        distance=distance_info,
        figures=figs,
        root=out,
    )
    if physical is not None:
        report["physical_energy"] = jsonable(physical.summary())
    paths = write_report(report, out)
    return Diagnostics(report, energy, struct, section, ref_section, dist, figs, paths, trajectories)


def _default_times(source: FlowSource) -> tuple[float, ...]:
    step = getattr(source, "dt", None) or (source.max_step if math.isfinite(source.max_step) else None)
    if step:
        return (float(step), 10.0 * float(step))
    return (0.1, 1.0)


def _comparison_figure(
    out: Path, system: HamiltonianSystem, traj: Trajectories, span: float, pdf: bool
) -> FigureFile | None:
    """Up to three trajectories against the true field integrated with dopri5 from their first states on
    their own grids, cut to ``span`` — one batched solve, at rtol 1e-11 so that it is a reference even
    for the CLI's default map (dopri5 at rtol 1e-9)."""
    picks = list(range(min(3, traj.n)))
    grids, states = [], []
    for i in picks:
        length = int(traj.length[i])
        t = traj.t[i, :length]
        keep = (t - t[0]) <= span
        keep[: min(2, length)] = True
        if int(keep.sum()) >= 2:
            grids.append(t[keep])
            states.append(traj.y[i, :length][keep])
    if not grids:
        return None
    steps = min(g.shape[0] for g in grids)
    tt = torch.stack([g[:steps] for g in grids])
    data = torch.stack([y[:steps] for y in states])
    true = solve(vector_field(system), data[:, 0], tt, "dopri5", rtol=1e-11, atol=1e-13, throw=False).ys
    name = traj.origin or "trajectories"
    fig = plot_trajectories(
        tt,
        {"true field (dopri5, rtol 1e-11)": true, name: data},
        out / "trajectories",
        labels=system.coordinate_names,
        samples=list(range(tt.shape[0])),
        pdf=pdf,
        title=f"{name} against the true {system.name} field",
    )
    t0, t1 = float(tt[:, 0].min()), float(tt[:, -1].max())
    return replace(fig, caption=f"{fig.caption}, t from {t0:g} to {t1:g}")
