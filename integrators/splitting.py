"""Explicit symplectic splitting methods for separable ``H(q, p) = T(p) + V(q)``.

A scheme alternates exact flows of the two halves — a *drift* ``q ← q + aᵢ h ∂T/∂p(p)`` and a
*kick* ``p ← p − bᵢ h ∂V/∂q(q)`` — as ``D(a₀) K(b₀) D(a₁) … K(b_{m−1}) D(a_m)``. Each substep is
the exact flow of a Hamiltonian, so the composition is symplectic for every step size.

Schemes (Hairer, Lubich & Wanner, *Geometric Numerical Integration*, §II.5 and §V.3):

* ``symplectic_euler``: ``D(1) K(1)``, order 1.
* ``verlet`` (Störmer–Verlet, position form / leapfrog): ``D(½) K(1) D(½)``, order 2, one force
  evaluation per step.
* ``yoshida4`` (Forest & Ruth 1990; Yoshida 1990): the symmetric triple jump of Verlet steps with
  weights ``w₁ = 1/(2 − 2^{1/3})``, ``w₀ = 1 − 2w₁``; order 4.
* ``yoshida6``: Yoshida's (1990) solution A, seven Verlet steps; order 6.

Steps are computed in increment form (``q = q₀ + δq``), so the fixed-step driver's compensated
summation sees only the small increments.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from .errors import InvalidArgumentError
from .fields import SplitField

Tensor = torch.Tensor


@dataclass(frozen=True)
class SplittingScheme:
    name: str
    drift: tuple[float, ...]  # m + 1 coefficients
    kick: tuple[float, ...]  # m coefficients
    order: int  # classical order (measured by the convergence tests, not computed here)
    reference: str = ""

    def __post_init__(self) -> None:
        if len(self.drift) != len(self.kick) + 1:
            raise InvalidArgumentError(
                f"scheme {self.name}", (len(self.drift), len(self.kick)), "m+1 drifts, m kicks"
            )
        if abs(sum(self.drift) - 1) > 1e-14 or abs(sum(self.kick) - 1) > 1e-14:
            raise InvalidArgumentError(
                f"scheme {self.name}", (sum(self.drift), sum(self.kick)), "coefficients summing to 1"
            )

    @property
    def symmetric(self) -> bool:
        """Palindromic coefficients give a time-reversible (symmetric) method of even order."""
        return _close(self.drift, self.drift[::-1]) and _close(self.kick, self.kick[::-1])

    @property
    def force_evaluations(self) -> int:
        return sum(1 for b in self.kick if b != 0)


def _close(a, b) -> bool:
    return all(abs(x - y) <= 1e-14 for x, y in zip(a, b))


def _from_verlet_weights(
    name: str, weights: tuple[float, ...], order: int, reference: str
) -> SplittingScheme:
    """Composition of position-Verlet steps with sizes ``wᵢh`` (adjacent half drifts merged)."""
    drift = [weights[0] / 2]
    for w_prev, w_next in itertools.pairwise(weights):
        drift.append((w_prev + w_next) / 2)
    drift.append(weights[-1] / 2)
    return SplittingScheme(name, tuple(drift), tuple(weights), order, reference)


SYMPLECTIC_EULER = SplittingScheme("symplectic_euler", (1.0, 0.0), (1.0,), 1, "de Vogelaere (1956)")
VERLET = SplittingScheme("verlet", (0.5, 0.5), (1.0,), 2, "Störmer (1907); Verlet (1967)")

_W1 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
YOSHIDA4 = _from_verlet_weights(
    "yoshida4",
    (_W1, 1.0 - 2.0 * _W1, _W1),
    4,
    "Forest & Ruth, Physica D 43 (1990); Yoshida, Phys. Lett. A 150 (1990)",
)

_Y6 = (-1.17767998417887, 0.235573213359357, 0.784513610477560)
_Y6_W0 = 1.0 - 2.0 * sum(_Y6)
YOSHIDA6 = _from_verlet_weights(
    "yoshida6",
    (_Y6[2], _Y6[1], _Y6[0], _Y6_W0, _Y6[0], _Y6[1], _Y6[2]),
    6,
    "Yoshida, Phys. Lett. A 150, 262 (1990), solution A",
)


class SplittingStepper:
    def __init__(self, scheme: SplittingScheme, split: SplitField) -> None:
        self.scheme = scheme
        self.split = split
        self.n = split.n
        self.evals_per_step = scheme.force_evaluations + sum(1 for a in scheme.drift if a != 0)
        # Time at each kick: the drifts carry the clock (t is advanced with q).
        times, acc = [], 0.0
        for a in scheme.drift[:-1]:
            acc += a
            times.append(acc)
        self.kick_times = tuple(times)
        self.drift_times = tuple([0.0, *self.kick_times])

    def step(self, t: Tensor, y: Tensor, h: float | Tensor) -> tuple[Tensor, None]:
        n = self.n
        q0, p0 = y[..., :n], y[..., n:]
        hc = h if isinstance(h, float) else h.unsqueeze(-1)
        th = h
        dq = torch.zeros_like(q0)
        dp = torch.zeros_like(p0)
        sch = self.scheme
        for i, b in enumerate(sch.kick):
            a = sch.drift[i]
            if a != 0.0:
                dq = dq + (a * hc) * self.split.drift(t + self.drift_times[i] * th, p0 + dp)
            if b != 0.0:
                dp = dp + (b * hc) * self.split.kick(t + self.kick_times[i] * th, q0 + dq)
        a = sch.drift[-1]
        if a != 0.0:
            dq = dq + (a * hc) * self.split.drift(t + th, p0 + dp)
        return torch.cat([dq, dp], dim=-1), None
