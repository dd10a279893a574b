"""What every flow map trained from trajectory data is measured by (``summary.json`` + figures).

With test trajectories held out of training (whole trajectories, :mod:`.supervised`) and, when the
data name a registered system, that system:

* **held-out error** at the test trajectories' own observation times: each test trajectory is
  rolled out by composition from its first observation to its observation times, and the error
  ``‖N(t_k − t_0, y_0) − y_k‖`` of every later observation is summarised per trajectory (RMS and
  maximum over its observations up to ``horizon``) and over trajectories (median, mean, max). The
  observations carry their noise, so the error cannot fall below the noise level ``σ√D``.
* **error at t = Δt, 10Δt, 100Δt** (``multiples``) from the test trajectories' first states, against
  the system's exact flow or a tight ``dopri5`` solve (``rtol = 1e-9``; its own error is ~1e-7 at
  t = 100 on Hénon–Heiles), or against observations at exactly those times when no system is known;
* **true energy error** ``|H(x_t) − H(x_0)| / |H(x_0)|`` along rollouts to ``energy_horizon``
  (default ``1000 Δt``) with the drift exponent of :mod:`symflow.diagnostics.energy` (``≈ 0`` bounded,
  ``½`` random walk, ``1`` linear drift);
* **symplecticity defect** ``‖MᵀJM − J‖_F / ‖J‖_F`` of ``M = ∂N(Δt, x)/∂x`` (``torch.func``);
* **learned-Hamiltonian recovery** (SympFlow): the affine least-squares fit ``H̃ ≈ a H + b`` over
  observed states, with its slope, offset and relative RMS residual ``RMS(H̃ − aH − b) / (|a| std H)``,
  and the unit-slope error ``RMS((H̃ − mean H̃) − (H − mean H)) / std H``.

Without a known system (a plain file, or attributes naming a system symflow does not have) the true-
energy metrics are skipped — ``summary["skipped"]`` says why — and the **drift of the learned H̃**
along the same rollouts is reported instead, relative to the spread (std) of ``H̃`` over the data.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.func import jacrev, vmap

from symflow.integrators import solve
from symflow.systems import HamiltonianSystem, vector_field

from .flowmap import FlowMap
from .supervised import TrajectoryData

Tensor = torch.Tensor

#: Multiples of Δt at which the error is reported by default.
MULTIPLES = (1.0, 10.0, 100.0)


def _on(model: FlowMap, x: Tensor) -> Tensor:
    p = next(model.parameters())
    return x.to(device=p.device, dtype=p.dtype)


def elapsed_times(test: TrajectoryData) -> Tensor:
    """``(B, T)`` time since each trajectory's first observation (0 on padding)."""
    t0, _ = test.first_states()
    return torch.where(test.mask, test.ts - t0[:, None], torch.zeros_like(test.ts))


def heldout_summary(prediction: Tensor, test: TrajectoryData, horizon: float | None = None) -> dict[str, Any]:
    """Errors of predictions ``(B, T, D)`` at the observation times of ``test`` (made from each
    trajectory's first observation, by any model) against the observations, up to ``horizon`` after
    the first one. Returns ``{"summary": ..., "elapsed", "error", "used"}`` (CPU, float64).

    Per trajectory: the RMS and the maximum over its observations of ``‖prediction − observation‖``;
    summarised over trajectories by the median, mean and max (and the median of the RMS relative to
    the RMS size of the observations).
    """
    elapsed = elapsed_times(test)
    prediction = prediction.detach().double().cpu()
    used = test.mask & (elapsed > 0)
    if horizon is not None:
        used = used & (elapsed <= horizon * (1 + 1e-12))
    ok = used & torch.isfinite(prediction).all(-1)
    err = torch.where(ok, (prediction - torch.nan_to_num(test.ys)).norm(dim=-1), torch.zeros_like(elapsed))
    err = torch.where(used & ~ok, torch.full_like(err, math.inf), err)  # a diverged prediction
    count = used.sum(-1)
    keep = count > 0
    rms = (err.pow(2).sum(-1) / count.clamp_min(1)).sqrt()[keep]
    worst = err.amax(-1)[keep]
    size = torch.where(used, torch.nan_to_num(test.ys).norm(dim=-1), torch.zeros_like(elapsed))
    size = (size.pow(2).sum(-1) / count.clamp_min(1)).sqrt()[keep]
    summary: dict[str, Any] = {
        "trajectories": int(keep.sum()),
        "observations": int(count.sum()),
        "horizon": float(elapsed[used].max()) if used.any() else 0.0,
    }
    if keep.any():
        summary.update(
            {
                "error_rms_median": float(rms.median()),
                "error_rms_mean": float(rms.mean()),
                "error_rms_max": float(rms.max()),
                "error_max_median": float(worst.median()),
                "error_max_max": float(worst.max()),
                "relative_error_rms_median": float((rms / size.clamp_min(1e-300)).median()),
            }
        )
    return {"summary": summary, "elapsed": elapsed, "error": err, "used": used}


def heldout_error(model: FlowMap, test: TrajectoryData, horizon: float | None = None) -> dict[str, Any]:
    """:func:`heldout_summary` of the flow map's rollouts of the test trajectories from their first
    observations (by composition), plus the predictions (``"prediction"``)."""
    _, y0 = test.first_states()
    grid = torch.cat([torch.zeros(test.n, 1, dtype=torch.float64), elapsed_times(test)], dim=1)
    mu = None if test.params is None else _on(model, test.params)  # a parametric map: each its own μ
    with torch.no_grad():
        pred = model.rollout(_on(model, y0), _on(model, grid), mu).double().cpu()[:, 1:]
    return {**heldout_summary(pred, test, horizon), "prediction": pred}


def reference_states(system: HamiltonianSystem, x0: Tensor, times: Tensor) -> tuple[Tensor, Tensor]:
    """True states at ``times`` (``(K,)``, from 0) from ``x0 (B, D)``: the exact flow where the system
    has one, else ``dopri5`` at ``rtol = 1e-9``. Returns ``(B, K, D)`` float64 and a ``(B,)`` success
    flag (orbits that escape to infinity fail; they are not counted as errors)."""
    x0, times = x0.detach().cpu().double(), times.detach().cpu().double()
    if system.exact_flow is not None:
        ys = system.flow(times[None, :], x0[:, None, :])
        return ys, torch.isfinite(ys).all(-1).all(-1)
    grid = torch.cat([times.new_zeros(1), times])
    sol = solve(vector_field(system), x0.double(), grid, "dopri5", rtol=1e-9, atol=1e-11, throw=False)
    return sol.ys[:, 1:], sol.success & torch.isfinite(sol.ys).all(-1).all(-1)


def errors_at(
    model: FlowMap, x0: Tensor, times: Tensor, reference: Tensor, ok: Tensor | None = None
) -> dict[str, Any]:
    """Absolute and relative (``‖Δ‖ / ‖x_ref‖``) errors of ``model.flow`` at ``times`` against
    ``reference (B, K, D)``; per time: mean and median over the samples where ``ok``."""
    grid = torch.cat([times.new_zeros(1), times])
    with torch.no_grad():
        pred = model.rollout(_on(model, x0), _on(model, grid)).double().cpu()[:, 1:]
    ok = torch.ones(x0.shape[0], dtype=torch.bool) if ok is None else ok
    err = (pred - reference).norm(dim=-1)[ok]
    rel = err / reference[ok].norm(dim=-1).clamp_min(1e-300)
    out = {}
    for k, t in enumerate(times.tolist()):
        out[f"{t:g}"] = {
            "samples": int(ok.sum()),
            "error_median": float(err[:, k].median()) if err.numel() else math.nan,
            "error_mean": float(err[:, k].mean()) if err.numel() else math.nan,
            "relative_error_mean": float(rel[:, k].mean()) if rel.numel() else math.nan,
            "relative_error_median": float(rel[:, k].median()) if rel.numel() else math.nan,
        }
    return out


def _observed_at(held: dict[str, Any], times: list[float]) -> dict[str, Any]:
    """Held-out errors at observations made exactly at ``times`` after the first one (files on a grid)."""
    out: dict[str, Any] = {}
    for t in times:
        hit = held["used"] & ((held["elapsed"] - t).abs() <= 1e-9 * max(1.0, t))
        if hit.any():
            e = held["error"][hit]
            out[f"{t:g}"] = {
                "samples": int(hit.sum()),
                "error_median": float(e.median()),
                "error_mean": float(e.mean()),
                "reference": "observations",
            }
    return out


def rollout_curve(model: FlowMap, x0: Tensor, horizon: float) -> tuple[Tensor, Tensor]:
    """``(ts, states)``: the iterates ``N(Δt, ·)ⁿ x0`` to ``horizon`` (CPU, float64) — the rollout on
    the ``Δt`` grid, which is exactly what :meth:`~symflow.learners.FlowMap.rollout` computes there."""
    steps = max(1, math.floor(horizon / model.dt + 1e-9))
    ts = torch.arange(steps + 1, dtype=torch.float64) * model.dt
    x = _on(model, x0)
    dt = torch.full((), model.dt, dtype=x.dtype, device=x.device)
    states = [x]
    with torch.no_grad():
        for _ in range(steps):
            x = model(dt, x)
            states.append(x)
    return ts, torch.stack(states, dim=1).double().cpu()


def drift_summary(ts: Tensor, error: Tensor, prefix: str) -> dict[str, float]:
    """Max, early/late maxima (first/last 10%), least-squares slope, and the drift exponent per sample
    (median, max, and how many samples exceed ½, the diagnostics' threshold for "drifting") of
    ``error (B, T)``."""
    from symflow.diagnostics.energy import DRIFT_THRESHOLD, drift_exponent

    worst = error.amax(dim=0)
    tail = max(1, len(ts) // 10)
    tc = ts - ts.mean()
    slope = float((tc * (worst - worst.mean())).sum() / tc.pow(2).sum().clamp_min(1e-300))
    alpha, _ = drift_exponent(ts.expand_as(error), error)
    finite = alpha[torch.isfinite(alpha)]
    return {
        f"{prefix}_horizon": float(ts[-1]),
        f"{prefix}_max": float(error.max()) if torch.isfinite(error).all() else math.inf,
        f"{prefix}_early_max": float(worst[1 : tail + 1].max()),
        f"{prefix}_late_max": float(worst[-tail:].max()),
        f"{prefix}_slope": slope,
        f"{prefix}_drift_exponent_median": float(finite.median()) if finite.numel() else math.nan,
        f"{prefix}_drift_exponent_max": float(finite.max()) if finite.numel() else math.nan,
        f"{prefix}_drifting_samples": int((finite > DRIFT_THRESHOLD).sum()),
        f"{prefix}_samples": int(error.shape[0]),
    }


def symplecticity_defect(model: FlowMap, x0: Tensor) -> dict[str, float]:
    """``‖MᵀJM − J‖_F / ‖J‖_F`` of ``M = ∂N(Δt, x)/∂x`` at the states ``x0``: median and max."""
    from symflow.diagnostics.symplectic import symplectic_defect

    x = _on(model, x0)
    dt = torch.full((), model.dt, dtype=x.dtype, device=x.device)
    jac = vmap(jacrev(lambda y: model(dt, y)))(x).detach().double().cpu()
    defect = symplectic_defect(jac)
    return {
        "symplecticity_defect_max": float(defect.max()),
        "symplecticity_defect_median": float(defect.median()),
    }


def hamiltonian_recovery(h_true: Tensor, h_learned: Tensor) -> dict[str, float]:
    """Affine fit ``H̃ ≈ a H + b``: slope, offset, relative RMS residual; and the unit-slope error."""
    h, g = h_true.double(), h_learned.double()
    design = torch.stack([h, torch.ones_like(h)], dim=-1)
    coef = torch.linalg.lstsq(design, g[:, None]).solution[:, 0]
    slope, offset = float(coef[0]), float(coef[1])
    spread = h.std().clamp_min(1e-300)
    residual = g - (slope * h + offset)
    unit = (g - g.mean()) - (h - h.mean())
    return {
        "slope": slope,
        "offset": offset,
        "relative_rms": float(residual.pow(2).mean().sqrt() / (abs(slope) * spread).clamp_min(1e-300)),
        "unit_slope_relative_rms": float(unit.pow(2).mean().sqrt() / spread),
        "states": int(h.numel()),
    }


def observed_states(data: TrajectoryData, limit: int = 2000, seed: int = 0) -> Tensor:
    """Up to ``limit`` observed states of ``data`` (a seeded subsample), ``(K, D)`` float64."""
    states = data.ys[data.mask]
    if states.shape[0] > limit:
        pick = torch.randperm(states.shape[0], generator=torch.Generator().manual_seed(seed))[:limit]
        states = states[pick]
    return states


def evaluate_data_run(
    model: FlowMap,
    *,
    test: TrajectoryData,
    train: TrajectoryData,
    system: HamiltonianSystem | None,
    system_note: str | None,
    horizon: float | None,
    energy_horizon: float | None,
    eval_samples: int,
    seed: int,
    multiples: tuple[float, ...] = MULTIPLES,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The evaluation of a data-trained flow map (module docstring): ``(summary, tensors for plots)``.

    ``test`` are the held-out trajectories (may be empty: then the training trajectories' first states
    serve the structural metrics and ``summary["heldout"]`` is absent, with the reason in
    ``summary["skipped"]``).
    """
    summary: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    data: dict[str, Any] = {}
    if test.n:
        held = heldout_error(model, test, horizon)
        summary["heldout"] = held["summary"]
        data["heldout"] = {**held, "test": test}
        starts = test
    else:
        skipped["heldout"] = "no test trajectories (test_fraction = 0)"
        starts = train
    x0 = starts.first_states()[1][:eval_samples]
    summary["eval_states"] = {"source": "test" if test.n else "train", "count": int(x0.shape[0])}
    times = torch.tensor(sorted(m * model.dt for m in multiples), dtype=torch.float64)
    if system is not None:
        first = starts.first_states()[1]
        ref, ok = reference_states(system, first, times)
        summary["error_at"] = errors_at(model, first, times, ref, ok)
        how = "the exact flow" if system.exact_flow is not None else "dopri5 at rtol 1e-10"
        summary["error_at_reference"] = (
            f"{how}, from the first states of the {summary['eval_states']['source']} trajectories"
        )
    else:
        observed = _observed_at(held, times.tolist()) if test.n else {}
        if observed:
            summary["error_at"] = observed
            summary["error_at_reference"] = "held-out observations at exactly these times"
        skipped["error_at"] = f"no true system to integrate ({system_note})" + (
            "; reported where observations fall exactly on these times" if observed else ""
        )
    horizon_e = 1000.0 * model.dt if energy_horizon is None else float(energy_horizon)
    ts, states = rollout_curve(model, x0, horizon_e) if horizon_e > 0 else (None, None)
    learned = getattr(model, "hamiltonian", None)
    if system is not None:
        if states is not None:
            h = system.energy(states)
            h0 = h[:, :1]
            rel = (h - h0).abs() / h0.abs().clamp_min(1e-12)
            summary.update(drift_summary(ts, rel, "energy_error"))
            data["energy"] = {"ts": ts, "relative_error": rel, "label": "true energy"}
        summary.update(symplecticity_defect(model, x0))
        if learned is not None:
            states_h = torch.cat([observed_states(train, seed=seed), test.ys[test.mask][:500]])
            h_true = system.energy(states_h)
            h_learned = learned(_on(model, states_h)).detach().double().cpu()
            summary["hamiltonian_recovery"] = hamiltonian_recovery(h_true, h_learned)
            data["hamiltonian"] = (h_true, h_learned)
        else:
            skipped["hamiltonian_recovery"] = f"{model.learner} has no learned Hamiltonian"
    else:
        why = f"the true energy needs the true system: {system_note}"
        skipped["true_energy"] = why
        skipped["hamiltonian_recovery"] = why
        summary.update(symplecticity_defect(model, x0))
        if learned is None:
            skipped["learned_energy_drift"] = f"{model.learner} has no learned Hamiltonian"
        elif states is not None:
            scale = learned(_on(model, observed_states(train, seed=seed))).detach().double().std()
            g = learned(_on(model, states.reshape(-1, model.dim))).detach().double().cpu()
            g = g.reshape(states.shape[:2])
            rel = (g - g[:, :1]).abs() / float(scale.clamp_min(1e-300))
            summary.update(drift_summary(ts, rel, "learned_energy_drift"))
            summary["learned_energy_drift_scale"] = float(scale)
            data["energy"] = {"ts": ts, "relative_error": rel, "label": "learned H̃ (relative to its std)"}
    if skipped:
        summary["skipped"] = skipped
    return summary, data


def evaluate_parametric_data_run(
    model: FlowMap,
    *,
    test: TrajectoryData,
    train: TrajectoryData,
    family: Any,
    eval_samples: int,
    energy_horizon: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The evaluation of a flow map conditioned on per-trajectory parameters (a file with a ``params``
    dataset): the held-out trajectories' errors (each rolled out with its own ``μ``), the true energy
    error along ``N(Δt; μ)`` iterates to ``energy_horizon`` (default ``1000 Δt``) when the file names
    its family, and the
    symplecticity defect at the parameters of a few held-out trajectories."""
    summary: dict[str, Any] = {}
    data: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    starts = test if test.n else train
    if test.n:
        held = heldout_error(model, test)
        summary["heldout"] = held["summary"]
        data["heldout"] = {**held, "test": test}
    else:
        skipped["heldout"] = "no test trajectories (test_fraction = 0)"
    x0 = starts.first_states()[1][:eval_samples]
    mu = starts.params[:eval_samples]
    summary["eval_states"] = {"source": "test" if test.n else "train", "count": int(x0.shape[0])}
    defects = [symplecticity_defect(model.at(mu[k]), x0[k : k + 1]) for k in range(min(3, len(mu)))]
    summary["symplecticity_defect_max"] = max(d["symplecticity_defect_max"] for d in defects)
    summary["symplecticity_defect_at"] = [
        dict(zip(model.param_names, m.tolist())) for m in mu[: len(defects)]
    ]
    steps = 1000 if energy_horizon is None else math.floor(energy_horizon / model.dt + 1e-9)
    if family is None:
        skipped["true_energy"] = "the file names no registered family"
    elif steps > 0:
        ts = torch.arange(steps + 1, dtype=torch.float64) * model.dt
        with torch.no_grad():
            states = model.rollout(_on(model, x0), _on(model, ts), _on(model, mu)).double().cpu()
        h = family.energy(states, mu.double()[:, None, :])
        rel = (h - h[:, :1]).abs() / h[:, :1].abs().clamp_min(1e-12)
        summary.update(drift_summary(ts, rel, "energy_error"))
        data["energy"] = {"ts": ts, "relative_error": rel, "label": "true energy (each trajectory its own μ)"}
    if skipped:
        summary["skipped"] = skipped
    return summary, data
