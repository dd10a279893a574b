"""Run every benchmark at full size, one after another, each in a fresh process (`make bench`).

Each script records its results under ``benchmarks/results/`` and regenerates the tables in
``benchmarks/README.md``. Expect a few hours on a 2-core CPU; run one script alone with
``python -m benchmarks.bench_<name>`` (add ``--quick`` for a smoke test).
"""

from __future__ import annotations

import subprocess
import sys
import time

SCRIPTS = (
    "bench_integrators",
    "bench_adjoint",
    "bench_neural_ode",
    "bench_discovery",
    "bench_simulate",
    "bench_poincare",
    "bench_sympflow",
    "bench_sympflow_data",
    "bench_cnf",
    "bench_custom_field",
)


def main(argv: list[str]) -> int:
    failed = []
    for name in SCRIPTS:
        started = time.perf_counter()
        print(f"== {name}", flush=True)
        code = subprocess.call([sys.executable, "-m", f"benchmarks.{name}", *argv])
        print(f"== {name}: exit {code} after {time.perf_counter() - started:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
