"""Simulate an irregularly sampled Hénon–Heiles dataset, validate it, load it for training, plot it.

    python examples/simulate_dataset.py            # 2000 trajectories, T_end = 100, 50 observations each
    python examples/simulate_dataset.py --quick    # 64 short trajectories (< 1 minute on a CPU)

Writes ``<out>/henon_heiles_irregular.h5`` and ``<out>/simulate_dataset.png``: orbits with their
observations, each trajectory's own observation times, the energy error of the stored states
(the integrator's accuracy) and the distribution of gaps between observations.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch.utils.data import DataLoader

from symflow.data import TrajectoryDataset, collate_trajectories, open_trajectories, simulate, validate
from symflow.integrators import solve
from symflow.systems import vector_field


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a small run (< 1 minute on a CPU)")
    parser.add_argument("--out", default="demo-output/simulate_dataset", help="output folder")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n, t_end, n_obs = (64, 20.0, 30) if args.quick else (2000, 100.0, 50)
    path = out / "henon_heiles_irregular.h5"

    # 1. Simulate: every trajectory is solved to its own 50 random observation times.
    result = simulate(
        "henon_heiles",
        n,
        t_end,
        output=path,
        sampling="irregular",
        n_obs=n_obs,
        rtol=1e-9,
        atol=1e-12,
        seed=0,
        overwrite=True,
    )
    print(result)

    # 2. Validate (the same checks guard every reader).
    print(validate(path))

    # 3. Train/validation split by trajectory and a DataLoader of random 16-observation windows.
    dataset = TrajectoryDataset(path, window=16, seed=0, dtype=torch.float32)
    train, val = dataset.split(0.2, seed=0)
    loader = DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate_trajectories)
    batch = next(iter(loader))
    print(
        f"train {len(train)} / val {len(val)} trajectories; a batch: ts {tuple(batch.ts.shape)}, "
        f"ys {tuple(batch.ys.shape)}, mask {tuple(batch.mask.shape)}"
    )

    # 4. Look at it.
    png = out / "simulate_dataset.png"
    plot(path, png)
    print(f"wrote {png}")
    return png


def plot(path: Path, png: Path) -> None:
    with open_trajectories(path) as f:
        t, y, length = f.read_block(0, f.n)
        energy = f.read_dataset("energy")
        t_end = f.attrs["sampling"]["t_end"]
        system = f.system()
    n, T = t.shape
    inside = np.arange(T)[None] < length[:, None]
    fig, ax = plt.subplots(2, 2, figsize=(11, 8.5))

    a = ax[0, 0]
    # The observations lie on the orbit: a dense solve of the same initial states, drawn as lines.
    shown = 3
    dense_t = torch.linspace(0.0, float(np.nanmax(t[:shown])), 2000, dtype=torch.float64)
    dense = solve(vector_field(system), torch.from_numpy(y[:shown, 0]), dense_t, rtol=1e-10, atol=1e-12).ys
    for i in range(shown):
        L = length[i]
        (line,) = a.plot(dense[i, :, 0], dense[i, :, 1], "-", lw=0.5, alpha=0.5)
        a.plot(
            y[i, :L, 0], y[i, :L, 1], "o", ms=3.5, color=line.get_color(), label=f"trajectory {i}: {L} obs."
        )
    a.set(xlabel="x", ylabel="y", title="observations (dots) on their orbits (dense re-solve, lines)")
    a.legend(fontsize=8)

    a = ax[0, 1]
    rows = min(n, 25)
    for i in range(rows):
        a.plot(t[i, : length[i]], np.full(length[i], i), "|", ms=7, color="C0")
    a.set(xlabel="t", ylabel="trajectory", title="each trajectory's own observation times", xlim=(0, t_end))

    a = ax[1, 0]
    rel = np.abs(energy - energy[:, :1]) / np.abs(energy[:, :1])
    for i in range(min(n, 40)):
        a.semilogy(t[i, : length[i]][1:], np.maximum(rel[i, 1 : length[i]], 1e-17), lw=0.6, alpha=0.5)
    a.set(
        xlabel="t",
        ylabel="|H(t) − H(0)| / H(0)",
        title="energy error of the stored states (dopri5, rtol 1e-9)",
    )

    a = ax[1, 1]
    gaps = np.diff(t, axis=1)[inside[:, 1:]]
    a.hist(gaps, bins=40, density=True, color="C2", alpha=0.8)
    a.set(
        xlabel="gap between observations", ylabel="density", title=f"{gaps.size} gaps, mean {gaps.mean():.3g}"
    )

    fig.suptitle(f"Hénon–Heiles, {n} trajectories, irregular sampling ({path.name})")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
