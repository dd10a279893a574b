"""``symflow train pinn``: the PINN learners (flow map, or a single initial value problem).

Examples::

    symflow train pinn --system henon_heiles --dt 1 --energy-max 0.0833 --steps 3000 --out runs/pinn
    symflow train pinn --data hh.h5 --dt 1 --steps 3000 --out runs/pinn-data
    symflow train pinn --kind ivp --system harmonic_oscillator --x0 1,0 --t-end 10 --out runs/ivp

The options are generated from :class:`~symflow.learners.config.PinnConfig`.
"""

from __future__ import annotations

import argparse

from . import learner_options as opts


def register(sub: argparse._SubParsersAction) -> None:
    from symflow.learners.config import PinnConfig

    from .config_options import add_config_options

    p = sub.add_parser(
        "pinn",
        help="PINN: flow map N(t, x0) (baseline to SympFlow) or one IVP N(t)",
        description="Train a physics-informed network with the initial condition imposed exactly "
        "(x0 + t·Ñ, or the TFC form Ñ(t) − Ñ(0) + x0). --kind flow learns the flow map like SympFlow but "
        "without symplectic structure, from a system (--system) or a trajectory file (--data); --kind ivp "
        "solves one initial value problem of a system.",
        epilog=__doc__.split("Examples::", 1)[1].split("The options")[0].rstrip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    opts.add_run_options(p)
    add_config_options(p, PinnConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return opts.run_learner("pinn", args)
