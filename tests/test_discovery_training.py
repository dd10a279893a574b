"""Training neural ODEs from trajectory files: runs, resume, reload, DDP with gloo, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from symflow.cli.main import main as cli_main
from symflow.data import TrajectoryDataset, collate_trajectories, simulate
from symflow.discovery import TrajectoryObjective, build_model
from symflow.discovery.evaluate import evaluate_discovery
from symflow.discovery.training import NodeConfig, load_node, train_node
from symflow.integrators import InvalidArgumentError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hh_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "hh.h5"
    simulate(
        "henon_heiles",
        24,
        6.0,
        output=path,
        sampling="irregular",
        n_obs=12,
        noise=1e-3,
        seed=3,
        rtol=1e-9,
        atol=1e-11,
        progress=False,
    )
    return path


def small_config(path: Path, **kw) -> NodeConfig:
    base = dict(
        data=str(path),
        model="hnn",
        width=16,
        depth=2,
        steps=6,
        batch_size=4,
        window=4,
        val_every=3,
        checkpoint_every=3,
        log_every=1,
        rtol=1e-5,
        atol=1e-7,
        seed=1,
    )
    base.update(kw)
    return NodeConfig(**base)


def test_a_run_writes_config_metrics_checkpoint_and_summary(hh_file, tmp_path):
    summary = train_node(small_config(hh_file), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert {"config.json", "metrics.jsonl", "summary.json"} <= {p.name for p in run.iterdir()}
    assert summary["steps"] == 6 and summary["val_loss"] is not None
    assert "trajectory_rel_error_median" in summary["evaluation"]  # compared with the true system
    model = load_node(run)
    assert sum(p.numel() for p in model.parameters()) == summary["parameters"]


@pytest.mark.parametrize(
    "options",
    [
        {"input_scale": 3.0, "warm_start_steps": 5},
        {"model": "mlp", "time_dependent": True, "steps": 3},
        {"model": "anode", "augment_dim": 2, "lift": "linear", "projection": "linear", "steps": 3},
    ],
    ids=["hnn", "time-dependent-mlp", "anode"],
)
def test_a_loaded_model_reproduces_the_evaluation_of_the_trained_one(hh_file, tmp_path, options, capsys):
    # Every model option must survive the round trip through config.json (input_scale once did not).
    cfg = small_config(hh_file, **options)
    summary = train_node(cfg, tmp_path / "run", progress=False)
    model = load_node(tmp_path / "run")
    again = evaluate_discovery(model, "henon_heiles", t_end=10.0, seed=cfg.seed + 1000)
    assert again["trajectory_rel_error_median"] == summary["evaluation"]["trajectory_rel_error_median"]
    if cfg.model == "hnn":
        assert model.input_scale == 3.0
        assert summary["warm_start"]["steps"] == 5 and summary["warm_start"]["pairs"] > 0
    elif cfg.model == "mlp":
        assert model.time_dependent and model.net[0].in_features == 5
    else:
        assert model.augment_dim == 2 and model.lift_kind == "linear" and model.projection_kind == "linear"
        # Its field lives in the lifted space: diagnose refuses it in one line instead of mis-shaping.
        assert cli_main(["diagnose", str(tmp_path / "run"), "-o", str(tmp_path / "diag")]) == 1
        err = capsys.readouterr().err
        assert "anode" in err and "Traceback" not in err


def test_lbfgs_steps_on_the_pair_objective_lower_it_and_are_recorded(hh_file, tmp_path):
    cfg = small_config(hh_file, steps=2, lbfgs_steps=3, lbfgs_iterations=4, gradient="explicit")
    summary = train_node(cfg, tmp_path / "run", progress=False, evaluate=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert records[-1]["loss"] < records[2]["loss"]  # L-BFGS steps 3..5 lower the full-batch loss
    pairs = summary["pair_objective"]
    assert pairs["collocation_pairs"] + pairs["shot_pairs"] == pairs["pairs"] > 0
    assert pairs["integration_check"]["relative_change"] < 0.1
    assert summary["steps"] == 5 and summary["val_loss"] > 0


@pytest.mark.parametrize(
    "options,stop", [({"steps": 6}, 3), ({"steps": 2, "lbfgs_steps": 3, "lbfgs_iterations": 3}, 4)]
)
def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(hh_file, tmp_path, options, stop):
    train_node(small_config(hh_file, **options), tmp_path / "a", progress=False, evaluate=False)
    train_node(small_config(hh_file, **options), tmp_path / "b", stop_at=stop, progress=False, evaluate=False)
    train_node(small_config(hh_file, **options), tmp_path / "b", resume=True, progress=False, evaluate=False)
    a, b = load_node(tmp_path / "a"), load_node(tmp_path / "b")
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    losses = lambda d: [r["loss"] for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines())]  # noqa: E731
    assert losses(tmp_path / "a") == losses(tmp_path / "b")


@pytest.mark.parametrize(
    "options,match",
    [
        ({"steps": 0}, "steps"),
        ({"lbfgs_steps": -1}, "lbfgs_steps"),
        ({"lbfgs_iterations": 0}, "lbfgs_iterations"),
        ({"collocation_gap": -0.1}, "collocation_gap"),
        ({"shot_dt": 0.0}, "shot_dt"),
        ({"time_dependent": True}, "time_dependent"),
        ({"model": "anode", "augment_dim": 0}, "augment_dim"),
        ({"model": "anode", "lift": "random"}, "lift"),
        ({"model": "anode", "warm_start_steps": 10}, "warm_start_steps"),
    ],
)
def test_config_errors_name_the_option(hh_file, options, match):
    with pytest.raises(InvalidArgumentError, match=match):
        small_config(hh_file, **options).validate()


def test_backprop_and_adjoint_runs_both_train(hh_file, tmp_path):
    for adjoint in (True, False):
        s = train_node(
            small_config(hh_file, adjoint=adjoint, model="mlp", activation="tanh"),
            tmp_path / str(adjoint),
            progress=False,
            evaluate=False,
        )
        assert s["train_loss"] > 0


def _ddp_worker(rank: int, world: int, init: str, path: str, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)  # as in the parent (conftest): same initial weights
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = build_model("hnn", 4, width=16).double()
        objective = DDP(TrajectoryObjective(model, rtol=1e-9, atol=1e-11))
        ds = TrajectoryDataset(path, window=5, seed=0, dtype=torch.float64)
        batch = collate_trajectories([ds[i] for i in range(rank, 8, world)])  # this rank's shard
        objective(batch.ts, batch.ys, batch.mask).backward()
        torch.save([p.grad for p in model.parameters()], f"{out}/grad{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_gradients_with_two_gloo_processes_equal_one_process_on_the_global_batch(hh_file, tmp_path):
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_ddp_worker, args=(2, init, str(hh_file), str(tmp_path)), nprocs=2, join=True)
    torch.manual_seed(0)
    model = build_model("hnn", 4, width=16).double()
    ds = TrajectoryDataset(hh_file, window=5, seed=0, dtype=torch.float64)
    batch = collate_trajectories([ds[i] for i in range(8)])
    TrajectoryObjective(model, rtol=1e-9, atol=1e-11)(batch.ts, batch.ys, batch.mask).backward()
    for rank in (0, 1):
        ddp = torch.load(tmp_path / f"grad{rank}.pt", weights_only=True)
        for g_ddp, p in zip(ddp, model.parameters()):
            torch.testing.assert_close(g_ddp, p.grad, rtol=1e-6, atol=1e-10)


def _all_mean_worker(rank: int, world: int, init: str, out: str) -> None:
    import torch.distributed as dist

    from symflow.discovery.distributed import DistInfo, all_mean

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        info = DistInfo(rank=rank, world_size=world, device=torch.device("cpu"))
        Path(out, f"mean{rank}.json").write_text(json.dumps(all_mean(1.0 + 2.0 * rank, info)))
    finally:
        dist.destroy_process_group()


def test_all_mean_averages_a_metric_over_gloo_ranks(tmp_path):
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_all_mean_worker, args=(2, init, str(tmp_path)), nprocs=2, join=True)
    assert [json.loads((tmp_path / f"mean{r}.json").read_text()) for r in (0, 1)] == [2.0, 2.0]


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL needs two CUDA devices")
def test_all_mean_reduces_on_the_rank_device_under_nccl(tmp_path):
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_nccl_mean_worker, args=(2, init, str(tmp_path)), nprocs=2, join=True)
    assert [json.loads((tmp_path / f"mean{r}.json").read_text()) for r in (0, 1)] == [2.0, 2.0]


def _nccl_mean_worker(rank: int, world: int, init: str, out: str) -> None:
    import torch.distributed as dist

    from symflow.discovery.distributed import DistInfo, all_mean

    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=init, rank=rank, world_size=world)
    try:
        info = DistInfo(rank=rank, world_size=world, device=torch.device("cuda", rank))
        Path(out, f"mean{rank}.json").write_text(json.dumps(all_mean(1.0 + 2.0 * rank, info)))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(
    shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
    reason="torchrun not installed",
)
def test_the_same_cli_command_runs_under_torchrun(hh_file, tmp_path):
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "SYMFLOW_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    cmd = [
        torchrun,
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "symflow.cli.main",
        "train",
        "node",
        "--data",
        str(hh_file),
        "--out",
        str(tmp_path / "ddp"),
        "--steps",
        "4",
        "--batch-size",
        "4",
        "--window",
        "4",
        "--width",
        "16",
        "--lbfgs-steps",
        "2",
        "--lbfgs-iterations",
        "2",
        "--no-eval",
        "--quiet",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    config = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert config["world_size"] == 2
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["steps"] == 6  # 4 Adam steps, then 2 L-BFGS steps with the same decisions on both ranks
    assert summary["pair_objective"]["pairs"] > 0


def test_cli_reports_a_missing_data_file_in_one_line(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "symflow.cli.main",
            "train",
            "node",
            "--data",
            str(tmp_path / "no.h5"),
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 1
    assert "no such file" in out.stderr and "Traceback" not in out.stderr
