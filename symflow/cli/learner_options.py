"""Command-line options shared by ``symflow train sympflow`` and ``symflow train pinn``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .main import CLIError


def system_args(pairs: list[str] | None) -> dict[str, Any]:
    """``["lam=1.0", "n=3"]`` → ``{"lam": 1.0, "n": 3}`` (values parsed as JSON numbers)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--param {pair!r}: expected NAME=VALUE, e.g. --param lam=1.0")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError as err:
            raise CLIError(f"--param {pair!r}: {value!r} is not a number") from err
    return out


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--system", required=True, help="registered system name (see `symflow systems`)")
    p.add_argument(
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="system parameter (repeatable), e.g. lam=1.0",
    )
    p.add_argument(
        "-o", "--out", required=True, type=Path, help="run directory (config, metrics, checkpoints, summary)"
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument(
        "--overwrite", action="store_true", help="discard an existing run in --out and start again"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and sampling (default 0)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument(
        "--steps", type=int, default=2000, help="Adam steps, fresh collocation points each (default 2000)"
    )
    p.add_argument("--lbfgs-steps", type=int, default=0, help="L-BFGS steps after Adam (default 0)")
    p.add_argument(
        "--lbfgs-points", type=int, default=2000, help="L-BFGS collocation set size (default 2000)"
    )
    p.add_argument(
        "--lbfgs-resample", type=int, default=10, help="redraw that set every N steps (default 10)"
    )
    p.add_argument("--lbfgs-iterations", type=int, default=20, help="L-BFGS iterations per step (default 20)")
    p.add_argument("--lr", type=float, default=1e-2, help="initial Adam learning rate (default 1e-2)")
    p.add_argument("--lr-final", type=float, default=1e-4, help="final Adam learning rate (default 1e-4)")
    p.add_argument(
        "--checkpoint-every", type=int, default=200, help="steps between checkpoints (default 200)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (small models run best on 1)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument(
        "--no-progress", "--quiet", dest="no_progress", action="store_true", help="no progress bar"
    )


def add_flow_map_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dt", type=float, default=1.0, help="Δt: the map is trained on t ∈ [0, Δt] (default 1)")
    p.add_argument(
        "--energy-max",
        type=float,
        default=None,
        help="train on Ω = {H ≤ E} (forward invariant); default: the system's own sampler",
    )
    p.add_argument(
        "--collocation", type=int, default=700, help="collocation points per Adam step (default 700)"
    )
    p.add_argument(
        "--horizon",
        type=float,
        default=None,
        help="trajectory-error horizon (default 100Δt with an exact flow, else 10Δt)",
    )
    p.add_argument("--energy-horizon", type=float, default=None, help="energy-error horizon (default 1000Δt)")
    p.add_argument(
        "--eval-samples", type=int, default=16, help="initial states for the evaluation (default 16)"
    )


def _ranges() -> dict[str, Any]:
    """The range of every numeric option of ``train sympflow``/``train pinn`` (checked before any work)."""
    from symflow.training.checks import NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, Range

    return {
        "steps": NON_NEGATIVE_INT,
        "lbfgs_steps": NON_NEGATIVE_INT,
        "lbfgs_points": POSITIVE_INT,
        "lbfgs_resample": POSITIVE_INT,
        "lbfgs_iterations": POSITIVE_INT,
        "lr": POSITIVE,
        "lr_final": POSITIVE,
        "seed": NON_NEGATIVE_INT,
        "checkpoint_every": POSITIVE_INT,
        "threads": POSITIVE_INT.or_none("torch's default"),
        "dt": POSITIVE,
        "energy_max": Range().or_none("the system's own sampler"),
        "collocation": POSITIVE_INT,
        "horizon": POSITIVE.or_none("the default horizon"),
        "energy_horizon": POSITIVE.or_none("1000Δt"),
        "eval_samples": POSITIVE_INT,
    }


def training_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    from symflow.training.checks import check_ranges

    check_ranges(vars(args), _ranges(), flag=True)
    return {
        "system_args": system_args(args.param),
        "adam_steps": args.steps,
        "lbfgs_steps": args.lbfgs_steps,
        "lbfgs_points": args.lbfgs_points,
        "lbfgs_resample": args.lbfgs_resample,
        "lbfgs_iterations": args.lbfgs_iterations,
        "lr": args.lr,
        "lr_final": args.lr_final,
        "seed": args.seed,
        "dtype": args.dtype,
        "run_dir": args.out,
        "resume": args.resume,
        "overwrite": args.overwrite,
        "progress": not args.no_progress,
        "checkpoint_every": args.checkpoint_every,
        "plots": not args.no_plots,
    }


def flow_map_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "dt": args.dt,
        "energy_max": args.energy_max,
        "collocation": args.collocation,
        "horizon": args.horizon,
        "energy_horizon": args.energy_horizon,
        "eval_samples": args.eval_samples,
    }


def set_threads(args: argparse.Namespace) -> None:
    if args.threads is not None:
        import torch

        if args.threads < 1:
            raise CLIError(f"--threads {args.threads}: expected a positive number of threads")
        torch.set_num_threads(args.threads)


_SHOWN = (
    ("parameters", "parameters", "{}"),
    ("steps", "steps", "{}"),
    ("train_seconds", "training time", "{:.1f} s"),
    ("residual_mse", "residual (mean squared, held out)", "{:.3g}"),
    ("rollout_error_max", "trajectory error (max to horizon)", "{:.3g}"),
    ("energy_error_max", "relative energy error (max)", "{:.3g}"),
    ("energy_error_late_max", "  … over the last 10%", "{:.3g}"),
    ("error_max", "error vs reference (max)", "{:.3g}"),
)


def print_summary(summary: dict[str, Any], run_dir: Path) -> None:
    print(f"run: {run_dir}")
    for key, label, fmt in _SHOWN:
        if key in summary:
            print(f"  {label:38s} {fmt.format(summary[key])}")
    bound = summary.get("a_posteriori")
    if bound:
        print(
            f"  {'a-posteriori on [0, Δt] (max)':38s} ε_GL = {bound['epsilon_gl_max']:.3g}, "
            f"β·ε = {bound['beta_epsilon_dense_max']:.3g}, true error = {bound['true_error_max']:.3g}"
        )
    for name in summary.get("figures", []):
        print(f"  figure: {run_dir / name}")
    print(f"  summary: {run_dir / 'summary.json'}")
