"""Host syncs of the adjoint's backward loop (counted on the CPU with tests/sync_counter.py).

The backward loop reads "is any sample still active?" once per ``K = AdjointOptions.sync_every``
iterations (default: 8 on an accelerator, ``SYNC_EVERY_ACCELERATOR``; 1 on the CPU, where a read is
free), records step-size underflow / ``max_steps`` / Newton failures per sample and checks them once
after the loop. A fixed-step backward knows its iteration count up front: one read before the loop,
one after. Budget of one backward pass: ``⌈iterations / K⌉`` reads + 1 failure check (+ 1 for the
fixed-step count). With ``K = 1`` (the CPU default) an adaptive backward may also read once per
iteration whether an attempted step was dropped (it then subtracts that step's θ-product): at most
two reads per iteration.
"""

from __future__ import annotations

import math

import pytest
import torch

from symflow.integrators import AdjointOptions, CapabilityError, solve
from symflow.integrators.adjoint import SYNC_EVERY_ACCELERATOR
from tests.sync_counter import count_host_syncs


class Field(torch.nn.Module):
    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))

    def forward(self, t, y):
        return self.net(y)


def problem(b: int = 6, n_obs: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y0 = torch.randn(b, 2, generator=g, dtype=torch.float64)
    ts = torch.sort(torch.rand(b, n_obs, generator=g, dtype=torch.float64) * 3, dim=1).values
    return y0, ts


def backward_syncs(field, y0, ts, method, opts, **kw):
    """Forward outside the counter, then count the syncs of ``backward`` alone."""
    field.zero_grad()
    sol = solve(field, y0, ts, method, adjoint=opts, **kw)
    loss = sol.ys.square().sum()
    with count_host_syncs() as syncs:
        loss.backward()
    grads = [p.grad.clone() for p in field.parameters()]
    return syncs, sol.adjoint.backward_stats, grads


@pytest.mark.parametrize("seminorm", [False, True])
@pytest.mark.parametrize("sync_every", [SYNC_EVERY_ACCELERATOR, 3])
def test_adaptive_backward_reads_active_once_per_k_iterations(seminorm, sync_every):
    field = Field().double()
    y0, ts = problem()
    opts = AdjointOptions(seminorm=seminorm, sync_every=sync_every)
    syncs, stats, _ = backward_syncs(field, y0, ts, "dopri5", opts, rtol=1e-7, atol=1e-9)
    iterations = stats["iterations"]
    assert iterations >= int(stats["steps"].max()) > 4  # a real loop, not a single step
    budget = math.ceil(iterations / sync_every) + 1  # the active reads + one failure check
    assert syncs.count <= budget, (syncs.by_name, iterations)
    assert stats["active_reads"] == math.ceil(iterations / sync_every)


def test_masked_iterations_after_the_last_sample_finished_change_nothing():
    y0, ts = problem(seed=1)
    grads = {}
    for k in (1, 8, 16):
        field = Field().double()
        _, stats, grads[k] = backward_syncs(
            field, y0, ts, "dopri5", AdjointOptions(sync_every=k), rtol=1e-7, atol=1e-9
        )
        assert stats["iterations"] % k == 0
    for a, b in zip(grads[8], grads[16]):  # the same arithmetic, more masked iterations
        assert torch.equal(a, b)
    for a, b in zip(grads[1], grads[8]):  # K = 1 sums the θ-products in another order (scaled pass)
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-15)


def test_cpu_default_reads_after_every_iteration_and_stops_at_the_last_sample():
    field = Field().double()
    y0, ts = problem(seed=2)
    syncs, stats, _ = backward_syncs(field, y0, ts, "dopri5", True, rtol=1e-6, atol=1e-8)
    assert stats["iterations"] == stats["active_reads"] == int(stats["steps"].max())
    assert syncs.count <= 2 * stats["iterations"] + 1


def test_fixed_step_backward_needs_two_reads_and_one_failure_check():
    field = Field().double()
    y0, ts = problem(seed=3)
    syncs, stats, _ = backward_syncs(field, y0, ts, "rk4", AdjointOptions(dt=0.05), dt=0.05)
    assert stats["iterations"] > 20
    assert syncs.count <= 3, syncs.by_name


def test_backward_failures_are_recorded_and_raised_after_the_loop():
    field = Field().double()
    y0, ts = problem(seed=4)
    sol = solve(field, y0, ts, "dopri5", rtol=1e-9, atol=1e-11, adjoint=AdjointOptions(max_steps=3))
    with pytest.raises(CapabilityError, match="max_steps"):
        sol.ys.sum().backward()


def test_sync_every_is_validated():
    from symflow.integrators import InvalidArgumentError

    field = Field().double()
    y0, ts = problem()
    with pytest.raises(InvalidArgumentError, match="sync_every"):
        solve(field, y0, ts, adjoint=AdjointOptions(sync_every=0))
