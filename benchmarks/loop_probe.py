"""Host syncs and launched operations per solver iteration, counted on the CPU (issue 19).

On a GPU every ``bool(tensor)``/``.item()``/``.tolist()`` waits for the device, and every small
operation is one kernel launch (a few µs of host time each). Both are the same calls on the CPU, so
counting them here tells how a loop would behave on a device without one:

* **syncs**: calls of the host-sync entry points of ``torch.Tensor`` (``tests/sync_counter.py``);
* **ops**: ATen operators dispatched (a ``TorchDispatchMode`` that counts them); on CUDA each is a kernel
  launch, except views and metadata-only ops, which are counted too (an upper bound).

Rows: adaptive ``dopri5`` on 1024 Hénon–Heiles orbits (T = 50, rtol 1e-8, 51 outputs; per
attempt), and ``gl4`` on the harmonic oscillator (per step). Run
``python -m benchmarks.loop_probe [--label before|after]``; results go to
``benchmarks/results/loop_probe.json`` (rows of both labels are kept). Each label is counted the way the
loop runs on an accelerator, and the adaptive rows once more the CPU's way (``"<label> (CPU path)"``:
a look after every attempt, and only the rows that hold outputs interpolated).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import symflow.systems as S
from symflow.integrators import solve

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from sync_counter import count_host_syncs

from benchmarks.harness import write_result

SYNC_OPS = ("aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select", "aten::unique_consecutive")
RESULTS = Path(__file__).resolve().parent / "results" / "loop_probe.json"


class CountOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket._qualified_op_name] += 1
        return func(*args, **(kwargs or {}))


def _hh_batch(b: int) -> torch.Tensor:
    hh = S.get_system("henon_heiles")
    half = b // 2
    return torch.cat([hh.sample(half, seed=0, energy=1 / 12), hh.sample(b - half, seed=1, energy=1 / 7)])


def probe(label: str) -> list[dict]:
    torch.set_default_dtype(torch.float64)
    rows = []
    hh = S.get_system("henon_heiles")
    f = S.vector_field(hh)
    y0 = _hh_batch(1024)
    ts = torch.linspace(0.0, 50.0, 51)
    cases = [
        (
            "dopri5 B=1024 T=50 rtol=1e-8, 51 outputs",
            lambda: solve(f, y0, ts, "dopri5", rtol=1e-8, atol=1e-10),
        )
    ]
    cases.append(
        (
            "dopri5 B=1024 T=50 rtol=1e-8, 2001 outputs",
            lambda: solve(f, y0, torch.linspace(0.0, 50.0, 2001), "dopri5", rtol=1e-8, atol=1e-10),
        )
    )
    osc = S.get_system("harmonic_oscillator")
    g = S.vector_field(osc)
    z0 = osc.sample(256, seed=1)
    cases.append(("gl4 B=256, 200 steps h=0.1", lambda: solve(g, z0, torch.linspace(0.0, 20.0, 201), "gl4")))
    for name, run in cases:
        sol = run()
        per = int(sol.stats["steps"].max()) if "gl4" not in name else 200
        attempts = _attempts(sol) if "gl4" not in name else 200
        with count_host_syncs() as syncs:
            run()
        mode = CountOps()
        with mode:
            run()
        rows.append(
            {
                "label": label,
                "case": name,
                "iterations": attempts,
                "max steps of a sample": per,
                "syncs": syncs.count,
                "syncs per iteration": syncs.count / attempts,
                "ops": sum(mode.ops.values()),
                "ops per iteration": sum(mode.ops.values()) / attempts,
                "syncs by entry point": dict(syncs.by_name),
                # What actually waits for a device: value reads and ops whose output shape depends on values.
                "device syncs (dispatch)": sum(mode.ops[k] for k in SYNC_OPS),
                "device syncs per iteration": sum(mode.ops[k] for k in SYNC_OPS) / attempts,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _attempts(sol) -> int:
    """Loop iterations of an adaptive solve: the largest attempt count of a sample."""
    return int(sol.stats["steps"].max())


def main() -> None:
    import symflow.integrators.adaptive as adaptive

    ap = argparse.ArgumentParser()
    ap.add_argument("--label", default="current")
    args = ap.parse_args()
    torch.set_num_threads(1)
    # The accelerator's loop (no per-attempt look, every recorded row interpolated), then the CPU's own
    # (it also stops the moment no sample is active and interpolates only the rows that hold outputs).
    cpu_flags = {flag: getattr(adaptive, flag) for flag in ("STOP_AT_ONCE_ON_CPU", "COMPACT_OUTPUTS_ON_CPU")}
    try:
        for flag in cpu_flags:
            setattr(adaptive, flag, False)
        rows = probe(args.label)
        for flag in cpu_flags:
            setattr(adaptive, flag, True)
        cpu_label = f"{args.label} (CPU path)"
        rows += [r for r in probe(cpu_label) if "gl4" not in r["case"]]
    finally:
        for flag, value in cpu_flags.items():
            setattr(adaptive, flag, value)
    old = json.loads(RESULTS.read_text())["rows"] if RESULTS.exists() else []
    old = [r for r in old if r["label"] not in (args.label, cpu_label)]
    write_result(
        "loop_probe",
        {
            "description": (
                "Host syncs (torch.Tensor entry points, tests/sync_counter.py) and dispatched ATen ops "
                "(≈ kernel launches on a GPU) per loop iteration, counted on the CPU; adaptive rows per "
                "attempt (iterations = largest per-sample attempt count), gl4 per step. 'device syncs "
                "(dispatch)' counts value reads and data-dependent shapes (nonzero) seen by the dispatcher "
                "(tolist is not among them). 1 thread."
            ),
            "rows": old + rows,
        },
    )


if __name__ == "__main__":
    main()
