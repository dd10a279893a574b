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
from typing import Any, NamedTuple

import torch
import torch.autograd.forward_ad as forward_ad

from .callbacks import StepCallbacks
from .controller import PIDController
from .events import Event, EventTracker
from .explicit import ExplicitRK, hermite, per_sample_column
from .inputs import Problem
from .norms import rms_norm
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
    norm: Callable[[Tensor], Tensor] | None = None  # (B, D) scaled error -> (B,); default RMS (.norms)
    callbacks: StepCallbacks | None = None
    compensated: bool = False  # Kahan summation of y + δ (tight tolerances: round-off floor)


def initial_step(
    f, rk: ExplicitRK, t0: Tensor, y0: Tensor, f0: Tensor, rtol, atol, span: Tensor, norm=rms_norm
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


def _constant(x: Tensor) -> Tensor:
    """``x`` cut from autograd: a ``detach`` only where there is something to cut — a graph, or a
    forward-mode tangent (a dual tensor does not report ``requires_grad``) — one kernel less per use
    when nothing is differentiated."""
    return x.detach() if x.requires_grad or forward_ad._current_level >= 0 else x


class AttemptConstants(NamedTuple):
    """The numbers an attempt compares and multiplies with, as 0-d tensors of the state's dtype and
    device, made once per solve.

    An eager element-wise kernel with a 0-d tensor operand runs 0.4–1.3 µs faster than with a Python
    number, which it wraps into a tensor on every call (CPU, B = 1024); an attempt has about thirty.
    They travel as an argument of the attempt function, not in its closure, so a compiled attempt
    reused by a later solve reads that solve's dtype, device and end times.
    """

    zero: Tensor
    one: Tensor
    inf: Tensor
    reach: Tensor  # 1.01: a proposed step that reaches this close to the target lands on it
    err_floor: Tensor  # ε is clipped below at 1e-10 before the controller takes its log
    rtol: Tensor
    atol: Tensor
    time_ulps: Tensor  # 16 ε_mach: a step below 16 ulps of the time it starts from underflows
    floor_end: Tensor  # (B,) max(16 ulps of |t_end|, dt_min, tiny): the rest of the step-underflow floor
    max_steps: Tensor  # int64
    dt_min_code: Tensor  # int8 statuses
    nonfinite_code: Tensor
    max_steps_code: Tensor

    @staticmethod
    def of(opts: AdaptiveOptions, y: Tensor, t_end: Tensor) -> AttemptConstants:
        dt, dev = y.dtype, y.device
        info = torch.finfo(dt)

        def real(x) -> Tensor:
            return torch.as_tensor(x, dtype=dt, device=dev)

        def code(x) -> Tensor:
            return torch.tensor(int(x), dtype=torch.int8, device=dev)

        ulps = 16 * info.eps  # a power of two: 16ε·max(|t|, |t_end|) = max(16ε|t|, 16ε|t_end|) exactly
        return AttemptConstants(
            zero=real(0.0),
            one=real(1.0),
            inf=real(float("inf")),
            reach=real(1.01),
            err_floor=real(1e-10),
            rtol=real(opts.rtol),
            atol=real(opts.atol),
            time_ulps=real(ulps),
            floor_end=(t_end.detach().abs() * ulps).clamp(min=max(opts.dt_min, info.tiny)),
            max_steps=torch.tensor(opts.max_steps, dtype=torch.int64, device=dev),
            dt_min_code=code(Status.DT_MIN),
            nonfinite_code=code(Status.NONFINITE),
            max_steps_code=code(Status.MAX_STEPS),
        )


def make_advance(f, rk: ExplicitRK, opts: AdaptiveOptions, k_err: int):
    """One attempted step for every sample, as a pure function of the solver state.

    ``advance(state, ts, idx, t_end, window, consts) -> (state', aux)`` with ``state = (t, y, f0, h,
    log_err1, log_err2, active, status, steps, accepted, rejected, nfev, comp)`` (``log_err1/2``: the
    logs of the last two accepted error norms; ``comp``: the Kahan compensation; ``rejected`` and
    ``nfev`` are left as they are: the driver derives them from ``steps`` and ``accepted`` at the end,
    ``nfev`` holding the evaluations made outside attempts), ``ts`` the (increasing, contiguous) output
    grid, ``idx`` each sample's next output, ``window`` (0-d) how many outputs the driver writes per
    sample and step and ``consts`` the solve's :class:`AttemptConstants`. ``aux = (h_try, ks, accept,
    t_new, y_new, f_new, count, go, wanted)``: ``count`` is the number of outputs inside each accepted
    step, ``go`` the samples whose attempt counted, ``wanted`` the outputs each accepted step would have
    held before pausing.

    A sample whose accepted step would hold more than ``window`` outputs is *paused*: its attempt is
    dropped as if it had not been made (no counter moves, its state and step size stay), and it makes
    the same attempt again once the driver has widened the window. Its result is therefore bitwise
    the same whatever the window and whatever the other samples in the batch.

    Everything that is tensor arithmetic lives here (stages, error norm, accept/reject, controller,
    commit, counters, termination) so that ``torch.compile`` can fuse a whole attempt into a few
    kernels, and nothing here reads a value back to the host. Eager, an attempt is launch-bound (a few
    µs per kernel, B = 1024 on a CPU), so the bookkeeping is written for few kernels.
    """
    controller = opts.controller
    norm = opts.norm or rms_norm
    uses_err2 = controller.dcoeff != 0  # ε_{n−2} enters only through the D term
    slope_in_error = rk.fsal and any(j == rk.stages - 1 for j, _ in rk.e_terms)  # f_new = k_s weighs in ε

    def advance(state, ts, idx, t_end, window, c: AttemptConstants):
        t, y, f0, h, log_err1, log_err2, active, status, steps, accepted, rejected, nfev, comp = state
        if opts.hit_obs:
            target = ts.gather(1, idx.clamp(max=ts.shape[1] - 1).unsqueeze(1)).squeeze(1)
        else:
            target = t_end
        # Land exactly on the target when the proposed step reaches (or nearly reaches) it.
        rest = target - t
        lands = h * c.reach >= rest
        h_try = torch.where(active, torch.where(lands, rest, h), c.zero)
        h_col = per_sample_column(h_try, y)  # h in the state's shape: a dozen faster combinations below
        ks, y_last = rk.stage_values(f, t, y, h_col, k1=f0, times=rk.stage_times(t, h_try), last_input=True)
        if opts.compensated:  # carry the low-order bits that y + δ drops into the next step
            d = rk.increment(h_col, ks) + comp
            y_new = y + d
            comp_new = d - (y_new - y)
        elif rk.fsal:  # the last stage was evaluated at y + h Σ bⱼkⱼ: that is the result
            y_new = y_last
        else:
            y_new = y + rk.increment(h_col, ks)
        f_new = ks[-1] if rk.fsal else f(t + h_try, y_new)
        # Step-size control is not differentiated (accept/reject and the next step are discrete
        # choices): discrete backprop through an adaptive solve treats the steps as constants. Under
        # no_grad its dozen kernels record no graph when the solve is differentiated (a forward-mode
        # tangent is cut by _constant).
        with torch.no_grad():
            scale = torch.addcmul(c.atol, torch.maximum(y.abs(), y_new.abs()), c.rtol)  # atol + rtol·max|y|
            en = _constant(rk.error_norm(h_col, ks, scale, norm))
            # Finite error, state and slope: x - x is 0 for a finite x and NaN for ±inf or NaN, so the sum
            # is below +inf exactly when all of them are finite (fewer kernels than isfinite(...).all(-1)).
            # Where the slope is the last stage and enters the error estimate, ε already tells.
            residue = y_new - y_new if slope_in_error else (y_new - y_new) + (f_new - f_new)
            finite = (en + _constant(residue.sum(-1))) < c.inf
        en = torch.where(finite, en, c.inf)
        accept = active & (en <= c.one)
        t_new = torch.where(lands, target, t + h_try)
        # Outputs inside the step: ts[b, j] <= t_new for j >= idx (rows are sorted, the earlier ones were
        # filled by earlier steps, and t_new >= t). More than the window can take pauses the sample.
        wanted = (torch.searchsorted(ts, _constant(t_new).unsqueeze(1), right=True).squeeze(1) - idx) * accept
        keep_on = wanted <= window
        go = active & keep_on
        accept = accept & keep_on
        count = wanted * keep_on

        # Counters: attempts and acceptances (rejections and evaluations follow from them at the end).
        steps = steps + go
        accepted = accepted + accept

        acc_col = per_sample_column(accept, y)  # written out once for two or three wheres
        y_c = torch.where(acc_col, y_new, y)
        if opts.compensated:
            comp = torch.where(acc_col, comp_new, comp)
        f0_c = torch.where(acc_col, f_new, f0)
        t_c = torch.where(accept, t_new, t)

        log_en = en.clamp(min=c.err_floor).log()
        h_next = h_try * controller.factor_from_logs(log_en, log_err1, log_err2, accept, k_err)
        # A step cut short to land on a time says little about the next one: keep the old proposal
        # (h · [accepted and landed] is h there and 0 elsewhere, where max(h_next, 0) = h_next).
        h_next = torch.maximum(h_next, h * (accept & lands))
        if opts.dt_max < float("inf"):
            h_next = h_next.clamp(max=opts.dt_max)
        h_next = _constant(h_next)
        if uses_err2:
            log_err2 = torch.where(accept, log_err1, log_err2)
        log_err1 = torch.where(accept, log_en, log_err1)

        # Termination. A rejected step below 16 ulps of its time (or dt_min) underflows: dt_min, or
        # nonfinite when the attempt was not finite; reaching the end is success, whatever the count;
        # otherwise a sample at max_steps attempts stops there.
        done = accept & (t_c >= t_end)
        floor = torch.maximum(t_c.abs() * c.time_ulps, c.floor_end)
        underflow = go & ~accept & (h_next < floor)
        over = go & (steps >= c.max_steps)
        status = torch.where(over & ~done, c.max_steps_code, status)
        status = torch.where(underflow, torch.where(finite, c.dt_min_code, c.nonfinite_code), status)
        still = active & ~(done | underflow | over)
        # The step size of a sample whose attempt counted; a stopped sample's is never read again.
        h = torch.where(go, h_next, h)
        new_state = (
            t_c,
            y_c,
            f0_c,
            h,
            log_err1,
            log_err2,
            still,
            status,
            steps,
            accepted,
            rejected,
            nfev,
            comp,
        )
        aux = (h_try, ks, accept, t_new, y_new, f_new, count, go, wanted)
        return new_state, aux

    return advance


#: How many attempts the adaptive loop makes between two looks at "is any sample still active?" (its only
#: host sync when no events or step callbacks are given). Finished samples are masked, so the at most
#: ``CHECK_EVERY - 1`` attempts made after the last sample finished change nothing but cost time.
CHECK_EVERY = 8

#: On the CPU a read costs nothing, while every masked attempt made after the last sample finished costs
#: a full evaluation of f — and, when the solve is differentiated by backprop, its backward pass too (a
#: CNF's 20-step dopri5 solve paid up to 7 such attempts: its training iteration ran 0.44x torchdiffeq
#: instead of 1.16x). There the loop also asks "any sample still active?" after every attempt and stops
#: at once; outputs are still flushed every ``CHECK_EVERY`` attempts (and at the end).
STOP_AT_ONCE_ON_CPU = True

#: On the CPU the output writer interpolates only the attempts whose accepted step holds an output (picking
#: them reads the device, which costs nothing there); elsewhere it interpolates every recorded row and
#: sends the ones without an output to scratch columns, which needs no read. On 1024 Hénon–Heiles orbits
#: with 51 outputs, 7 % of the rows hold one.
COMPACT_OUTPUTS_ON_CPU = True


def integrate_adaptive(
    problem: Problem,
    rk: ExplicitRK,
    opts: AdaptiveOptions,
    *,
    compile: bool | str = False,
    check_every: int | None = None,
) -> tuple[Tensor, Tensor, dict[str, Tensor], EventRecord | None]:
    """The adaptive loop: attempts for every sample at once until every sample has stopped.

    The loop reads one value back from the device every ``check_every`` attempts (default
    :data:`CHECK_EVERY`): whether any sample is still active, and the most outputs a step needed. It
    reads nothing in between: outputs are written with one masked update per attempt (a window of
    ``m`` outputs per sample and step, widened at those checks when a step needed more; see
    :func:`make_advance` for why that leaves results unchanged), and failures are statuses inside the
    state. Events and step callbacks call back to the host by
    nature; with them the loop checks after every attempt.
    """
    f, y, ts = problem.f, problem.y0, problem.ts
    b, n_obs = ts.shape
    dev, dt = y.device, y.dtype
    zeros = torch.zeros(b, dtype=torch.int64, device=dev)
    status = torch.zeros(b, dtype=torch.int8, device=dev)
    if n_obs == 1:
        ys = y.new_zeros(b, n_obs, y.shape[-1])
        ys[:, 0] = y
        counters = {k: zeros.clone() for k in ("steps", "accepted", "rejected", "nfev", "newton_iters")}
        return ys, status, counters, EventTracker(opts.events, ts[:, 0], y).record(b) if opts.events else None

    t = ts[:, 0].clone()
    t_end = ts[:, -1].contiguous()
    grid = ts.detach().contiguous()  # for searchsorted
    idx = torch.ones(b, dtype=torch.long, device=dev)  # next observation to fill
    f0 = f(rk.stage_time(t, 0, t_end - t), y)
    nfev = zeros + 1
    if opts.dt0 is not None:
        h = torch.full((b,), opts.dt0, dtype=dt, device=dev)
    else:
        h = initial_step(f, rk, t, y, f0, opts.rtol, opts.atol, t_end - t, opts.norm or rms_norm)
        nfev = nfev + 1
    h = h.clamp(max=opts.dt_max).detach()
    # A sample whose initial state is already non-finite fails at once.
    bad0 = ~torch.isfinite(y).all(-1) | ~torch.isfinite(f0).all(-1)
    status = torch.where(bad0, torch.full_like(status, Status.NONFINITE), status)
    comp = torch.zeros_like(y)
    log_errs = torch.zeros(b, dtype=dt, device=dev)  # log ε of the last two accepted steps: ε = 1
    counts = (zeros, zeros.clone(), zeros.clone(), nfev)  # steps, accepted, rejected, nfev
    state = (t, y, f0, h, log_errs, log_errs.clone(), ~bad0, status, *counts, comp)
    k_err = rk.tableau.error_exponent_order
    advance = make_advance(f, rk, opts, k_err)
    consts = AttemptConstants.of(opts, y, t_end)
    if compile == "reduce-overhead":
        from .compiled import compiled_advance_graphs

        advance = compiled_advance_graphs(advance, f, rk, opts)
    elif compile:
        from .compiled import compiled_advance

        advance = compiled_advance(advance, f, rk, opts)
    tracker = EventTracker(opts.events, t, y) if opts.events else None
    callbacks = opts.callbacks
    check_every = CHECK_EVERY if check_every is None else check_every
    if tracker is not None or callbacks is not None:
        check_every = 1  # they sync anyway, and must not see attempts made after the end
    writer = _OutputWriter(f, rk, ts, y, n_obs)
    window = 1
    window_t = torch.tensor(window, device=dev)
    need_max = torch.zeros((), dtype=torch.long, device=dev)
    attempt = 0
    stop_at_once = STOP_AT_ONCE_ON_CPU and dev.type == "cpu"
    while True:
        if attempt % check_every == 0 or (stop_at_once and not bool(state[6].any())):
            state = writer.flush(state)
            # The loop's one host sync: is anything still active, and did a step need a wider window?
            alive, need = torch.stack([state[6].any().long(), need_max]).tolist()
            if need > window:
                window = min(max(need, 2 * window), n_obs - 1)
                window_t = torch.tensor(window, device=dev)
            if not alive:
                break
        attempt += 1
        t_old, y_old, f_old = state[0], state[1], state[2]
        state, aux = advance(state, grid, idx, t_end, window_t, consts)
        h_try, ks, accept, t_new, y_new, f_new, count, go, wanted = aux
        if window < n_obs - 1:
            need_max = torch.maximum(need_max, wanted.max())
        if opts.dense is not None or tracker is not None:
            ks = torch.stack(ks)  # (s, B, D)
        if opts.dense is not None:
            opts.dense.adaptive(t_old, h_try, y_old, ks, accept, y_new, f_old, f_new)
        if callbacks is not None:
            callbacks.attempted(t_old, y_old, h_try)
            callbacks.decided(t_old, y_old, h_try, accept, go)
        writer.record(t_old, h_try, y_old, ks, y_new, f_old, f_new, t_new, idx, count, window)
        idx = idx + count

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
                if writer.dense:
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
    steps, accepted = state[8], state[9]
    stage_evals = rk.stages - 1 if rk.fsal else rk.stages
    per_attempt = stage_evals + (0 if rk.fsal else 1)
    counters = {
        "steps": steps,
        "accepted": accepted,
        "rejected": steps - accepted,
        "nfev": state[11] + per_attempt * steps,  # start-up evaluations and interpolation stages + attempts
    }
    counters["newton_iters"] = zeros
    ys = writer.ys[:, :n_obs]
    # Unfilled outputs of failed samples are NaN, never stale zeros that look like data.
    filled = torch.arange(n_obs, device=dev).unsqueeze(0) < idx.unsqueeze(1)
    ys = torch.where(filled.unsqueeze(-1), ys, torch.full_like(ys, float("nan")))
    return ys, status, counters, tracker.record(b) if tracker is not None else None


class _OutputWriter:
    """Writes the outputs that fall inside the accepted steps, without a host sync and in batches.

    :meth:`record` keeps what an attempt's dense output needs (no work); :meth:`flush` (called by the
    loop at its checks, every ``check_every`` attempts) evaluates the dense output at a window of ``m``
    output slots per sample and kept attempt (``idx``, ``idx + 1``, …) in one batched evaluation, and
    copies the values of the slots that lie inside the sample's accepted step into ``ys``; the other
    slots go to scratch columns past the last output (one per slot and attempt, so no two writes hit
    the same place). So the cost of outputs is paid once per check, not once per attempt. ``ys`` grows
    scratch columns when the window widens. Values come from elementwise arithmetic only, so a sample's
    outputs do not depend on the other samples, nor on how attempts are grouped.
    """

    def __init__(self, f, rk: ExplicitRK, ts: Tensor, y0: Tensor, n_obs: int) -> None:
        self.f, self.rk, self.ts, self.n_obs = f, rk, ts, n_obs
        self.dense = rk.tableau.dense is not None
        self.extra = rk.n_extra if self.dense else 0
        b, d = y0.shape
        self.ys = y0.new_zeros(b, n_obs + 1, d)
        self.ys[:, 0] = y0
        self.ts_flat = ts.reshape(-1)  # (B · n_obs,), differentiable in ts
        self._pending: list[tuple] = []
        self._window = 1
        self._consts: dict[tuple[int, int], tuple[Tensor, Tensor, Tensor]] = {}
        self._attempts = 0  # attempts recorded since the last flush
        self.b = b
        self.compact = COMPACT_OUTPUTS_ON_CPU and y0.device.type == "cpu"

    def record(self, t_old, h_try, y_old, ks, y_new, f_old, f_new, t_new, idx, count, window: int) -> None:
        if self._attempts and window != self._window:
            raise AssertionError("the output window changed between two flushes")  # the loop flushes first
        self._window = window
        rows = None
        if self.compact:
            # Keep only the samples whose accepted step holds an output: a few per cent of them, since a step
            # is far shorter than the gap between outputs. Picking them reads the device (free on the CPU);
            # the arithmetic per row is unchanged, so the values are bitwise those of the full batch.
            keep = count.nonzero().squeeze(1)
            if keep.numel() == 0:
                self._attempts += 1
                return
            t_old, h_try, y_old, y_new, t_new, idx, count = (
                x.index_select(0, keep) for x in (t_old, h_try, y_old, y_new, t_new, idx, count)
            )
            if self.dense:  # the interpolant reads the stages; the Hermite one the end slopes
                ks, f_old, f_new = [k_i.index_select(0, keep) for k_i in ks], None, None
            else:
                ks, f_old, f_new = [], f_old.index_select(0, keep), f_new.index_select(0, keep)
            rows = keep + self._attempts * self.b  # rows of the flush's (K·B) layout
        self._pending.append((t_old, h_try, y_old, list(ks), y_new, f_old, f_new, t_new, idx, count, rows))
        self._attempts += 1

    def flush(self, state: tuple) -> tuple:
        """Write the recorded attempts' outputs; returns ``state`` with the interpolation-only stages'
        evaluations added to its ``nfev``."""
        k, self._attempts = self._attempts, 0
        if not self._pending:
            return state
        pending, self._pending = self._pending, []
        window, n_obs, b = self._window, self.n_obs, self.b
        d = pending[0][2].shape[1]
        cols = list(zip(*pending))

        def cat(xs):  # one attempt's tensors as they are; None where the interpolant needs none
            return xs[0] if len(xs) == 1 or xs[0] is None else torch.cat(xs)

        t_old, h_try, y_old, y_new, f_old, f_new, t_new, idx, count = (
            cat(cols[i]) for i in (0, 1, 2, 4, 5, 6, 7, 8, 9)
        )
        ys = self.ys
        if ys.shape[1] < n_obs + k * window:  # scratch columns: one per slot and attempt
            ys = self.ys = torch.cat([ys, ys.new_zeros(b, n_obs + k * window - ys.shape[1], d)], dim=1)
        width = ys.shape[1]
        m, scratch, base, t_base = self._constants(k * b, b, window, width, idx.device)
        if self.compact:  # the kept rows of the (K·B) layout
            rows = cat(cols[10])
            scratch, base, t_base = (x.index_select(0, rows) for x in (scratch, base, t_base))
        slot = idx.unsqueeze(1) + m  # (rows, m)
        valid = m < count.unsqueeze(1)
        t_q = torch.take(self.ts_flat, t_base + slot.clamp(max=n_obs - 1))
        h_safe = torch.where(h_try != 0, h_try, 1.0).unsqueeze(1)
        theta = ((t_q - t_old.unsqueeze(1)) / h_safe).clamp(0.0, 1.0)  # (rows, m)
        n_rows = t_old.shape[0]
        if self.dense:
            stages = [cat(list(st)) for st in zip(*cols[3])]  # s × (rows, D)
            if self.extra:
                # Interpolation-only stages (DOP853, Verner): evaluated for every recorded row (off the CPU
                # without a sync to pick the rows), counted for the rows that use them.
                stages = self.rk.dense_stages(self.f, t_old, y_old, h_try, stages)
                if self.compact:  # the kept rows' samples
                    extra = torch.bincount(rows % b, minlength=b) * self.extra
                else:
                    extra = (self.extra * (count > 0)).reshape(k, b).sum(0)
                state = (*state[:11], state[11] + extra, *state[12:])
            if window == 1:
                val = self.rk.interpolate(y_old, h_try, stages, theta.squeeze(1)).unsqueeze(1)
            else:
                stacked = stages if isinstance(stages, Tensor) else torch.stack(stages)
                rep = (n_rows, window, d)
                val = self.rk.interpolate(
                    y_old.unsqueeze(1).expand(rep).reshape(n_rows * window, d),
                    h_try.unsqueeze(1).expand(n_rows, window).reshape(-1),
                    stacked.unsqueeze(2)
                    .expand(stacked.shape[0], *rep)
                    .reshape(stacked.shape[0], n_rows * window, d),
                    theta.reshape(-1),
                ).reshape(rep)
        else:
            val = hermite(
                y_old.unsqueeze(1),
                y_new.unsqueeze(1),
                f_old.unsqueeze(1),
                f_new.unsqueeze(1),
                h_try.unsqueeze(1),
                theta,
            )
        val = torch.where((t_q == t_new.unsqueeze(1)).unsqueeze(-1), y_new.unsqueeze(1), val)
        col = torch.where(valid, slot, scratch)
        # One indexed copy of rows of the flattened (B · width, D) outputs (cheaper than scatter_). A slot
        # is filled by one attempt only (idx moves past it), so the writes never collide.
        ys.view(b * width, d).index_copy_(0, (base + col).reshape(-1), val.reshape(n_rows * window, d))
        return state

    def _constants(self, rows: int, b: int, window: int, width: int, device) -> tuple[Tensor, ...]:
        """Slot offsets, scratch columns (one per slot and attempt, so no two writes collide) and the
        row offsets into the flattened outputs and times, for ``rows = K·B`` kept rows."""
        key = (rows, window, width)
        if key not in self._consts:
            m = torch.arange(window, device=device)
            r = torch.arange(rows, device=device)
            scratch = self.n_obs + (r // b).unsqueeze(1) * window + m
            self._consts[key] = (m, scratch, (r % b).unsqueeze(1) * width, (r % b).unsqueeze(1) * self.n_obs)
        return self._consts[key]
