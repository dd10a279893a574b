"""Device paths: ``compile="reduce-overhead"``, and on CUDA (``gpu`` marker) the same numbers as on the CPU
with the host syncs CUDA itself reports kept within the loop's budget.

Run on a GPU machine by ``benchmarks/gpu_check.sh``; the ``gpu`` tests are skipped elsewhere.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import symflow.integrators.adaptive as adaptive
import symflow.systems as S
from symflow.integrators import CapabilityError, InvalidArgumentError, solve

HH = S.get_system("henon_heiles")
F = S.vector_field(HH)
TS = torch.linspace(0.0, 5.0, 21, dtype=torch.float64)


def test_compile_takes_true_false_or_reduce_overhead():
    y0 = HH.sample(4, seed=0)
    with pytest.raises(InvalidArgumentError, match="compile"):
        solve(F, y0, TS, "dopri5", compile="max-autotune")
    with pytest.raises(CapabilityError, match="reduce-overhead"):
        solve(F, y0, TS, "rk4", dt=0.1, compile="reduce-overhead")
    with pytest.raises(CapabilityError, match="reduce-overhead"):
        solve(F, y0.requires_grad_(True), TS, "dopri5", adjoint=True, compile="reduce-overhead")


@pytest.mark.slow
def test_reduce_overhead_matches_the_eager_solve():
    """On the CPU there are no CUDA graphs: the mode must still compile and give the eager numbers."""
    y0 = HH.sample(16, seed=4)
    eager = solve(F, y0, TS, "dopri5", rtol=1e-9, atol=1e-11)
    graphs = solve(F, y0, TS, "dopri5", rtol=1e-9, atol=1e-11, compile="reduce-overhead")
    torch.testing.assert_close(graphs.ys, eager.ys, atol=1e-12, rtol=0)
    assert torch.equal(graphs.stats["steps"], eager.stats["steps"])


def _cuda_syncs(fn) -> tuple[object, int]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            out = fn()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return out, sum("synchroniz" in str(w.message) for w in seen)


@pytest.mark.gpu
@pytest.mark.parametrize(("method", "kw"), [("dopri5", {"rtol": 1e-9, "atol": 1e-11}), ("gl4", {"dt": 0.05})])
def test_a_cuda_solve_gives_the_cpu_numbers(method, kw):
    y0 = HH.sample(256, seed=1)
    cpu = solve(F, y0, TS, method, **kw)
    gpu = solve(F, y0.cuda(), TS.cuda(), method, **kw)
    torch.testing.assert_close(gpu.ys.cpu(), cpu.ys, atol=1e-9, rtol=0)


@pytest.mark.gpu
def test_the_adaptive_loop_syncs_with_cuda_once_every_check_every_attempts():
    """The CPU counter's budget, checked against what CUDA reports (this catches syncs the counter's entry
    points do not see: nonzero, boolean indexing, host copies)."""
    y0 = HH.sample(1024, seed=2).cuda()
    ts = torch.linspace(0.0, 20.0, 201, dtype=torch.float64, device="cuda")
    solve(F, y0, ts, "dopri5", rtol=1e-8, atol=1e-10)  # warm-up
    sol, syncs = _cuda_syncs(lambda: solve(F, y0, ts, "dopri5", rtol=1e-8, atol=1e-10))
    attempts = int(sol.stats["steps"].max())
    assert syncs <= attempts / adaptive.CHECK_EVERY + 12, (syncs, attempts)


@pytest.mark.gpu
def test_reduce_overhead_replays_cuda_graphs_with_the_eager_numbers():
    y0 = HH.sample(512, seed=3).cuda()
    ts = TS.cuda()
    eager = solve(F, y0, ts, "dopri5", rtol=1e-9, atol=1e-11)
    for _ in range(2):  # the second call replays the recorded graphs
        graphs = solve(F, y0, ts, "dopri5", rtol=1e-9, atol=1e-11, compile="reduce-overhead")
    torch.testing.assert_close(graphs.ys, eager.ys, atol=1e-10, rtol=0)
    assert torch.equal(graphs.stats["steps"], eager.stats["steps"])


@pytest.mark.gpu
def test_the_adjoint_on_cuda_gives_the_cpu_gradient():
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4)).double()
    y0 = HH.sample(64, seed=5)
    grads = []
    for dev in ("cpu", "cuda"):
        model = net.to(dev)
        y = y0.to(dev).requires_grad_(True)
        sol = solve(lambda t, z, m=model: m(z), y, TS.to(dev), "dopri5", adjoint=True, rtol=1e-9, atol=1e-11)
        sol.ys.square().sum().backward()
        grads.append(y.grad.cpu())
    torch.testing.assert_close(grads[1], grads[0], atol=1e-7, rtol=1e-6)
