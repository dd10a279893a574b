"""Argument parsing and error reporting for the ``symflow`` command."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence

from symflow.integrators.errors import SymflowError

# Command modules, in the order `symflow --help` lists them. Each defines register(subparsers).
COMMANDS = ("systems", "simulate", "validate", "train", "diagnose", "export", "demo")


class CLIError(SymflowError):
    """A mistake in the command line (missing file, bad option value) reported as one line."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what batch schedulers and ``kill`` send), raised where Ctrl-C would be, so that every
    command cleans up the same way: writers remove their partial files, training checkpoints."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


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
    from symflow.training import TrainingInterrupted

    command = " ".join(x for x in (args.command, getattr(args, "learner", None)) if x)
    try:
        from .plugins import load_plugins

        load_plugins(args.plugin)
        with _sigterm_as_interrupt():
            return int(args.func(args) or 0)
    except Terminated:
        print("symflow: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("symflow: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except TrainingInterrupted as err:  # stopped cleanly by a signal, checkpoint written
        print(f"symflow {command}: {_one_line(err)}", file=sys.stderr)
        return 128 + err.signum
    except (SymflowError, OSError) as err:
        if args.debug:
            traceback.print_exc()
        else:
            print(f"symflow {command}: error: {_one_line(err)}", file=sys.stderr)
            print("(add --debug before the command for the full traceback)", file=sys.stderr)
        return 1


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and not isinstance(err, SymflowError) and err.strerror:
        where = f": {err.filename}" if err.filename else ""
        return f"{err.strerror}{where}"
    return " ".join(str(err).split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
