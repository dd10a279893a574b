"""Divergence estimators: exact trace against full Jacobians, Hutchinson unbiasedness and variance."""

from __future__ import annotations

import math

import pytest
import torch

from symflow.cnf import (
    TimeMLP,
    draw_probe,
    exact_divergence,
    hutchinson_divergence,
    hutchinson_variance,
)
from symflow.cnf.fields import ACTIVATIONS
from symflow.integrators import InvalidArgumentError, UnknownNameError


def field_and_points(d=5, b=4, seed=0):
    torch.manual_seed(seed)
    field = TimeMLP(d, (32, 32), "tanh")
    y = torch.randn(b, d, generator=torch.Generator().manual_seed(seed + 1))
    t = torch.tensor(0.3)
    return field, t, y


def jacobians(field, t, y):
    return torch.stack([torch.autograd.functional.jacobian(lambda z: field(t, z[None])[0], row) for row in y])


def test_exact_divergence_equals_trace_and_frobenius_of_the_full_jacobian():
    field, t, y = field_and_points()
    jac = jacobians(field, t, y)
    out = exact_divergence(field, t, y)
    torch.testing.assert_close(out.f, field(t, y))
    torch.testing.assert_close(out.div, jac.diagonal(dim1=-2, dim2=-1).sum(-1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.frobenius, jac.pow(2).sum((-1, -2)), rtol=1e-12, atol=1e-12)


def test_exact_divergence_handles_per_sample_times():
    field, _, y = field_and_points()
    ts = torch.linspace(0, 1, y.shape[0])
    out = exact_divergence(field, ts, y)
    for i in range(y.shape[0]):
        one = exact_divergence(field, ts[i], y[i : i + 1])
        torch.testing.assert_close(out.div[i], one.div[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["gaussian", "rademacher"])
def test_hutchinson_mean_over_10k_probes_is_within_three_standard_errors_of_the_trace(kind):
    field, t, y = field_and_points(d=6, b=3)
    n = 10_000
    jac = jacobians(field, t, y)
    exact = jac.diagonal(dim1=-2, dim2=-1).sum(-1).detach()
    gen = torch.Generator().manual_seed(7)
    for b in range(y.shape[0]):
        rows = y[b].expand(n, -1)
        probe = draw_probe((n, y.shape[1]), kind, generator=gen, dtype=y.dtype)
        est = hutchinson_divergence(field, t, rows, probe).div.detach()
        mean, se = est.mean(), est.std() / math.sqrt(n)
        assert abs(float(mean - exact[b])) < 3 * float(se), (b, float(mean), float(exact[b]), float(se))
        # The sample variance matches the closed form (a wrong probe scale would break this).
        var = hutchinson_variance(jac[b], kind)
        assert float(est.var()) == pytest.approx(float(var), rel=0.1)


def test_hutchinson_is_biased_with_a_badly_scaled_probe():
    """The unbiasedness check above can fail: probes with E[εεᵀ] = 4I quadruple the estimate."""
    a = torch.tensor([[1.0, 0.5, 0.0], [-0.3, 0.8, 0.2], [0.1, 0.0, 1.2]])

    def field(t, y):
        return y @ a.T

    n = 10_000
    probe = 2 * draw_probe(
        (n, 3), "gaussian", generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    est = hutchinson_divergence(field, torch.tensor(0.0), torch.zeros(n, 3), probe).div
    assert abs(float(est.mean()) - 3.0) > 3 * float(est.std() / math.sqrt(n))
    assert abs(float(est.mean() / 4) - 3.0) < 3 * float(est.std() / 4 / math.sqrt(n))


def test_rademacher_probes_estimate_a_diagonal_jacobian_without_error():
    a = torch.diag(torch.tensor([0.5, -1.0, 2.0]))

    def field(t, y):
        return y @ a.T

    y = torch.randn(100, 3)
    probe = draw_probe((100, 3), "rademacher", generator=torch.Generator().manual_seed(0))
    est = hutchinson_divergence(field, torch.tensor(0.0), y, probe)
    torch.testing.assert_close(est.div, torch.full((100,), 1.5), rtol=0, atol=1e-14)
    assert float(hutchinson_variance(a, "rademacher")) == 0.0
    assert float(hutchinson_variance(a, "gaussian")) == pytest.approx(2 * (0.25 + 1 + 4))


@pytest.mark.parametrize("kind", ["gaussian", "rademacher"])
def test_probes_have_zero_mean_and_identity_covariance(kind):
    eps = draw_probe((200_000, 3), kind, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(eps.mean(0), torch.zeros(3), rtol=0, atol=0.01)
    torch.testing.assert_close(eps.T @ eps / eps.shape[0], torch.eye(3), rtol=0, atol=0.01)
    if kind == "rademacher":
        assert set(eps.unique().tolist()) == {-1.0, 1.0}


def test_probe_draws_are_reproducible_from_a_generator():
    a = draw_probe((4, 3), "rademacher", generator=torch.Generator().manual_seed(3))
    b = draw_probe((4, 3), "rademacher", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_unknown_probe_name_suggests_the_right_one():
    with pytest.raises(UnknownNameError, match="rademacher"):
        draw_probe((2, 2), "rademacer")


def test_probe_of_the_wrong_shape_is_rejected():
    field, t, y = field_and_points()
    with pytest.raises(InvalidArgumentError, match="probe"):
        hutchinson_divergence(field, t, y, torch.randn(y.shape[0], y.shape[1] + 1))


@pytest.mark.parametrize("k", [1, 4])
def test_k_probes_average_to_an_unbiased_estimate_with_the_variance_divided_by_k(k):
    field, t, y = field_and_points(d=6, b=2)
    n = 4_000
    jac = jacobians(field, t, y)
    exact = jac.diagonal(dim1=-2, dim2=-1).sum(-1).detach()
    gen = torch.Generator().manual_seed(11)
    for b in range(y.shape[0]):
        rows = y[b].expand(n, -1)
        probe = draw_probe((n, k, y.shape[1]), "gaussian", generator=gen, dtype=y.dtype)
        est = hutchinson_divergence(field, t, rows, probe).div.detach()
        assert abs(float(est.mean() - exact[b])) < 3 * float(est.std()) / math.sqrt(n)
        assert float(est.var()) == pytest.approx(float(hutchinson_variance(jac[b], "gaussian")) / k, rel=0.1)
    # k probes equal the mean of the k one-probe estimates.
    probe = draw_probe((3, 4, 6), "rademacher", generator=gen, dtype=y.dtype)
    many = hutchinson_divergence(field, t, y[:1].expand(3, -1), probe)
    ones = [hutchinson_divergence(field, t, y[:1].expand(3, -1), probe[:, j]) for j in range(4)]
    torch.testing.assert_close(many.div, sum(o.div for o in ones) / 4, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(many.frobenius, sum(o.frobenius for o in ones) / 4, rtol=1e-12, atol=1e-12)


def test_a_cnf_with_k_probes_estimates_the_exact_log_density_with_less_spread():
    from symflow.cnf import CNF

    torch.manual_seed(0)
    field = TimeMLP(2, (16,), "tanh")
    x = torch.randn(1, 2).expand(400, -1)
    exact = CNF(field, 2, trace="exact", method="rk4", dt=0.25).log_prob(x).detach()
    spread = {}
    for k in (1, 8):
        cnf = CNF(field, 2, trace="hutchinson", probes=k, method="rk4", dt=0.25)
        est = cnf.log_prob(x, generator=torch.Generator().manual_seed(k)).detach()
        assert abs(float(est.mean() - exact[0])) < 4 * float(est.std()) / 20 + 1e-12
        spread[k] = float(est.std())
    assert spread[8] < 0.5 * spread[1]  # ≈ 1/√8 of it
    assert CNF(field, 2, trace="hutchinson", probes=3).config()["probes"] == 3
    with pytest.raises(InvalidArgumentError, match="probes"):
        CNF(field, 2, trace="hutchinson", probes=0)


# --- forward-mode products (TimeMLP.jacobian_product) ------------------------------------------------


def reverse_mode_only(field):
    """The same field as a plain callable, which has no forward-mode product: the reverse-mode path."""
    return lambda t, y: field(t, y)


@pytest.mark.parametrize("activation", ACTIVATIONS.names())  # every registered one has a slope
@pytest.mark.parametrize("tangents", [None, 3])
def test_time_mlp_jacobian_product_equals_the_jacobian_times_the_tangents(activation, tangents):
    torch.manual_seed(0)
    field = TimeMLP(4, (16, 16), activation).double()
    y = torch.randn(5, 4, dtype=torch.float64)
    t = torch.rand(5, dtype=torch.float64)  # per-sample times
    u = torch.randn(5, 4, dtype=torch.float64) if tangents is None else torch.randn(5, tangents, 4).double()
    f, ju = field.jacobian_product(t, y, u)
    jac = torch.stack(
        [torch.func.jacrev(lambda z, ti=ti: field(ti, z[None])[0])(row) for ti, row in zip(t, y)]
    )  # (B, D, D)
    want = torch.einsum("bij,bj->bi", jac, u) if tangents is None else torch.einsum("bij,bkj->bki", jac, u)
    torch.testing.assert_close(f, field(t, y), rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(ju, want, rtol=1e-12, atol=1e-12)


def test_time_mlp_jacobian_product_rejects_tangents_of_the_wrong_shape():
    field, t, y = field_and_points()
    with pytest.raises(InvalidArgumentError, match="tangents of shape"):
        field.jacobian_product(t, y, torch.randn(y.shape[0], y.shape[1] + 1))


@pytest.mark.parametrize("probes", [None, 4])
def test_forward_mode_divergence_has_the_reverse_mode_values_and_gradients(probes):
    torch.manual_seed(1)
    field = TimeMLP(3, (16, 16), "softplus").double()
    y = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(0.7, dtype=torch.float64)
    probe = torch.randn(6, 3).double() if probes is None else torch.randn(6, probes, 3).double()
    params = list(field.parameters())
    for name, estimate in [
        ("exact", lambda fld: exact_divergence(fld, t, y)),
        ("hutchinson", lambda fld: hutchinson_divergence(fld, t, y, probe)),
    ]:
        fwd, rev = estimate(field), estimate(reverse_mode_only(field))
        torch.testing.assert_close(fwd.div, rev.div, rtol=1e-12, atol=1e-12, msg=name)
        if name == "exact":
            torch.testing.assert_close(fwd.frobenius, rev.frobenius, rtol=1e-12, atol=1e-12)
        # Training differentiates the divergence: its gradients must not depend on the mode either.
        g_fwd = torch.autograd.grad((fwd.div + fwd.f.sum(-1)).sum(), [y, *params])
        g_rev = torch.autograd.grad((rev.div + rev.f.sum(-1)).sum(), [y, *params])
        for a, b in zip(g_fwd, g_rev):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)


def test_forward_mode_frobenius_estimate_is_the_squared_norm_of_the_jacobian_times_the_probe():
    field, t, y = field_and_points()
    field = field.double()
    y = y.double()
    probe = torch.randn_like(y)
    jac = jacobians(field, t.double(), y)
    out = hutchinson_divergence(field, t.double(), y, probe)
    want = torch.einsum("bij,bj->bi", jac, probe).pow(2).sum(-1)
    torch.testing.assert_close(out.frobenius, want, rtol=1e-12, atol=1e-12)


def test_a_subclass_that_redefines_forward_alone_falls_back_to_reverse_mode():
    class Scaled(TimeMLP):
        def forward(self, t, y):
            return 2.0 * super().forward(t, y)

    torch.manual_seed(0)
    field = Scaled(3, (8,)).double()
    y = torch.randn(4, 3, dtype=torch.float64)
    t = torch.tensor(0.0, dtype=torch.float64)
    jac = jacobians(field, t, y)
    out = exact_divergence(field, t, y)  # the inherited product would miss the factor 2
    torch.testing.assert_close(out.div, jac.diagonal(dim1=-2, dim2=-1).sum(-1), rtol=1e-12, atol=1e-12)
