"""``symflow train node``: learn a vector field from a trajectory file with the continuous adjoint.

Example::

    symflow simulate henon_heiles --n 200 --t-end 20 --irregular --noise 1e-3 -o hh.h5
    symflow train node --data hh.h5 --model hnn --steps 2000 --out runs/hnn
    symflow simulate harmonic_oscillator --param-range omega=0.5:2 --n 60 -o family.h5
    symflow train node --data family.h5 --model hnn --steps 0 --lbfgs-steps 100 --out runs/hnn-family
    torchrun --nproc_per_node=2 $(which symflow) train node --data hh.h5 --out runs/hnn-ddp
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from symflow.discovery.models import MODELS
    from symflow.discovery.training import NodeConfig

    d = NodeConfig(data="")
    p = sub.add_parser(
        "node",
        help="neural ODE / HNN discovery from a trajectory file (continuous adjoint)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, help="trajectory file (HDF5, symflow schema or plain layout)")
    p.add_argument("-o", "--out", required=True, help="run directory (config, metrics, checkpoints, summary)")
    p.add_argument(
        "--model", default=d.model, help=f"one of {', '.join(MODELS.names())} (default: %(default)s)"
    )
    p.add_argument("--width", type=int, default=d.width)
    p.add_argument("--depth", type=int, default=d.depth)
    p.add_argument("--activation", default=d.activation)
    p.add_argument(
        "--gradient",
        default=d.gradient,
        choices=["autodiff", "explicit"],
        help="HNN: ∇H by torch.func.grad or an explicit backward sweep (same value, faster)",
    )
    p.add_argument("--method", default=d.method, help="integration method (default: %(default)s)")
    p.add_argument("--rtol", type=float, default=d.rtol)
    p.add_argument("--atol", type=float, default=d.atol)
    p.add_argument("--dt", type=float, default=None, help="fixed step (fixed-step methods)")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--adjoint",
        dest="adjoint",
        action="store_true",
        default=True,
        help="gradients by the continuous adjoint (default)",
    )
    g.add_argument("--backprop", dest="adjoint", action="store_false", help="backprop through the solver")
    p.add_argument(
        "--full-norm",
        dest="seminorm",
        action="store_false",
        default=True,
        help="include the parameter accumulator in the adjoint's error norm",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=d.steps,
        help="Adam steps on random windows (continuous adjoint); 0: none",
    )
    p.add_argument(
        "--lbfgs-steps",
        type=int,
        default=d.lbfgs_steps,
        help="then full-batch L-BFGS steps on the one-step error of every pair of observations (default 0)",
    )
    p.add_argument(
        "--lbfgs-iterations",
        type=int,
        default=d.lbfgs_iterations,
        help="L-BFGS iterations per step (default %(default)s)",
    )
    p.add_argument(
        "--collocation-gap",
        type=float,
        default=d.collocation_gap,
        help="pairs up to this gap use the Hermite–Simpson defect, longer ones an RK4 shot "
        "(default: 0.8 / the data's rate; 0: shoot every pair)",
    )
    p.add_argument(
        "--shot-dt",
        type=float,
        default=d.shot_dt,
        help="largest RK4 step of a shot (default: 0.5 / the data's rate)",
    )
    p.add_argument(
        "--input-scale",
        type=float,
        default=d.input_scale,
        help="HNN: H(y) = MLP(s·y); about 1/(typical |y|) puts the activations in their nonlinear range",
    )
    p.add_argument(
        "--time-dependent",
        action="store_true",
        help="mlp/anode: the field f(t, y) also sees the time (non-autonomous systems)",
    )
    p.add_argument(
        "--augment-dim", type=int, default=d.augment_dim, help="anode: extra dimensions (default %(default)s)"
    )
    p.add_argument(
        "--lift",
        default=d.lift,
        choices=["zeros", "linear"],
        help="anode: z0 = (x0, 0) or a learned A x0 + a (default %(default)s)",
    )
    p.add_argument(
        "--projection",
        default=d.projection,
        choices=["slice", "linear"],
        help="anode: x = the first d components of z or a learned B z + b (default %(default)s)",
    )
    p.add_argument(
        "--warm-start",
        type=int,
        default=d.warm_start_steps,
        metavar="STEPS",
        help="first fit the field to secant slopes of the data for STEPS cheap steps (default 0: off)",
    )
    p.add_argument(
        "--params",
        default=d.params,
        choices=["auto", "ignore"],
        help="auto: a file with per-trajectory parameters (params dataset, e.g. from simulate --param-range) "
        "trains a model conditioned on them, f(t, y; μ) (hnn or mlp); ignore: learn from the states alone",
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--window", type=int, default=d.window, help="observations per training window")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--val-every", type=int, default=d.val_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--grad-clip", type=float, default=d.grad_clip)
    p.add_argument("--dtype", default=d.dtype, choices=["float32", "float64"])
    p.add_argument("--device", default=d.device, help="cpu or cuda (under torchrun: one GPU per rank)")
    p.add_argument("--t-key", default=None, help="plain-layout files: name of the times dataset")
    p.add_argument("--y-key", default=None, help="plain-layout files: name of the states dataset")
    p.add_argument("--mask-key", default=None, help="plain-layout files: name of the mask dataset")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start again in an existing run directory")
    p.add_argument(
        "--no-eval", dest="evaluate", action="store_false", help="skip the comparison with the true system"
    )
    p.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


# Config fields whose command-line flag is not simply --field-name.
_FLAGS = {"warm_start_steps": "--warm-start", "evaluate": "--no-eval"}


def run(args: argparse.Namespace) -> int:
    from symflow.cli.main import CLIError
    from symflow.discovery.training import NodeConfig, train_node
    from symflow.integrators.errors import InvalidArgumentError

    if not Path(args.data).exists():
        raise CLIError(f"--data {args.data}: no such file (create one with `symflow simulate ... -o FILE`)")
    cfg = NodeConfig(
        data=args.data,
        model=args.model,
        width=args.width,
        depth=args.depth,
        activation=args.activation,
        gradient=args.gradient,
        method=args.method,
        rtol=args.rtol,
        atol=args.atol,
        dt=args.dt,
        adjoint=args.adjoint,
        seminorm=args.seminorm,
        steps=args.steps,
        lbfgs_steps=args.lbfgs_steps,
        lbfgs_iterations=args.lbfgs_iterations,
        collocation_gap=args.collocation_gap,
        shot_dt=args.shot_dt,
        time_dependent=args.time_dependent,
        augment_dim=args.augment_dim,
        lift=args.lift,
        projection=args.projection,
        params=args.params,
        warm_start_steps=args.warm_start,
        input_scale=args.input_scale,
        batch_size=args.batch_size,
        window=args.window,
        lr=args.lr,
        weight_decay=args.weight_decay,
        val_fraction=args.val_fraction,
        val_every=args.val_every,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        grad_clip=args.grad_clip,
        dtype=args.dtype,
        device=args.device,
        t_key=args.t_key,
        y_key=args.y_key,
        mask_key=args.mask_key,
    )
    try:
        cfg.validate()  # every option, before any work
    except InvalidArgumentError as err:  # name the command-line flag, not the config field
        flag = _FLAGS.get(err.argument, "--" + err.argument.replace("_", "-"))
        raise InvalidArgumentError(flag, err.received, err.expected) from None
    summary = train_node(
        cfg,
        args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.quiet,
        evaluate=args.evaluate,
    )
    if summary:
        print(json.dumps(summary, indent=2))
    return 0
