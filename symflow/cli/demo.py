"""``symflow demo [-o DIR] [--quick] [--device cuda]``: the main job end to end (see :mod:`symflow.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="simulate noisy Hénon–Heiles data, learn it (HNN, SympFlow), diagnose both, write a report",
        description=(
            "The main job end to end: simulate an irregularly sampled, noisy Hénon–Heiles data set to HDF5; "
            "learn two surrogates from that file, side by side: a Hamiltonian neural network (secant warm "
            "start, then L-BFGS on the one-step error of every pair of observations) and a SympFlow "
            "flow map (supervised on pairs of observations); diagnose both against a Gauss–Legendre "
            "reference on held-out trajectories and orbits (energy drift, "
            "symplecticity defect, Poincaré sections). Writes the data, checkpoints, PNG figures, "
            "report.json and REPORT.md. Under 5 minutes on a 2-core CPU; --quick takes about half a minute."
        ),
    )
    p.add_argument("-o", "--output", type=Path, default=Path("demo-output"), help="output directory")
    p.add_argument("--quick", action="store_true", help="small sizes (seconds), for tests and a first look")
    p.add_argument("--device", default="cpu", help="cpu or cuda: simulation and HNN training (default cpu)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument(
        "--quiet", "--no-progress", dest="quiet", action="store_true", help="no progress bars or messages"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from symflow.demo import run_demo

    from .main import CLIError

    if args.threads is not None:
        if args.threads < 1:
            raise CLIError(f"--threads must be a positive integer, got {args.threads}")
        torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)
    log = (lambda message: None) if args.quiet else (lambda message: print(f"demo: {message}", flush=True))
    result = run_demo(args.output, quick=args.quick, device=args.device, progress=not args.quiet, log=log)
    if not args.quiet:
        r = result.report
        h, d = r["hnn"], r["diagnostics"]
        print(
            f"HNN: held-out trajectory error to T = {h['eval_t_end']:g} median "
            f"{100 * h['trajectory_rel_error_median']:.3g}%, "
            f"energy error median {100 * h['energy_rel_error_median']:.3g}%"
        )
        for name in ("reference", "hnn", "sympflow"):
            m = d[name]
            dist = m["section_distance_median"]
            extra = "" if dist is None else f", section distance {dist:.3g}"
            print(
                f"{name}: max energy error {m['energy_max_error']:.3g}, max symplecticity defect "
                f"{m['max_defect']:.3g}{extra}"
            )
        print(f"open {result.report_md}")
    return 0
