"""``symflow diagnose [RUN_OR_FILE] -o REPORT_DIR``: energy, symplecticity, Poincaré; PNG + JSON.

Inputs (one small dispatcher, :func:`resolve_input`, so run directories can be added later):

* an HDF5 trajectory file — its energy error under the true ``H`` of its system (the file's
  ``system`` attribute, or ``--system``), the trajectory comparison against the true field, the
  structure of the ``--method`` map, and with ``--poincare`` the sections of its initial conditions
  followed by ``--method`` to ``--t-end``;
* no input, with ``--system`` — the system itself: ``--orbits`` initial conditions from its sampler
  at ``--energy``, followed by ``--method``;
* a training run directory (``symflow train node|sympflow|pinn --out DIR``) — the trained model against
  the system it learned: a neural ODE's field integrated by ``--method`` (default ``gl6``, ``--dt 0.1``),
  a flow map composed with its own ``Δt``; orbits sampled at ``--energy`` as for a system. With
  ``--poincare`` the true system's section of the same orbits (dopri5, rtol 1e-10) is drawn beside the
  learned model's and scored against it.

The terminal summary and REPORT.md state the orbits' energy (``H`` of their initial states), and the
trajectory figure runs to ``--t-end``.

Examples::

    symflow diagnose data/hh.h5 --poincare --orbits 100 --t-end 1000 -o report/
    symflow diagnose --system henon_heiles --energy 0.125 --orbits 200 --t-end 500 --poincare -o out/
    symflow diagnose --system henon_heiles --method verlet --dt 0.05 --poincare -o out/
    symflow diagnose runs/sympflow --energy 0.0833 --orbits 50 --t-end 500 --poincare -o report/
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .main import CLIError

DEFAULT_RTOL = 1e-9
DEFAULT_ATOL = 1e-12


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diagnose",
        help="energy drift, symplecticity defect and Poincaré sections of a file or a system",
        description=(
            "Diagnose an HDF5 trajectory file or a system: energy error and drift, symplecticity defect "
            "of the integration map, optional Poincaré sections. Writes PNG figures, report.json and "
            "REPORT.md into the output directory."
        ),
    )
    p.add_argument(
        "input",
        nargs="?",
        metavar="RUN_OR_FILE",
        help="HDF5 trajectory file or training run directory (omit with --system)",
    )
    p.add_argument("-o", "--output", required=True, type=Path, help="report directory (created)")
    p.add_argument("--system", help="system name (default: the file's 'system' attribute)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="system parameter (repeatable); overrides the file's system_args",
    )
    p.add_argument(
        "--energy", type=float, help="energy of the sampled initial conditions (system or run directory)"
    )
    p.add_argument("--orbits", type=int, default=100, help="orbits followed (default 100)")
    p.add_argument(
        "--t-end", type=float, default=1000.0, help="final time of orbits and sections (default 1000)"
    )
    p.add_argument(
        "--samples",
        type=int,
        help="time points per sampled trajectory (no input file; default 500)",
    )
    p.add_argument("--poincare", action="store_true", help="compute Poincaré sections")
    p.add_argument(
        "--method",
        help="integration method of the map (default dopri5; gl6 for a neural ODE run's learned field)",
    )
    p.add_argument("--dt", type=float, help="step size (required for fixed-step methods)")
    p.add_argument(
        "--rtol", type=float, help=f"relative tolerance of adaptive methods (default {DEFAULT_RTOL:g})"
    )
    p.add_argument(
        "--atol", type=float, help=f"absolute tolerance of adaptive methods (default {DEFAULT_ATOL:g})"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled initial conditions")
    p.add_argument("--pdf", action="store_true", help="also write PDF figures")
    p.add_argument(
        "--quiet", "--no-progress", dest="quiet", action="store_true", help="no progress bars or messages"
    )
    p.set_defaults(func=run)


@dataclass
class Resolved:
    """What the dispatcher found: the system, and the trajectories of a file (if any)."""

    kind: str  # "file", "system" or "run"
    system: Any
    trajectories: Any = None
    path: Path | None = None
    run: Any = None  # a symflow.diagnostics.RunSource for run directories


def resolve_input(args: argparse.Namespace) -> Resolved:
    """File, system or run directory; every misuse is a one-line error."""
    from symflow.diagnostics import load_trajectory_file, source_from_run
    from symflow.systems import get_system

    params = _params(args.param)
    if args.input is None:
        if not args.system:
            raise CLIError("give an HDF5 trajectory file, or --system NAME to diagnose a system itself")
        return Resolved("system", get_system(args.system, **params))
    path = Path(args.input)
    if path.is_dir():
        if not (path / "config.json").exists():
            files = sorted(p.name for p in path.glob("*.h5"))[:3]
            hint = f" (it holds {', '.join(files)}: pass one of them)" if files else ""
            raise CLIError(
                f"{path} is a directory without config.json, so not a training run; pass a run directory, "
                f"an HDF5 trajectory file or --system{hint}"
            )
        system = get_system(args.system, **params) if args.system else None
        run = source_from_run(
            path, method=args.method, dt=args.dt, rtol=args.rtol, atol=args.atol, system=system
        )
        return Resolved("run", run.system, path=path, run=run)
    if args.energy is not None:
        raise CLIError("--energy applies to sampled initial conditions only (no input file)")
    if args.samples is not None:
        raise CLIError("--samples applies to sampled trajectories only (no input file)")
    traj = load_trajectory_file(path)
    name = args.system or traj.system
    if not name:
        raise CLIError(f"{path} does not name its system (attribute 'system'); pass --system NAME")
    file_params = dict(traj.system_args) if (args.system is None or args.system == traj.system) else {}
    file_params.update(params)
    return Resolved("file", get_system(name, **file_params), traj, path)


def _params(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CLIError(f"--param expects NAME=VALUE, got {item!r}")
        try:
            number = float(value)
        except ValueError:
            raise CLIError(f"--param {name}: expected a number, got {value!r}") from None
        out[name.strip()] = int(number) if number.is_integer() and "." not in value else number
    return out


def _source(args: argparse.Namespace, system: Any) -> Any:
    from symflow.diagnostics import IntegratorSource
    from symflow.integrators import get_method

    spec = get_method(args.method or "dopri5")
    options: dict[str, Any] = {}
    if spec.adaptive and args.dt is None:
        options["rtol"] = args.rtol if args.rtol is not None else DEFAULT_RTOL
        options["atol"] = args.atol if args.atol is not None else DEFAULT_ATOL
    else:
        if args.rtol is not None or args.atol is not None:
            raise CLIError(f"--rtol/--atol apply to adaptive methods; {spec.name} runs with a fixed --dt")
        if args.dt is None:
            raise CLIError(f"method {spec.name!r} is fixed-step: give its step size with --dt")
        options["dt"] = args.dt
    return IntegratorSource.for_system(system, spec.name, **options)


# The range of every numeric option, checked before any work.
def _ranges() -> dict[str, Any]:
    from symflow.training.checks import NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, Range

    return {
        "orbits": POSITIVE_INT,
        "samples": POSITIVE_INT.or_none("500 time points"),
        "t_end": POSITIVE,
        "dt": POSITIVE.or_none("the method's adaptive steps"),
        "rtol": POSITIVE.or_none(f"{DEFAULT_RTOL:g}"),
        "atol": POSITIVE.or_none(f"{DEFAULT_ATOL:g}"),
        "energy": Range().or_none("the sampler's typical states"),
        "seed": NON_NEGATIVE_INT,
    }


def run(args: argparse.Namespace) -> int:
    from symflow.diagnostics import IntegratorSource, diagnose
    from symflow.diagnostics.report import orbit_energy
    from symflow.training.checks import check_ranges

    check_ranges(vars(args), _ranges(), flag=True)
    if args.output.exists() and not args.output.is_dir():
        raise CLIError(f"-o {args.output}: exists and is not a directory; the report needs a directory")
    found = resolve_input(args)
    source = found.run.source if found.run is not None else _source(args, found.system)
    say = (lambda message: None) if args.quiet else (lambda message: print(f"diagnose: {message}"))
    info: dict[str, Any] = {"kind": found.kind}
    if found.kind == "file":
        info.update(
            path=str(found.path),
            description=f"trajectory file {found.path} ({found.trajectories.n} trajectories)",
        )
    if found.kind == "run":
        info.update(found.run.info)
        settings = {"learner": found.run.learner, "seed": args.seed}
        if isinstance(source, IntegratorSource):
            settings.update(method=source.method, **source.options)
    else:
        settings = {"method": source.method, **source.options, "seed": args.seed}
    learned = getattr(found.run.model, "hamiltonian", None) if found.kind == "run" else None
    reference = None
    if found.kind == "run" and args.poincare:
        # The true system is known (from the training data or the run's config): its section of the
        # same orbits goes beside the learned one.
        reference = IntegratorSource.for_system(found.system, "dopri5", rtol=1e-10, atol=1e-12)
        reference.name = f"true {found.system.name}, {reference.name}"
    result = diagnose(
        args.output,
        system=found.system,
        source=source,
        trajectories=found.trajectories,
        input_info=info,
        orbits=args.orbits,
        t_end=args.t_end,
        energy_level=args.energy,
        samples=args.samples or 500,
        seed=args.seed,
        poincare=args.poincare,
        reference=reference,
        learned_hamiltonian=learned if callable(learned) else None,
        pdf=args.pdf,
        progress=not args.quiet,
        settings=settings,
        log=say,
    )
    json_path, md_path = result.paths
    if not args.quiet:
        energy = result.report["energy"]["true"]
        level = orbit_energy(energy)
        if level:
            print(f"orbits: {energy['n_samples']} with true energy H {level} (H of their initial states)")
        drifting = f"{energy['drifting_samples']}/{energy['n_samples']} drifting"
        print(
            f"energy: max relative error {_fmt(energy['max_error'])}, median drift exponent "
            f"{_fmt(energy['median_drift_exponent'])} ({drifting})"
        )
        pe = result.report.get("physical_energy")
        if pe:  # a damped system on the doubled phase space: the energy that decays is the physical one
            print(
                "physical energy (projected): E(end)/E(0) median "
                f"{_fmt(pe['physical_energy_final_over_initial_median'])}, "
                f"max relative error of E(t) vs reference {_fmt(pe['physical_energy_relative_error_max'])} "
                f"(while E > {pe['energy_floor']:g} E(0)); doubled H max change "
                f"{_fmt(pe['doubled_hamiltonian_change_max'])}"
            )
        s = result.report["structure"]
        print(f"structure of {s['source']}: max symplecticity defect {_fmt(s['max_defect'])}")
        if result.section is not None:
            p = result.report["poincare"]
            print(f"poincaré: {p['n_crossings']} crossings of {p['surface']} by {p['n_orbits']} orbits")
            if p.get("distance"):
                d = p["distance"]
                print(
                    f"poincaré reference: {d['reference']} ({len(result.reference_section)} crossings), "
                    f"median section distance {_fmt(d['median'])}"
                )
        print(f"wrote {json_path} and {md_path} ({len(result.figures)} figures)")
    return 0


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3g}"
