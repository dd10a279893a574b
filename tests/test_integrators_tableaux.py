"""Butcher tableaux: computed properties, literature orders, and agreement with SciPy's tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from symflow.integrators import ButcherTableau, InvalidArgumentError, get_method, list_methods, solve
from symflow.integrators import tableaux as tb
from symflow.integrators.order_conditions import trees_of_order

EXPECTED = {  # (order, embedded order, explicit, fsal, symplectic) from the literature
    "euler": (1, None, True, False, False),
    "midpoint": (2, None, True, False, False),
    "heun": (2, None, True, False, False),
    "heun3": (3, None, True, False, False),
    "heun_euler": (2, 1, True, False, False),
    "fehlberg2": (2, 1, True, False, False),
    "rk4": (4, None, True, False, False),
    "rk38": (4, None, True, False, False),
    "bosh3": (3, 2, True, True, False),
    "dopri5": (5, 4, True, True, False),
    "tsit5": (5, 4, True, True, False),
    "vern7": (7, 6, True, True, False),
    "dop853": (8, 5, True, True, False),
    "vern9": (9, 8, True, True, False),
    "backward_euler": (1, None, False, False, False),
    "implicit_midpoint": (2, None, False, False, True),
    "gl4": (4, None, False, False, True),
    "gl6": (6, None, False, False, True),
}


def test_rooted_tree_counts_match_the_known_sequence():
    assert [len(trees_of_order(n)) for n in range(1, 9)] == [1, 1, 2, 4, 9, 20, 48, 115]


@pytest.mark.parametrize("tableau", tb.ALL, ids=lambda t: t.name)
def test_computed_properties_match_the_literature(tableau):
    order, emb, explicit, fsal, symplectic = EXPECTED[tableau.name]
    assert tableau.order == order
    assert tableau.embedded_order == emb
    assert tableau.explicit == explicit
    assert tableau.fsal == fsal
    assert tableau.symplectic == symplectic


@pytest.mark.parametrize("tableau", tb.ALL, ids=lambda t: t.name)
def test_row_sums_and_weight_sums(tableau):
    np.testing.assert_allclose(tableau.A.sum(1), tableau.C, atol=1e-14)
    assert abs(tableau.B.sum() - 1) < 1e-14


def test_dense_outputs_have_order_four_and_reproduce_the_step_at_theta_one():
    for tab in (tb.DOPRI5, tb.TSIT5):
        assert tab.dense_order == 4
        np.testing.assert_allclose(np.asarray(tab.dense).sum(1), tab.B, atol=1e-13)
    assert tb.BOSH3.dense_order == 3  # cubic Hermite


def test_dopri5_and_bosh3_coefficients_agree_with_scipy():
    from scipy.integrate._ivp.rk import RK23, RK45

    for ours, theirs in ((tb.DOPRI5, RK45), (tb.BOSH3, RK23)):
        s = theirs.n_stages  # SciPy leaves out the FSAL stage's row of A; E covers it
        r, c = theirs.A.shape
        np.testing.assert_allclose(ours.A[:r, :c], theirs.A, atol=1e-15)
        np.testing.assert_allclose(ours.B[:s], theirs.B, atol=1e-15)
        np.testing.assert_allclose(ours.C[:s], theirs.C, atol=1e-15)
        np.testing.assert_allclose(ours.error_weights, -theirs.E, atol=1e-15)  # SciPy's E is b̂ − b
    # SciPy's RK45.P is Shampine's dense output: the same polynomials bᵢ(θ).
    np.testing.assert_allclose(np.asarray(tb.DOPRI5.dense), RK45.P, atol=1e-14)


def test_high_order_pairs_have_their_published_second_estimate_and_dense_output_orders():
    assert tb.DOP853.embedded2_order == 3  # Hairer's 8(5,3)
    assert tb.DOP853.error_exponent_order == 8  # his step control uses ε^(1/8)
    assert tb.DOP853.dense_order == 7
    assert tb.VERN9.dense_order == 9
    # Verner's published 7(6) interpolant meets the order-6 conditions to round-off and the order-7
    # ones to ~1e-7 (not to round-off), so its computed dense order is 6.
    assert tb.VERN7.dense_order == 6
    for tab, stages, extra in ((tb.DOP853, 13, 3), (tb.VERN7, 11, 5), (tb.VERN9, 17, 9)):
        assert (tab.stages, len(tab.extra)) == (stages, extra)
        assert tab.fsal  # the last stage is f(t + h, y₁), reused by the next step
        np.testing.assert_allclose(np.asarray(tab.dense).sum(1)[:stages], tab.B, atol=1e-12)


def test_dop853_coefficients_and_dense_output_agree_with_scipy():
    from scipy.integrate import solve_ivp
    from scipy.integrate._ivp import dop853_coefficients as ref

    tab = tb.DOP853
    np.testing.assert_allclose(tab.A[:12, :12], ref.A[:12, :12], atol=1e-15, rtol=1e-15)
    np.testing.assert_allclose(tab.B[:12], ref.B, atol=1e-15, rtol=1e-15)
    np.testing.assert_allclose(tab.C, ref.C[:13], atol=1e-15)
    np.testing.assert_allclose(tab.error_weights, ref.E5, atol=1e-15)
    np.testing.assert_allclose(tab.error_weights2, ref.E3, atol=1e-15)
    np.testing.assert_allclose(tab.A_dense[13:16, :16], ref.A[13:16, :16], atol=1e-15)
    # One step of SciPy's DOP853 and its dense output, against ours from the same stages.
    import torch

    from symflow.integrators.explicit import ExplicitRK

    def f(t, y):
        return np.array([y[1], -np.sin(y[0]) + 0.1 * t])

    y0, h = np.array([1.0, 0.3]), 0.4
    sol = solve_ivp(
        f, (0.0, h), y0, method="DOP853", first_step=h, max_step=h, rtol=1.0, atol=1.0, dense_output=True
    )
    assert sol.t[-1] == h and len(sol.t) == 2  # exactly one step
    rk = ExplicitRK(tab)

    def ft(t, y):
        return torch.stack([y[:, 1], -torch.sin(y[:, 0]) + 0.1 * t.reshape(-1)], -1)

    yt = torch.from_numpy(y0).reshape(1, 2)
    ht, t0 = torch.tensor([h], dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    ks = rk.stage_values(ft, t0, yt, ht)
    np.testing.assert_allclose((yt + rk.increment(ht, ks))[0].numpy(), sol.y[:, -1], atol=1e-15, rtol=1e-14)
    full = rk.dense_stages(ft, t0, yt, ht, ks)
    for theta in (0.1, 0.37, 0.8):
        ours = rk.interpolate(yt, ht, full, torch.tensor([theta], dtype=torch.float64))[0].numpy()
        np.testing.assert_allclose(ours, sol.sol(theta * h), atol=1e-13, rtol=0)  # expanded vs nested form


def test_invalid_tableaux_are_refused_on_construction():
    with pytest.raises(InvalidArgumentError, match="row sums"):
        ButcherTableau("bad", a=((0.0, 0.0), (0.5, 0.0)), b=(0.5, 0.5), c=(0.0, 1.0))
    with pytest.raises(InvalidArgumentError, match="summing to 1"):
        ButcherTableau("bad", a=((0.0,),), b=(0.9,), c=(0.0,))
    with pytest.raises(InvalidArgumentError, match="shape"):
        ButcherTableau("bad", a=((0.0, 0.0),), b=(1.0,), c=(0.0,))


def test_a_wrong_coefficient_lowers_the_computed_order():
    a = [list(r) for r in tb.RK4.a]
    a[3][2] = 0.99  # perturb a43 (and c4 accordingly so the row-sum check passes)
    bad = ButcherTableau("rk4_bad", a=tuple(map(tuple, a)), b=tb.RK4.b, c=(0.0, 0.5, 0.5, 0.99))
    assert bad.order < 4


def test_method_registry_exposes_every_family_and_computed_orders():
    names = list_methods()
    for required in [
        "euler",
        "midpoint",
        "heun",
        "rk4",
        "rk38",
        "dopri5",
        "bosh3",
        "tsit5",
        "dop853",
        "vern7",
        "vern9",
        "implicit_midpoint",
        "gl4",
        "gl6",
        "symplectic_euler",
        "verlet",
        "yoshida4",
        "yoshida6",
    ]:
        assert required in names
    assert get_method("rk45").name == "dopri5"
    assert get_method("leapfrog").name == "verlet"
    assert get_method("gl6").order == 6 and get_method("gl6").symplectic
    assert get_method("yoshida4").scheme.symmetric


def test_linear_stability_is_computed_from_the_coefficients():
    # Hairer & Wanner II, §IV.3: Gauss methods are A-stable with |R(∞)| = 1, Radau IIA (backward Euler
    # its one-stage member) is L-stable, and no explicit method is A-stable.
    for tab in tb.ALL:
        if tab.explicit:
            assert not tab.a_stable and tab.stability_at_infinity is None, tab.name
    assert tb.BACKWARD_EULER.a_stable and tb.BACKWARD_EULER.l_stable
    assert tb.BACKWARD_EULER.stability_at_infinity == 0.0
    for tab in (tb.IMPLICIT_MIDPOINT, tb.GL4, tb.GL6):
        assert tab.a_stable and not tab.l_stable
        assert abs(abs(tab.stability_at_infinity) - 1) < 1e-12
    # R(z) = 1/(1 − z) for backward Euler; exp(z) + O(z^{p+1}) for every method of order p.
    z = -0.3 + 0.2j
    assert abs(tb.BACKWARD_EULER.stability_function(z) - 1 / (1 - z)) < 1e-15
    for tab in tb.ALL:
        small = 1e-2 * (1 + 1j)
        assert abs(tab.stability_function(small) - np.exp(small)) < 10 * abs(small) ** (tab.order + 1) + 1e-15


def test_backward_euler_damps_a_stiff_component_that_gauss_and_explicit_methods_do_not():
    # y' = −λ(y − cos t), λ = 10⁴, h = 0.1 (hλ = −1000): the solution follows cos t after a transient.
    lam = 1e4

    def f(t, y):
        return -lam * (y - torch.cos(t).reshape(-1, 1))

    y0 = torch.tensor([[2.0]], dtype=torch.float64)
    ts = torch.linspace(0, 2, 21, dtype=torch.float64)
    be = solve(f, y0, ts, "backward_euler", dt=0.1)
    # After two steps the transient is gone: error O(1/λ) (backward Euler's lag of sin t / λ).
    assert float((be.ys[0, 2:, 0] - torch.cos(ts[2:])).abs().max()) < 2e-4
    mid = solve(f, y0, ts, "implicit_midpoint", dt=0.1)  # R(−1000) ≈ −1: the transient persists
    assert float((mid.ys[0, -1, 0] - torch.cos(ts[-1])).abs()) > 0.5
    ex = solve(f, y0, ts, "euler", dt=0.1, throw=False)  # |1 + hλ| = 999: blows up
    assert not bool(torch.isfinite(ex.ys[0, -1]).all()) or float(ex.ys[0, -1].abs().max()) > 1e6


def test_backward_euler_converges_with_order_one():
    errors = []
    for dt in (0.02, 0.01, 0.005):
        y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
        ts = torch.tensor([0.0, 1.0], dtype=torch.float64)
        sol = solve(lambda t, y: torch.cat([y[..., 1:], -y[..., :1]], -1), y0, ts, "backward_euler", dt=dt)
        exact = torch.tensor([math.cos(1.0), -math.sin(1.0)], dtype=torch.float64)
        errors.append(float((sol.ys[0, -1] - exact).norm()))
    rates = [math.log2(errors[k] / errors[k + 1]) for k in range(2)]
    assert all(0.9 < r < 1.1 for r in rates), rates
    assert get_method("implicit_euler").name == "backward_euler"
