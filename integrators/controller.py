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
        b2, b3 = self.exponents(k)[1:]
        log_err = err.log()
        # (a log whose coefficient is 0 is not taken: log_err stands in for it)
        fac = self.factor_from_logs(
            log_err, err1.log() if b2 != 0 else log_err, err2.log() if b3 != 0 else log_err, accept, k
        )
        return torch.where(accept, fac, fac.clamp(max=1.0))  # a rejection never grows the step

    def exponents(self, k: int) -> tuple[float, float, float]:
        """``(β₁, β₂, β₃)`` for an error estimate whose order plus one is ``k``."""
        p, i, d = self.pcoeff, self.icoeff, self.dcoeff
        return (p + i + d) / k, -(p + 2 * d) / k, d / k

    def factor_from_logs(
        self, log_err: Tensor, log_err1: Tensor, log_err2: Tensor, accept: Tensor, k: int
    ) -> Tensor:
        """:meth:`factor` from ``log εₙ``, ``log ε_{n−1}``, ``log ε_{n−2}``: the adaptive loop keeps the
        logs of past errors, so an attempt takes one log.

        ``εᵇ`` is ``exp(b·log ε)``: log and exp each cost a quarter of a ``pow`` with a fractional
        exponent (eager, CPU), and one exp serves accepted and rejected samples. Unlike :meth:`factor`
        it does not cap a rejected sample's factor at 1 itself; it does not need to where the error
        rejected the step: ``εₙ > 1`` makes ``safety · εₙ^{−1/k}`` smaller than ``safety ≤ 1`` (and a
        non-finite error gives ``factor_min``). The factor is a heuristic: its last bits are free.
        """
        b1, b2, b3 = self.exponents(k)
        expo = log_err * -b1
        if b2 != 0:
            expo = torch.add(expo, log_err1, alpha=-b2)
        if b3 != 0:
            expo = torch.add(expo, log_err2, alpha=-b3)
        expo = torch.where(accept, expo, log_err * (-1.0 / k))
        return (expo.exp() * self.safety).clamp(self.factor_min, self.factor_max)


INTEGRAL = PIDController(pcoeff=0.0, icoeff=1.0, dcoeff=0.0)
