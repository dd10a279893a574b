"""The neural-ODE training step of the course notes (seed example), symflow vs ``torchdiffeq``.

The harmonic oscillator ``q' = p, p' = −q``: 1000 Gaussian initial conditions, 50 observation times
on ``[0, 2π]``, an MLP field 2-32-2 with tanh, MSE to the exact trajectories, float64, one thread.
One training iteration = forward solve + backward (continuous adjoint), dopri5 at rtol 1e-7,
atol 1e-9, symflow ``solve(..., adjoint=True)`` against ``torchdiffeq.odeint_adjoint``:

1. **Time per iteration**, default norms on both sides (symflow: per-sample ``(y, a)`` norm and a
   batch-level norm of the joint parameter accumulator; torchdiffeq: the maximum of the RMS norms of
   ``y``, ``a`` and the parameter accumulator over the whole batch), then the seminorm on both sides.
   Interleaved runs in one process; ratio = torchdiffeq time / symflow time (> 1: symflow faster).
   Targets (issue 18): ≥ 1.5× (default norms), ≥ 2× (seminorm).
2. **Work–precision of the gradient**: relative error of ∂L/∂θ against a reference (discrete
   backprop through symflow's dopri5 at rtol 1e-12, atol 1e-14) against the time per iteration, over
   rtol = 1e-4 … 1e-8 (atol = rtol/100) for both libraries and both norms; written as
   ``results/neural_ode_work_precision.png`` (log–log, one line per library and norm).

``python -m benchmarks.bench_neural_ode [--quick]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.harness import RESULTS, interleaved, load_note, write_result
from symflow.integrators import AdjointOptions, solve

F64 = torch.float64


class MLP(torch.nn.Module):
    """The notes' ``ODEFunc``: ``f(t, y) = W₂ tanh(W₁ y + b₁) + b₂``, 2-32-2."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2))

    def forward(self, t, y):
        return self.net(y)


def problem(batch: int = 1000, n_times: int = 50, seed: int = 0):
    """Initial conditions, times and exact oscillator trajectories ``(B, T, 2)``."""
    g = torch.Generator().manual_seed(seed)
    y0 = torch.randn(batch, 2, generator=g, dtype=F64)
    ts = torch.linspace(0, 2 * torch.pi, n_times, dtype=F64)
    c, s = torch.cos(ts), torch.sin(ts)
    q = y0[:, :1] * c + y0[:, 1:] * s
    p = -y0[:, :1] * s + y0[:, 1:] * c
    return y0, ts, torch.stack([q, p], -1)


def make_steps(model, y0, ts, target, rtol: float, atol: float, seminorm: bool):
    """The two training iterations (forward + backward), each returning the flat gradient."""
    import torchdiffeq

    params = tuple(model.parameters())

    def flat():
        return torch.cat([p.grad.reshape(-1) for p in params]).clone()

    def ours():
        model.zero_grad()
        sol = solve(model, y0, ts, "dopri5", rtol=rtol, atol=atol, adjoint=AdjointOptions(seminorm=seminorm))
        ((sol.ys - target) ** 2).mean().backward()
        ours.steps = sol.adjoint.backward_stats["steps"]
        return flat()

    def theirs():
        model.zero_grad()
        opts = {"norm": "seminorm"} if seminorm else {}
        ys = torchdiffeq.odeint_adjoint(
            model, y0, ts, method="dopri5", rtol=rtol, atol=atol, adjoint_params=params, adjoint_options=opts
        )
        ((ys.transpose(0, 1) - target) ** 2).mean().backward()
        return flat()

    return ours, theirs


def reference_gradient(model, y0, ts, target) -> torch.Tensor:
    model.zero_grad()
    sol = solve(model, y0, ts, "dopri5", rtol=1e-12, atol=1e-14)
    ((sol.ys - target) ** 2).mean().backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()]).clone()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def iteration_rows(model, data, ref, repeat: int) -> list[dict]:
    rows = []
    for seminorm in (False, True):
        ours, theirs = make_steps(model, *data, rtol=1e-7, atol=1e-9, seminorm=seminorm)
        res = interleaved({"symflow": ours, "torchdiffeq": theirs}, repeat=repeat)
        g_ours, g_peer = ours(), theirs()
        steps = ours.steps
        rows.append(
            {
                "case": f"seed example, B={len(data[0])}, 50 times, dopri5 1e-7/1e-9, "
                + ("seminorm" if seminorm else "default norms"),
                "ours": res["symflow"]["median"],
                "peer": res["torchdiffeq"]["median"],
                "ratio": res["torchdiffeq"]["median"] / res["symflow"]["median"],
                "target": 2.0 if seminorm else 1.5,
                "backward steps mean/max": f"{float(steps.double().mean()):.0f}/{int(steps.max())}",
                "grad err ours": rel(g_ours, ref),
                "grad err peer": rel(g_peer, ref),
            }
        )
        print(rows[-1], flush=True)
    return rows


def work_precision(model, data, ref, rtols, repeat: int) -> list[dict]:
    rows = []
    for seminorm in (False, True):
        for rtol in rtols:
            ours, theirs = make_steps(model, *data, rtol=rtol, atol=rtol / 100, seminorm=seminorm)
            res = interleaved({"symflow": ours, "torchdiffeq": theirs}, repeat=repeat)
            rows.append(
                {
                    "case": f"work-precision, {'seminorm' if seminorm else 'default norms'}, rtol={rtol:g}",
                    "rtol": rtol,
                    "norm": "seminorm" if seminorm else "default",
                    "ours": res["symflow"]["median"],
                    "peer": res["torchdiffeq"]["median"],
                    "ratio": res["torchdiffeq"]["median"] / res["symflow"]["median"],
                    "grad err ours": rel(ours(), ref),
                    "grad err peer": rel(theirs(), ref),
                }
            )
            print(rows[-1], flush=True)
    return rows


def plot_work_precision(rows: list[dict], path: Path, title: str) -> None:
    """Log–log gradient error against seconds per iteration, one line per library and norm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for norm, style in (("default", "-"), ("seminorm", "--")):
        sel = [r for r in rows if r["norm"] == norm]
        if not sel:
            continue
        for lib, key_t, key_e, color in (
            ("symflow", "ours", "grad err ours", "C0"),
            ("torchdiffeq", "peer", "grad err peer", "C1"),
        ):
            ax.loglog(
                [r[key_t] for r in sel],
                [r[key_e] for r in sel],
                style,
                marker="o",
                color=color,
                label=f"{lib} ({'default norms' if norm == 'default' else 'seminorm'})",
            )
    ax.set_xlabel("seconds per training iteration (forward + adjoint backward)")
    ax.set_ylabel("relative error of ∂L/∂θ")
    ax.set_title(title, fontsize=9)
    # Rows ran one after another on a shared machine: compare the two libraries at one rtol (each
    # pair was interleaved), not times across rows, which the machine's load moves.
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(quick: bool = False) -> None:
    torch.set_num_threads(1)
    batch = 64 if quick else 1000
    y0, ts, target = problem(batch)
    model = MLP().double()
    data = (y0, ts, target)
    ref = reference_gradient(model, *data)
    rows = iteration_rows(model, data, ref, repeat=1 if quick else 5)
    rtols = [1e-4, 1e-6] if quick else [1e-4, 1e-5, 1e-6, 1e-7, 1e-8]
    wp = work_precision(model, data, ref, rtols, repeat=1 if quick else 3)
    if quick:
        return
    png = RESULTS / "neural_ode_work_precision.png"
    plot_work_precision(wp, png, "neural ODE (SHO, MLP 2-32-2), B = 1000, dopri5 adjoint, 1 thread")
    common = (
        "SHO, 1000 ICs, 50 times on [0, 2π], MLP 2-32-2 tanh, float64, MSE; one training iteration "
        "(forward + continuous-adjoint backward), symflow solve(adjoint=True) vs torchdiffeq.odeint_adjoint, "
        "dopri5, 1 thread, interleaved in one process; ratio = torchdiffeq / symflow (> 1: symflow "
        "faster). 'grad err' = relative error of ∂L/∂θ against discrete backprop at rtol 1e-12. "
        + load_note()
    )
    write_result(
        "neural_ode", {"description": "The seed example's training iteration: " + common, "rows": rows}
    )
    write_result(
        "neural_ode_work_precision",
        {
            "description": (
                f"Work-precision of the adjoint gradient (diagram: results/{png.name}), rtol swept, "
                "atol = rtol/100. Each row's two libraries ran interleaved; the rows ran one after "
                "another while the load changed, so compare within a row (the ratio), not absolute "
                "times across rows: " + common
            ),
            "rows": wp,
        },
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    main(ap.parse_args().quick)
