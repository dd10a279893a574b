"""CNF likelihoods and samples against analytic densities, autodiff log-determinants and the adjoint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from symflow.cnf import CNF, AugmentedField, TimeMLP, flow_log_det, standard_normal_log_prob
from symflow.integrators import AdjointOptions, InvalidArgumentError, UnknownNameError, gradient_audit


class LinearField(torch.nn.Module):
    """``f(t, y) = A y``: flow ``exp(tA)``, so N(0, I) becomes N(0, e^{tA} e^{tAᵀ})."""

    def __init__(self, a: torch.Tensor):
        super().__init__()
        self.a = torch.nn.Parameter(a.clone())

    def forward(self, t, y):
        return y @ self.a.T


def linear_case(d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = 0.6 * torch.randn(d, d, generator=g, dtype=torch.float64)  # non-symmetric, tr A ≠ 0
    return a, g


def analytic(a, t1, loc=None, scale=None):
    m = torch.linalg.matrix_exp(t1 * a)
    d = a.shape[0]
    s = torch.eye(d, dtype=a.dtype) if scale is None else torch.diag(scale)
    cov = s @ m @ m.T @ s
    mean = torch.zeros(d, dtype=a.dtype) if loc is None else loc
    return torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)


@pytest.mark.parametrize("t1", [1.0, 2.5])
@torch.no_grad()
def test_linear_flow_log_density_matches_the_analytic_gaussian_both_directions(t1):
    a, g = linear_case()
    assert abs(float(torch.trace(a))) > 0.1
    cnf = CNF(LinearField(a), 3, t1=t1, rtol=1e-11, atol=1e-11)
    ref = analytic(a, t1)
    # Density evaluation: integrate x backwards to the base.
    x = 1.5 * torch.randn(64, 3, generator=g, dtype=torch.float64)
    lp = cnf.log_prob(x)
    assert float((lp - ref.log_prob(x)).abs().max()) < 1e-8
    # Sampling: integrate base samples forwards with their log-densities.
    xs, lps = cnf.sample_with_log_prob(64, generator=g, dtype=torch.float64)
    assert float((lps - ref.log_prob(xs)).abs().max()) < 1e-8
    z = torch.randn(8, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(cnf.sample(z=z), z @ torch.linalg.matrix_exp(t1 * a).T, rtol=1e-9, atol=1e-9)


@torch.no_grad()
def test_affine_normalisation_enters_the_density_exactly():
    a, g = linear_case(seed=3)
    loc = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    scale = torch.tensor([0.5, 2.0, 3.0], dtype=torch.float64)
    cnf = CNF(LinearField(a), 3, rtol=1e-11, atol=1e-11, loc=loc, scale=scale)
    ref = analytic(a, 1.0, loc, scale)
    x = loc + torch.randn(32, 3, generator=g, dtype=torch.float64)
    assert float((cnf.log_prob(x) - ref.log_prob(x)).abs().max()) < 1e-8
    xs, lps = cnf.sample_with_log_prob(32, generator=g, dtype=torch.float64)
    assert float((lps - ref.log_prob(xs)).abs().max()) < 1e-8


def test_log_density_of_a_nonlinear_flow_equals_base_density_minus_autodiff_log_det():
    torch.manual_seed(0)
    field = TimeMLP(2, (16, 16), "tanh")
    cnf = CNF(field, 2, rtol=1e-11, atol=1e-11)
    z = torch.randn(6, 2, generator=torch.Generator().manual_seed(1))
    x, lp = cnf.sample_with_log_prob(z=z)
    logdet = flow_log_det(field, z, 1.0, rtol=1e-11, atol=1e-11)
    assert float(logdet.abs().min()) > 1e-3  # a non-trivial volume change
    torch.testing.assert_close(lp, standard_normal_log_prob(z) - logdet, rtol=0, atol=1e-8)
    # ... and evaluating the density at those points integrates back to the same values.
    terms = cnf.density_terms(x)
    torch.testing.assert_close(terms.log_prob, lp, rtol=0, atol=1e-8)
    torch.testing.assert_close(terms.z, z, rtol=0, atol=1e-8)


@torch.no_grad()
def test_hutchinson_log_density_is_an_unbiased_estimate_of_the_exact_one():
    torch.manual_seed(0)
    cnf = CNF(TimeMLP(4, (16, 16), "tanh"), 4, trace="hutchinson", probe="rademacher", rtol=1e-8, atol=1e-8)
    x = torch.randn(1, 4, generator=torch.Generator().manual_seed(2))
    exact = cnf.log_prob(x, trace="exact")
    n = 2000
    est = cnf.log_prob(x.expand(n, -1), generator=torch.Generator().manual_seed(3))
    se = float(est.std() / math.sqrt(n))
    assert se > 0  # the estimate really is random
    assert abs(float(est.mean() - exact[0])) < 3 * se


@torch.no_grad()
def test_the_probe_is_fixed_during_a_solve_and_reproducible():
    torch.manual_seed(0)
    cnf = CNF(TimeMLP(3, (16,)), 3, trace="hutchinson", rtol=1e-9, atol=1e-9)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    a = cnf.log_prob(x, generator=torch.Generator().manual_seed(5))
    b = cnf.log_prob(x, generator=torch.Generator().manual_seed(5))
    c = cnf.log_prob(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # The probe components of the augmented state do not move during the solve.
    from symflow.integrators import solve

    aug = AugmentedField(cnf.field, 3, trace="hutchinson")
    probe = torch.randn(5, 3)
    ys = solve(aug, aug.pack(x, probe=probe), torch.tensor([1.0, 0.0]), rtol=1e-9, atol=1e-9).ys
    assert torch.equal(aug.unpack(ys[:, -1]).probe, probe)


def quadrature(fn, n=64):
    u, w = np.polynomial.legendre.leggauss(n)
    return sum(float(wi) / 2 * fn(float(ui + 1) / 2) for ui, wi in zip(u, w))


@torch.no_grad()
def test_regularisers_match_closed_forms_for_a_linear_field():
    a, g = linear_case(seed=5)
    cnf = CNF(LinearField(a), 3, rtol=1e-11, atol=1e-11)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64)
    terms = cnf.density_terms(x, kinetic=True, jacobian=True)
    # Backwards from y(1) = x: y(t) = e^{(t-1)A} x, so ∫_0^1 ‖A y(t)‖² dt.
    kin = quadrature(lambda t: (x @ torch.linalg.matrix_exp((t - 1) * a).T @ a.T).pow(2).sum(-1))
    torch.testing.assert_close(terms.kinetic, kin, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(terms.jacobian, a.pow(2).sum().expand(4), rtol=1e-9, atol=1e-12)
    # The Hutchinson Jacobian regulariser ‖εᵀA‖² is unbiased for ‖A‖_F².
    hutch = CNF(LinearField(a), 3, trace="hutchinson", rtol=1e-10, atol=1e-10)
    n = 4000
    est = hutch.density_terms(x[:1].expand(n, -1), jacobian=True, generator=g).jacobian
    assert abs(float(est.mean() - a.pow(2).sum())) < 3 * float(est.std() / math.sqrt(n))


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_adjoint_gradients_of_the_augmented_system_match_backprop_and_finite_differences(trace):
    torch.manual_seed(0)
    field = TimeMLP(2, (12, 12), "tanh")
    aug = AugmentedField(field, 2, trace=trace, kinetic=True, jacobian=True)
    g = torch.Generator().manual_seed(1)
    y = torch.randn(5, 2, generator=g)
    probe = torch.randn(5, 2, generator=g) if trace == "hutchinson" else None
    z0 = aug.pack(y, probe=probe)
    ts = torch.tensor([1.0, 0.0])

    def loss(ys):
        end = aug.unpack(ys[:, -1])
        return (-(standard_normal_log_prob(end.y) - end.logp) - 0.1 * end.kinetic - 0.1 * end.jacobian).mean()

    audit = gradient_audit(aug, z0, ts, loss, rtol=1e-10, atol=1e-10, adjoint=AdjointOptions(seminorm=True))
    assert audit["adjoint_vs_backprop"] < 1e-6
    assert audit["adjoint_vs_finite_differences"] < 1e-5


def test_cnf_training_gradients_agree_between_adjoint_and_backprop():
    torch.manual_seed(0)
    field = TimeMLP(2, (12,), "softplus")
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(4))
    grads = {}
    for adjoint in (False, True):
        cnf = CNF(field, 2, trace="hutchinson", rtol=1e-10, atol=1e-10, adjoint=adjoint)
        field.zero_grad()
        cnf.nll(x, generator=torch.Generator().manual_seed(9)).backward()
        grads[adjoint] = torch.cat([p.grad.reshape(-1) for p in field.parameters()])
    rel = (grads[True] - grads[False]).norm() / grads[False].norm()
    assert float(rel) < 1e-6


def test_shared_steps_train_with_the_per_sample_gradient_and_step_the_batch_together():
    torch.manual_seed(0)
    field = TimeMLP(2, (12,), "softplus")
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(4)) * torch.linspace(0.2, 3, 8).unsqueeze(
        -1
    )
    grads, nfev = {}, {}
    for norm in ("sample", "batch"):
        for adjoint in (False, True):
            cnf = CNF(field, 2, trace="hutchinson", rtol=1e-9, atol=1e-9, adjoint=adjoint, norm=norm)
            assert cnf.config()["norm"] == norm
            field.zero_grad()
            terms = cnf.density_terms(x, generator=torch.Generator().manual_seed(9))
            (-terms.log_prob.mean()).backward()
            grads[norm, adjoint] = torch.cat([p.grad.reshape(-1) for p in field.parameters()])
            nfev[norm] = terms.nfev
    ref = grads["sample", False]
    for key, g in grads.items():
        assert float((g - ref).norm() / ref.norm()) < 1e-5, key
    assert len(set(nfev["batch"].tolist())) == 1  # one step size for the batch
    assert len(set(nfev["sample"].tolist())) > 1


def test_auto_norm_shares_steps_while_training_and_steps_each_sample_in_eval_mode():
    from symflow.cnf import eval_mode, evaluate_nll

    torch.manual_seed(0)
    field = TimeMLP(2, (12,), "softplus")
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(4)) * torch.linspace(0.2, 3, 8).unsqueeze(
        -1
    )
    cnf = CNF(field, 2, trace="hutchinson", rtol=1e-9, atol=1e-9)
    probe = torch.randn(8, 2, generator=torch.Generator().manual_seed(9))
    assert cnf.norm == "auto" and cnf.config()["norm"] == "auto"
    with torch.no_grad():
        assert cnf.training and cnf.step_norm == "batch"
        shared = cnf.density_terms(x, probe=probe)
        assert len(set(shared.nfev.tolist())) == 1  # the batch stepped together
        with eval_mode(cnf):
            assert cnf.step_norm == "sample"
            alone = cnf.density_terms(x, probe=probe)
            # Per-sample steps: a point's log-density is the same in any batch.
            first = cnf.density_terms(x[:1], probe=probe[:1])
        assert cnf.training  # the mode is restored
    assert len(set(alone.nfev.tolist())) > 1
    torch.testing.assert_close(alone.log_prob[:1], first.log_prob, rtol=0, atol=1e-12)  # float64 round-off
    torch.testing.assert_close(shared.log_prob, alone.log_prob, rtol=0, atol=1e-5)
    # symflow's own evaluation runs in eval mode and leaves the caller's mode alone.
    nll_small, _ = evaluate_nll(cnf, x, batch_size=3)  # exact trace
    nll_large, _ = evaluate_nll(cnf, x, batch_size=8)
    assert cnf.training and nll_small == pytest.approx(nll_large, rel=0, abs=1e-12)


@torch.no_grad()
def test_fixed_step_cnf_needs_a_step_and_runs_with_one():
    a, g = linear_case()
    with pytest.raises(InvalidArgumentError, match="dt"):
        CNF(LinearField(a), 3, method="rk4")
    cnf = CNF(LinearField(a), 3, method="rk4", dt=0.01)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64)
    assert float((cnf.log_prob(x) - analytic(a, 1.0).log_prob(x)).abs().max()) < 1e-7


def test_bad_inputs_are_rejected_before_any_work():
    a, _ = linear_case()
    with pytest.raises(InvalidArgumentError, match="field"):
        CNF(lambda t, y: y, 3)
    with pytest.raises(UnknownNameError, match="hutchinson"):
        CNF(LinearField(a), 3, trace="hutchinsen")
    with pytest.raises(UnknownNameError, match="dopri5"):
        CNF(LinearField(a), 3, method="dopri4")
    with pytest.raises(InvalidArgumentError, match="adjoint"):
        CNF(LinearField(a), 3, adjoint="yes")
    with pytest.raises(UnknownNameError, match="did you mean 'batch'"):
        CNF(LinearField(a), 3, norm="bach")
    with pytest.raises(UnknownNameError, match="did you mean 'auto'"):
        CNF(LinearField(a), 3, norm="atuo")
    with pytest.raises(InvalidArgumentError, match="norm"):
        CNF(LinearField(a), 3, norm=None)
    with pytest.raises(InvalidArgumentError, match="scale"):
        CNF(LinearField(a), 3, scale=torch.tensor([1.0, -1.0, 1.0]))
    cnf = CNF(LinearField(a), 3)
    with pytest.raises(InvalidArgumentError, match=r"\(B, 3\)"):
        cnf.log_prob(torch.zeros(4, 2))
    with pytest.raises(InvalidArgumentError, match="n"):
        cnf.sample(0)
