"""The torchdiffeq-compatible facade, tested against the behaviour torchdiffeq documents (README and
FURTHER_DOCUMENTATION) and against exact solutions; a few tests compare with torchdiffeq itself and
skip when it is not installed (CI does not install it)."""

from __future__ import annotations

import math

import pytest
import torch

from symflow.integrators import (
    CapabilityError,
    IntegrationError,
    InvalidArgumentError,
    UnknownNameError,
    odeint,
    odeint_adjoint,
    odeint_event,
)
from symflow.integrators.compat import TORCHDIFFEQ_METHODS, resolve_method

A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=torch.float64)


def rotation(t, y):
    """dy/dt = A y on the last axis; y(t) = exp(A t) y0 (a damped rotation)."""
    return y @ A.T


def rotation_exact(y0, t):
    return torch.stack([y0 @ torch.linalg.matrix_exp(A * float(s)).T for s in t])


# --- conventions -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2,), (3, 2), (2, 3, 2)])
def test_outputs_are_time_first_for_any_state_shape_and_match_the_exact_flow(shape):
    y0 = torch.randn(*shape, dtype=torch.float64)
    t = torch.linspace(0, 2, 7, dtype=torch.float64)
    ys = odeint(rotation, y0, t)  # default method dopri5, rtol 1e-7, atol 1e-9
    assert ys.shape == (7, *shape)
    torch.testing.assert_close(ys[0], y0, atol=0, rtol=0)
    torch.testing.assert_close(ys, rotation_exact(y0, t), atol=1e-6, rtol=0)


def test_the_field_sees_one_scalar_time_and_a_state_shaped_like_y0():
    seen = []

    def f(t, y):
        seen.append((t.shape, y.shape))
        return -y

    odeint(f, torch.ones(2, 3, dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert set(seen) == {(torch.Size([]), torch.Size([2, 3]))}


def test_a_scalar_state_and_a_decreasing_grid():
    y0 = torch.tensor(1.0, dtype=torch.float64)
    t = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    ys = odeint(lambda t, y: -y, y0, t, rtol=1e-10, atol=1e-12)
    assert ys.shape == (3,)
    torch.testing.assert_close(ys, torch.exp(1.0 - t), atol=1e-9, rtol=0)


def test_tuples_of_tensors_are_states_and_outputs():
    y0 = (torch.tensor([1.0, 2.0], dtype=torch.float64), torch.ones(2, 2, dtype=torch.float64))
    t = torch.linspace(0, 1, 4, dtype=torch.float64)

    def f(t, y):
        a, b = y
        return -a, b * torch.cos(t)

    a, b = odeint(f, y0, t, rtol=1e-10, atol=1e-12)
    assert a.shape == (4, 2) and b.shape == (4, 2, 2)
    torch.testing.assert_close(a, y0[0] * torch.exp(-t)[:, None], atol=1e-9, rtol=0)
    torch.testing.assert_close(b, torch.exp(torch.sin(t))[:, None, None].expand(4, 2, 2), atol=1e-9, rtol=0)


def test_complex_states():
    y0 = torch.tensor([1.0 + 0.5j, -0.3j], dtype=torch.complex128)
    t = torch.linspace(0, 1, 3, dtype=torch.float64)
    ys = odeint(lambda t, y: 2j * y, y0, t, rtol=1e-10, atol=1e-12)
    assert ys.dtype == torch.complex128
    torch.testing.assert_close(ys, y0 * torch.exp(2j * t)[:, None], atol=1e-9, rtol=0)


def test_rk4_is_the_three_eighths_rule_as_in_torchdiffeq():
    def f(t, y):
        return y * y + t

    y0 = torch.tensor([0.3], dtype=torch.float64)
    h = 0.5
    k1 = f(0.0, y0)
    k2 = f(h / 3, y0 + h * k1 / 3)
    k3 = f(2 * h / 3, y0 + h * (-k1 / 3 + k2))
    k4 = f(h, y0 + h * (k1 - k2 + k3))
    three_eighths = y0 + h * (k1 + 3 * k2 + 3 * k3 + k4) / 8
    ys = odeint(f, y0, torch.tensor([0.0, h], dtype=torch.float64), method="rk4")
    torch.testing.assert_close(ys[-1], three_eighths, atol=1e-15, rtol=0)
    classic = odeint(f, y0, torch.tensor([0.0, h], dtype=torch.float64), method="classic_rk4")
    assert (classic[-1] - three_eighths).abs().item() > 1e-6  # symflow's own name reaches the classic rule


@pytest.mark.parametrize("name", sorted(TORCHDIFFEQ_METHODS))
def test_every_torchdiffeq_method_name_integrates_to_its_accuracy(name):
    spec = resolve_method(name)
    y0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    t = torch.linspace(0, 1, 3, dtype=torch.float64)
    if spec.adaptive:
        rtol = 1e-5 if spec.order <= 3 else 1e-8
        ys = odeint(rotation, y0, t, method=name, rtol=rtol, atol=rtol * 1e-2)
        tol = 300 * rtol
    else:
        step = {1: 1e-3, 2: 1e-3}.get(spec.order, 0.01)
        ys = odeint(rotation, y0, t, method=name, options={"step_size": step})
        tol = {1: 1e-2, 2: 1e-4}.get(spec.order, 1e-5)
    torch.testing.assert_close(ys, rotation_exact(y0, t), atol=tol, rtol=0)


def test_step_size_splits_each_output_interval_into_whole_steps():
    calls = []

    def f(t, y):
        calls.append(float(t))
        return -y

    odeint(
        f,
        torch.ones(1, dtype=torch.float64),
        torch.tensor([0.0, 0.25, 1.0]).double(),
        method="euler",
        options={"step_size": 0.1},
    )
    # ⌈0.25/0.1⌉ = 3 and ⌈0.75/0.1⌉ = 8 equal steps: every output time is a step end, none interpolated.
    assert len(calls) == 11 and min(abs(c - 0.25) for c in calls) < 1e-15


def test_perturb_evaluates_a_jump_at_a_grid_time_on_the_side_being_integrated():
    def unit_until_one(t, y):
        return (t < 1.0).to(y.dtype) * torch.ones_like(y)

    y0 = torch.zeros(1, dtype=torch.float64)
    t = torch.tensor([0.0, 2.0], dtype=torch.float64)
    plain = odeint(unit_until_one, y0, t, method="rk4", options={"step_size": 0.5})
    perturbed = odeint(unit_until_one, y0, t, method="rk4", options={"step_size": 0.5, "perturb": True})
    assert abs(plain[-1].item() - 1.0) > 0.05  # the stage at t = 1 of [0.5, 1] saw the jump
    assert perturbed[-1].item() == pytest.approx(1.0, abs=1e-14)


def test_jump_t_restarts_at_a_discontinuity_and_saves_evaluations():
    count = [0]

    def kink(t, y):
        count[0] += 1
        return torch.where(t < 0.73, torch.ones_like(y), -2.0 * torch.ones_like(y))

    y0 = torch.zeros(1, dtype=torch.float64)
    t = torch.tensor([0.0, 2.0], dtype=torch.float64)
    exact = 0.73 - 2.0 * (2.0 - 0.73)
    blind = odeint(kink, y0, t, rtol=1e-10, atol=1e-12)
    n_blind, count[0] = count[0], 0
    told = odeint(
        kink, y0, t, rtol=1e-10, atol=1e-12, options={"jump_t": torch.tensor([0.73], dtype=torch.float64)}
    )
    assert count[0] < n_blind / 2
    assert abs(told[-1].item() - exact) < 1e-12 and abs(blind[-1].item() - exact) < 1e-6


def test_a_callable_norm_steers_the_steps():
    used = []

    def linf(y):
        used.append(1)
        return y.abs().max()

    y0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    t = torch.linspace(0, 1, 3, dtype=torch.float64)
    ys = odeint(rotation, y0, t, rtol=1e-9, atol=1e-11, options={"norm": linf})
    assert used and torch.allclose(ys, rotation_exact(y0, t), atol=1e-8)


def test_callbacks_are_called_around_every_step_with_the_user_s_shapes():
    class F(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.log = {"step": [], "accept": 0, "reject": 0}

        def forward(self, t, y):
            return y @ A.T

        def callback_step(self, t0, y0, dt):
            self.log["step"].append((float(t0), tuple(y0.shape), float(dt)))

        def callback_accept_step(self, t0, y0, dt):
            self.log["accept"] += 1

        def callback_reject_step(self, t0, y0, dt):
            self.log["reject"] += 1

    f = F()
    y0 = torch.randn(3, 2, dtype=torch.float64)
    odeint(f, y0, torch.tensor([0.0, 5.0], dtype=torch.float64), options={"first_step": 1.0})
    steps = f.log["step"]
    assert steps and all(shape == (3, 2) for _, shape, _ in steps)
    assert f.log["accept"] + f.log["reject"] == len(steps) and f.log["reject"] >= 1  # first_step=1 is too big
    f.log["step"].clear()
    odeint(f, y0, torch.tensor([2.0, 0.0], dtype=torch.float64), method="rk4", options={"step_size": 0.5})
    assert [s[0] for s in f.log["step"]] == [2.0, 1.5, 1.0, 0.5]  # user time, backwards


def test_grid_constructor_chooses_the_steps():
    calls = []

    def f(t, y):
        calls.append(float(t))
        return -y

    def grid(func, y0, t):
        return torch.tensor([0.0, 0.1, 0.3, 1.0], dtype=torch.float64)

    ys = odeint(
        f,
        torch.ones(1, dtype=torch.float64),
        torch.tensor([0.0, 0.5, 1.0]).double(),
        method="euler",
        options={"grid_constructor": grid},
    )
    assert calls == [0.0, 0.1, 0.3, 0.5]  # the grid merged with the outputs
    assert ys.shape == (3, 1)


def test_max_num_steps_stops_with_an_error():
    with pytest.raises(IntegrationError, match="max_steps"):
        odeint(
            rotation,
            torch.ones(2, dtype=torch.float64),
            torch.tensor([0.0, 100.0]).double(),
            options={"max_num_steps": 10},
        )


# --- gradients ----------------------------------------------------------------------------------------


class Field(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(0.5 * torch.randn(2, 2, generator=g, dtype=torch.float64))

    def forward(self, t, y):
        return torch.tanh(y @ self.w.T) + 0.1 * torch.sin(t) * y


def _grads(fn, f, y0, t, params, **kw):
    y0 = y0.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)
    ys = fn(f, y0, t, **kw)
    return torch.autograd.grad(ys.square().sum(), [y0, t, *params])


def test_odeint_gradients_match_finite_differences_including_times():
    f = Field()
    y0 = torch.tensor([[0.5, -0.2], [0.1, 0.3]], dtype=torch.float64)
    t = torch.tensor([0.0, 0.4, 1.1], dtype=torch.float64)
    g_y0, g_t, _ = _grads(odeint, f, y0, t, [f.w], rtol=1e-11, atol=1e-13)

    def loss(y0_, t_):
        with torch.no_grad():
            return float(odeint(f, y0_, t_, rtol=1e-11, atol=1e-13).square().sum())

    eps = 1e-6
    for k in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[k] = eps
        assert abs((loss(y0, t + e) - loss(y0, t - e)) / (2 * eps) - float(g_t[k])) < 1e-5
    e = torch.zeros_like(y0)
    e[1, 0] = eps
    assert abs((loss(y0 + e, t) - loss(y0 - e, t)) / (2 * eps) - float(g_y0[1, 0])) < 1e-5


@pytest.mark.parametrize("norm", [None, "seminorm"])
def test_odeint_adjoint_matches_backprop_with_default_and_semi_norms(norm):
    f = Field()
    y0 = torch.tensor([[0.5, -0.2], [0.1, 0.3]], dtype=torch.float64)
    t = torch.tensor([0.0, 0.4, 1.1], dtype=torch.float64)
    kw = {"rtol": 1e-10, "atol": 1e-12}
    exact = _grads(odeint, f, y0, t, [f.w], **kw)
    adj = _grads(odeint_adjoint, f, y0, t, [f.w], adjoint_options={"norm": norm} if norm else None, **kw)
    for a, e in zip(adj, exact):
        torch.testing.assert_close(a, e, atol=1e-7, rtol=1e-6)


def test_adjoint_params_need_not_belong_to_the_field():
    w = torch.tensor([[0.0, 1.0], [-1.5, -0.05]], dtype=torch.float64, requires_grad=True)

    def f(t, y):  # a plain function closing over w
        return y @ w.T

    y0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    t = torch.linspace(0, 1, 3, dtype=torch.float64)
    exact = _grads(odeint, f, y0, t, [w], rtol=1e-10, atol=1e-12)
    adj = _grads(odeint_adjoint, f, y0, t, [w], adjoint_params=(w,), rtol=1e-10, atol=1e-12)
    for a, e in zip(adj, exact):
        torch.testing.assert_close(a, e, atol=1e-7, rtol=1e-6)
    with pytest.raises(InvalidArgumentError, match="adjoint_params"):
        odeint_adjoint(f, y0, t)  # a plain function: its parameters must be named


def test_adjoint_options_pick_the_backward_method_and_step():
    f = Field()
    y0 = torch.tensor([0.5, -0.2], dtype=torch.float64)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    exact = _grads(odeint, f, y0, t, [f.w], method="rk4", options={"step_size": 0.01})
    for method in ("rk4", "gl4"):
        adj = _grads(
            odeint_adjoint,
            f,
            y0,
            t,
            [f.w],
            method="rk4",
            options={"step_size": 0.01},
            adjoint_method=method,
            adjoint_options={"step_size": 0.01},
        )
        for a, e in zip(adj, exact):
            torch.testing.assert_close(a, e, atol=1e-7, rtol=1e-6)


# --- events -----------------------------------------------------------------------------------------


def falling(t, y):
    """Height and velocity under gravity g = 9.81."""
    return torch.stack([y[1], torch.full_like(y[1], -9.81)])


def test_odeint_event_finds_the_first_crossing_and_differentiates_the_event_time():
    h = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    y0 = torch.stack([h, torch.zeros((), dtype=torch.float64)])
    t0 = torch.tensor(0.0, dtype=torch.float64)
    t_hit, ys = odeint_event(falling, y0, t0, event_fn=lambda t, y: y[0], rtol=1e-10, atol=1e-12)
    assert ys.shape == (2, 2)
    assert t_hit.item() == pytest.approx(math.sqrt(2 * 2.0 / 9.81), abs=1e-10)
    assert abs(ys[-1, 0].item()) < 1e-9
    (dt_dh,) = torch.autograd.grad(t_hit, h)
    assert dt_dh.item() == pytest.approx(1 / math.sqrt(2 * 9.81 * 2.0), rel=1e-7)  # t = √(2h/g)


def test_odeint_event_with_several_event_values_stops_at_the_first_and_runs_backwards():
    y0 = torch.tensor([1.0, 0.0], dtype=torch.float64)  # a rotation: y = (cos t, −sin t)

    def g(t, y):
        return torch.stack([y[0] - 0.5, y[0] + 0.9])

    def field(t, y):
        return torch.stack([y[1], -y[0]])

    t_hit, _ = odeint_event(field, y0, torch.tensor(0.0).double(), event_fn=g, rtol=1e-10, atol=1e-12)
    assert float(t_hit) == pytest.approx(math.acos(0.5), abs=1e-9)
    t_back, _ = odeint_event(
        field, y0, torch.tensor(0.0).double(), event_fn=g, reverse_time=True, rtol=1e-10, atol=1e-12
    )
    assert float(t_back) == pytest.approx(-math.acos(0.5), abs=1e-9)


def test_odeint_event_through_the_adjoint():
    class Fall(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.g = torch.nn.Parameter(torch.tensor(9.81, dtype=torch.float64))

        def forward(self, t, y):
            return torch.stack([y[1], -self.g * torch.ones_like(y[1])])

    f = Fall()
    y0 = torch.tensor([2.0, 0.0], dtype=torch.float64)
    t_hit, _ = odeint_event(
        f,
        y0,
        torch.tensor(0.0).double(),
        event_fn=lambda t, y: y[0],
        odeint_interface=odeint_adjoint,
        rtol=1e-10,
        atol=1e-12,
    )
    (dt_dg,) = torch.autograd.grad(t_hit, f.g)
    assert float(dt_dg) == pytest.approx(-0.5 * math.sqrt(2 * 2.0) * 9.81**-1.5, rel=1e-6)


# --- errors instead of silence -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"method": "dopri"}, UnknownNameError, "did you mean"),
        ({"method": "explicit_adams"}, CapabilityError, "multistep"),
        ({"method": "scipy_solver"}, CapabilityError, "SciPy"),
        ({"options": {"step_size": 0.1}}, InvalidArgumentError, "fixed-step"),
        ({"method": "rk4", "options": {"first_step": 0.1}}, InvalidArgumentError, "adaptive"),
        ({"options": {"frist_step": 0.1}}, InvalidArgumentError, "first_step"),
        ({"options": {"dtype": torch.float32}}, InvalidArgumentError, "dtype"),
        ({"options": {"norm": "seminorm"}}, InvalidArgumentError, "adjoint_options"),
        (
            {"method": "rk4", "options": {"step_size": 0.1, "interp": "quadratic"}},
            InvalidArgumentError,
            "interp",
        ),
    ],
)
def test_what_is_not_supported_fails_with_a_clear_error(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        odeint(rotation, torch.ones(2, dtype=torch.float64), torch.tensor([0.0, 1.0]).double(), **kwargs)


def test_a_field_returning_the_wrong_shape_is_named():
    with pytest.raises(InvalidArgumentError, match="func"):
        odeint(lambda t, y: y[:1], torch.ones(2, dtype=torch.float64), torch.tensor([0.0, 1.0]).double())


def test_adjoint_pass_callbacks_and_callable_adjoint_norms_are_refused():
    class F(Field):
        def callback_step_adjoint(self, t0, y0, dt):
            pass

    y0, t = torch.ones(2, dtype=torch.float64), torch.tensor([0.0, 1.0]).double()
    with pytest.raises(CapabilityError, match="adjoint pass"):
        odeint_adjoint(F(), y0, t)
    with pytest.raises(CapabilityError, match="seminorm"):
        odeint_adjoint(Field(), y0, t, adjoint_options={"norm": lambda x: x.abs().max()})


# --- side by side with torchdiffeq (skipped when it is not installed) ------------------------------


def test_fixed_step_methods_agree_with_torchdiffeq_to_round_off():
    torchdiffeq = pytest.importorskip("torchdiffeq")
    y0 = torch.randn(3, 2, dtype=torch.float64)
    t = torch.linspace(0, 1, 6, dtype=torch.float64)  # outputs on the step grid: no interpolation there
    for name in ("euler", "midpoint", "heun2", "heun3", "rk4"):
        ours = odeint(rotation, y0, t, method=name, options={"step_size": 0.1})
        theirs = torchdiffeq.odeint(rotation, y0, t, method=name, options={"step_size": 0.1})
        torch.testing.assert_close(ours, theirs, atol=1e-14, rtol=0)


def test_adaptive_methods_and_adjoint_gradients_agree_with_torchdiffeq():
    torchdiffeq = pytest.importorskip("torchdiffeq")
    f = Field()
    y0 = torch.tensor([[0.5, -0.2], [0.1, 0.3]], dtype=torch.float64)
    t = torch.tensor([0.0, 0.4, 1.1], dtype=torch.float64)
    reference = odeint(f, y0, t, method="dopri5", rtol=1e-13, atol=1e-15)
    for name, rtol in (("dopri5", 1e-9), ("dopri8", 1e-9), ("bosh3", 1e-6), ("adaptive_heun", 1e-4)):
        kw = {"rtol": rtol, "atol": rtol * 1e-2}
        ours = (odeint(f, y0, t, method=name, **kw) - reference).abs().max()
        theirs = (torchdiffeq.odeint(f, y0, t, method=name, **kw) - reference).abs().max()
        assert ours <= 10 * theirs + 10 * rtol, (name, float(ours), float(theirs))  # as accurate
    kw = {"rtol": 1e-10, "atol": 1e-12}
    mine = _grads(odeint_adjoint, f, y0, t, [f.w], **kw)
    ref = _grads(torchdiffeq.odeint_adjoint, f, y0, t, [f.w], **kw)
    for a, b in zip(mine, ref):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-6)
