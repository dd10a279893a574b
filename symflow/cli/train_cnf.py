"""``symflow train cnf``: train a continuous normalizing flow on a toy data set or a trajectory file.

    symflow train cnf --data two_moons --objective mle --trace exact --steps 1000 --out runs/moons
    symflow train cnf --data ensemble.h5 --objective flow_matching --out runs/ensemble   # file states
    symflow train cnf --data two_moons --objective flow_matching --steps 20000 --out runs/moons-fm
    symflow train cnf ... --out runs/moons --resume          # continue from the last checkpoint

Writes ``OUT/config.json``, ``metrics.jsonl``, ``checkpoints/``, ``summary.json`` (held-out NLL with
the exact trace, and the exact NLL of the data for comparison) and ``density.png`` (data, model
samples, model density, exact density).
"""

from __future__ import annotations

import argparse
import json

from .main import CLIError


def _hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer widths like 64,64,64, got {text!r}"
        ) from err
    if not widths or any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"layer widths must be positive, got {text!r}")
    return widths


def _param(text: str) -> tuple[str, float | int]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        number: float | int = int(value)
    except ValueError:
        try:
            number = float(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected a number in {text!r}") from err
    return key.strip(), number


def register(sub: argparse._SubParsersAction) -> None:
    from symflow.cnf.toy_data import list_datasets

    p = sub.add_parser(
        "cnf",
        help="continuous normalizing flow (maximum likelihood or flow matching)",
        description=(
            "Train a CNF on a toy data set, or on the phase-space states of a trajectory file (the "
            "ensemble of every valid state of its successful trajectories; --data-param time_index=K "
            "for the states at one observation); writes checkpoints, metrics, summary.json and "
            "density.png."
        ),
    )
    p.add_argument(
        "--data",
        default="two_moons",
        help=f"toy data set ({', '.join(list_datasets())}) or a trajectory file FILE.h5 (or a sharded data "
        "set's directory)",
    )
    p.add_argument(
        "--data-param",
        action="append",
        type=_param,
        default=[],
        metavar="NAME=VALUE",
        help="data-set parameter, e.g. noise=0.05 (repeatable)",
    )
    p.add_argument("--objective", choices=("mle", "flow_matching"), default="mle")
    p.add_argument("--trace", choices=("exact", "hutchinson"), default="exact", help="divergence estimator")
    p.add_argument("--probe", choices=("gaussian", "rademacher"), default="gaussian", help="Hutchinson probe")
    p.add_argument(
        "--probes",
        type=int,
        default=1,
        help="Hutchinson probes per sample, averaged (variance / K; default 1)",
    )
    p.add_argument("--steps", type=int, default=1000, help="optimiser steps")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument(
        "--lr", type=float, default=None, help="learning rate (default 1e-2 mle, 2e-3 flow matching)"
    )
    p.add_argument("--hidden", type=_hidden, default=(64, 64, 64), help="hidden widths, e.g. 64,64,64")
    p.add_argument("--activation", default="softplus", help="softplus, tanh, silu or elu")
    p.add_argument("--method", default="dopri5", help="ODE method (symflow.integrators)")
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--atol", type=float, default=1e-5)
    p.add_argument("--dt", type=float, default=None, help="fixed step (fixed-step methods)")
    p.add_argument("--adjoint", action="store_true", help="gradients by the continuous adjoint (mle)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="run the solves through torch.compile (first step compiles; fixed-step adjoints gain most)",
    )
    p.add_argument(
        "--norm",
        choices=("auto", "sample", "batch"),
        default="auto",
        help="error norm of adaptive steps: auto (default; shared by the batch while training, per "
        "sample when evaluating), sample (always per sample) or batch (always shared)",
    )
    p.add_argument("--kinetic", type=float, default=0.0, help="weight of the kinetic-energy regulariser")
    p.add_argument("--jacobian", type=float, default=0.0, help="weight of the Jacobian-norm regulariser")
    p.add_argument("--sigma-min", type=float, default=1e-4, help="flow-matching path width at t = 1")
    p.add_argument("--train-size", type=int, default=20_000)
    p.add_argument("--test-size", type=int, default=5_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--validate-every", type=int, default=None, help="held-out NLL every N steps")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--samples", type=int, default=5000, help="model samples in the figure")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("-o", "--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="start again in an existing --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from symflow.cnf.cli_run import CNF_RANGES, run_cnf_experiment
    from symflow.training.checks import check_ranges

    if args.resume and args.overwrite:
        raise CLIError("--resume and --overwrite contradict each other; pass one")
    check_ranges(vars(args), CNF_RANGES, flag=True)  # every numeric option, before any work
    lr = args.lr if args.lr is not None else (1e-2 if args.objective == "mle" else 2e-3)
    summary = run_cnf_experiment(
        args.out,
        data=args.data,
        data_params=dict(args.data_param),
        objective=args.objective,
        trace=args.trace,
        probe=args.probe,
        probes=args.probes,
        hidden=args.hidden,
        activation=args.activation,
        method=args.method,
        rtol=args.rtol,
        atol=args.atol,
        dt=args.dt,
        adjoint=args.adjoint,
        compile=args.compile,
        norm=args.norm,
        kinetic=args.kinetic,
        jacobian=args.jacobian,
        sigma_min=args.sigma_min,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=lr,
        train_size=args.train_size,
        test_size=args.test_size,
        seed=args.seed,
        dtype=args.dtype,
        resume=args.resume,
        overwrite=args.overwrite,
        validate_every=args.validate_every,
        checkpoint_every=args.checkpoint_every,
        samples=args.samples,
        plots=not args.no_plots,
    )
    keys = ("held_out_nll", "held_out_nll_stderr", "held_out_exact_nll", "steps")
    shown = {k: summary[k] for k in keys if summary.get(k) is not None}
    print(json.dumps(shown, indent=2))
    if "figure" in summary:
        print(f"figure: {summary['figure']}")
    return 0
