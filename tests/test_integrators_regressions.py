"""Regressions found by running torchdiffeq's and torchode's test suites (and fault injection) against
``solve``: each test here failed before its fix. None of them may ever return a wrong number silently.
"""

from __future__ import annotations

import math
import time

import pytest
import torch

import symflow.systems as S
from symflow.integrators import AdjointOptions, InvalidArgumentError, Status, get_method, solve

HH = S.get_system("henon_heiles")
F = S.vector_field(HH)
FIXED_METHODS = ["euler", "midpoint", "heun", "rk4", "rk38", "dopri5", "implicit_midpoint", "gl4", "gl6"]


def y_cos_t(t, y):
    """dy/dt = y cos t, y(t) = y(t₀) exp(sin t − sin t₀)."""
    return y * torch.cos(t).reshape(-1, 1)


# --- 1. gradients with respect to a shared grid through fixed-step solves ------------------------------


@pytest.mark.parametrize("method", FIXED_METHODS)
def test_time_gradients_through_fixed_steps_on_a_shared_grid_match_the_exact_flow(method):
    ts = torch.tensor([0.0, 0.4567, 1.0], requires_grad=True)  # spans not multiples of dt: FD stays smooth
    order = get_method(method).order
    dt = {1: 0.002, 2: 0.02}.get(order, 0.05)
    sol = solve(y_cos_t, torch.ones(1, 1), ts, method, dt=dt)
    (g,) = torch.autograd.grad(sol.ys[0, -1, 0], ts)
    # y(1) = exp(sin t₂ − sin t₀): ∂/∂t₀ = −cos t₀ y(1), ∂/∂t₁ = 0, ∂/∂t₂ = cos t₂ y(1).
    y1 = math.exp(math.sin(1.0))
    exact = torch.tensor([-y1, 0.0, math.cos(1.0) * y1])
    torch.testing.assert_close(g, exact, atol={1: 1e-2, 2: 2e-3}.get(order, 1e-4), rtol=0)
    # ... and it is the derivative of the discrete solve itself (central differences).
    eps = 1e-6
    for k in range(3):
        e = torch.zeros(3)
        e[k] = eps
        plus = solve(y_cos_t, torch.ones(1, 1), ts.detach() + e, method, dt=dt).ys[0, -1, 0]
        minus = solve(y_cos_t, torch.ones(1, 1), ts.detach() - e, method, dt=dt).ys[0, -1, 0]
        assert abs(float((plus - minus) / (2 * eps)) - float(g[k])) < 1e-6 * max(1.0, abs(float(g[k])))


@pytest.mark.parametrize("method", ["rk4", "gl4"])
def test_a_time_independent_field_still_differentiates_with_respect_to_the_grid(method):
    ts = torch.tensor([0.0, 0.5, 1.0], requires_grad=True)
    ys = solve(lambda t, y: y, torch.ones(1, 1), ts, method, dt=0.1).ys
    assert ys.requires_grad
    (g,) = torch.autograd.grad(ys[0, -1, 0], ts)
    torch.testing.assert_close(g, torch.tensor([-math.e, 0.0, math.e]), atol=1e-4, rtol=0)


def test_time_gradients_agree_between_shared_and_per_sample_grids():
    y0 = HH.sample(3, seed=0)
    shared = torch.tensor([0.0, 0.7, 1.5], requires_grad=True)
    each = shared.detach().expand(3, 3).clone().requires_grad_(True)
    (g_shared,) = torch.autograd.grad(solve(F, y0, shared, "rk4", dt=0.1).ys.square().sum(), shared)
    (g_each,) = torch.autograd.grad(solve(F, y0, each, "rk4", dt=0.1).ys.square().sum(), each)
    torch.testing.assert_close(g_shared, g_each.sum(0), atol=1e-12, rtol=1e-12)


# --- 2. implicit methods with a field that ignores y ----------------------------------------------------


@pytest.mark.parametrize("method", ["implicit_midpoint", "gl4", "gl6"])
def test_implicit_methods_integrate_a_field_that_ignores_y(method):
    def f(t, y):
        return torch.cos(t).reshape(-1, 1) * torch.ones_like(y)

    y0 = torch.tensor([[0.0], [2.0]])
    sol = solve(f, y0, torch.tensor([0.0, 1.0]), method, dt=0.1)
    torch.testing.assert_close(sol.ys[:, -1, 0], y0[:, 0] + math.sin(1.0), atol=1e-3, rtol=0)
    assert (sol.stats["newton_iters"] > 0).all()


# --- 3. adjoint with float32 state and float64 times ---------------------------------------------------


def test_adjoint_backward_with_float32_state_and_float64_times():
    torch.manual_seed(0)
    field = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).float()

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = field

        def forward(self, t, y):
            return self.net(y)

    f = Field()
    y0 = torch.ones(3, 2, dtype=torch.float32, requires_grad=True)
    ts = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64, requires_grad=True)
    sol = solve(f, y0, ts, "dopri5", adjoint=AdjointOptions(), rtol=1e-6, atol=1e-7)
    g_y0, g_ts = torch.autograd.grad(sol.ys.sum(), (y0, ts))
    assert g_y0.dtype == torch.float32 and g_ts.dtype == torch.float64
    y0_bp = y0.detach().clone().requires_grad_(True)
    ref = solve(f, y0_bp, ts.detach().float(), "dopri5", rtol=1e-6, atol=1e-7).ys.sum()
    (g_ref,) = torch.autograd.grad(ref, y0_bp)
    torch.testing.assert_close(g_y0, g_ref, atol=1e-4, rtol=1e-4)


# --- 4. the vector field's output is checked on its first evaluation -----------------------------------


@pytest.mark.parametrize("method", ["dopri5", "rk4", "euler", "gl4"])
@pytest.mark.parametrize(
    ("field", "shown"),
    [
        (lambda t, y: -y[:, :1], r"\(3, 1\)"),  # would broadcast silently to every component
        (lambda t, y: torch.cat([y, y[:, :1]], 1), r"\(3, 5\)"),
        (lambda t, y: -y.float(), "float32"),
        (lambda t, y: (-y).numpy(), "ndarray"),
    ],
)
def test_a_field_returning_the_wrong_shape_or_dtype_is_named_in_one_error(method, field, shown):
    kw = {} if method == "dopri5" else {"dt": 0.1}
    with pytest.raises(InvalidArgumentError, match=r"^f: expected") as info:
        solve(field, torch.ones(3, 4), torch.tensor([0.0, 1.0]), method, **kw)
    msg = str(info.value)
    assert "(3, 4)" in msg and "float64" in msg  # what was expected
    assert __import__("re").search(shown, msg)  # what it returned


def test_a_separable_field_s_halves_are_checked_too():
    from symflow.integrators import SplitField

    split = SplitField(drift=lambda t, p: p[..., :1], kick=lambda t, q: -q, n=2)
    with pytest.raises(InvalidArgumentError, match="drift"):
        solve(split, torch.ones(3, 4), torch.tensor([0.0, 1.0]), "verlet", dt=0.1)


# --- 5. isolation, unbounded step counts, times that collapse when cast --------------------------------


def _nan_for_marked(t, y):
    """Hénon–Heiles, except that a sample with x > 100 gets a NaN field (its state stays finite)."""
    out = F(t, y)
    return torch.where(y[..., :1] > 100, torch.full_like(out, math.nan), out)


@pytest.mark.parametrize("method", ["implicit_midpoint", "gl4", "gl6"])
@pytest.mark.parametrize("grid", ["shared", "per_sample"])
def test_implicit_methods_leave_other_samples_bitwise_identical_when_one_field_is_nan(method, grid):
    y0 = HH.sample(5, seed=3)
    ts = torch.linspace(0, 2, 5)
    if grid == "per_sample":
        ts = ts.expand(5, 5) * torch.linspace(1.0, 1.3, 5).unsqueeze(1)
    clean = solve(_nan_for_marked, y0, ts, method, dt=0.1)
    bad = y0.clone()
    bad[2, 0] = 1000.0
    dirty = solve(_nan_for_marked, bad, ts, method, dt=0.1, throw=False)
    keep = [0, 1, 3, 4]
    assert torch.equal(dirty.ys[keep], clean.ys[keep])
    assert torch.equal(dirty.stats["newton_iters"][keep], clean.stats["newton_iters"][keep])
    assert dirty.status[2] != Status.SUCCESS and (dirty.status[keep] == Status.SUCCESS).all()


@pytest.mark.parametrize("grid", ["shared", "per_sample"])
def test_a_step_count_beyond_max_steps_is_refused_before_the_loop(grid):
    calls = []

    def f(t, y):
        calls.append(1)
        return -y

    ts = torch.tensor([0.0, 1.0]) if grid == "shared" else torch.tensor([[0.0, 1.0], [0.0, 2.0]])
    start = time.perf_counter()
    with pytest.raises(InvalidArgumentError, match="max_steps") as info:
        solve(f, torch.ones(2, 1), ts, "rk4", dt=1e-300)
    assert time.perf_counter() - start < 1.0 and calls == []
    assert "dt" in str(info.value)
    with pytest.raises(InvalidArgumentError, match="max_steps"):
        solve(f, torch.ones(2, 1), ts, "rk4", dt=1e-3, max_steps=999)
    assert solve(f, torch.ones(2, 1), ts, "rk4", dt=1e-3, max_steps=2000).ok


def test_times_that_collapse_when_cast_to_the_state_dtype_are_reported_with_the_time_index():
    ts = torch.tensor([0.0, 1.0, 1.0 + 1e-12, 2.0], dtype=torch.float64)
    with pytest.raises(InvalidArgumentError, match="float32") as info:
        solve(lambda t, y: -y, torch.ones(3, 1, dtype=torch.float32), ts)
    assert "ts[2]" in str(info.value)


def test_non_monotone_times_name_the_offending_time_not_the_interval():
    with pytest.raises(InvalidArgumentError, match=r"ts\[2\]"):
        solve(lambda t, y: -y, torch.ones(3, 1), torch.tensor([0.0, 1.0, 0.5, 2.0]))
    with pytest.raises(InvalidArgumentError, match=r"ts\[1, 3\]"):
        solve(lambda t, y: -y, torch.ones(2, 1), torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 2.0]]))
