"""Validation and normalisation of solve inputs, done before any work.

Every check raises :class:`InvalidArgumentError` naming the argument and showing what was
received. After :func:`prepare_problem`, drivers see a flat batch ``y0 (B, D)``, time grids
``ts (B, T)`` that increase (a decreasing grid is integrated as the time-reversed problem), and
the shared grid ``(T,)`` when there is one (the fast path).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .errors import InvalidArgumentError
from .fields import CheckedField, Field, SplitField, split_of

Tensor = torch.Tensor


@dataclass
class Problem:
    f: Field
    y0: Tensor  # (B, D)
    ts: Tensor  # (B, T), increasing
    shared: Tensor | None  # (T,) when every sample uses the same grid
    batch_shape: tuple[int, ...]
    reverse: bool  # True when the user's grid decreases (solved as s = -t)
    split: SplitField | None

    @property
    def batch(self) -> int:
        return self.y0.shape[0]


def positive_float(name: str, value: Any, *, allow_zero: bool = False, allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = float(value)
        else:
            raise InvalidArgumentError(name, value, "a positive number")
    value = float(value)
    ok = (value >= 0 if allow_zero else value > 0) and (allow_inf or math.isfinite(value))
    if not ok or math.isnan(value):
        raise InvalidArgumentError(
            name, value, "a non-negative number" if allow_zero else "a positive number"
        )
    return value


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(name, value, "a positive integer")
    return value


def tolerance(name: str, value: Any, y0: Tensor) -> float | Tensor:
    """rtol/atol: a positive float, or a tensor broadcastable to ``(D,)`` (per component)."""
    if isinstance(value, torch.Tensor) and value.numel() > 1:
        if value.dim() != 1 or value.shape[0] != y0.shape[-1]:
            raise InvalidArgumentError(name, value, f"a float or a tensor of shape ({y0.shape[-1]},)")
        if not (value > 0).all() or not torch.isfinite(value).all():
            raise InvalidArgumentError(name, value, "positive finite values")
        return value.to(dtype=y0.dtype, device=y0.device)
    return positive_float(name, value)


def prepare_problem(f: Any, y0: Any, ts: Any) -> Problem:
    if not callable(f):
        raise InvalidArgumentError("f", f, "a callable f(t, y) returning dy/dt")
    if not isinstance(y0, torch.Tensor):
        raise InvalidArgumentError("y0", y0, "a torch.Tensor of shape (..., D)")
    if not y0.is_floating_point():
        raise InvalidArgumentError("y0", y0, "a floating-point tensor (float32 or float64)")
    if y0.dim() == 0:
        raise InvalidArgumentError("y0", y0, "a tensor of shape (..., D); got a scalar (use shape (1,))")
    if not isinstance(ts, torch.Tensor):
        try:
            ts = torch.as_tensor(ts, dtype=y0.dtype, device=y0.device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise InvalidArgumentError("ts", ts, "a tensor of times, shape (T,) or (*batch, T)") from err
    if not ts.is_floating_point():
        ts = ts.to(y0.dtype)
    if ts.device != y0.device:
        raise InvalidArgumentError("ts", ts, f"a tensor on the same device as y0 ({y0.device})")
    batch_shape = tuple(y0.shape[:-1])
    if ts.dim() == 0:
        raise InvalidArgumentError("ts", ts, "a 1-d grid (T,) or per-sample grids (*batch, T)")
    if ts.dim() > 1 and tuple(ts.shape[:-1]) != batch_shape:
        raise InvalidArgumentError(
            "ts", ts, f"shape (T,) or (*batch, T) with batch {batch_shape} matching y0 {tuple(y0.shape)}"
        )
    if ts.shape[-1] < 1:
        raise InvalidArgumentError("ts", ts, "at least one time (the initial time)")
    reverse = check_times(ts)
    if ts.dtype != y0.dtype:
        # Times follow the state's precision; a grid that is fine in its own dtype can overflow or
        # collapse (t_k == t_{k+1}) when rounded, which would silently drop an output interval.
        cast = ts.to(y0.dtype)
        defect = _cast_defect(ts, cast, reverse)
        if defect is not None:
            raise InvalidArgumentError(
                "ts",
                defect,
                f"times that stay finite and strictly monotone in y0's dtype ({y0.dtype}); pass y0 in "
                f"{ts.dtype} or space the times further apart",
            )
        ts = cast
    split = split_of(f)
    if split is not None:
        split = SplitField(
            drift=CheckedField(split.drift, "f.drift" if split is f else "f.split.drift"),
            kick=CheckedField(split.kick, "f.kick" if split is f else "f.split.kick"),
            n=split.n,
        )
    f = CheckedField(f, "f")
    flat_y0 = y0.reshape(-1, y0.shape[-1])
    b = flat_y0.shape[0]
    if ts.dim() == 1:
        shared = ts
        flat_ts = ts.expand(b, ts.shape[0])
    else:
        shared = None
        flat_ts = ts.reshape(b, ts.shape[-1])
    if reverse:
        f, split = _reversed(f, split)
        shared = -shared if shared is not None else None
        flat_ts = -flat_ts
    return Problem(f, flat_y0, flat_ts, shared, batch_shape, reverse, split)


def check_times(ts: Tensor) -> bool:
    """Finite and strictly monotone times (``(T,)`` or ``(*batch, T)``); returns ``True`` when they
    decrease. Errors name the offending *time* (``ts[k]``, or ``ts[i, k]`` per sample), not an interval.
    """
    ts = ts.detach()
    finite = torch.isfinite(ts)
    if not finite.all():
        where = _first_true(~finite)
        raise InvalidArgumentError("ts", f"ts{where} = {float(ts[where])}", "finite times")
    if ts.shape[-1] < 2:
        return False
    d = ts.diff(dim=-1)
    first = float(d.reshape(-1)[0])
    reverse = first < 0
    bad = ~(d < 0) if reverse else ~(d > 0)
    if bad.any():
        at = _first_true(bad)
        k = (*at[:-1], at[-1] + 1)  # the time that fails to move on, not the interval
        before = (*at[:-1], at[-1])
        raise InvalidArgumentError(
            "ts",
            f"times not strictly monotone: ts{_fmt(k)} = {float(ts[k])!r} after ts{_fmt(before)} = "
            f"{float(ts[before])!r}",
            "strictly increasing (or strictly decreasing) times",
        )
    return reverse


def _first_true(mask: Tensor) -> tuple[int, ...]:
    flat = int(mask.reshape(-1).nonzero()[0, 0])
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), mask.shape))


def _fmt(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, index)) + "]"


def _cast_defect(original: Tensor, cast: Tensor, reverse: bool) -> str | None:
    """What goes wrong when the times ``original`` are rounded to ``cast``'s dtype, or ``None``."""
    original, cast = original.detach(), cast.detach()
    finite = torch.isfinite(cast)
    if not finite.all():
        at = _first_true(~finite)
        return f"ts{_fmt(at)} = {float(original[at])!r}, not finite in {cast.dtype}"
    if cast.shape[-1] < 2:
        return None
    d = cast.diff(dim=-1)
    bad = ~(d < 0) if reverse else ~(d > 0)
    if not bad.any():
        return None
    at = _first_true(bad)
    k = (*at[:-1], at[-1] + 1)
    before = (*at[:-1], at[-1])
    return (
        f"ts{_fmt(k)} = {float(original[k])!r} becomes {float(cast[k])!r} once cast to y0's dtype "
        f"{cast.dtype}, no longer after ts{_fmt(before)} = {float(cast[before])!r}"
    )


def _reversed(f: Field, split: SplitField | None) -> tuple[Field, SplitField | None]:
    """``s = -t``: ``dy/ds = -f(-s, y)``; a separable pair reverses both halves."""

    def g(s: Tensor, y: Tensor) -> Tensor:
        return -f(-s, y)

    g.reversed_of = f  # type: ignore[attr-defined]  # compiled code is cached on the user's field (.compiled)
    if split is None:
        return g, None
    rsplit = SplitField(
        drift=lambda s, p: -split.drift(-s, p), kick=lambda s, q: -split.kick(-s, q), n=split.n
    )
    return rsplit, rsplit
