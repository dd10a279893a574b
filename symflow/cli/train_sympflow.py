"""``symflow train sympflow``: train a SympFlow by unsupervised Hamiltonian matching.

Example (the seed's Hénon–Heiles experiment)::

    symflow train sympflow --system henon_heiles --dt 1.0 --energy-max 0.0833 \\
        --steps 3000 --lbfgs-steps 300 --out runs/hh
"""

from __future__ import annotations

import argparse

from . import learner_options as opts


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sympflow",
        help="SympFlow (exactly symplectic flow map) by Hamiltonian matching",
        description="Train a SympFlow N(t, x0) on Ω × [0, Δt] so that dN/dt = J∇H(N); writes config, "
        "metrics, checkpoints, summary.json and figures to --out.",
    )
    opts.add_run_options(p)
    opts.add_flow_map_options(p)
    p.add_argument("--layers", type=int, default=4, help="number of (φ_q, φ_p) block pairs L (default 4)")
    p.add_argument("--width", type=int, default=10, help="hidden units of each potential (default 10)")
    p.add_argument("--hidden-layers", type=int, default=2, help="hidden layers of each potential (default 2)")
    p.add_argument(
        "--derivatives",
        choices=("closed_form", "func", "autograd"),
        default="closed_form",
        help="how ∇V, ∇K and dN/dt are computed (same numbers, different speed; default closed_form)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from symflow.learners import train_sympflow

    opts.set_threads(args)
    result = train_sympflow(
        args.system,
        model={
            "layers": args.layers,
            "width": args.width,
            "hidden_layers": args.hidden_layers,
            "derivatives": args.derivatives,
        },
        **opts.training_kwargs(args),
        **opts.flow_map_kwargs(args),
    )
    opts.print_summary(result.summary, args.out)
    return 0
