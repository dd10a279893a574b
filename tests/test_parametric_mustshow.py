"""The issue's must-show runs for parametric families (slow: CPU minutes; `pytest -m slow`).

They run ``benchmarks/bench_parametric.py``'s cases — the figures recorded in
``benchmarks/results/parametric.json`` — and assert the issue's targets.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.bench_parametric import flow_family_case, hnn_case

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.mark.xfail(
    strict=False,
    reason="not met with the shared budget: 4.6× / 5.0× / 2.04× at ω = 0.6 / 1.1 / 1.9 "
    "(benchmarks/results/parametric.json, docs/benchmarks.md)",
)
def test_one_sympflow_for_the_oscillator_family_is_within_2x_of_single_frequency_models_at_t100():
    rows = flow_family_case("oscillator", quick_mode=False)
    assert all(torch.isfinite(torch.tensor(r["family_error"])) for r in rows)
    assert max(r["ratio"] for r in rows) <= 2.0


@pytest.mark.xfail(
    strict=False,
    reason="not met with the shared budget: 1.65× at l = 0.6 but 9.0× at l = 1.9 "
    "(benchmarks/results/parametric.json, docs/benchmarks.md)",
)
def test_one_sympflow_for_the_pendulum_length_family_is_within_2x_of_single_length_models_at_t100():
    rows = flow_family_case("pendulum", quick_mode=False)
    assert max(r["ratio"] for r in rows) <= 2.0


def test_hnn_conditioned_on_omega_from_a_file_predicts_held_out_frequencies():
    (row,) = hnn_case(quick_mode=False)
    # held-out trajectories (their ω never seen in training) within a few percent to T = 10
    assert row["relative_error_median"] <= 2e-2
    assert row["relative_error_max"] <= 5e-2
