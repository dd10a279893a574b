"""SympFlow: a neural flow map that is exactly symplectic for every time.

Canizares, Murari, Schönlieb, Sherry & Shumaylov, "Symplectic neural flows for modeling and
discovery", arXiv:2412.16787 (2024); seed 004, slides "The SympFlow architecture" and "Properties
of SympFlow". With ``x = (q, p) ∈ R^{2n}``,

    N_θ(t, (q0, p0)) = φ^L_{p,t} ∘ φ^L_{q,t} ∘ … ∘ φ^1_{p,t} ∘ φ^1_{q,t} (q0, p0),
    φ^i_{q,t}(q, p) = (q + ∇_p K^i(t, p) − ∇_p K^i(0, p),  p),
    φ^i_{p,t}(q, p) = (q,  p − ∇_q V^i(t, q) + ∇_q V^i(0, q)),

where ``V^i``, ``K^i`` are tanh MLPs of ``[q; t]`` and ``[p; t]`` (two hidden layers in the slides).
Each block is a shear with a symmetric Hessian, so it is symplectic in ``x0`` for every ``t``, and
it is the exact time-``t`` flow of the time-dependent Hamiltonian ``∂_t V^i(t, q)`` (resp.
``∂_t K^i(t, p)``); hence ``N_θ`` is symplectic, the identity at ``t = 0`` (exactly, see
:class:`~symflow.learners.networks.IncrementMLP`), and the exact flow of a recoverable
time-dependent Hamiltonian (:mod:`symflow.learners.recovery`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .flowmap import DERIVATIVES, FlowMap, positive_int
from .networks import IncrementMLP

Tensor = torch.Tensor


class SympFlow(FlowMap):
    """Exactly symplectic flow map ``N(t, x0)`` of ``L`` alternating ``q``/``p`` shears.

    Args:
        dof: degrees of freedom ``n`` (states have ``D = 2n`` components ``[q, p]``).
        dt: the time ``Δt`` the map is trained for (``t ∈ [0, Δt]``; longer times by composition).
        layers: ``L``, the number of ``(φ_q, φ_p)`` block pairs.
        width, hidden_layers: each potential is a tanh MLP with ``hidden_layers`` layers of ``width``.
        derivatives: how ``∇K``, ``∇V`` and ``dN/dt`` are computed: ``"closed_form"`` (hand-derived
            forward mode; fastest, the default), ``"func"`` (``torch.func.grad`` + ``torch.func.jvp``)
            or ``"autograd"`` (``torch.autograd.grad`` loops). All three give the same numbers to
            round-off (tested), so the choice is only about speed; see ``benchmarks/bench_sympflow.py``.
        param_ranges: ``{name: (lo, hi)}`` for a parametric map ``N(t, x0; μ)``: ``μ`` is an extra input
            of every potential ``V^i(t, q; μ)``, ``K^i(t, p; μ)`` (not differentiated), so for every
            fixed ``μ`` the map is exactly symplectic in ``x0`` and the flow of a Hamiltonian.
    """

    learner = "sympflow"
    supported_derivatives = DERIVATIVES

    def __init__(
        self,
        dof: int,
        *,
        dt: float,
        layers: int = 4,
        width: int = 10,
        hidden_layers: int = 2,
        derivatives: str = "closed_form",
        param_ranges: dict[str, Any] | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        dof = positive_int("dof", dof)
        super().__init__(2 * dof, dt, derivatives, param_ranges)
        self.dof = dof
        self.layers = positive_int("layers", layers)
        self.width = width
        self.hidden_layers = hidden_layers
        kw = {
            "width": width,
            "hidden_layers": hidden_layers,
            "conditions": self.n_params,
            "dtype": dtype,
            "device": device,
        }
        self.kinetic = nn.ModuleList(IncrementMLP(dof, **kw) for _ in range(layers))  # K^i(t, p)
        self.potential = nn.ModuleList(IncrementMLP(dof, **kw) for _ in range(layers))  # V^i(t, q)

    def config(self) -> dict[str, Any]:
        return {
            "dof": self.dof,
            "dt": self.dt,
            "layers": self.layers,
            "width": self.width,
            "hidden_layers": self.hidden_layers,
            "derivatives": self.derivatives,
            **self._param_config(),
        }

    def extra_repr(self) -> str:
        family = f", params={list(self.param_names)}" if self.param_names else ""
        return (
            f"dof={self.dof}, dt={self.dt}, layers={self.layers}, width={self.width}, "
            f"hidden_layers={self.hidden_layers}, derivatives={self.derivatives!r}{family}, "
            f"parameters={self.num_parameters()}"
        )

    # -- the map ------------------------------------------------------------------------------------
    def forward(self, t: Tensor | float, x0: Tensor, mu: Any = None) -> Tensor:
        """``N(t, x0)`` (``N(t, x0; μ)`` with ``mu``); ``t`` broadcastable against ``x0.shape[:-1]``,
        meaningful for ``t ∈ [0, Δt]``."""
        x0 = self._check_state(x0)
        t, x0, mu = self._broadcast(t, x0, self._check_params(mu))
        extra = () if mu is None else (self._scaled(mu),)  # subclasses may define the hook without mu
        return self._forward_with(t, x0, self.derivatives, *extra)

    @staticmethod
    def _gradient(net: IncrementMLP, t: Tensor, x: Tensor, how: str, mu: Tensor | None = None) -> Tensor:
        if how == "func":
            return net.gradient(t, x, mu)
        if how == "autograd":
            return net.gradient_autograd(t, x, mu)
        return net.closed_form_gradient(t, x, mu)

    def _forward_with(self, t: Tensor, x0: Tensor, how: str, mu: Tensor | None = None) -> Tensor:
        n = self.dof
        q, p = x0[..., :n], x0[..., n:]
        for K, V in zip(self.kinetic, self.potential):
            q = q + self._gradient(K, t, p, how, mu)
            p = p - self._gradient(V, t, q, how, mu)
        return torch.cat([q, p], dim=-1)

    def _closed_form_time_derivative(
        self, t: Tensor, x0: Tensor, mu: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        n = self.dof
        q, p = x0[..., :n], x0[..., n:]
        q_dot: Tensor | None = None  # x0 does not depend on t
        p_dot: Tensor | None = None
        for K, V in zip(self.kinetic, self.potential):
            g, g_dot = K.gradient_and_tangent(t, p, p_dot, mu)
            q = q + g
            q_dot = g_dot if q_dot is None else q_dot + g_dot
            g, g_dot = V.gradient_and_tangent(t, q, q_dot, mu)
            p = p - g
            p_dot = -g_dot if p_dot is None else p_dot - g_dot
        return torch.cat([q, p], dim=-1), torch.cat([q_dot, p_dot], dim=-1)

    def inverse(self, t: Tensor | float, y: Tensor, mu: Any = None) -> Tensor:
        """``N(t, ·)^{-1}(y)``: the blocks undone in reverse order (each shear inverts explicitly)."""
        y = self._check_state(y, "y")
        t, y, mu = self._broadcast(t, y, self._check_params(mu))
        m = self._scaled(mu)
        n = self.dof
        q, p = y[..., :n], y[..., n:]
        for K, V in zip(reversed(self.kinetic), reversed(self.potential)):
            p = p + self._gradient(V, t, q, self.derivatives, m)
            q = q - self._gradient(K, t, p, self.derivatives, m)
        return torch.cat([q, p], dim=-1)

    # -- the Hamiltonian it is the exact flow of ----------------------------------------------------
    def hamiltonian(self, y: Tensor, t: Tensor | float | None = None, *, nodes: int = 8) -> Tensor:
        """The recovered Hamiltonian ``H̃`` (see :mod:`symflow.learners.recovery`).

        With ``t`` given: ``H̃(t, y)``, whose exact flow ``N(t, ·)`` is. Without: its time average
        ``(1/Δt) ∫_0^Δt H̃(s, y) ds`` by ``nodes``-point Gauss–Legendre quadrature — the autonomous
        Hamiltonian the learned ``Δt``-map follows to first order (the leading Magnus term).
        ``H̃`` is defined up to an additive function of time only, so compare differences
        ``H̃(y) − H̃(y_ref)`` with ``H(y) − H(y_ref)``.
        """
        from .recovery import recovered_hamiltonian, time_averaged_hamiltonian

        if t is None:
            return time_averaged_hamiltonian(self, y, nodes=nodes)
        return recovered_hamiltonian(self, t, y)
