"""Neural-ODE discovery must-show: an HNN learned from 200 irregular, noisy Hénon–Heiles trajectories.

Simulates the data set of the issue (200 trajectories, energies 0.02–0.12, 50 uniformly random
observation times in [0, 20] each, Gaussian noise σ = 1e-3), trains the HNN exactly as
``symflow train node`` would (secant warm start, then the continuous adjoint on 4-observation
windows), and records the wall and CPU time of training with the held-out evaluation that
``train_node`` writes: 64 new initial states (seeded, same energy range) integrated to T = 10 by the
learned and the true field, relative trajectory error and relative energy error (true H).

    python -m benchmarks.bench_discovery           # the full run (about 10 CPU minutes), recorded
    python -m benchmarks.bench_discovery --quick   # smoke test, not recorded
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.harness import write_result
from symflow.data import simulate
from symflow.discovery.training import NodeConfig, train_node

CONFIG = dict(
    model="hnn",
    gradient="explicit",
    width=64,
    depth=2,
    window=4,
    batch_size=64,
    lr=3e-3,
    input_scale=3.0,
    warm_start_steps=2000,
    steps=1500,
)


def main(quick: bool = False) -> dict:
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    n, steps, warm = (24, 20, 50) if quick else (200, CONFIG["steps"], CONFIG["warm_start_steps"])
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "hh.h5"
        simulate(
            "henon_heiles",
            n,
            20.0,
            output=data,
            sampling="irregular",
            n_obs=50,
            noise=1e-3,
            seed=0,
            progress=False,
        )
        cfg = NodeConfig(data=str(data), **{**CONFIG, "steps": steps, "warm_start_steps": warm})
        wall, cpu = time.perf_counter(), time.process_time()
        summary = train_node(cfg, Path(tmp) / "run", progress=not quick)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ev = summary["evaluation"]
    row = {
        "case": (
            f"HNN {CONFIG['width']}x{CONFIG['depth']} tanh, input scale {CONFIG['input_scale']:g}, "
            f"{warm} warm-start + {steps} adjoint steps"
        ),
        "train_wall_s": wall,
        "train_cpu_s": cpu,
        "traj_rel_err_median": ev["trajectory_rel_error_median"],
        "traj_rel_err_max": ev["trajectory_rel_error_max"],
        "energy_rel_err_median": ev["energy_rel_error_median"],
        "energy_rel_err_max": ev["energy_rel_error_max"],
        "value": "pass"
        if ev["trajectory_rel_error_median"] < 0.05 and ev["energy_rel_error_median"] < 0.01 and cpu < 600
        else "FAIL",
    }
    print(row)
    if not quick:
        write_result(
            "discovery",
            {
                "description": (
                    "Discovery from 200 irregular noisy Hénon–Heiles trajectories (50 random observations "
                    "in [0, 20], σ = 1e-3): HNN trained on CPU (1 thread, float64) with the secant warm "
                    "start and the continuous adjoint (dopri5, rtol 1e-6, seminorm), batch 64, lr 3e-3 "
                    "cosine. Held-out: 64 new states, T = 10; errors are relative (trajectory: max over "
                    "time of |Δy| / max |y|; energy: true H). CPU time includes validation passes and the "
                    "final evaluation. value: pass if median trajectory error < 5%, median energy error "
                    "< 1% and < 600 CPU s."
                ),
                "rows": [row],
            },
        )
    return row


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    main(ap.parse_args().quick)
