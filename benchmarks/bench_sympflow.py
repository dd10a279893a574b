"""SympFlow and the flow-map PINN: seconds per epoch, and the issue's must-show training runs.

1. **Seconds per epoch** at the official configuration (SympFlow with 1,280 weights on Hénon–Heiles,
   700 fresh collocation points, one Adam step per epoch), interleaved in one process:
   ``dN/dt`` and the potentials' gradients by ``torch.func`` (``jvp`` + ``grad``), by the classic
   autograd loop (``torch.autograd.grad(create_graph=True)``, one backward pass per output
   component), and by the hand-derived closed form (SympFlow's default). The flow-map PINN (1,234
   weights) is timed the same way. Ratios are *autograd-loop time / variant time*.
2. **Harmonic oscillator**, unsupervised: held-out residual, trajectory error to T = 100 against the
   exact flow, training CPU time (limits: residual ≤ 1e-5, error ≤ 1e-2, < 3 CPU minutes).
3. **Hénon–Heiles**, unsupervised, Δt = 1, H ≤ 1/12: SympFlow and the flow-map PINN composed to
   T = 1000 (relative energy error: max, first/last 10%, slope) and their trajectory error against a
   gl6 reference at T = 10, with the seed's a-posteriori estimate on [0, Δt].

    python -m benchmarks.bench_sympflow [--quick] [--only timing|oscillator|henon_heiles]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from benchmarks.harness import interleaved, write_result
from symflow.learners import FlowMapPINN, SympFlow, hamiltonian_matching_loss, train_flow_map
from symflow.learners.domains import EnergySublevel
from symflow.learners.experiments import experiment, quick
from symflow.systems import get_system, vector_field


def epoch_timing(quick_mode: bool) -> list[dict[str, Any]]:
    hh = get_system("henon_heiles")
    field = vector_field(hh)
    domain = EnergySublevel(hh, 1 / 12)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    models = {"sympflow": SympFlow(2, dt=1.0), "pinn": FlowMapPINN(4, dt=1.0)}
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}

    def epoch(kind: str, how: str):
        model, opt = models[kind], opts[kind]

        def run() -> None:
            t = torch.rand(700, generator=gen, dtype=torch.float64)
            x = domain.sample(700, gen)
            loss = hamiltonian_matching_loss(model, field, t, x, derivatives=how)
            opt.zero_grad()
            loss.backward()
            opt.step()

        return run

    cases = {
        "sympflow/autograd": epoch("sympflow", "autograd"),
        "sympflow/func": epoch("sympflow", "func"),
        "sympflow/closed_form": epoch("sympflow", "closed_form"),
        "pinn/autograd": epoch("pinn", "autograd"),
        "pinn/func": epoch("pinn", "func"),
    }
    res = interleaved(cases, repeat=5 if quick_mode else 30, warmup=2)
    rows = []
    for kind, params in (
        ("sympflow", models["sympflow"].num_parameters()),
        ("pinn", models["pinn"].num_parameters()),
    ):
        peer = res[f"{kind}/autograd"]["median"]
        for how in ("func", "closed_form"):
            if f"{kind}/{how}" not in res:
                continue
            ours = res[f"{kind}/{how}"]["median"]
            rows.append(
                {
                    "case": f"{kind}: {how} vs autograd loop (s/epoch)",
                    "parameters": params,
                    "ours": ours,
                    "peer": peer,
                    "ratio": peer / ours,
                }
            )
    return rows


def _train(name: str, quick_mode: bool, seed: int = 0):
    config = experiment(name)
    if quick_mode:
        config = quick(config)
    system = config.pop("system")
    return train_flow_map(system, **config, seed=seed, progress=True, plots=False)


def oscillator(quick_mode: bool) -> list[dict[str, Any]]:
    s = _train("oscillator", quick_mode).summary
    return [
        {
            "case": "oscillator sympflow (Δt=1, H≤1/2)",
            "parameters": s["parameters"],
            "train_cpu_s": s["train_cpu_seconds"],
            "residual_mse": s["residual_mse"],
            "traj_err_T100": s["rollout_error_max"],
            "energy_err_max": s["energy_error_max"],
            "value": "pass"
            if s["residual_mse"] <= 1e-5 and s["rollout_error_max"] <= 1e-2 and s["train_cpu_seconds"] < 180
            else "FAIL",
        }
    ]


def henon_heiles(quick_mode: bool) -> list[dict[str, Any]]:
    rows = []
    for name in ("henon_heiles", "henon_heiles_pinn"):
        s = _train(name, quick_mode).summary
        b = s["a_posteriori"]
        rows.append(
            {
                "case": f"henon_heiles {s['learner']} (Δt=1, H≤1/12)",
                "parameters": s["parameters"],
                "train_cpu_s": s["train_cpu_seconds"],
                "residual_mse": s["residual_mse"],
                "traj_err_T10": s["rollout_error_max"],
                "energy_err_max_T1000": s["energy_error_max"],
                "energy_err_early": s["energy_error_early_max"],
                "energy_err_late": s["energy_error_late_max"],
                "energy_err_slope": s["energy_error_slope"],
                "eps_gl": b["epsilon_gl_max"],
                "beta_eps": b["beta_epsilon_dense_max"],
                "true_err_dt": b["true_error_max"],
            }
        )
    return rows


DESCRIPTIONS = {
    "timing": (
        "Seconds per epoch (one Adam step on 700 fresh collocation points, Hénon–Heiles, H ≤ 1/12) at the "
        "official configuration, CPU, 1 thread, float64, interleaved. ours = the named variant, peer = the "
        "autograd loop (torch.autograd.grad(create_graph=True), one backward pass per component); ratio = "
        "peer / ours (> 1: the variant is faster)."
    ),
    "oscillator": (
        "Harmonic oscillator, unsupervised (symflow.learners.experiments['oscillator']): CPU seconds of "
        "training (1 thread, float64), held-out mean squared residual, max trajectory error over 16 states "
        "of Ω = {H ≤ 1/2} to T = 100 against the exact flow, max relative energy error. value: pass if "
        "residual ≤ 1e-5, error ≤ 1e-2 and < 180 CPU s."
    ),
    "henon_heiles": (
        "Hénon–Heiles, unsupervised, Δt = 1, Ω = {H ≤ 1/12} (experiments 'henon_heiles' and "
        "'henon_heiles_pinn'), 16 states: max trajectory error to T = 10 vs a gl6 reference (step 0.01); "
        "relative energy error of the composed map N(Δt)^n to T = 1000 (max; early/late: max over the "
        "first/last 10%; least-squares slope per unit time); a-posteriori on [0, Δt] (max over 8 states): "
        "ε at 4 Gauss–Legendre nodes, estimated β·sup‖r‖, true error."
    ),
}


def main(quick: bool = False, only: str | None = None) -> dict[str, Any]:
    """Run the parts (all, or ``only`` one); full-size runs are recorded as
    ``results/sympflow_<part>.json`` (quick runs only print)."""
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)  # ~10³ weights: intra-op threads only add overhead
    parts = {"timing": epoch_timing, "oscillator": oscillator, "henon_heiles": henon_heiles}
    out: dict[str, Any] = {}
    for key, fn in parts.items():
        if only is not None and only != key:
            continue
        started = time.perf_counter()
        rows = fn(quick)
        payload = {
            "description": DESCRIPTIONS[key] + (" QUICK MODE: smoke-test sizes." if quick else ""),
            "rows": rows,
            "wall_seconds": time.perf_counter() - started,
        }
        if not quick:
            payload["path"] = str(write_result(f"sympflow_{key}", payload))
        out[key] = payload
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=("timing", "oscillator", "henon_heiles"))
    a = ap.parse_args()
    for part in main(quick=a.quick, only=a.only).values():
        for row in part["rows"]:
            print(row)
