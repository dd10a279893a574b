"""Dense output: the solution at any time of the solved interval, ``solve(..., dense_output=True)``.

During the solve a :class:`DenseRecorder` keeps what every accepted step's interpolant needs; after it,
:meth:`DenseRecorder.finish` turns that into a :class:`DenseInterpolation`, which
:meth:`Solution.evaluate <symflow.integrators.Solution.evaluate>` queries:

* **methods with a continuous extension** (``dopri5``: Dormand & Prince's order-4 dense output;
  ``tsit5``: order 4; ``bosh3``: cubic Hermite written as ``bᵢ(θ)``) interpolate inside a step
  from its stages, ``y(t₀ + θh) = y₀ + h Σᵢ bᵢ(θ) kᵢ`` (Hairer, Nørsett & Wanner, *Solving ODEs I*,
  §II.6) — in adaptive solves with the stages the step computed, in fixed-step solves with the stages
  recomputed for all steps at once after the loop;
* **every other method** (fixed-step explicit RK, implicit Gauss–Legendre, splittings) gets the cubic
  Hermite interpolant of the step's end states and the field there (order 3, ``O(h⁴)`` locally),
  with the field evaluated for all steps in one batched call after the loop.

Interpolants are built on the solver's own steps, per sample: each sample is queried inside its own
steps, whatever its grid. The result is differentiable, through the stored states and stages, with
respect to ``y0`` and the field's parameters (when the solve was differentiated by ordinary autograd,
not the adjoint) and with respect to the query times. Samples that failed have no dense output past
their failure (NaN there). Memory grows like steps × samples × D (× stages for the RK extension).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .errors import InvalidArgumentError
from .explicit import ExplicitRK, hermite

Tensor = torch.Tensor


class DenseRecorder:
    """Collects the steps of one solve (flat batch ``B``) for its interpolant.

    ``rk`` is the explicit RK whose continuous extension applies (``None``: cubic Hermite); ``f`` is
    the field the driver integrates (already time-reversed for decreasing grids).
    """

    def __init__(self, rk: ExplicitRK | None, f: Any, y0: Tensor, ts: Tensor) -> None:
        self.rk = rk
        self.f = f
        self.y_start = y0
        self.ts = ts  # (B, T) as the driver sees them (increasing)
        # Adaptive records: accepted rows only.
        self._rows: list[tuple[Tensor, ...]] = []
        # Fixed-step records: every row of every step, masked at the end.
        self._steps: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []

    # -- hooks called by the drivers ----------------------------------------------------------------
    def adaptive(
        self,
        t_old: Tensor,
        h: Tensor,
        y_old: Tensor,
        ks: Tensor,
        accept: Tensor,
        y_new: Tensor,
        f_old: Tensor,
        f_new: Tensor,
    ) -> None:
        """One attempt of the adaptive loop: keep it, with the mask of its accepted rows (``ks``: stages
        ``(s, B, D)``). The rows are picked once in :meth:`finish`, not here: picking them now would read
        the mask back to the host at every attempt."""
        keep = accept & (h != 0)
        if self.rk is not None:
            self._rows.append((keep, t_old, h, y_old, ks))
        else:
            self._rows.append((keep, t_old, h, y_old, y_new, f_old, f_new))

    def fixed(self, t: Tensor, h: float | Tensor, y_new: Tensor, active: Tensor | None = None) -> None:
        """One fixed step of every sample from the previous state to ``y_new`` (``active``: which moved)."""
        b = y_new.shape[0]
        tb = t.expand(b) if t.dim() == 0 else t
        hb = h.expand(b) if isinstance(h, Tensor) else y_new.new_full((b,), float(h))
        mask = hb != 0 if active is None else active & (hb != 0)
        self._steps.append((tb, hb, y_new, mask))

    def fixed_sequence(self, starts: Tensor, sizes: Tensor, states: Tensor) -> None:
        """A whole shared-grid step sequence at once: ``states (S, B, D)`` after steps of ``sizes (S,)``."""
        for k in range(states.shape[0]):
            self.fixed(starts[k], sizes[k], states[k])

    # -- after the loop ----------------------------------------------------------------------------
    def finish(self, *, reverse: bool, batch_shape: tuple[int, ...]) -> DenseInterpolation:
        y_start = self.y_start
        d = y_start.shape[1]
        if self._steps:
            rows, t0, h, y0, extra = self._from_fixed()
        elif self._rows:
            cols = list(zip(*self._rows))
            keep = torch.stack(cols[0]).reshape(-1)  # (attempts * B,), attempt-major
            pick = keep.nonzero().squeeze(1)
            rows = pick % cols[0][0].shape[0]
            t0, h = (torch.cat(c)[pick] for c in cols[1:3])
            y0 = torch.cat(cols[3])[pick]
            if self.rk is not None:
                extra = (torch.cat(cols[4], dim=1)[:, pick],)
            else:
                extra = tuple(torch.cat(c)[pick] for c in cols[4:])
        else:
            rows = torch.zeros(0, dtype=torch.long, device=y_start.device)
            t0 = h = y_start.new_zeros(0)
            y0 = y_start.new_zeros(0, d)
            extra = (
                (y_start.new_zeros(self.rk.stages + self.rk.n_extra, 0, d),)
                if self.rk is not None
                else (y0, y0, y0)
            )
        # Records arrive in time order per sample; a stable sort by sample keeps that order.
        order = torch.argsort(rows, stable=True)
        rows, t0, h, y0 = rows[order], t0[order], h[order], y0[order]
        extra = (extra[0][:, order],) if self.rk is not None else tuple(e[order] for e in extra)
        if self.rk is not None and self.rk.n_extra and rows.numel():
            # Interpolation-only stages (DOP853, Verner): one batched evaluation for every step kept.
            extra = (self.rk.dense_stages(self.f, t0, y0, h, extra[0]),)
        return DenseInterpolation(
            rk=self.rk,
            sample=rows,
            t0=t0,
            h=h,
            y0=y0,
            extra=extra,
            y_start=y_start,
            start=self.ts[:, 0],
            end=self.ts[:, -1],
            reverse=reverse,
            batch_shape=batch_shape,
        )

    def _from_fixed(self):
        """Flatten the fixed steps, drop rows that did not move, and evaluate what the interpolant needs
        in one batched call (stages of the continuous extension, or the field at both ends)."""
        tb, hb, ys, masks = (torch.stack(c) for c in zip(*self._steps))  # (S, B), (S, B), (S, B, D), (S, B)
        y_prev = torch.cat([self.y_start.unsqueeze(0), ys[:-1]])
        s, b = masks.shape
        keep = masks.reshape(-1)
        rows = torch.arange(b, device=ys.device).expand(s, b).reshape(-1)[keep]
        t0 = tb.reshape(-1)[keep]
        h = hb.reshape(-1)[keep]
        y0 = y_prev.reshape(s * b, -1)[keep]
        y1 = ys.reshape(s * b, -1)[keep]
        if y0.shape[0] == 0:
            d = y0.shape[-1]
            return (
                rows,
                t0,
                h,
                y0,
                (
                    (y0.new_zeros(self.rk.stages + self.rk.n_extra, 0, d),)
                    if self.rk is not None
                    else (y1, y1, y1)
                ),
            )
        if self.rk is not None:
            return rows, t0, h, y0, (torch.stack(self.rk.stage_values(self.f, t0, y0, h)),)
        return rows, t0, h, y0, (y1, self.f(t0, y0), self.f(t0 + h, y1))


class DenseInterpolation:
    """Piecewise interpolant of one solve; see :meth:`evaluate`.

    Per accepted step (``R`` in all, sorted by sample then time): its sample, start ``t0``, size ``h``,
    start state ``y0`` and either the stages ``(s, R, D)`` of a continuous extension or the Hermite data
    ``(y1, f0, f1)``. Times are those the driver integrated in (negated for decreasing grids).
    """

    def __init__(
        self,
        *,
        rk: ExplicitRK | None,
        sample: Tensor,
        t0: Tensor,
        h: Tensor,
        y0: Tensor,
        extra: tuple[Tensor, ...],
        y_start: Tensor,
        start: Tensor,
        end: Tensor,
        reverse: bool,
        batch_shape: tuple[int, ...],
    ) -> None:
        self.rk = rk
        self.sample, self.t0, self.h, self.y0, self.extra = sample, t0, h, y0, extra
        self.y_start, self.start, self.end = y_start, start, end
        self.reverse = reverse
        self.batch_shape = batch_shape
        b = y_start.shape[0]
        self.counts = torch.bincount(sample, minlength=b)
        self.offsets = torch.cumsum(self.counts, 0) - self.counts
        width = max(int(self.counts.max()) if b else 0, 1)
        pad = torch.full((b, width), math.inf, dtype=t0.dtype, device=t0.device)
        if sample.numel():
            pos = torch.arange(sample.numel(), device=t0.device) - self.offsets[sample]
            pad[sample, pos] = t0.detach()
        self.t0_pad = pad
        # Where each sample's steps end (its failure time if it failed before the end of its grid).
        if sample.numel():
            last = (self.offsets + self.counts - 1).clamp(min=0)
            self.covered = torch.where(self.counts > 0, (t0[last] + h[last]).detach(), start)
        else:
            self.covered = start

    @property
    def kind(self) -> str:
        """``"rk"`` (continuous extension of the method) or ``"hermite"`` (cubic Hermite)."""
        return "rk" if self.rk is not None else "hermite"

    @property
    def n_steps(self) -> int:
        return int(self.sample.numel())

    def __repr__(self) -> str:
        name = f"{self.rk.tableau.name} continuous extension" if self.rk is not None else "cubic Hermite"
        return f"DenseInterpolation({name}, samples={self.y_start.shape[0]}, steps={self.n_steps})"

    def evaluate(self, t: Any) -> Tensor:
        """The solution at times ``t``: a scalar → ``(*batch, D)``; ``(K,)`` → ``(*batch, K, D)`` (the same
        times for every sample); ``(*batch, K)`` → ``(*batch, K, D)`` (each sample its own times).

        Every time must lie in its sample's solved interval ``[ts[..., 0], ts[..., -1]]``.
        """
        like = self.y_start
        b, d = like.shape
        batch = self.batch_shape
        if not isinstance(t, Tensor):
            try:
                t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
            except (TypeError, ValueError, RuntimeError) as err:
                raise InvalidArgumentError(
                    "t", t, "a time, or a tensor of times (K,) or (*batch, K)"
                ) from err
        if not t.is_floating_point():
            t = t.to(like.dtype)
        if t.device != like.device:
            raise InvalidArgumentError("t", t, f"times on the solution's device ({like.device})")
        t = t.to(like.dtype)
        if t.dim() == 0:
            tq, out_shape = t.reshape(1, 1).expand(b, 1), (*batch, d)
        elif t.dim() == 1:
            tq, out_shape = t.unsqueeze(0).expand(b, t.shape[0]), (*batch, t.shape[0], d)
        elif tuple(t.shape[:-1]) == batch:
            tq, out_shape = t.reshape(b, t.shape[-1]), (*batch, t.shape[-1], d)
        else:
            raise InvalidArgumentError(
                "t", t, f"a time, times (K,) for every sample, or per-sample times {(*batch, 'K')}"
            )
        s = -tq if self.reverse else tq
        self._check_range(s.detach())
        k = s.shape[1]
        j = torch.searchsorted(self.t0_pad, s.detach().contiguous(), right=True) - 1
        j = torch.minimum(j.clamp(min=0), (self.counts - 1).clamp(min=0).unsqueeze(1))
        idx = (self.offsets.unsqueeze(1) + j).reshape(-1)
        flat_s = s.reshape(-1)
        if self.n_steps == 0:
            values = self.y_start.unsqueeze(1).expand(b, k, d).reshape(b * k, d)
        else:
            idx = idx.clamp(max=self.n_steps - 1)
            h = self.h[idx]
            theta = (flat_s - self.t0[idx]) / torch.where(h != 0, h, torch.ones_like(h))
            if self.rk is not None:
                values = self.rk.interpolate(self.y0[idx], h, self.extra[0][:, idx], theta)
            else:
                y1, f0, f1 = (e[idx] for e in self.extra)
                values = hermite(self.y0[idx], y1, f0, f1, h, theta)
        rows = torch.arange(b, device=like.device).repeat_interleave(k)
        # The initial time of a sample without steps is its initial state; times past the last step of
        # a sample that failed have no value.
        at_start = (flat_s == self.start[rows]) & (self.counts[rows] == 0)
        values = torch.where(at_start.unsqueeze(-1), self.y_start[rows], values)
        slack = self._slack()
        beyond = (flat_s.detach() > self.covered[rows] + slack[rows]) | (
            (self.counts[rows] == 0) & (flat_s.detach() != self.start[rows])
        )
        values = torch.where(beyond.unsqueeze(-1), torch.full_like(values, math.nan), values)
        return values.reshape(out_shape)

    def _slack(self) -> Tensor:
        eps = torch.finfo(self.start.dtype).eps
        return 8 * eps * torch.maximum(self.start.abs(), self.end.abs()).clamp(min=1.0)

    def _check_range(self, s: Tensor) -> None:
        slack = self._slack().unsqueeze(1)
        lo, hi = self.start.unsqueeze(1), self.end.unsqueeze(1)
        bad = ~torch.isfinite(s) | (s < lo - slack) | (s > hi + slack)
        if bool(bad.any()):
            row, col = (int(v) for v in bad.nonzero()[0])
            sign = -1.0 if self.reverse else 1.0
            a, z = sign * float(self.start[row]), sign * float(self.end[row])
            raise InvalidArgumentError(
                "t",
                f"time {sign * float(s[row, col]):g} for sample {row}",
                f"times inside the solved interval [{min(a, z):g}, {max(a, z):g}] (no extrapolation)",
            )
