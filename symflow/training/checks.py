"""Range checks for numeric training options and the device, shared by every learner's config and CLI.

A training option outside its range does not fail loudly by itself: a negative gradient-clipping
norm turns descent into ascent, a zero one freezes the model, a negative weight decay grows the
weights — each with exit status 0. So every learner checks its numeric options *before any work*
against declared ranges::

    RULES = {"steps": POSITIVE_INT, "lr": POSITIVE, "grad_clip": POSITIVE.or_none("no clipping"),
             "val_fraction": Range(0, 1, high_open=True)}
    check_ranges(config, RULES)        # a dataclass, any object or a mapping; names as in RULES
    device = check_device(config.device)

Errors are :class:`~symflow.integrators.errors.InvalidArgumentError` naming the option, the range
and the value received (the CLI prints them as one line). ``flag=True`` names options as command-line
flags (``--grad-clip``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from symflow.integrators.errors import InvalidArgumentError


@dataclass(frozen=True)
class Range:
    """The allowed values of one numeric option: ``[low, high]`` (either end open or absent), finite,
    integers only if ``integer``; ``None`` allowed if ``none_means`` says what it means."""

    low: float | None = None
    high: float | None = None
    integer: bool = False
    low_open: bool = False
    high_open: bool = False
    none_means: str | None = None

    def or_none(self, meaning: str) -> Range:
        """The same range, also accepting ``None`` (``meaning``: what ``None`` does, for the message)."""
        return replace(self, none_means=meaning)

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        lo, hi = self.low, self.high
        if lo is not None and hi is None:
            if lo == 0 and self.low_open:
                text = "a positive integer" if self.integer else "a positive finite number"
            elif lo == 0:
                text = "a non-negative integer" if self.integer else "a non-negative finite number"
            else:
                text = f"{kind} {'>' if self.low_open else '≥'} {lo:g}"
        elif lo is None and hi is not None:
            text = f"{kind} {'<' if self.high_open else '≤'} {hi:g}"
        elif lo is not None and hi is not None:
            text = f"{kind} in {'(' if self.low_open else '['}{lo:g}, {hi:g}{')' if self.high_open else ']'}"
        else:
            text = kind
        if self.none_means is not None:
            text += f", or none ({self.none_means})"
        return text

    def check(self, name: str, value: Any) -> Any:
        """``value`` if it lies in the range (ints stay ints); an :class:`InvalidArgumentError` otherwise."""
        if value is None:
            if self.none_means is None:
                raise InvalidArgumentError(name, value, self.describe())
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidArgumentError(name, value, self.describe())
        if self.integer and not isinstance(value, int):
            raise InvalidArgumentError(name, value, self.describe())
        x = float(value)
        ok = math.isfinite(x)
        if ok and self.low is not None:
            ok = x > self.low if self.low_open else x >= self.low
        if ok and self.high is not None:
            ok = x < self.high if self.high_open else x <= self.high
        if not ok:
            raise InvalidArgumentError(name, value, self.describe())
        return value


POSITIVE_INT = Range(0, integer=True, low_open=True)
NON_NEGATIVE_INT = Range(0, integer=True)
POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
FRACTION = Range(0, 1, high_open=True)  # e.g. a validation fraction: [0, 1)
UNIT_INTERVAL_OPEN = Range(0, 1, low_open=True, high_open=True)


def check_ranges(values: Any, rules: Mapping[str, Range], *, flag: bool = False) -> None:
    """Check every option named in ``rules`` that ``values`` (an object or a mapping) has.

    ``flag=True`` names them as command-line flags in errors (``grad_clip`` → ``--grad-clip``).
    """
    for name, rule in rules.items():
        if isinstance(values, Mapping):
            if name not in values:
                continue
            value = values[name]
        elif hasattr(values, name):
            value = getattr(values, name)
        else:
            continue
        rule.check("--" + name.replace("_", "-") if flag else name, value)


_DEVICE_KINDS = ("cpu", "cuda", "mps")


def check_device(value: Any, name: str = "device") -> torch.device:
    """A ``torch.device`` this machine has: ``cpu``, ``cuda``/``cuda:N`` (with CUDA available and that
    many GPUs) or ``mps``; anything else is an :class:`InvalidArgumentError` before any work."""
    if isinstance(value, torch.device):
        device = value
    else:
        try:
            device = torch.device(value)
        except (RuntimeError, TypeError, ValueError):
            raise InvalidArgumentError(name, value, "a torch device: cpu, cuda, cuda:N or mps") from None
    if device.type not in _DEVICE_KINDS:
        raise InvalidArgumentError(name, value, "a torch device: cpu, cuda, cuda:N or mps")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise InvalidArgumentError(name, value, f"a device this machine has ({why}; use cpu)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise InvalidArgumentError(name, value, f"a GPU index below {count} (GPUs visible: {count})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidArgumentError(name, value, "a device this machine has (MPS is not available; use cpu)")
    return device
