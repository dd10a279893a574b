"""``solve(compile=True)`` where compilation can hurt: a fresh process, and a busy machine.

1. **First call in a fresh process** (``compile_cache``): the wall time of the first
   ``compile=True`` RK4 solve (Hénon–Heiles, B = 1024, 1000 steps) in a new Python process, with an
   empty Inductor cache directory and then again in a second process on the same directory (what a
   user sees the second time a script runs). Import time is listed apart.
2. **Oversubscribed cores** (``compile_oversubscribed``): RK4, B = 1024, 1000 steps, ``torch``
   at 2 threads, while 0, 2 or 4 other torch processes (2 threads each, a matmul loop) compete for
   the cores; eager vs compiled interleaved in one process, with compiled kernels on the size/load
   rule of ``symflow.integrators.compiled.threads_for`` (after) and with every kernel on 2 threads
   (before: ``SMALL_PROBLEM = 0``). Ratio = eager time / compiled time (> 1: compiling pays).

Run: ``python -m benchmarks.bench_compile [--only cache|oversubscribed]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import torch

from benchmarks.harness import interleaved, write_result

_FIRST_CALL = textwrap.dedent(
    """
    import time
    t0 = time.perf_counter()
    import torch
    torch.set_num_threads(1)
    import symflow.systems as S
    from symflow.integrators import solve
    t1 = time.perf_counter()
    hh = S.get_system("henon_heiles")
    f = S.vector_field(hh)
    ts = torch.linspace(0.0, 10.0, 1001, dtype=torch.float64)
    y0 = hh.sample(1024, seed=0)
    t2 = time.perf_counter()
    solve(f, y0, ts, "rk38", compile=True)
    t3 = time.perf_counter()
    solve(f, y0, ts, "rk38", compile=True)
    t4 = time.perf_counter()
    print(t1 - t0, t3 - t2, t4 - t3)
    """
)

_HOG = textwrap.dedent(
    """
    import sys, time, torch
    torch.set_num_threads(2)
    a = torch.randn(300, 300)
    end = time.time() + float(sys.argv[1])
    while time.time() < end:
        a = torch.tanh(a @ a)
    """
)


def first_call() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "OMP_NUM_THREADS": "1"}
        for label in ("first process, empty cache", "second process, same cache"):
            out = subprocess.run([sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(f"the fresh process failed:\n{out.stderr[-3000:]}")
            imp, first, second = (float(v) for v in out.stdout.split()[-3:])
            rows.append(
                {
                    "case": f"RK4 B=1024 1000 steps, compile=True: {label}",
                    "first compiled solve s": first,
                    "next call s": second,
                    "import s": imp,
                    "target s": 10.0 if "second" in label else None,
                }
            )
            print(rows[-1], flush=True)
    return rows


def oversubscribed(hogs=(0, 2, 4), repeat: int = 5) -> list[dict]:
    import symflow.integrators.compiled as compiled
    import symflow.systems as S
    from symflow.integrators import solve

    torch.set_num_threads(2)
    hh = S.get_system("henon_heiles")
    f = S.vector_field(hh)
    ts = torch.linspace(0.0, 10.0, 1001, dtype=torch.float64)
    y0 = hh.sample(1024, seed=0)
    solve(f, y0, ts, "rk38", compile=True)  # compile outside the timings
    rule = compiled.SMALL_PROBLEM

    def compiled_all_threads():
        compiled.SMALL_PROBLEM = 0  # every kernel on torch.get_num_threads() threads (before)
        try:
            return solve(f, y0, ts, "rk38", compile=True)
        finally:
            compiled.SMALL_PROBLEM = rule

    rows = []
    for n in hogs:
        procs = [subprocess.Popen([sys.executable, "-c", _HOG, "600"]) for _ in range(n)]
        try:
            time.sleep(20 if n else 0)  # let the 1-minute load average see them
            load = os.getloadavg()[0]
            res = interleaved(
                {
                    "eager": lambda: solve(f, y0, ts, "rk38"),
                    "compiled": lambda: solve(f, y0, ts, "rk38", compile=True),
                    "compiled, all threads": compiled_all_threads,
                },
                repeat=repeat,
            )
        finally:
            for p in procs:
                p.kill()
        eager = res["eager"]["median"]
        rows.append(
            {
                "case": f"RK4 B=1024 1000 steps, 2 threads, {n} competing 2-thread torch processes",
                "eager s": eager,
                "compiled s": res["compiled"]["median"],
                "compiled all-threads s (before)": res["compiled, all threads"]["median"],
                "ratio": eager / res["compiled"]["median"],
                "ratio before": eager / res["compiled, all threads"]["median"],
                "load average (1 min)": load,
            }
        )
        print(rows[-1], flush=True)
    return rows


def main(only: str | None = None) -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if only in (None, "cache"):
        write_result(
            "compile_cache",
            {
                "description": (
                    "Wall time of the first solve(compile=True) in a fresh Python process (RK4 3/8 rule, "
                    "Hénon–Heiles, B = 1024, 1000 steps, float64, 1 thread): with an empty Inductor cache "
                    "directory, then in a second process on the same directory (Inductor's FX-graph and "
                    "AOTAutograd caches; tracing is paid again). Import time listed apart. Load average "
                    f"(1 min) at the start: {os.getloadavg()[0]:.1f} on {cores} cores."
                ),
                "rows": first_call(),
            },
        )
    if only in (None, "oversubscribed"):
        write_result(
            "compile_oversubscribed",
            {
                "description": (
                    "RK4 (3/8 rule) on Hénon–Heiles, B = 1024, 1000 steps, float64, torch at 2 threads on "
                    f"{cores} cores while other torch processes (2 threads each) compete; eager vs "
                    "compile=True interleaved in one process. 'compiled': kernels on the size/load rule "
                    "(single-threaded below SMALL_PROBLEM elements when the load average says the cores "
                    "are taken); 'before': every kernel on 2 threads. Ratio = eager / compiled (> 1: "
                    "compiling pays); target: never below 1."
                ),
                "rows": oversubscribed(),
            },
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["cache", "oversubscribed"], default=None)
    main(ap.parse_args().only)
