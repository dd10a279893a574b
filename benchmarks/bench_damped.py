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

CPU, float64, 1 thread. ``python -m benchmarks.bench_damped [--quick] [--case unsupervised:sympflow ...]``
(cases as parallel processes: ``--case C --rows-dir DIR`` each, then ``--merge DIR``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
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


def disc_states(n: int, seed: int = 12345) -> torch.Tensor:
    """Held-out physical states uniform (by area) in the disc ``{E ≤ ½}`` (never used in training)."""
    u = torch.rand(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    r, phi = u[:, 0].sqrt(), 2 * math.pi * u[:, 1]
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi)], dim=-1)


def evaluate(model, system, quick_mode: bool) -> dict[str, float]:
    """Physical rollout from 16 held-out states to T = 100 against the exact damped solution."""
    physical = system.doubling.physical
    x0 = disc_states(4 if quick_mode else 16)
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


def log_domain(system):
    """The doubled system with collocation states of radius ``√(2E)`` log-uniform in ``[1e-3, 1]``
    (uniform angle; where decaying trajectories spend their time) instead of the default uniform disc."""
    link = system.doubling

    def sampler(m: int, gen: torch.Generator, energy: float | None) -> torch.Tensor:
        u = torch.rand(m, 2, generator=gen, dtype=torch.float64)
        r, phi = 1e-3 ** (1.0 - u[:, 0]), 2 * math.pi * u[:, 1]
        return link.lift(torch.stack([r * torch.cos(phi), r * torch.sin(phi)], dim=-1))

    return dataclasses.replace(system, sampler=sampler)


def unsupervised(learner: str, quick_mode: bool, relative: bool = False, log: bool = False) -> dict[str, Any]:
    """Hamiltonian matching on the doubled H; ``relative``: residuals weighted by ``1/|x0|²``; ``log``:
    collocation radii log-uniform instead of the default (uniform in the disc {E ≤ ½})."""
    system = get_system("damped_harmonic_oscillator", lam=LAM)
    if log:
        system = log_domain(system)
    budget = quick_budget(BUDGET) if quick_mode else BUDGET
    res = train_flow_map(
        system, learner=learner, **budget, **UNSUPERVISED, **MODELS[learner], relative_residual=relative,
        evaluate=False, progress=False,
    )  # fmt: skip
    case = "unsupervised (Hamiltonian matching on the doubled H" + (
        ", relative residuals" if relative else ""
    )
    case += ", log-radius domain)" if log else ")"
    return row(case, learner, res.summary, evaluate(res.model, system, quick_mode))


def supervised(learner: str, quick_mode: bool) -> dict[str, Any]:
    from symflow.data import simulate

    system = get_system("damped_harmonic_oscillator", lam=LAM)
    budget = quick_budget(BUDGET) if quick_mode else BUDGET
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "damped.h5"
        # Initial states uniform in the disc {E ≤ 1/2} (the paper samples a box; the evaluation states
        # come from the same disc with another seed), lifted onto the physical limit.
        y0 = system.doubling.lift(disc_states(50, seed=0))
        simulate(system.name, 50, 5.0, output=path, sampling="uniform", n_obs=10, params={"lam": LAM},
                 y0=y0, seed=0, progress=False)  # fmt: skip
        res = train_flow_map(
            data=str(path), learner=learner, **budget, **SUPERVISED, **MODELS[learner], evaluate=False,
            progress=False,
        )  # fmt: skip
    r = row("supervised (N = 50 trajectories, M = 10 times)", learner, res.summary,
            evaluate(res.model, system, quick_mode))  # fmt: skip
    r["trajectories"] = res.summary["trajectories"]
    r["pairs"] = res.summary["pairs"]
    return r


CASES = {
    "unsupervised:sympflow": lambda q: unsupervised("sympflow", q),
    "unsupervised:pinn": lambda q: unsupervised("pinn", q),
    "unsupervised-relative:sympflow": lambda q: unsupervised("sympflow", q, relative=True),
    "unsupervised-relative:pinn": lambda q: unsupervised("pinn", q, relative=True),
    "unsupervised-log:sympflow": lambda q: unsupervised("sympflow", q, log=True),
    "unsupervised-log:pinn": lambda q: unsupervised("pinn", q, log=True),
    "unsupervised-relative-log:sympflow": lambda q: unsupervised("sympflow", q, relative=True, log=True),
    "unsupervised-relative-log:pinn": lambda q: unsupervised("pinn", q, relative=True, log=True),
    "supervised:sympflow": lambda q: supervised("sympflow", q),
    "supervised:pinn": lambda q: supervised("pinn", q),
}


DESCRIPTION = (
    "Damped oscillator q'' = -q - 2λq' (λ = 0.1) on the doubled phase space (Galley), read back by the "
    "projection onto the physical limit after every Δt = 1 step; 16 held-out states of {E ≤ 1/2} to T = 100 "
    "against the exact damped solution. max_error: max |x_pred - x| (target ≤ 1e-2); energy_rel_error_max: "
    "max |E_pred - E|/E while E > 1e-3 E(0) (target ≤ 2%); *_no_projection: the same map composed without "
    "the projection. Same budget for both learners: Adam 200 steps (lr 1e-2, cosine) then 200 L-BFGS steps "
    "(20 iterations each, 1,000 points redrawn every 20 steps); unsupervised: 700 fresh collocation points "
    "per Adam step (states on the physical limit, uniform in the disc; '-log': radius log-uniform in "
    "[1e-3, 1]; '-relative': residuals weighted by 1/|x0|^2); supervised: N = 50 "
    "trajectories from states uniform in the disc x M = 10 uniform times on [0, 5] (seeded split: "
    "train/val/test), pairs within Δt. CPU, float64, 1 thread; train_cpu_s is process CPU time."
)


def main(quick: bool = False, cases: list[str] | None = None, rows_dir: Path | None = None) -> dict[str, Any]:
    """Run ``cases`` (default: all, in this process) and record ``results/damped.json``. With
    ``rows_dir`` each case's row is also written there, so cases can run as separate processes and be
    recorded together with ``--merge``."""
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for case in cases or list(CASES):
        rows.append(CASES[case](quick))
        print(rows[-1], flush=True)
        if rows_dir is not None:
            rows_dir.mkdir(parents=True, exist_ok=True)
            (rows_dir / f"{case.replace(':', '_')}.json").write_text(json.dumps(rows[-1]))
    payload = {
        "description": DESCRIPTION + (" QUICK MODE: smoke-test sizes." if quick else ""),
        "rows": rows,
        "wall_seconds": time.perf_counter() - started,
    }
    if not quick and cases is None:
        payload["path"] = str(write_result("damped", payload))
    return payload


def merge(rows_dir: Path) -> Path:
    """Record the rows that separate ``--case`` processes wrote to ``rows_dir`` as ``results/damped.json``."""
    rows, missing = [], []
    for case in CASES:
        path = rows_dir / f"{case.replace(':', '_')}.json"
        if path.exists():
            rows.append(json.loads(path.read_text()))
        else:
            missing.append(case)
    note = " Cases run as parallel processes."
    if missing:
        note += f" Not recorded (did not finish): {', '.join(missing)}."
    return write_result("damped", {"description": DESCRIPTION + note, "rows": rows, "missing": missing})


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--case", action="append", choices=list(CASES), help="run only this case (repeatable)")
    ap.add_argument("--rows-dir", type=Path, help="also write each case's row here (for --merge)")
    ap.add_argument("--merge", type=Path, metavar="ROWS_DIR", help="record the rows of separate --case runs")
    a = ap.parse_args()
    if a.merge is not None:
        print(merge(a.merge))
    else:
        main(quick=a.quick, cases=a.case, rows_dir=a.rows_dir)
