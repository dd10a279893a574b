"""The continuous adjoint: gradients against backprop and finite differences, memory, options."""

from __future__ import annotations

import pytest
import torch

import symflow.systems as S
from symflow.integrators import (
    AdjointOptions,
    CapabilityError,
    InvalidArgumentError,
    gradient_audit,
    list_methods,
    solve,
)


class MLPField(torch.nn.Module):
    def __init__(self, d: int = 4, width: int = 16, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(d + 1, width), torch.nn.Tanh(), torch.nn.Linear(width, d)
        )

    def forward(self, t, y):
        t = torch.as_tensor(t, dtype=y.dtype).expand(y.shape[:-1]).unsqueeze(-1)
        return self.net(torch.cat([y, t], -1))  # time-dependent: exercises the t handling


class HNNField(torch.nn.Module):
    """J∇H_θ with H_θ an MLP: the field itself uses torch.func.grad (second derivatives in the adjoint)."""

    def __init__(self, seed: int = 1):
        super().__init__()
        torch.manual_seed(seed)
        self.h = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Softplus(), torch.nn.Linear(16, 1))

    def forward(self, t, y):
        return S.symplectic_gradient(lambda z: self.h(z).squeeze(-1), y)


def irregular_problem(b=5, t_obs=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    y0 = torch.randn(b, 4, generator=g, dtype=torch.float64) * 0.5
    ts = torch.sort(torch.rand(b, t_obs, generator=g, dtype=torch.float64) * 2, dim=1).values
    target = torch.randn(b, t_obs, 4, generator=g, dtype=torch.float64)
    return y0, ts, target


def grads(field, y0, ts, target, adjoint, method="dopri5", **kw):
    y0 = y0.clone().requires_grad_(True)
    ts = ts.clone().requires_grad_(True)
    sol = solve(field, y0, ts, method, adjoint=adjoint, **kw)
    loss = ((sol.ys - target) ** 2).sum()
    inputs = [y0, ts, *field.parameters()]
    out = torch.autograd.grad(loss, inputs, allow_unused=True)  # an HNN's last bias cannot affect J∇H
    return [torch.zeros_like(x) if g is None else g for g, x in zip(out, inputs)], sol


def rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item() if b.norm() > 0 else a.norm().item()


@pytest.mark.parametrize("field_cls", [MLPField, HNNField])
@pytest.mark.parametrize("seminorm", [False, True])
def test_adjoint_matches_discrete_backprop_at_tight_tolerance(field_cls, seminorm):
    field = field_cls().double()
    y0, ts, target = irregular_problem()
    kw = {"rtol": 1e-10, "atol": 1e-12}
    exact, _ = grads(field, y0, ts, target, False, **kw)
    adj, _ = grads(field, y0, ts, target, AdjointOptions(seminorm=seminorm), **kw)
    for a, e in zip(adj, exact):
        assert rel(a, e) < 1e-6


def test_adjoint_matches_finite_differences_including_time_gradients():
    field = MLPField().double()
    y0, ts, target = irregular_problem(b=3, t_obs=4, seed=2)
    kw = {"rtol": 1e-11, "atol": 1e-13}
    (g_y0, g_ts, *_), _ = grads(field, y0, ts, target, True, **kw)

    def loss(y0_, ts_):
        with torch.no_grad():
            return float(((solve(field, y0_, ts_, "dopri5", **kw).ys - target) ** 2).sum())

    eps = 1e-6
    for i, j in [(0, 0), (1, 2), (2, 3)]:  # an initial time, an interior and a final observation
        tp, tm = ts.clone(), ts.clone()
        tp[i, j] += eps
        tm[i, j] -= eps
        fd = (loss(y0, tp) - loss(y0, tm)) / (2 * eps)
        assert abs(fd - g_ts[i, j].item()) <= 1e-5 * max(1.0, abs(fd))
    e = torch.zeros_like(y0)
    e[1, 2] = eps
    fd = (loss(y0 + e, ts) - loss(y0 - e, ts)) / (2 * eps)
    assert abs(fd - g_y0[1, 2].item()) <= 1e-5 * max(1.0, abs(fd))


def test_fixed_step_adjoint_converges_to_the_discrete_gradient_as_dt_shrinks():
    field = MLPField().double()
    y0, ts, target = irregular_problem(b=3, t_obs=4, seed=3)
    errs = []
    for dt in (0.2, 0.1, 0.05):
        exact, _ = grads(field, y0, ts, target, False, "rk4", dt=dt)
        adj, _ = grads(field, y0, ts, target, AdjointOptions(dt=dt), "rk4", dt=dt)
        errs.append(max(rel(a, e) for a, e in zip(adj, exact)))
    assert errs[0] > errs[1] > errs[2]  # continuous vs discrete adjoint differ at O(dt⁴)
    assert errs[2] < 1e-6


@pytest.mark.parametrize("method", list_methods("embedded"))
def test_an_embedded_pair_stepped_with_a_fixed_dt_goes_back_with_the_same_steps(method):
    """Unset backward options are inherited: a fixed-step forward solve (an embedded pair given dt, or
    adaptive=False) steps back on the same grid instead of going adaptive at the default tolerances
    (which took heun_euler tens of thousands of backward steps); backward tolerances still ask for an
    adaptive backward solve."""
    field = MLPField().double()
    y0, ts, target = irregular_problem(b=3, t_obs=4, seed=3)
    exact, fwd = grads(field, y0, ts, target, False, method, dt=0.1)
    adj, sol = grads(field, y0, ts, target, True, method, dt=0.1)
    assert torch.equal(sol.adjoint.backward_stats["steps"], fwd.stats["steps"])
    assert max(rel(a, e) for a, e in zip(adj, exact)) < 0.05  # continuous vs discrete adjoint, O(dt^p)
    _, one = grads(field, y0, ts, target, True, method, adaptive=False)
    assert torch.equal(one.adjoint.backward_stats["steps"], torch.full((3,), ts.shape[-1] - 1))
    _, tol = grads(field, y0, ts, target, AdjointOptions(rtol=1e-3, atol=1e-5), method, dt=0.1)
    assert not torch.equal(tol.adjoint.backward_stats["steps"], fwd.stats["steps"])


@pytest.mark.parametrize(("method", "order"), [("implicit_midpoint", 2), ("gl4", 4)])
def test_implicit_methods_serve_as_the_adjoint_backward_solver_at_their_order(method, order):
    field = MLPField().double()
    y0, ts, target = irregular_problem(b=2, t_obs=3, seed=3)
    exact, _ = grads(field, y0, ts, target, False, "rk4", dt=0.01)
    errs = []
    for dt in (0.2, 0.1):
        adj, _ = grads(field, y0, ts, target, AdjointOptions(dt=dt, method=method), "rk4", dt=0.01)
        errs.append(max(rel(a, e) for a, e in zip(adj, exact)))
    assert errs[0] / errs[1] > 0.75 * 2**order  # the backward solve's own order shows
    assert errs[1] < (1e-3 if order == 2 else 1e-7)


@pytest.mark.parametrize("seminorm", [False, True])
@pytest.mark.parametrize("backward", ["dopri5", "gl4"])
def test_parameters_a_plain_callable_closes_over_get_adjoint_gradients(seminorm, backward):
    g = torch.Generator().manual_seed(7)
    w = (0.3 * torch.randn(4, 4, generator=g, dtype=torch.float64)).requires_grad_(True)
    field = lambda t, y: torch.tanh(y @ w.T) - 0.1 * y  # noqa: E731 - a closure, not a module
    y0, ts, target = irregular_problem(b=3, t_obs=4, seed=5)
    y0 = y0.requires_grad_(True)
    kw = {"rtol": 1e-10, "atol": 1e-12}
    opts = AdjointOptions(seminorm=seminorm, **({"method": "gl4", "dt": 0.02} if backward == "gl4" else {}))
    from symflow.integrators import adjoint_solve

    sol = adjoint_solve(field, y0, ts, params=[w], adjoint=opts, **kw)
    adj = torch.autograd.grad(((sol.ys - target) ** 2).sum(), [y0, w])
    exact = torch.autograd.grad(((solve(field, y0, ts, **kw).ys - target) ** 2).sum(), [y0, w])
    for a, e in zip(adj, exact):
        assert rel(a, e) < (1e-6 if backward == "dopri5" else 1e-5)


def test_seminorm_cuts_backward_steps_and_keeps_the_gradient():
    field = MLPField().double()
    y0, ts, target = irregular_problem(b=4, t_obs=5, seed=4)
    kw = {"rtol": 1e-8, "atol": 1e-10}
    full, sol_full = grads(field, y0, ts, target, AdjointOptions(seminorm=False), **kw)
    semi, sol_semi = grads(field, y0, ts, target, AdjointOptions(seminorm=True), **kw)
    steps_full = int(sol_full.adjoint.backward_stats["steps"].sum())
    steps_semi = int(sol_semi.adjoint.backward_stats["steps"].sum())
    assert steps_semi < steps_full
    for a, b in zip(semi, full):
        assert rel(a, b) < 1e-5


def test_backward_in_time_forward_solves_are_differentiated_too():
    field = MLPField().double()
    y0, _, _ = irregular_problem(b=2, t_obs=3)
    ts = torch.tensor([2.0, 1.2, 0.0], dtype=torch.float64)
    target = torch.ones(2, 3, 4, dtype=torch.float64)
    kw = {"rtol": 1e-10, "atol": 1e-12}
    exact, _ = grads(field, y0, ts, target, False, **kw)
    adj, _ = grads(field, y0, ts, target, True, **kw)
    for a, e in zip(adj, exact):
        assert rel(a, e) < 1e-6


def test_gradient_audit_reports_agreement():
    field = MLPField(d=2).double()
    report = gradient_audit(
        field,
        torch.randn(4, 2, dtype=torch.float64),
        torch.linspace(0, 1, 5, dtype=torch.float64),
        lambda ys: ys.square().sum(),
        "rk4",
        dt=0.02,
    )
    assert report["adjoint_vs_backprop"] < 1e-7
    assert report["adjoint_vs_finite_differences"] < 1e-6


def test_adjoint_input_errors_are_clear():
    field = MLPField().double()
    y0, ts, _ = irregular_problem()
    with pytest.raises(CapabilityError, match="not separable"):
        solve(field, y0, ts, "rk4", dt=0.1, adjoint=AdjointOptions(method="verlet"))
    with pytest.raises(InvalidArgumentError, match=r"adjoint\.dt"):
        solve(field, y0, ts, "dopri5", adjoint=AdjointOptions(method="gl4"))
    from symflow.integrators import adjoint_solve

    with pytest.raises(InvalidArgumentError, match=r"params\[1\]"):
        adjoint_solve(lambda t, y: -y, y0, ts, params=[torch.ones(1), "w"])
    with pytest.raises(CapabilityError, match="events"):
        solve(field, y0, ts, adjoint=True, events=lambda t, y: y[..., 0])


def test_adjoint_peak_memory_does_not_grow_with_steps_while_backprop_does():
    from benchmarks.memory_probe import run

    small, large = run(100, True)["peak_kb"], run(3000, True)["peak_kb"]
    assert large <= 1.05 * small
    bp_small, bp_large = run(100, False)["peak_kb"], run(1000, False)["peak_kb"]
    assert bp_large - bp_small > 20 * 1024  # > 20 MB more for 900 more steps: linear growth


def test_adjoint_memory_stays_flat_when_the_times_are_differentiated_too():
    """Output times that require grad, with a field that depends on t: the backward loop must not
    record a graph through the times (it did: memory grew with the steps, and every stage's autograd
    pass walked the whole history, quadratic time)."""
    from benchmarks.memory_probe import run

    small, large = run(100, True, times=True)["peak_kb"], run(3000, True, times=True)["peak_kb"]
    assert large <= 1.05 * small


@pytest.mark.parametrize("seminorm", [False, True])
@pytest.mark.parametrize("sync_every", [None, 8])
def test_every_way_of_taking_the_parameter_products_matches_backprop(seminorm, sync_every):
    """One sample (uniform weights), a batch with per-sample steps on the CPU (h-scaled stage passes
    with corrections for dropped attempts) and with sync_every = 8 (graphs pulled after acceptance)."""
    field = MLPField().double()
    kw = {"rtol": 1e-10, "atol": 1e-12}
    opts = AdjointOptions(seminorm=seminorm, sync_every=sync_every)
    for b in (1, 4):
        y0, ts, target = irregular_problem(b=b, t_obs=4, seed=6)
        exact, _ = grads(field, y0, ts, target, False, **kw)
        adj, _ = grads(field, y0, ts, target, opts, **kw)
        for a, e in zip(adj, exact):
            assert rel(a, e) < 1e-6
