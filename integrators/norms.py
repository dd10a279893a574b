"""Error norms of adaptive steps: per sample (the default) or one for the whole batch.

An adaptive step accepts when the norm of its scaled error ``x = err / (atol + rtol·max(|y|, |ŷ|))``
is at most 1. ``solve(..., norm=...)`` takes a name or a callable ``(B, D) → (B,)``:

* ``"sample"`` (default): ``‖x_b‖_RMS`` for each sample ``b``. Every sample meets the tolerance on
  its own, takes its own steps, and its result does not depend on the rest of the batch.
* ``"batch"``: one value for the whole batch, the RMS over every component of every sample that is
  still stepping, ``(Σ_b Σ_i x_bi² / (B'·D))^{1/2}``, repeated for each sample. All samples then
  share one step size and one accept/reject decision, as in a solver whose state is the whole batch
  (torchdiffeq's default, Chen et al. 2018): the tolerance holds for the batch on average, not for
  each sample, and a sample's result depends on the others. Worth it where per-sample steps buy
  nothing and the batch pays for its slowest sample: training a learned field on a loss averaged
  over the batch (a CNF's likelihood, a neural ODE's trajectory loss).

Rows whose scaled error is not finite do not enter the batch value (such a sample fails on its own,
with ``Status.NONFINITE``, and the others go on), nor do rows whose error is exactly zero: samples
that have already stopped attempt zero-length steps and would otherwise loosen the control of the
rest.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .errors import InvalidArgumentError
from .registry import Registry

Tensor = torch.Tensor
Norm = Callable[[Tensor], Tensor]


def rms_norm(x: Tensor) -> Tensor:
    """Per-sample RMS over the components: ``(B, D) → (B,)``."""
    # (x·x).sum / D: the same values as x.pow(2).mean(-1), with kernels eager runs faster on short rows.
    return ((x * x).sum(-1) / x.shape[-1]).sqrt()


def batch_rms_norm(x: Tensor) -> Tensor:
    """One RMS over the batch's finite, nonzero rows, repeated per sample: ``(B, D) → (B,)``."""
    sq = x.pow(2).sum(-1)  # (B,)
    counted = torch.isfinite(sq) & (sq > 0)
    total = torch.where(counted, sq, torch.zeros_like(sq)).sum()
    rows = counted.sum().clamp(min=1)
    value = (total / (rows * x.shape[-1])).sqrt()
    # A row that is not finite keeps its own (non-finite) value, so the driver fails that sample alone.
    return torch.where(torch.isfinite(sq), value.expand_as(sq), sq)


NORMS: Registry[Norm] = Registry("error norm")
NORMS.register("sample", rms_norm, aliases=("per_sample",))
NORMS.register("batch", batch_rms_norm, aliases=("shared",))


def resolve_norm(name: str, norm: str | Norm | None) -> Norm | None:
    """A norm option (``None``, a name of :data:`NORMS`, or a callable) → ``None`` or a callable."""
    if norm is None or callable(norm):
        return norm
    if isinstance(norm, str):
        return NORMS.get(norm)  # unknown names: an error with a did-you-mean
    raise InvalidArgumentError(
        name, norm, "'sample', 'batch' or a callable mapping the scaled error (B, D) to (B,)"
    )


def is_batch_norm(norm: str | Norm | None) -> bool:
    """Whether ``norm`` names (or is) the batch-wide norm."""
    return resolve_norm("norm", norm) is batch_rms_norm
