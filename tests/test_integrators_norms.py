"""Error norms of adaptive steps: per sample (default) and batch-wide (shared steps, ``norm="batch"``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from symflow.integrators import (
    AdjointOptions,
    CapabilityError,
    IntegrationError,
    InvalidArgumentError,
    Status,
    UnknownNameError,
    solve,
)
from symflow.integrators.norms import batch_rms_norm, rms_norm

F64 = torch.float64


def oscillators(omegas):
    """``q'' = −ω_b² q`` per sample (``ω`` rides along as a third, constant component, so the field acts
    on rows alone), with its exact solution: samples of very different difficulty."""
    w = torch.as_tensor(omegas, dtype=F64).unsqueeze(-1)

    def f(t, y):
        return torch.cat([y[:, 1:2], -y[:, 2:3].square() * y[:, :1], torch.zeros_like(y[:, 2:3])], -1)

    def exact(t):
        return torch.cat([torch.cos(w * t), -w * torch.sin(w * t), w], -1)

    return f, exact


def test_batch_norm_is_one_rms_over_the_finite_nonzero_rows():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 1.0], [float("nan"), 1.0], [2.0, 0.0]], dtype=F64)
    value = batch_rms_norm(x)
    counted = np.array([[3.0, 4.0], [1.0, 1.0], [2.0, 0.0]])  # rows that are finite and nonzero
    expected = math.sqrt((counted**2).sum() / counted.size)
    assert value.shape == (5,)
    for b in (0, 1, 2, 4):
        assert float(value[b]) == pytest.approx(expected, rel=1e-15)
    assert math.isnan(float(value[3]))  # a non-finite row keeps its own value: that sample fails alone
    assert torch.equal(rms_norm(x[:1]), torch.tensor([math.sqrt(12.5)], dtype=F64))


@pytest.mark.parametrize("method", ["dopri5", "tsit5", "bosh3", "dop853"])
def test_shared_steps_keep_the_batch_in_lockstep_and_meet_the_tolerance(method):
    f, exact = oscillators([0.5, 1.0, 4.0, 9.0])
    y0 = exact(torch.zeros((), dtype=F64))
    ts = torch.linspace(0, 3, 7, dtype=F64)
    per = solve(f, y0, ts, method, rtol=1e-7, atol=1e-9)
    shared = solve(f, y0, ts, method, rtol=1e-7, atol=1e-9, norm="batch")
    # Shared steps: every sample makes the same attempts; per sample the easy ones make fewer.
    assert len(set(shared.stats["steps"].tolist())) == 1
    assert len(set(shared.stats["accepted"].tolist())) == 1
    assert len(set(per.stats["steps"].tolist())) > 1
    assert int(shared.stats["steps"][0]) <= int(per.stats["steps"].max())
    # The batch RMS is met on average, not per sample: the stiffest sample's error may exceed its
    # per-sample-norm error, but stays at the tolerance's scale against the exact flow.
    ref = torch.stack([exact(t) for t in ts], 1)
    err = (shared.ys - ref).abs().max()
    assert float(err) < 1e-4
    assert (shared.status == Status.SUCCESS).all()


def test_batch_norm_of_a_single_sample_takes_the_per_sample_steps():
    f, exact = oscillators([3.0])
    y0 = exact(torch.zeros((), dtype=F64))
    ts = torch.linspace(0, 5, 4, dtype=F64)
    a = solve(f, y0, ts, rtol=1e-7, atol=1e-9)
    b = solve(f, y0, ts, rtol=1e-7, atol=1e-9, norm="batch")
    assert torch.equal(a.stats["steps"], b.stats["steps"])
    torch.testing.assert_close(a.ys, b.ys, rtol=1e-12, atol=1e-14)


def test_a_sample_that_turns_nonfinite_fails_alone_under_shared_steps():
    def f(t, y):
        out = -y
        bad = (t > 0.5) & (torch.arange(y.shape[0]) == 1)
        return torch.where(bad.unsqueeze(-1), torch.full_like(y, float("nan")), out)

    y0 = torch.tensor([[1.0], [1.0], [2.0]], dtype=F64)
    ts = torch.tensor([0.0, 1.0], dtype=F64)
    sol = solve(f, y0, ts, rtol=1e-9, atol=1e-12, norm="batch", throw=False)
    assert sol.status.tolist() == [Status.SUCCESS, Status.NONFINITE, Status.SUCCESS]
    torch.testing.assert_close(sol.ys[[0, 2], -1, 0], y0[[0, 2], 0] * math.exp(-1.0), rtol=1e-8, atol=0)


def test_a_sample_that_cannot_be_integrated_stops_the_whole_batch_with_a_status():
    # y' = y² blows up at t = 1 from y = 1: under shared steps it drags every sample's step down with it
    # (documented in symflow.integrators.norms); every sample reports it, none returns a silent value.
    y0 = torch.tensor([[1.0], [-1.0]], dtype=F64)
    ts = torch.tensor([0.0, 2.0], dtype=F64)
    sol = solve(lambda t, y: y * y, y0, ts, norm="batch", throw=False)
    assert (sol.status != Status.SUCCESS).all()
    per = solve(lambda t, y: y * y, y0, ts, throw=False)  # per sample, the well-posed one finishes
    assert int(per.status[1]) == Status.SUCCESS and int(per.status[0]) != Status.SUCCESS
    with pytest.raises(IntegrationError):
        solve(lambda t, y: y * y, y0, ts, norm="batch")


def test_norm_options_are_checked_at_the_boundary():
    f, exact = oscillators([1.0, 2.0])
    y0 = exact(torch.zeros((), dtype=F64))
    with pytest.raises(UnknownNameError, match="did you mean 'batch'"):
        solve(f, y0, torch.linspace(0, 1, 3, dtype=F64), norm="bach")
    with pytest.raises(InvalidArgumentError, match="norm"):
        solve(f, y0, torch.linspace(0, 1, 3, dtype=F64), norm=3)
    per_sample_grid = torch.tensor([[0.0, 0.5, 1.0], [0.0, 0.7, 1.2]], dtype=F64)
    with pytest.raises(CapabilityError, match="shared by the batch"):
        solve(f, y0, per_sample_grid, norm="batch")
    with pytest.raises(InvalidArgumentError, match="norm"):  # fixed-step methods have no error norm
        solve(f, y0, torch.linspace(0, 1, 3, dtype=F64), "rk4", norm="batch")
    # "sample" is the default, so naming it is accepted everywhere.
    solve(f, y0, torch.linspace(0, 1, 3, dtype=F64), "rk4", norm="sample")
    solve(f, y0, per_sample_grid, norm="sample")


class Field(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))

    def forward(self, t, y):
        return self.net(y)


def _grads(field, y0, ts, **kw):
    field.zero_grad()
    y0 = y0.clone().requires_grad_(True)
    sol = solve(field, y0, ts, **kw)
    (sol.ys.square().sum() + sol.ys[:, -1, 0].sum()).backward()
    return torch.cat([y0.grad.reshape(-1), *[p.grad.reshape(-1) for p in field.parameters()]]), sol


@pytest.mark.parametrize("seminorm", [False, True])
def test_shared_step_adjoint_matches_backprop_and_shares_its_backward_steps(seminorm):
    field = Field().double()
    # Starting points of very different sizes: per sample, they need different numbers of steps.
    scales = torch.tensor([0.01, 0.3, 1.0, 3.0, 10.0, 30.0], dtype=F64).unsqueeze(-1)
    y0 = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=F64) * scales
    ts = torch.linspace(0, 2, 5, dtype=F64)
    tol = {"rtol": 1e-10, "atol": 1e-12, "norm": "batch"}
    exact, _ = _grads(field, y0, ts, **tol)
    adj, sol = _grads(field, y0, ts, adjoint=AdjointOptions(seminorm=seminorm), **tol)
    assert float((adj - exact).norm() / exact.norm()) < 1e-6
    steps = sol.adjoint.backward_stats["steps"]
    assert len(set(steps.tolist())) == 1  # the backward norm follows the forward one: shared steps
    if seminorm:  # (the full norm's parameter part is one batch-level norm: it couples the samples)
        _, per = _grads(field, y0, ts, adjoint=AdjointOptions(seminorm=True, norm="sample"), **tol)
        assert len(set(per.adjoint.backward_stats["steps"].tolist())) > 1
    # And the other way round: per-sample forward steps, shared backward steps.
    _, mixed = _grads(
        field, y0, ts, adjoint=AdjointOptions(seminorm=seminorm, norm="batch"), rtol=1e-10, atol=1e-12
    )
    assert len(set(mixed.stats["steps"].tolist())) > 1
    assert len(set(mixed.adjoint.backward_stats["steps"].tolist())) == 1


@pytest.mark.parametrize("seminorm", [False, True])
def test_shared_step_adjoint_reuses_the_fsal_stage_six_evaluations_a_backward_step(seminorm):
    class Counting(Field):
        calls = 0

        def forward(self, t, y):
            Counting.calls += 1
            return super().forward(t, y)

    field = Counting().double()
    scales = torch.tensor([0.01, 0.3, 1.0, 3.0, 10.0, 30.0], dtype=F64).unsqueeze(-1)
    y0 = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=F64) * scales
    ts = torch.linspace(0, 2, 5, dtype=F64)
    tol = {"rtol": 1e-10, "atol": 1e-12}
    exact, _ = _grads(field, y0, ts, norm="batch", **tol)
    sol = solve(
        field,
        y0.clone().requires_grad_(True),
        ts,
        norm="batch",
        adjoint=AdjointOptions(seminorm=seminorm),
        **tol,
    )
    Counting.calls = 0
    (sol.ys.square().sum() + sol.ys[:, -1, 0].sum()).backward()
    steps = int(sol.adjoint.backward_stats["steps"][0])
    # dopri5 has 7 stages; the last one of an accepted step (or the first of a rejected one) is the
    # next attempt's first, so only the first attempt after each of the 4 observations pays 7.
    assert Counting.calls == 6 * steps + 4
    field.zero_grad()
    y0g = y0.clone().requires_grad_(True)
    sol = solve(field, y0g, ts, norm="batch", adjoint=AdjointOptions(seminorm=seminorm), **tol)
    (sol.ys.square().sum() + sol.ys[:, -1, 0].sum()).backward()
    adj = torch.cat([y0g.grad.reshape(-1), *[p.grad.reshape(-1) for p in field.parameters()]])
    assert float((adj - exact).norm() / exact.norm()) < 1e-6
    # Per-sample steps re-evaluate the first stage at every attempt.
    per = solve(field, y0.clone().requires_grad_(True), ts, adjoint=AdjointOptions(seminorm=seminorm), **tol)
    Counting.calls = 0
    per.ys.square().sum().backward()
    assert Counting.calls == 7 * per.adjoint.backward_stats["iterations"]


def test_adjoint_norm_option_is_checked():
    field = Field().double()
    y0 = torch.randn(2, 2, dtype=F64)
    with pytest.raises(InvalidArgumentError, match=r"adjoint\.norm"):
        solve(field, y0, torch.linspace(0, 1, 3, dtype=F64), adjoint=AdjointOptions(norm=lambda e: e))
    with pytest.raises(UnknownNameError, match="did you mean 'sample'"):
        solve(field, y0, torch.linspace(0, 1, 3, dtype=F64), adjoint=AdjointOptions(norm="sampel"))
    grid = torch.tensor([[0.0, 0.5, 1.0], [0.0, 0.7, 1.2]], dtype=F64)
    with pytest.raises(CapabilityError, match="shared by the batch"):
        solve(field, y0, grid, adjoint=AdjointOptions(norm="batch"))
