"""Every mistake reaches the user as one line through the real ``symflow`` entry point, before any work,
and no command returns a wrong answer without a word: option ranges, devices, outputs that are
files, resumes with changed options, data a learner cannot learn from, failed trajectories."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from symflow.cli import main
from symflow.data import simulate, write_trajectories

NO_CUDA = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def hh_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "hh.h5"
    simulate("henon_heiles", 8, 2.0, output=path, n_obs=6, seed=3, progress=False)
    return path


def one_line_error(capsys, argv: list[str]) -> str:
    rc = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert rc == 1, (rc, captured.out[-500:], captured.err[-2000:])
    assert lines and lines[0].startswith("symflow ") and "Traceback" not in captured.err, captured.err
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].startswith("(add --debug")), captured.err
    return lines[0]


NODE = ["train", "node", "--steps", "2", "--width", "8", "--batch-size", "2", "--window", "3", "--quiet"]


# ---- numeric options out of range: refused before any work ----------------------------------------------
@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--grad-clip", "-1"),
        ("--grad-clip", "0"),
        ("--grad-clip", "nan"),
        ("--lr", "0"),
        ("--lr", "inf"),
        ("--weight-decay", "-0.1"),
        ("--rtol", "0"),
        ("--atol", "-1e-8"),
        ("--dt", "0"),
        ("--input-scale", "0"),
        ("--width", "0"),
        ("--depth", "0"),
        ("--val-fraction", "1"),
        ("--seed", "-1"),
        ("--warm-start", "-5"),
        ("--device", "banana"),
        pytest.param("--device", "cuda", marks=pytest.mark.skipif(not NO_CUDA, reason="CUDA present")),
        ("--method", "dopri55"),
    ],
)
def test_train_node_refuses_bad_options_before_any_work(hh_file, tmp_path, capsys, option, value):
    out = tmp_path / "run"
    line = one_line_error(capsys, [*NODE, "--data", str(hh_file), "-o", str(out), f"{option}={value}"])
    assert option in line or option.lstrip("-").replace("-", "_") in line or "method" in line
    assert not out.exists(), "the run directory was created before the options were checked"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--lr", "-1"),
        ("--rtol", "0"),
        ("--atol", "-1"),
        ("--dt", "0"),
        ("--kinetic", "-1"),
        ("--jacobian", "-0.5"),
        ("--sigma-min", "0"),
        ("--sigma-min", "1"),
        ("--validate-every", "0"),
        ("--seed", "-2"),
    ],
)
def test_train_cnf_refuses_bad_options_before_any_work(tmp_path, capsys, option, value):
    out = tmp_path / "run"
    argv = ["train", "cnf", "--steps", "1", "--train-size", "32", "--test-size", "16", "--no-plots"]
    line = one_line_error(capsys, [*argv, "-o", str(out), f"{option}={value}"])
    assert option in line
    assert not out.exists()


@pytest.mark.parametrize("learner", ["sympflow", "pinn"])
@pytest.mark.parametrize(
    ("option", "value"),
    [("--lr", "-1"), ("--lr-final", "0"), ("--dt", "0"), ("--collocation", "0"), ("--checkpoint-every", "0")],
)
def test_learner_commands_refuse_bad_options_before_any_work(tmp_path, capsys, learner, option, value):
    out = tmp_path / "run"
    argv = ["train", learner, "--system", "pendulum", "--steps", "1", "--no-plots", "--quiet", "-o", str(out)]
    assert option in one_line_error(capsys, [*argv, f"{option}={value}"])
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "word"),
    [
        (["--device", "banana"], "device"),
        pytest.param(["--device", "cuda"], "CUDA", marks=pytest.mark.skipif(not NO_CUDA, reason="CUDA")),
        (["--dt", "0.1"], "dt"),  # dopri5 is adaptive: a step size is an option of the other kind
        (["--method", "rk4", "--dt", "0.1", "--rtol", "1e-6"], "rtol"),
        (["--t-end", "-1"], "t_end"),
        (["--t-end", "nan"], "t_end"),
        (["--n-obs", "0"], "n_obs"),
        (["--noise", "-1"], "noise"),
        (["--energy", "nan"], "energy"),
        (["--seed", "-1"], "seed"),
        (["--max-steps", "0"], "max_steps"),
    ],
)
def test_simulate_refuses_bad_options_before_any_work(tmp_path, capsys, extra, word):
    out = tmp_path / "x.h5"
    line = one_line_error(
        capsys, ["simulate", "pendulum", "--n", "2", "--no-progress", "-o", str(out), *extra]
    )
    assert word in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("extra", "word"),
    [
        (["--dt", "-0.1", "--method", "rk4"], "--dt"),
        (["--rtol", "0"], "--rtol"),
        (["--atol", "-1"], "--atol"),
        (["--energy", "nan"], "--energy"),
        (["--seed", "-1"], "--seed"),
        (["--t-end", "inf"], "--t-end"),
    ],
)
def test_diagnose_refuses_bad_options_before_any_work(tmp_path, capsys, extra, word):
    out = tmp_path / "rep"
    line = one_line_error(capsys, ["diagnose", "--system", "pendulum", "-o", str(out), "--quiet", *extra])
    assert word in line
    assert not out.exists()


# ---- outputs that are files ------------------------------------------------------------------------------
def test_an_output_that_is_an_existing_file_is_one_line_everywhere(hh_file, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    for argv in (
        [*NODE, "--data", str(hh_file), "-o", str(taken)],
        ["train", "cnf", "--steps", "1", "--train-size", "32", "--test-size", "16", "-o", str(taken)],
        ["diagnose", str(hh_file), "-o", str(taken), "--quiet", "--orbits", "2", "--t-end", "1"],
    ):
        line = one_line_error(capsys, argv)
        assert str(taken) in line and "not a directory" in line
    assert taken.read_text() == "keep me"


# ---- resume with changed options -------------------------------------------------------------------------
def test_resume_with_changed_model_options_is_refused_and_keeps_the_config(hh_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*NODE, "--data", str(hh_file), "-o", str(out), "--no-eval"]) == 0
    before = (out / "config.json").read_text()
    capsys.readouterr()
    line = one_line_error(
        capsys, [*NODE[:-1], "--width", "9", "--quiet", "--data", str(hh_file), "-o", str(out), "--resume"]
    )
    assert "width" in line and "--resume" in line
    assert (out / "config.json").read_text() == before
    # A longer run of the same model is allowed.
    argv = [*NODE, "--data", str(hh_file), "-o", str(out), "--resume", "--steps", "3", "--no-eval"]
    assert main(argv) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 3


# ---- data a learner cannot learn from ----------------------------------------------------------------
def test_trajectories_of_one_observation_cannot_train_a_node(tmp_path, capsys):
    path = write_trajectories(
        tmp_path / "one.h5", np.zeros(1), np.random.default_rng(0).normal(size=(6, 1, 4))
    )
    line = one_line_error(
        capsys, ["train", "node", "--data", str(path), "-o", str(tmp_path / "run"), "--quiet"]
    )
    assert "2 observations" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("attrs", "word"),
    [
        ({"system": "henon_heils"}, "did you mean 'henon_heiles'"),
        ({"system": "henon_heiles", "system_args": '{"lamda": 1.0}'}, "did you mean 'lam'"),
        ({"system": "henon_heiles", "system_args": "{lam: 1"}, "system_args"),
    ],
)
def test_a_file_naming_a_bad_system_fails_before_training(hh_file, tmp_path, capsys, attrs, word):
    path = tmp_path / "copy.h5"
    path.write_bytes(hh_file.read_bytes())
    with h5py.File(path, "r+") as f:
        f.attrs.update(attrs)
    out = tmp_path / "run"
    line = one_line_error(capsys, [*NODE, "--data", str(path), "-o", str(out)])
    assert word in line and "--no-eval" in line
    assert not (out / "checkpoints").exists(), "the error came only after training"


def test_diagnose_leaves_failed_trajectories_out_of_the_energy_statistics(tmp_path, capsys):
    from symflow.systems import get_system

    system = get_system("harmonic_oscillator")
    t = np.linspace(0.0, 1.0, 5)
    good = np.stack([np.cos(t), -np.sin(t)], -1)[None].repeat(3, 0)
    bad = good[:1].copy()
    bad[0, 2:] = 50.0  # a solve that failed at step 2 (e.g. max_steps) and left garbage behind
    y = np.concatenate([good, bad])
    status = np.array([0, 0, 0, 1], dtype=np.int8)
    energy = system.energy(torch.from_numpy(y)).numpy()
    path = write_trajectories(
        tmp_path / "f.h5", t, y, status=status, energy=energy, attrs={"system": "harmonic_oscillator"}
    )
    out = tmp_path / "rep"
    assert main(["diagnose", str(path), "-o", str(out), "--quiet", "--orbits", "3", "--t-end", "1"]) == 0
    report = json.loads((out / "report.json").read_text())
    energy_true = report["energy"]["true"]
    assert energy_true["n_samples"] == 3
    assert energy_true["max_error"] < 1e-12
    assert report["input"]["failed_trajectories_skipped"] == 1


# ---- damaged run directories -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def node_run(hh_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main([*NODE, "--data", str(hh_file), "-o", str(out), "--no-eval"]) == 0
    return out


def damaged_copy(run: Path, tmp_path: Path, damage) -> Path:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    damage(copy)
    return copy


def _manifest_edit(**changes):
    def damage(run):
        path = run / "checkpoints" / "manifest.json"
        m = json.loads(path.read_text())
        m.update(changes)
        path.write_text(json.dumps(m))

    return damage


def _manifest_list(run):
    (run / "checkpoints" / "manifest.json").write_text("[1, 2]")


def _wrong_shapes(run):
    from symflow.training import load_checkpoint, save_checkpoint

    ck = load_checkpoint(run / "checkpoints")
    model = dict(ck.state["model"])
    name = next(iter(model))
    model[name] = torch.zeros(3, 3, dtype=model[name].dtype)
    save_checkpoint(run / "checkpoints", {**ck.state, "model": model}, step=ck.step + 1, config=ck.config)


def _payload_without_model(run):
    from symflow.training import load_checkpoint, save_checkpoint

    ck = load_checkpoint(run / "checkpoints")
    state = {k: v for k, v in ck.state.items() if k != "model"}
    save_checkpoint(run / "checkpoints", state, step=ck.step + 1, config=ck.config)


@pytest.mark.parametrize(
    ("damage", "word"),
    [
        (_manifest_list, "JSON object"),
        (_manifest_edit(sha256=None), "sha256"),
        (_manifest_edit(file="../../../escape.pt"), "not a file name inside"),
        (_wrong_shapes, "does not fit"),
        (_payload_without_model, "'model'"),
    ],
)
def test_a_damaged_run_directory_is_one_line_for_diagnose_and_resume(
    node_run, hh_file, tmp_path, capsys, damage, word
):
    run = damaged_copy(node_run, tmp_path, damage)
    argv = ["diagnose", str(run), "-o", str(tmp_path / "rep"), "--quiet", "--orbits", "2", "--t-end", "1"]
    assert word in one_line_error(capsys, argv)
    argv = [*NODE, "--data", str(hh_file), "-o", str(run), "--resume", "--steps", "3", "--no-eval"]
    assert word in one_line_error(capsys, argv)


def test_resume_tolerates_the_truncated_metrics_line_a_kill_leaves(node_run, hh_file, tmp_path):
    def cut(run):
        with open(run / "metrics.jsonl", "a") as fh:
            fh.write('{"step": 3, "loss": 0.1')

    before = [json.loads(line)["step"] for line in (node_run / "metrics.jsonl").read_text().splitlines()]
    run = damaged_copy(node_run, tmp_path, cut)
    argv = [*NODE, "--data", str(hh_file), "-o", str(run), "--resume", "--steps", "3", "--no-eval"]
    assert main(argv) == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [*before, 3]


@pytest.mark.gpu
def test_a_run_resumes_on_the_gpu(hh_file, tmp_path):
    """RNG states must come back as CPU tensors even when the checkpoint is mapped to the GPU."""
    out = tmp_path / "run"
    argv = [*NODE, "--data", str(hh_file), "-o", str(out), "--device", "cuda", "--no-eval"]
    assert main(argv) == 0
    assert main([*argv, "--resume", "--steps", "3"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 3
