"""The learner examples run end to end in their quick mode."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, argv: list[str]):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    try:
        return module.main(argv)
    finally:
        torch.set_num_threads(threads)  # the examples pin one thread


def test_sympflow_oscillator_example_quick(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMFLOW_PROGRESS", "0")
    summary = run_example("sympflow_oscillator", ["--quick", "--out", str(tmp_path)])
    assert summary["residual_mse"] < 1e-3 and summary["rollout_error_max"] < 0.1
    for name in ("trajectory.png", "energy.png", "hamiltonian.png", "summary.json"):
        assert (tmp_path / name).stat().st_size > 0


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_sympflow_henon_heiles_example_quick(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMFLOW_PROGRESS", "0")
    out = run_example("sympflow_henon_heiles", ["--quick", "--out", str(tmp_path)])
    assert set(out) == {"SympFlow", "flow-map PINN"}
    assert (tmp_path / "energy_comparison.png").exists() and (tmp_path / "trajectory_comparison.png").exists()
    assert (tmp_path / "sympflow" / "summary.json").exists() and (tmp_path / "pinn" / "summary.json").exists()
