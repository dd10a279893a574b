"""Discovery models, objective and evaluation (training itself is tested with the data layer)."""

from __future__ import annotations

import math

import pytest
import torch

import symflow.systems as S
from symflow.discovery import (
    AugmentedNeuralODE,
    HamiltonianNN,
    MLPVectorField,
    SeparableHamiltonianNN,
    TrajectoryObjective,
    build_model,
    evaluate_discovery,
    fill_padded_times,
    observed_solve,
)
from symflow.integrators import InvalidArgumentError, UnknownNameError, solve


@pytest.mark.parametrize("activation", ["softplus", "tanh", "silu"])
def test_explicit_hnn_gradient_equals_torch_func_grad(activation):
    torch.manual_seed(0)
    m = HamiltonianNN(4, width=16, depth=3, activation=activation, gradient="explicit").double()
    y = torch.randn(7, 4, dtype=torch.float64)
    fast = m(0.0, y)
    m.gradient = "autodiff"
    torch.testing.assert_close(fast, m(0.0, y), atol=1e-14, rtol=1e-13)


def test_input_scale_rescales_the_states_and_keeps_both_gradients_equal():
    torch.manual_seed(0)
    m = HamiltonianNN(4, width=16, depth=2, gradient="explicit", input_scale=3.0).double()
    plain = HamiltonianNN(4, width=16, depth=2, gradient="explicit").double()
    plain.load_state_dict(m.state_dict())
    y = torch.randn(5, 4, dtype=torch.float64) * 0.2
    torch.testing.assert_close(m.hamiltonian(y), plain.hamiltonian(3.0 * y))
    fast = m(0.0, y)
    m.gradient = "autodiff"
    torch.testing.assert_close(fast, m(0.0, y), atol=1e-14, rtol=1e-13)
    torch.testing.assert_close(fast, 3.0 * plain(0.0, 3.0 * y), atol=1e-14, rtol=1e-13)  # chain rule
    with pytest.raises(InvalidArgumentError, match="input_scale"):
        HamiltonianNN(4, input_scale=0.0)


def test_hnn_flow_conserves_its_learned_hamiltonian():
    torch.manual_seed(1)
    m = HamiltonianNN(4, width=16).double()
    y0 = torch.randn(3, 4, dtype=torch.float64) * 0.3
    ys = solve(m, y0, torch.linspace(0, 5, 11, dtype=torch.float64), "gl4", dt=0.05).ys
    h = m.hamiltonian(ys)
    assert (h - h[:, :1]).abs().max() < 1e-10


def test_separable_hnn_exposes_a_split_for_verlet():
    torch.manual_seed(2)
    m = SeparableHamiltonianNN(4, width=8).double()
    y0 = torch.randn(2, 4, dtype=torch.float64) * 0.3
    ts = torch.linspace(0, 1, 3, dtype=torch.float64)
    v = solve(m, y0, ts, "verlet", dt=1e-3).ys
    ref = solve(m, y0, ts, "dopri5", rtol=1e-10, atol=1e-12).ys
    assert (v - ref).abs().max() < 1e-5
    torch.testing.assert_close(m.split(torch.zeros(()), y0), m(0.0, y0))


def test_time_dependent_mlp_uses_the_time():
    torch.manual_seed(3)
    m = MLPVectorField(2, width=8, time_dependent=True).double()
    y = torch.randn(4, 2, dtype=torch.float64)
    assert not torch.allclose(
        m(torch.tensor(0.0, dtype=torch.float64), y), m(torch.tensor(1.0, dtype=torch.float64), y)
    )
    assert m(torch.zeros(4, dtype=torch.float64), y).shape == (4, 2)


def _fit_the_reflection(model: torch.nn.Module, steps: int) -> tuple[float, float]:
    """Adam on ``x ↦ −x`` for 64 points of [−1, 1], flow time 1 (RK4, backprop); returns (loss, bound)
    with ``bound = mean(x²)``: the best any increasing map can do (isotonic regression of −x is the
    constant 0), and every flow map of a 1-D ODE is increasing (trajectories cannot cross)."""
    x = torch.linspace(-1, 1, 64, dtype=torch.float64).unsqueeze(-1)
    ts = torch.tensor([0.0, 1.0], dtype=torch.float64)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = torch.tensor(math.inf)
    for _ in range(steps):
        loss = (observed_solve(model, x, ts, "rk4", dt=0.1).ys[:, -1] + x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach()), float(x.square().mean())


def test_augmented_node_fits_the_1d_reflection_that_a_plain_node_cannot(one_thread):
    torch.manual_seed(0)
    plain, bound = _fit_the_reflection(MLPVectorField(1, width=16).double(), steps=100)
    assert plain >= 0.99 * bound  # stuck at the crossing-trajectories bound
    for lift, projection in (("zeros", "slice"), ("linear", "linear")):
        torch.manual_seed(0)
        model = AugmentedNeuralODE(1, 1, width=16, lift=lift, projection=projection).double()
        loss, _ = _fit_the_reflection(model, steps=250)
        assert loss < 1e-3 * bound, (lift, projection, loss)


def test_augmented_node_starts_as_the_plain_embedding_and_checks_its_options():
    torch.manual_seed(5)
    m = AugmentedNeuralODE(2, 3, width=8, lift="linear", projection="linear").double()
    x = torch.randn(4, 2, dtype=torch.float64)
    z = m.lift(x)
    assert z.shape == (4, 5)
    torch.testing.assert_close(z, torch.cat([x, torch.zeros(4, 3, dtype=torch.float64)], -1))
    torch.testing.assert_close(m.project(z), x)
    sol = observed_solve(m, x, torch.linspace(0, 1, 3, dtype=torch.float64), "rk4", dt=0.1)
    assert sol.ys.shape == (4, 3, 2)
    torch.testing.assert_close(sol.ys[:, 0], x)
    assert isinstance(build_model("augmented", 2, augment_dim=2), AugmentedNeuralODE)
    for bad in ({"augment_dim": 0}, {"lift": "random"}, {"projection": "pca"}):
        with pytest.raises(InvalidArgumentError, match=next(iter(bad))):
            AugmentedNeuralODE(2, **{"augment_dim": 1, **bad})


def test_model_registry_and_input_errors():
    assert isinstance(build_model("node", 4), MLPVectorField)
    with pytest.raises(UnknownNameError, match="did you mean 'hnn'"):
        build_model("hmn", 4)
    with pytest.raises(InvalidArgumentError, match="even"):
        HamiltonianNN(3)
    with pytest.raises(InvalidArgumentError, match="activation"):
        HamiltonianNN(4, activation="relu6")


def test_padded_times_become_strictly_increasing_and_masked_out_of_the_loss():
    ts = torch.tensor([[0.0, 0.5, 1.0], [0.1, 0.4, math.nan]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    filled = fill_padded_times(ts, mask)
    assert torch.isfinite(filled).all() and (filled.diff(dim=1) > 0).all()
    assert torch.equal(filled[mask], ts[mask])
    osc = S.get_system("harmonic_oscillator", n=2)
    f = S.vector_field(osc)
    y0 = osc.sample(2, seed=0)
    ys = solve(f, y0, filled, "dopri5", rtol=1e-10, atol=1e-12).ys
    ys[1, 2] = float("nan")  # padding may be NaN in data

    class Exact(torch.nn.Module):
        def forward(self, t, y):
            return f(t, y)

    loss = TrajectoryObjective(Exact(), rtol=1e-10, atol=1e-12, adjoint=False)(ts, ys, mask)
    assert torch.isfinite(loss) and loss < 1e-18


def test_objective_gradients_flow_through_the_adjoint():
    torch.manual_seed(4)
    m = HamiltonianNN(4, width=8).double()
    ts = torch.sort(torch.rand(3, 4, dtype=torch.float64), 1).values
    ys = torch.randn(3, 4, 4, dtype=torch.float64)
    mask = torch.ones(3, 4, dtype=torch.bool)
    loss = TrajectoryObjective(m, rtol=1e-8, atol=1e-10)(ts, ys, mask)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_evaluation_of_a_perfect_model_reports_zero_error():
    hh = S.get_system("henon_heiles")
    f = S.vector_field(hh)

    class Perfect(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

        def forward(self, t, y):
            return f(t, y)

        def hamiltonian(self, y):
            return hh.energy(y) + 3.0  # any constant offset is allowed

    rep = evaluate_discovery(Perfect(), hh, n=8, t_end=5.0)
    assert rep["trajectory_rel_error_max"] < 1e-12
    assert rep["energy_rel_error_max"] < 1e-8
    assert rep["hamiltonian_rel_rms"] < 1e-12 and abs(rep["hamiltonian_offset"] + 3.0) < 1e-12
