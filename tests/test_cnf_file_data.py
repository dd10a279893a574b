"""``symflow train cnf --data FILE.h5``: the phase-space ensemble of a trajectory file."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from symflow.cli.main import main
from symflow.cnf.file_data import is_file_data, load_file_ensemble
from symflow.data import simulate
from symflow.integrators import InvalidArgumentError


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    path = tmp_path_factory.mktemp("ens") / "ho.h5"
    simulate("harmonic_oscillator", 40, 2.0, output=path, n_obs=6, progress=False)
    return path


def test_the_ensemble_is_every_valid_state_of_the_successful_trajectories(ensemble, tmp_path):
    with h5py.File(ensemble, "r") as f:
        y = f["y"][()]
    ens = load_file_ensemble(ensemble)
    np.testing.assert_array_equal(ens.points.numpy(), y.reshape(-1, 2))
    first = load_file_ensemble(ensemble, time_index=0)
    np.testing.assert_array_equal(first.points.numpy(), y[:, 0])
    # A failed solve is left out (its status says so).
    broken = tmp_path / "broken.h5"
    broken.write_bytes(ensemble.read_bytes())
    with h5py.File(broken, "r+") as f:
        f["status"][3] = 1  # max_steps
    assert load_file_ensemble(broken, time_index=0).points.shape == (39, 2)
    train, test = ens.split(10_000, 50, seed=1, dtype=torch.float64)
    assert train.shape == (192, 2) and test.shape == (48, 2)  # held-out: at most 20 %
    both = torch.cat([train, test])
    assert torch.unique(both, dim=0).shape[0] == 240  # disjoint, nothing dropped
    with pytest.raises(InvalidArgumentError, match="at least 10"):
        load_file_ensemble(ensemble, time_index=6)


def test_cli_trains_a_cnf_on_a_trajectory_file(ensemble, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "cnf", "--data", str(ensemble), "--steps", "2", "--hidden", "8", "--no-plots",
            "--objective", "flow_matching", "--test-size", "30", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert np.isfinite(printed["held_out_nll"]) and "held_out_exact_nll" not in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_size"] == 30 and summary["train_size"] == 210
    config = json.loads((out / "config.json").read_text())["cli"]
    assert config["data_params"]["points"] == 240 and len(config["data_params"]["points_sha256"]) == 64
    assert main([*argv[:-2], "--data-param", "time_index=0", "-o", str(tmp_path / "t0")]) == 0
    capsys.readouterr()
    assert main(["train", "cnf", "--data", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "m")]) == 1
    assert "No such file" in capsys.readouterr().err
    assert main([*argv[:-2], "--data-param", "noise=0.1", "-o", str(tmp_path / "n")]) == 1
    assert "time_index" in capsys.readouterr().err


def test_toy_names_are_not_mistaken_for_files():
    assert not is_file_data("two_moons") and is_file_data("runs/x.h5") and is_file_data("x.hdf5")
