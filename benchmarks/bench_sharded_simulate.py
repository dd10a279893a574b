"""Sharded data generation: ``symflow simulate`` under torchrun with 1 and 2 ranks, trajectories/s.

Each case is one command line (process start, imports and the index file included), run in
interleaved repeats so that machine load hits all cases alike:

* ``plain``: ``symflow simulate ... -o file.h5`` (one process, no torchrun);
* ``torchrun K=1`` / ``K=2``: ``torchrun --standalone --nproc_per_node=K symflow simulate ... -o DIR/``.

Reported: median wall seconds of the command, trajectories per second from it, and the solve
throughput the command itself reports (slowest rank, index included). The data sets of all cases
are compared bitwise (they must be identical: ``symflow.data.shards``). One torch thread per
process (``OMP_NUM_THREADS=1``).

    python -m benchmarks.bench_sharded_simulate            # 2000 trajectories, 2 repeats
    python -m benchmarks.bench_sharded_simulate --quick    # 400 trajectories, 1 repeat, not recorded
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py

from benchmarks.harness import write_result

BIN = Path(sys.executable).parent


def _command(case: str, out: Path, n: int) -> list[str]:
    args = ["simulate", "henon_heiles", "-n", str(n), "--t-end", "20", "--sampling", "uniform",
            "--n-obs", "50", "--chunk-size", "256", "--seed", "3", "--no-progress", "--json"]  # fmt: skip
    if case == "plain":
        return [str(BIN / "symflow"), *args, "-o", str(out / "plain.h5")]
    k = case.split("=")[1]
    return [str(BIN / "torchrun"), "--standalone", f"--nproc_per_node={k}", str(BIN / "symflow"), *args,
            "-o", f"{out / case.replace('=', '')}/"]  # fmt: skip


def _data(path: Path) -> dict[str, bytes]:
    path = path / "trajectories.h5" if path.is_dir() else path
    with h5py.File(path, "r") as f:
        return {k: f[k][()].tobytes() for k in f}


def run(n: int, repeat: int) -> dict:
    cases = ["plain", "torchrun K=1", "torchrun K=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    walls: dict[str, list[float]] = {c: [] for c in cases}
    reported: dict[str, list[float]] = {c: [] for c in cases}
    same = True
    for _ in range(repeat):
        for case in cases:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp)
                t0 = time.perf_counter()
                done = subprocess.run(_command(case, out, n), capture_output=True, text=True, env=env)
                walls[case].append(time.perf_counter() - t0)
                if done.returncode != 0:
                    raise RuntimeError(f"{case} failed: {done.stderr[-2000:]}")
                summary = json.loads([ln for ln in done.stdout.splitlines() if ln.startswith("{")][-1])
                reported[case].append(summary["trajectories_per_second"])
                target = out / "plain.h5" if case == "plain" else next(p for p in out.iterdir() if p.is_dir())
                data = _data(target)
                if case == "plain":
                    reference = data
                else:
                    same = same and data == reference
                shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()[0]
    rows = []
    base = statistics.median(walls["torchrun K=1"])
    for case in cases:
        wall = statistics.median(walls[case])
        rows.append(
            {
                "case": f"HH simulate {case}",
                "value": n / wall,
                "unit": "trajectories/s (command wall time)",
                "median wall s": wall,
                "reported trajectories/s": statistics.median(reported[case]),
                "speed-up vs K=1": base / wall,
                "bitwise same data": same,
            }
        )
    description = (
        f"Sharded data generation (`symflow simulate -o DIR/` under `torchrun --standalone`), Hénon–Heiles, "
        f"{n} trajectories to T = 20 with 50 uniformly random observation times, dopri5 rtol 1e-9, "
        f"chunk_size 256; one torch thread per process. 'value' = trajectories per second of the whole "
        f"command (process start, imports, solves, HDF5 parts and index), median of {repeat} interleaved "
        f"repeats; "
        f"'reported' = the throughput the command prints (slowest rank from its own start). All cases wrote "
        f"bitwise the same trajectories: {same}. Machine: {os.cpu_count()} cores shared with other jobs "
        f"(load average {load:.1f} after the runs), so K=2 can only win what a second free core gives."
    )
    return {"description": description, "rows": rows}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="400 trajectories, 1 repeat (not recorded)")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    a = parser.parse_args()
    payload = run(400 if a.quick else a.n, 1 if a.quick else a.repeat)
    for row in payload["rows"]:
        print(row, flush=True)
    if not a.quick:
        write_result("sharded_simulate", payload)
