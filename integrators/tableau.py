"""Butcher tableaux as frozen, validated data with computed properties.

A tableau ``(A, b, c)`` defines the Runge–Kutta step

    kᵢ = f(t + cᵢ h, y + h Σⱼ aᵢⱼ kⱼ),    y₁ = y + h Σᵢ bᵢ kᵢ.

An embedded pair adds weights ``b̂`` of lower order; ``y₁ − ŷ₁ = h Σᵢ (bᵢ − b̂ᵢ) kᵢ`` estimates the
local error. DOP853 adds a second, third-order embedded solution ``b̂₃``: its error norm is Hairer's
combination ``ε = ε₅² / √(ε₅² + 0.01 ε₃²)`` of the two estimates, which behaves like ``O(h⁸)``.

A dense-output matrix ``P`` gives ``y(t + θh) = y + h Σᵢ bᵢ(θ) kᵢ`` with ``bᵢ(θ) = Σⱼ Pᵢⱼ θ^{j+1}``.
High-order interpolants need stages beyond the step's (``extra``): rows of ``a`` over all earlier
stages, evaluated only when an output falls inside the step; ``P`` then has one row per stage,
extra ones included.

Nothing about a tableau is declared: order (from the rooted-tree conditions), explicitness, FSAL
and symplecticity (Cooper's condition ``bᵢaᵢⱼ + bⱼaⱼᵢ = bᵢbⱼ``) are computed from the numbers, and
construction fails on inconsistent data (wrong shapes, ``cᵢ ≠ Σⱼ aᵢⱼ``, ``Σ bᵢ ≠ 1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .errors import InvalidArgumentError
from .order_conditions import order_of

Row = tuple[float, ...]


@dataclass(frozen=True)
class ButcherTableau:
    """A Runge–Kutta method's coefficients. Build with tuples of floats; validated on construction."""

    name: str
    a: tuple[Row, ...]
    b: Row
    c: Row
    b_embedded: Row | None = None
    dense: tuple[Row, ...] | None = None  # P, shape (stages + extra stages, degree)
    tol: float = 1e-13  # how exactly the coefficients satisfy the identities (decimal data)
    b_embedded2: Row | None = None  # a second, lower-order embedded solution (DOP853's b̂₃)
    extra: tuple[Row, ...] = ()  # interpolation stages: row k has stages + k entries (a over all earlier)

    def __post_init__(self) -> None:
        s = len(self.b)
        if len(self.c) != s or len(self.a) != s or any(len(row) != s for row in self.a):
            raise InvalidArgumentError(
                f"tableau {self.name}",
                (len(self.a), len(self.b), len(self.c)),
                "A of shape (s, s), b and c of length s",
            )
        a, b, c = self.A, self.B, self.C
        if not np.allclose(a.sum(1), c, rtol=0, atol=self.tol * 10):
            raise InvalidArgumentError(f"tableau {self.name}: c", self.c, "cᵢ = Σⱼ aᵢⱼ (row sums of A)")
        if abs(b.sum() - 1) > self.tol * 10:
            raise InvalidArgumentError(f"tableau {self.name}: b", self.b, "weights summing to 1")
        if self.b_embedded is not None:
            if len(self.b_embedded) != s:
                raise InvalidArgumentError(
                    f"tableau {self.name}: b_embedded", self.b_embedded, f"{s} weights"
                )
            if abs(sum(self.b_embedded) - 1) > self.tol * 10:
                raise InvalidArgumentError(f"tableau {self.name}: b_embedded", self.b_embedded, "sum 1")
        if self.b_embedded2 is not None:
            if self.b_embedded is None or len(self.b_embedded2) != s:
                raise InvalidArgumentError(
                    f"tableau {self.name}: b_embedded2", self.b_embedded2, f"{s} weights, with b_embedded"
                )
            if abs(sum(self.b_embedded2) - 1) > self.tol * 10:
                raise InvalidArgumentError(f"tableau {self.name}: b_embedded2", self.b_embedded2, "sum 1")
        for k, row in enumerate(self.extra):
            if len(row) != s + k:
                raise InvalidArgumentError(
                    f"tableau {self.name}: extra[{k}]", len(row), f"{s + k} coefficients (all earlier stages)"
                )
        if self.dense is not None:
            p = np.asarray(self.dense, dtype=np.float64)
            n = s + len(self.extra)
            if p.ndim != 2 or p.shape[0] != n:
                raise InvalidArgumentError(f"tableau {self.name}: dense", p.shape, f"({n}, degree)")
            # θ = 1 must reproduce the step: Σⱼ Pᵢⱼ = bᵢ (and 0 for interpolation stages).
            target = np.concatenate([b, np.zeros(len(self.extra))])
            if not np.allclose(p.sum(1), target, rtol=0, atol=self.tol * 100):
                raise InvalidArgumentError(f"tableau {self.name}: dense", "P", "rows summing to b (θ = 1)")

    # -- arrays -------------------------------------------------------------------------------------
    @cached_property
    def A(self) -> np.ndarray:
        return np.asarray(self.a, dtype=np.float64)

    @cached_property
    def B(self) -> np.ndarray:
        return np.asarray(self.b, dtype=np.float64)

    @cached_property
    def C(self) -> np.ndarray:
        return np.asarray(self.c, dtype=np.float64)

    @cached_property
    def A_dense(self) -> np.ndarray:
        """``A`` extended by the interpolation stages (square, lower triangular)."""
        s, n = self.stages, self.stages + len(self.extra)
        out = np.zeros((n, n))
        out[:s, :s] = self.A
        for k, row in enumerate(self.extra):
            out[s + k, : s + k] = row
        return out

    @cached_property
    def c_extra(self) -> tuple[float, ...]:
        """Nodes of the interpolation stages (their rows' sums)."""
        return tuple(float(sum(row)) for row in self.extra)

    @cached_property
    def error_weights2(self) -> np.ndarray | None:
        """``b − b̂₃`` of a pair with a second estimate (DOP853), else ``None``."""
        if self.b_embedded2 is None:
            return None
        return self.B - np.asarray(self.b_embedded2, dtype=np.float64)

    @cached_property
    def error_weights(self) -> np.ndarray | None:
        """``b − b̂``: the local error estimate is ``h Σᵢ (bᵢ − b̂ᵢ) kᵢ``."""
        if self.b_embedded is None:
            return None
        return self.B - np.asarray(self.b_embedded, dtype=np.float64)

    # -- computed properties ------------------------------------------------------------------------
    @property
    def stages(self) -> int:
        return len(self.b)

    @cached_property
    def explicit(self) -> bool:
        """``A`` strictly lower triangular: each stage needs only earlier ones."""
        return bool(np.all(np.triu(self.A) == 0))

    @cached_property
    def fsal(self) -> bool:
        """First Same As Last: the last stage is evaluated at ``(t + h, y₁)``, so it is the next k₁."""
        return bool(self.explicit and self.c[-1] == 1 and np.array_equal(self.A[-1], self.B))

    @cached_property
    def order(self) -> int:
        """Classical order, from the rooted-tree order conditions."""
        return order_of(self.A, self.B, tol=self.tol)

    @cached_property
    def embedded_order(self) -> int | None:
        if self.b_embedded is None:
            return None
        return order_of(self.A, np.asarray(self.b_embedded, dtype=np.float64), tol=self.tol)

    @cached_property
    def embedded2_order(self) -> int | None:
        if self.b_embedded2 is None:
            return None
        return order_of(self.A, np.asarray(self.b_embedded2, dtype=np.float64), tol=self.tol)

    @property
    def error_exponent_order(self) -> int:
        """``k`` of the step-size controller ``h ∝ ε^{−1/k}``: the order of the error estimate plus one;
        for DOP853's combined estimate (``≈ ε₅²/ε₃ = O(h⁸)``) the method's order, as in Hairer's code."""
        if self.b_embedded2 is not None:
            return self.order
        return (self.embedded_order or self.order - 1) + 1

    @cached_property
    def symplectic(self) -> bool:
        """Cooper's condition ``bᵢ aᵢⱼ + bⱼ aⱼᵢ − bᵢ bⱼ = 0`` for all ``i, j``."""
        m = self.B[:, None] * self.A + (self.B[:, None] * self.A).T - np.outer(self.B, self.B)
        return bool(np.abs(m).max() <= self.tol * 10)

    # -- linear stability (Hairer & Wanner, Solving ODEs II, §IV.3) ---------------------------------
    def stability_function(self, z: complex) -> complex:
        """``R(z) = 1 + z bᵀ(I − zA)⁻¹𝟙``: one step multiplies the solution of ``y' = λy`` by ``R(hλ)``."""
        s = self.stages
        m = np.eye(s, dtype=complex) - z * self.A.astype(complex)
        return complex(1 + z * self.B @ np.linalg.solve(m, np.ones(s, dtype=complex)))

    @cached_property
    def stability_at_infinity(self) -> float | None:
        """``R(∞) = 1 − bᵀA⁻¹𝟙`` for an invertible ``A``; ``None`` when ``R`` is unbounded (singular ``A``,
        e.g. every explicit method, whose ``R`` is a polynomial)."""
        if abs(np.linalg.det(self.A)) < 1e-14:
            return None
        return float(1 - self.B @ np.linalg.solve(self.A, np.ones(self.stages)))

    @cached_property
    def a_stable(self) -> bool:
        """``|R(z)| ≤ 1`` on the whole left half-plane. By the maximum principle this holds iff ``R`` has
        no pole there (poles at ``1/μ`` for the eigenvalues ``μ`` of ``A``: all need ``Re μ > 0``) and
        ``|R(iy)| ≤ 1`` on the imaginary axis, checked on ``y = ±10^k``, ``k ∈ [−3, 6]`` (400 points)
        and at infinity."""
        mu = np.linalg.eigvals(self.A)
        if np.any(mu.real <= 1e-14):
            return False
        ys = np.logspace(-3, 6, 400)
        worst = max(abs(self.stability_function(1j * y)) for y in np.concatenate([ys, -ys]))
        inf = self.stability_at_infinity
        return bool(worst <= 1 + 1e-10 and inf is not None and abs(inf) <= 1 + 1e-12)

    @cached_property
    def l_stable(self) -> bool:
        """A-stable with ``R(∞) = 0``: infinitely stiff components are damped in one step (backward Euler,
        Radau IIA), unlike Gauss methods whose ``|R(∞)| = 1`` keeps them oscillating."""
        inf = self.stability_at_infinity
        return bool(self.a_stable and inf is not None and abs(inf) <= 1e-12)

    @cached_property
    def dense_order(self) -> int | None:
        """Order of the continuous extension (from the tree conditions on ``bᵢ(θ)``, at θ = ½)."""
        if self.dense is None:
            return None
        p = np.asarray(self.dense, dtype=np.float64)
        best = None
        for theta in (0.3, 0.5, 0.7):
            # The continuous extension of order q satisfies Σ bᵢ(θ)Φᵢ(τ) = θ^|τ| / γ(τ), i.e. the
            # tree conditions for the rescaled tableau (A/θ, b(θ)/θ).
            bt = (p * theta ** np.arange(1, p.shape[1] + 1)).sum(1)
            q = order_of(self.A_dense / theta, bt / theta, tol=self.tol * 100)
            best = q if best is None else min(best, q)
        return best

    def __repr__(self) -> str:
        emb = f"({self.embedded_order})" if self.b_embedded is not None else ""
        return f"ButcherTableau({self.name}, order {self.order}{emb}, stages {self.stages})"
