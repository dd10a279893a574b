"""Learn the Hénon–Heiles vector field from irregular, noisy trajectories in an HDF5 file.

    python examples/discovery_from_hdf5.py           # 200 trajectories, HNN, a few CPU minutes
    python examples/discovery_from_hdf5.py --quick   # a tiny run (seconds)

Steps: simulate a data set to HDF5 (irregular observation times, Gaussian noise σ = 1e-3), train a
Hamiltonian neural network on it (secant warm start, then full-batch L-BFGS on the one-step error of
every consecutive pair of observations — the recipe of the discovery benchmark), compare it with the
true system on held-out initial conditions, and plot predicted vs true trajectories and the true
energy along them (``discovery.png``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import symflow.systems as S
from symflow.data import simulate
from symflow.discovery.training import NodeConfig, load_node, train_node
from symflow.integrators import solve

LBFGS_STEPS = 80  # as benchmarks/bench_discovery.py


def main(quick: bool, out: Path) -> None:
    torch.set_default_dtype(torch.float64)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "hh.h5"
    n, t_end, n_obs = (24, 6.0, 12) if quick else (200, 20.0, 50)
    simulate(
        "henon_heiles",
        n,
        t_end,
        output=data,
        sampling="irregular",
        n_obs=n_obs,
        noise=1e-3,
        seed=0,
        rtol=1e-10,
        atol=1e-12,
        overwrite=True,
        progress=not quick,
    )
    cfg = NodeConfig(
        data=str(data),
        model="hnn",
        gradient="explicit",
        width=32,
        depth=2,
        input_scale=3.0,
        warm_start_steps=50 if quick else 2000,
        steps=0,
        lbfgs_steps=3 if quick else LBFGS_STEPS,
        lbfgs_iterations=5 if quick else 10,
        val_every=1 if quick else 10,
        log_every=1,
    )
    summary = train_node(cfg, out / "run", overwrite=True, progress=not quick)
    print(json.dumps(summary.get("evaluation", {}), indent=2))

    model = load_node(out / "run")
    hh = S.get_system("henon_heiles")
    y0 = hh.sample(3, seed=99, energy=0.1)
    ts = torch.linspace(0, 10, 201)
    with torch.no_grad():
        truth = solve(S.vector_field(hh), y0, ts, rtol=1e-10, atol=1e-12).ys
        pred = solve(model, y0, ts, rtol=1e-9, atol=1e-11).ys
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i in range(3):
        axes[0].plot(truth[i, :, 0], truth[i, :, 1], color=f"C{i}", lw=1.5, label=f"true orbit {i}")
        axes[0].plot(pred[i, :, 0], pred[i, :, 1], color=f"C{i}", lw=1, ls="--", label=f"learned {i}")
        axes[1].plot(
            ts, hh.energy(pred[i]) - hh.energy(y0[i]), color=f"C{i}", label=f"true H along learned {i}"
        )
    axes[0].set(xlabel="x", ylabel="y", title="Hénon–Heiles, held-out orbits to T = 10")
    axes[0].legend(fontsize=7, ncol=2)
    axes[1].set(xlabel="t", ylabel="H(ŷ(t)) − H(y₀)", title="true energy along the learned trajectories")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "discovery.png", dpi=120)
    print(f"wrote {out / 'discovery.png'}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a tiny data set and a few training steps")
    ap.add_argument("--out", type=Path, default=Path("example-output/discovery"))
    args = ap.parse_args()
    main(args.quick, args.out)
