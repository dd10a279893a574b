"""Fault injection: writers and trainers killed (SIGKILL) at seeded random moments and at every step of
a checkpoint save, concurrent writers, SIGTERM from a batch scheduler — and nothing is ever lost: no
half-written file under a final name, an existing file never damaged, every killed run resumes to the
bit-for-bit result of an uninterrupted one.

Writers and trainers are forked from the test process (no interpreter start-up, so each case takes a
fraction of a second); the commands whose signal handling is under test run as real ``symflow``
processes.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from symflow.cli import main
from symflow.data import TrajectoryWriter, open_trajectories, simulate
from symflow.data import writer as W
from symflow.training import RunDirectory, Trainer, load_checkpoint, seed_everything
from symflow.training import checkpoint as C

CTX = mp.get_context("fork")
# The `symflow` console script's entry point, in a fresh interpreter.
SYMFLOW = [sys.executable, "-c", "import sys; from symflow.cli import main; sys.exit(main())"]
SEED = 20240611  # the kill moments below are drawn from this seed


def _killed(proc: mp.Process, delay: float) -> None:
    time.sleep(delay)
    if proc.is_alive():
        os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)


# ---- a trajectory writer killed at random moments ------------------------------------------------------
N, T, D, BATCH = 400, 16, 4, 10


def _fill(path: Path, marker: float, overwrite: bool) -> None:
    with TrajectoryWriter(
        path, N, T, D, chunk_rows=BATCH, overwrite=overwrite, attrs={"marker": marker}
    ) as w:
        for _ in range(N // BATCH):
            w.append(t=np.arange(T, dtype=float), y=np.full((BATCH, T, D), marker))
            w._file.flush()  # reach the disk in pieces, as a long simulation does
    os._exit(0)


def _check_intact(path: Path, markers: set[float]) -> float:
    with open_trajectories(path) as f:
        marker = float(f.attrs["marker"])
        _, y, _ = f.read_block(0, f.n)
    assert marker in markers and np.all(y == marker), "a file under the final name is not one whole write"
    return marker


@pytest.mark.parametrize("overwrite", [False, True], ids=["new-file", "over-an-existing-file"])
def test_a_writer_killed_at_random_moments_never_leaves_a_damaged_file(tmp_path, overwrite):
    rng = random.Random(SEED + overwrite)
    start = time.perf_counter()
    probe = CTX.Process(target=_fill, args=(tmp_path / "probe.h5", 1.0, False))
    probe.start()
    probe.join(60)
    duration = time.perf_counter() - start  # how long one whole write takes here
    outcomes = []
    for k in range(5):
        target = tmp_path / f"k{k}" / "data.h5"
        target.parent.mkdir()
        if overwrite:  # an earlier complete file that must survive any kill of the new writer
            proc = CTX.Process(target=_fill, args=(target, 1.0, False))
            proc.start()
            proc.join(60)
        proc = CTX.Process(target=_fill, args=(target, 2.0, overwrite))
        proc.start()
        _killed(proc, rng.uniform(0.0, 1.2 * duration))
        leftovers = [p for p in target.parent.iterdir() if p != target]
        if target.exists():
            outcomes.append(_check_intact(target, {1.0, 2.0}))
        else:
            assert not overwrite, "the existing file disappeared"
            outcomes.append(None)
        assert len(leftovers) <= 1 and all(p.name.endswith(".partial") for p in leftovers)
        assert W.stale_partials(target.parent) == leftovers, "a dead writer's partial file is stale"
        # The next writer of the target clears the dead one's partial file and succeeds.
        proc = CTX.Process(target=_fill, args=(target, 3.0, True))
        proc.start()
        proc.join(60)
        assert _check_intact(target, {3.0}) == 3.0
        assert [p.name for p in target.parent.iterdir()] == ["data.h5"]
    assert any(o in (None, 1.0) for o in outcomes), f"no kill landed before the end of a write: {outcomes}"


# ---- two `symflow simulate` processes writing one path -------------------------------------------------
def test_two_simulate_commands_racing_for_one_path_leave_one_whole_file(tmp_path):
    out = tmp_path / "hh.h5"
    cmd = [*SYMFLOW, "simulate", "henon_heiles", "--n", "64", "--t-end", "5"]
    cmd += ["--no-progress", "-o", str(out)]
    procs = [
        subprocess.Popen([*cmd, "--seed", str(s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for s in (1, 2)
    ]
    results = [(p.pid, p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    winners = [r for r in results if r[1] == 0]
    losers = [r for r in results if r[1] != 0]
    assert len(winners) == 1 and len(losers) == 1, results
    assert losers[0][1] == 1 and f"process {winners[0][0]}" in losers[0][2], losers[0][2]
    assert len(losers[0][2].strip().splitlines()) == 2  # the error and the --debug hint
    with open_trajectories(out) as f:
        assert f.attrs["writer_pid"] == winners[0][0]
        assert f.attrs["seed"] == (1 if winners[0][0] == procs[0].pid else 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hh.h5"]


# ---- a trainer killed inside a checkpoint save, and at random moments ----------------------------------
STEPS = 40


def _trainer(run_path: Path, *, resume: bool = False, checkpoint_every: int = 4) -> tuple[Trainer, object]:
    torch.set_num_threads(1)
    seed_everything(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    run = RunDirectory(run_path, resume=resume)
    trainer = Trainer(
        run,
        model,
        opt,
        steps=STEPS,
        config={},
        checkpoint_every=checkpoint_every,
        log_every=1,
        progress=False,
    )
    if resume:
        trainer.restore()

    def loss_fn(step):
        x = torch.randn(16, 3)
        return {"loss": (model(x) - x.sum(-1, keepdim=True)).pow(2).mean()}

    return trainer, loss_fn


def _straight(tmp_path: Path) -> list[torch.Tensor]:
    trainer, fn = _trainer(tmp_path / "straight")
    trainer.fit(fn)
    return [p.detach().clone() for p in trainer.model.parameters()]


def _resume_and_compare(run: Path, expected: list[torch.Tensor]) -> None:
    resume = (run / "checkpoints" / C.MANIFEST).exists()
    trainer, fn = _trainer(run, resume=resume)
    left = sorted(p.name for p in (run / "checkpoints").iterdir()) if resume else []
    if resume:  # the leftovers of the killed save are gone, the last good checkpoint is there
        current = json.loads((run / "checkpoints" / C.MANIFEST).read_text())["file"]
        assert left == sorted([current, C.MANIFEST]), left
    trainer.fit(fn)
    for p, q in zip(trainer.model.parameters(), expected):
        assert torch.equal(p, q), "the resumed run differs from the uninterrupted one"
    steps = [r["step"] for r in trainer.run.metrics()]
    assert steps == list(range(1, STEPS + 1)), "metrics lost or duplicated"
    trainer.run.close()


def _train_until_killed_in_save(run: Path, stage: str, at_save: int) -> None:
    saves = {"n": 0}
    real_save, real_replace = torch.save, os.replace

    def save(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        saves["n"] += 1
        if stage == "payload-written" and saves["n"] == at_save:
            os.kill(os.getpid(), signal.SIGKILL)

    def replace(src, dst, *a, **k):
        name = Path(dst).name
        if stage == "manifest-temp-written" and name == C.MANIFEST and saves["n"] == at_save:
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst, *a, **k)
        if saves["n"] == at_save and (
            (stage == "checkpoint-renamed" and name.startswith("checkpoint-"))
            or (stage == "manifest-replaced" and name == C.MANIFEST)
        ):
            os.kill(os.getpid(), signal.SIGKILL)

    torch.save, os.replace = save, replace
    trainer, fn = _trainer(run)
    trainer.fit(fn)
    os._exit(3)  # never reached: the kill comes first


@pytest.mark.parametrize(
    "stage", ["payload-written", "checkpoint-renamed", "manifest-temp-written", "manifest-replaced"]
)
def test_a_trainer_killed_inside_a_checkpoint_save_resumes_bit_for_bit(tmp_path, stage):
    expected = _straight(tmp_path)
    run = tmp_path / "killed"
    proc = CTX.Process(target=_train_until_killed_in_save, args=(run, stage, 3))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    _resume_and_compare(run, expected)


def _train_forever(run: Path) -> None:
    trainer, fn = _trainer(run, checkpoint_every=1)
    trainer.fit(fn)
    os._exit(0)


def test_a_trainer_killed_at_random_moments_resumes_bit_for_bit(tmp_path):
    expected = _straight(tmp_path)
    start = time.perf_counter()
    probe = CTX.Process(target=_train_forever, args=(tmp_path / "probe",))
    probe.start()
    probe.join(60)
    duration = time.perf_counter() - start
    rng = random.Random(SEED)
    for k in range(4):
        run = tmp_path / f"killed{k}"
        proc = CTX.Process(target=_train_forever, args=(run,))
        proc.start()
        _killed(proc, rng.uniform(0.2 * duration, 0.9 * duration))
        _resume_and_compare(run, expected)


# ---- SIGTERM, as a batch scheduler sends it ------------------------------------------------------------
def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sigterm_during_simulate_removes_the_partial_file(tmp_path):
    out = tmp_path / "hh.h5"
    cmd = [*SYMFLOW, "simulate", "henon_heiles", "--n", "100000"]
    cmd += ["--t-end", "50", "--chunk-size", "64", "--no-progress", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        _wait_for(lambda: list(tmp_path.glob("hh.h5.*.partial")), proc)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated" in err
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_training_checkpoints_and_the_run_resumes(tmp_path):
    data = tmp_path / "hh.h5"
    simulate("henon_heiles", 8, 2.0, output=data, n_obs=6, seed=3, progress=False)
    out = tmp_path / "run"
    args = ["train", "node", "--data", str(data), "-o", str(out), "--width", "8", "--batch-size", "2"]
    args += ["--window", "3", "--log-every", "1", "--checkpoint-every", "1000", "--quiet", "--no-eval"]
    cmd = [*SYMFLOW, *args, "--steps", "100000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (out / "metrics.jsonl").exists() and (out / "metrics.jsonl").stat().st_size, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM" in err and "checkpoint saved" in err and "Traceback" not in err
    step = load_checkpoint(out / "checkpoints").step
    assert step >= 1
    assert main([*args, "--steps", str(step + 2), "--resume"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == step + 2
