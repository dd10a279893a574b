"""Generating irregularly sampled Hénon–Heiles data: ``symflow.data.simulate`` vs a SciPy loop.

Configuration (full run): 10⁴ trajectories, T_end = 100, 50 observation times per trajectory drawn
uniformly at random (each trajectory its own times), dopri5 with rtol = 1e-9, atol = 1e-12.

* **ours**: one :func:`symflow.data.simulate` call — initial states, times, batched solves with
  per-trajectory grids (equal chunks of at most 4096), and the compressed HDF5 file. Its time
  includes writing.
* **peer**: ``scipy.integrate.solve_ivp`` per trajectory with ``t_eval`` = that trajectory's times,
  RK45 (the same Dormand–Prince 5(4) pair) and DOP853, on the same initial states and times. A
  SciPy loop over 10⁴ trajectories takes long, so it runs on a random subset and its time is
  scaled per trajectory to 10⁴ (stated in the result).
* **accuracy**: on a further subset, the largest error over a trajectory's observations against a
  DOP853 solve at rtol = 1e-13, atol = 1e-15; the median over the subset is reported. Besides the
  same-tolerance comparison, each SciPy method is also timed at the loosest tolerance whose median
  error is still at most ours ("matched accuracy"), which is the fair speed comparison.
* **write throughput**: the same trajectories written again from memory by
  :func:`symflow.data.write_trajectories` (gzip, fletcher32), in trajectories per second.

Both sides use one CPU core (``torch.set_num_threads(1)``; SciPy is single-threaded), timed in one
process, interleaved (``harness.interleaved``).

    python -m benchmarks.bench_simulate [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.integrate import solve_ivp

from benchmarks.harness import interleaved, write_result
from symflow.data import open_trajectories, simulate, write_trajectories

N_FULL = 10_000
T_END = 100.0
N_OBS = 50
RTOL, ATOL = 1e-9, 1e-12
# SciPy tolerances scanned for the matched-accuracy comparison (atol = rtol·1e-3).
SCAN = (1e-10, 3e-10, 1e-9, 3e-9, 1e-8, 3e-8, 1e-7, 3e-7, 1e-6)


def henon_heiles_rhs(_t: float, s: np.ndarray) -> list[float]:
    """``J∇H`` of Hénon–Heiles (λ = 1) on plain floats: the fastest form for a SciPy loop."""
    x, y, px, py = s
    return [px, py, -x - 2.0 * x * y, -y - (x * x - y * y)]


def scipy_solve(t: np.ndarray, y0: np.ndarray, method: str, rtol: float, atol: float) -> np.ndarray:
    sol = solve_ivp(henon_heiles_rhs, (t[0], t[-1]), y0, method=method, t_eval=t, rtol=rtol, atol=atol)
    if sol.status != 0:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return sol.y.T


def scipy_loop(t: np.ndarray, y0: np.ndarray, rows: np.ndarray, method: str, rtol: float, atol: float):
    return [scipy_solve(t[i], y0[i], method, rtol, atol) for i in rows]


def max_errors(states: list[np.ndarray], reference: list[np.ndarray]) -> np.ndarray:
    return np.array([np.abs(a - b).max() for a, b in zip(states, reference)])


def main(quick: bool = False) -> dict[str, object]:
    torch.set_num_threads(1)
    n = 500 if quick else N_FULL
    n_scipy = 20 if quick else 200
    n_acc = 10 if quick else 100
    repeat = 1 if quick else 2
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "hh.h5"

        def ours():
            return simulate(
                "henon_heiles",
                n,
                T_END,
                output=out,
                sampling="irregular",
                n_obs=N_OBS,
                rtol=RTOL,
                atol=ATOL,
                seed=0,
                overwrite=True,
                progress=False,
            )

        result = ours()  # also the data both sides solve
        with open_trajectories(out) as f:
            t, y, _ = f.read_block(0, f.n)
            status = f.status.copy()
        y0 = y[:, 0]
        rows = np.sort(rng.choice(n, size=n_scipy, replace=False))
        acc_rows = rows[:n_acc]

        # Accuracy against a tight DOP853 reference.
        reference = scipy_loop(t, y0, acc_rows, "DOP853", 1e-13, 1e-15)
        err_ours = max_errors([y[i] for i in acc_rows], reference)
        errors = {"symflow dopri5": err_ours}
        matched: dict[str, tuple[float, np.ndarray]] = {}
        for method in ("RK45", "DOP853"):
            errors[f"scipy {method}"] = max_errors(scipy_loop(t, y0, acc_rows, method, RTOL, ATOL), reference)
            # The loosest tolerance whose median error is still ≤ ours (tighter than ours if need be).
            scanned = {
                rtol: max_errors(scipy_loop(t, y0, acc_rows, method, rtol, rtol * 1e-3), reference)
                for rtol in SCAN
            }
            good = [r for r in SCAN if np.median(scanned[r]) <= np.median(err_ours)]
            rtol = max(good) if good else min(SCAN)
            matched[method] = (rtol, scanned[rtol])

        cases = {
            "symflow": ours,
            "scipy RK45": lambda: scipy_loop(t, y0, rows, "RK45", RTOL, ATOL),
            "scipy DOP853": lambda: scipy_loop(t, y0, rows, "DOP853", RTOL, ATOL),
        }
        for method, (rtol, _) in matched.items():
            cases[f"scipy {method} matched"] = lambda m=method, r=rtol: scipy_loop(
                t, y0, rows, m, r, r * 1e-3
            )
        timing = interleaved(cases, repeat=repeat, warmup=0)

        # Write throughput: the same arrays written again from memory.
        t0 = time.perf_counter()
        write_trajectories(Path(tmp) / "again.h5", t, y, status=status, overwrite=True)
        write_s = time.perf_counter() - t0
        size_mb = (Path(tmp) / "again.h5").stat().st_size / 2**20

    ours_s = timing["symflow"]["median"]
    rows_out: list[dict[str, object]] = []
    for name in ("RK45", "DOP853"):
        per_traj = timing[f"scipy {name}"]["median"] / n_scipy
        rows_out.append(
            {
                "case": f"scipy {name}, same tolerance (rtol {RTOL:g})",
                "ours": ours_s,
                "peer": per_traj * n,
                "ratio": per_traj * n / ours_s,
                "median err ours": float(np.median(err_ours)),
                "median err peer": float(np.median(errors[f"scipy {name}"])),
            }
        )
        rtol, e = matched[name]
        per_traj = timing[f"scipy {name} matched"]["median"] / n_scipy
        rows_out.append(
            {
                "case": f"scipy {name}, matched accuracy (rtol {rtol:g})",
                "ours": ours_s,
                "peer": per_traj * n,
                "ratio": per_traj * n / ours_s,
                "median err ours": float(np.median(err_ours)),
                "median err peer": float(np.median(e)),
            }
        )
    rows_out.append({"case": "simulate end to end (trajectories/s)", "value": n / ours_s})
    rows_out.append({"case": "write_trajectories from memory (trajectories/s)", "value": n / write_s})
    rows_out.append({"case": f"file size for {n} trajectories (MiB)", "value": size_mb})
    payload = {
        "description": " ".join(
            [
                f"Generate {n} Hénon–Heiles trajectories (λ = 1, energies in [0.02, 0.12]),",
                f"T_end = {T_END:g},",
                f"{N_OBS} uniformly random observation times per trajectory, dopri5 rtol {RTOL:g}",
                f"atol {ATOL:g}, written to HDF5 (ours: one simulate() call, equal chunks of <= 4096,",
                "time includes the file). Peer: scipy solve_ivp per trajectory with t_eval, timed on a",
                f"random subset of {n_scipy} trajectories and scaled per trajectory to {n}.",
                f"Errors: median over {n_acc} trajectories of the max abs error over the observations",
                "vs DOP853 at rtol 1e-13. 'matched accuracy' = loosest SciPy rtol (atol = rtol·1e-3)",
                f"whose median error is <= ours. One CPU thread each; median of {repeat} interleaved runs.",
                f"{result.n_failed} failed solves.",
            ]
        ),
        "rows": rows_out,
    }
    for r in rows_out:
        print({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()})
    if not quick:
        write_result("simulate", payload)
    return payload


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="500 trajectories, small SciPy subsets, no result file"
    )
    main(parser.parse_args().quick)
