"""Checkpoints and run directories under hostile or damaged input: manifests confined to their run
directory, malformed manifests and payloads refused in one line, RNG states always restored on the
CPU, leftovers of interrupted saves cleaned, one writer per run directory, metrics cut by a kill."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import stat

import pytest
import torch

from symflow.training import (
    CheckpointError,
    RunDirectory,
    RunDirectoryError,
    Trainer,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from symflow.training.checkpoint import MANIFEST, atomic_write_text


def _manifest(directory):
    return json.loads((directory / MANIFEST).read_text())


def _write_manifest(directory, **changes):
    m = _manifest(directory)
    m.update(changes)
    (directory / MANIFEST).write_text(json.dumps(m))


# ---- manifests may not leave their directory ---------------------------------------------------------
@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink"])
def test_a_manifest_pointing_outside_its_directory_is_refused_and_nothing_outside_is_deleted(tmp_path, kind):
    run = tmp_path / "run" / "checkpoints"
    save_checkpoint(run, {"w": torch.ones(2)}, step=1, config={})
    # A victim file outside the run directory that happens to be a valid, hash-matching checkpoint.
    victim = tmp_path / "victim.pt"
    victim.write_bytes(next(run.glob("checkpoint-*.pt")).read_bytes())
    from symflow.training.checkpoint import sha256_of

    if kind == "absolute":
        name = str(victim)
    elif kind == "dotdot":
        name = "../../victim.pt"
    else:
        (run / "checkpoint-000000005.pt").symlink_to(victim)
        name = "checkpoint-000000005.pt"
    _write_manifest(run, file=name, sha256=sha256_of(victim))
    with pytest.raises(CheckpointError, match=r"outside|not a file name"):
        load_checkpoint(run)
    save_checkpoint(run, {"w": torch.zeros(2)}, step=2, config={})  # would delete the "previous" file
    assert victim.exists(), "a save deleted a file outside its run directory"
    assert load_checkpoint(run).step == 2


def test_a_save_deletes_only_checkpoints_it_names_itself(tmp_path):
    run = tmp_path / "ck"
    save_checkpoint(run, {"w": torch.ones(2)}, step=1, config={})
    precious = run / "notes.txt"
    precious.write_text("mine")
    _write_manifest(run, file="notes.txt")  # e.g. a hand-edited manifest
    save_checkpoint(run, {"w": torch.ones(2)}, step=2, config={})
    assert precious.read_text() == "mine"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2, 3]", "JSON object"),
        ('{"format": "symflow.checkpoint", "file": "checkpoint-000000001.pt", "step": 1}', "sha256"),
        ('{"format": "symflow.checkpoint", "sha256": "00", "step": 1}', "'file'"),
        ('{"format": "symflow.checkpoint", "file": 3, "sha256": "00", "step": 1}', "'file'"),
        ("{not json", "not valid JSON"),
    ],
)
def test_malformed_manifests_are_one_line_checkpoint_errors(tmp_path, text, message):
    save_checkpoint(tmp_path, {"w": torch.ones(2)}, step=1, config={})
    (tmp_path / MANIFEST).write_text(text)
    with pytest.raises(CheckpointError, match=message) as err:
        load_checkpoint(tmp_path)
    assert "\n" not in str(err.value)


def _trainer(run_path, *, width=4, resume=False):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, width)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run = RunDirectory(run_path, resume=resume)
    return Trainer(run, model, opt, steps=3, config={"width": width}, progress=False)


def test_a_checkpoint_of_another_model_is_a_one_line_error(tmp_path):
    t = _trainer(tmp_path / "r")
    t.fit(lambda step: {"loss": t.model(torch.ones(3)).sum() ** 2})
    other = _trainer(tmp_path / "r", width=5, resume=True)
    with pytest.raises(CheckpointError, match="does not fit") as err:
        other.restore()
    assert "\n" not in str(err.value) and "size mismatch" in str(err.value)


def test_a_payload_without_model_state_is_a_checkpoint_error(tmp_path):
    t = _trainer(tmp_path / "r")
    save_checkpoint(t.run.checkpoints, {"optimizer": {}}, step=1, config={})
    other = _trainer(tmp_path / "r", resume=True)
    with pytest.raises(CheckpointError, match="'model'"):
        other.restore()


# ---- RNG states are CPU tensors whatever the map_location --------------------------------------------
def test_rng_states_load_on_the_cpu_whatever_the_map_location(tmp_path):
    """``map_location`` moves the model tensors (to a GPU on resume with --device cuda); the RNG states
    must stay CPU tensors, which is all torch.set_rng_state and NumPy accept. ``meta`` stands in for a
    device here, so this runs without one."""
    model = torch.nn.Linear(2, 2)
    save_checkpoint(tmp_path, {"model": model.state_dict(), "rng": rng_state()}, step=1, config={})
    expected = torch.rand(5)
    ck = load_checkpoint(tmp_path, map_location="meta")
    assert ck.state["model"]["weight"].device.type == "meta"
    set_rng_state(ck.state["rng"])
    torch.rand(5)  # advance, then restore again: the draws after a restore repeat
    set_rng_state(load_checkpoint(tmp_path, map_location="meta").state["rng"])
    assert torch.equal(torch.rand(5), expected)


# ---- file modes ------------------------------------------------------------------------------------
def test_atomic_files_get_the_mode_of_ordinary_files(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        save_checkpoint(tmp_path / "ck", {"w": torch.ones(1)}, step=1, config={})
        plain = tmp_path / "plain"
        plain.write_text("")
    finally:
        os.umask(old)
    want = stat.S_IMODE(plain.stat().st_mode)
    assert want == 0o644
    for path in [tmp_path / "a.json", tmp_path / "ck" / MANIFEST, *(tmp_path / "ck").glob("*.pt")]:
        assert stat.S_IMODE(path.stat().st_mode) == want, path.name


# ---- leftovers of interrupted saves ----------------------------------------------------------------
def test_leftovers_of_an_interrupted_save_are_removed_when_the_run_opens_again(tmp_path):
    t = _trainer(tmp_path / "r")
    t.fit(lambda step: {"loss": t.model(torch.ones(3)).sum() ** 2})
    ck = t.run.checkpoints
    current = _manifest(ck)["file"]
    leftovers = [
        ck / ".checkpoint-abc123.pt.tmp",
        ck / f".{MANIFEST}.xyz.tmp",
        ck / "checkpoint-000000099.pt",  # renamed into place, but the manifest never named it
    ]
    for p in leftovers:
        p.write_bytes(b"half")
    mine = ck / "README"
    mine.write_text("not the run's")
    RunDirectory(tmp_path / "r", resume=True)
    assert sorted(p.name for p in ck.iterdir()) == sorted([current, MANIFEST, "README"])
    assert load_checkpoint(ck).step == 3


def test_overwrite_removes_only_what_runs_write(tmp_path):
    t = _trainer(tmp_path / "r")
    t.fit(lambda step: {"loss": t.model(torch.ones(3)).sum() ** 2})
    (tmp_path / "r" / "checkpoints" / "mine.txt").write_text("keep")
    (tmp_path / "r" / "checkpoints" / "sub").mkdir()
    RunDirectory(tmp_path / "r", overwrite=True)
    left = sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir())
    assert left == ["mine.txt", "sub"]


# ---- metrics cut by a kill ---------------------------------------------------------------------------
def test_a_truncated_last_metrics_line_is_tolerated_on_resume(tmp_path):
    t = _trainer(tmp_path / "r")
    t.fit(lambda step: {"loss": t.model(torch.ones(3)).sum() ** 2})
    with open(tmp_path / "r" / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 4, "lo')  # what a kill in the middle of a write leaves
    r = _trainer(tmp_path / "r", resume=True)
    r.restore()
    assert [m["step"] for m in r.run.metrics()] == [3]
    assert (tmp_path / "r" / "metrics.jsonl").read_text().endswith("}\n")


def test_a_damaged_metrics_line_in_the_middle_is_a_one_line_error(tmp_path):
    run = RunDirectory(tmp_path / "r")
    (tmp_path / "r" / "metrics.jsonl").write_text('{"step": 1}\n{"st\n{"step": 3}\n')
    with pytest.raises(RunDirectoryError, match="line 2"):
        run.metrics()


# ---- one writer per run directory -----------------------------------------------------------------
def test_an_existing_file_as_run_directory_is_a_run_directory_error(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(RunDirectoryError, match="not a directory"):
        RunDirectory(tmp_path / "f")


def _hold_run(path, ready, release):
    run = RunDirectory(path)
    run.write_json("config.json", {})
    ready.set()
    release.wait(30)


def test_a_second_process_cannot_open_a_run_directory_in_use(tmp_path):
    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_run, args=(tmp_path / "r", ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(RunDirectoryError, match=f"in use by process {holder.pid}"):
            RunDirectory(tmp_path / "r", overwrite=True)
    finally:
        release.set()
        holder.join(30)
    RunDirectory(tmp_path / "r", overwrite=True)  # free again once the holder is gone
