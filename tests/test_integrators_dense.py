"""Dense output, ``solve(..., dense_output=True)`` and ``Solution.evaluate(t)``, against exact flows.

Swept from the method registry over shared and per-sample grids, forwards and backwards: the
interpolant must agree with the exact flow of the harmonic oscillator to the method's own accuracy
plus the interpolation error of its kind (the continuous extension, or cubic Hermite: ``|y⁽⁴⁾| h⁴/384``),
reproduce the output states at the output times, converge at its order, and differentiate.
"""

from __future__ import annotations

import inspect
import itertools
import math

import pytest
import torch

import symflow.systems as S
from symflow.integrators import (
    CapabilityError,
    Event,
    InvalidArgumentError,
    UnknownNameError,
    get_method,
    list_methods,
    solve,
)

F64 = torch.float64
OSC = S.get_system("harmonic_oscillator", n=2)
FIELD = S.vector_field(OSC)
METHODS = list_methods()
DT = 0.01


def options(name: str) -> dict:
    if not get_method(name).adaptive:
        return {"dt": DT}
    # Low orders at 1e-10 would take ~10⁴ (third order) to ~10⁵ (second) steps per sample.
    order = get_method(name).order
    if order <= 2:
        return {"rtol": 1e-7, "atol": 1e-9}
    return {"rtol": 1e-8, "atol": 1e-10} if order == 3 else {"rtol": 1e-10, "atol": 1e-12}


def grid(kind: str, direction: int, b: int, gen: torch.Generator) -> torch.Tensor:
    """Output times from 0 to ±3: shared ``(7,)``, or per sample ``(b, 7)`` with random ends."""
    if kind == "shared":
        ts = torch.linspace(0.0, 3.0, 7, dtype=F64)
    else:
        ends = 2.0 + torch.rand(b, 1, generator=gen, dtype=F64)
        inner = torch.sort(torch.rand(b, 5, generator=gen, dtype=F64), dim=1).values * ends
        ts = torch.cat([torch.zeros(b, 1, dtype=F64), inner, ends], dim=1)
    return direction * ts


def queries(ts: torch.Tensor, b: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """``(b, k)`` times inside each sample's interval."""
    end = ts[..., -1:].expand(b, 1) if ts.dim() == 2 else ts[-1].expand(b, 1)
    return torch.rand(b, k, generator=gen, dtype=F64) * end


@pytest.mark.parametrize("direction", [1, -1], ids=["forward", "backward"])
@pytest.mark.parametrize("kind", ["shared", "per_sample"])
@pytest.mark.parametrize("method", METHODS)
def test_evaluate_follows_the_exact_flow_between_output_times(method, kind, direction):
    gen = torch.Generator().manual_seed(0)
    y0 = OSC.sample(4, seed=1)
    ts = grid(kind, direction, 4, gen)
    sol = solve(FIELD, y0, ts, method, dense_output=True, **options(method))
    tq = queries(ts, 4, 25, gen)
    exact = OSC.flow(tq, y0[:, None, :])
    err = (sol.evaluate(tq) - exact).abs().max().item()
    # The method's own error at the same times, stepping to them: the interpolant may add only its
    # interpolation error on top.
    stepped = solve(FIELD, y0, torch.sort(tq.abs(), dim=1).values * direction, method, **options(method))
    own = (stepped.ys - OSC.flow(stepped.ts, y0[:, None, :])).abs().max().item()
    if sol.interpolation.kind == "hermite":
        interp = 1.5 * y0.norm(dim=-1).max().item() * DT**4 / 384
    else:
        interp = 1e-10  # order-4 extension at rtol 1e-10 (steps ~0.03)
    assert err <= 2 * own + interp, (method, err, own, interp)
    # At the output times the interpolant is the solution itself (to round-off: Verner's order-9
    # extension sums 26 stages with coefficients in the hundreds, ~2e-13 at θ = 1).
    tol = 1e-12 if get_method(method).order >= 9 else 1e-13
    torch.testing.assert_close(sol.evaluate(ts), sol.ys, rtol=tol, atol=tol)


@pytest.mark.parametrize(("method", "kind", "order"), [("gl6", "hermite", 4), ("dopri5", "rk", 5)])
def test_interpolation_error_converges_at_the_interpolants_order(method, kind, order):
    """Fixed-step solves with a negligible global error: the error between nodes is the
    interpolant's, ``O(h⁴)`` for cubic Hermite and ``O(h⁵)`` for dopri5's order-4 extension."""
    y0 = OSC.sample(3, seed=2)
    ts = torch.tensor([0.0, 2.0], dtype=F64)
    tq = torch.linspace(0.013, 1.987, 301, dtype=F64)
    errors = []
    for dt in (0.2, 0.1, 0.05):
        sol = solve(FIELD, y0, ts, method, dt=dt, dense_output=True)
        assert sol.interpolation.kind == kind
        errors.append((sol.evaluate(tq) - OSC.flow(tq, y0[:, None, :])).abs().max().item())
    rates = [math.log2(a / b) for a, b in itertools.pairwise(errors)]
    assert min(rates) > order - 0.6, (errors, rates)


def test_shapes_scalar_shared_and_per_sample_times_with_a_batch_shape():
    y0 = OSC.sample(6, seed=0).reshape(2, 3, 4)
    ts = torch.linspace(0, 2, 5, dtype=F64)
    sol = solve(FIELD, y0, ts, "dopri5", dense_output=True)
    assert sol.evaluate(0.5).shape == (2, 3, 4)
    assert sol.evaluate(torch.tensor([0.1, 0.7, 1.9], dtype=F64)).shape == (2, 3, 3, 4)
    per = torch.rand(2, 3, 8, dtype=F64) * 2
    out = sol.evaluate(per)
    assert out.shape == (2, 3, 8, 4)
    torch.testing.assert_close(out, OSC.flow(per, y0[..., None, :]), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(
        sol.evaluate(0.5), OSC.flow(torch.tensor(0.5, dtype=F64), y0), rtol=1e-6, atol=1e-6
    )
    with pytest.raises(InvalidArgumentError, match=r"^t: .*per-sample times"):
        sol.evaluate(torch.zeros(3, 2, 5, dtype=F64))


@pytest.mark.parametrize("method", ["rk4", "dopri5", "gl4", "verlet"])
def test_evaluate_is_differentiable_in_the_initial_state_and_the_time(method):
    y0 = OSC.sample(2, seed=3).requires_grad_(True)
    ts = torch.linspace(0, 1, 3, dtype=F64)
    opts = {"dt": 0.01} if not get_method(method).adaptive else {"rtol": 1e-10, "atol": 1e-12}

    def at(y, t):
        return solve(FIELD, y, ts, method, dense_output=True, **opts).evaluate(t)

    t = torch.tensor([[0.33], [0.71]], dtype=F64, requires_grad=True)  # one time per sample
    # ∂y(t)/∂y0 is the exact flow's matrix (a rotation for ω = m = 1) up to the method's error.
    jac = torch.autograd.functional.jacobian(lambda y: at(y, t.detach())[1, 0], y0)[:, 1]
    c, s = math.cos(0.71), math.sin(0.71)
    exact = torch.tensor([[c, 0, s, 0], [0, c, 0, s], [-s, 0, c, 0], [0, -s, 0, c]], dtype=F64)
    torch.testing.assert_close(jac, exact, rtol=0, atol=1e-4)
    # d/dt of the interpolant is the field along it, to the interpolant's accuracy.
    y = at(y0.detach(), t)
    dydt = torch.stack(
        [torch.autograd.grad(y[..., i].sum(), t, retain_graph=True)[0] for i in range(4)], dim=-1
    )
    assert dydt.shape == (2, 1, 4)
    torch.testing.assert_close(dydt, FIELD(t.detach(), y.detach()), rtol=0, atol=1e-4)


def test_gradcheck_through_the_stored_steps():
    y0 = OSC.sample(2, seed=4).requires_grad_(True)
    ts = torch.linspace(0, 1, 4, dtype=F64)
    tq = torch.tensor([0.12, 0.5, 0.93], dtype=F64)
    for method, opts in (
        ("rk4", {"dt": 0.1}),
        ("dopri5", {"rtol": 1e-8, "atol": 1e-10}),
        ("gl4", {"dt": 0.1}),
    ):
        assert torch.autograd.gradcheck(
            lambda y, m=method, o=opts: solve(FIELD, y, ts, m, dense_output=True, **o).evaluate(tq), (y0,)
        ), method


def test_times_outside_the_solved_interval_are_refused_not_extrapolated():
    y0 = OSC.sample(2, seed=0)
    sol = solve(FIELD, y0, torch.linspace(0, 1, 3, dtype=F64), "rk4", dt=0.1, dense_output=True)
    with pytest.raises(InvalidArgumentError, match=r"^t: expected times inside the solved interval \[0, 1\]"):
        sol.evaluate(1.5)
    with pytest.raises(InvalidArgumentError, match=r"^t: "):
        sol.evaluate(float("nan"))
    back = solve(FIELD, y0, torch.linspace(0, -1, 3, dtype=F64), "rk4", dt=0.1, dense_output=True)
    back.evaluate(-0.5)
    with pytest.raises(InvalidArgumentError, match=r"\[-1, 0\]"):
        back.evaluate(0.5)


def test_dense_output_must_be_asked_for_and_is_refused_where_it_cannot_work():
    y0 = OSC.sample(2, seed=0)
    ts = torch.linspace(0, 1, 3, dtype=F64)
    with pytest.raises(CapabilityError, match="dense_output=True"):
        solve(FIELD, y0, ts).evaluate(0.5)
    with pytest.raises(CapabilityError, match="adjoint"):
        solve(FIELD, y0, ts, dense_output=True, adjoint=True)
    with pytest.raises(InvalidArgumentError, match="dense_output"):
        solve(FIELD, y0, ts, dense_output="yes")
    with pytest.raises(CapabilityError, match=r"torch\.func"):
        torch.func.vmap(lambda y: solve(FIELD, y, ts, "rk4", dense_output=True).ys)(y0[:, None])


def test_failed_samples_have_no_values_past_their_failure():
    def blowup(t, y):
        return y * y  # y = y0 / (1 - y0 t): singular at t = 1/y0

    y0 = torch.tensor([[0.5], [2.0]], dtype=F64)
    sol = solve(blowup, y0, torch.tensor([0.0, 1.0], dtype=F64), throw=False, dense_output=True)
    out = sol.evaluate(torch.tensor([0.25, 0.9], dtype=F64))
    torch.testing.assert_close(out[0, :, 0], 0.5 / (1 - 0.5 * torch.tensor([0.25, 0.9], dtype=F64)))
    assert torch.isfinite(out[1, 0]).all() and torch.isnan(out[1, 1]).all()


def test_event_states_lie_on_the_dense_output():
    hh = S.get_system("henon_heiles")
    y0 = hh.sample(4, seed=0, energy=0.1)
    ts = torch.tensor([0.0, 30.0], dtype=F64)
    sol = solve(
        S.vector_field(hh),
        y0,
        ts,
        rtol=1e-10,
        atol=1e-12,
        events=Event(lambda t, y: y[..., 0], 1),
        dense_output=True,
    )
    ev = sol.events
    on_dense = sol.evaluate(ts[0] + torch.zeros(4, 1, dtype=F64)).squeeze(1)
    torch.testing.assert_close(on_dense, y0)
    for i in range(4):
        mine = ev.for_sample(i)
        got = sol.evaluate(
            torch.full((4, mine.t.shape[0]), 0.0, dtype=F64).index_copy(0, torch.tensor([i]), mine.t[None])
        )
        torch.testing.assert_close(got[i], mine.y, rtol=0, atol=1e-8)


def test_unknown_option_message_lists_every_option_of_the_signature():
    keywords = [p.name for p in inspect.signature(solve).parameters.values() if p.kind == p.KEYWORD_ONLY]
    assert {"compile", "adjoint", "dense_output"} <= set(keywords)
    with pytest.raises(UnknownNameError) as err:
        solve(FIELD, OSC.sample(1), torch.linspace(0, 1, 2, dtype=F64), dense_outptu=True)
    message = str(err.value)
    assert "did you mean 'dense_output'" in message
    known = message.split("Known: ")[1].rstrip(".").split(", ")
    assert set(known) == {"method", *keywords}


@pytest.mark.slow
def test_compiled_fixed_step_solves_record_their_steps():
    y0 = OSC.sample(3, seed=0)
    ts = torch.linspace(0, 1, 5, dtype=F64)
    sol = solve(FIELD, y0, ts, "rk4", dt=0.05, compile=True, dense_output=True)
    eager = solve(FIELD, y0, ts, "rk4", dt=0.05, dense_output=True)
    tq = torch.linspace(0, 1, 37, dtype=F64)
    torch.testing.assert_close(sol.evaluate(tq), eager.evaluate(tq), rtol=1e-12, atol=1e-13)
