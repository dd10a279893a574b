"""A simulation pipeline stepping an exported SympFlow surrogate in its own loop, without symflow.

1. Train a SympFlow one-step map ``x ↦ N(Δt, x)`` of the harmonic oscillator (symflow).
2. Export it: ``symflow.export(run, "step.pt2")`` (the CLI: ``symflow export RUN -o step.pt2``).
3. The pipeline (:func:`pipeline`, plain ``torch`` + ``json``, no symflow import) loads the program
   with ``torch.export.load``, reads Δt and the state layout from the metadata stored in the archive,
   and advances an ensemble of 256 states through its own time loop — the way a larger simulation
   would call a learned surrogate for one of its subsystems.

The surrogate's trajectories are compared with the exact flow, and its energy error stays bounded
over the whole run (SympFlow is exactly symplectic). Writes ``pipeline.png`` (phase portrait and
energy error) and ``pipeline.json`` into ``--out``.

    python examples/export_pipeline.py            # ~3 CPU minutes of training, 2000 pipeline steps
    python examples/export_pipeline.py --quick    # a smoke test, well under a minute
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def pipeline(program_file: Path, states, n_steps: int) -> dict:
    """The consumer: nothing but torch. Returns the states at every step and the Δt it used."""
    import torch

    extra = {"symflow_metadata.json": ""}
    step = torch.export.load(program_file, extra_files=extra).module()
    meta = json.loads(extra["symflow_metadata.json"])
    assert meta["primary"] == "step" and meta["state"]["names"] == ["q1", "p1"]
    x = states.to(getattr(torch, meta["dtype"]))
    out = [x]
    with torch.no_grad():
        for _ in range(n_steps):  # the pipeline's own loop (here: nothing else to couple to)
            x = step(x)
            out.append(x)
    return {"states": torch.stack(out, dim=1), "dt": meta["dt"], "metadata": meta}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny training, short pipeline run (< 1 minute)")
    parser.add_argument("--out", type=Path, default=Path("runs/examples/export_pipeline"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    import symflow
    from symflow.learners import train_flow_map
    from symflow.learners.experiments import experiment, quick

    torch.set_num_threads(1)  # ~10³ weights: one thread is fastest
    config = experiment("oscillator")
    if args.quick:
        config = quick(config, horizon=2.0, energy_horizon=2.0)
    system = config.pop("system")
    run = args.out / "run"
    train_flow_map(system, **config, seed=args.seed, run_dir=run, overwrite=True, progress=False)
    exported = symflow.export(run, args.out / "step.pt2", overwrite=True)
    print(exported)

    # The pipeline's ensemble: states on the training set Ω = {H ≤ 1/2}.
    g = torch.Generator().manual_seed(args.seed + 1)
    radius = 0.9 * torch.sqrt(torch.rand(256, generator=g, dtype=torch.float64))
    angle = 2 * math.pi * torch.rand(256, generator=g, dtype=torch.float64)
    x0 = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1)
    n_steps = 100 if args.quick else 2000
    result = pipeline(exported.path, x0, n_steps)
    ys, dt = result["states"], result["dt"]

    # The exact flow of H = (q² + p²)/2 is a rotation.
    t = dt * torch.arange(n_steps + 1, dtype=torch.float64)
    c, s = torch.cos(t), torch.sin(t)
    exact = torch.stack([x0[:, :1] * c + x0[:, 1:] * s, -x0[:, :1] * s + x0[:, 1:] * c], dim=-1)
    error = (ys - exact).norm(dim=-1)
    energy = 0.5 * (ys**2).sum(-1)
    energy_error = ((energy - energy[:, :1]).abs() / energy[:, :1].clamp_min(1e-3)).max(0).values
    summary = {
        "dt": dt,
        "steps": n_steps,
        "time": n_steps * dt,
        "ensemble": int(x0.shape[0]),
        "trajectory_error_max": float(error.max()),
        "trajectory_error_first_10_steps": float(error[:, :11].max()),
        "relative_energy_error_max": float(energy_error.max()),
        "relative_energy_error_last_10pct": float(energy_error[-max(1, n_steps // 10) :].max()),
        "programs": {k: str(v) for k, v in exported.programs.items()},
    }
    (args.out / "pipeline.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"pipeline: {x0.shape[0]} states × {n_steps} steps of Δt = {dt} (T = {n_steps * dt:g}) with the "
        f"exported step; max error vs exact {summary['trajectory_error_max']:.2e}, relative energy error "
        f"{summary['relative_energy_error_max']:.2e} "
        f"(last 10 %: {summary['relative_energy_error_last_10pct']:.2e})"
    )
    _plot(args.out / "pipeline.png", ys, exact, t, energy_error)
    return summary


def _plot(path: Path, ys, exact, t, energy_error) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.2))
    for k in range(4):
        a.plot(exact[k, :, 0], exact[k, :, 1], color="0.6", lw=0.8, label="exact flow" if k == 0 else None)
        # The surrogate's states as points: one step of Δt is a large angle, lines would cut chords.
        label = "exported SympFlow step, pipeline loop" if k == 0 else None
        a.scatter(ys[k, :, 0], ys[k, :, 1], s=2, label=label)
    a.set_xlabel("q")
    a.set_ylabel("p")
    a.set_aspect("equal")
    a.legend(loc="upper right", fontsize=8)
    a.set_title("4 of the pipeline's states")
    b.semilogy(t.numpy(), energy_error.clamp_min(1e-16).numpy())
    b.set_xlabel("t")
    b.set_ylabel("max relative energy error over the ensemble")
    b.set_title("energy error stays bounded (symplectic map)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
