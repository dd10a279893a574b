"""``symflow train sympflow``: train a SympFlow from a system's equations or from a trajectory file.

Examples::

    symflow train sympflow --system henon_heiles --dt 1 --energy-max 0.0833 \\
        --steps 1000 --lbfgs-steps 300 --out runs/hh           # Hamiltonian matching
    symflow train sympflow --data hh.h5 --dt 1 --steps 4000 --out runs/hh-data   # from data

The options are generated from :class:`~symflow.learners.config.SympFlowConfig`.
"""

from __future__ import annotations

import argparse

from . import learner_options as opts


def register(sub: argparse._SubParsersAction) -> None:
    from symflow.learners.config import SympFlowConfig

    from .config_options import add_config_options

    p = sub.add_parser(
        "sympflow",
        help="SympFlow (exactly symplectic flow map) from a system (--system) or trajectories (--data)",
        description="Train a SympFlow N(t, x0) on t ∈ [0, Δt]: by Hamiltonian matching dN/dt = J∇H(N) on "
        "a registered system (--system), or supervised on the observed pairs of a trajectory file (--data, "
        "with a seeded train/validation/test split and a held-out evaluation). Writes config.json, "
        "metrics.jsonl, checkpoints, summary.json and figures to --out.",
        epilog=__doc__.split("Examples::", 1)[1].split("The options")[0].rstrip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    opts.add_run_options(p)
    add_config_options(p, SympFlowConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return opts.run_learner("sympflow", args)
