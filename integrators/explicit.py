"""Explicit Runge–Kutta stages, written for low per-step overhead on small batches.

Linear combinations fold the step size into ``torch.add(..., alpha=...)`` when ``h`` is a Python
float (shared grids), so a stage costs one kernel per nonzero coefficient; with per-sample step
sizes ``h`` is a ``(B,)`` tensor and enters once through ``addcmul``. There is no value-dependent
Python control flow here, so fixed-step solves built on it run under ``vmap``, ``grad``,
``jacrev``, ``jvp`` and ``torch.compile``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .fields import Field
from .tableau import ButcherTableau

Tensor = torch.Tensor
#: A shared step (Python float), per-sample steps ``(B,)``, or per-sample steps already broadcast to the
#: state's shape ``(B, D)`` (see :func:`per_sample_column`).
Step = float | Tensor


def _pivot(terms: tuple[tuple[int, float], ...]) -> tuple[int, float] | None:
    """The term with the largest weight (``None`` for no terms); :class:`ExplicitRK` finds it once per
    tableau row (a ``functools.cache`` here would make ``torch.compile`` warn on every trace)."""
    return max(terms, key=lambda jw: abs(jw[1])) if terms else None


def per_sample_column(x: Tensor, like: Tensor) -> Tensor:
    """A per-sample value ``(B,)`` (a step size, a mask) written out to ``like``'s shape ``(B, D)``,
    contiguous.

    Eager element-wise kernels run the contiguous, same-shape case two to three times faster than a
    ``(B, 1)`` operand broadcast along a short last axis (measured at B = 1024, D = 4, float64), so an
    adaptive attempt that uses ``h`` in a dozen combinations writes it out once. The values are the
    same: ``combine`` gives bitwise the same results with either form of ``h``.
    """
    return x.unsqueeze(-1).expand_as(like).contiguous()


def _terms(weights: Sequence[float]) -> tuple[tuple[int, float], ...]:
    return tuple((j, float(w)) for j, w in enumerate(weights) if w != 0.0)


def combine(
    base: Tensor | None,
    h: Step,
    terms: tuple[tuple[int, float], ...],
    ks: Sequence[Tensor],
    pivot: tuple[int, float] | None = None,
) -> Tensor:
    """``base + h Σⱼ wⱼ kⱼ`` (``base=None`` means zero), minimising kernel launches; ``pivot`` is
    ``_pivot(terms)`` when the caller has it already (:class:`ExplicitRK` keeps one per tableau row:
    the solver loops call this for every stage of every attempt)."""
    if not terms:
        return torch.zeros_like(ks[0]) if base is None else base
    if isinstance(h, float):
        (j0, w0), rest = terms[0], terms[1:]
        acc = ks[j0] * (w0 * h) if base is None else torch.add(base, ks[j0], alpha=w0 * h)
        for j, w in rest:
            acc = torch.add(acc, ks[j], alpha=w * h)
        return acc
    # Σⱼ wⱼkⱼ = w* (k* + Σⱼ (wⱼ/w*) kⱼ) with w* the largest |wⱼ| (ratios ≤ 1): the factor w* rides on the
    # final addcmul (``value``) instead of costing its own kernel.
    j0, w0 = pivot if pivot is not None else _pivot(terms)
    acc = ks[j0]
    for j, w in terms:
        if j != j0:
            acc = torch.add(acc, ks[j], alpha=w / w0)
    hcol = h if h.dim() == acc.dim() else h.unsqueeze(-1)  # (B, D) from per_sample_column, or (B,)
    if base is None:
        # Out of place: an in-place op keeps a compiled fixed-step chunk off its column form (.columns).
        return acc * hcol if w0 == 1.0 else torch.mul(acc, hcol).mul(w0)
    return torch.addcmul(base, hcol, acc, value=w0)


class ExplicitRK:
    """Stage evaluation, increments, error estimates and dense output of an explicit tableau."""

    def __init__(self, tableau: ButcherTableau, *, perturb: bool = False) -> None:
        if not tableau.explicit:
            raise ValueError(f"{tableau.name} is not explicit")
        self.tableau = tableau
        self.perturb = perturb
        self.stages = tableau.stages
        self.fsal = tableau.fsal
        self.a_terms = tuple(_terms(row[:i]) for i, row in enumerate(tableau.a))
        self.c = tuple(float(ci) for ci in tableau.c)
        self.b_terms = _terms(tableau.b)
        err = tableau.error_weights
        self.e_terms = _terms(err) if err is not None else None
        err2 = tableau.error_weights2
        self.e2_terms = _terms(err2) if err2 is not None else None
        self.extra_terms = tuple(_terms(row) for row in tableau.extra)
        # The largest weight of each row, found once (see combine).
        self.a_pivots = tuple(_pivot(t) for t in self.a_terms)
        self.b_pivot = _pivot(self.b_terms)
        self.e_pivot = _pivot(self.e_terms) if self.e_terms is not None else None
        self.e2_pivot = _pivot(self.e2_terms) if self.e2_terms is not None else None
        self.extra_pivots = tuple(_pivot(t) for t in self.extra_terms)
        self.c_extra = tableau.c_extra
        dense = np.asarray(tableau.dense) if tableau.dense is not None else np.zeros((0, 0))
        self._dense_rows = tuple(i for i in range(dense.shape[0]) if np.any(dense[i] != 0))
        self._dense_cache: dict[tuple[torch.dtype, torch.device], Tensor] = {}
        self._nodes_cache: dict[tuple[torch.dtype, torch.device], Tensor] = {}  # the cᵢ as an (s, 1) tensor

    def stage_time(self, t: Tensor, i: int, h: Step) -> Tensor:
        """``t + cᵢh``; with ``perturb``, a stage at either end of the step is moved one floating-point
        number inside it (``t⁺`` at ``c = 0``, ``(t + h)⁻`` at ``c = 1``), so a field with a jump at a
        step boundary is evaluated on the side the step integrates over."""
        c = self.c[i]
        ti = t if c == 0.0 else t + c * h
        if self.perturb and c in (0.0, 1.0):
            inward = torch.as_tensor(t + h if c == 0.0 else t, dtype=ti.dtype, device=ti.device)
            ti, inward = torch.broadcast_tensors(ti, inward)
            ti = torch.nextafter(ti, inward)  # h = 0: nextafter(t, t) = t
        return ti

    def stage_times(self, t: Tensor, h: Tensor) -> list[Tensor]:
        """``[t + cᵢh for every stage]`` for per-sample ``t`` and ``h`` of shape ``(B,)``: the same values
        as :meth:`stage_time`, with the products ``cᵢh`` made in one kernel instead of one per stage."""
        if self.perturb or h.dim() != 1 or t.shape != h.shape:
            return [self.stage_time(t, i, h) for i in range(self.stages)]
        key = (h.dtype, h.device)
        if key not in self._nodes_cache:
            self._nodes_cache[key] = torch.tensor(self.c, dtype=h.dtype, device=h.device).unsqueeze(1)
        moved = (self._nodes_cache[key] * h).add_(t).unbind(0)  # (cᵢh) + t, rounded as in stage_time
        return [t if c == 0.0 else ti for c, ti in zip(self.c, moved)]

    def stage_values(
        self,
        f: Field,
        t: Tensor,
        y: Tensor,
        h: Step,
        k1: Tensor | None = None,
        *,
        times: Sequence[Tensor] | None = None,
        last_input: bool = False,
    ):
        """``[k₁, …, k_s]``; ``k1`` may be supplied (FSAL, or an evaluation already made), and the stage
        times too (``times``, as from :meth:`stage_times`). ``last_input=True`` also returns the state the
        last stage was evaluated at, ``y + h Σⱼ a_sⱼ kⱼ``: for a first-same-as-last pair that is the step's
        result ``y + h Σⱼ bⱼ kⱼ``, with ``f`` of it being the last stage exactly."""
        time = (lambda i: times[i]) if times is not None else (lambda i: self.stage_time(t, i, h))
        ks = [f(time(0), y) if k1 is None else k1]
        yi = y
        for i in range(1, self.stages):
            yi = combine(y, h, self.a_terms[i], ks, self.a_pivots[i])
            ks.append(f(time(i), yi))
        return (ks, yi) if last_input else ks

    def increment(self, h: Step, ks: Sequence[Tensor]) -> Tensor:
        """``h Σ bᵢ kᵢ``."""
        return combine(None, h, self.b_terms, ks, self.b_pivot)

    def error(self, h: Step, ks: Sequence[Tensor]) -> Tensor:
        """``h Σ (bᵢ − b̂ᵢ) kᵢ``, the local error estimate of an embedded pair."""
        return combine(None, h, self.e_terms, ks, self.e_pivot)

    def error_norm(self, h: Step, ks: Sequence[Tensor], scale: Tensor, norm) -> Tensor:
        """The scaled error of a step, ``(B,)``: ``norm(err/scale)``, or for a pair with a second estimate
        (DOP853) Hairer's ``ε₅² / √(ε₅² + 0.01 ε₃²)`` of the two scaled norms."""
        e5 = norm(self.error(h, ks) / scale)
        if self.e2_terms is None:
            return e5
        e3 = norm(combine(None, h, self.e2_terms, ks, self.e2_pivot) / scale)
        den = e5 * e5 + 0.01 * e3 * e3
        return torch.where(den > 0, e5 * e5 / den.clamp(min=torch.finfo(den.dtype).tiny).sqrt(), den)

    @property
    def n_extra(self) -> int:
        return len(self.extra_terms)

    def dense_stages(
        self, f: Field, t: Tensor, y: Tensor, h: Tensor, ks: Tensor | Sequence[Tensor]
    ) -> Tensor:
        """The stages the interpolant needs, ``(stages + extra, B, D)``: the step's stages followed by the
        interpolation-only ones (none for most methods), evaluated at ``t + cₖh``."""
        stacked = ks if isinstance(ks, Tensor) else torch.stack(list(ks))
        if not self.extra_terms:
            return stacked
        all_ks = list(stacked.unbind(0))
        for terms, pivot, c in zip(self.extra_terms, self.extra_pivots, self.c_extra):
            yi = combine(y, h, terms, all_ks, pivot)
            all_ks.append(f(t + c * h, yi))
        return torch.stack(all_ks)

    def dense_matrix(self, like: Tensor) -> Tensor:
        key = (like.dtype, like.device)
        if key not in self._dense_cache:
            self._dense_cache[key] = torch.tensor(self.tableau.dense, dtype=like.dtype, device=like.device)
        return self._dense_cache[key]

    def interpolate(self, y0: Tensor, h: Tensor, ks: Tensor | Sequence[Tensor], theta: Tensor) -> Tensor:
        """``y(t + θh) = y₀ + h Σᵢ bᵢ(θ) kᵢ`` for per-sample ``θ`` and ``h`` of shape ``(B,)``.

        ``ks`` is the list of stages or their stack ``(s, B, D)``, including the interpolation stages of
        :meth:`dense_stages` when the method has any.
        """
        p = self.dense_matrix(y0)  # (s, m)
        th = theta.unsqueeze(-1)
        # bᵢ(θ) = θ(Pᵢ₁ + θ(Pᵢ₂ + …)) by Horner, and Σᵢ bᵢ(θ)kᵢ stage by stage: elementwise operations
        # only, so a row's value does not depend on which other rows are evaluated with it (matrix
        # products and reductions may round differently with the batch's shape). That keeps samples
        # bitwise independent when outputs are interpolated for varying subsets of rows.
        weights = p[:, -1].expand(th.shape[0], -1)
        for j in range(p.shape[1] - 2, -1, -1):
            weights = weights * th + p[:, j]
        weights = weights * th  # (B, s)
        mix = None
        for i in self._dense_rows:
            term = weights[:, i : i + 1] * ks[i]
            mix = term if mix is None else mix + term
        return y0 + h.unsqueeze(-1) * mix


def hermite(y0: Tensor, y1: Tensor, f0: Tensor, f1: Tensor, h: Tensor, theta: Tensor) -> Tensor:
    """Cubic Hermite interpolant on a step from values and derivatives at both ends (order 3)."""
    th = theta.unsqueeze(-1)
    hc = h.unsqueeze(-1)
    h00 = (1 + 2 * th) * (1 - th) ** 2
    h10 = th * (1 - th) ** 2
    h01 = th * th * (3 - 2 * th)
    h11 = th * th * (th - 1)
    return h00 * y0 + h10 * hc * f0 + h01 * y1 + h11 * hc * f1


class ExplicitStepper:
    """One explicit RK step as an increment ``δ = h Σ bᵢ kᵢ`` (the fixed-step driver adds it)."""

    def __init__(self, tableau: ButcherTableau, f: Field, *, perturb: bool = False) -> None:
        self.rk = ExplicitRK(tableau, perturb=perturb)
        self.f = f
        self.evals_per_step = tableau.stages

    def step(self, t: Tensor, y: Tensor, h: Step) -> tuple[Tensor, None]:
        return self.rk.increment(h, self.rk.stage_values(self.f, t, y, h)), None
