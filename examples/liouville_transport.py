"""Liouville transport of a phase-space density, and learning a thermal ensemble's density.

1. A Gaussian blob of Hénon–Heiles initial conditions (energy ≈ 0.1) is pushed along the flow with
   the log-density of every member integrated alongside (``d log ρ/dt = −∇·J∇H = 0``). The blob
   stretches and folds; the density values it carries do not change.
2. A canonical ensemble of two coupled oscillators (``ρ ∝ exp(−H/T)``), evolved by its flow, is fitted
   with a CNF by flow matching; learned and exact log-densities are compared on held-out states.

Writes ``OUT/liouville_transport.png`` and ``OUT/liouville_transport.json``.

    python examples/liouville_transport.py [--quick] [--out liouville-output]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import symflow.systems as S
from symflow.cnf import (
    density_error,
    eval_mode,
    fit_phase_space_density,
    gaussian_ensemble,
    simulate_thermal_ensemble,
    transport_density,
)


def main(quick: bool = False, out: str = "liouville-output") -> dict:
    torch.set_num_threads(1)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)

    # 1. Transport along Hénon–Heiles.
    hh = S.get_system("henon_heiles")
    n, t_end = (400, 10.0) if quick else (2000, 40.0)
    centre = hh.sample(1, seed=3, energy=0.1)[0]
    y0, log_rho0 = gaussian_ensemble(centre, 0.02, n, seed=4)
    ts = torch.linspace(0.0, t_end, 5, dtype=torch.float64)
    tr = transport_density(hh, y0, log_rho0, ts, rtol=1e-10, atol=1e-12)
    change = tr.log_density_change.abs().amax(0)  # max over the ensemble, per time
    print("max |Δ log ρ| at", [f"t={float(t):g}" for t in ts], ":", [f"{float(c):.1e}" for c in change])
    # For contrast, the same blob under friction (dp/dt −= γp): divergence −2γ, log ρ grows by 2γt.
    f, gamma = S.vector_field(hh), 0.05

    def damped(t, y):
        out = f(t, y)
        return torch.cat([out[..., :2], out[..., 2:] - gamma * y[..., 2:]], -1)

    damped_tr = transport_density(damped, y0, log_rho0, ts, rtol=1e-10, atol=1e-12)

    # 2. A thermal ensemble's density.
    states, ens = simulate_thermal_ensemble(
        "coupled_oscillators", 2000 if quick else 10_000, 0.5, t_max=5.0, snapshots=2, seed=0
    )
    fit = fit_phase_space_density(states, steps=500 if quick else 4000, batch_size=512, hidden=(64, 64))
    err = density_error(fit.cnf, fit.held_out, ens.log_density)
    print(f"thermal ensemble: held-out NLL {fit.held_out_nll:.3f} nats, KL to exact {err['kl']:.3f} nats")

    summary = {
        "quick": quick,
        "henon_heiles": {"samples": n, "times": ts.tolist(), "max_abs_log_density_change": change.tolist()},
        "thermal_fit": {"held_out_nll": fit.held_out_nll, **err},
    }
    (out_dir / "liouville_transport.json").write_text(json.dumps(summary, indent=2))
    _figure(out_dir / "liouville_transport.png", tr, damped_tr, gamma, ts, fit, ens)
    print(f"figure: {out_dir / 'liouville_transport.png'}")
    return summary


def _figure(path: Path, tr, damped_tr, gamma, ts, fit, ens) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 8), dpi=100, layout="constrained")
    top, bottom = fig.subfigures(2, 1)
    ys = tr.ys.numpy()
    lr = tr.log_density.numpy()
    vmin, vmax = float(lr[:, 0].min()), float(lr[:, 0].max())
    k = len(ts)
    for i in range(k):
        ax = top.add_subplot(1, k, i + 1)
        sc = ax.scatter(ys[:, i, 1], ys[:, i, 3], c=lr[:, i], s=3, cmap="viridis", vmin=vmin, vmax=vmax)
        ax.set_title(f"t = {float(ts[i]):g}", fontsize=9)
        ax.set_xlabel("y", fontsize=8)
        ax.set_ylabel("p_y", fontsize=8)
        ax.tick_params(labelsize=7)
    top.colorbar(sc, ax=top.axes, label="log ρ carried along (colour)", shrink=0.8)
    top.suptitle(
        "Hénon–Heiles (E ≈ 0.1): a Gaussian blob in the (y, p_y) projection, coloured by log ρ", fontsize=10
    )
    ax = bottom.add_subplot(1, 3, 1)
    change = tr.log_density_change.abs().amax(0).numpy()
    damped = damped_tr.log_density_change.mean(0).numpy()
    ax.plot(ts.numpy(), damped, "s-", color="tab:orange", label=f"with friction γ = {gamma}: 2γt")
    ax.plot(ts.numpy(), change, "o-", label=f"Hamiltonian: max |Δ log ρ| = {change.max():.1g}")
    ax.set_xlabel("t")
    ax.set_ylabel("change of log ρ along trajectories")
    ax.set_title("Hénon–Heiles blob: Liouville vs a damped flow", fontsize=9)
    ax.legend(fontsize=7)
    held = fit.held_out
    with torch.no_grad(), eval_mode(fit.cnf):  # per-sample steps: batch-independent log-densities
        learned = fit.cnf.log_prob(held).double().numpy()
    exact = ens.log_density(held.double()).numpy()
    ax = bottom.add_subplot(1, 3, 2)
    ax.scatter(exact, learned, s=3, alpha=0.5)
    lo, hi = float(exact.min()), float(exact.max())
    ax.plot([lo, hi], [lo, hi], "r--", lw=1)
    ax.set_xlabel("exact log ρ = −H/T − log Z")
    ax.set_ylabel("CNF log p")
    ax.set_title("coupled oscillators, canonical ensemble (held out)", fontsize=9)
    ax = bottom.add_subplot(1, 3, 3)
    energy = ens.system.energy(held.double()).numpy()
    ax.scatter(energy, learned - exact, s=3, alpha=0.5)
    ax.axhline(0, color="r", ls="--", lw=1)
    ax.set_xlabel("H")
    ax.set_ylabel("log p_CNF − log ρ_exact")
    ax.set_title("error against energy", fontsize=9)
    fig.savefig(path)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short run (< 1 minute on a CPU)")
    ap.add_argument("--out", default="liouville-output", help="output folder")
    args = ap.parse_args()
    main(args.quick, args.out)
