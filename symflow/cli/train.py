"""``symflow train {sympflow,pinn,node,cnf} ...``: one subcommand per learner.

Each learner's module (listed in ``LEARNERS``) defines ``register(subparsers)`` and adds its own
subparser under ``train``.
"""

from __future__ import annotations

import argparse
import importlib

# Learner CLI modules under symflow.cli, in the order `symflow train --help` lists them.
LEARNERS: tuple[str, ...] = ("train_node", "train_sympflow", "train_pinn", "train_cnf")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a learner (SympFlow, PINN, neural ODE, CNF)")
    learners = p.add_subparsers(dest="learner", metavar="LEARNER", parser_class=type(p))
    for name in LEARNERS:
        importlib.import_module(f"symflow.cli.{name}").register(learners)
    p.set_defaults(func=lambda args: _missing(p, args))


def _missing(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    parser.print_help()
    return 2
