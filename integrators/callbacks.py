"""Step callbacks: user code called by the drivers around every step (logging, step-size studies).

An object (or a field, as torchdiffeq does) may define any of

    callback_step(t0, y0, dt)           before every attempted step
    callback_accept_step(t0, y0, dt)    after an adaptive step is accepted
    callback_reject_step(t0, y0, dt)    after an adaptive step is rejected

Arguments are batched: ``t0 (B,)``, ``y0 (B, D)``, ``dt (B,)`` in the solver's (increasing) time. The
accept and reject callbacks receive only the rows concerned, and are not called when no row is. They
observe; whatever they return is ignored, and they must not modify their arguments in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import InvalidArgumentError

Tensor = torch.Tensor
Callback = Callable[[Tensor, Tensor, Tensor], object]
NAMES = ("callback_step", "callback_accept_step", "callback_reject_step")


@dataclass(frozen=True)
class StepCallbacks:
    step: Callback | None = None
    accept: Callback | None = None
    reject: Callback | None = None

    @staticmethod
    def of(obj: object) -> StepCallbacks | None:
        """The callbacks an object defines (``None`` when it defines none)."""
        if obj is None:
            return None
        if isinstance(obj, StepCallbacks):
            return obj
        found = [getattr(obj, n, None) for n in NAMES]
        for name, fn in zip(NAMES, found):
            if fn is not None and not callable(fn):
                raise InvalidArgumentError(f"callbacks.{name}", fn, "a callable (t0, y0, dt)")
        if not any(found):
            raise InvalidArgumentError("callbacks", obj, f"an object defining one of {', '.join(NAMES)}")
        return StepCallbacks(*found)

    def attempted(self, t: Tensor, y: Tensor, h: Tensor) -> None:
        if self.step is not None:
            self.step(t, y, h)

    def decided(self, t: Tensor, y: Tensor, h: Tensor, accept: Tensor, active: Tensor) -> None:
        for fn, rows in ((self.accept, accept), (self.reject, active & ~accept)):
            if fn is not None and bool(rows.any()):
                fn(t[rows], y[rows], h[rows])
