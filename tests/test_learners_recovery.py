"""The recovered Hamiltonian H̃: integrating J∇H̃ reproduces the network's own flow."""

from __future__ import annotations

import pytest
import torch

from symflow.integrators import solve
from symflow.integrators.errors import InvalidArgumentError
from symflow.learners import (
    FlowMapPINN,
    SympFlow,
    recovered_hamiltonian,
    recovered_vector_field,
    time_averaged_hamiltonian,
)
from symflow.learners.recovery import gauss_legendre

pytestmark = pytest.mark.usefixtures("one_thread")


def test_integrating_the_recovered_hamiltonian_reproduces_the_sympflow():
    torch.manual_seed(0)
    model = SympFlow(2, dt=1.0, layers=2, width=6)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)  # a nonlinear map that moves states well away from the identity
    x0 = 0.5 * torch.randn(2, 4)
    ts = torch.tensor([0.0, 0.4, 1.0])
    sol = solve(recovered_vector_field(model), x0, ts, method="dopri5", rtol=1e-10, atol=1e-12)
    expected = torch.stack([model(t, x0) for t in ts], dim=1)
    assert (expected[:, -1] - x0).norm(dim=-1).min() > 0.1  # the map moves the states
    assert (sol.ys - expected).abs().max() <= 1e-8


def test_recovered_hamiltonian_is_the_same_with_torch_func_and_closed_forms():
    torch.manual_seed(3)
    model = SympFlow(2, dt=1.0, layers=3, width=6)
    y, t = torch.randn(9, 4), torch.rand(9)
    closed = recovered_hamiltonian(model, t, y)
    model.derivatives = "func"
    assert (recovered_hamiltonian(model, t, y) - closed).abs().max() <= 1e-14


def test_recovered_hamiltonian_is_a_sum_of_block_hamiltonians_for_one_block():
    # One (φ_q, φ_p) pair: H̃(t, y) = ∂_t V(t, q) + ∂_t K(t, p − ∇_q ΔV(t, q)) ... evaluated by hand.
    torch.manual_seed(1)
    model = SympFlow(1, dt=1.0, layers=1, width=5)
    y, t = torch.randn(7, 2), torch.rand(7)
    K, V = model.kinetic[0], model.potential[0]
    q, p = y[:, :1], y[:, 1:]
    h = 1e-6
    dV = (V(t + h, q) - V(t - h, q)) / (2 * h)
    p_before = p + V.gradient(t, q)
    dK = (K(t + h, p_before) - K(t - h, p_before)) / (2 * h)
    assert (recovered_hamiltonian(model, t, y) - (dV + dK)).abs().max() <= 1e-8


def test_time_average_uses_gauss_legendre_quadrature():
    c, w = gauss_legendre(5)
    assert torch.isclose(w.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.isclose((w * c**9).sum(), torch.tensor(0.1, dtype=torch.float64))  # exact to degree 9
    torch.manual_seed(2)
    model = SympFlow(1, dt=0.5, layers=2, width=4)
    y = torch.randn(4, 2)
    fine = torch.stack([recovered_hamiltonian(model, s, y) for s in torch.linspace(0, 0.5, 101)])
    simpson = (fine[0] + 4 * fine[1:-1:2].sum(0) + 2 * fine[2:-1:2].sum(0) + fine[-1]) / 300
    assert (time_averaged_hamiltonian(model, y) - simpson).abs().max() <= 1e-9
    assert torch.equal(model.hamiltonian(y), time_averaged_hamiltonian(model, y))


def test_only_sympflow_has_a_recovered_hamiltonian():
    pinn = FlowMapPINN(2, dt=1.0)
    assert not hasattr(pinn, "hamiltonian")
    with pytest.raises(InvalidArgumentError, match="SympFlow"):
        recovered_hamiltonian(pinn, 0.1, torch.zeros(1, 2))
