"""The augmented ODE of a continuous normalizing flow: state, log-density and regularisers together.

For a field ``f(t, y)`` on ``R^D`` the augmented state is

    z = [ y (D) | ℓ (1) | E_K (1, optional) | E_J (1, optional) | ε (D, Hutchinson only) ]

with dynamics (Chen et al. 2018; Grathwohl et al. 2019; Finlay, Jacobsen, Nurbekyan & Oberman,
*How to train your neural ODE*, ICML 2020)::

    dy/dt   = f(t, y)
    dℓ/dt   = −tr ∂f/∂y                      (instantaneous change of variables)
    dE_K/dt = ‖f(t, y)‖²                     (kinetic energy)
    dE_J/dt = ‖∂f/∂y‖_F²                     (Jacobian Frobenius norm; ‖εᵀ∂f/∂y‖² with a probe)
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
    """

    def __init__(
        self,
        field,
        dim: int,
        *,
        trace: str = "exact",
        kinetic: bool = False,
        jacobian: bool = False,
    ) -> None:
        super().__init__()
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
        return self.dim + 1 + self.kinetic + self.jacobian + (self.dim if self.uses_probe else 0)

    @property
    def probe_size(self) -> int:
        return self.dim if self.uses_probe else 0

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
            if probe is None or probe.shape != y.shape:
                raise InvalidArgumentError(
                    "probe", probe, f"a probe of the state's shape {tuple(y.shape)} (Hutchinson trace)"
                )
            parts.append(probe.to(y))
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
        probe = z[..., i : i + d] if self.uses_probe else None
        return AugmentedState(y=z[..., :d], logp=z[..., d], kinetic=kinetic, jacobian=jacobian, probe=probe)

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        d = self.dim
        y = z[..., :d]
        if self.uses_probe:
            probe = z[..., z.shape[-1] - d :]
            out = hutchinson_divergence(self.field, t, y, probe)
        else:
            out = exact_divergence(self.field, t, y)
        parts = [out.f, -out.div.unsqueeze(-1)]
        if self.kinetic:
            parts.append(out.f.pow(2).sum(-1, keepdim=True))
        if self.jacobian:
            parts.append(out.frobenius.unsqueeze(-1))
        if self.uses_probe:
            parts.append(torch.zeros_like(y))
        return torch.cat(parts, dim=-1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, trace={self.trace!r}, kinetic={self.kinetic}, jacobian={self.jacobian}"
