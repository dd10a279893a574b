"""PINN initial condition: exact constraints vs the soft term γ‖N(0) − x0‖², on the oscillator.

The single-IVP PINN (seed 004, slide "PINN") on the harmonic oscillator, x0 = (1, 0), t ∈ [0, 2π]
(one period), trained identically (Adam then L-BFGS, same seed, same collocation) with

* ``linear`` (N = x0 + t·Ñ) and ``tfc`` (N = Ñ(t) − Ñ(0) + x0): N(0) = x0 exactly;
* ``soft`` with γ = 1, 10, 100: N(0) = x0 only through the loss; and γ = 100 with the residual at
  fixed Gauss–Legendre nodes weighted by their quadrature weights ω_i.

Reported: the max error over [0, 2π] against the exact solution (201 points), the error at t = 0
(‖N(0) − x0‖), and training CPU seconds. One torch thread.

    python -m benchmarks.bench_pinn_constraint            # 1500 Adam + 100 L-BFGS steps per case
    python -m benchmarks.bench_pinn_constraint --quick    # 100 + 5 steps, not recorded
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from benchmarks.harness import write_result
from symflow.learners import train_flow_map

CASES = [
    ("linear", 0.0, "uniform"),
    ("tfc", 0.0, "uniform"),
    ("soft", 1.0, "uniform"),
    ("soft", 10.0, "uniform"),
    ("soft", 100.0, "uniform"),
    ("soft", 100.0, "gauss_legendre"),
]


def run(adam: int, lbfgs: int) -> dict:
    torch.set_num_threads(1)
    rows = []
    for constraint, gamma, weights in CASES:
        t0 = time.process_time()
        result = train_flow_map("harmonic_oscillator", learner="pinn", kind="ivp", x0=(1.0, 0.0),
                                t_end=2 * math.pi, constraint=constraint, ic_weight=gamma or 1.0,
                                collocation_weights=weights, adam_steps=adam, lbfgs_steps=lbfgs,
                                collocation=64, lbfgs_points=64, seed=0, progress=False,
                                plots=False)  # fmt: skip
        s = result.summary
        label = constraint if constraint != "soft" else f"soft γ={gamma:g}"
        if weights != "uniform":
            label += f", ω = {weights}"
        rows.append(
            {
                "case": f"IVP PINN oscillator, {label}",
                "value": s["error_max"],
                "unit": "max error on [0, 2π]",
                "error at t=0": s["initial_condition_error"],
                "error at t=2π": s["error_final"],
                "train CPU s": time.process_time() - t0,
            }
        )
        print(rows[-1], flush=True)
    description = (
        f"Initial condition of the single-IVP PINN (tanh MLP 32×2) on the harmonic oscillator, x0 = (1, 0), "
        f"t ∈ [0, 2π]: exact constraints (linear, tfc) vs the soft loss term γ‖N(0) − x0‖² (seed 004), "
        f"{adam} Adam + {lbfgs} L-BFGS steps, 64 collocation times (uniform random, resampled; or 64 fixed "
        f"Gauss–Legendre nodes with their quadrature weights), seed 0, one thread. "
        f"'value' = max ‖N(t) − x(t)‖ "
        f"over 201 times against the exact solution."
    )
    return {"description": description, "rows": rows}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    a = parser.parse_args()
    payload = run(100, 5) if a.quick else run(1500, 100)
    if not a.quick:
        write_result("pinn_constraint", payload)
