"""Argument parsing and error reporting for the ``symflow`` command."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from symflow.integrators.errors import SymflowError

# Command modules, in the order `symflow --help` lists them. Each defines register(subparsers).
COMMANDS = ("systems", "simulate", "validate", "train", "diagnose", "demo")


class CLIError(SymflowError):
    """A mistake in the command line (missing file, bad option value) reported as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 with usage; keep that, add a hint
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n(run '{self.prog} --help' for the options)\n")


def build_parser() -> argparse.ArgumentParser:
    from symflow import __version__

    parser = _Parser(
        prog="symflow",
        description="Hamiltonian dynamics with PyTorch: simulate, train, diagnose.",
    )
    parser.add_argument("--version", action="version", version=f"symflow {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument(
        "--plugin",
        action="append",
        metavar="FILE_OR_MODULE",
        help="import a Python file or module that registers your own systems (repeatable; also "
        "SYMFLOW_PLUGINS)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"symflow.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        from .plugins import load_plugins

        load_plugins(args.plugin)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("symflow: interrupted", file=sys.stderr)
        return 130
    except (SymflowError, FileNotFoundError, PermissionError, IsADirectoryError) as err:
        if args.debug:
            traceback.print_exc()
        else:
            print(f"symflow {args.command}: error: {_one_line(err)}", file=sys.stderr)
            print("(add --debug before the command for the full traceback)", file=sys.stderr)
        return 1


def _one_line(err: BaseException) -> str:
    if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)) and err.filename:
        return f"{err.strerror}: {err.filename}"
    return " ".join(str(err).split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
