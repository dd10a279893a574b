"""The issue's must-show targets for damped systems, on the benchmark's own configurations (slow).

Damped oscillator λ = 0.1 on the doubled phase space, read back with the projection onto the physical
limit, 16 held-out states to T = 100 against the exact damped solution: max state error ≤ 1e-2 and
relative error of the physical energy E(t) ≤ 2% while E(t) > 1e-3 E(0).

The energy target is not met yet (benchmarks/results/damped.json: SympFlow 3.9% with relative
residuals, 13% from data; the flow-map PINN meets it: 1.9%); those assertions are strict xfails, so the day a
configuration meets it the suite says so.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks import bench_damped

pytestmark = pytest.mark.slow

ENERGY_NOT_MET = "energy target (2%) not met: 3.9% at the benchmark budget (docs/damped.md)"


@pytest.fixture(scope="module")
def unsupervised_row():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return bench_damped.unsupervised("sympflow", False, relative=True)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def supervised_row():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return bench_damped.supervised("sympflow", False)
    finally:
        torch.set_num_threads(threads)


def test_sympflow_unsupervised_on_the_doubled_space_tracks_the_exact_damped_solution_to_t100(
    unsupervised_row,
):
    row = unsupervised_row
    assert row["max_error"] <= bench_damped.TARGET_ERROR, row
    # and the projection is what makes it work: the same symplectic map composed without it diverges
    assert row["max_error_no_projection"] > 10 * row["max_error"], row


@pytest.mark.xfail(strict=True, reason=ENERGY_NOT_MET)
def test_sympflow_unsupervised_physical_energy_decays_as_the_exact_one(unsupervised_row):
    assert unsupervised_row["energy_rel_error_max"] <= bench_damped.TARGET_ENERGY, unsupervised_row


def test_sympflow_from_data_in_the_papers_setting_tracks_the_exact_solution(supervised_row):
    row = supervised_row
    assert sum(row["trajectories"].values()) == 50
    assert row["max_error"] <= bench_damped.TARGET_ERROR, row


@pytest.mark.xfail(strict=True, reason="energy target (2%) not met from data: 13% (N = 50, M = 10)")
def test_sympflow_from_data_physical_energy_decays_as_the_exact_one(supervised_row):
    assert supervised_row["energy_rel_error_max"] <= bench_damped.TARGET_ENERGY, supervised_row
