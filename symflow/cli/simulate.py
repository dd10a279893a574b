"""``symflow simulate``: generate a trajectory file from a system or a recipe.

    symflow simulate henon_heiles --n 1000 --t-end 50 --irregular -o hh.h5
    symflow simulate harmonic_oscillator --param-range omega=0.5:2 --n 200 -o family.h5
    symflow simulate --recipe datasets/henon_heiles_irregular.toml -o hh.h5 [--n 100]
    torchrun --nproc_per_node=4 $(which symflow) simulate henon_heiles -n 100000 -o hh/

Options given on the command line override the recipe's. An output that is a directory (an
existing one, or a path ending in ``/``; always under torchrun) receives a sharded data set: one
part file per rank and the index ``trajectories.h5`` (:mod:`symflow.data.shards`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .main import CLIError

# CLI destination → simulate() keyword, for options a recipe may also set.
_OVERRIDABLE = (
    "n",
    "t_end",
    "method",
    "rtol",
    "atol",
    "dt",
    "max_steps",
    "sampling",
    "n_obs",
    "min_obs",
    "max_obs",
    "noise",
    "energy",
    "seed",
    "device",
    "dtype",
    "chunk_size",
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate trajectories into an HDF5 file",
        description="Simulate trajectories of a Hamiltonian system (or a dataset recipe) into an HDF5 file "
        "with the symflow trajectory schema. Command-line options override a recipe's.",
    )
    p.add_argument("system", nargs="?", help="registered system name (see `symflow systems`)")
    p.add_argument(
        "--recipe", metavar="TOML", help="a dataset recipe, e.g. datasets/henon_heiles_irregular.toml"
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="the HDF5 file to write, or a directory (ending in /; required under torchrun) for a sharded "
        "data set: one part per rank and the index trajectories.h5",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    g = p.add_argument_group("trajectories")
    g.add_argument("-n", "--n", type=int, help="number of trajectories (default 1000)")
    g.add_argument("--t-end", type=float, help="end of the observation window (default 10)")
    g.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="system parameter, repeatable (e.g. --param lam=1.0)",
    )
    g.add_argument(
        "--param-range",
        action="append",
        default=[],
        metavar="NAME=LO:HI",
        help="a parameter that varies per trajectory, drawn uniformly in [LO, HI] (seeded) and stored in "
        "the file's params dataset; repeatable; NAME alone takes the system's declared range "
        "(see `symflow systems`), e.g. --param-range omega=0.5:2",
    )
    g.add_argument("--energy", type=float, help="initial states with exactly this energy")
    g.add_argument("--seed", type=int, help="seed of every random choice (default 0)")
    s = p.add_argument_group("observation times")
    kind = s.add_mutually_exclusive_group()
    kind.add_argument(
        "--sampling",
        choices=("regular", "uniform", "irregular", "poisson"),
        help="sampling kind (default regular)",
    )
    kind.add_argument(
        "--irregular",
        dest="sampling",
        action="store_const",
        const="uniform",
        help="same as --sampling uniform",
    )
    s.add_argument(
        "--n-obs", type=int, help="observations per trajectory, initial state included (default 100)"
    )
    s.add_argument("--min-obs", type=int, help="variable counts: fewest observations per trajectory")
    s.add_argument("--max-obs", type=int, help="poisson: cap on the count")
    s.add_argument(
        "--noise", type=_floats, help="Gaussian observation noise σ (one value, or one per component a,b,…)"
    )
    i = p.add_argument_group("integration")
    i.add_argument("--method", help="integration method (default dopri5)")
    i.add_argument("--rtol", type=float, help="relative tolerance of adaptive methods (default 1e-9)")
    i.add_argument("--atol", type=float, help="absolute tolerance of adaptive methods (default 1e-12)")
    i.add_argument("--dt", type=float, help="step size (fixed-step methods)")
    i.add_argument("--max-steps", type=int, help="adaptive step budget per trajectory (default 100000)")
    i.add_argument("--chunk-size", type=int, help="trajectories per batched solve (default 4096)")
    i.add_argument("--device", help="torch device, e.g. cuda (default cpu)")
    i.add_argument("--dtype", choices=("float64", "float32"), help="precision of the solve (default float64)")
    p.add_argument(
        "--no-progress", "--quiet", dest="no_progress", action="store_true", help="no progress bar"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def _floats(text: str) -> float | list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number or comma-separated numbers, got {text!r}"
        ) from None
    return values[0] if len(values) == 1 else values


def _params(items: list[str]) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"--param: expected KEY=VALUE, got {item!r}")
        try:
            number: float | int = int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                raise CLIError(f"--param {key}: expected a number, got {value!r}") from None
        out[key.strip()] = number
    return out


def run(args: argparse.Namespace) -> int:
    from symflow.data.shards import rank_and_world

    rank, world = rank_and_world()
    sharded = world > 1 or args.output.endswith(("/", os.sep)) or Path(args.output).is_dir()
    if not sharded:
        return _report(args, _simulate(args, Path(args.output), None))
    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise CLIError(
            f"-o {args.output}: under torchrun the output is a directory for the parts, not a file"
        )
    from symflow.data.shards import simulate_parts

    result = simulate_parts(
        lambda path, part: _simulate(args, path, part, progress=rank == 0),
        args.output,
        overwrite=args.overwrite,
    )
    if rank != 0:
        return 0
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(result.index),
                    "n": result.n,
                    "parts": [str(p) for p in result.parts],
                    "ranks": len(result.parts),
                    "rank_trajectories": list(result.rank_rows),
                    "rank_seconds": list(result.rank_seconds),
                    "failed": result.failed,
                    "seconds": result.seconds,
                    "trajectories_per_second": result.throughput,
                }
            )
        )
    else:
        print(result)
    return 0


def _simulate(args: argparse.Namespace, out: Path, part, *, progress: bool = True):
    import torch

    from symflow.data import load_recipe, simulate
    from symflow.data.writer import stale_partials

    from .validate import report_stale_partials

    for stale in stale_partials(out.parent, out.name):  # this target's, from earlier killed runs
        stale.unlink(missing_ok=True)
        print(f"symflow simulate: removed {stale} (left by a writer that died)", file=sys.stderr)
    if part is None or part[0] == 0:
        report_stale_partials(out.parent, "simulate")
    given = {k: getattr(args, k) for k in _OVERRIDABLE if getattr(args, k) is not None}
    if "dtype" in given:
        given["dtype"] = {"float64": torch.float64, "float32": torch.float32}[given["dtype"]]
    params = _params(args.param)
    common = {"overwrite": args.overwrite, "progress": progress and not args.no_progress}
    if args.param_range:
        from symflow.systems import parse_range

        common["param_ranges"] = dict(parse_range(item) for item in args.param_range)
    if part is not None:
        common["part"] = part
    if args.recipe:
        if args.system:
            raise CLIError("give a SYSTEM or --recipe, not both (the recipe names its system)")
        recipe = load_recipe(args.recipe)
        return recipe.simulate(out, params=params, **given, **common)
    if not args.system:
        raise CLIError("name a SYSTEM (see `symflow systems`) or give --recipe FILE")
    n = given.pop("n", 1000)
    t_end = given.pop("t_end", 10.0)
    return simulate(args.system, n, t_end, output=out, params=params, **given, **common)


def _report(args: argparse.Namespace, result) -> int:
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(result.path),
                    "n": result.n,
                    "n_times": result.n_times,
                    "observations": dict(zip(("min", "mean", "max"), result.observations)),
                    "dim": result.dim,
                    "failed": result.failed,
                    "seconds": result.seconds,
                    "trajectories_per_second": result.throughput,
                }
            )
        )
    else:
        print(result)
    return 0
