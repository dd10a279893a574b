"""Flow maps trained from trajectory data: sources, split, pairs, learning, evaluation, resume, CLI,
diagnose, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from symflow.cli.main import main
from symflow.data import (
    TrajectoryDataset,
    collate_trajectories,
    simulate,
    split_by_trajectory,
    write_trajectories,
)
from symflow.integrators.errors import InvalidArgumentError
from symflow.learners import (
    SympFlow,
    UnusableDataError,
    load_model,
    load_trajectory_data,
    split_trajectories,
    train_pinn,
    train_sympflow,
    trajectory_loss,
    trajectory_pairs,
)
from symflow.systems import get_system

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "layers": 1,
    "width": 4,
    "batch_size": 64,
    "lbfgs_points": 64,
    "lbfgs_iterations": 2,
    "progress": False,
    "log_every": 1,
    "validate_every": 2,
    "energy_horizon": 20.0,
    "eval_samples": 3,
}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """24 irregularly observed, noisy trajectories of a two-dimensional oscillator (the demo's kind of
    data, small; its exact flow keeps the evaluation's reference cheap)."""
    path = tmp_path_factory.mktemp("data") / "osc.h5"
    simulate(
        "coupled_oscillators", 24, 6.0, output=path, sampling="irregular", n_obs=12, noise=1e-3, seed=3,
        progress=False,
    )  # fmt: skip
    return path


def _oscillator(n=30, steps=13, t_end=3.0, seed=0):
    """Exact harmonic-oscillator trajectories on a shared regular grid, as tensors."""
    ho = get_system("harmonic_oscillator")
    x0 = ho.sample(n, seed=seed)
    ts = torch.linspace(0.0, t_end, steps)
    return ts, ho.flow(ts.expand(n, steps), x0[:, None, :])


def _write(path, ts, ys, **attrs):
    return write_trajectories(path, ts.numpy(), ys.numpy(), attrs=attrs or None, overwrite=True)


@pytest.mark.parametrize("device", DEVICES)
def test_a_run_from_a_file_writes_the_split_the_evaluation_and_the_figures(data_file, tmp_path, device):
    run = tmp_path / "run"
    result = train_sympflow(data=data_file, adam_steps=8, lbfgs_steps=1, run_dir=run, device=device, **TINY)
    for name in (
        "config.json",
        "metrics.jsonl",
        "summary.json",
        "heldout.png",
        "energy.png",
        "hamiltonian.png",
    ):
        assert (run / name).exists(), name
    config = json.loads((run / "config.json").read_text())
    split = config["data"]["split"]
    assert sorted(split["train"] + split["val"] + split["test"]) == list(range(24))
    assert len(split["test"]) == len(split["val"]) == 2  # 10% of 24, rounded
    assert config["system"]["name"] == "coupled_oscillators"
    assert config["options"]["data"] == str(data_file) and config["data"]["pairs"]["train"] > 0
    s = json.loads((run / "summary.json").read_text())
    assert s == json.loads(json.dumps(result.summary))
    assert s["heldout"]["trajectories"] == 2 and s["heldout"]["observations"] == 22
    assert set(s["error_at"]) == {"1", "10", "100"}
    for key in ("energy_error_max", "energy_error_drift_exponent_max", "symplecticity_defect_max", "val_mse"):
        assert math.isfinite(s[key]), key
    assert s["symplecticity_defect_max"] < 1e-12  # SympFlow: exactly symplectic in float64
    rec = s["hamiltonian_recovery"]
    assert {"slope", "offset", "relative_rms", "unit_slope_relative_rms"} <= set(rec)
    assert "skipped" not in s
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 10)) and "val_loss" in records[1]


def test_a_file_a_dataset_and_tensors_train_the_same_model(data_file):
    ds = TrajectoryDataset(data_file)
    batch = collate_trajectories([ds[i] for i in range(len(ds))])
    opts = {**TINY, "adam_steps": 4, "evaluate": False}
    runs = [
        train_sympflow(data=data_file, **opts),
        train_sympflow(data=ds, **opts),
        train_sympflow(data=(batch.ts, batch.ys, batch.mask), **opts),
    ]
    fingerprints = {r.config["data"]["fingerprint"] for r in runs}
    assert len(fingerprints) == 1 and runs[2].config["data"]["kind"] == "tensors"
    assert runs[0].config["data"]["split"] == runs[2].config["data"]["split"]
    for other in runs[1:]:
        for a, b in zip(runs[0].model.parameters(), other.model.parameters()):
            assert torch.equal(a, b)


def test_the_split_is_seeded_disjoint_and_its_test_set_is_held_out_of_a_node_run_on_the_same_seed(data_file):
    data = load_trajectory_data(data_file)
    a = split_trajectories(data, val_fraction=0.2, test_fraction=0.1, seed=5)
    b = split_trajectories(data, val_fraction=0.2, test_fraction=0.1, seed=5)
    c = split_trajectories(data, val_fraction=0.2, test_fraction=0.1, seed=6)
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("train", "val", "test"))
    assert not np.array_equal(a.test, c.test)
    assert (
        set(a.train).isdisjoint(a.val) and set(a.train).isdisjoint(a.test) and set(a.val).isdisjoint(a.test)
    )
    assert len(a.train) + len(a.val) + len(a.test) == 24
    _, node_val = split_by_trajectory(24, 0.2, seed=5)  # what `symflow train node` holds out
    assert set(a.test) <= set(node_val)


def test_pairs_all_and_first_and_composition_beyond_dt():
    ts, ys = _oscillator(n=3, steps=7, t_end=3.0)  # spacing 0.5
    all_pairs = trajectory_pairs(ts, ys, horizon=1.0)
    assert len(all_pairs) == 3 * (6 + 5)  # gaps 0.5 and 1.0
    first = trajectory_pairs(ts, ys, horizon=1.0, anchors="first")
    assert len(first) == 3 * 2 and torch.equal(first.start, ys[first.trajectory, 0])
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[:, 0] = False  # the first observation is the second entry
    first = trajectory_pairs(ts, ys, mask, horizon=3.0, anchors="first")
    assert torch.equal(first.start, ys[first.trajectory, 1]) and len(first) == 3 * 5
    model = SympFlow(1, dt=0.5, layers=1, width=3)
    long = trajectory_pairs(ts, ys, horizon=2.0)
    assert float(long.gap.max()) == 2.0
    loss = trajectory_loss(model, long)
    expected = (model.flow(long.gap, long.start) - long.end).pow(2).sum(-1).mean()
    assert torch.allclose(loss, expected)
    loss.backward()  # differentiable through the composition
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_sympflow_learns_an_oscillator_flow_from_data_and_recovers_its_hamiltonian(tmp_path):
    ts, ys = _oscillator(n=30, steps=13)
    path = _write(tmp_path / "ho.h5", ts, ys, system="harmonic_oscillator", system_args={"omega": 1.0})
    result = train_sympflow(
        data=path, dt=0.5, layers=2, width=8, adam_steps=80, lbfgs_steps=4, batch_size=128, lbfgs_points=512,
        lbfgs_iterations=10, lr=1e-2, horizon=3.0, energy_horizon=500.0, progress=False, plots=False,
    )  # fmt: skip
    s = result.summary
    assert s["train_mse"] < 1e-4 and s["val_mse"] < 2e-4
    assert s["heldout"]["error_rms_median"] < 0.05  # untrained: ~0.5
    rec = s["hamiltonian_recovery"]
    assert abs(rec["slope"] - 1) < 0.1 and rec["relative_rms"] < 0.05
    assert s["energy_error_drift_exponent_max"] < 0.5


def test_pinn_from_data_reports_why_it_has_no_learned_hamiltonian(data_file):
    s = train_pinn(
        data=data_file,
        width=6,
        adam_steps=3,
        **{k: v for k, v in TINY.items() if k not in ("layers", "width")},
    ).summary
    assert "heldout" in s and "energy_error_max" in s and s["symplecticity_defect_max"] > 1e-6
    assert "no learned Hamiltonian" in s["skipped"]["hamiltonian_recovery"]


def test_resume_from_data_through_both_phases_reproduces_an_uninterrupted_run_bit_for_bit(
    data_file, tmp_path
):
    opts = {**TINY, "adam_steps": 7, "lbfgs_steps": 3, "lbfgs_resample": 2, "checkpoint_every": 2,
            "evaluate": False, "keep_best": True, "schedule": "onecycle", "grad_clip": 0.5}  # fmt: skip
    straight = train_sympflow(data=data_file, run_dir=tmp_path / "a", **opts)
    train_sympflow(data=data_file, run_dir=tmp_path / "b", stop_at=5, **opts)  # mid-epoch, in Adam
    train_sympflow(data=data_file, run_dir=tmp_path / "b", stop_at=8, resume=True, **opts)  # in L-BFGS
    resumed = train_sympflow(data=data_file, run_dir=tmp_path / "b", resume=True, **opts)
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)
    logs = [(tmp_path / d / "metrics.jsonl").read_text().splitlines() for d in "ab"]
    strip = [[{k: v for k, v in json.loads(x).items() if k != "elapsed_s"} for x in log] for log in logs]
    assert strip[0] == strip[1] and len(strip[0]) == 10
    assert straight.summary["best_step"] == resumed.summary["best_step"]


def test_resume_refuses_other_data(data_file, tmp_path):
    opts = {**TINY, "adam_steps": 2, "evaluate": False}
    train_sympflow(data=data_file, run_dir=tmp_path / "run", **opts)
    other = tmp_path / "other.h5"
    simulate("coupled_oscillators", 24, 6.0, output=other, sampling="irregular", n_obs=12, noise=1e-3, seed=4,
             progress=False)  # fmt: skip
    with pytest.raises(InvalidArgumentError, match="started with"):
        train_sympflow(data=other, run_dir=tmp_path / "run", resume=True, **opts)


def test_bad_inputs_are_refused_before_training_in_one_line(tmp_path, capsys, data_file):
    ts = torch.zeros(5, 1)
    ys = torch.randn(5, 1, 4)
    single = write_trajectories(
        tmp_path / "single.h5", ts.numpy(), ys.numpy(), attrs={"system": "coupled_oscillators"}
    )
    out = tmp_path / "run"
    assert main(["train", "sympflow", "--data", str(single), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert (
        "0 of 5 trajectories have at least two observations (5 have only one)" in err
        and "Traceback" not in err
    )
    assert not (out / "checkpoints").exists()
    ts2, ys2 = _oscillator(n=2, steps=5)
    two = _write(tmp_path / "two.h5", ts2, ys2, system="harmonic_oscillator")
    with pytest.raises(UnusableDataError, match=r"2 of 2 trajectories .* needs at least 3"):
        train_sympflow(data=two, evaluate=False, progress=False)
    assert (
        main(["train", "sympflow", "--data", str(data_file), "--system", "henon_heiles", "--out", str(out)])
        == 1
    )
    assert "not both" in capsys.readouterr().err
    assert (
        main(["train", "sympflow", "--data", str(data_file), "--energy-max", "0.1", "--out", str(out)]) == 1
    )
    assert "energy_max" in capsys.readouterr().err
    assert (
        main(["train", "sympflow", "--data", str(data_file), "--pair-horizon", "1e-6", "--out", str(out)])
        == 1
    )
    assert "smallest gap between consecutive observations" in capsys.readouterr().err
    assert main(["train", "sympflow", "--data", str(tmp_path / "missing.h5"), "--out", str(out)]) == 1
    assert "missing.h5" in capsys.readouterr().err


def test_a_file_naming_an_unknown_system_trains_and_says_why_the_true_energy_was_skipped(tmp_path, capsys):
    ts, ys = _oscillator(n=12, steps=13)  # spacing 0.25: observations at t0 + Δt
    path = _write(tmp_path / "odd.h5", ts, ys, system="harmonic_oscilator")
    out = tmp_path / "run"
    args = ["train", "sympflow", "--data", str(path), "--out", str(out), "--steps", "3", "--layers", "1",
            "--width", "3", "--dt", "0.5", "--energy-horizon", "10", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "skipped true energy" in printed and "harmonic_oscilator" in printed
    s = json.loads((out / "summary.json").read_text())
    assert "did you mean 'harmonic_oscillator'" in s["skipped"]["true_energy"]
    assert "learned_energy_drift_max" in s and "energy_error_max" not in s
    assert "error_at" in s  # the regular grid has observations at t0 + Δt exactly
    config = json.loads((out / "config.json").read_text())
    assert config["system"] is None and "harmonic_oscilator" in config["system_note"]
    assert main(["diagnose", str(out), "--orbits", "2", "--t-end", "2", "-o", str(tmp_path / "d")]) == 1
    assert "--system" in capsys.readouterr().err


def test_cli_trains_both_learners_from_data_resumes_and_diagnose_finds_the_system(
    data_file, tmp_path, capsys
):
    out = tmp_path / "sf"
    common = ["--data", str(data_file), "--out", str(out), "--layers", "1", "--width", "3", "--batch-size",
              "64",
              "--energy-horizon", "10", "--eval-samples", "2", "--eval-multiples", "1", "10",
              "--no-progress", "--no-plots"]  # fmt: skip
    assert main(["train", "sympflow", *common, "--steps", "3"]) == 0
    printed = capsys.readouterr().out
    assert "held-out trajectory error" in printed and "learned H̃ vs true H" in printed
    assert main(["train", "sympflow", *common, "--steps", "3", "--lbfgs-steps", "1", "--resume"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 4 and set(summary["error_at"]) == {"1", "10"}
    capsys.readouterr()
    diag = tmp_path / "diag"
    assert main(["diagnose", str(out), "--orbits", "2", "--t-end", "3", "--samples", "7", "-o", str(diag),
                 "--quiet"]) == 0  # fmt: skip
    report = json.loads((diag / "report.json").read_text())
    assert report["input"]["system"] == "coupled_oscillators"
    pinn = tmp_path / "pinn"
    assert main(["train", "pinn", "--data", str(data_file), "--out", str(pinn), "--width", "4", "--steps",
                 "2",
                 "--energy-horizon", "5", "--no-progress", "--no-plots"]) == 0  # fmt: skip
    assert load_model(pinn).learner == "pinn"


@pytest.mark.parametrize("device", DEVICES)
def test_hamiltonian_matching_and_the_ivp_pinn_train_on_the_device_asked_for(device, tmp_path):
    run = train_sympflow(
        "harmonic_oscillator", dt=0.5, layers=1, width=3, adam_steps=3, lbfgs_steps=1, collocation=16,
        lbfgs_points=16, lbfgs_iterations=2, validation_points=16, eval_samples=2, horizon=1.0,
        energy_horizon=2.0, device=device, run_dir=tmp_path / "s", progress=False,
    )  # fmt: skip
    assert math.isfinite(run.summary["residual_mse"]) and run.config["options"]["device"] == device
    ivp = train_pinn(
        "harmonic_oscillator", kind="ivp", x0=[1.0, 0.0], t_end=1.0, width=4, adam_steps=2, collocation=16,
        device=device, run_dir=tmp_path / "i", progress=False,
    )  # fmt: skip
    assert math.isfinite(ivp.summary["error_max"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_a_cuda_device_without_cuda_is_refused_in_one_line(tmp_path, capsys):
    args = [
        "train",
        "sympflow",
        "--system",
        "harmonic_oscillator",
        "--device",
        "cuda",
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 1
    assert "no CUDA device" in capsys.readouterr().err
    with pytest.raises(InvalidArgumentError, match="device"):
        train_sympflow("harmonic_oscillator", device="tpu")


@pytest.mark.gpu
def test_training_pairs_are_built_on_the_data_device():
    ts, ys = _oscillator(n=3, steps=7)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[0, 5:] = False
    pairs = trajectory_pairs(ts.cuda(), ys.cuda(), mask.cuda(), horizon=1.0)  # torch.where with a 0-d fill
    assert pairs.gap.device.type == "cuda" and len(pairs) == 2 * 11 + 7
