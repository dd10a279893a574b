"""Non-terminating events: batched zero crossings of ``g(t, y)`` located on the dense output.

After each accepted step ``[t, t + h]`` every event function is evaluated at the step end. A sign
change in the requested direction (``+1``: ``g`` goes from ``< 0`` to ``≥ 0``; ``−1`` the reverse;
``0`` either) brackets a root in ``θ ∈ (0, 1]``. The root is found by the Illinois variant of
regula falsi on ``θ ↦ g(t + θh, y(θ))`` with the method's dense output ``y(θ)`` (superlinear and
bracketing, so it never leaves the step), not by taking the midpoint of the bracketing steps.

Optionally the root is then *polished* on real partial steps: ``y(θ)`` is replaced by one step of
the integrator itself from ``(t, y)`` of size ``θh``, and Newton's method on that map (with the
derivative from the interpolant) moves ``θ`` to the zero of the integrator's own trajectory. This
removes the interpolation error, so crossings are as accurate as the integration.

Semantics follow SciPy's ``solve_ivp`` events (direction filter, a state exactly on the surface at
the start of a step is not counted again), except that events never terminate the solve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .errors import InvalidArgumentError
from .solution import EventRecord

Tensor = torch.Tensor
EventFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Event:
    """An event function ``g(t, y) -> (B,)`` and the crossing direction to record."""

    fn: EventFn
    direction: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise InvalidArgumentError("event.fn", self.fn, "a callable g(t, y) returning shape (B,)")
        if self.direction not in (-1, 0, 1):
            raise InvalidArgumentError("event.direction", self.direction, "-1, 0 or +1")


def as_events(events: object) -> tuple[Event, ...]:
    if events is None:
        return ()
    if isinstance(events, Event):
        return (events,)
    if callable(events):
        return (Event(events),)
    if isinstance(events, Sequence) and not isinstance(events, str):
        out = []
        for e in events:
            out.extend(as_events(e))
        return tuple(out)
    raise InvalidArgumentError("events", events, "an Event, a callable g(t, y), or a list of them")


class EventTracker:
    """Watches sign changes step by step and collects located crossings."""

    def __init__(self, events: tuple[Event, ...], t0: Tensor, y0: Tensor, *, max_iter: int = 100) -> None:
        self.events = events
        self.max_iter = max_iter
        self.g_old = self.evaluate(t0, y0)
        self._t: list[Tensor] = []
        self._y: list[Tensor] = []
        self._sample: list[Tensor] = []
        self._event: list[Tensor] = []
        self.dim = y0.shape[-1]
        self.like = y0

    def evaluate(self, t: Tensor, y: Tensor) -> Tensor:
        values = []
        for e in self.events:
            g = e.fn(t, y)
            if not isinstance(g, Tensor) or g.shape != y.shape[:-1]:
                raise InvalidArgumentError(
                    f"event {e.name or e.fn!r}",
                    g,
                    f"a tensor of shape {tuple(y.shape[:-1])} (one value per sample)",
                )
            values.append(g)
        return torch.stack(values, dim=-1)  # (B, E)

    def _crossed(self, g_old: Tensor, g_new: Tensor) -> Tensor:
        up = (g_old < 0) & (g_new >= 0)
        down = (g_old > 0) & (g_new <= 0)
        masks = []
        for i, e in enumerate(self.events):
            if e.direction > 0:
                masks.append(up[:, i])
            elif e.direction < 0:
                masks.append(down[:, i])
            else:
                masks.append(up[:, i] | down[:, i])
        return torch.stack(masks, dim=-1)

    def step(
        self,
        t_old: Tensor,
        h: Tensor,
        y_new: Tensor,
        accept: Tensor,
        interp: Callable[[Tensor, Tensor], Tensor],
        exact: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> None:
        """Process one (batched) step; ``interp(rows, θ)`` and ``exact(rows, θ)`` give ``(M, D)`` states."""
        g_new = self.evaluate(t_old + h, y_new)
        crossed = self._crossed(self.g_old, g_new) & accept.unsqueeze(-1)
        if crossed.any():
            rows, which = crossed.nonzero(as_tuple=True)
            self._locate(rows, which, t_old, h, self.g_old[rows, which], g_new[rows, which], interp, exact)
        self.g_old = torch.where(accept.unsqueeze(-1), g_new, self.g_old)

    def _g_pairs(self, rows: Tensor, which: Tensor, t: Tensor, y: Tensor) -> Tensor:
        g = self.evaluate(t, y)  # (M, E)
        return g.gather(1, which.unsqueeze(1)).squeeze(1)

    def _locate(self, rows, which, t_old, h, g_lo, g_hi, interp, exact) -> None:
        t0, hh = t_old[rows], h[rows]
        lo = torch.zeros_like(g_lo)
        hi = torch.ones_like(g_lo)
        theta = hi.clone()
        g_theta = g_hi.clone()
        kept_lo = torch.zeros_like(g_lo, dtype=torch.bool)
        kept_hi = torch.zeros_like(g_lo, dtype=torch.bool)
        eps = torch.finfo(g_lo.dtype).eps
        done = g_hi == 0
        for _ in range(self.max_iter):
            denom = g_hi - g_lo
            secant = (lo * g_hi - hi * g_lo) / torch.where(denom == 0, torch.ones_like(denom), denom)
            cand = torch.where((denom == 0) | ~torch.isfinite(secant), 0.5 * (lo + hi), secant)
            cand = torch.minimum(torch.maximum(cand, lo), hi)
            theta = torch.where(done, theta, cand)
            g_theta = torch.where(
                done, g_theta, self._g_pairs(rows, which, t0 + theta * hh, interp(rows, theta))
            )
            same_lo = torch.sign(g_theta) == torch.sign(g_lo)
            # Illinois: when one end survives twice in a row, halve its value to force progress.
            g_hi = torch.where(same_lo & kept_hi & ~done, 0.5 * g_hi, g_hi)
            g_lo = torch.where(~same_lo & kept_lo & ~done, 0.5 * g_lo, g_lo)
            lo = torch.where(same_lo & ~done, theta, lo)
            g_lo = torch.where(same_lo & ~done, g_theta, g_lo)
            hi = torch.where(~same_lo & ~done, theta, hi)
            g_hi = torch.where(~same_lo & ~done, g_theta, g_hi)
            kept_hi, kept_lo = same_lo, ~same_lo
            done = done | (g_theta == 0) | ((hi - lo) <= 4 * eps)
            if bool(done.all()):
                break
        if exact is not None:
            theta = self._polish(rows, which, t0, hh, theta, interp, exact)
            y = exact(rows, theta)
        else:
            y = interp(rows, theta)
        self._t.append(t0 + theta * hh)
        self._y.append(y)
        self._sample.append(rows)
        self._event.append(which)

    def _polish(self, rows, which, t0, hh, theta, interp, exact, iterations: int = 8) -> Tensor:
        """Zero of ``G(θ) = g(t + θh, step(θh))`` on real partial steps (see module doc).

        The first update is Newton with the interpolant's slope; the following ones are secant
        steps on ``G`` itself (superlinear), stopping when ``G`` is zero or ``θ`` stops moving.
        """
        delta = 1e-4
        up = (theta + delta).clamp(max=1.0)
        dn = (theta - delta).clamp(min=0.0)
        slope = (
            self._g_pairs(rows, which, t0 + up * hh, interp(rows, up))
            - self._g_pairs(rows, which, t0 + dn * hh, interp(rows, dn))
        ) / (up - dn)
        g_prev = self._g_pairs(rows, which, t0 + theta * hh, exact(rows, theta))
        ok = (slope != 0) & torch.isfinite(slope)
        theta_prev = theta
        theta = (theta - torch.where(ok, g_prev / torch.where(ok, slope, torch.ones_like(slope)), 0.0)).clamp(
            0, 1
        )
        eps = torch.finfo(theta.dtype).eps
        for _ in range(iterations):
            g = self._g_pairs(rows, which, t0 + theta * hh, exact(rows, theta))
            denom = g - g_prev
            moving = (denom != 0) & (theta != theta_prev) & (g != 0)
            step = torch.where(
                moving, g * (theta - theta_prev) / torch.where(moving, denom, torch.ones_like(denom)), 0.0
            )
            theta_prev, g_prev = theta, g
            theta = (theta - step).clamp(0.0, 1.0)
            if bool((step.abs() <= 4 * eps).all()):
                break
        return theta

    def record(self, n_samples: int) -> EventRecord:
        like = self.like
        if not self._t:
            empty = like.new_zeros(0)
            return EventRecord(
                empty,
                like.new_zeros(0, self.dim),
                torch.zeros(0, dtype=torch.long, device=like.device),
                torch.zeros(0, dtype=torch.long, device=like.device),
            )
        t = torch.cat(self._t)
        y = torch.cat(self._y)
        sample = torch.cat(self._sample)
        event = torch.cat(self._event)
        # Sort by sample, then time (stable, so simultaneous crossings keep event order).
        order = torch.argsort(t, stable=True)
        order = order[torch.argsort(sample[order], stable=True)]
        return EventRecord(t[order], y[order], sample[order], event[order])
