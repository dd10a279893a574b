"""``symflow validate FILE``: check a trajectory file and print OK or every problem found.

Exit status 0 for a valid file, 1 otherwise. Plain layouts: name their datasets with
``--y-key``/``--t-key`` (and ``--mask-key``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check an HDF5 trajectory file against the schema")
    p.add_argument("file", help="the HDF5 file")
    p.add_argument("--y-key", help="plain layout: dataset of states (N, T, D)")
    p.add_argument("--t-key", help="plain layout: dataset of times (T,) or (N, T)")
    p.add_argument("--mask-key", help="plain layout: optional boolean mask (N, T) of observed entries")
    p.add_argument("--max-problems", type=int, default=50, help="problems to list (default 50)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from symflow.data import validate

    report_stale_partials(Path(args.file).parent, "validate")
    report = validate(
        args.file, t_key=args.t_key, y_key=args.y_key, mask_key=args.mask_key, max_problems=args.max_problems
    )
    if args.json:
        print(
            json.dumps(
                {
                    "path": report.path,
                    "ok": report.ok,
                    "layout": report.layout,
                    "n_trajectories": report.n_trajectories,
                    "n_times": report.n_times,
                    "dim": report.dim,
                    "failed": report.failed,
                    "n_problems": report.n_problems,
                    "problems": [
                        {"type": type(p).__name__, "trajectory": p.index, "problem": p.detail}
                        for p in report.problems
                    ],
                },
                indent=2,
            )
        )
    else:
        print(report)
    return 0 if report.ok else 1


def report_stale_partials(folder: Path, command: str) -> None:
    """List (on stderr) the partial files in ``folder`` that writers which died left behind."""
    from symflow.data.writer import stale_partials

    stale = stale_partials(folder)
    if stale:
        names = ", ".join(p.name for p in stale[:10]) + (
            f", … ({len(stale)} in all)" if len(stale) > 10 else ""
        )
        print(
            f"symflow {command}: note: partial files left by writers that died in {folder}: {names} "
            "(incomplete; delete them)",
            file=sys.stderr,
        )
