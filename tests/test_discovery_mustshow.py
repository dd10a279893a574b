"""The discovery must-show at full size (slow: a few CPU minutes; `pytest -m slow`).

From 200 irregular, noisy Hénon–Heiles trajectories (50 random observations in [0, 20], σ = 1e-3), the
HNN trained on the CPU (1 thread) in under 10 CPU minutes predicts 64 held-out orbits to T = 10 with a
median relative error below 3% (max below 10%) and a median relative energy error below 0.5%, and its
learned H is within 0.5% (rms / std of H, up to a constant) of the true H — the configuration and
targets of `benchmarks/bench_discovery.py`.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.bench_discovery import CONFIG, DATA, TARGETS, run_case

pytestmark = pytest.mark.slow


def test_hnn_learned_from_noisy_irregular_data_predicts_held_out_orbits():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        row = run_case(CONFIG, DATA, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert row["failed_samples"] == 0
    for key, limit in TARGETS.items():
        assert row[key] < limit, (key, row[key], limit)
