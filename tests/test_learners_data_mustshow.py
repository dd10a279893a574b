"""Issue 14's must-show runs at full size (slow: a few CPU minutes each; ``pytest -m slow``).

They run ``benchmarks/bench_sympflow_data.py``'s experiments — the published supervised Hénon–Heiles
setting with symflow's tuned settings, and the demo, whose SympFlow is trained from the same file as
its HNN — and assert the issue's thresholds. Training time is asserted in CPU seconds of one thread:
the machine these run on is shared, so wall time measures the neighbours as much as the code.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.bench_sympflow_data import (
    PUBLISHED,
    demo_experiment,
    published_data,
    published_metrics,
    train_published,
)

pytestmark = pytest.mark.slow


def test_sympflow_from_the_published_supervised_data_beats_the_authors_figures_in_under_160_cpu_seconds(
    tmp_path,
):
    torch.set_num_threads(1)
    data = published_data(tmp_path / "published.h5")
    result = train_published("tuned", data, tmp_path / "run")
    metrics = published_metrics(result.model)
    s = result.summary
    assert s["train_mse"] <= PUBLISHED["train_mse"]
    for t, theirs in PUBLISHED["relative_error"].items():
        assert metrics["relative_error"][t] <= theirs, t
    assert metrics["max_energy_error"] <= PUBLISHED["max_energy_error"]
    assert s["train_cpu_seconds"] < 160


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_experiment(out=tmp_path_factory.mktemp("demo") / "demo")


def test_demo_sympflow_from_data_has_no_energy_drift_and_recovers_h_in_under_300_cpu_seconds(demo):
    d = demo
    assert d["heldout_trajectories"] >= 10
    assert d["sympflow_energy_horizon"] == 1000.0 and d["sympflow_energy_drift_exponent_median"] < 0.5
    assert d["sympflow_hamiltonian_relative_rms"] < 0.01
    assert d["sympflow_train_cpu_seconds"] < 300


@pytest.mark.xfail(
    strict=True,
    reason="met against the adjoint-trained HNN (0.0049 vs 0.034); since issue 15's pair/L-BFGS HNN the "
    "HNN is ahead on the demo's held-out trajectories (0.0049 vs 0.0043 on the last full run)",
)
def test_demo_sympflow_from_data_beats_the_hnn_on_held_out_trajectories(demo):
    assert demo["sympflow_heldout_error_rms_median"] < demo["hnn_heldout_error_rms_median"]
