"""Per-sample step-size control for embedded Runge–Kutta pairs.

With the scaled error norm ``εₙ`` of step ``n`` (``εₙ ≤ 1`` accepts) and ``k`` the order of the
error estimate plus one, the PID controller of Söderlind (ACM TOMS 29, 2003) chooses

    h_{n+1} = hₙ · safety · εₙ^{−β₁} · ε_{n−1}^{−β₂} · ε_{n−2}^{−β₃},
    β₁ = (P + I + D)/k,  β₂ = −(P + 2D)/k,  β₃ = D/k,

clipped to ``[factor_min, factor_max]``. ``P = 0.2, I = 0.65`` reproduces the PI controller of
Hairer's DOPRI5 (``β = 0.04``); ``P = D = 0, I = 1`` is the classical integral controller. After a
rejection only the integral part is used and the factor is capped at 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import InvalidArgumentError

Tensor = torch.Tensor


@dataclass(frozen=True)
class PIDController:
    pcoeff: float = 0.2
    icoeff: float = 0.65
    dcoeff: float = 0.0
    safety: float = 0.9
    factor_min: float = 0.2
    factor_max: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.safety <= 1:
            raise InvalidArgumentError("controller.safety", self.safety, "a value in (0, 1]")
        if not 0 < self.factor_min < 1 < self.factor_max:
            raise InvalidArgumentError(
                "controller.factor_min/factor_max", (self.factor_min, self.factor_max), "0 < min < 1 < max"
            )
        if self.pcoeff + self.icoeff + self.dcoeff <= 0:
            raise InvalidArgumentError("controller", self, "P + I + D > 0")

    def factor(self, err: Tensor, err1: Tensor, err2: Tensor, accept: Tensor, k: int) -> Tensor:
        """Step-size factor per sample; ``err`` is already finite and ``≥ tiny`` (see the driver)."""
        b1 = (self.pcoeff + self.icoeff + self.dcoeff) / k
        b2 = -(self.pcoeff + 2 * self.dcoeff) / k
        b3 = self.dcoeff / k
        # εᵇ as exp(b·log ε): one log of ε serves both factors, and log and exp each cost a quarter of a
        # pow with a fractional exponent (eager, CPU); the factor is a heuristic, so the last bits are free.
        log_err = err.log()
        expo = log_err * -b1
        if b2 != 0:
            expo = expo - b2 * err1.log()
        if b3 != 0:
            expo = expo - b3 * err2.log()
        fac = (self.safety * expo.exp()).clamp(self.factor_min, self.factor_max)
        reject_fac = (self.safety * (log_err * (-1.0 / k)).exp()).clamp(self.factor_min, 1.0)
        return torch.where(accept, fac, reject_fac)


INTEGRAL = PIDController(pcoeff=0.0, icoeff=1.0, dcoeff=0.0)
