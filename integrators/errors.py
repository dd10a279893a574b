"""Typed exceptions shared by every layer of symflow.

Input errors are raised before any work and name the argument and the value received; integration
failures are *data* (a per-sample :class:`~symflow.integrators.solution.Status`) and only become an
:class:`IntegrationError` at the boundary, after the loop, when ``throw=True``.
"""

from __future__ import annotations

from typing import Any


class SymflowError(Exception):
    """Base class of every error symflow raises on purpose."""


class InvalidArgumentError(SymflowError, ValueError):
    """An argument has the wrong value, shape, dtype or device.

    The message names the argument and shows what was received, so the caller can fix the call
    without reading symflow's source.
    """

    def __init__(self, argument: str, received: Any, expected: str) -> None:
        self.argument = argument
        self.received = received
        self.expected = expected
        super().__init__(f"{argument}: expected {expected}, got {_short_repr(received)}")


class UnknownNameError(SymflowError, LookupError):
    """A name was looked up in a registry (systems, methods, learners, options) and is not there."""

    def __init__(self, kind: str, name: str, known: list[str], suggestions: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = known
        self.suggestions = suggestions
        hint = f"; did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else "."
        super().__init__(f"unknown {kind} {name!r}{hint} Known: {', '.join(known)}.")

    def __str__(self) -> str:  # LookupError would otherwise quote the message like a key
        return self.args[0]


class DuplicateRegistrationError(SymflowError, ValueError):
    """A registry entry with this name already exists and ``overwrite=True`` was not given."""


class CapabilityError(SymflowError, ValueError):
    """The request is well formed but the chosen method cannot handle this problem.

    Example: an explicit splitting method (``verlet``) asked to integrate a non-separable Hamiltonian.
    The message names the methods that do apply.
    """


class IntegrationError(SymflowError, RuntimeError):
    """Some samples of a solve failed; raised after the loop when ``throw=True``.

    The failed solve is attached as :attr:`solution`, so nothing computed is lost: the samples that
    succeeded are valid and the failed ones carry their :class:`Status`.
    """

    def __init__(self, message: str, solution: Any = None) -> None:
        super().__init__(message)
        self.solution = solution


def _short_repr(value: Any, limit: int = 120) -> str:
    text = repr(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        kind = "tensor" if type(value).__module__.startswith("torch") else type(value).__name__
        text = f"{kind} of shape {tuple(value.shape)} and dtype {value.dtype}"
        device = getattr(value, "device", None)
        if device is not None and getattr(device, "type", "cpu") != "cpu":
            text += f" on {device}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
