"""Adaptive integration with embedded explicit Runge–Kutta pairs and per-sample step control.

Every sample ``b`` carries its own time ``t_b``, step ``h_b``, error history and observation
index. One loop iteration attempts one step for every still-active sample (each with its own
``h_b``); each sample accepts or rejects on its own scaled error

    ε_b = ‖ err_b / (atol + rtol · max(|y_b|, |ŷ_b|)) ‖_RMS ≤ 1,

and its controller picks its next step. Outputs at the sample's own observation times come from
the method's dense output inside the accepted step that contains them (``hit_obs=True`` instead
shortens steps to land on every observation). A sample stops with a :class:`Status`: success at
its last time, or ``max_steps``, ``dt_min`` (step underflow) or ``nonfinite`` failures — the
others carry on unchanged.

The initial step follows Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.4 (algorithm of
Gladwell, Shampine & Brankin), per sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .callbacks import StepCallbacks
from .controller import PIDController
from .events import Event, EventTracker
from .explicit import ExplicitRK, hermite
from .inputs import Problem
from .solution import EventRecord, Status

Tensor = torch.Tensor


@dataclass(frozen=True)
class AdaptiveOptions:
    rtol: float | Tensor
    atol: float | Tensor
    dt0: float | None
    dt_min: float
    dt_max: float
    max_steps: int
    controller: PIDController
    hit_obs: bool
    events: tuple[Event, ...]
    polish_events: bool
    dense: Any = None  # a dense.DenseRecorder when dense output was asked for
    norm: Callable[[Tensor], Tensor] | None = None  # (B, D) scaled error -> (B,); default RMS
    callbacks: StepCallbacks | None = None
    compensated: bool = False  # Kahan summation of y + δ (tight tolerances: round-off floor)


def _rms_norm(x: Tensor) -> Tensor:
    return x.pow(2).mean(-1).sqrt()


def initial_step(
    f, rk: ExplicitRK, t0: Tensor, y0: Tensor, f0: Tensor, rtol, atol, span: Tensor, norm=_rms_norm
) -> Tensor:
    """Per-sample starting step (Hairer–Nørsett–Wanner II.4), capped by the sample's time span."""
    order = rk.tableau.error_exponent_order
    scale = atol + rtol * y0.abs()
    d0, d1 = norm(y0 / scale), norm(f0 / scale)
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1)
    h0 = torch.minimum(h0, span)
    y1 = y0 + h0.unsqueeze(-1) * f0
    f1 = f(t0 + h0, y1)
    d2 = norm((f1 - f0) / scale) / h0
    dmax = torch.maximum(d1, d2)
    h1 = torch.where(
        dmax <= 1e-15, torch.maximum(torch.full_like(h0, 1e-6), h0 * 1e-3), (0.01 / dmax) ** (1.0 / order)
    )
    h = torch.minimum(100 * h0, h1)
    h = torch.where(torch.isfinite(h) & (h > 0), h, torch.full_like(h, 1e-6))
    return torch.minimum(h, span)


def make_advance(f, rk: ExplicitRK, opts: AdaptiveOptions, k_err: int, eps: float, tiny: float):
    """One attempted step for every sample, as a pure function of the solver state.

    ``advance(state, ts, idx, t_end, t_obs) -> (state', aux)`` with ``state = (t, y, f0, h, err1,
    err2, active, status, steps, accepted, rejected, nfev, comp)`` (``comp``: the Kahan
    compensation) and ``t_obs`` each sample's next output
    time; ``aux = (h_try, ks, accept, t_new, y_new, f_new, need)`` where ``need`` flags samples with
    an output inside the accepted step. Everything that is tensor arithmetic lives
    here (stages, error norm, accept/reject, controller, commit, counters, termination) so that
    ``torch.compile`` can fuse a whole attempt into a few kernels; the Python loop around it only
    handles outputs, events and the stopping test.
    """
    stage_evals = rk.stages - 1 if rk.fsal else rk.stages
    per_attempt = stage_evals + (0 if rk.fsal else 1)
    controller = opts.controller
    norm = opts.norm or _rms_norm
    n_fail = Status.DT_MIN
    n_nonfinite = Status.NONFINITE
    n_maxed = Status.MAX_STEPS

    def advance(state, ts, idx, t_end, t_obs):
        t, y, f0, h, err1, err2, active, status, steps, accepted, rejected, nfev, comp = state
        if opts.hit_obs:
            target = ts.gather(1, idx.clamp(max=ts.shape[1] - 1).unsqueeze(1)).squeeze(1)
        else:
            target = t_end
        # Land exactly on the target when the proposed step reaches (or nearly reaches) it.
        lands = t + 1.01 * h >= target
        h_try = torch.where(active, torch.where(lands, target - t, h), torch.zeros_like(h))
        ks = rk.stage_values(f, t, y, h_try, k1=f0)
        if opts.compensated:  # carry the low-order bits that y + δ drops into the next step
            d = rk.increment(h_try, ks) + comp
            y_new = y + d
            comp_new = d - (y_new - y)
        else:
            y_new = y + rk.increment(h_try, ks)
        f_new = ks[-1] if rk.fsal else f(t + h_try, y_new)
        scale = opts.atol + opts.rtol * torch.maximum(y.abs(), y_new.abs())
        # Step-size control is not differentiated (accept/reject and the next step are discrete
        # choices): discrete backprop through an adaptive solve treats the steps as constants.
        en = rk.error_norm(h_try, ks, scale, norm).detach()
        finite = torch.isfinite(en) & torch.isfinite(y_new).all(-1) & torch.isfinite(f_new).all(-1)
        en = torch.where(finite, en, torch.full_like(en, float("inf")))
        accept = active & (en <= 1.0)
        t_new = torch.where(lands, target, t + h_try)

        steps = steps + active
        accepted = accepted + accept
        rejected = rejected + (active & ~accept)
        nfev = nfev + per_attempt * active

        acc_col = accept.unsqueeze(-1)
        y_c = torch.where(acc_col, y_new, y)
        if opts.compensated:
            comp = torch.where(acc_col, comp_new, comp)
        f0_c = torch.where(acc_col, f_new, f0)
        t_c = torch.where(accept, t_new, t)

        en_c = en.clamp(min=1e-10)
        h_next = h_try * controller.factor(en_c, err1, err2, accept, k_err)
        # A step cut short to land on a time says little about the next one: keep the old proposal.
        h_next = torch.where(accept & lands, torch.maximum(h_next, h), h_next).clamp(max=opts.dt_max).detach()
        err2 = torch.where(accept, err1, err2)
        err1 = torch.where(accept, en_c, err1)

        done = accept & (t_c >= t_end)
        floor = (16 * eps * torch.maximum(t_c.abs(), t_end.abs())).clamp(min=max(opts.dt_min, tiny))
        underflow = active & ~accept & (h_next < floor)
        fail = torch.where(finite, torch.full_like(status, n_fail), torch.full_like(status, n_nonfinite))
        status = torch.where(underflow, fail, status)
        maxed = active & ~done & ~underflow & (steps >= opts.max_steps)
        status = torch.where(maxed, torch.full_like(status, n_maxed), status)
        still = active & ~done & ~underflow & ~maxed
        h = torch.where(still, h_next, h)
        new_state = (t_c, y_c, f0_c, h, err1, err2, still, status, steps, accepted, rejected, nfev, comp)
        need = accept & (t_obs <= t_new)
        aux = (h_try, torch.stack(ks), accept, t_new, y_new, f_new, need)
        return new_state, aux

    return advance


def integrate_adaptive(
    problem: Problem, rk: ExplicitRK, opts: AdaptiveOptions, *, compile: bool = False
) -> tuple[Tensor, Tensor, dict[str, Tensor], EventRecord | None]:
    f, y, ts = problem.f, problem.y0, problem.ts
    b, n_obs = ts.shape
    dev, dt = y.device, y.dtype
    ys = y.new_zeros(b, n_obs, y.shape[-1])
    ys[:, 0] = y
    zeros = torch.zeros(b, dtype=torch.int64, device=dev)
    status = torch.zeros(b, dtype=torch.int8, device=dev)
    if n_obs == 1:
        counters = {k: zeros.clone() for k in ("steps", "accepted", "rejected", "nfev", "newton_iters")}
        return ys, status, counters, EventTracker(opts.events, ts[:, 0], y).record(b) if opts.events else None

    t = ts[:, 0].clone()
    t_end = ts[:, -1].contiguous()
    idx = torch.ones(b, dtype=torch.long, device=dev)  # next observation to fill
    f0 = f(rk.stage_time(t, 0, t_end - t), y)
    nfev = zeros + 1
    if opts.dt0 is not None:
        h = torch.full((b,), opts.dt0, dtype=dt, device=dev)
    else:
        h = initial_step(f, rk, t, y, f0, opts.rtol, opts.atol, t_end - t, opts.norm or _rms_norm)
        nfev = nfev + 1
    h = h.clamp(max=opts.dt_max).detach()
    ones = torch.ones(b, dtype=dt, device=dev)
    # A sample whose initial state is already non-finite fails at once.
    bad0 = ~torch.isfinite(y).all(-1) | ~torch.isfinite(f0).all(-1)
    status = torch.where(bad0, torch.full_like(status, Status.NONFINITE), status)
    comp = torch.zeros_like(y)
    state = (t, y, f0, h, ones, ones.clone(), ~bad0, status, zeros, zeros.clone(), zeros.clone(), nfev, comp)
    k_err = rk.tableau.error_exponent_order
    advance = make_advance(f, rk, opts, k_err, torch.finfo(dt).eps, torch.finfo(dt).tiny)
    if compile:
        from .compiled import compiled_advance

        advance = compiled_advance(advance, getattr(f, "wrapped", f), rk, opts)
    tracker = EventTracker(opts.events, t, y) if opts.events else None
    dense = rk.tableau.dense is not None
    extra = rk.n_extra if dense else 0

    # Each sample's next output time (+inf once all are filled, so it never asks for more).
    t_obs = ts[:, 1].clone()
    inf = torch.full_like(t_obs, float("inf"))
    callbacks = opts.callbacks
    while bool(state[6].any()):
        t_old, y_old, f_old, active = state[0], state[1], state[2], state[6]
        state, aux = advance(state, ts, idx, t_end, t_obs)
        h_try, ks, accept, t_new, y_new, f_new, need = aux
        if opts.dense is not None:
            opts.dense.adaptive(t_old, h_try, y_old, ks, accept, y_new, f_old, f_new)
        if callbacks is not None:
            callbacks.attempted(t_old, y_old, h_try)
            callbacks.decided(t_old, y_old, h_try, accept, active)
        # Outputs that fall inside the accepted step come from its dense output, evaluated only for the
        # rows that have one (a few per step in a large batch). Interpolation-only stages (DOP853,
        # Verner) are evaluated once per step for those rows.
        if bool(need.any()):
            first = need.nonzero().squeeze(1)  # every row with an output in this step
            where_in = torch.full((b,), -1, dtype=torch.long, device=dev)
            where_in[first] = torch.arange(first.shape[0], device=dev)
            if dense:
                ks_out = rk.dense_stages(f, t_old[first], y_old[first], h_try[first], ks[:, first])
                if extra:
                    nfev = state[11].index_add(0, first, torch.full_like(first, extra))
                    state = (*state[:11], nfev, *state[12:])
            rows_n = first
            while rows_n.shape[0]:
                slot = idx[rows_n]
                t_now, t_start, h_now = t_obs[rows_n], t_old[rows_n], h_try[rows_n]
                theta = ((t_now - t_start) / h_now).clamp(0.0, 1.0)  # h > 0: the step was accepted
                if dense:
                    val = rk.interpolate(y_old[rows_n], h_now, ks_out[:, where_in[rows_n]], theta)
                else:
                    val = hermite(y_old[rows_n], y_new[rows_n], f_old[rows_n], f_new[rows_n], h_now, theta)
                end = y_new[rows_n]
                ys[rows_n, slot] = torch.where((t_now == t_new[rows_n]).unsqueeze(-1), end, val)
                idx = idx.index_add(0, rows_n, torch.ones_like(rows_n))
                nxt = idx[rows_n]
                t_next = ts[rows_n, nxt.clamp(max=n_obs - 1)]
                t_obs = t_obs.index_put((rows_n,), torch.where(nxt < n_obs, t_next, inf[rows_n]))
                rows_n = rows_n[t_obs[rows_n] <= t_new[rows_n]]

        if tracker is not None:
            stage_cache: dict[int, Tensor] = {}

            def interp(
                r,
                th,
                y_old=y_old,
                h_try=h_try,
                ks=ks,
                f_old=f_old,
                y_new=y_new,
                f_new=f_new,
                t_old=t_old,
                stage_cache=stage_cache,
            ):
                if dense:
                    if id(r) not in stage_cache:  # the rows of one located crossing: stages computed once
                        stage_cache.clear()
                        stage_cache[id(r)] = rk.dense_stages(f, t_old[r], y_old[r], h_try[r], ks[:, r])
                    return rk.interpolate(y_old[r], h_try[r], stage_cache[id(r)], th)
                return hermite(y_old[r], y_new[r], f_old[r], f_new[r], h_try[r], th)

            def exact(r, th, y_old=y_old, t_old=t_old, h_try=h_try):
                hs = h_try[r] * th
                return y_old[r] + rk.increment(hs, rk.stage_values(f, t_old[r], y_old[r], hs))

            tracker.step(t_old, h_try, y_new, accept, interp, exact if opts.polish_events else None)

    status = state[7]
    counters = dict(zip(("steps", "accepted", "rejected", "nfev"), state[8:12]))
    counters["newton_iters"] = zeros
    # Unfilled outputs of failed samples are NaN, never stale zeros that look like data.
    filled = torch.arange(n_obs, device=dev).unsqueeze(0) < idx.unsqueeze(1)
    ys = torch.where(filled.unsqueeze(-1), ys, torch.full_like(ys, float("nan")))
    return ys, status, counters, tracker.record(b) if tracker is not None else None
