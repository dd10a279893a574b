"""Butcher tableaux: computed properties, literature orders, and agreement with SciPy's tables."""

from __future__ import annotations

import numpy as np
import pytest

from symflow.integrators import ButcherTableau, InvalidArgumentError, get_method, list_methods
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
