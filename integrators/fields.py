"""What integrators need to know about a vector field, beyond ``f(t, y)``.

Every method calls ``f(t, y)`` with ``y`` of shape ``(B, D)`` and ``t`` a tensor broadcastable to the
batch (a 0-d tensor, or shape ``(B,)`` when samples sit at different times).

Explicit splitting methods (Verlet, Yoshida, ...) additionally need the two halves of a separable
Hamiltonian field ``H(q, p) = T(p) + V(q)``::

    dq/dt =  ∂T/∂p (p)     (the *drift*, depends on p only)
    dp/dt = -∂V/∂q (q)     (the *kick*, depends on q only)

A field exposes them through a :class:`SplitField`, either by being one or by carrying one as its
``split`` attribute (``symflow.systems.vector_field`` does the latter for separable systems). This
module knows nothing about Hamiltonians beyond that; systems build the pieces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import InvalidArgumentError

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SplitField:
    """The separable pair of a Hamiltonian field, for explicit symplectic splittings.

    Attributes:
        drift: ``(t, p) -> ∂T/∂p``, shape ``(..., n)``.
        kick: ``(t, q) -> -∂V/∂q``, shape ``(..., n)``.
        n: number of degrees of freedom (``D = 2n``).
    """

    drift: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    kick: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    n: int

    def __call__(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        q, p = y[..., : self.n], y[..., self.n :]
        return torch.cat([self.drift(t, p), self.kick(t, q)], dim=-1)


def split_of(f: object) -> SplitField | None:
    """The :class:`SplitField` of ``f`` if it is separable, else ``None``."""
    if isinstance(f, SplitField):
        return f
    split = getattr(f, "split", None)
    return split if isinstance(split, SplitField) else None


class CheckedField:
    """``f`` with its first output checked against the state it was called with.

    A field that returns the wrong shape can be silently broadcast by the stepper (``-y[:, :1]`` for a
    ``(B, D)`` state gives every component the same derivative), and one with the wrong dtype or device
    silently changes the precision or fails deep inside a stepper. The first evaluation of every solve
    is checked here — shape, dtype and device equal to those of ``y`` — and a mismatch raises one
    :class:`InvalidArgumentError` naming the field, what it returned and what was expected. Later
    calls pay one attribute test.
    """

    __slots__ = ("__weakref__", "name", "pending", "wrapped")

    def __init__(self, f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], name: str) -> None:
        self.wrapped = f
        self.name = name
        self.pending = True

    def __call__(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self.wrapped(t, y)
        if self.pending:
            check_output(self.name, out, y)
            self.pending = False
        return out


def check_output(name: str, out: object, y: torch.Tensor) -> None:
    """Raise :class:`InvalidArgumentError` unless ``out`` matches ``y`` in shape, dtype and device."""
    ok = (
        isinstance(out, torch.Tensor)
        and out.shape == y.shape
        and out.dtype == y.dtype
        and out.device == y.device
    )
    if not ok:
        where = "" if y.device.type == "cpu" else f" on {y.device}"
        raise InvalidArgumentError(
            name,
            out,
            f"{name}(t, y) to return dy/dt like y: a tensor of shape {tuple(y.shape)} and dtype "
            f"{y.dtype}{where}",
        )
