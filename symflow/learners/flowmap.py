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

**Parametric maps** ``N(t, x0; μ)`` (a model built with ``param_ranges={"omega": (0.5, 2.0)}``) take
the parameters as ``mu=`` in every method above: a tensor ``(..., P)`` broadcast against the batch, or
a mapping ``name → value``. The network sees ``μ`` rescaled to ``[−1, 1]`` over the trained range. A
parametric model refuses a call without ``mu``, a plain one refuses ``mu``, and ``flow``/``rollout``
refuse parameters outside the trained range — each before any work, naming the parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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

    def __init__(
        self, dim: int, dt: float, derivatives: str, param_ranges: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.dim = positive_int("dim", dim)
        self.dt = positive_time("dt", dt)
        self.derivatives = self._check_derivatives(derivatives)
        self.param_ranges = check_param_ranges(param_ranges)
        lo = torch.tensor([r[0] for r in self.param_ranges.values()], dtype=torch.float64)
        hi = torch.tensor([r[1] for r in self.param_ranges.values()], dtype=torch.float64)
        # μ̂ = (μ − centre) / half-width ∈ [−1, 1]: the network's input scale does not depend on units
        self.register_buffer("param_centre", (lo + hi) / 2, persistent=False)
        self.register_buffer("param_scale", (hi - lo) / 2, persistent=False)

    @property
    def param_names(self) -> tuple[str, ...]:
        """The parameters ``μ`` the map is conditioned on (empty for a map of one system)."""
        return tuple(self.param_ranges)

    @property
    def n_params(self) -> int:
        return len(self.param_ranges)

    def _param_config(self) -> dict[str, Any]:
        """The ``param_ranges`` entry of :meth:`config` (absent for a plain map, so its config is
        what it was before parametric maps existed)."""
        if not self.param_ranges:
            return {}
        return {"param_ranges": {k: list(v) for k, v in self.param_ranges.items()}}

    def _check_params(self, mu: Any, *, check_range: bool = False) -> Tensor | None:
        """``μ`` as a tensor ``(..., P)`` in the parameters' dtype, or ``None`` for a plain map.

        Refuses parameters a plain map was not trained with, missing ones for a parametric map, a
        mapping with other names (both lists named), and, with ``check_range``, values outside the
        trained range.
        """
        names = self.param_names
        if not names:
            if mu is not None:
                raise InvalidArgumentError(
                    "mu", mu, "no parameters: this model was trained for a single system, not a family"
                )
            return None
        if mu is None:
            raise InvalidArgumentError(
                "mu",
                None,
                f"the parameters this model was trained with: {list(names)} (shape (..., {len(names)}))",
            )
        dtype, device = self.parameter_dtype, self.param_centre.device
        if isinstance(mu, Mapping):
            if set(mu) != set(names):
                raise InvalidArgumentError(
                    "mu",
                    dict(mu),
                    f"values for the parameters the model was trained with {list(names)}, not {list(mu)}",
                )
            cols = torch.broadcast_tensors(
                *(torch.as_tensor(mu[k], dtype=dtype, device=device) for k in names)
            )
            mu = torch.stack(cols, dim=-1)
        elif not isinstance(mu, Tensor):
            mu = torch.as_tensor(mu, dtype=dtype, device=device)
        if mu.ndim < 1 or mu.shape[-1] != len(names):
            raise InvalidArgumentError(
                "mu", mu, f"a tensor of shape (..., {len(names)}) with the parameters {list(names)}"
            )
        mu = mu.to(dtype=dtype)
        if check_range:
            flat = mu.detach().reshape(-1, len(names)).to("cpu", torch.float64)
            for k, (name, (lo, hi)) in enumerate(self.param_ranges.items()):
                tol = 1e-6 * max(1.0, abs(lo), abs(hi))
                bad = ~torch.isfinite(flat[:, k]) | (flat[:, k] < lo - tol) | (flat[:, k] > hi + tol)
                if bool(bad.any()):
                    raise InvalidArgumentError(
                        f"mu[{name!r}]",
                        float(flat[:, k][bad][0]),
                        f"a value in the range the model was trained on, {name} ∈ [{lo:g}, {hi:g}]",
                    )
        return mu

    def at(self, mu: Any = None, **values: Any) -> FixedParameterMap:
        """The map at one point of its family: ``model.at(omega=1.3)`` or ``model.at([1.3])``.

        Refused for a map without parameters, for other parameter names and for values outside the
        trained range (each naming what was expected).
        """
        if mu is None and values:
            mu = values
        elif values:
            raise InvalidArgumentError("values", values, "either mu or keyword values, not both")
        if not self.param_names:
            raise InvalidArgumentError("mu", mu, "no parameters: this model was trained for a single system")
        m = self._check_params(mu, check_range=True)
        if m.reshape(-1, self.n_params).shape[0] != 1:
            raise InvalidArgumentError("mu", mu, f"one parameter vector of {self.n_params} values")
        return FixedParameterMap(self, m.reshape(self.n_params))

    def _scaled(self, mu: Tensor | None) -> Tensor | None:
        if mu is None:
            return None
        return (mu - self.param_centre.to(mu.dtype)) / self.param_scale.to(mu.dtype)

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

    def _broadcast(
        self, t: Tensor | float, x0: Tensor, mu: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """:meth:`_broadcast_time` with the parameters ``μ (..., P)`` broadcast too (``None`` stays)."""
        if mu is None:
            return (*self._broadcast_time(t, x0), None)
        t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device)
        try:
            batch = torch.broadcast_shapes(t.shape, x0.shape[:-1], mu.shape[:-1])
        except RuntimeError as err:
            raise InvalidArgumentError(
                "mu", mu, f"parameters broadcastable to the batch shape {tuple(x0.shape[:-1])}"
            ) from err
        return (
            t.expand(batch).contiguous(),
            x0.expand(*batch, self.dim),
            mu.to(device=x0.device).expand(*batch, mu.shape[-1]),
        )

    # -- time derivative ----------------------------------------------------------------------------
    def time_derivative(
        self, t: Tensor | float, x0: Tensor, *, mu: Any = None, derivatives: str | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(N(t, x0), ∂N/∂t(t, x0))``, one time per sample, differentiable w.r.t. the weights."""
        how = self.derivatives if derivatives is None else self._check_derivatives(derivatives)
        x0 = self._check_state(x0)
        t, x0, mu = self._broadcast(t, x0, self._check_params(mu))
        m = self._scaled(mu)
        extra = () if m is None else (m,)  # maps of one system may define the hooks without `mu`
        if how == "closed_form":
            return self._closed_form_time_derivative(t, x0, *extra)
        if how == "func":
            return jvp(lambda s: self._forward_with(s, x0, "func", *extra), (t,), (torch.ones_like(t),))
        with torch.enable_grad():
            s = t.detach().clone().requires_grad_()
            y = self._forward_with(s, x0, "autograd", *extra)
            dy = [torch.autograd.grad(y[..., k].sum(), s, create_graph=True)[0] for k in range(self.dim)]
        return y, torch.stack(dy, dim=-1)

    def _forward_with(self, t: Tensor, x0: Tensor, how: str, mu: Tensor | None = None) -> Tensor:
        """``N(t, x0)`` computed the way ``how`` asks (SympFlow's potentials' gradients differ);
        ``mu`` here is already rescaled (:meth:`_scaled`); models of their own without parameters
        need not override it."""
        if mu is not None:  # pragma: no cover - parametric models override this
            raise CapabilityError(f"{type(self).__name__} does not take parameters")
        return self(t, x0)

    def _closed_form_time_derivative(
        self, t: Tensor, x0: Tensor, mu: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        raise CapabilityError(f"{type(self).__name__} has no closed-form time derivative")  # pragma: no cover

    # -- long times ---------------------------------------------------------------------------------
    def flow(self, t: Tensor | float, x0: Tensor, mu: Any = None) -> Tensor:
        """``N(δt) ∘ N(Δt)^n (x0)`` with ``n = ⌊t/Δt⌋``: the learned flow for any ``t ≥ 0``.

        ``t`` is a scalar or one time per sample (broadcastable against ``x0.shape[:-1]``); ``mu``
        the parameters of a parametric map (checked against the trained range).
        """
        x0 = self._check_state(x0)
        t, x0, mu = self._broadcast(t, x0, self._check_params(mu, check_range=True))
        batch = t.shape
        flat_mu = None if mu is None else mu.reshape(-1, self.n_params)
        out = self._compose(x0.reshape(-1, self.dim), t.reshape(-1, 1), "t", flat_mu)
        return out[:, 0].reshape(*batch, self.dim)

    def rollout(self, x0: Tensor, ts: Tensor, mu: Any = None) -> Tensor:
        """States at the times ``ts``: ``(*batch, T, D)``; ``ts[..., 0]`` is the time of ``x0``.

        ``ts`` is ``(T,)`` (shared) or ``(*batch, T)`` (per sample); every entry must be at or after
        ``ts[..., 0]``; ``mu`` (``(*batch, P)`` or broadcastable) the parameters of a parametric map.
        Each sample is advanced by ``N(Δt)`` as far as its last time needs, and every output is one
        further ``N(δt)`` from the state just before it — ``n`` evaluations of the model per sample
        plus one per output time, never a re-composition from the start.
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
        mu = self._check_params(mu, check_range=True)
        flat_mu = None
        if mu is not None:
            try:
                flat_mu = mu.to(x0.device).expand(*batch, self.n_params).reshape(-1, self.n_params)
            except RuntimeError as err:
                raise InvalidArgumentError(
                    "mu", mu, f"parameters of shape {(*batch, self.n_params)}"
                ) from err
        out = self._compose(x0.reshape(-1, self.dim), elapsed.reshape(-1, ts.shape[-1]), "ts", flat_mu)
        return out.reshape(*batch, ts.shape[-1], self.dim)

    def _compose(self, x: Tensor, elapsed: Tensor, name: str, mu: Tensor | None = None) -> Tensor:
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
                    m = () if mu is None else (mu[rows][moving],)  # plain maps: forward(t, x0)
                    vals = start.index_put((moving,), self(d[moving], start[moving], *m))
                out = out.index_put((rows, cols), vals)
            active = (last > k).nonzero(as_tuple=True)[0]
            if active.numel():
                m = () if mu is None else (mu[active],)
                x = x.index_put((active,), self(full, x[active], *m))
        return out


def check_param_ranges(value: Any) -> dict[str, tuple[float, float]]:
    """``{name: (lo, hi)}`` with ``lo < hi`` finite (``None`` → ``{}``: a map of one system)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k for k in value):
        raise InvalidArgumentError("param_ranges", value, "a mapping of parameter names to (lo, hi)")
    out: dict[str, tuple[float, float]] = {}
    for name, bounds in value.items():
        ok = isinstance(bounds, (tuple, list)) and len(bounds) == 2
        ok = ok and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
        if not ok or not (math.isfinite(bounds[0]) and math.isfinite(bounds[1]) and bounds[0] < bounds[1]):
            raise InvalidArgumentError(f"param_ranges[{name!r}]", bounds, "two finite numbers lo < hi")
        out[name] = (float(bounds[0]), float(bounds[1]))
    return out


class FixedParameterMap(FlowMap):
    """A parametric flow map ``N(t, x0; μ)`` with ``μ`` fixed: a plain flow map of one system.

    Built by :meth:`FlowMap.at`; it shares the weights of the parametric model (no copy), so every
    tool written for plain maps — rollouts, the a-posteriori bound, the symplecticity defect of
    :mod:`symflow.diagnostics` — applies at one point of the family.
    """

    supported_derivatives = DERIVATIVES

    def __init__(self, model: FlowMap, mu: Tensor) -> None:
        super().__init__(model.dim, model.dt, "func")
        self.supported_derivatives = model.supported_derivatives
        self.derivatives = model.derivatives
        self.base = model
        self.learner = model.learner
        self.register_buffer("mu", mu.detach().clone(), persistent=False)

    @property
    def params(self) -> dict[str, float]:
        """The fixed parameter values, by name."""
        return dict(zip(self.base.param_names, self.mu.tolist()))

    def config(self) -> dict[str, Any]:
        return {**self.base.config(), "fixed_params": self.params}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in self.params.items())

    def _mu_for(self, x0: Tensor) -> Tensor:
        mu = self.mu.to(dtype=x0.dtype, device=x0.device)
        return self.base._scaled(mu.expand(*x0.shape[:-1], mu.shape[-1]))

    def forward(self, t: Tensor | float, x0: Tensor, mu: Any = None) -> Tensor:
        self._check_params(mu)  # refuses parameters: they are fixed
        x0 = self._check_state(x0)
        t, x0 = self._broadcast_time(t, x0)
        return self.base._forward_with(t, x0, self.derivatives, self._mu_for(x0))

    def _forward_with(self, t: Tensor, x0: Tensor, how: str, mu: Tensor | None = None) -> Tensor:
        return self.base._forward_with(t, x0, how, self._mu_for(x0))

    def _closed_form_time_derivative(
        self, t: Tensor, x0: Tensor, mu: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        return self.base._closed_form_time_derivative(t, x0, self._mu_for(x0))
