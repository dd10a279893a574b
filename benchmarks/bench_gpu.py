"""The performance matrix of adaptive ``dopri5`` on a device, B = 256 … 10⁶ (issue 19; run by gpu_check.sh).

Hénon–Heiles orbits, half at E = 1/12 and half at E = 1/7 (4096 distinct orbits, tiled beyond that),
T = 10, rtol 1e-8, atol 1e-10, float64, 11 outputs. Cases, each timed after a warm-up call (which also
compiles), interleaved per batch size:

* ``symflow eager``, ``symflow compiled`` (``compile=True``), ``symflow graphs``
  (``compile="reduce-overhead"``: the attempt replayed as a CUDA graph);
* ``torchdiffeq`` (``odeint(method="dopri5")``, one step size for the whole batch) and ``torchode``
  (``Dopri5`` with per-sample step control, eager).

Per row: wall ms (median of ``--repeat``), the largest per-sample attempt count, µs per attempt and ns
per sample-attempt, and — for ``symflow eager`` — the host syncs the loop made, counted by CUDA itself
(``torch.cuda.set_sync_debug_mode("warn")``). Writes ``benchmarks/results/gpu_matrix.json`` and
``gpu_matrix.png``. ``--device cpu --quick`` runs a small version anywhere (used to check the script).
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import torch

import symflow.systems as S
from symflow.integrators import solve

RESULTS = Path(__file__).resolve().parent / "results"


def _orbits(b: int, device: str) -> torch.Tensor:
    hh = S.get_system("henon_heiles")
    n = min(b, 4096)
    base = torch.cat([hh.sample(n // 2, seed=0, energy=1 / 12), hh.sample(n - n // 2, seed=1, energy=1 / 7)])
    reps = math.ceil(b / n)
    return base.repeat(reps, 1)[:b].to(device)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device: str) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _cuda_syncs(fn) -> int | None:
    """Host syncs CUDA itself reports during ``fn`` (None off CUDA)."""
    if not torch.cuda.is_available():
        return None
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message) for w in seen)


def run(device: str, batches: list[int], repeat: int, compiled: bool, budget_s: float) -> list[dict]:
    """Eager cases at every batch size first, then the compiled ones while the time budget lasts."""
    torch.set_default_dtype(torch.float64)
    started = time.perf_counter()
    rows: list[dict] = []
    phases = [("eager", batches)]
    if compiled:
        phases.append(("compiled", [b for b in batches if b <= 65536]))
    for phase, sizes in phases:
        for b in sizes:
            if time.perf_counter() - started > budget_s:
                print(f"time budget of {budget_s:g} s spent: skipping {phase} B = {b}", flush=True)
                continue
            rows += _rows(device, b, repeat, phase)
    return rows


def _rows(device: str, b: int, repeat: int, phase: str) -> list[dict]:
    import torchdiffeq
    import torchode as to

    f = S.vector_field(S.get_system("henon_heiles"))
    rtol, atol, t_end = 1e-8, 1e-10, 10.0
    y0 = _orbits(b, device)
    ts = torch.linspace(0.0, t_end, 11, device=device)
    if phase == "eager":
        term = to.ODETerm(f)
        tor = to.AutoDiffAdjoint(to.Dopri5(term=term), to.IntegralController(atol=atol, rtol=rtol, term=term))
        problem = to.InitialValueProblem(y0=y0, t_eval=ts.expand(b, -1))
        cases = {
            "symflow eager": lambda: solve(f, y0, ts, "dopri5", rtol=rtol, atol=atol),
            "torchdiffeq": lambda: torchdiffeq.odeint(f, y0, ts, method="dopri5", rtol=rtol, atol=atol),
            "torchode": lambda: tor.solve(problem),
        }
    else:
        cases = {"symflow compiled": lambda: solve(f, y0, ts, "dopri5", rtol=rtol, atol=atol, compile=True)}
        if device.startswith("cuda"):
            cases["symflow graphs"] = lambda: solve(
                f, y0, ts, "dopri5", rtol=rtol, atol=atol, compile="reduce-overhead"
            )
    eager = lambda: solve(f, y0, ts, "dopri5", rtol=rtol, atol=atol)  # noqa: E731
    attempts = int(eager().stats["steps"].max())
    first = {name: _timed(fn, device) for name, fn in cases.items()}  # warm-up (and compile)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            times[name].append(_timed(fn, device))
    rows = []
    for name in cases:
        med = sorted(times[name])[repeat // 2]
        ours = name.startswith("symflow")
        row = {
            "device": device,
            "B": b,
            "case": name,
            "ms": 1e3 * med,
            "first call s": first[name],
            "symflow attempts": attempts,
            "µs per symflow attempt": 1e6 * med / attempts if ours else None,
            "ns per sample-attempt": 1e9 * med / attempts / b if ours else None,
        }
        if name == "symflow eager":
            row["cuda syncs"] = _cuda_syncs(cases[name])
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for case in dict.fromkeys(r["case"] for r in rows):
        pts = [(r["B"], r["ms"]) for r in rows if r["case"] == case]
        ax.loglog(*zip(*pts), marker="o", label=case)
    ax.set_xlabel("batch size B (Hénon–Heiles orbits)")
    ax.set_ylabel("wall time per solve [ms]")
    ax.set_title(f"dopri5, T = 10, rtol 1e-8, float64, {rows[0]['device']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="B = 64, 256 and no compiled cases")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=120.0, help="stop adding batch sizes after this")
    ap.add_argument("--out", default=str(RESULTS / "gpu_matrix.json"))
    args = ap.parse_args()
    batches = [64, 256] if args.quick else [256, 4096, 65536, 1_000_000]
    rows = run(args.device, batches, 1 if args.quick else args.repeat, not args.quick, args.budget_s)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    info = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
        "torch": torch.__version__,
        "description": __doc__,
        "rows": rows,
    }
    out.write_text(json.dumps(info, indent=1))
    plot(rows, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
