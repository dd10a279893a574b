"""SympFlow against the flow-map PINN on Hénon–Heiles (the seed's unsupervised experiment).

Both networks (~1.2k weights each) learn the flow map on Ω = {H ≤ 1/12} × [0, Δt = 1] from the
equations alone (Hamiltonian matching), then are composed N(δt) ∘ N(Δt)^n far beyond Δt. SympFlow
is exactly symplectic, so its energy error stays bounded; the PINN's is not and drifts. Trajectory
errors are measured against a Gauss–Legendre (gl6) reference.

    python examples/sympflow_henon_heiles.py           # full: T = 1000 (about 20-30 CPU minutes)
    python examples/sympflow_henon_heiles.py --quick   # smoke test, well under a minute
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from symflow.learners import train_flow_map
from symflow.learners.experiments import experiment, quick
from symflow.learners.plots import plot_energy, plot_trajectories
from symflow.systems import get_system


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny training, short horizons (< 1 minute)")
    parser.add_argument("--out", type=Path, default=Path("runs/examples/sympflow_henon_heiles"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    results = {}
    for label, name in (("SympFlow", "henon_heiles"), ("flow-map PINN", "henon_heiles_pinn")):
        config = experiment(name)
        if args.quick:
            config = quick(config, horizon=5.0, energy_horizon=20.0)
            config["adam_steps"] = 60
        system = config.pop("system")
        folder = args.out / config["learner"]
        results[label] = train_flow_map(system, **config, seed=args.seed, run_dir=folder, overwrite=True)

    hh = get_system("henon_heiles")
    energy = {
        label: (r.evaluation["energy"]["ts"], r.evaluation["energy"]["relative_error"])
        for label, r in results.items()
    }
    plot_energy(
        energy, args.out / "energy_comparison.png", title="Hénon–Heiles, Δt = 1, H ≤ 1/12: energy error"
    )
    roll = {label: r.evaluation["rollout"] for label, r in results.items()}
    first = next(iter(roll.values()))
    plot_trajectories(
        first["ts"],
        {label: r["prediction"] for label, r in roll.items()},
        first["reference"],
        list(hh.coordinate_names),
        args.out / "trajectory_comparison.png",
        title="Hénon–Heiles: composed flow maps vs gl6 reference",
    )
    print(f"{'':16s} {'weights':>8s} {'CPU s':>7s} {'residual':>9s} {'traj err':>9s} {'E err max':>9s} "
          f"{'early':>9s} {'late':>9s}")  # fmt: skip
    out = {}
    for label, r in results.items():
        s = r.summary
        out[label] = s
        print(
            f"{label:16s} {s['parameters']:8d} {s['train_cpu_seconds']:7.0f} {s['residual_mse']:9.2e} "
            f"{s['rollout_error_max']:9.2e} {s['energy_error_max']:9.2e} {s['energy_error_early_max']:9.2e} "
            f"{s['energy_error_late_max']:9.2e}"
        )
    s = next(iter(out.values()))
    print(
        f"(trajectory error to T = {s['horizon']:g}; energy error to T = {s['energy_horizon']:g}; "
        "early/late: max over the first/last 10% of the run)"
    )
    print(f"figures in {args.out}/")
    return out


if __name__ == "__main__":
    main()
