"""A system of your own, end to end: a coupled double well that is not in symflow's registry.

    H(x, y, p_x, p_y) = ½(p_x² + p_y²) + (x² − 1)² + ½ y² + ½ x² y²

Three jobs, the first hour of a new user:

1. **Integrate it with symplectic methods.** ``from_hamiltonian`` finds that ``H = T(p) + V(q)``
   (``∂²H/∂q∂p = 0`` at sampled states), so Verlet and Yoshida's 4th-order splitting apply; its default
   sampler puts initial states on an energy shell. The energy error stays bounded with the splittings
   and drifts with RK4. Dense output gives the solution between the output times.
2. **CLI: simulate → train → diagnose.** This file is also a plugin: ``symflow --plugin
   examples/custom_double_well.py ...`` registers ``double_well`` for the command, so the three CLI
   stages run on it exactly as on a built-in system (the diagnosis draws the true system's Poincaré
   section beside the learned one).
3. **A Poincaré section through the API**: ``y = 0`` crossed upwards, plotted in ``(x, p_x)``, built
   with ``PoincareSurface.plane`` and computed for many orbits in one call.

Run ``python examples/custom_double_well.py [--quick] [--out DIR]``; figures and the diagnosis go to
``DIR`` (default ``custom-double-well-output``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

import symflow.diagnostics as D
import symflow.systems as S
from symflow.integrators import solve

NAMES = ("x", "y", "p_x", "p_y")


def hamiltonian(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    x, y = q[..., 0], q[..., 1]
    return 0.5 * (p * p).sum(-1) + (x * x - 1) ** 2 + 0.5 * y * y + 0.5 * x * x * y * y


WELL = S.from_hamiltonian(
    hamiltonian,
    dof=2,
    name="double_well",
    box=1.5,  # the default sampler's box: both wells, x = ±1, lie inside
    coordinate_names=NAMES,
    poincare=S.PoincareSurface.plane("y", 0.0, direction=+1, plot=("x", "p_x"), names=NAMES),
    description="coupled double well (x² − 1)² + y²/2 + x²y²/2",
)
# Imported as a plugin (symflow --plugin this_file.py ...), this line is what makes the CLI know it.
S.register_system(WELL, overwrite=True)


def integrate(out: Path, quick: bool) -> dict[str, float]:
    """Job 1: long runs with Verlet, Yoshida 4 and RK4 at the same step; energy error over time."""
    from matplotlib.figure import Figure

    energy = 0.8
    y0 = WELL.sample(8, seed=0, energy=energy)  # the default sampler, on the shell H = 0.8
    t_end = 30.0 if quick else 1000.0
    ts = torch.linspace(0.0, t_end, 201, dtype=torch.float64)
    f = S.vector_field(WELL)
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    growth = {}
    for method in ("verlet", "yoshida4", "rk4"):
        sol = solve(f, y0, ts, method, dt=0.05, dense_output=method == "yoshida4")
        err = (WELL.energy(sol.ys) - energy).abs().max(0).values  # worst orbit at each time
        half = ts.shape[0] // 2
        growth[method] = float(err[half:].max() / err[1:half].max())
        ax.semilogy(ts[1:], err[1:], label=f"{method} (dt = 0.05)")
        print(
            f"  {method:9s} max |H − E| {float(err.max()):.2e}, second half / first half {growth[method]:.2f}"
        )
        if sol.interpolation is not None:
            fine = torch.linspace(0.0, 2.0, 9, dtype=torch.float64)
            between = sol.evaluate(fine)[0]  # orbit 0 between the output times
            xs = [round(v, 3) for v in between[:, 0].tolist()]
            print(f"  dense output of orbit 0 at t = 0, 0.25, …, 2: x = {xs}")
    ax.set_xlabel("time t")
    ax.set_ylabel("max over 8 orbits of |H(t) − H(0)|")
    ax.set_title("Custom double well, E = 0.8: splittings keep the energy error bounded")
    ax.legend()
    fig.savefig(out / "energy_error.png", dpi=120)
    return growth


def cli_chain(out: Path, quick: bool) -> dict:
    """Job 2: the three CLI stages on the custom system through --plugin.

    The full run starts a fresh ``symflow`` process per stage, exactly as from a shell; the quick run
    calls the same entry point in this process (``symflow.cli.main``), which saves the interpreter
    start-ups.
    """
    from symflow.cli import main as symflow

    plugin = str(Path(__file__).resolve())
    env = {**os.environ, "SYMFLOW_PROGRESS": "0"}
    data, run, report = out / "well.h5", out / "runs" / "well", out / "diagnosis"
    n, t_data, steps, orbits, t_end = (16, "4", 10, 2, 4) if quick else (400, "10", 1500, 32, 300)
    simulate = [
        "simulate",
        "double_well",
        "--n",
        str(n),
        "--t-end",
        t_data,
        "--n-obs",
        "21",
        "--energy",
        "0.8",
    ]
    train = ["train", "node", "--data", str(data), "--out", str(run), "--steps", str(steps), "--overwrite"]
    diagnose = ["diagnose", str(run), "--energy", "0.8", "--orbits", str(orbits), "--t-end", str(t_end)]
    stages = [
        [*simulate, "--overwrite", "-o", str(data)],
        [*train, "--quiet", *(["--no-eval", "--width", "32"] if quick else [])],
        [*diagnose, "--poincare", "-o", str(report)],
    ]
    for argv in stages:
        command = [sys.executable, "-m", "symflow.cli.main", "--plugin", plugin, *argv]
        print(
            "  $ symflow --plugin examples/custom_double_well.py " + " ".join(argv[:2]) + " ...", flush=True
        )
        t0 = time.perf_counter()
        if quick:
            os.environ["SYMFLOW_PROGRESS"] = "0"
            if symflow(command[3:]) != 0:
                raise SystemExit(f"stage {argv[0]} failed")
        else:
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"stage {argv[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
            print("    " + "\n    ".join(done.stdout.strip().splitlines()[-4:]))
        print(f"    ({time.perf_counter() - t0:.0f} s)")
    return json.loads((report / "report.json").read_text())


def section(out: Path, quick: bool) -> D.PoincareSection:
    """Job 3: the section y = 0 (upwards) of many orbits of the custom system, in one call."""
    y0 = WELL.sample(16 if quick else 200, seed=1, energy=0.9)
    source = D.IntegratorSource.for_system(WELL, "yoshida4", dt=0.05)
    surface = WELL.surface("y", 0.0, direction=+1, plot=("x", "p_x"))
    result = D.poincare_section(source, y0, 60.0 if quick else 1000.0, surface=surface)
    D.plot_section(result, out / "poincare_section", title="Custom double well, E = 0.9: y = 0, y increasing")
    print(f"  {result}")
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute on a CPU)")
    parser.add_argument("--out", type=Path, default=Path("custom-double-well-output"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    started = time.perf_counter()
    print(WELL)
    print(f"sampler: {WELL.sample(2, seed=0, energy=0.8).tolist()} (H = 0.8)")
    print("1. symplectic integration")
    growth = integrate(args.out, args.quick)
    print(f"   ({time.perf_counter() - started:.0f} s)")
    print("2. simulate → train → diagnose on the command line")
    report = cli_chain(args.out, args.quick)
    print("3. Poincaré section")
    t3 = time.perf_counter()
    sec = section(args.out, args.quick)
    print(f"   ({time.perf_counter() - t3:.0f} s)")
    summary = {
        "separable": WELL.separable,
        "energy_growth": growth,
        "diagnosis_reference": report["poincare"]["distance"]["reference"],
        "section_crossings": len(sec),
        "seconds": time.perf_counter() - started,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"done in {summary['seconds']:.0f} s; figures and the diagnosis are in {args.out}/")
    return summary


if __name__ == "__main__":
    main()
