"""``symflow train pinn``: the PINN learners (flow map, or a single initial value problem).

Examples::

    symflow train pinn --system henon_heiles --dt 1.0 --energy-max 0.0833 --steps 3000 --out runs/pinn
    symflow train pinn --kind ivp --system harmonic_oscillator --x0 1,0 --t-end 10 --out runs/ivp
"""

from __future__ import annotations

import argparse

from . import learner_options as opts
from .main import CLIError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pinn",
        help="PINN: flow map N(t, x0) (baseline to SympFlow) or one IVP N(t)",
        description="Train a physics-informed network with the initial condition imposed exactly "
        "(x0 + t·Ñ, or the TFC form Ñ(t) − Ñ(0) + x0). --kind flow learns the flow map on Ω × [0, Δt] "
        "like SympFlow but without symplectic structure; --kind ivp solves one initial value problem.",
    )
    opts.add_run_options(p)
    opts.add_flow_map_options(p)
    p.add_argument("--kind", choices=("flow", "ivp"), default="flow", help="flow map (default) or single IVP")
    p.add_argument(
        "--constraint", choices=("linear", "tfc"), default="linear", help="how N(0) = x0 is imposed"
    )
    p.add_argument("--width", type=int, default=None, help="hidden units (default 30 flow, 32 ivp)")
    p.add_argument("--hidden-layers", type=int, default=2, help="hidden layers (default 2)")
    p.add_argument(
        "--derivatives", choices=("func", "autograd"), default="func", help="how dN/dt is computed"
    )
    p.add_argument("--x0", default=None, help="--kind ivp: the initial state, comma separated (e.g. 1,0)")
    p.add_argument("--t-end", type=float, default=None, help="--kind ivp: the end of the time interval")
    p.set_defaults(func=run)


def _state(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise CLIError(f"--x0 {text!r}: expected comma-separated numbers, e.g. --x0 1,0") from err


def run(args: argparse.Namespace) -> int:
    from symflow.learners import train_pinn

    opts.set_threads(args)
    model = {"hidden_layers": args.hidden_layers, "constraint": args.constraint}
    if args.width is not None:
        model["width"] = args.width
    if args.kind == "ivp":
        if args.x0 is None or args.t_end is None:
            raise CLIError("--kind ivp needs --x0 (the initial state) and --t-end (the interval's end)")
        result = train_pinn(
            args.system,
            kind="ivp",
            x0=_state(args.x0),
            t_end=args.t_end,
            model=model,
            **opts.training_kwargs(args),
        )
    else:
        if args.x0 is not None or args.t_end is not None:
            raise CLIError("--x0 and --t-end apply to --kind ivp only")
        model["derivatives"] = args.derivatives
        result = train_pinn(
            args.system, kind="flow", model=model, **opts.training_kwargs(args), **opts.flow_map_kwargs(args)
        )
    opts.print_summary(result.summary, args.out)
    return 0
