"""The library of Butcher tableaux (explicit, embedded, implicit Gauss–Legendre).

Coefficients are written as exact fractions or closed forms where the literature gives them; the
order and other properties are recomputed from them by :class:`ButcherTableau`.
"""

from __future__ import annotations

import math

import numpy as np

from .order_conditions import density, elementary_weight, trees_of_order
from .tableau import ButcherTableau


def _hermite_dense(b: tuple[float, ...]) -> tuple[tuple[float, ...], ...]:
    """Cubic Hermite dense output of an FSAL method, written as ``bᵢ(θ)`` polynomials.

    With ``y₁ − y₀ = h Σ bᵢkᵢ``, ``f₀ = k₁`` and ``f₁ = k_s``::

        y(θ) = y₀ + h [ (3θ² − 2θ³) Σ bᵢkᵢ + (θ − 2θ² + θ³) k₁ + (θ³ − θ²) k_s ].
    """
    s = len(b)
    p = np.zeros((s, 3))
    p[:, 1] += 3 * np.asarray(b)
    p[:, 2] -= 2 * np.asarray(b)
    p[0] += [1.0, -2.0, 1.0]
    p[-1] += [0.0, -1.0, 1.0]
    return tuple(tuple(float(v) for v in row) for row in p)


def continuous_extension(
    a: np.ndarray, b: np.ndarray, *, order: int = 4, degree: int = 4
) -> tuple[tuple[float, ...], ...]:
    """Derive dense-output weights ``bᵢ(θ) = Σⱼ Pᵢⱼ θʲ`` of the given order for a tableau.

    The conditions ``Σᵢ bᵢ(θ) Φᵢ(τ) = θ^{|τ|}/γ(τ)`` for all trees ``|τ| ≤ order`` (as polynomial
    identities in θ) and ``b(1) = b`` are linear in ``P``. When they leave freedom, the member
    minimising the order-``order+1`` defect at θ ∈ {0.1, …, 0.9} is chosen (least squares over the
    null space), i.e. the smallest leading interpolation error. Raises if no such ``P`` exists.
    """
    s = len(b)
    rows, rhs = [], []
    for r in range(1, order + 1):
        for tree in trees_of_order(r):
            phi = elementary_weight(tree, a)
            for j in range(1, degree + 1):
                row = np.zeros((s, degree))
                row[:, j - 1] = phi
                rows.append(row.ravel())
                rhs.append(1.0 / density(tree) if j == r else 0.0)
    for i in range(s):
        row = np.zeros((s, degree))
        row[i, :] = 1.0
        rows.append(row.ravel())
        rhs.append(b[i])
    m, v = np.asarray(rows), np.asarray(rhs)
    x0, *_ = np.linalg.lstsq(m, v, rcond=None)
    if np.abs(m @ x0 - v).max() > 1e-12:
        raise ValueError(f"no continuous extension of order {order} with degree {degree}")
    _, sv, vt = np.linalg.svd(m)
    null = vt[(sv > 1e-10 * sv[0]).sum() :].T  # basis of the free directions
    if null.shape[1]:
        # Next-order defect rows: Σᵢ bᵢ(θ)Φᵢ(τ) − θ^{order+1}/γ(τ) at a few θ.
        drow, drhs = [], []
        for theta in np.linspace(0.1, 0.9, 9):
            powers = theta ** np.arange(1, degree + 1)
            for tree in trees_of_order(order + 1):
                drow.append(np.outer(elementary_weight(tree, a), powers).ravel())
                drhs.append(theta ** (order + 1) / density(tree))
        dm, dv = np.asarray(drow), np.asarray(drhs)
        z, *_ = np.linalg.lstsq(dm @ null, dv - dm @ x0, rcond=None)
        x0 = x0 + null @ z
    p = x0.reshape(s, degree)
    return tuple(tuple(float(v) for v in row) for row in p)


# --- explicit, fixed step --------------------------------------------------------------------------

EULER = ButcherTableau("euler", a=((0.0,),), b=(1.0,), c=(0.0,))

MIDPOINT = ButcherTableau("midpoint", a=((0.0, 0.0), (0.5, 0.0)), b=(0.0, 1.0), c=(0.0, 0.5))

HEUN = ButcherTableau("heun", a=((0.0, 0.0), (1.0, 0.0)), b=(0.5, 0.5), c=(0.0, 1.0))

RK4 = ButcherTableau(
    "rk4",
    a=((0.0, 0.0, 0.0, 0.0), (0.5, 0.0, 0.0, 0.0), (0.0, 0.5, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    c=(0.0, 0.5, 0.5, 1.0),
)

RK38 = ButcherTableau(
    "rk38",
    a=((0.0, 0.0, 0.0, 0.0), (1 / 3, 0.0, 0.0, 0.0), (-1 / 3, 1.0, 0.0, 0.0), (1.0, -1.0, 1.0, 0.0)),
    b=(1 / 8, 3 / 8, 3 / 8, 1 / 8),
    c=(0.0, 1 / 3, 2 / 3, 1.0),
)

# Heun's third-order method (Heun 1900; Hairer–Nørsett–Wanner, Table II.1.1).
HEUN3 = ButcherTableau(
    "heun3",
    a=((0.0, 0.0, 0.0), (1 / 3, 0.0, 0.0), (0.0, 2 / 3, 0.0)),
    b=(1 / 4, 0.0, 3 / 4),
    c=(0.0, 1 / 3, 2 / 3),
)

# --- embedded pairs ----------------------------------------------------------------------------

# Heun–Euler 2(1): Heun's trapezoid step with the Euler step as the embedded estimate.
HEUN_EULER = ButcherTableau(
    "heun_euler",
    a=((0.0, 0.0), (1.0, 0.0)),
    b=(0.5, 0.5),
    c=(0.0, 1.0),
    b_embedded=(1.0, 0.0),
)

# Fehlberg's RK1(2) (NASA TR R-315, 1969), propagating the second-order solution.
FEHLBERG2 = ButcherTableau(
    "fehlberg2",
    a=((0.0, 0.0, 0.0), (0.5, 0.0, 0.0), (1 / 256, 255 / 256, 0.0)),
    b=(1 / 512, 255 / 256, 1 / 512),
    c=(0.0, 0.5, 1.0),
    b_embedded=(1 / 256, 255 / 256, 0.0),
)

# Bogacki & Shampine, Appl. Math. Lett. 2, 321 (1989): order 3 with an order-2 estimate, FSAL.
_BS3_B = (2 / 9, 1 / 3, 4 / 9, 0.0)
BOSH3 = ButcherTableau(
    "bosh3",
    a=((0.0, 0.0, 0.0, 0.0), (0.5, 0.0, 0.0, 0.0), (0.0, 0.75, 0.0, 0.0), (2 / 9, 1 / 3, 4 / 9, 0.0)),
    b=_BS3_B,
    c=(0.0, 0.5, 0.75, 1.0),
    b_embedded=(7 / 24, 1 / 4, 1 / 3, 1 / 8),
    dense=_hermite_dense(_BS3_B),
)

# Dormand & Prince, J. Comput. Appl. Math. 6, 19 (1980): order 5(4), FSAL, 7 stages.
_DP5_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)


def _dopri5_dense() -> tuple[tuple[float, ...], ...]:
    """Shampine's order-4 continuous extension of DOPRI5 (Hairer–Nørsett–Wanner, §II.6 and the
    ``CONTD5`` routine of DOPRI5), expanded into ``bᵢ(θ)`` polynomials. Hairer writes

        y(θ) = y₀ + θ(r₂ + (1 − θ)(r₃ + θ(r₄ + (1 − θ) r₅)))

    with ``r₂ = hΣbᵢkᵢ``, ``r₃ = hk₁ − r₂``, ``r₄ = r₂ − hk₇ − r₃`` and ``r₅ = hΣdᵢkᵢ``.
    """
    b = np.asarray(_DP5_B)
    e1, e7 = np.eye(7)[0], np.eye(7)[6]
    d = np.array(
        [
            -12715105075 / 11282082432,
            0.0,
            87487479700 / 32700410799,
            -10690763975 / 1880347072,
            701980252875 / 199316789632,
            -1453857185 / 822651844,
            69997945 / 29380423,
        ]
    )
    r2, r3 = b, e1 - b
    r4, r5 = r2 - e7 - r3, d
    # θ r2 + θ(1−θ) r3 + θ²(1−θ) r4 + θ²(1−θ)² r5, collected by powers θ, θ², θ³, θ⁴.
    p = np.stack([r2 + r3, -r3 + r4 + r5, -r4 - 2 * r5, r5], axis=1)
    return tuple(tuple(float(v) for v in row) for row in p)


DOPRI5 = ButcherTableau(
    "dopri5",
    a=(
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
        (1 / 5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
        (3 / 40, 9 / 40, 0.0, 0.0, 0.0, 0.0, 0.0),
        (44 / 45, -56 / 15, 32 / 9, 0.0, 0.0, 0.0, 0.0),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0.0, 0.0, 0.0),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0.0, 0.0),
        _DP5_B,
    ),
    b=_DP5_B,
    c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
    b_embedded=(5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40),
    dense=_dopri5_dense(),
)

# Tsitouras, Comput. Math. Appl. 62, 770 (2011): order 5(4), FSAL, optimised error constants.
# The coefficients are double-precision solutions of the order conditions (hence the looser tol).
_TSIT5_A7 = (
    0.09646076681806523,
    0.01,
    0.4798896504144996,
    1.379008574103742,
    -3.290069515436081,
    2.324710524099774,
    0.0,
)
_TSIT5_BTILDE = (
    -0.00178001105222577714,
    -0.0008164344596567469,
    0.007880878010261995,
    -0.1447110071732629,
    0.5823571654525552,
    -0.45808210592918697,
    1 / 66,
)
_TSIT5_A = (
    (0.0,) * 7,
    (0.161, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    (-0.008480655492356989, 0.335480655492357, 0.0, 0.0, 0.0, 0.0, 0.0),
    (2.897153057105493, -6.359448489975075, 4.3622954328695815, 0.0, 0.0, 0.0, 0.0),
    (5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525, 0.0, 0.0, 0.0),
    (
        5.86145544294642,
        -12.92096931784711,
        8.159367898576159,
        -0.071584973281401,
        -0.028269050394068383,
        0.0,
        0.0,
    ),
    _TSIT5_A7,
)
TSIT5 = ButcherTableau(
    "tsit5",
    a=_TSIT5_A,
    b=_TSIT5_A7,
    c=(0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0),
    b_embedded=tuple(bi + ei for bi, ei in zip(_TSIT5_A7, _TSIT5_BTILDE)),
    # Tsitouras' paper gives an order-4 interpolant; the one here is derived from the order
    # conditions with the smallest order-5 defect (see continuous_extension).
    dense=continuous_extension(np.asarray(_TSIT5_A), np.asarray(_TSIT5_A7), order=4, degree=4),
    tol=1e-11,
)

# --- implicit Euler (Radau IIA, 1 stage): L-stable, order 1, for stiff problems --------------------

BACKWARD_EULER = ButcherTableau("backward_euler", a=((1.0,),), b=(1.0,), c=(1.0,))

# --- implicit Gauss–Legendre collocation (symplectic, order 2s) ------------------------------------

IMPLICIT_MIDPOINT = ButcherTableau("implicit_midpoint", a=((0.5,),), b=(1.0,), c=(0.5,))

_S3 = math.sqrt(3.0)
GL4 = ButcherTableau(
    "gl4",
    a=((0.25, 0.25 - _S3 / 6), (0.25 + _S3 / 6, 0.25)),
    b=(0.5, 0.5),
    c=(0.5 - _S3 / 6, 0.5 + _S3 / 6),
)

_S15 = math.sqrt(15.0)
GL6 = ButcherTableau(
    "gl6",
    a=(
        (5 / 36, 2 / 9 - _S15 / 15, 5 / 36 - _S15 / 30),
        (5 / 36 + _S15 / 24, 2 / 9, 5 / 36 - _S15 / 24),
        (5 / 36 + _S15 / 30, 2 / 9 + _S15 / 15, 5 / 36),
    ),
    b=(5 / 18, 4 / 9, 5 / 18),
    c=(0.5 - _S15 / 10, 0.5, 0.5 + _S15 / 10),
)

from .tableaux_high_order import DOP853, VERN7, VERN9  # noqa: E402 - data module, after the helpers

ALL = (
    EULER,
    MIDPOINT,
    HEUN,
    HEUN3,
    RK4,
    RK38,
    HEUN_EULER,
    FEHLBERG2,
    BOSH3,
    DOPRI5,
    TSIT5,
    VERN7,
    DOP853,
    VERN9,
    BACKWARD_EULER,
    IMPLICIT_MIDPOINT,
    GL4,
    GL6,
)
