"""The ``symflow`` command line: ``symflow systems | simulate | train | diagnose | demo``.

Each command lives in its own module exposing ``register(subparsers)``, which adds a subparser
whose ``func`` default is the function to run with the parsed arguments. User mistakes raise
:class:`~symflow.integrators.errors.SymflowError` (or ``CLIError``) and are printed as one line
with a non-zero exit; ``--debug`` shows the traceback instead.
"""

from .main import CLIError, main

__all__ = ["CLIError", "main"]
