"""SympFlow and the flow-map PINN on the doubled phase space of damped systems, read back physically."""

from __future__ import annotations

import math

import pytest
import torch

import symflow.systems as s
from symflow.integrators import InvalidArgumentError
from symflow.learners import (
    FlowMap,
    FlowMapPINN,
    PhysicalLimitFlow,
    SympFlow,
    damped_metrics,
    physical_rollout,
    train_flow_map,
)

F64 = torch.float64


class ExactDoubled(FlowMap):
    """The exact doubled flow as a flow map, optionally kicked off the physical limit each step."""

    def __init__(self, system, dt: float, kick: float = 0.0) -> None:
        super().__init__(system.dim, dt, "func")
        self.system = system
        self.kick = kick
        self.anchor = torch.nn.Parameter(torch.zeros((), dtype=F64))  # gives the model a dtype

    def forward(self, t, x0):
        y = self.system.flow(t, x0)
        off = torch.tensor([1.0, -1.0, 0.0, 0.0], dtype=F64)  # q₋ direction: off the limit
        return y + self.kick * torch.as_tensor(t, dtype=F64)[..., None] * off

    def config(self):
        return {}


def test_sympflow_on_the_doubled_space_is_symplectic_for_the_doubled_structure():
    torch.manual_seed(0)
    model = SympFlow(2, dt=1.0, layers=3, width=8, dtype=F64)
    omega = torch.zeros(4, 4, dtype=F64)
    omega[:2, 2:] = torch.eye(2, dtype=F64)
    omega[2:, :2] = -torch.eye(2, dtype=F64)
    y = s.get_system("damped_harmonic_oscillator", lam=0.1).sample(5, seed=0)
    y = y + 0.1 * torch.randn(5, 4, dtype=F64)  # on and off the physical limit
    for t in (0.3, 1.0):
        tt = torch.tensor(t, dtype=F64)
        jac = torch.func.vmap(torch.func.jacrev(lambda x, tt=tt: model(tt, x)))(y)
        defect = jac.transpose(-1, -2) @ omega @ jac - omega
        assert float(defect.detach().abs().max()) < 1e-12


def test_physical_rollout_of_the_exact_doubled_map_is_the_exact_damped_solution():
    system = s.get_system("damped_harmonic_oscillator", lam=0.5)
    model = ExactDoubled(system, dt=0.7)
    x0 = system.doubling.physical.sample(4, seed=1)
    ts = torch.linspace(0.0, 50.0, 77, dtype=F64)  # off the Δt grid: composition + remainder steps
    pred = physical_rollout(model, system, x0, ts)
    exact = system.doubling.physical.flow(ts[None, :], x0[:, None, :])
    torch.testing.assert_close(pred, exact, atol=1e-12, rtol=0)
    m = damped_metrics(pred, exact, system)
    assert m["max_error"] < 1e-12 and m["energy_rel_error_max"] < 1e-9


def test_projection_after_every_step_stops_the_antidamped_mirror_from_amplifying_errors():
    lam = 0.3
    system = s.get_system("damped_harmonic_oscillator", lam=lam)
    model = ExactDoubled(system, dt=1.0, kick=1e-6)  # each step pushes the state 1e-6 off the limit
    x0 = system.doubling.physical.sample(3, seed=2)
    ts = torch.arange(0.0, 41.0, dtype=F64)
    exact = system.doubling.physical.flow(ts[None, :], x0[:, None, :])
    projected = physical_rollout(model, system, x0, ts)
    with torch.no_grad():
        raw = system.doubling.project(model.rollout(system.doubling.lift(x0), ts))
    err_projected = float((projected - exact).norm(dim=-1).max())
    err_raw = float((raw - exact).norm(dim=-1).max())
    assert err_projected < 1e-12  # the kick lies entirely off the limit: projected away each step
    # Without the projection the kick grows through the doubled dynamics (mirror modes ~ e^{2λt}) and
    # leaks into the projected (physical) state once it leaves the invariant subspace... or at least
    # stays; the projection is never worse.
    assert err_raw >= err_projected


def test_physical_limit_flow_keeps_the_inner_map_and_re_projects_every_step():
    system = s.get_system("damped_pendulum", lam=0.1)
    torch.manual_seed(1)
    inner = SympFlow(2, dt=0.5, layers=2, width=6, dtype=F64)
    wrapped = PhysicalLimitFlow(inner, system)
    y = system.sample(6, seed=3)
    t = torch.full((6,), 0.4, dtype=F64)
    torch.testing.assert_close(wrapped(t, y), system.doubling.to_limit(inner(t, y)))
    ys = wrapped.rollout(y, torch.linspace(0, 3.0, 7, dtype=F64))
    assert float(system.doubling.limit_defect(ys.detach()).max()) < 1e-15


def test_physical_limit_flow_refuses_a_non_doubled_system_and_a_wrong_size_model():
    with pytest.raises(InvalidArgumentError, match="doubled"):
        PhysicalLimitFlow(SympFlow(1, dt=1.0), s.get_system("harmonic_oscillator"))
    with pytest.raises(InvalidArgumentError, match="doubled space"):
        PhysicalLimitFlow(FlowMapPINN(2, dt=1.0), s.get_system("damped_harmonic_oscillator"))
    with pytest.raises(InvalidArgumentError, match=r"\(\.\.\., 2\)"):
        physical_rollout(SympFlow(2, dt=1.0, dtype=F64), s.get_system("damped_harmonic_oscillator"),
                         torch.zeros(3, 4, dtype=F64), torch.linspace(0, 1, 3, dtype=F64))  # fmt: skip


QUICK = {
    "dt": 1.0,
    "adam_steps": 30,
    "lbfgs_steps": 0,
    "collocation": 64,
    "validation_points": 32,
    "horizon": 5.0,
    "energy_horizon": 5.0,
    "eval_samples": 3,
    "plots": False,
    "progress": False,
}


@pytest.mark.parametrize("learner", ["sympflow", "pinn"])
def test_unsupervised_training_on_the_doubled_space_reports_physical_figures(learner):
    system = s.get_system("damped_harmonic_oscillator", lam=0.1)
    res = train_flow_map(system, learner=learner, **QUICK)
    summ = res.summary
    for key in ("rollout_error_max", "physical_error_max", "physical_energy_relative_error_max"):
        assert math.isfinite(summ[key]), key
    assert "hamiltonian_recovery_relative_rms" not in summ  # H ≡ 0 on the limit: nothing to recover


def test_supervised_training_from_a_simulated_doubled_file(tmp_path):
    from symflow.data import simulate

    path = tmp_path / "damped.h5"
    simulate(
        "damped_harmonic_oscillator", 10, 9.0, output=path, n_obs=10, params={"lam": 0.1}, progress=False
    )
    options = {k: v for k, v in QUICK.items() if k not in ("collocation", "validation_points")}
    res = train_flow_map(data=str(path), learner="sympflow", **options)
    assert res.summary["system"] == "damped_harmonic_oscillator"
    system = s.get_system("damped_harmonic_oscillator", lam=0.1)
    x0 = system.doubling.physical.sample(2, seed=5)
    pred = physical_rollout(res.model, system, x0, torch.linspace(0, 10, 11, dtype=F64))
    assert torch.isfinite(pred).all()


def test_relative_residual_weights_each_collocation_residual_by_the_inverse_squared_state():
    from symflow.learners.losses import (
        hamiltonian_matching_loss,
        hamiltonian_matching_residual,
        relative_weights,
    )

    system = s.get_system("damped_harmonic_oscillator", lam=0.1)
    torch.manual_seed(2)
    model = SympFlow(2, dt=1.0, layers=2, width=6, dtype=F64)
    field = s.vector_field(system)
    x = system.sample(32, seed=4)
    t = torch.rand(32, dtype=F64)
    r2 = hamiltonian_matching_residual(model, field, t, x).pow(2).sum(-1)
    weighted = hamiltonian_matching_loss(model, field, t, x, weights=relative_weights(x))
    torch.testing.assert_close(weighted, (r2 / x.pow(2).sum(-1)).mean())
    # a residual that scales with the state (a relative error) weighs the same at every radius
    assert math.isclose(
        float(relative_weights(0.01 * x[:1])[0] * (0.01**2)), float(relative_weights(x[:1])[0])
    )
