"""Host-sync budgets of the solver loops, counted on the CPU so that a regression shows without a GPU.

On a GPU every ``bool(tensor)``, ``.item()`` or ``.tolist()`` stalls the host until the device has
drained its queue. The adaptive loop may look at the device once every ``CHECK_EVERY`` attempts (is any
sample still active?), an implicit method once per Newton solve (is any sample still iterating?); the
counter of ``tests/sync_counter.py`` counts the entry points of ``torch.Tensor`` that sync. A few syncs
outside the loop (input checks) are allowed for: ``SETUP``.
"""

from __future__ import annotations

import pytest
import torch
from sync_counter import count_host_syncs

import symflow.integrators.adaptive as adaptive
import symflow.systems as S
from symflow.integrators import get_method, list_methods, solve

SETUP = 10  # syncs outside the loop (input validation, the first and the last look, a window widening)


@pytest.fixture(autouse=True)
def _loop_as_on_an_accelerator(monkeypatch):
    """On the CPU the adaptive loop also reads "any sample active?" after every attempt and picks the rows
    that hold outputs (both free there); count the loop as it runs on an accelerator."""
    monkeypatch.setattr(adaptive, "STOP_AT_ONCE_ON_CPU", False)
    monkeypatch.setattr(adaptive, "COMPACT_OUTPUTS_ON_CPU", False)


def _hh(b: int = 16) -> tuple:
    hh = S.get_system("henon_heiles")
    return S.vector_field(hh), hh.sample(b, seed=0).to(torch.float64)


def _budget(sol) -> float:
    return int(sol.stats["steps"].max()) / adaptive.CHECK_EVERY + SETUP


GRIDS = {
    "increasing": lambda b: torch.linspace(0.0, 10.0, 11, dtype=torch.float64),
    "decreasing": lambda b: torch.linspace(10.0, 0.0, 11, dtype=torch.float64),
    "per-sample": lambda b: (
        torch.linspace(0.0, 10.0, 11, dtype=torch.float64)
        * torch.linspace(0.5, 1.0, b, dtype=torch.float64).unsqueeze(1)
    ),
    "dense (401 outputs)": lambda b: torch.linspace(0.0, 10.0, 401, dtype=torch.float64),
}


def _rtol(method: str) -> float:
    """Tolerances that give each pair some 30-350 attempts (low orders need many more steps)."""
    order = get_method(method).order
    return 1e-3 if order <= 2 else 1e-4 if order <= 3 else 1e-7 if order <= 6 else 1e-10


@pytest.mark.parametrize("grid", list(GRIDS))
@pytest.mark.parametrize("method", list_methods("embedded"))
def test_the_adaptive_loop_syncs_once_every_check_every_attempts(method, grid):
    f, y0 = _hh()
    ts = GRIDS[grid](y0.shape[0])
    with count_host_syncs() as syncs:
        sol = solve(f, y0, ts, method, rtol=_rtol(method), atol=_rtol(method) * 1e-2)
    assert int(sol.stats["steps"].max()) >= 3 * adaptive.CHECK_EVERY  # a budget that means something
    assert syncs.count <= _budget(sol), syncs.by_name


@pytest.mark.parametrize(
    "options", [{"dense_output": True}, {"hit_obs": True}, {"compensated": True}, {"max_steps": 40}]
)
def test_options_of_the_adaptive_loop_keep_the_budget(options):
    f, y0 = _hh()
    ts = torch.linspace(0.0, 10.0, 41, dtype=torch.float64)
    with count_host_syncs() as syncs:
        sol = solve(f, y0, ts, "dopri5", rtol=1e-8, atol=1e-10, throw=False, **options)
        if options.get("dense_output"):
            sol.evaluate(torch.linspace(0.0, 10.0, 7, dtype=torch.float64))
    assert syncs.count <= _budget(sol) + (3 if options.get("dense_output") else 0), syncs.by_name


def test_results_do_not_depend_on_how_often_the_loop_looks(monkeypatch):
    """Attempts made after a sample finished, samples paused for a wider output window, and interpolating
    only the rows that hold outputs (the CPU's way) change no bit."""
    f, y0 = _hh(8)
    ts = torch.linspace(0.0, 10.0, 501, dtype=torch.float64)
    runs = []
    ways = ((1, False, False), (3, False, False), (8, False, False), (8, True, True), (3, True, True))
    for k, at_once, compact in ways:
        monkeypatch.setattr(adaptive, "CHECK_EVERY", k)
        monkeypatch.setattr(adaptive, "STOP_AT_ONCE_ON_CPU", at_once)
        monkeypatch.setattr(adaptive, "COMPACT_OUTPUTS_ON_CPU", compact)
        sol = solve(f, y0, ts, "dopri5", rtol=1e-8, atol=1e-10)
        runs.append((sol.ys, sol.stats))
    for ys, stats in runs[1:]:
        assert torch.equal(ys, runs[0][0])
        for key in ("steps", "accepted", "rejected", "nfev"):
            assert torch.equal(stats[key], runs[0][1][key]), key


@pytest.mark.parametrize("method", list_methods("embedded"))
def test_interpolating_only_the_rows_with_outputs_changes_no_bit(method, monkeypatch):
    """The CPU's output writer (only the attempts whose step holds an output are interpolated) against the
    accelerator's (every row, the rest to scratch columns): per-sample grids, with dense outputs that
    widen the window, for every pair (interpolation-only stages counted in nfev, Hermite outputs)."""
    f, y0 = _hh(6)
    base = torch.linspace(0.0, 1.0, 121, dtype=torch.float64)
    ts = base * torch.tensor([2.0, 12.0, 9.0, 5.0, 3.0, 7.0], dtype=torch.float64).unsqueeze(1)
    runs = []
    for compact in (False, True):
        monkeypatch.setattr(adaptive, "COMPACT_OUTPUTS_ON_CPU", compact)
        sol = solve(f, y0, ts, method, rtol=_rtol(method), atol=_rtol(method) * 1e-2)
        runs.append(sol)
    assert torch.equal(runs[0].ys, runs[1].ys)
    assert not torch.isnan(runs[1].ys).any()
    for key in ("steps", "accepted", "rejected", "nfev"):
        assert torch.equal(runs[0].stats[key], runs[1].stats[key]), key


def test_a_sample_with_dense_outputs_leaves_the_others_bitwise_unchanged():
    """One sample whose steps hold dozens of outputs widens the output window; every sample's result is
    the one it gets alone."""
    f, y0 = _hh(3)
    base = torch.linspace(0.0, 1.0, 301, dtype=torch.float64)
    ts = torch.stack([base * 2.0, base * 40.0, base * 9.0])  # 150, 7.5 and 33 outputs per time unit
    sol = solve(f, y0, ts, "dopri5", rtol=1e-6, atol=1e-8)
    for i in range(3):
        alone = solve(f, y0[i : i + 1], ts[i : i + 1], "dopri5", rtol=1e-6, atol=1e-8)
        assert torch.equal(sol.ys[i], alone.ys[0])
        for key in ("steps", "accepted", "rejected", "nfev"):
            assert torch.equal(sol.stats[key][i], alone.stats[key][0]), key


@pytest.mark.parametrize("method", list_methods("implicit"))
def test_an_implicit_step_syncs_once_per_newton_solve_on_a_linear_field(method):
    """On a linear field every Newton solve needs the same number of iterations: exactly one sync each."""
    osc = S.get_system("harmonic_oscillator")
    f, y0 = S.vector_field(osc), osc.sample(32, seed=1).to(torch.float64)
    ts = torch.linspace(0.0, 10.0, 101, dtype=torch.float64)
    with count_host_syncs() as syncs:
        solve(f, y0, ts, method, dt=0.1)
    assert syncs.count <= 100 + SETUP, syncs.by_name


@pytest.mark.parametrize("method", list_methods("implicit"))
def test_an_implicit_step_on_a_nonlinear_field_stays_near_one_sync_per_step(method):
    """A step that needs more iterations than the previous one looks once more (documented); a quarter of
    the steps may, not every step."""
    f, y0 = _hh(32)
    ts = torch.linspace(0.0, 10.0, 101, dtype=torch.float64)
    with count_host_syncs() as syncs:
        solve(f, y0, ts, method, dt=0.1)
    assert syncs.count <= 1.25 * 100 + SETUP, syncs.by_name


def test_on_the_cpu_the_loop_makes_no_attempt_after_the_last_sample_finished(monkeypatch):
    """Every attempt evaluates f for the whole batch; once no sample is active the CPU loop stops."""
    monkeypatch.setattr(adaptive, "STOP_AT_ONCE_ON_CPU", True)
    f, y0 = _hh(4)
    calls = []

    def counted(t, y):
        calls.append(1)
        return f(t, y)

    ts = torch.linspace(0.0, 10.0, 11, dtype=torch.float64)
    sol = solve(counted, y0, ts, "dopri5", rtol=1e-6, atol=1e-8)
    # The loop's evaluations are those of the longest-running sample; no masked attempt after it.
    assert len(calls) == int(sol.stats["nfev"].max())
