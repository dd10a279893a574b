"""Fixed-step solves compose with torch.func (vmap, grad, jacrev, jvp) and torch.compile."""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, jacrev, jvp, vmap

import symflow.systems as S
from symflow.integrators import solve
from symflow.integrators.solution import Status

HH = S.get_system("henon_heiles")
TS = torch.linspace(0, 2, 5, dtype=torch.float64)


@pytest.mark.parametrize("method", ["rk4", "verlet", "gl4", "dopri5"])
def test_vmap_of_a_fixed_step_solve_matches_the_batched_solve(method):
    f = S.vector_field(HH, autodiff=True)
    y0 = HH.sample(4, seed=1)
    batched = solve(f, y0, TS, method, dt=0.05).ys
    mapped = vmap(lambda y: solve(f, y, TS, method, dt=0.05).ys)(y0)
    torch.testing.assert_close(mapped, batched, atol=1e-13, rtol=0)


@pytest.mark.parametrize("method", ["rk4", "verlet", "gl4"])
def test_jacrev_of_a_solve_matches_finite_differences(method):
    f = S.vector_field(HH)
    y0 = HH.sample(1, seed=2)[0]

    def final(y):
        return solve(f, y, TS, method, dt=0.05).ys[-1]

    jac = jacrev(final)(y0)
    eps = 1e-6
    fd = torch.stack([(final(y0 + eps * e) - final(y0 - eps * e)) / (2 * eps) for e in torch.eye(4)], dim=1)
    torch.testing.assert_close(jac, fd, atol=1e-8, rtol=1e-7)
    tangent = torch.randn(4, dtype=torch.float64)
    _, jv = jvp(final, (y0,), (tangent,))
    torch.testing.assert_close(jv, jac @ tangent, atol=1e-12, rtol=1e-10)


def test_grad_through_a_solve_with_respect_to_a_parameter_matches_a_loop():
    k = torch.tensor(1.3, dtype=torch.float64)

    def energy_at_end(k):
        f = lambda t, y: torch.stack([y[..., 1], -k * y[..., 0]], -1)  # noqa: E731
        return solve(f, torch.tensor([1.0, 0.0], dtype=torch.float64), TS, "rk4", dt=0.01).ys[-1, 0]

    g = grad(energy_at_end)(k)
    eps = 1e-6
    fd = (energy_at_end(k + eps) - energy_at_end(k - eps)) / (2 * eps)
    torch.testing.assert_close(g, fd, atol=1e-8, rtol=1e-7)


def test_per_sample_grid_solve_is_differentiable():
    f = S.vector_field(HH)
    y0 = HH.sample(3, seed=5).requires_grad_(True)
    ts = torch.sort(torch.rand(3, 6, dtype=torch.float64) * 3, dim=1).values
    ys = solve(f, y0, ts, "rk4", dt=0.05).ys
    ys.square().sum().backward()
    g = y0.grad.clone()
    for i in range(3):
        yi = y0[i].detach().clone().requires_grad_(True)
        solve(f, yi, ts[i], "rk4", dt=0.05).ys.square().sum().backward()
        torch.testing.assert_close(g[i], yi.grad, atol=1e-12, rtol=1e-12)


@pytest.mark.slow
def test_a_fixed_step_solve_runs_under_torch_compile():
    f = S.vector_field(HH)
    y0 = HH.sample(8, seed=3)

    def run(y):
        return solve(f, y, TS, "rk4", dt=0.1).ys

    compiled = torch.compile(run)
    torch.testing.assert_close(compiled(y0), run(y0), atol=1e-12, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dopri5", "rk4", "verlet"])
def test_compile_option_matches_the_eager_solve(method):
    f = S.vector_field(HH)
    y0 = HH.sample(16, seed=4)
    ts = torch.linspace(0, 5, 21, dtype=torch.float64)
    kw = {"rtol": 1e-9, "atol": 1e-11} if method == "dopri5" else {"dt": 0.05}
    eager = solve(f, y0, ts, method, **kw)
    compiled = solve(f, y0, ts, method, compile=True, **kw)
    torch.testing.assert_close(compiled.ys, eager.ys, atol=1e-12, rtol=0)
    assert torch.equal(compiled.stats["steps"], eager.stats["steps"])


@pytest.mark.slow
def test_a_compiled_attempt_reused_by_a_later_solve_reads_that_solves_own_dtype_limits():
    """The compiled attempt is cached per field and options, not per dtype: the step-underflow floor
    (16 ulps of the time) must come from the solve in hand. y' = y² blows up at t = 1; in float32 the
    steps underflow at float32's floor, many steps before float64's would stop them."""

    def blowup(t, y):
        return y * y

    ts64 = torch.tensor([0.0, 2.0], dtype=torch.float64)
    y64 = torch.ones(3, 1, dtype=torch.float64)
    solve(blowup, y64, ts64, "dopri5", rtol=1e-6, atol=1e-8, compile=True, throw=False)  # compiles, float64
    ts32, y32 = ts64.float(), y64.float()
    eager = solve(blowup, y32, ts32, "dopri5", rtol=1e-6, atol=1e-8, throw=False)
    compiled = solve(blowup, y32, ts32, "dopri5", rtol=1e-6, atol=1e-8, compile=True, throw=False)
    assert eager.status.tolist() == [int(Status.DT_MIN)] * 3
    assert compiled.status.tolist() == eager.status.tolist()
    assert torch.equal(compiled.stats["steps"], eager.stats["steps"])


# --- threads of compiled kernels ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("numel", "threads", "load", "cores", "want"),
    [
        (4096, 2, 5.8, 2, 1),  # small problem, busy machine: one thread
        (4096, 2, 1.0, 2, 2),  # small problem, only this process running: keep both
        (4096, 16, 10.0, 16, 1),  # 10 other runnable threads + 16 asked of 16 cores
        (4096, 1, 9.0, 2, 1),  # already single-threaded
        (32768, 2, 9.0, 2, 2),  # large problem: as many threads as eager ATen uses
    ],
)
def test_compiled_kernels_run_single_threaded_for_small_problems_on_busy_cores(
    numel, threads, load, cores, want
):
    from symflow.integrators.compiled import threads_for

    assert threads_for(numel, threads, load=load, cores=cores) == want


@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_a_compiled_solve_on_busy_cores_uses_one_thread_and_restores_the_setting(method, monkeypatch):
    """The whole compiled solve (here with torch.compile replaced by the identity, so the test does
    not pay for compilation) sees one thread; the caller's setting is back afterwards."""
    import symflow.integrators.compiled as compiled

    monkeypatch.setattr(torch, "compile", lambda fn, **kw: fn)
    monkeypatch.setattr(compiled, "_CACHE", compiled.weakref.WeakKeyDictionary())
    monkeypatch.setattr(compiled.os, "getloadavg", lambda: (50.0, 50.0, 50.0))
    seen = []
    field = S.vector_field(HH)

    def f(t, y):
        seen.append(torch.get_num_threads())
        return field(t, y)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        kw = {"rtol": 1e-6} if method == "dopri5" else {"dt": 0.1}
        eager = solve(f, HH.sample(8, seed=5), TS, method, **kw)
        seen.clear()
        out = solve(f, HH.sample(8, seed=5), TS, method, compile=True, **kw)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
        torch.testing.assert_close(out.ys, eager.ys, atol=1e-12, rtol=0)
    finally:
        torch.set_num_threads(before)


# --- forward-mode AD through an adaptive solve ---------------------------------------------------------


@pytest.mark.parametrize("method", ["dopri5", "tsit5", "vern7"])
def test_forward_mode_through_an_adaptive_solve_treats_the_steps_as_constants(method):
    """A dual tensor's tangent (``torch.autograd.forward_ad``) stays out of step-size control, as the graph
    of reverse mode does: the forward-mode JVP equals the reverse-mode one (double backward) to round-off.
    Let through, the tangent of the step sizes shifts it by ~1e-6 here."""
    import torch.autograd.forward_ad as fw

    hh = S.get_system("henon_heiles")
    f, y0 = S.vector_field(hh), hh.sample(4, seed=0).to(torch.float64)
    ts = torch.linspace(0.0, 5.0, 6, dtype=torch.float64)
    v = torch.randn(y0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def run(y):
        return solve(f, y, ts, method, rtol=1e-6, atol=1e-8).ys

    with fw.dual_level():
        forward = fw.unpack_dual(run(fw.make_dual(y0, v))).tangent
    _, reverse = torch.autograd.functional.jvp(run, y0, v)
    torch.testing.assert_close(forward, reverse, rtol=0, atol=1e-12)
