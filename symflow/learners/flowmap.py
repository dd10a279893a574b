"""The flow-map interface shared by SympFlow and the flow-map PINN.

A learned flow map ``N(t, x0) ≈ φ_t(x0)`` is trained for ``t ∈ [0, Δt]`` on a forward-invariant set
``Ω``. Longer times come from the group property of flows (seed 004, "Forward invariant subset"):

    φ_{nΔt + δt} = φ_{δt} ∘ φ_{Δt} ∘ … ∘ φ_{Δt},    n = ⌊t/Δt⌋,  δt = t − nΔt ∈ [0, Δt),

so a model is applied ``n`` times with ``Δt`` and once with the remainder. Every subclass provides

* ``model(t, x0)``: the map itself, ``t`` broadcastable against the batch ``x0.shape[:-1]``
  (meaningful for ``t ∈ [0, Δt]``; no value checks, so it runs inside ``torch.func`` transforms);
* ``model.flow(t, x0)``: any ``t ≥ 0`` by composition, batched, one time per sample allowed;
* ``model.rollout(x0, ts) -> (B, T, D)``: states at the times ``ts`` (``(T,)`` shared or ``(B, T)``
  per sample; ``ts[..., 0]`` is the time of ``x0``, as in :func:`symflow.integrators.solve`);
* ``model.time_derivative(t, x0) -> (N, dN/dt)``; attributes ``dt`` (Δt), ``dim`` (D),
  ``derivatives`` (how ``dN/dt`` is computed) and ``learner`` (registry name).

Models with a learned Hamiltonian (SympFlow) add ``hamiltonian(y)``; the PINN has none, so
``hasattr(model, "hamiltonian")`` tells them apart.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.func import jvp

from symflow.integrators.errors import CapabilityError, InvalidArgumentError

Tensor = torch.Tensor

#: How ``dN/dt`` (and, for SympFlow, the potentials' gradients) are computed.
#: ``"closed_form"``: hand-derived forward mode (SympFlow only; checked against torch.func in tests);
#: ``"func"``: ``torch.func.jvp`` (and ``torch.func.grad``); ``"autograd"``: ``torch.autograd.grad``
#: with ``create_graph=True``, one backward pass per output component (the classic PINN loop).
DERIVATIVES = ("closed_form", "func", "autograd")


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(name, value, "a positive integer")
    return value


def positive_time(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidArgumentError(name, value, "a positive finite number")
    return float(value)


class FlowMap(nn.Module):
    """Base class: composition, rollout and time derivatives for a learned flow map."""

    learner: str = ""
    supported_derivatives: tuple[str, ...] = ("func", "autograd")

    def __init__(self, dim: int, dt: float, derivatives: str) -> None:
        super().__init__()
        self.dim = positive_int("dim", dim)
        self.dt = positive_time("dt", dt)
        self.derivatives = self._check_derivatives(derivatives)

    # -- to be provided by subclasses ---------------------------------------------------------------
    def forward(self, t: Tensor | float, x0: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """Constructor arguments as JSON (what :func:`symflow.learners.load_model` rebuilds from)."""
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------------------------------
    def _check_derivatives(self, derivatives: str) -> str:
        if derivatives not in DERIVATIVES:
            raise InvalidArgumentError("derivatives", derivatives, f"one of {', '.join(DERIVATIVES)}")
        if derivatives not in self.supported_derivatives:
            raise CapabilityError(
                f"{type(self).__name__} computes dN/dt with {', '.join(self.supported_derivatives)}; "
                f"derivatives={derivatives!r} is not available for it"
            )
        return derivatives

    @property
    def parameter_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _check_state(self, x0: Any, name: str = "x0") -> Tensor:
        if not isinstance(x0, Tensor) or x0.ndim < 1 or x0.shape[-1] != self.dim:
            raise InvalidArgumentError(name, x0, f"a tensor of shape (..., {self.dim})")
        if x0.dtype != self.parameter_dtype:
            raise InvalidArgumentError(
                name,
                x0,
                f"dtype {self.parameter_dtype} like the model's parameters (convert the state, or the "
                "model with .to(dtype))",
            )
        return x0

    def _broadcast_time(self, t: Tensor | float, x0: Tensor) -> tuple[Tensor, Tensor]:
        """``t`` as a tensor of the batch shape ``broadcast(t.shape, x0.shape[:-1])``, and ``x0`` expanded."""
        t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device)
        try:
            batch = torch.broadcast_shapes(t.shape, x0.shape[:-1])
        except RuntimeError as err:
            raise InvalidArgumentError(
                "t", t, f"a time broadcastable to the batch shape {tuple(x0.shape[:-1])}"
            ) from err
        return t.expand(batch).contiguous(), x0.expand(*batch, self.dim)

    # -- time derivative ----------------------------------------------------------------------------
    def time_derivative(
        self, t: Tensor | float, x0: Tensor, *, derivatives: str | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(N(t, x0), ∂N/∂t(t, x0))``, one time per sample, differentiable w.r.t. the weights."""
        how = self.derivatives if derivatives is None else self._check_derivatives(derivatives)
        x0 = self._check_state(x0)
        t, x0 = self._broadcast_time(t, x0)
        if how == "closed_form":
            return self._closed_form_time_derivative(t, x0)
        if how == "func":
            return jvp(lambda s: self._forward_with(s, x0, "func"), (t,), (torch.ones_like(t),))
        with torch.enable_grad():
            s = t.detach().clone().requires_grad_()
            y = self._forward_with(s, x0, "autograd")
            dy = [torch.autograd.grad(y[..., k].sum(), s, create_graph=True)[0] for k in range(self.dim)]
        return y, torch.stack(dy, dim=-1)

    def _forward_with(self, t: Tensor, x0: Tensor, how: str) -> Tensor:
        """``N(t, x0)`` computed the way ``how`` asks (SympFlow's potentials' gradients differ)."""
        return self(t, x0)

    def _closed_form_time_derivative(self, t: Tensor, x0: Tensor) -> tuple[Tensor, Tensor]:
        raise CapabilityError(f"{type(self).__name__} has no closed-form time derivative")  # pragma: no cover

    # -- long times ---------------------------------------------------------------------------------
    def flow(self, t: Tensor | float, x0: Tensor) -> Tensor:
        """``N(δt) ∘ N(Δt)^n (x0)`` with ``n = ⌊t/Δt⌋``: the learned flow for any ``t ≥ 0``.

        ``t`` is a scalar or one time per sample (broadcastable against ``x0.shape[:-1]``).
        """
        x0 = self._check_state(x0)
        t, x0 = self._broadcast_time(t, x0)
        batch = t.shape
        out = self._compose(x0.reshape(-1, self.dim), t.reshape(-1, 1), "t")
        return out[:, 0].reshape(*batch, self.dim)

    def rollout(self, x0: Tensor, ts: Tensor) -> Tensor:
        """States at the times ``ts``: ``(*batch, T, D)``; ``ts[..., 0]`` is the time of ``x0``.

        ``ts`` is ``(T,)`` (shared) or ``(*batch, T)`` (per sample); every entry must be at or after
        ``ts[..., 0]``. Each sample is advanced by ``N(Δt)`` as far as its last time needs, and
        every output is one further ``N(δt)`` from the state just before it — ``n`` evaluations of
        the model per sample plus one per output time, never a re-composition from the start.
        """
        x0 = self._check_state(x0)
        if not isinstance(ts, Tensor) or ts.ndim < 1:
            raise InvalidArgumentError("ts", ts, "a tensor of times (T,) or (*batch, T)")
        ts = ts.to(dtype=x0.dtype, device=x0.device)
        batch = x0.shape[:-1]
        if ts.ndim > 1 and ts.shape[:-1] != batch:
            raise InvalidArgumentError("ts", ts, f"shape (T,) or {(*batch, 'T')} to match x0")
        elapsed = ts - ts[..., :1]
        elapsed = elapsed.expand(*batch, ts.shape[-1])
        out = self._compose(x0.reshape(-1, self.dim), elapsed.reshape(-1, ts.shape[-1]), "ts")
        return out.reshape(*batch, ts.shape[-1], self.dim)

    def _compose(self, x: Tensor, elapsed: Tensor, name: str) -> Tensor:
        """``x (N, D)``, ``elapsed (N, T) ≥ 0`` → ``(N, T, D)`` by ``N(δt) ∘ N(Δt)^n``."""
        if not torch.isfinite(elapsed).all() or (elapsed < 0).any():
            what = "t" if name == "t" else "ts (times before ts[..., 0])"
            raise InvalidArgumentError(name, elapsed, f"finite, non-negative elapsed times; check {what}")
        dt = self.dt
        n = torch.floor(elapsed / dt).to(torch.int64)
        delta = (elapsed - n.to(elapsed.dtype) * dt).clamp(0.0, dt)
        out = x.new_zeros(*elapsed.shape, self.dim)
        last = n.max(dim=1).values  # per sample, how many full steps it needs
        full = torch.full((), dt, dtype=x.dtype, device=x.device)
        for k in range(int(last.max()) + 1 if last.numel() else 0):
            rows, cols = (n == k).nonzero(as_tuple=True)
            if rows.numel():
                d = delta[rows, cols]
                start = x[rows]
                moving = (d > 0).nonzero(as_tuple=True)[0]
                vals = start
                if moving.numel():  # N(0, x) = x exactly, so outputs on the Δt grid cost nothing
                    vals = start.index_put((moving,), self(d[moving], start[moving]))
                out = out.index_put((rows, cols), vals)
            active = (last > k).nonzero(as_tuple=True)[0]
            if active.numel():
                x = x.index_put((active,), self(full, x[active]))
        return out
