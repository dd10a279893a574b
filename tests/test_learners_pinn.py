"""PINNs (initial condition imposed exactly), domains Ω, losses and the a-posteriori estimate."""

from __future__ import annotations

import math

import pytest
import torch

from symflow.integrators.errors import InvalidArgumentError
from symflow.learners import (
    IVPPINN,
    Box,
    EnergySublevel,
    FlowMapPINN,
    SympFlow,
    SystemDomain,
    a_posteriori,
    hamiltonian_matching_loss,
    ivp_residual,
    make_domain,
    trajectory_loss,
    trajectory_pairs,
)
from symflow.systems import get_system, vector_field

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("constraint", ["linear", "tfc"])
def test_flow_map_pinn_imposes_the_initial_condition_exactly(constraint):
    torch.manual_seed(0)
    model = FlowMapPINN(4, dt=1.0, width=12, constraint=constraint)
    x = torch.randn(33, 4)
    assert torch.equal(model(0.0, x), x)
    assert torch.equal(model(torch.zeros(33), x), x)
    assert (model(0.7, x) - x).abs().max() > 1e-3


@pytest.mark.parametrize("constraint", ["linear", "tfc"])
def test_ivp_pinn_imposes_the_initial_condition_exactly_and_differentiates_in_time(constraint):
    torch.manual_seed(1)
    x0 = torch.tensor([0.3, -0.2])
    model = IVPPINN(x0, t_end=5.0, width=8, constraint=constraint)
    assert torch.equal(model(0.0), x0)
    t = torch.linspace(0.5, 4.5, 9)
    y, dy = model.time_derivative(t)
    assert y.shape == dy.shape == (9, 2)
    h = 1e-6
    assert (dy - (model(t + h) - model(t - h)) / (2 * h)).abs().max() <= 1e-7


@pytest.mark.parametrize("derivatives", ["func", "autograd"])
def test_flow_map_pinn_time_derivative_matches_central_differences(derivatives):
    torch.manual_seed(2)
    model = FlowMapPINN(2, dt=1.0, width=8, constraint="tfc", derivatives=derivatives)
    x, t = torch.randn(5, 2), 0.2 + 0.6 * torch.rand(5)
    _, dy = model.time_derivative(t, x)
    h = 1e-6
    assert (dy - (model(t + h, x) - model(t - h, x)) / (2 * h)).abs().max() <= 1e-7


def test_matching_residual_vanishes_for_the_exact_flow():
    # A "model" that is the oscillator's exact flow has zero Hamiltonian-matching residual.
    ho = get_system("harmonic_oscillator")

    class Exact(FlowMapPINN):
        def _forward_with(self, t, x0, how):
            return ho.flow(t, x0)

    model = Exact(2, dt=1.0)
    t, x = torch.rand(50), torch.randn(50, 2)
    for how in ("func", "autograd"):
        assert hamiltonian_matching_loss(model, vector_field(ho), t, x, derivatives=how) <= 1e-28


def test_ivp_residual_of_a_random_network_is_not_small():
    ho = get_system("harmonic_oscillator")
    model = IVPPINN(torch.tensor([1.0, 0.0]), t_end=3.0, width=8)
    assert ivp_residual(model, vector_field(ho), torch.linspace(0, 3, 7)).abs().max() > 1e-2


@pytest.mark.parametrize("model_kind", ["sympflow", "pinn", "ivp"])
def test_a_posteriori_estimate_bounds_the_true_error_for_a_linear_system(model_kind):
    # For the oscillator F is linear with Lipschitz constant exactly 1, so β·sup‖r‖ is a true bound
    # (up to sampling the sup on the dense grid); untrained models have large, smooth residuals.
    torch.manual_seed(3)
    ho = get_system("harmonic_oscillator")
    if model_kind == "sympflow":
        model = SympFlow(1, dt=0.5, layers=2, width=6)
    elif model_kind == "pinn":
        model = FlowMapPINN(2, dt=0.5, width=8)
    else:
        model = IVPPINN(torch.tensor([0.5, 0.5]), t_end=0.5, width=8)
    out = a_posteriori(model, ho, torch.randn(5, 2))
    s = out["summary"]
    assert s["lipschitz_estimate"] == pytest.approx(1.0)
    assert s["beta"] == pytest.approx(math.e**0.5 - 1)
    assert s["quadrature_order"] == 8
    per = out["per_sample"]
    assert (per["beta_epsilon_dense"] >= per["true_error"]).all()
    assert (per["true_error"] > 0).all()


# --- domains --------------------------------------------------------------------------------------


def test_energy_sublevel_samples_henon_heiles_below_the_level_inside_the_bounded_region():
    hh = get_system("henon_heiles")
    dom = EnergySublevel(hh, 1 / 12)
    x = dom.sample(3000, torch.Generator().manual_seed(0))
    energy = hh.energy(x)
    assert (energy <= 1 / 12).all()
    assert energy.max() > 0.08 and energy.min() < 0.01  # fills the set, not just the shell
    q = x[:, :2]
    assert (q[:, 1] > -0.5).all() and (q.norm(dim=-1) < 0.6).all()  # the bounded component only
    again = dom.sample(3000, torch.Generator().manual_seed(0))
    assert torch.equal(x, again)


def test_domains_rebuild_from_their_configs_and_reject_bad_options():
    ho = get_system("harmonic_oscillator")
    gen = torch.Generator().manual_seed(1)
    for dom in (SystemDomain(ho), Box([-1, -2], [1, 2]), EnergySublevel(ho, 0.5, energy_min=0.1)):
        rebuilt = make_domain(ho, dom.config())
        assert rebuilt.config() == dom.config()
        assert rebuilt.sample(7, gen, dtype=torch.float32).shape == (7, 2)
    sample = EnergySublevel(ho, 0.5, energy_min=0.1).sample(500, gen)
    assert ((ho.energy(sample) >= 0.1) & (ho.energy(sample) <= 0.5)).all()
    with pytest.raises(InvalidArgumentError, match="energy_min"):
        EnergySublevel(ho, 0.5, energy_min=0.6)
    with pytest.raises(InvalidArgumentError, match="high"):
        Box([0.0], [-1.0])
    with pytest.raises(InvalidArgumentError, match="kind"):
        make_domain(ho, {"kind": "ball"})


# --- trajectory data --------------------------------------------------------------------------------


def padded_oscillator_data():
    ho = get_system("harmonic_oscillator")
    x0 = torch.tensor([[1.0, 0.0], [0.0, 0.5], [0.3, 0.3]])
    ts = torch.tensor([[0.0, 0.3, 0.6, 0.9, 1.2], [0.0, 0.5, 1.0, 1.5, 2.0], [0.0, 0.25, 0.5, 0.0, 0.0]])
    mask = torch.tensor([[True] * 5, [True] * 5, [True, True, True, False, False]])
    ys = ho.flow(ts[..., None][..., 0], x0[:, None, :])
    ts = torch.where(mask, ts, torch.nan)  # the data layer pads with NaN
    ys = torch.where(mask[..., None], ys, torch.nan)
    return ho, ts, ys, mask


def test_trajectory_pairs_collect_every_observed_pair_within_the_horizon():
    _, ts, ys, mask = padded_oscillator_data()
    pairs = trajectory_pairs(ts, ys, mask, horizon=0.61)
    # row 0: spacing 0.3 → offsets 1, 2 (4 + 3 pairs); row 1: spacing 0.5 → offset 1 (4); row 2: 2 + 1.
    assert len(pairs) == 7 + 4 + 3
    assert torch.isfinite(pairs.start).all() and torch.isfinite(pairs.end).all()
    assert (pairs.gap > 0).all() and (pairs.gap <= 0.61).all()
    assert pairs.trajectory.bincount().tolist() == [7, 4, 3]


def test_trajectory_loss_is_zero_for_the_exact_flow_and_finite_with_padding():
    ho, ts, ys, mask = padded_oscillator_data()

    class Exact(FlowMapPINN):
        def _forward_with(self, t, x0, how):
            return ho.flow(t, x0)

    pairs = trajectory_pairs(ts, ys, mask, horizon=2.0)
    assert trajectory_loss(Exact(2, dt=0.5), pairs) <= 1e-28  # gaps up to 2 use composition
    loss = trajectory_loss(SympFlow(1, dt=0.5), pairs)
    assert torch.isfinite(loss) and loss > 0


def test_trajectory_pairs_reject_bad_data_naming_the_trajectory():
    _, ts, ys, mask = padded_oscillator_data()
    bad = ts.clone()
    bad[1, 2] = 0.1
    with pytest.raises(InvalidArgumentError, match="trajectory 1"):
        trajectory_pairs(bad, ys, mask, horizon=1.0)
    nan_state = ys.clone()
    nan_state[2, 1, 0] = torch.nan
    with pytest.raises(InvalidArgumentError, match="trajectory 2"):
        trajectory_pairs(ts, nan_state, mask, horizon=1.0)
    with pytest.raises(InvalidArgumentError, match="horizon"):
        trajectory_pairs(ts, ys, mask, horizon=0.01)
    with pytest.raises(InvalidArgumentError, match="mask"):
        trajectory_pairs(ts, ys, mask.float(), horizon=1.0)


def test_a_soft_constrained_pinn_does_not_impose_the_initial_condition_and_its_loss_does():
    from symflow.learners.losses import ivp_loss

    torch.manual_seed(2)
    field = vector_field(get_system("harmonic_oscillator"))
    flow = FlowMapPINN(2, dt=1.0, width=8, constraint="soft")
    x = torch.randn(16, 2)
    gap = (flow(0.0, x) - x).pow(2).sum(-1).mean()
    assert gap > 1e-4  # nothing ties N(0) to x0
    t = torch.rand(16)
    plain = hamiltonian_matching_loss(flow, field, t, x)
    with_ic = hamiltonian_matching_loss(flow, field, t, x, ic_weight=3.0)
    torch.testing.assert_close(with_ic, plain + 3.0 * gap, rtol=1e-12, atol=1e-12)
    exact = FlowMapPINN(2, dt=1.0, width=8, constraint="linear")  # the term vanishes identically
    assert torch.equal(hamiltonian_matching_loss(exact, field, t, x, ic_weight=3.0),
                       hamiltonian_matching_loss(exact, field, t, x))  # fmt: skip

    x0 = torch.tensor([1.0, 0.0])
    ivp = IVPPINN(x0, t_end=2.0, width=8, constraint="soft")
    tc = torch.linspace(0, 2, 7)
    w = torch.linspace(1, 2, 7)
    w = w / w.sum()
    res = ivp_residual(ivp, field, tc).pow(2).sum(-1)
    ic = (ivp(0.0) - x0).pow(2).sum()
    assert ic > 1e-6
    torch.testing.assert_close(ivp_loss(ivp, field, tc, weights=w, ic_weight=0.5), (w * res).sum() + 0.5 * ic)
    torch.testing.assert_close(ivp_loss(ivp, field, tc), res.mean())
    with pytest.raises(InvalidArgumentError, match="weights"):
        ivp_loss(ivp, field, tc, weights=w[:3])
    with pytest.raises(InvalidArgumentError, match="ic_weight"):
        ivp_loss(ivp, field, tc, ic_weight=-1.0)


def test_the_soft_initial_condition_is_learned_as_well_as_its_weight_asks():
    from symflow.learners import train_flow_map

    common = dict(learner="pinn", kind="ivp", x0=(1.0, 0.0), t_end=2.0, width=12, adam_steps=150,
                  lbfgs_steps=0, collocation=32, seed=0, progress=False, plots=False,
                  constraint="soft")  # fmt: skip
    errors = {}
    for gamma in (0.0, 100.0):
        summary = train_flow_map("harmonic_oscillator", **common, ic_weight=gamma).summary
        errors[gamma] = summary["initial_condition_error"]
    assert errors[100.0] < 0.2 * errors[0.0]
    gl = train_flow_map(
        "harmonic_oscillator", **{**common, "adam_steps": 20}, collocation_weights="gauss_legendre"
    )
    assert math.isfinite(gl.summary["error_max"])


def test_pinn_options_that_do_not_fit_together_are_refused():
    from symflow.learners.config import PinnConfig

    with pytest.raises(InvalidArgumentError, match="collocation_weights"):
        PinnConfig(system="harmonic_oscillator", collocation_weights="gauss_legendre")
    with pytest.raises(InvalidArgumentError, match="constraint"):
        PinnConfig(data="x.h5", constraint="soft")
