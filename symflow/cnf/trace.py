"""Divergence of a vector field, ``tr ∂f/∂y``: exact, or by Hutchinson's stochastic estimator.

The instantaneous change of variables (Chen, Rubanova, Bettencourt & Duvenaud, *Neural ODEs*,
NeurIPS 2018, Thm. 1; Grathwohl et al., *FFJORD*, ICLR 2019, §2) needs the trace of the Jacobian of
the field at every right-hand-side evaluation::

    d log p(y(t))/dt = −tr(∂f/∂y (t, y(t))).

**Exact** (:func:`exact_divergence`): one forward pass and ``D`` vector–Jacobian products,
vectorised with ``torch.func.vmap`` over the basis vectors ``e_i`` (rows ``e_iᵀ ∂f/∂y``, i.e.
``torch.func.jacrev`` of the batch-summed field); ``O(D)`` times the cost of ``f``, so meant for
small ``D``.

**Hutchinson** (:func:`hutchinson_divergence`; Hutchinson 1990; Grathwohl et al., *FFJORD*, ICLR
2019): for a probe ``ε`` with ``E[ε] = 0`` and ``E[εεᵀ] = I``,

    tr A = E[εᵀ A ε],

so one vector–Jacobian product ``εᵀ ∂f/∂y`` gives an unbiased estimate at ``O(1)`` times the cost
of ``f``. Probes are standard Gaussian or Rademacher (±1). With ``S = (A + Aᵀ)/2`` the variance
of one probe is ``2‖S‖_F²`` (Gaussian) or ``2(‖S‖_F² − Σ_i S_ii²)`` (Rademacher, which estimates the
diagonal without error and is the minimum-variance choice of Hutchinson 1990); see
:func:`hutchinson_variance`. Averaging ``k`` independent probes divides the variance by ``k`` at
``k`` vector–Jacobian products (``probes=k``). A CNF draws its probes per sample per solve and holds
them fixed during the solve, so the integrated log-density is the estimate of one fixed, smooth ODE.

Both estimators also return the squared Frobenius norm ``‖∂f/∂y‖_F²`` (exact) or its unbiased
estimate ``‖εᵀ ∂f/∂y‖²`` (Hutchinson), used by the Jacobian regulariser of Finlay et al. (2020).

Fields are assumed to act on every row of the batch independently (no batch norm): the
vector–Jacobian product of the batch-summed output then gives every sample's own Jacobian row.

**Forward-mode products.** A field whose class defines ``jacobian_product(t, y, u) → (f, (∂f/∂y) u)``
next to its ``forward`` (as :class:`~symflow.cnf.fields.TimeMLP` does) has its products taken in
forward mode instead: columns ``∂f/∂y e_i`` for the exact trace, and ``(∂f/∂y) ε`` for Hutchinson's,
``εᵀ (∂f/∂y) ε`` being the same number either way. The Hutchinson estimate of ``‖∂f/∂y‖_F²`` is then
``‖(∂f/∂y) ε‖²``, unbiased like ``‖εᵀ ∂f/∂y‖²`` (``E[εεᵀ] = I`` on either side of the Jacobian). The
forward-mode product needs no autograd graph inside the field, which is what makes it cheaper when
the solver itself is differentiated (backpropagation through the steps, or the adjoint's
vector–Jacobian products of the augmented field). The product is looked up on the class that
defines ``forward``, so a subclass that redefines ``forward`` alone falls back to reverse mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import vjp, vmap

from symflow.integrators import InvalidArgumentError, Registry
from symflow.integrators.reprs import compact_repr

Tensor = torch.Tensor
Field = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Divergence:
    """Field value and its divergence at a batch of points.

    Attributes:
        f: ``f(t, y)``, shape ``(..., D)``.
        div: ``tr ∂f/∂y`` (exact or estimated), shape ``(...)``.
        frobenius: ``‖∂f/∂y‖_F²`` (exact or estimated), shape ``(...)``.
    """

    f: Tensor
    div: Tensor
    frobenius: Tensor

    def __repr__(self) -> str:
        return compact_repr(self)


# Per field class. A plain dict, not functools.lru_cache: torch.compile traces through this lookup (it
# runs at every evaluation of the field) and warns at every trace that it ignores a cache wrapper.
_FORWARD_MODE: dict[type, bool] = {}


def _defines_forward_mode_product(cls: type) -> bool:
    known = _FORWARD_MODE.get(cls)
    if known is None:
        known = False
        for klass in cls.__mro__:
            if "forward" in vars(klass) or "__call__" in vars(klass):
                known = "jacobian_product" in vars(klass)
                break
        _FORWARD_MODE[cls] = known
    return known


def forward_mode_product(field: Field) -> Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]] | None:
    """The field's ``jacobian_product(t, y, u)`` if the class defining its ``forward`` provides one
    (looked up once per class: this runs at every evaluation of the field)."""
    return field.jacobian_product if _defines_forward_mode_product(type(field)) else None


def exact_divergence(field: Field, t: Tensor, y: Tensor) -> Divergence:
    """``tr ∂f/∂y`` exactly from the full Jacobian (``D`` batched Jacobian products)."""
    d = y.shape[-1]
    eye = torch.eye(d, dtype=y.dtype, device=y.device)
    product = forward_mode_product(field)
    if product is not None:
        f, cols = product(t, y, eye.expand(*y.shape[:-1], d, d))  # cols[..., i, j] = ∂f_j/∂y_i
        return Divergence(
            f=f, div=cols.diagonal(dim1=-2, dim2=-1).sum(-1), frobenius=cols.pow(2).sum((-1, -2))
        )
    f, pull = vjp(lambda z: field(t, z), y)
    basis = eye.reshape(d, *([1] * (y.dim() - 1)), d).expand(d, *y.shape)
    (rows,) = vmap(pull)(basis)  # rows[i, ..., j] = ∂f_i/∂y_j
    diag = rows.diagonal(dim1=0, dim2=-1)  # (..., D)
    return Divergence(f=f, div=diag.sum(-1), frobenius=rows.pow(2).sum(-1).sum(0))


def hutchinson_divergence(field: Field, t: Tensor, y: Tensor, probe: Tensor) -> Divergence:
    """Unbiased estimate ``εᵀ (∂f/∂y) ε`` from one Jacobian product per probe.

    ``probe`` has the state's shape ``(..., D)`` (one probe), or ``(..., k, D)``: ``k`` probes per
    sample, whose estimates are averaged, ``(1/k) Σ_j ε_jᵀ (∂f/∂y) ε_j`` — still unbiased, with the
    variance of one probe divided by ``k`` (independent probes), at ``k`` vector–Jacobian products
    (vectorised with ``torch.func.vmap``) instead of ``D`` for the exact trace.
    """
    several = (
        probe.dim() == y.dim() + 1 and probe.shape[:-2] == y.shape[:-1] and probe.shape[-1] == y.shape[-1]
    )
    if probe.shape != y.shape and not several:
        raise InvalidArgumentError(
            "probe", probe, f"a tensor of the state's shape {tuple(y.shape)}, or (..., k, D) for k probes"
        )
    product = forward_mode_product(field)
    if product is not None:
        f, col = product(t, y, probe)  # (∂f/∂y) ε, one per probe
        div, frobenius = (col * probe).sum(-1), col.pow(2).sum(-1)
        return Divergence(
            f=f, div=div.mean(-1) if several else div, frobenius=frobenius.mean(-1) if several else frobenius
        )
    f, pull = vjp(lambda z: field(t, z), y)
    if not several:
        (row,) = pull(probe)  # εᵀ ∂f/∂y
        return Divergence(f=f, div=(row * probe).sum(-1), frobenius=row.pow(2).sum(-1))
    probes = probe.movedim(-2, 0)  # (k, ..., D)
    (rows,) = vmap(pull)(probes)
    return Divergence(f=f, div=(rows * probes).sum(-1).mean(0), frobenius=rows.pow(2).sum(-1).mean(0))


# --- probes ---------------------------------------------------------------------------------------


def _gaussian(shape, generator, dtype, device) -> Tensor:
    return torch.randn(shape, generator=generator, dtype=dtype, device=device)


def _rademacher(shape, generator, dtype, device) -> Tensor:
    bits = torch.randint(0, 2, shape, generator=generator, device=device)
    return (2 * bits - 1).to(dtype)


PROBES: Registry[Callable] = Registry("Hutchinson probe distribution")
PROBES.register("gaussian", _gaussian, aliases=("normal",))
PROBES.register("rademacher", _rademacher)

TRACE_ESTIMATORS = ("exact", "hutchinson")


def check_trace(trace: str) -> str:
    """Validate a trace-estimator name (``"exact"`` or ``"hutchinson"``), with did-you-mean."""
    reg: Registry[None] = Registry("trace estimator")
    for name in TRACE_ESTIMATORS:
        reg.register(name, None)
    return reg.canonical(trace)


def draw_probe(
    shape: tuple[int, ...],
    kind: str = "gaussian",
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Probe vectors with ``E[ε] = 0``, ``E[εεᵀ] = I``: ``"gaussian"`` or ``"rademacher"``.

    ``generator`` makes them reproducible (it must live on ``device``); without one the global RNG
    is used (which training checkpoints capture).
    """
    draw = PROBES.get(kind)
    return draw(tuple(shape), generator, dtype or torch.get_default_dtype(), device)


def hutchinson_variance(matrix: Tensor, kind: str = "gaussian") -> Tensor:
    """Exact variance of the one-probe estimate ``εᵀAε`` for a square ``A`` (batched ``(..., D, D)``).

    With ``S = (A + Aᵀ)/2``: Gaussian probes give ``2‖S‖_F²``; Rademacher probes
    ``2(‖S‖_F² − Σ_i S_ii²)`` (the diagonal is estimated without error).
    """
    s = 0.5 * (matrix + matrix.transpose(-1, -2))
    fro = s.pow(2).sum((-1, -2))
    if PROBES.canonical(kind) == "gaussian":
        return 2 * fro
    return 2 * (fro - s.diagonal(dim1=-2, dim2=-1).pow(2).sum(-1))
