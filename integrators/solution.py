"""Results of a solve: per-sample status, statistics, outputs and events.

Failures are data: every sample carries a :class:`Status`; one bad sample never changes the others.
``throw=True`` turns failed samples into one :class:`IntegrationError` *after* the loop.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch

from .errors import IntegrationError
from .reprs import compact_repr, short

Tensor = torch.Tensor


class Status(enum.IntEnum):
    """Outcome of one sample's integration (stored as ``int8`` codes in :attr:`Solution.status`)."""

    SUCCESS = 0
    MAX_STEPS = 1
    DT_MIN = 2
    NONFINITE = 3
    NOT_CONVERGED = 4

    @property
    def remedy(self) -> str:
        return _REMEDIES[self]


_REMEDIES = {
    Status.SUCCESS: "",
    Status.MAX_STEPS: "raise max_steps, loosen rtol/atol, or use an implicit method if the problem is stiff",
    Status.DT_MIN: (
        "the step size fell below dt_min or the spacing of floating-point times: the solution may "
        "blow up in finite time, or the problem is stiff (try an implicit method)"
    ),
    Status.NONFINITE: (
        "the state became NaN/inf: use a smaller dt (fixed step) or tighter tolerances, and check "
        "y0 and f for NaN"
    ),
    Status.NOT_CONVERGED: "the Newton iteration did not converge: use a smaller dt or raise newton_max_iter",
}


@dataclass(frozen=True)
class EventRecord:
    """Zero crossings found during a solve, sorted by sample then time.

    Attributes:
        t: ``(M,)`` crossing times.
        y: ``(M, D)`` states at the crossings.
        sample: ``(M,)`` flat sample index (into the flattened batch).
        event: ``(M,)`` which event function crossed (index into the list given to ``solve``).
    """

    t: Tensor
    y: Tensor
    sample: Tensor
    event: Tensor

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def for_sample(self, index: int, event: int | None = None) -> EventRecord:
        keep = self.sample == index
        if event is not None:
            keep = keep & (self.event == event)
        return EventRecord(self.t[keep], self.y[keep], self.sample[keep], self.event[keep])

    def counts(self, n_samples: int) -> Tensor:
        """Number of crossings per sample, ``(n_samples,)``."""
        return torch.bincount(self.sample, minlength=n_samples)

    def __repr__(self) -> str:
        samples = int(self.sample.unique().numel()) if len(self) else 0
        events = int(self.event.max()) + 1 if len(self) else 0
        return compact_repr(
            self, fields=(), crossings=len(self), samples=samples, events=events, y=short(self.y)
        )


@dataclass(frozen=True)
class Solution:
    """What :func:`~symflow.integrators.solve` returns.

    Attributes:
        ts: the output times as given, ``(T,)`` or ``(*batch, T)``.
        ys: states at those times, batch first: ``(*batch, T, D)``.
        status: ``(*batch,)`` int8 :class:`Status` codes.
        stats: per-sample int64 counters, ``(*batch,)`` each: ``steps`` (attempted), ``accepted``,
            ``rejected``, ``nfev`` (evaluations of f), ``newton_iters``.
        method: the method's registry name.
        events: crossings when events were requested, else ``None``.
        adjoint: for adjoint solves, the record of the backward solve (its per-sample ``steps``
            appear in ``adjoint.backward_stats`` once ``.backward()`` has run), else ``None``.
        interpolation: with ``dense_output=True``, the piecewise interpolant behind :meth:`evaluate`
            (a :class:`~symflow.integrators.dense.DenseInterpolation`), else ``None``.
    """

    ts: Tensor
    ys: Tensor
    status: Tensor
    stats: dict[str, Tensor] = field(default_factory=dict)
    method: str = ""
    events: EventRecord | None = None
    adjoint: object | None = field(default=None, repr=False)
    interpolation: object | None = field(default=None, repr=False)

    def evaluate(self, t: Tensor | float) -> Tensor:
        """The solution at any time of the solved interval (needs ``solve(..., dense_output=True)``).

        ``t`` a scalar gives ``(*batch, D)``; times ``(K,)`` shared by every sample, or per-sample
        times ``(*batch, K)``, give ``(*batch, K, D)``. Differentiable with respect to ``t``, ``y0`` and
        the field's parameters. Like SciPy's ``sol.sol(t)`` and diffrax's ``sol.evaluate(t)``.
        """
        if self.interpolation is None:
            from .errors import CapabilityError

            raise CapabilityError(
                "this Solution has no dense output: solve with dense_output=True to evaluate it between "
                "the output times"
            )
        return self.interpolation.evaluate(t)

    @property
    def success(self) -> Tensor:
        """Boolean mask of samples that finished with :attr:`Status.SUCCESS`."""
        return self.status == Status.SUCCESS

    @property
    def ok(self) -> bool:
        return bool(self.success.all())

    def failures(self) -> dict[Status, list[int]]:
        """Flat indices of failed samples, grouped by status."""
        flat = self.status.reshape(-1).cpu()
        out: dict[Status, list[int]] = {}
        for code in flat.unique().tolist():
            if code != Status.SUCCESS:
                out[Status(code)] = (flat == code).nonzero().flatten().tolist()
        return out

    def summary(self) -> str:
        n = self.status.numel()
        fails = self.failures()
        lines = [f"{self.method or 'solve'}: {n - sum(len(v) for v in fails.values())}/{n} samples succeeded"]
        for status, idx in fails.items():
            shown = ", ".join(map(str, idx[:10])) + (f", … ({len(idx)} in all)" if len(idx) > 10 else "")
            lines.append(f"  {status.name.lower()}: samples [{shown}] — {status.remedy}")
        return "\n".join(lines)

    def raise_for_status(self) -> Solution:
        """Raise one :class:`IntegrationError` naming every failed sample; return ``self`` otherwise."""
        if not self.ok:
            raise IntegrationError(
                self.summary() + "\n(pass throw=False to get the partial Solution back; failed samples "
                "keep their status and the others are valid)",
                solution=self,
            )
        return self

    def __repr__(self) -> str:
        ev = f", events={len(self.events)}" if self.events is not None else ""
        dense = ", dense_output" if self.interpolation is not None else ""
        return (
            f"Solution(method={self.method!r}, ys={tuple(self.ys.shape)}, "
            f"success={int(self.success.sum())}/{self.status.numel()}{ev}{dense})"
        )
