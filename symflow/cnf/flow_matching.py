"""Conditional flow matching with optimal-transport paths: simulation-free training of a CNF field.

Lipman, Chen, Ben-Hamu, Nickel & Le, *Flow Matching for Generative Modeling*, ICLR 2023, §4.1
(see also the seed ``004_*`` and Lipman et al., *Flow Matching Guide and Code*, 2024). For a data
point ``x1`` and a base sample ``x0 ~ N(0, I)`` the conditional optimal-transport path

    x_t = (1 − (1 − σ_min) t) x0 + t x1,        t ∈ [0, 1],

moves ``N(0, I)`` at ``t = 0`` to ``N(x1, σ_min² I)`` at ``t = 1`` along straight lines with the
constant conditional velocity

    u_t(x_t | x1) = x1 − (1 − σ_min) x0.

Regressing a field on it, ``L(θ) = E_{t, x0, x1} ‖v_θ(t, x_t) − u_t‖²``, has the same gradient as
regressing on the (intractable) marginal field that transports ``N(0, I)`` to the data blurred by
``σ_min`` (Lipman et al., Thm. 2), so training needs no ODE solve. The trained field is then an
ordinary CNF field: sampling and exact likelihood go through :class:`~symflow.cnf.model.CNF` with
``t1 = 1`` and the same solver as a maximum-likelihood CNF.
"""

from __future__ import annotations

import torch

from symflow.integrators import InvalidArgumentError
from symflow.integrators.inputs import positive_float

Tensor = torch.Tensor


def ot_path(x0: Tensor, x1: Tensor, t: Tensor, sigma_min: float = 1e-4) -> tuple[Tensor, Tensor]:
    """Point ``x_t`` on the conditional OT path and its target velocity ``u_t``.

    ``x0``, ``x1`` are ``(B, D)``; ``t`` is ``(B,)`` in ``[0, 1]``.
    """
    if x0.shape != x1.shape:
        raise InvalidArgumentError("x0", x0, f"a tensor of the data's shape {tuple(x1.shape)}")
    if t.shape != x1.shape[:-1]:
        raise InvalidArgumentError("t", t, f"a tensor of the batch shape {tuple(x1.shape[:-1])}")
    sigma_min = positive_float("sigma_min", sigma_min, allow_zero=True)
    tc = t.unsqueeze(-1)
    xt = (1 - (1 - sigma_min) * tc) * x0 + tc * x1
    return xt, x1 - (1 - sigma_min) * x0


def flow_matching_loss(
    field: torch.nn.Module,
    x1: Tensor,
    *,
    sigma_min: float = 1e-4,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Monte Carlo conditional flow-matching loss on a batch of (normalised) data ``x1 (B, D)``.

    One ``t ~ U(0, 1)`` and one ``x0 ~ N(0, I)`` per data point; the loss is the batch mean of
    ``‖v_θ(t, x_t) − u_t‖²`` (summed over dimensions). No ODE is solved.
    """
    if not isinstance(x1, Tensor) or x1.dim() != 2:
        raise InvalidArgumentError("x1", x1, "a (B, D) tensor of data points")
    x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype, device=x1.device)
    t = torch.rand(x1.shape[0], generator=generator, dtype=x1.dtype, device=x1.device)
    xt, target = ot_path(x0, x1, t, sigma_min)
    return (field(t, xt) - target).pow(2).sum(-1).mean()
