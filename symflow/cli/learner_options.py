"""What ``symflow train sympflow`` and ``symflow train pinn`` share: run options, threads, the summary.

The learner's own options are generated from its configuration dataclass
(:mod:`symflow.cli.config_options`); this module adds the options of one invocation (where the run
goes, resume/overwrite, threads, progress) and prints the summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .main import CLIError


def add_run_options(p: argparse.ArgumentParser) -> None:
    """``-o/--out``, ``--resume``, ``--overwrite``, ``--threads`` and ``--no-progress/--quiet``."""
    g = p.add_argument_group("this invocation")
    g.add_argument(
        "-o", "--out", required=True, type=Path, help="run directory (config, metrics, checkpoints, summary)"
    )
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    g.add_argument(
        "--overwrite", action="store_true", help="discard an existing run in --out and start again"
    )
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (small models run best on 1)")
    g.add_argument(
        "--no-progress", "--quiet", dest="no_progress", action="store_true", help="no progress bar"
    )


def set_threads(args: argparse.Namespace) -> None:
    if args.threads is not None:
        import torch

        if args.threads < 1:
            raise CLIError(f"--threads {args.threads}: expected a positive number of threads")
        torch.set_num_threads(args.threads)


def run_learner(learner: str, args: argparse.Namespace) -> int:
    """Build the learner's configuration from ``args`` (checked before any work), train, print."""
    from symflow.learners import config_class, train_flow_map

    from .config_options import config_from_args

    cfg = config_from_args(config_class(learner), args)
    set_threads(args)
    result = train_flow_map(
        learner=learner,
        config=cfg,
        run_dir=args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print_summary(result.summary, args.out)
    return 0


_SHOWN = (
    ("parameters", "parameters", "{}"),
    ("steps", "steps", "{}"),
    ("train_seconds", "training time", "{:.1f} s"),
    ("best_step", "best validation loss at step", "{}"),
    ("train_mse", "training MSE per component", "{:.3g}"),
    ("val_mse", "validation MSE per component", "{:.3g}"),
    ("residual_mse", "residual (mean squared, held out)", "{:.3g}"),
    ("rollout_error_max", "trajectory error (max to horizon)", "{:.3g}"),
    ("energy_error_max", "relative energy error (max)", "{:.3g}"),
    ("energy_error_late_max", "  … over the last 10%", "{:.3g}"),
    ("energy_error_drift_exponent_median", "  … drift exponent (median)", "{:.2f}"),
    ("energy_error_drift_exponent_max", "  … drift exponent (max)", "{:.2f}"),
    ("energy_error_drifting_samples", "  … states drifting (exponent > ½)", "{}"),
    ("learned_energy_drift_max", "learned H̃ drift (max, / std H̃)", "{:.3g}"),
    ("learned_energy_drift_drift_exponent_max", "  … drift exponent (max)", "{:.2f}"),
    ("symplecticity_defect_max", "symplecticity defect of N(Δt) (max)", "{:.3g}"),
    ("error_max", "error vs reference (max)", "{:.3g}"),
)


def print_summary(summary: dict[str, Any], run_dir: Path) -> None:
    print(f"run: {run_dir}")
    held = summary.get("heldout")
    if held and "error_rms_median" in held:
        print(
            f"  {'held-out trajectory error (RMS)':38s} median {held['error_rms_median']:.3g}, "
            f"max {held['error_rms_max']:.3g} ({held['trajectories']} test trajectories to "
            f"t − t₀ = {held['horizon']:.3g})"
        )
    for key, label, fmt in _SHOWN:
        if key in summary:
            print(f"  {label:38s} {fmt.format(summary[key])}")
    for t, e in (summary.get("error_at") or {}).items():
        rel = e.get("relative_error_mean")
        text = f"median {e['error_median']:.3g}" + (f", mean relative {rel:.3g}" if rel is not None else "")
        print(f"  {'error at t = ' + t:38s} {text}")
    rec = summary.get("hamiltonian_recovery")
    if rec:
        print(
            f"  {'learned H̃ vs true H (affine fit)':38s} slope {rec['slope']:.4f}, "
            f"relative RMS {rec['relative_rms']:.3g}"
        )
    bound = summary.get("a_posteriori")
    if bound:
        print(
            f"  {'a-posteriori on [0, Δt] (max)':38s} ε_GL = {bound['epsilon_gl_max']:.3g}, "
            f"β·ε = {bound['beta_epsilon_dense_max']:.3g}, true error = {bound['true_error_max']:.3g}"
        )
    for what, why in (summary.get("skipped") or {}).items():
        print(f"  skipped {what.replace('_', ' ')}: {why}")
    for name in summary.get("figures", []):
        print(f"  figure: {run_dir / name}")
    print(f"  summary: {run_dir / 'summary.json'}")
