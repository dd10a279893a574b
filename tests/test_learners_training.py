"""Training runs from a system: residual goes down, run directories, load_model, bit-for-bit resume,
the published code's options (time range, clipping, one-cycle, best checkpoint), CLI."""

from __future__ import annotations

import json

import pytest
import torch

from symflow.cli.main import main
from symflow.integrators.errors import InvalidArgumentError
from symflow.learners import FlowMapPINN, load_model, train_pinn, train_sympflow
from symflow.training import RunDirectoryError

TINY = {
    "collocation": 64,
    "lbfgs_points": 128,
    "lbfgs_iterations": 3,
    "validation_points": 128,
    "progress": False,
    "log_every": 1,
    "validate_every": 10,
}
QUICK_EVAL = {"horizon": 2.0, "energy_horizon": 4.0, "eval_samples": 3}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_training_lowers_the_residual_and_writes_a_complete_run(tmp_path):
    result = train_sympflow(
        "harmonic_oscillator",
        dt=0.5,
        energy_max=0.5,
        layers=2,
        width=6,
        adam_steps=40,
        lbfgs_steps=2,
        run_dir=tmp_path / "run",
        **TINY,
        **QUICK_EVAL,
    )
    run = tmp_path / "run"
    for name in (
        "config.json",
        "metrics.jsonl",
        "summary.json",
        "trajectory.png",
        "energy.png",
        "hamiltonian.png",
    ):
        assert (run / name).exists(), name
    assert (run / "checkpoints" / "manifest.json").exists()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 43))
    val = [r["val_residual"] for r in records if "val_residual" in r]
    assert val[-1] < 0.1 * records[0]["loss"]  # held-out residual at the end vs the untrained loss
    summary = json.loads((run / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result.summary))
    for key in ("residual_mse", "rollout_error_max", "energy_error_max", "a_posteriori", "train_cpu_seconds"):
        assert key in summary
    bound = summary["a_posteriori"]
    assert bound["true_error_max"] <= bound["beta_epsilon_dense_max"]  # HO: L = 1 exactly
    config = json.loads((run / "config.json").read_text())
    assert config["learner"] == "sympflow" and config["domain"]["kind"] == "sublevel"
    assert config["model"]["layers"] == 2 and config["parameters"] == result.model.num_parameters()
    assert config["options"]["layers"] == 2 and config["options"]["energy_max"] == 0.5


def test_load_model_rebuilds_the_trained_model_from_the_run_directory(tmp_path):
    result = train_pinn(
        "harmonic_oscillator",
        kind="flow",
        dt=0.5,
        width=8,
        adam_steps=5,
        run_dir=tmp_path,
        evaluate=False,
        **TINY,
    )
    loaded = load_model(tmp_path)
    assert isinstance(loaded, FlowMapPINN) and not loaded.training
    x = torch.randn(4, 2)
    assert torch.equal(loaded(0.3, x), result.model(0.3, x))


def _run(path, lbfgs_steps, resume=False, **extra):
    return train_sympflow(
        "henon_heiles",
        dt=1.0,
        energy_max=1 / 12,
        layers=2,
        width=5,
        adam_steps=6,
        lbfgs_steps=lbfgs_steps,
        lbfgs_resample=2,
        checkpoint_every=3,
        run_dir=path,
        resume=resume,
        evaluate=False,
        **{**TINY, **extra},
    )


def test_resume_through_both_optimiser_phases_reproduces_an_uninterrupted_run_bit_for_bit(tmp_path):
    straight = _run(tmp_path / "a", lbfgs_steps=4)
    _run(tmp_path / "b", lbfgs_steps=1)  # stops inside the L-BFGS phase, mid resample window
    resumed = _run(tmp_path / "b", lbfgs_steps=4, resume=True)
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)
    losses = [
        [json.loads(line)["loss"] for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
        for d in ("a", "b")
    ]
    assert losses[0] == losses[1] and len(losses[0]) == 10


def test_resume_refuses_a_run_with_a_different_problem(tmp_path):
    _run(tmp_path, lbfgs_steps=0)
    with pytest.raises(InvalidArgumentError, match="started with"):
        train_sympflow(
            "henon_heiles",
            dt=0.5,
            energy_max=1 / 12,
            layers=2,
            width=5,
            adam_steps=6,
            run_dir=tmp_path,
            resume=True,
            evaluate=False,
            **TINY,
        )
    with pytest.raises(RunDirectoryError, match="--resume"):
        _run(tmp_path, lbfgs_steps=0)


def test_cli_trains_resumes_and_reports_mistakes_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    common = [
        "--system", "harmonic_oscillator", "--dt", "0.5", "--energy-max", "0.5", "--out", str(out),
        "--collocation", "32", "--lbfgs-points", "64", "--lbfgs-iterations", "2", "--no-progress",
        "--horizon", "1", "--energy-horizon", "2", "--eval-samples", "2", "--layers", "1", "--width", "4",
        "--no-plots",
    ]  # fmt: skip
    assert main(["train", "sympflow", *common, "--steps", "4"]) == 0
    printed = capsys.readouterr().out
    assert "residual" in printed and "summary.json" in printed
    assert main(["train", "sympflow", *common, "--steps", "4", "--lbfgs-steps", "1", "--resume"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 5
    assert main(["train", "sympflow", *common, "--steps", "4"]) == 1
    err = capsys.readouterr().err
    assert "--resume" in err and "Traceback" not in err
    assert main(["train", "sympflow", *[c if c != "harmonic_oscillator" else "henon_heils" for c in common],
                 "--steps", "1", "--overwrite"]) == 1  # fmt: skip
    assert "did you mean 'henon_heiles'" in capsys.readouterr().err


def test_cli_trains_the_pinn_learners(tmp_path, capsys):
    ivp = tmp_path / "ivp"
    args = ["train", "pinn", "--kind", "ivp", "--system", "harmonic_oscillator", "--x0", "1,0",
            "--t-end", "2", "--steps", "5", "--out", str(ivp), "--no-progress", "--width", "6"]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((ivp / "summary.json").read_text())
    assert (
        summary["learner"] == "pinn_ivp" and "a_posteriori" in summary and (ivp / "trajectory.png").exists()
    )
    flow = tmp_path / "flow"
    assert main(["train", "pinn", "--system", "harmonic_oscillator", "--dt", "0.5", "--steps", "3",
                 "--out", str(flow), "--no-progress", "--no-plots", "--width", "6", "--horizon", "1",
                 "--energy-horizon", "1", "--eval-samples", "2", "--constraint", "tfc",
                 "--param", "omega=2.0"]) == 0  # fmt: skip
    assert isinstance(load_model(flow), FlowMapPINN)
    assert json.loads((flow / "config.json").read_text())["system"]["args"]["omega"] == 2.0
    assert main(["train", "pinn", "--kind", "ivp", "--system", "harmonic_oscillator", "--out",
                 str(tmp_path / "x"), "--steps", "1"]) == 1  # fmt: skip
    assert "--x0" in capsys.readouterr().err
    assert main(["train", "pinn", "--system", "harmonic_oscillator", "--out", str(tmp_path / "y"),
                 "--param", "omega"]) == 1  # fmt: skip
    assert "--param 'omega'" in capsys.readouterr().err
