"""Training infrastructure: atomic verified checkpoints, bit-for-bit resume, divergence, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from symflow.training import (
    CheckpointError,
    GeneratorState,
    RunDirectory,
    RunDirectoryError,
    Trainer,
    TrainingDiverged,
    TrainingInterrupted,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
)


def make(run_path, *, resume=False, steps=20, lr=1e-2, checkpoint_every=5, **kw):
    seed_everything(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5)
    gen = torch.Generator().manual_seed(123)
    run = RunDirectory(run_path, resume=resume)
    trainer = Trainer(
        run,
        model,
        opt,
        scheduler=sched,
        steps=steps,
        config={"lr": lr},
        extra_state={"gen": GeneratorState(gen)},
        checkpoint_every=checkpoint_every,
        log_every=1,
        progress=False,
        **kw,
    )
    if resume:
        trainer.restore()

    def loss_fn(step):
        # Randomness from the global RNG and from a private generator, like real learners.
        x = torch.randn(8, 3)
        noise = torch.randn(8, 1, generator=gen)
        return {"loss": (model(x) - x.sum(-1, keepdim=True) - 0.1 * noise).pow(2).mean()}

    return trainer, loss_fn


def test_resume_continues_bit_for_bit(tmp_path):
    straight, fn = make(tmp_path / "a")
    straight.fit(fn)
    first, fn1 = make(tmp_path / "b", steps=10)
    first.fit(fn1)
    resumed, fn2 = make(tmp_path / "b", steps=20, resume=True)
    assert resumed.step == 10
    resumed.fit(fn2)
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)
    losses_a = [r["loss"] for r in straight.run.metrics()]
    losses_b = [r["loss"] for r in resumed.run.metrics()]
    assert losses_a == losses_b  # same 20 records, none duplicated


def test_checkpoint_round_trip_uses_weights_only_and_keeps_one_file(tmp_path):
    state = {"w": torch.arange(4.0), "meta": {"k": 3}}
    save_checkpoint(tmp_path, state, step=1, config={"a": 1})
    save_checkpoint(tmp_path, {"w": torch.ones(2)}, step=2, config={"a": 2})
    ck = load_checkpoint(tmp_path)
    assert ck.step == 2 and ck.config == {"a": 2} and torch.equal(ck.state["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["checkpoint-000000002.pt"]


def test_tampered_checkpoint_is_refused(tmp_path):
    save_checkpoint(tmp_path, {"w": torch.ones(3)}, step=1, config={})
    path = next(tmp_path.glob("*.pt"))
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the manifest"):
        load_checkpoint(tmp_path)


def test_checkpoint_with_arbitrary_objects_cannot_be_loaded(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    save_checkpoint(tmp_path, {"x": Evil()}, step=1, config={})
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint(tmp_path)


def test_interrupted_save_leaves_the_last_good_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, {"w": torch.ones(3)}, step=1, config={})

    def broken_save(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, {"w": torch.zeros(3)}, step=2, config={})
    monkeypatch.undo()
    ck = load_checkpoint(tmp_path)
    assert ck.step == 1 and torch.equal(ck.state["w"], torch.ones(3))
    assert not list(tmp_path.glob("*.tmp"))


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path):
    trainer, fn = make(tmp_path, steps=30, checkpoint_every=5)

    def exploding(step):
        out = fn(step)
        return {"loss": out["loss"] * (float("nan") if step == 12 else 1.0)}

    with pytest.raises(TrainingDiverged, match=r"nan at step 12.*step 10"):
        trainer.fit(exploding)
    assert load_checkpoint(tmp_path / "checkpoints").step == 10


def test_ctrl_c_finishes_the_step_saves_and_stops(tmp_path):
    # Whatever handled SIGINT before (Python's default; SIG_IGN when the tests run as a background job
    # of a non-interactive shell) is what the trainer must put back.
    before = signal.getsignal(signal.SIGINT)
    trainer, fn = make(tmp_path, steps=50, checkpoint_every=100)

    def interrupting(step):
        if step == 6:
            os.kill(os.getpid(), signal.SIGINT)
        return fn(step)

    with pytest.raises(TrainingInterrupted, match="step 7"):
        trainer.fit(interrupting)
    assert load_checkpoint(tmp_path / "checkpoints").step == 7
    assert signal.getsignal(signal.SIGINT) is before


def test_run_directory_refuses_to_clobber_or_resume_nothing(tmp_path):
    with pytest.raises(RunDirectoryError, match="nothing to resume"):
        RunDirectory(tmp_path / "new", resume=True)
    trainer, fn = make(tmp_path / "r", steps=2)
    trainer.fit(fn)
    with pytest.raises(RunDirectoryError, match="--resume"):
        RunDirectory(tmp_path / "r")
    RunDirectory(tmp_path / "r", overwrite=True)
    assert not (tmp_path / "r" / "checkpoints" / "manifest.json").exists()


def test_metrics_are_json_lines_with_step_loss_and_lr(tmp_path):
    trainer, fn = make(tmp_path, steps=3)
    trainer.fit(fn)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert {"loss", "lr", "elapsed_s"} <= set(records[0])
