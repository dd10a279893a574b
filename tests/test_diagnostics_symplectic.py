"""Symplecticity defect, volume error and reversibility of flow maps."""

from __future__ import annotations

import pytest
import torch

import symflow.systems as S
from symflow.diagnostics import (
    ExactFlowSource,
    FlowMapSource,
    IntegratorSource,
    flow_jacobian,
    j_matrix,
    reversibility_error,
    structure,
    symplectic_defect,
    volume_error,
)
from symflow.integrators import CapabilityError, InvalidArgumentError

HH = S.get_system("henon_heiles")
DP = S.get_system("double_pendulum")


@pytest.mark.parametrize(
    ("system", "method", "dt"),
    [
        (HH, "verlet", 0.1),
        (HH, "gl4", 0.1),
        (HH, "gl6", 0.3),
        (DP, "gl4", 0.1),
        (DP, "implicit_midpoint", 0.05),
    ],
)
def test_defect_reads_round_off_for_symplectic_steps(system, method, dt):
    src = IntegratorSource.for_system(system, method, dt=dt)
    report = structure(src, system.sample(8, seed=1), [dt, 5 * dt])
    assert report.defect.max() <= 1e-12
    assert report.volume_error.max() <= 1e-12
    assert report.reversibility.max() <= 1e-12  # Verlet and Gauss–Legendre are symmetric methods


def test_defect_is_order_one_for_rk4_at_a_large_step():
    src = IntegratorSource.for_system(HH, "rk4", dt=2.0)
    report = structure(src, HH.sample(16, seed=1, energy=1 / 8), [2.0])
    assert report.defect.median() > 0.1
    assert report.reversibility.median() > 0.1  # RK4 is not symmetric either
    small = structure(
        IntegratorSource.for_system(HH, "rk4", dt=0.05), HH.sample(16, seed=1, energy=1 / 8), [0.05]
    )
    assert 1e-12 < small.defect.max() < 1e-5  # the defect is the method's, O(h⁵) per step


def test_defect_is_order_one_for_a_random_mlp_map():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4)).double()
    src = FlowMapSource(lambda t, y: y + t * net(y), max_step=1.0, system=HH, name="random MLP")
    report = structure(src, HH.sample(16, seed=2), [1.0])
    assert report.defect.median() > 0.1
    assert report.source == "random MLP"


def test_a_learned_model_is_wrapped_from_its_step_and_hamiltonian():
    gl4 = IntegratorSource.for_system(HH, "gl4", dt=0.05)

    class Model(torch.nn.Module):  # the interface of symflow.learners flow maps: model(t, x0), .dt
        dt = 0.2

        def forward(self, t, x0):
            return gl4.flow(t, x0)

        def hamiltonian(self, y):
            return 1.01 * HH.energy(y)

    src = FlowMapSource.from_model(Model(), system=HH)
    assert src.max_step == 0.2 and src.hamiltonian is not None and not src.backward
    report = structure(src, HH.sample(3, seed=0), [0.2, 0.5])
    assert report.reversibility is None and report.defect.max() < 1e-12
    with pytest.raises(CapabilityError, match="backwards"):
        structure(src, HH.sample(3, seed=0), [0.2], reversibility=True)
    with pytest.raises(InvalidArgumentError, match=r"model\.dt"):
        FlowMapSource.from_model(lambda t, x: x)


def test_exact_flows_are_symplectic_and_reversible():
    for name in ("harmonic_oscillator", "kepler"):
        system = S.get_system(name)
        report = structure(ExactFlowSource(system), system.sample(6, seed=0), [0.7, 3.0])
        assert report.defect.max() < 1e-12 and report.reversibility.max() < 1e-12


def test_jacobian_matches_finite_differences_and_adaptive_fallback():
    y = HH.sample(3, seed=5, energy=1 / 10)
    fixed = IntegratorSource.for_system(HH, "rk4", dt=0.05)
    jac = flow_jacobian(fixed, 0.5, y)
    eps = 1e-6
    fd = torch.stack(
        [(fixed.flow(0.5, y + eps * e) - fixed.flow(0.5, y - eps * e)) / (2 * eps) for e in torch.eye(4)],
        dim=-1,
    )
    torch.testing.assert_close(jac, fd, atol=1e-8, rtol=1e-7)
    # An adaptive solve cannot run under torch.func: the Jacobian comes from plain autograd instead.
    adaptive = IntegratorSource.for_system(HH, "dopri5", rtol=1e-11, atol=1e-13)
    assert not adaptive.functorch
    torch.testing.assert_close(flow_jacobian(adaptive, 0.5, y), jac, atol=1e-5, rtol=0)
    assert structure(adaptive, y, [0.5]).defect.max() < 1e-8


def test_defect_formula_on_known_matrices():
    rot = torch.tensor([[0.6, 0.8], [-0.8, 0.6]], dtype=torch.float64)  # symplectic in 1 dof (det 1)
    assert symplectic_defect(rot) < 1e-15 and volume_error(rot) < 1e-15
    scale = 2.0 * torch.eye(2, dtype=torch.float64)  # MᵀJM = 4J: defect ‖3J‖_F / ‖J‖_F = 3
    torch.testing.assert_close(symplectic_defect(scale), torch.tensor(3.0, dtype=torch.float64))
    torch.testing.assert_close(volume_error(scale), torch.tensor(3.0, dtype=torch.float64))
    assert (j_matrix(4) @ j_matrix(4) == -torch.eye(4, dtype=torch.float64)).all()


def test_reversibility_of_a_non_symmetric_map_is_visible():
    y = HH.sample(4, seed=3, energy=1 / 8)
    assert reversibility_error(IntegratorSource.for_system(HH, "rk4", dt=0.5), 0.5, y).min() > 1e-6
    assert reversibility_error(IntegratorSource.for_system(HH, "verlet", dt=0.5), 0.5, y).max() < 1e-14


def test_structure_summary_and_argument_errors():
    src = IntegratorSource.for_system(HH, "verlet", dt=0.1)
    summary = structure(src, HH.sample(5), [0.1], reversibility=False).summary()
    assert summary["n_states"] == 5 and summary["max_reversibility_error"] is None
    assert summary["per_time"][0]["t"] == 0.1
    with pytest.raises(InvalidArgumentError, match="times"):
        structure(src, HH.sample(2), [0.0])
    with pytest.raises(InvalidArgumentError, match="y"):
        structure(src, torch.ones(3, 3, dtype=torch.float64), [0.1])
