"""Continuous adjoint: peak memory against the number of steps, and speed vs torchdiffeq.

1. Peak resident memory of one forward+backward solve in a fresh process (see
   ``memory_probe.py``): fixed-step RK4 with 10², 10³, 10⁴ steps, MLP field (width 32, batch 32),
   adjoint vs discrete backprop. Issue target: the adjoint grows ≤ 5% from 10² to 10⁴ steps, backprop
   linearly.
2. Forward+backward wall time of a training step (MSE to Hénon–Heiles trajectories, 128 samples,
   21 observation times) vs ``torchdiffeq.odeint_adjoint`` on the same model, data and tolerances
   (dopri5, rtol 1e-6, atol 1e-8), for an MLP field and a Hamiltonian neural network, with the
   seminorm and the full norm. Issue target: symflow time / torchdiffeq time ≤ 1.0 on CPU.

``python -m benchmarks.bench_adjoint [--quick]``
"""

from __future__ import annotations

import argparse

import torch

import symflow.systems as S
from benchmarks.harness import interleaved, write_result
from benchmarks.memory_probe import run as probe
from symflow.discovery.models import HamiltonianNN, MLPVectorField
from symflow.integrators import AdjointOptions, solve


def memory(step_counts: list[int], backprop_max: int) -> list[dict]:
    rows = []
    base = {}
    for adjoint in (True, False):
        for n in step_counts:
            if not adjoint and n > backprop_max:
                continue
            r = probe(n, adjoint)
            mb = (r["peak_kb"] - r["before_kb"]) / 1024
            key = "adjoint" if adjoint else "backprop"
            base.setdefault(key, r["peak_kb"])
            rows.append(
                {
                    "case": f"{key}, {n} RK4 steps",
                    "peak RSS MB": r["peak_kb"] / 1024,
                    "solve's own peak MB": mb,
                    "growth vs 100 steps": r["peak_kb"] / base[key] - 1,
                }
            )
            print(rows[-1], flush=True)
    return rows


# The models of symflow.discovery (seeded): the same fields `symflow train node` trains.
MODELS = {
    "MLP": lambda: MLPVectorField(4, width=64, depth=2, activation="tanh"),
    "HNN": lambda: HamiltonianNN(4, width=64, depth=2, activation="softplus", gradient="autodiff"),
}


def speed(batch: int, repeat: int) -> list[dict]:
    import torchdiffeq

    hh = S.get_system("henon_heiles")
    y0 = hh.sample(batch, seed=0, energy=0.1)
    ts = torch.linspace(0, 5, 21, dtype=torch.float64)
    with torch.no_grad():
        data = solve(S.vector_field(hh), y0, ts, rtol=1e-10, atol=1e-12).ys
    rows = []
    for label, build in MODELS.items():
        for seminorm in (True, False):
            torch.manual_seed(0)
            m = build().double()
            tol = {"rtol": 1e-6, "atol": 1e-8}

            def ours(m=m, seminorm=seminorm, tol=tol):
                m.zero_grad()
                sol = solve(m, y0, ts, "dopri5", adjoint=AdjointOptions(seminorm=seminorm), **tol)
                ((sol.ys - data) ** 2).mean().backward()
                return [p.grad.clone() for p in m.parameters()]

            def theirs(m=m, seminorm=seminorm, tol=tol):
                m.zero_grad()
                opts = {"norm": "seminorm"} if seminorm else {}
                ys = torchdiffeq.odeint_adjoint(
                    m,
                    y0,
                    ts,
                    method="dopri5",
                    adjoint_params=tuple(m.parameters()),
                    adjoint_options=opts,
                    **tol,
                )
                ((ys.transpose(0, 1) - data) ** 2).mean().backward()
                return [p.grad.clone() for p in m.parameters()]

            res = interleaved({"symflow": ours, "torchdiffeq": theirs}, repeat=repeat)
            g1, g2 = ours(), theirs()
            diff = max(float((a - b).norm() / b.norm()) for a, b in zip(g1, g2) if b.norm() > 0)
            rows.append(
                {
                    "case": f"{label} B={batch} {'seminorm' if seminorm else 'full norm'}",
                    "symflow s": res["symflow"]["median"],
                    "torchdiffeq s": res["torchdiffeq"]["median"],
                    "symflow / torchdiffeq": res["symflow"]["median"] / res["torchdiffeq"]["median"],
                    "gradient rel. diff": diff,
                }
            )
            print(rows[-1], flush=True)
    return rows


def main(quick: bool = False) -> None:
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    if quick:
        memory([100, 1000], 1000)
        speed(16, 1)
        return
    rows = memory([100, 1000, 10_000], 10_000)
    rows += speed(128, 3)
    write_result(
        "adjoint",
        {
            "description": (
                "Peak RSS: fresh process per row, high-water mark reset before the solve. Speed: one "
                "forward+backward training step, 1 thread, float64; ratio < 1 means symflow is faster."
            ),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    main(ap.parse_args().quick)
