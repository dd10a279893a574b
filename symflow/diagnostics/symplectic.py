"""Structure of a flow map: symplecticity defect, volume preservation and reversibility.

A map ``Φ`` of the phase space ``y = [q, p] ∈ ℝ^{2n}`` is symplectic when its Jacobian ``M = ∂Φ/∂y``
satisfies ``Mᵀ J M = J`` with ``J = [[0, I], [−I, 0]]`` (Hairer, Lubich & Wanner, *Geometric Numerical
Integration*, §VI.2). Exact Hamiltonian flows and symplectic integrator steps (Verlet, Gauss–Legendre)
satisfy it to round-off; RK4 and generic neural networks do not. Reported per state and time:

* **defect** ``‖MᵀJM − J‖_F / ‖J‖_F`` (Frobenius; ``‖J‖_F = √D``), a relative measure;
* **volume error** ``|det M − 1|`` (symplectic maps preserve volume, Liouville; the converse fails for
  ``n > 1``, so a small volume error does not make a map symplectic);
* **reversibility** ``‖Φ₋ₜ(Φₜ(y)) − y‖₂ / ‖y‖₂``: zero for exact flows and symmetric methods
  (Verlet, Gauss–Legendre), ``O(h^{p+1})`` per step for non-symmetric ones such as RK4.

Jacobians come from ``vmap(jacrev(Φ_t))`` (``torch.func``). Maps that cannot run under ``torch.func``
transforms (adaptive solves branch on values) fall back to ordinary reverse-mode autograd on ``D``
stacked copies of each state, copy ``i`` seeded with the output direction ``eᵢ``. For long times in a
chaotic system ``‖M‖`` grows exponentially and the round-off of ``MᵀJM`` grows like ``ε‖M‖²``, so the
Frobenius norm ``‖M‖_F`` is reported alongside to judge what "round-off" means there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.func import jacrev, vmap

from symflow.integrators import CapabilityError, InvalidArgumentError
from symflow.integrators.reprs import compact_repr

from .sources import FlowSource, as_source

Tensor = torch.Tensor


def j_matrix(dim: int, *, dtype: torch.dtype = torch.float64, device: Any = None) -> Tensor:
    """The canonical ``J = [[0, I], [−I, 0]]`` of size ``dim = 2n``."""
    if dim % 2:
        raise InvalidArgumentError("dim", dim, "an even phase-space dimension 2n")
    n = dim // 2
    j = torch.zeros(dim, dim, dtype=dtype, device=device)
    j[:n, n:] = torch.eye(n, dtype=dtype, device=device)
    j[n:, :n] = -torch.eye(n, dtype=dtype, device=device)
    return j


def symplectic_defect(m: Tensor) -> Tensor:
    """``‖MᵀJM − J‖_F / ‖J‖_F`` for Jacobians ``(..., D, D)``; returns shape ``(...)``."""
    if m.dim() < 2 or m.shape[-1] != m.shape[-2]:
        raise InvalidArgumentError("m", m, "Jacobians of shape (..., D, D)")
    d = m.shape[-1]
    j = j_matrix(d, dtype=m.dtype, device=m.device)
    return (m.transpose(-1, -2) @ j @ m - j).norm(dim=(-2, -1)) / math.sqrt(d)


def volume_error(m: Tensor) -> Tensor:
    """``|det M − 1|`` for Jacobians ``(..., D, D)``."""
    return (torch.linalg.det(m) - 1).abs()


def flow_jacobian(source: Any, t: float, y: Tensor) -> Tensor:
    """``M = ∂Φ_t/∂y`` at each state of ``y (B, D)``: ``(B, D, D)``."""
    src = as_source(source)
    y = _states(y)
    t = float(t)
    if src.functorch:
        try:
            return vmap(jacrev(lambda yy: src.flow(t, yy)))(y)
        except CapabilityError:
            pass  # the map branches on values; use plain autograd below
    return _jacobian_autograd(src, t, y)


def _jacobian_autograd(src: FlowSource, t: float, y: Tensor) -> Tensor:
    """Reverse mode on ``D`` stacked copies of one state at a time.

    One state per call, because reverse mode through a batched adaptive solve returns NaN for the
    samples that finish before the others (the step-size controller's ``sqrt`` of a zero error norm
    on idle steps); the ``D`` copies of one state take identical steps and finish together.
    """
    b, d = y.shape
    seed = torch.eye(d, dtype=y.dtype, device=y.device)
    rows = []
    for i in range(b):
        with torch.enable_grad():
            rep = y[i].detach().expand(d, d).clone().requires_grad_(True)
            out = src.flow(t, rep)
            (grad_rows,) = torch.autograd.grad(out, rep, grad_outputs=seed)
        rows.append(grad_rows)  # row k: ∂Φ_k/∂y
    return torch.stack(rows)  # (B, D_out, D_in)


def reversibility_error(source: Any, t: float, y: Tensor) -> Tensor:
    """``‖Φ₋ₜ(Φₜ(y)) − y‖₂ / ‖y‖₂`` per state, ``(B,)``."""
    src = as_source(source)
    if not src.backward:
        raise CapabilityError(f"{src.name} does not run backwards in time (backward=False)")
    y = _states(y)
    with torch.no_grad():
        back = src.flow(-float(t), src.flow(float(t), y))
    return (back - y).norm(dim=-1) / y.norm(dim=-1).clamp(min=torch.finfo(y.dtype).tiny)


@dataclass(frozen=True)
class StructureReport:
    """Structure diagnostics of one map over ``K`` durations and ``B`` states.

    Attributes:
        source: description of the map.
        times: ``(K,)`` durations ``t`` of ``Φ_t``.
        defect, volume_error, jacobian_norm: ``(K, B)``.
        reversibility: ``(K, B)``, or ``None`` when not computed.
    """

    source: str
    times: Tensor
    defect: Tensor
    volume_error: Tensor
    jacobian_norm: Tensor
    reversibility: Tensor | None

    def summary(self) -> dict[str, Any]:
        """JSON-ready maxima and medians per duration."""
        rows = []
        for k, t in enumerate(self.times.tolist()):
            row = {
                "t": t,
                "max_defect": _stat(self.defect[k], "max"),
                "median_defect": _stat(self.defect[k], "median"),
                "max_volume_error": _stat(self.volume_error[k], "max"),
                "max_jacobian_norm": _stat(self.jacobian_norm[k], "max"),
            }
            if self.reversibility is not None:
                row["max_reversibility_error"] = _stat(self.reversibility[k], "max")
            rows.append(row)
        return {
            "source": self.source,
            "n_states": int(self.defect.shape[1]),
            "max_defect": _stat(self.defect, "max"),
            "max_volume_error": _stat(self.volume_error, "max"),
            "max_reversibility_error": None
            if self.reversibility is None
            else _stat(self.reversibility, "max"),
            "per_time": rows,
        }

    def __repr__(self) -> str:
        s = self.summary()
        return compact_repr(
            self,
            fields=("source",),
            states=s["n_states"],
            times=tuple(self.times.tolist()),
            max_defect=s["max_defect"],
            max_volume_error=s["max_volume_error"],
            max_reversibility_error=s["max_reversibility_error"],
        )


def structure(
    source: Any, y: Tensor, times: Any, *, reversibility: bool | None = None, chunk: int = 256
) -> StructureReport:
    """Defect, volume error and (optionally) reversibility of ``Φ_t`` at the states ``y (B, D)``.

    ``times`` is a float or a sequence of durations; states are processed ``chunk`` at a time to
    bound the memory of the Jacobians. ``reversibility`` defaults to whether the source accepts
    negative durations (``source.backward``).
    """
    src = as_source(source)
    if reversibility is None:
        reversibility = src.backward
    elif reversibility and not src.backward:
        raise CapabilityError(
            f"{src.name} does not run backwards in time (backward=False): no reversibility check"
        )
    y = _states(y)
    ts = [float(times)] if isinstance(times, (int, float)) else [float(t) for t in times]
    if not ts or any(not math.isfinite(t) or t == 0 for t in ts):
        raise InvalidArgumentError("times", times, "one or more finite non-zero durations")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise InvalidArgumentError("chunk", chunk, "a positive integer")
    defect, vol, norm, rev = [], [], [], []
    for t in ts:
        ms = torch.cat([flow_jacobian(src, t, part) for part in y.split(chunk)]).detach()
        defect.append(symplectic_defect(ms))
        vol.append(volume_error(ms))
        norm.append(ms.norm(dim=(-2, -1)))
        if reversibility:
            rev.append(torch.cat([reversibility_error(src, t, part) for part in y.split(chunk)]))
    return StructureReport(
        src.name,
        torch.tensor(ts, dtype=y.dtype),
        torch.stack(defect),
        torch.stack(vol),
        torch.stack(norm),
        torch.stack(rev) if reversibility else None,
    )


def _states(y: Any) -> Tensor:
    if not isinstance(y, Tensor) or y.dim() != 2 or not y.is_floating_point() or y.shape[-1] % 2:
        raise InvalidArgumentError("y", y, "states of shape (B, 2n)")
    return y


def _stat(x: Tensor, how: str) -> float | None:
    x = x[torch.isfinite(x)]
    if not x.numel():
        return None
    return float(x.max() if how == "max" else x.median())
