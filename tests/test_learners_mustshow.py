"""The issue's must-show runs (slow: CPU minutes each; `make test-all` or `pytest -m slow`).

They train the named configurations of :mod:`symflow.learners.experiments` — the same ones
``benchmarks/bench_sympflow.py`` records — and assert the issue's thresholds.
"""

from __future__ import annotations

import pytest

from symflow.learners import train_flow_map
from symflow.learners.experiments import experiment

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def train(name: str):
    config = experiment(name)
    return train_flow_map(config.pop("system"), **config, progress=False, plots=False).summary


def test_oscillator_unsupervised_reaches_residual_1e5_and_error_1e2_at_t100_within_3_cpu_minutes():
    s = train("oscillator")
    assert s["residual_mse"] <= 1e-5
    assert s["horizon"] == 100.0 and s["rollout_error_max"] <= 1e-2
    assert s["train_cpu_seconds"] < 180


# Two trainings (SympFlow ≈ 510 and the flow-map PINN ≈ 106 CPU seconds in the recorded benchmark) and
# rollouts to T = 1000: past the suite's 600 s per-test limit, which stopped it before any assertion.
@pytest.mark.timeout(1800)
def test_henon_heiles_sympflow_energy_error_stays_bounded_while_the_flow_map_pinn_drifts():
    sympflow = train("henon_heiles")
    pinn = train("henon_heiles_pinn")
    assert sympflow["energy_horizon"] == pinn["energy_horizon"] == 1000.0
    # SympFlow: max relative energy error ≤ 1e-2 over T = 1000 and no secular growth.
    assert sympflow["energy_error_max"] <= 1e-2
    assert sympflow["energy_error_late_max"] <= 1.5 * sympflow["energy_error_early_max"]
    assert abs(sympflow["energy_error_slope"]) * 1000 <= 0.1 * sympflow["energy_error_max"]
    # The unconstrained flow map drifts: its error keeps growing and ends far above SympFlow's.
    assert pinn["energy_error_late_max"] >= 3 * pinn["energy_error_early_max"]
    assert pinn["energy_error_slope"] > 0
    assert pinn["energy_error_max"] >= 10 * sympflow["energy_error_max"]
    # Trajectory error against the gl6 reference at T = 10 (reported in the benchmark).
    assert sympflow["horizon"] == 10.0 and sympflow["rollout_error_max"] <= 2e-2
