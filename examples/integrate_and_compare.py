"""Integrate a Hamiltonian system with several methods and compare accuracy, cost and energy.

    python examples/integrate_and_compare.py            # Kepler orbit, 200 periods
    python examples/integrate_and_compare.py --quick    # a few seconds

Prints a table (error against the exact flow, relative energy error, evaluations of f, wall time)
and writes ``integrators.png``: energy error against time for each method on a log axis, where the
bounded error of the symplectic methods and the drift of the others are plain to see.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import symflow.systems as S
from symflow.integrators import solve


def main(quick: bool, out: Path) -> None:
    torch.set_default_dtype(torch.float64)
    kepler = S.get_system("kepler")
    f = S.vector_field(kepler)
    y0 = torch.tensor([[0.7, 0.0, 0.0, math.sqrt(1.3 / 0.7)]])  # eccentricity 0.3, period 2π
    periods = 5 if quick else 200
    ts = torch.linspace(0, 2 * math.pi * periods, 20 * periods + 1)
    exact = kepler.flow(ts[None, :], y0[:, None])
    runs = {
        "rk4 (dt=0.02)": dict(method="rk4", dt=0.02),
        "dopri5 (rtol=1e-8)": dict(method="dopri5", rtol=1e-8, atol=1e-10),
        "verlet (dt=0.005)": dict(method="verlet", dt=0.005),
        "yoshida4 (dt=0.02)": dict(method="yoshida4", dt=0.02),
        "gl4 (dt=0.05)": dict(method="gl4", dt=0.05),
    }
    fig, ax = plt.subplots(figsize=(9, 4))
    print(f"{'method':22s} {'max |y - exact|':>16s} {'max |ΔH/H|':>12s} {'f evals':>9s} {'wall s':>8s}")
    for label, kw in runs.items():
        t0 = time.perf_counter()
        sol = solve(f, y0, ts, **kw)
        wall = time.perf_counter() - t0
        energy = kepler.energy(sol.ys[0])
        rel = ((energy - energy[0]) / energy[0]).abs()
        err = (sol.ys - exact).abs().max().item()
        print(f"{label:22s} {err:16.3e} {rel.max().item():12.3e} {int(sol.stats['nfev']):9d} {wall:8.2f}")
        ax.semilogy(ts[1:] / (2 * math.pi), rel[1:].clamp(min=1e-17), label=label, lw=1)
    ax.set_xlabel("time (orbital periods)")
    ax.set_ylabel("relative energy error |H(t) − H(0)| / |H(0)|")
    ax.set_title("Kepler problem, e = 0.3: energy error of each integrator")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "integrators.png", dpi=120)
    print(f"wrote {out / 'integrators.png'}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 periods instead of 200")
    ap.add_argument("--out", type=Path, default=Path("example-output"), help="folder for the plot")
    args = ap.parse_args()
    main(args.quick, args.out)
