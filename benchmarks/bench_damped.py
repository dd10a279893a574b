"""Damped oscillator on the doubled phase space: SympFlow vs the flow-map PINN, unsupervised and from data.

The issue's must-show (docs/damped.md): the damped oscillator ``q̈ = −q − 2λq̇`` with ``λ = 0.1`` is
embedded in the doubled phase space (Galley 2013; ``symflow.systems.doubled``) and learned there.
Every learned map is read back physically by :func:`symflow.learners.physical_rollout` (lift, one
step of the map, projection onto the physical limit, repeated) and compared with the *exact* damped
solution from 16 held-out states of ``{E ≤ ½}`` to ``T = 100`` (1,001 times):

* ``max_error``: max over states and times of ``|x_pred(t) − x(t)|`` (target ≤ 1e-2);
* ``energy_rel_error_max``: max of ``|E_pred(t) − E(t)| / E(t)`` while ``E(t) > 1e-3·E(0)`` (target ≤ 2%).

Parts:

1. **unsupervised** — Hamiltonian matching on the doubled ``H`` (collocation states on the physical
   limit of ``{E ≤ ½}``, ``t ∈ [0, Δt]``, ``Δt = 1``): SympFlow and the flow-map PINN with the same
   optimiser budget (Adam then L-BFGS steps, collocation points) and about as many weights.
2. **supervised** — the SympFlow paper's setting: N = 50 trajectories with M = 10 observation times
   each (uniform order statistics on ``[0, 5]``), simulated with ``symflow.data.simulate`` (doubled
   states on the physical limit), trained on pairs within ``Δt``; same metrics.

CPU, float64, 1 thread. ``python -m benchmarks.bench_damped [--quick] [--only unsupervised|supervised]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import write_result
from symflow.learners import damped_metrics, physical_rollout, train_flow_map
from symflow.systems import get_system

LAM = 0.1
T_END = 100.0
TARGET_ERROR = 1e-2
TARGET_ENERGY = 0.02

#: The shared optimiser budget of both learners (per part); models of about 1,200 weights.
BUDGET: dict[str, Any] = {
    "dt": 1.0,
    "adam_steps": 200,
    "lbfgs_steps": 200,
    "lbfgs_points": 1000,
    "lbfgs_resample": 20,
    "lr": 1e-2,
    "seed": 0,
}
UNSUPERVISED = {"collocation": 700}
MODELS = {"sympflow": {"layers": 3, "width": 12}, "pinn": {"width": 30}}
SUPERVISED = {"batch_size": 700, "pair_horizon": 1.0}


def quick_budget(budget: dict[str, Any]) -> dict[str, Any]:
    out = dict(budget)
    out.update(adam_steps=40, lbfgs_steps=3, lbfgs_points=200, lbfgs_resample=2)
    return out


def evaluate(model, system, quick_mode: bool) -> dict[str, float]:
    """Physical rollout from 16 held-out states to T = 100 against the exact damped solution."""
    physical = system.doubling.physical
    x0 = physical.sample(4 if quick_mode else 16, seed=12345)
    ts = torch.linspace(0.0, T_END, 1001, dtype=torch.float64)
    started = time.process_time()
    pred = physical_rollout(model, system, x0, ts)
    seconds = time.process_time() - started
    exact = physical.flow(ts[None, :], x0[:, None, :])
    m = damped_metrics(pred, exact, system)
    # The same map without the projection after each step (the raw doubled dynamics, for the record).
    with torch.no_grad():
        raw = system.doubling.project(model.rollout(system.doubling.lift(x0), ts))
    m_raw = damped_metrics(raw, exact, system)
    return {
        "max_error": m["max_error"],
        "energy_rel_error_max": m["energy_rel_error_max"],
        "final_error": m["final_error"],
        "max_error_no_projection": m_raw["max_error"],
        "energy_rel_error_max_no_projection": m_raw["energy_rel_error_max"],
        "rollout_cpu_s": seconds,
    }


def row(case: str, learner: str, summary: dict[str, Any], metrics: dict[str, float]) -> dict[str, Any]:
    ok = metrics["max_error"] <= TARGET_ERROR and metrics["energy_rel_error_max"] <= TARGET_ENERGY
    return {
        "case": case,
        "learner": learner,
        "parameters": summary["parameters"],
        "train_cpu_s": summary["train_cpu_seconds"],
        **metrics,
        "value": "pass" if ok else "FAIL",
    }


def unsupervised(quick_mode: bool) -> list[dict[str, Any]]:
    system = get_system("damped_harmonic_oscillator", lam=LAM)
    budget = quick_budget(BUDGET) if quick_mode else BUDGET
    rows = []
    for learner in ("sympflow", "pinn"):
        res = train_flow_map(
            system,
            learner=learner,
            **budget,
            **UNSUPERVISED,
            **MODELS[learner],
            evaluate=False,
            progress=False,
        )
        rows.append(row("unsupervised (Hamiltonian matching on the doubled H)", learner, res.summary,
                        evaluate(res.model, system, quick_mode)))  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def supervised(quick_mode: bool) -> list[dict[str, Any]]:
    from symflow.data import simulate

    system = get_system("damped_harmonic_oscillator", lam=LAM)
    budget = quick_budget(BUDGET) if quick_mode else BUDGET
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "damped.h5"
        simulate(system.name, 50, 5.0, output=path, sampling="uniform", n_obs=10, params={"lam": LAM},
                 seed=0, progress=False)  # fmt: skip
        for learner in ("sympflow", "pinn"):
            res = train_flow_map(
                data=str(path), learner=learner, **budget, **SUPERVISED, **MODELS[learner], evaluate=False,
                progress=False,
            )  # fmt: skip
            r = row("supervised (N = 50 trajectories, M = 10 times)", learner, res.summary,
                    evaluate(res.model, system, quick_mode))  # fmt: skip
            r["trajectories"] = res.summary["trajectories"]
            r["pairs"] = res.summary["pairs"]
            rows.append(r)
            print(rows[-1], flush=True)
    return rows


DESCRIPTION = (
    "Damped oscillator q'' = -q - 2λq' (λ = 0.1) on the doubled phase space (Galley), read back by the "
    "projection onto the physical limit after every Δt = 1 step; 16 held-out states of {E ≤ 1/2} to T = 100 "
    "against the exact damped solution. max_error: max |x_pred - x| (target ≤ 1e-2); energy_rel_error_max: "
    "max |E_pred - E|/E while E > 1e-3 E(0) (target ≤ 2%); *_no_projection: the same map composed without "
    "the projection. Same budget for both learners: Adam 200 steps (lr 1e-2, cosine) then 200 L-BFGS steps "
    "(20 iterations each, 1,000 points redrawn every 20 steps); unsupervised: 700 fresh collocation points "
    "per Adam step; supervised: N = 50 trajectories x M = 10 uniform times on [0, 5] (seeded split: train/"
    "val/test), pairs within Δt. CPU, float64, 1 thread; train_cpu_s is process CPU time."
)


def main(quick: bool = False, only: str | None = None) -> dict[str, Any]:
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    parts = {"unsupervised": unsupervised, "supervised": supervised}
    for key, fn in parts.items():
        if only is None or only == key:
            rows += fn(quick)
    payload = {
        "description": DESCRIPTION + (" QUICK MODE: smoke-test sizes." if quick else ""),
        "rows": rows,
        "wall_seconds": time.perf_counter() - started,
    }
    if not quick and only is None:
        payload["path"] = str(write_result("damped", payload))
    return payload


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=("unsupervised", "supervised"))
    a = ap.parse_args()
    main(quick=a.quick, only=a.only)
