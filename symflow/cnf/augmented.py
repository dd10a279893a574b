"""The augmented ODE of a continuous normalizing flow: state, log-density and regularisers together.

For a field ``f(t, y)`` on ``R^D`` the augmented state is

    z = [ y (D) | ℓ (1) | E_K (1, optional) | E_J (1, optional) | ε (D, Hutchinson only) ]

with dynamics (Chen et al. 2018; Grathwohl et al. 2019; Finlay, Jacobsen, Nurbekyan & Oberman,
*How to train your neural ODE*, ICML 2020)::

    dy/dt   = f(t, y)
    dℓ/dt   = −tr ∂f/∂y                      (instantaneous change of variables)
    dE_K/dt = ‖f(t, y)‖²                     (kinetic energy)
    dE_J/dt = ‖∂f/∂y‖_F²                     (Jacobian Frobenius norm; ‖(∂f/∂y)ε‖² or ‖εᵀ∂f/∂y‖² with a probe)
    dε/dt   = 0                              (the Hutchinson probe, fixed during the solve)

The probe travels *in the state* rather than in a buffer: the continuous adjoint evaluates the field
on stacked stage points and inside ``vmap`` over single samples (see
``symflow.integrators.adjoint``), and only a per-row state component stays attached to its sample
there. Its zero derivative costs nothing in accuracy, but it does enter the solver's RMS error norm
(over all ``2D + 1 + …`` components), which makes the effective tolerance a factor
``sqrt(size / (size − D))`` looser than the same ``rtol``/``atol`` on ``[y, ℓ, …]`` alone —
:class:`~symflow.cnf.model.CNF` compensates by scaling the tolerances it passes.

The module is a plain ``nn.Module`` field ``forward(t, z)``; the wrapped vector field's parameters
are its parameters, so ``solve(..., adjoint=True)`` trains them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from symflow.integrators import InvalidArgumentError
from symflow.integrators.reprs import compact_repr

from .trace import check_trace, exact_divergence, hutchinson_divergence

Tensor = torch.Tensor


@dataclass(frozen=True)
class AugmentedState:
    """The parts of an augmented state ``z`` (views into it); absent parts are ``None``."""

    y: Tensor
    logp: Tensor
    kinetic: Tensor | None
    jacobian: Tensor | None
    probe: Tensor | None

    def __repr__(self) -> str:
        return compact_repr(self)


class AugmentedField(torch.nn.Module):
    """``forward(t, z)``: the augmented dynamics above for a vector field ``field(t, y)``.

    Args:
        field: the vector field (an ``nn.Module`` to train it, or any callable ``f(t, y)``).
        dim: state dimension ``D``.
        trace: ``"exact"`` or ``"hutchinson"``.
        kinetic: integrate ``∫‖f‖² dt`` as an extra state.
        jacobian: integrate ``∫‖∂f/∂y‖_F² dt`` as an extra state.
        probes: Hutchinson probes per sample, averaged (``k`` probes: ``k·D`` extra states).
    """

    def __init__(
        self,
        field,
        dim: int,
        *,
        trace: str = "exact",
        kinetic: bool = False,
        jacobian: bool = False,
        probes: int = 1,
    ) -> None:
        super().__init__()
        if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
            raise InvalidArgumentError("probes", probes, "a positive number of Hutchinson probes")
        self.probes = probes
        if not callable(field):
            raise InvalidArgumentError("field", field, "a vector field f(t, y) (callable or nn.Module)")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise InvalidArgumentError("dim", dim, "a positive integer state dimension")
        self.field = field
        self.dim = dim
        self.trace = check_trace(trace)
        self.kinetic = bool(kinetic)
        self.jacobian = bool(jacobian)

    @property
    def uses_probe(self) -> bool:
        return self.trace == "hutchinson"

    @property
    def size(self) -> int:
        """Length of the augmented state."""
        return self.dim + 1 + self.kinetic + self.jacobian + self.probe_size

    @property
    def probe_size(self) -> int:
        return self.probes * self.dim if self.uses_probe else 0

    @property
    def probe_shape_suffix(self) -> tuple[int, ...]:
        """Trailing shape of the probe for a state ``(..., D)``: ``(D,)``, or ``(k, D)`` for ``k > 1``."""
        return (self.dim,) if self.probes == 1 else (self.probes, self.dim)

    def pack(self, y: Tensor, logp: Tensor | None = None, probe: Tensor | None = None) -> Tensor:
        """``z`` from ``y (..., D)``, ``ℓ (...)`` (default 0) and the probe (Hutchinson only)."""
        if y.shape[-1] != self.dim:
            raise InvalidArgumentError("y", y, f"a tensor of shape (..., {self.dim})")
        batch = y.shape[:-1]
        zero = y.new_zeros(*batch, 1)
        parts = [y, zero if logp is None else logp.reshape(*batch, 1).to(y)]
        if self.kinetic:
            parts.append(zero)
        if self.jacobian:
            parts.append(zero)
        if self.uses_probe:
            want = (*batch, *self.probe_shape_suffix)
            if probe is None or tuple(probe.shape) != want:
                raise InvalidArgumentError(
                    "probe", probe, f"probes of shape {want} (Hutchinson trace, {self.probes} per sample)"
                )
            parts.append(probe.to(y).reshape(*batch, self.probe_size))
        elif probe is not None:
            raise InvalidArgumentError("probe", probe, "None: the exact trace uses no probe")
        return torch.cat(parts, dim=-1)

    def unpack(self, z: Tensor) -> AugmentedState:
        d = self.dim
        i = d + 1
        kinetic = jacobian = None
        if self.kinetic:
            kinetic, i = z[..., i], i + 1
        if self.jacobian:
            jacobian, i = z[..., i], i + 1
        probe = (
            z[..., i : i + self.probe_size].reshape(*z.shape[:-1], *self.probe_shape_suffix)
            if self.uses_probe
            else None
        )
        return AugmentedState(y=z[..., :d], logp=z[..., d], kinetic=kinetic, jacobian=jacobian, probe=probe)

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        d = self.dim
        y = z[..., :d]
        if self.uses_probe:
            probe = z[..., z.shape[-1] - self.probe_size :].reshape(*y.shape[:-1], *self.probe_shape_suffix)
            out = hutchinson_divergence(self.field, t, y, probe)
        else:
            out = exact_divergence(self.field, t, y)
        parts = [out.f, -out.div.unsqueeze(-1)]
        if self.kinetic:
            parts.append(out.f.pow(2).sum(-1, keepdim=True))
        if self.jacobian:
            parts.append(out.frobenius.unsqueeze(-1))
        if self.uses_probe:
            parts.append(y.new_zeros(*y.shape[:-1], self.probe_size))
        return torch.cat(parts, dim=-1)

    def extra_repr(self) -> str:
        probes = f", probes={self.probes}" if self.uses_probe and self.probes > 1 else ""
        return (
            f"dim={self.dim}, trace={self.trace!r}{probes}, kinetic={self.kinetic}, jacobian={self.jacobian}"
        )
