"""One learner for a whole family of systems: the harmonic oscillator with ω ∈ [0.5, 2].

1. Train one SympFlow ``N(t, x0; ω)`` by Hamiltonian matching with ω drawn per collocation point, and
   roll it out to T = 20 at held-out frequencies against the exact flow; check that for each fixed ω
   the map is exactly symplectic.
2. Simulate a file with one ω per trajectory (``params`` dataset), train an HNN ``H(q, p; ω)`` on it,
   and score it on trajectories whose ω it never saw.

    python examples/parametric_family.py           # a few CPU minutes
    python examples/parametric_family.py --quick   # smoke test, well under a minute

The same from the command line::

    symflow train sympflow --system harmonic_oscillator --param-range omega=0.5:2 --dt 0.5 \\
        --box -1.25 1.25 --steps 200 --lbfgs-steps 100 --out runs/family
    symflow simulate harmonic_oscillator --param-range omega=0.5:2 --n 60 --n-obs 41 -o family.h5
    symflow train node --data family.h5 --model hnn --width 32 --steps 0 --lbfgs-steps 60 --out runs/hnn
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.func import jacrev, vmap

from symflow.data import simulate
from symflow.diagnostics.symplectic import symplectic_defect
from symflow.discovery.training import NodeConfig, train_node
from symflow.learners import train_sympflow
from symflow.systems import parametric_family


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny training (< 1 minute)")
    parser.add_argument("--out", type=Path, default=Path("runs/examples/parametric_family"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    family = parametric_family("harmonic_oscillator", {"omega": (0.5, 2.0)})

    # 1. one SympFlow for the family, unsupervised
    adam, lbfgs = (20, 1) if args.quick else (200, 100)
    run = train_sympflow(
        "harmonic_oscillator",
        param_ranges={"omega": [0.5, 2.0]},
        dt=0.5,
        layers=3,
        width=12,
        box=(-1.25, 1.25),
        adam_steps=adam,
        lbfgs_steps=lbfgs,
        lbfgs_points=1000,
        lbfgs_resample=20,
        evaluate=False,
        run_dir=args.out / "sympflow",
        overwrite=True,
        progress=not args.quick,
    )
    model = run.model
    x0 = torch.tensor([[0.5, 0.0], [0.0, 0.4], [-0.3, 0.3]], dtype=torch.float64)
    ts = torch.linspace(0.0, 20.0, 81, dtype=torch.float64)
    out: dict = {"sympflow": {}}
    print("SympFlow N(t, x0; ω), one model for ω ∈ [0.5, 2]:")
    for omega in (0.6, 1.1, 1.9):  # held out: training draws ω continuously, never these exactly
        at = model.at(omega=omega)
        with torch.no_grad():
            pred = at.rollout(x0, ts)
        exact = family.flow(ts[None, :], x0[:, None, :], torch.tensor([[[omega]]], dtype=torch.float64))
        err = float((pred - exact).norm(dim=-1).max())
        jac = vmap(jacrev(lambda y, at=at: at(torch.tensor(0.5, dtype=torch.float64), y)))(x0)
        defect = float(symplectic_defect(jac.detach()).max())
        out["sympflow"][omega] = {"error_T20": err, "symplecticity_defect": defect}
        print(f"  ω = {omega:3.1f}: max error to T = 20 {err:.2e}, symplecticity defect {defect:.1e}")

    # 2. an HNN conditioned on ω, from a file with one ω per trajectory
    n, lbfgs = (12, 2) if args.quick else (60, 60)
    data = args.out / "family.h5"
    simulate(
        "harmonic_oscillator",
        n,
        10.0,
        output=data,
        param_ranges={"omega": (0.5, 2.0)},
        n_obs=41,
        seed=0,
        overwrite=True,
        progress=not args.quick,
    )
    cfg = NodeConfig(data=str(data), model="hnn", width=32, steps=0, lbfgs_steps=lbfgs, val_fraction=0.2)
    summary = train_node(cfg, args.out / "hnn", overwrite=True, progress=not args.quick)
    ev = summary["evaluation"]
    out["hnn"] = ev
    omegas = ", ".join(f"{w:.2f}" for w in ev["params"])
    print(
        f"HNN H(q, p; ω) from {n} trajectories: on {ev['trajectories']} held-out trajectories (ω = {omegas}) "
        f"relative error max {ev['relative_error_max']:.2e}, median {ev['relative_error_median']:.2e} "
        f"against the {ev['reference']}"
    )
    return out


if __name__ == "__main__":
    main()
