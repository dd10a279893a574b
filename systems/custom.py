"""What a user-defined system gets for free: a sampler and separability detection.

:func:`~symflow.systems.from_hamiltonian` wraps a callable ``H(q, p)``. Two things the built-in systems
carry by hand are derived here from ``H`` alone:

**Default sampler** (:func:`default_sampler`). Without ``energy`` it draws states uniformly in a box
(``[-1, 1]^D`` unless ``box=`` says otherwise), as the built-in systems do for "typical" states. With
``energy=E`` it puts every state on the shell ``H = E`` by root finding along random rays: a base
point ``b`` uniform in the box with ``H(b) < E``, a direction ``u`` uniform on the sphere of phase
space, and ``s > 0`` with ``H(b + s u) = E`` found by bracketing (doubling) and bisection to float64
resolution. Rays that never reach ``E`` (``H`` unbounded below along them, or non-finite) are drawn
again. The states are on the shell to round-off but not distributed microcanonically; pass your own
``sampler=`` when the distribution matters.

**Separability** (:func:`detect_separable`). ``H(q, p) = T(p) + V(q)`` exactly when the mixed second
derivatives ``∂²H/∂q∂p`` vanish everywhere. They are probed with Hessian-vector products
(``torch.func.jvp`` of ``torch.func.grad``, random directions in ``q`` and in ``p``) at 64 states from
the box and from twice the box, so the check costs a few gradients whatever the dimension; when the
mixed block is zero relative to the diagonal blocks everywhere, the split is built from ``H`` itself,

    T(p) = H(q*, p) − H(q*, p*),   V(q) = H(q, p*),

with a reference state ``(q*, p*)`` where ``H`` is finite, so that ``T(p) + V(q) = H(q, p)`` for any
separable ``H`` (the constants cancel). A numerical check on samples cannot prove separability for
every state: a Hamiltonian whose coupling lives only outside the sampled region is not caught; pass
``kinetic=``/``potential=`` to be explicit, or ``separable=False`` to keep ``H`` whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.func import grad, jvp, vjp

from symflow.integrators.errors import InvalidArgumentError

from .sampling import directions, uniform

Tensor = torch.Tensor
F64 = torch.float64
ScalarFn = Callable[[Tensor, Tensor], Tensor]

#: Sampled states at which separability is checked (half in the box, half in twice the box).
SEPARABILITY_POINTS = 64
#: Mixed derivatives at most this fraction of the largest diagonal-block entry count as zero.
SEPARABILITY_RTOL = 1e-10


def sampling_box(box: Any, dim: int) -> tuple[Tensor, Tensor]:
    """``(low, high)`` float64 tensors of shape ``(dim,)`` from ``box``.

    ``box`` is a half-width ``a`` (the box ``[-a, a]^D``) or a pair ``(low, high)`` of numbers or
    length-``D`` sequences.
    """
    expected = f"a positive half-width, or a pair (low, high) of numbers or length-{dim} sequences"
    try:
        if isinstance(box, (int, float)) and not isinstance(box, bool):
            low = torch.full((dim,), -float(box), dtype=F64)
            high = -low
        elif isinstance(box, (tuple, list)) and len(box) == 2:
            low = torch.as_tensor(box[0], dtype=F64).expand(dim).clone()
            high = torch.as_tensor(box[1], dtype=F64).expand(dim).clone()
        else:
            raise InvalidArgumentError("box", box, expected)
    except (TypeError, ValueError, RuntimeError):
        raise InvalidArgumentError("box", box, expected) from None
    if not (torch.isfinite(low).all() and torch.isfinite(high).all() and (high > low).all()):
        raise InvalidArgumentError("box", box, expected + " with low < high, all finite")
    return low, high


def _energy_of(hamiltonian: ScalarFn, dof: int) -> Callable[[Tensor], Tensor]:
    return lambda y: hamiltonian(y[..., :dof], y[..., dof:])


def _ray_roots(residual: Callable[[Tensor], Tensor], n: int, scale: float) -> tuple[Tensor, Tensor]:
    """Per-row ``s > 0`` with ``residual(s) = 0``, given ``residual(0) < 0``; and which rows succeeded.

    Brackets by doubling from ``scale`` (at most 64 times), then bisects to float64 resolution. A row
    fails when no doubling makes the residual finite and ``≥ 0``.
    """
    lo = torch.zeros(n, dtype=F64)
    hi = torch.full((n,), scale, dtype=F64)
    found = torch.zeros(n, dtype=torch.bool)
    for _ in range(64):
        r = residual(hi)
        found = found | (torch.isfinite(r) & (r >= 0))
        if bool(found.all()):
            break
        lo = torch.where(found, lo, hi)
        hi = torch.where(found, hi, 2 * hi)
    for _ in range(110):  # halves the bracket beyond float64 resolution
        mid = 0.5 * (lo + hi)
        r = residual(mid)
        below = r < 0
        lo = torch.where(found & below, mid, lo)
        hi = torch.where(found & ~below, mid, hi)
    return 0.5 * (lo + hi), found


def default_sampler(
    hamiltonian: ScalarFn, dof: int, low: Tensor, high: Tensor, *, max_rounds: int = 200
) -> Callable[[int, torch.Generator, float | None], Tensor]:
    """The sampler :func:`~symflow.systems.from_hamiltonian` gives a system without one (module doc)."""
    dim = 2 * dof
    energy_of = _energy_of(hamiltonian, dof)
    scale = 0.05 * float((high - low).max())

    def sample(n: int, gen: torch.Generator, energy: float | None) -> Tensor:
        if energy is None:
            return uniform(n, low, high, dim, gen)
        if not math.isfinite(energy):
            raise InvalidArgumentError("energy", energy, "a finite energy")
        out = torch.empty(n, dim, dtype=F64)
        need = torch.arange(n)
        lowest = math.inf
        bases_seen = 0
        for _ in range(max_rounds):
            m = need.numel()
            cand = uniform(max(4 * m, 1024), low, high, dim, gen)
            with torch.no_grad():
                h = energy_of(cand)
            finite = torch.isfinite(h)
            if finite.any():
                lowest = min(lowest, float(h[finite].min()))
            base = cand[finite & (h < energy)][:m]
            bases_seen += base.shape[0]
            if base.shape[0] == 0:
                continue
            u = directions(base.shape[0], dim, gen)
            with torch.no_grad():
                s, ok = _ray_roots(
                    lambda s, base=base, u=u: energy_of(base + s[:, None] * u) - energy, base.shape[0], scale
                )
                y = base + s[:, None] * u
                on_shell = (energy_of(y) - energy).abs() <= 1e-9 * max(1.0, abs(energy))
            y = y[ok & on_shell]
            rows = need[: y.shape[0]]
            out[rows] = y
            need = need[y.shape[0] :]
            if need.numel() == 0:
                return out
        if bases_seen == 0:
            box = f"[{low.tolist()}, {high.tolist()}]"
            raise InvalidArgumentError(
                "energy",
                energy,
                f"an energy above the lowest H found in the sampling box {box} ({lowest:.6g}); "
                "widen it with from_hamiltonian(..., box=...) or pass sampler=",
            )
        raise InvalidArgumentError(
            "energy",
            energy,
            "an energy whose shell random rays from the sampling box reach (H stays below it along "
            "most of them); pass sampler= with a sampler for this system",
        )

    return sample


def _hessian_products(energy_of: Callable[[Tensor], Tensor], y: Tensor, v: Tensor) -> Tensor:
    """``∇²H(yᵢ) vᵢ`` for every row ``i`` of ``y (N, D)`` (rows are independent states).

    ``torch.func.jvp`` of ``torch.func.grad`` first (forward over reverse); ``H`` that forward mode
    cannot differentiate falls back to ``torch.func.vjp`` of the gradient (reverse over reverse; the
    Hessian is symmetric), and ``H`` that branches on values to plain autograd.
    """

    def gradient(z: Tensor) -> Tensor:
        return grad(lambda w: energy_of(w).sum())(z)

    errors = []
    try:
        return jvp(gradient, (y,), (v,))[1]
    except Exception as err:
        errors.append(err)
    try:
        return vjp(gradient, y)[1](v)[0]
    except Exception as err:
        errors.append(err)
    try:
        with torch.enable_grad():
            z = y.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(energy_of(z).sum(), z, create_graph=True)
            (hv,) = torch.autograd.grad((g * v).sum(), z)
        return hv
    except Exception as err:
        errors.append(err)
    raise RuntimeError(f"∂²H could not be computed with torch.func ({errors[0]})")


def _mixed_and_diagonal(
    energy_of: Callable[[Tensor], Tensor], y: Tensor, dof: int, gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Per state of ``y (N, D)``: the size of ``∂²H/∂q∂p`` and of the diagonal blocks, from Hessian-vector
    products with random directions in ``q`` and in ``p`` (two each): ``∇²H [u_q; 0]`` has ``∂²H/∂p∂q u_q``
    in its ``p`` half, ``∇²H [0; v_p]`` has ``∂²H/∂q∂p v_p`` in its ``q`` half, and a non-zero block maps
    a random direction to zero with probability zero. The cost is a few gradients per state, whatever
    ``D`` (no ``D × D`` Hessians)."""
    n = y.shape[0]
    mixed = torch.zeros(n, dtype=y.dtype)
    diag = torch.zeros(n, dtype=y.dtype)
    for half in (0, 1):  # directions in q, then in p
        for _ in range(2):
            v = torch.zeros_like(y)
            cols = slice(0, dof) if half == 0 else slice(dof, 2 * dof)
            v[:, cols] = torch.randn(n, dof, generator=gen, dtype=y.dtype)
            hv = _hessian_products(energy_of, y, v).detach()
            same = hv[:, cols].abs().amax(-1)
            other = hv[:, slice(dof, 2 * dof) if half == 0 else slice(0, dof)].abs().amax(-1)
            mixed = torch.maximum(mixed, other)
            diag = torch.maximum(diag, same)
    return mixed, diag


def detect_separable(
    hamiltonian: ScalarFn, dof: int, low: Tensor, high: Tensor
) -> tuple[bool, str, Tensor | None]:
    """Whether ``∂²H/∂q∂p = 0`` at sampled states; returns ``(separable, how, reference state)``.

    ``how`` is the sentence shown in the system's repr; the reference state (where ``H`` and its
    Hessian are finite) anchors the derived ``T`` and ``V``.
    """
    gen = torch.Generator().manual_seed(20240611)
    half = SEPARABILITY_POINTS // 2
    centre, width = 0.5 * (low + high), 0.5 * (high - low)
    pts = torch.cat(
        [
            uniform(half, low, high, 2 * dof, gen),
            uniform(half, centre - 2 * width, centre + 2 * width, 2 * dof, gen),
        ]
    )
    energy_of = _energy_of(hamiltonian, dof)
    try:
        mixed, diag = _mixed_and_diagonal(energy_of, pts, dof, gen)
    except RuntimeError as err:
        return False, f"not checked: {err}", None
    with torch.no_grad():
        values = energy_of(pts)
    usable = torch.isfinite(mixed) & torch.isfinite(diag) & torch.isfinite(values)
    n = int(usable.sum())
    if n < half:
        return (
            False,
            f"not checked: H or ∂²H non-finite at {SEPARABILITY_POINTS - n} of {SEPARABILITY_POINTS} "
            "sampled states",
            None,
        )
    scale = float(diag[usable].max())
    worst = float(mixed[usable].max())
    if worst <= SEPARABILITY_RTOL * scale or worst == 0.0:
        ref = pts[usable.nonzero()[0, 0]]
        return True, f"detected: ∂²H/∂q∂p = 0 at {n} sampled states", ref
    return False, f"∂²H/∂q∂p ≠ 0 (max {worst:.3g} at {n} sampled states)", None


def split_from(
    hamiltonian: ScalarFn, dof: int, ref: Tensor
) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
    """``T(p) = H(q*, p) − H(q*, p*)`` and ``V(q) = H(q, p*)`` for a separable ``H`` (module doc)."""
    q_ref, p_ref = ref[:dof], ref[dof:]
    offsets: dict[tuple, Tensor] = {}

    def _at(x: Tensor, like: Tensor) -> Tensor:
        return like.to(dtype=x.dtype, device=x.device).expand(*x.shape[:-1], dof)

    def kinetic(p: Tensor) -> Tensor:
        key = (p.dtype, p.device)
        if key not in offsets:
            with torch.no_grad():
                offsets[key] = hamiltonian(q_ref.to(p.dtype).to(p.device), p_ref.to(p.dtype).to(p.device))
        return hamiltonian(_at(p, q_ref), p) - offsets[key]

    def potential(q: Tensor) -> Tensor:
        return hamiltonian(q, _at(q, p_ref))

    return kinetic, potential


def check_split(
    hamiltonian: ScalarFn,
    kinetic: Callable[[Tensor], Tensor],
    potential: Callable[[Tensor], Tensor],
    dof: int,
    low: Tensor,
    high: Tensor,
) -> None:
    """Refuse ``kinetic``/``potential`` whose sum is not ``H`` (up to a constant) at sampled states."""
    gen = torch.Generator().manual_seed(7)
    y = uniform(32, low, high, 2 * dof, gen)
    q, p = y[:, :dof], y[:, dof:]
    with torch.no_grad():
        h = hamiltonian(q, p)
        diff = h - kinetic(p) - potential(q)
    finite = torch.isfinite(diff)
    if not finite.any():
        return
    d = diff[finite]
    spread = float((d - d[0]).abs().max())
    if spread > 1e-8 * (1.0 + float(h[finite].abs().max())):
        raise InvalidArgumentError(
            "kinetic/potential",
            f"T(p) + V(q) differing from H(q, p) by up to {spread:.3g} (more than a constant)",
            "T and V with H(q, p) = T(p) + V(q) + const",
        )
