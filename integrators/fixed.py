"""Fixed-step integration for every method family (explicit RK, implicit RK, splittings).

Each interval ``[t_k, t_{k+1}]`` of a sample's output grid is divided into
``n_k = ⌈(t_{k+1} − t_k)/dt⌉`` equal steps (one step per interval when ``dt`` is ``None``), so
every output time is hit exactly — no interpolation, no union of grids across samples.

* **Shared grid** ``(T,)``: the step sequence is known in Python floats before the loop; there is
  no value-dependent control flow, so solves run under ``vmap``, ``grad``, ``jacrev``, ``jvp`` and
  ``torch.compile``.
* **Per-sample grids** ``(B, T)``: every sample advances through its own intervals with its own
  step; samples that finish early take zero steps (masked) until the longest one ends.

Steppers return the increment ``δ`` of a step; ``y + δ`` is formed here, optionally with Kahan
compensated summation, which keeps round-off from accumulating over 10⁵–10⁶ steps (Hairer,
Lubich & Wanner, *Geometric Numerical Integration*, §VIII.5).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from .callbacks import StepCallbacks
from .events import Event, EventTracker
from .explicit import hermite
from .inputs import Problem
from .solution import EventRecord, Status

Tensor = torch.Tensor


class StepInfo(Protocol):
    iterations: Tensor  # (B,) Newton iterations used in the step
    converged: Tensor  # (B,) bool


class Stepper(Protocol):
    evals_per_step: int

    def step(self, t: Tensor, y: Tensor, h: float | Tensor) -> tuple[Tensor, StepInfo | None]: ...


@dataclass(frozen=True)
class FixedOptions:
    dt: float | None
    compensated: bool
    events: tuple[Event, ...]
    polish_events: bool
    compile: bool = False
    chunk: int = 16  # steps per compiled kernel call
    dense: Any = None  # a dense.DenseRecorder when dense output was asked for
    callbacks: StepCallbacks | None = None


def substeps(span: float, dt: float | None) -> int:
    """Steps for an interval: ⌈span/dt⌉, with a relative slack so 1.0/0.1 gives 10, not 11."""
    if dt is None:
        return 1
    return max(1, math.ceil(span / dt * (1 - 1e-12)))


def refuse_long_fixed_solves(ts: Tensor, dt: float | None, max_steps: int) -> None:
    """Raise before the loop when a sample would need more than ``max_steps`` fixed steps.

    ``ts`` is ``(B, T)``; the count is ``Σₖ ⌈Δtₖ/dt⌉`` per sample, computed in floating point so a
    step of 1e-300 gives ~1e300 (refused) instead of a loop that never ends or an integer overflow.
    """
    if dt is None or ts.shape[-1] < 2:
        return
    spans = ts.detach().diff(dim=-1).to(torch.float64)
    counts = torch.ceil(spans / dt * (1 - 1e-12)).clamp(min=1).sum(-1)
    worst = int(counts.argmax())
    need = float(counts[worst])
    if need > max_steps:
        from .errors import InvalidArgumentError

        raise InvalidArgumentError(
            "dt",
            dt,
            f"a step giving at most max_steps = {max_steps} steps per sample; sample {worst} needs "
            f"{need:.3g} steps of dt over its grid (use a larger dt or raise max_steps)",
        )


def _functorch_active() -> bool:
    check = getattr(torch._C, "_are_functorch_transforms_active", None)
    return bool(check()) if check is not None else False


def _records_graph(y: Tensor) -> bool:
    """Whether the solve's states must stay as they are for autograd or a ``torch.func`` transform
    (then outputs are gathered out of place, not written into a preallocated ``ys``)."""
    return _functorch_active() or (torch.is_grad_enabled() and y.requires_grad)


class _Accumulator:
    """``y ← y + δ``, optionally Kahan-compensated."""

    def __init__(self, y: Tensor, compensated: bool) -> None:
        self.comp = torch.zeros_like(y) if compensated else None

    def add(self, y: Tensor, delta: Tensor) -> Tensor:
        if self.comp is None:
            return y + delta
        d = delta + self.comp
        y_new = y + d
        self.comp = d - (y_new - y)
        return y_new

    def mask(self, keep: Tensor) -> None:
        if self.comp is not None:
            self.comp = torch.where(keep, self.comp, torch.zeros_like(self.comp))


class _Recorder:
    """The recorded states of a shared-grid solve, gathered into ``ys`` of shape ``(B, T, D)``.

    With an autograd graph (a state that requires grad) or under a ``torch.func`` transform, the
    states are kept as they are and stacked at the end: the graph stays one ``stack`` node, and
    in-place writes are not allowed under ``vmap``.

    Otherwise ``ys`` is allocated once and the states pass through a small time-major staging buffer
    ``(K, B, D)`` (about :attr:`STAGE_BYTES`), copied into ``ys[:, k : k + K]`` when it is full. Kept
    states are fresh memory that lives to the end of the loop, and their stack copies all of it
    once more: at B = 16384, D = 4 (float64, RK4 on Hénon–Heiles, 200 outputs) a solve took 52 k
    page faults kept and stacked, 27 k staged (the output itself has 25.7 k pages), and with 1000
    outputs the eager solve took 4.4 s kept, 2.8 s staged (medians of nine runs interleaved with
    torchdiffeq's 3.3 s; ``benchmarks/bench_integrators.py``). Writing each state straight into
    its column ``ys[:, k]`` (K = 1) measured about the same at B = 16384 and 14–19 % slower at
    B = 1024–4096 (medians of seven); the staged copy writes ``K·D`` contiguous values per row.
    """

    STAGE_BYTES = 16 * 2**20

    def __init__(self, y0: Tensor, n_out: int) -> None:
        self.n_out = n_out
        self.kept: list[Tensor] | None = [y0]
        self.ys: Tensor | None = None
        if not _records_graph(y0):
            self._allocate(y0)

    def _allocate(self, y0: Tensor) -> None:
        per_state = max(y0.numel() * y0.element_size(), 1)
        k = max(1, min(self.n_out - 1, self.STAGE_BYTES // per_state))
        self.ys = y0.new_empty(y0.shape[0], self.n_out, y0.shape[-1])
        self.ys[:, 0] = y0
        self.stage = y0.new_empty(k, *y0.shape)
        self.staged = 0  # states in the staging buffer
        self.written = 1  # columns of ys filled
        self.kept = None

    def append(self, y: Tensor) -> None:
        if self.ys is not None and _records_graph(y):
            # The field has trainable parameters (usually from the first recorded state on; a field
            # may also start using them later): keep the graph from here, after the states so far.
            self.kept = [*self.ys[:, : self.written].unbind(1), *self.stage[: self.staged], y]
            self.ys = None
            return
        if self.kept is not None:
            self.kept.append(y)
            return
        self.stage[self.staged].copy_(y)
        self.staged += 1
        if self.staged == self.stage.shape[0]:
            self._flush()

    def _flush(self) -> None:
        if self.staged:
            lo, n = self.written, self.staged
            self.ys[:, lo : lo + n].copy_(self.stage[:n].transpose(0, 1))
            self.written, self.staged = lo + n, 0

    def result(self) -> Tensor:
        if self.kept is not None:
            return torch.stack(self.kept, dim=1)
        self._flush()
        return self.ys


def integrate_fixed(
    problem: Problem, stepper: Stepper, opts: FixedOptions
) -> tuple[Tensor, Tensor, dict[str, Tensor], EventRecord | None]:
    if problem.shared is not None:
        return _shared_grid(problem, stepper, opts)
    return _per_sample_grid(problem, stepper, opts)


def _stats(
    b: int, steps: Tensor | int, stepper: Stepper, iters: Tensor | None, like: Tensor
) -> dict[str, Tensor]:
    steps_t = torch.as_tensor(steps, device=like.device, dtype=torch.int64).expand(b).clone()
    newton = iters if iters is not None else torch.zeros(b, dtype=torch.int64, device=like.device)
    return {
        "steps": steps_t,
        "accepted": steps_t.clone(),
        "rejected": torch.zeros_like(steps_t),
        "nfev": steps_t * stepper.evals_per_step + newton,
        "newton_iters": newton,
    }


class _FailureLog:
    """First failure per sample: its cause is the status (a Newton failure that later overflows
    stays ``not_converged``). Steppers without convergence info only fail by non-finite states,
    which the final check finds."""

    def __init__(self, y: Tensor) -> None:
        self.status = torch.zeros(y.shape[0], dtype=torch.int8, device=y.device)

    def after_step(self, info: StepInfo | None, y_new: Tensor, active: Tensor | None = None) -> None:
        if info is None:
            return
        # A failed step returns NaN and the sample is dead afterwards (steppers report dead samples as
        # converged), so recording the first non-convergence here and non-finite states at the end
        # gives the first cause.
        failed = ~info.converged if active is None else ~info.converged & active
        self.status = torch.where(
            (self.status == Status.SUCCESS) & failed,
            torch.full_like(self.status, Status.NOT_CONVERGED),
            self.status,
        )

    def final(self, y_end: Tensor) -> Tensor:
        """Statuses after the loop, from the end state ``(B, D)`` alone.

        A non-finite component of the state never becomes finite again under ``y ← y + δ``
        (``±inf + finite = ±inf``, ``inf − inf`` and anything ``+ NaN`` are NaN; the compensated sum
        propagates them too), and every solve ends on its last output, so the end state is finite
        exactly when every recorded state is. One pass over ``(B, D)`` instead of over the whole
        trajectory ``(B, T, D)``, which at large batches cost more than the compiled steps.
        """
        finite = torch.isfinite(y_end).all(-1)
        ok = self.status == Status.SUCCESS
        return torch.where(ok & ~finite, torch.full_like(self.status, Status.NONFINITE), self.status)


class _EventHelper:
    """Hermite dense output and exact partial steps for event location in fixed-step solves."""

    def __init__(self, problem: Problem, stepper: Stepper, events: tuple[Event, ...], polish: bool, t0, y0):
        self.f, self.stepper, self.polish = problem.f, stepper, polish
        self.tracker = EventTracker(events, t0, y0)
        self.f_old = self.f(t0, y0)

    def step(self, t: Tensor, h: Tensor, y_old: Tensor, y_new: Tensor, active: Tensor) -> None:
        f_new = self.f(t + h, y_new)
        f_old = self.f_old

        def interp(r, th):
            return hermite(y_old[r], y_new[r], f_old[r], f_new[r], h[r], th)

        def exact(r, th):
            return y_old[r] + self.stepper.step(t[r], y_old[r], h[r] * th)[0]

        self.tracker.step(t, h, y_new, active, interp, exact if self.polish else None)
        self.f_old = f_new


def step_layout(grid: Tensor, dt: float | None) -> tuple[Tensor, Tensor, list[int]]:
    """Every step of a shared-grid solve: start times ``(S,)``, sizes ``(S,)`` and, per output
    interval, the index of its last step.

    The counts ``⌈Δt/dt⌉`` are integers chosen on the host, but the start times and sizes are built
    from ``grid`` with tensor operations, so they stay in the autograd graph: derivatives with
    respect to the output times flow through the step sizes (``∂h/∂t_k``), as they do on per-sample
    grids.
    """
    floats = grid.detach().tolist()
    counts = [substeps(floats[k + 1] - floats[k], dt) for k in range(len(floats) - 1)]
    n = torch.tensor(counts, device=grid.device)
    sizes = (grid.diff() / n.to(grid.dtype)).repeat_interleave(n)
    first = torch.cumsum(n, 0) - n  # index of each interval's first step
    j = torch.arange(int(n.sum()), device=grid.device) - first.repeat_interleave(n)
    starts = grid[:-1].repeat_interleave(n) + j.to(grid.dtype) * sizes
    last = [int(v) for v in itertools.accumulate(counts)]
    return starts, sizes, [v - 1 for v in last]


def _compiled_shared_grid(problem: Problem, stepper: Stepper, opts: FixedOptions):
    """Shared grid through a compiled K-step kernel (see :mod:`.compiled`).

    The whole step sequence (start times and sizes) is laid out first; chunks of K steps run as one
    compiled call, padded at the end with zero steps (which leave ``y`` unchanged).
    """
    from .compiled import POINTWISE_CAT_MAX, cache_owner, chunk_for, column_chunk, compiled_chunk

    y = problem.y0
    b = y.shape[0]
    starts, sizes, record_after = step_layout(problem.shared, opts.dt)
    n_steps = sizes.shape[0]
    field, reverse = cache_owner(problem.f)
    # The field's output check runs here, eagerly, so the compiled code never traces it; the same
    # step sizes the compiled chunk (see chunk_for).
    kk = chunk_for(field, lambda: stepper.step(problem.shared[0], y, 0.0), opts.chunk, y)
    pad = (-n_steps) % kk
    t0s = torch.cat([starts, problem.shared[-1:].expand(pad)]).reshape(-1, kk)
    hs = torch.cat([sizes, sizes.new_zeros(pad)]).reshape(-1, kk)
    key = (
        type(stepper).__name__,
        getattr(getattr(stepper, "rk", None), "tableau", None) and stepper.rk.tableau.name,
        getattr(getattr(stepper, "scheme", None), "name", None),
        kk,
        y.dtype,
        y.device.type,
        reverse,
    )
    step_fn = lambda t, yy, h: stepper.step(t, yy, h)[0]  # noqa: E731
    run = None
    if y.numel() > POINTWISE_CAT_MAX and y.dim() == 2:
        # Past the small batches, the step on separate component columns (see .columns) when it has one.
        run = column_chunk(step_fn, field, key, opts.compensated, problem.shared[0], y)
    if run is None:
        run = compiled_chunk(step_fn, field, key, opts.compensated, y.numel())
    comp = torch.zeros_like(y)
    # The outputs are written straight into ys (B, T, D): one pass over each recorded state, instead of
    # concatenating every chunk, gathering the recorded steps and prepending y0 (three more copies of
    # the whole trajectory — what made large batches memory-bound).
    ys = y.new_empty(b, len(record_after) + 1, y.shape[-1])
    ys[:, 0] = problem.y0
    slot = 0  # outputs written so far (after y0)
    chunks = []
    for c in range(t0s.shape[0]):
        states, comp = run(t0s[c], hs[c], y, comp)
        y = states[-1]
        if opts.dense is not None:
            chunks.append(states)
        lo, hi = c * kk, min((c + 1) * kk, n_steps)
        first = slot
        while slot < len(record_after) and record_after[slot] < hi:
            slot += 1
        if slot > first:
            sel = [record_after[j] - lo for j in range(first, slot)]
            if sel[-1] - sel[0] == slot - first - 1:  # consecutive steps: a slice, no gather
                rec = states[sel[0] : sel[-1] + 1]
            else:
                rec = states[torch.tensor(sel, device=states.device)]
            ys[:, 1 + first : 1 + slot] = rec.transpose(0, 1)
    if opts.dense is not None:
        states = torch.cat([y.new_zeros(0, b, y.shape[-1]), *chunks])[:n_steps]
        opts.dense.fixed_sequence(t0s.reshape(-1)[:n_steps], hs.reshape(-1)[:n_steps], states)
    failures = _FailureLog(y)
    return ys, failures.final(y), _stats(b, n_steps, stepper, None, y), None


def _shared_grid(problem: Problem, stepper: Stepper, opts: FixedOptions):
    if opts.compile and not opts.events and opts.callbacks is None:
        return _compiled_shared_grid(problem, stepper, opts)
    y = problem.y0
    b = y.shape[0]
    # Differentiating with respect to the times needs the step sizes as tensors in the graph;
    # otherwise plain floats let every stage fold h into one fused multiply-add.
    timed = problem.shared.requires_grad
    if timed:
        starts, sizes, _ = step_layout(problem.shared, opts.dt)
    grid = problem.shared.detach().tolist()  # one host sync, before the loop
    acc = _Accumulator(y, opts.compensated)
    failures = _FailureLog(y)
    outs = _Recorder(y, len(grid))
    iters = None
    events = None
    if opts.events:
        t0 = problem.shared[0].expand(b)
        events = _EventHelper(problem, stepper, opts.events, opts.polish_events, t0, y)
    steps = 0
    for k in range(len(grid) - 1):
        t0, t1 = grid[k], grid[k + 1]
        n = substeps(t1 - t0, opts.dt)
        h = (t1 - t0) / n
        for j in range(n):
            if timed:
                t, h = starts[steps], sizes[steps].expand(b)
            else:
                t = problem.shared.new_tensor(t0 + j * h) if j else problem.shared[k]
            if opts.callbacks is not None:
                opts.callbacks.attempted(t.expand(b), y, h if timed else y.new_full((b,), h))
            delta, info = stepper.step(t, y, h)
            y_new = acc.add(y, delta)
            if info is not None:
                iters = info.iterations if iters is None else iters + info.iterations
                failures.after_step(info, y_new)
            if events is not None:
                hb = h if timed else y.new_full((b,), h)
                events.step(t.expand(b), hb, y, y_new, torch.ones(b, dtype=torch.bool, device=y.device))
            if opts.dense is not None:
                opts.dense.fixed(t, h, y_new)
            y = y_new
            steps += 1
        outs.append(y)
    ys = outs.result()
    record = events.tracker.record(b) if events is not None else None
    return ys, failures.final(y), _stats(b, steps, stepper, iters, y), record


def _per_sample_grid(problem: Problem, stepper: Stepper, opts: FixedOptions):
    y, ts = problem.y0, problem.ts
    b, n_obs = ts.shape
    dev = y.device
    rows = torch.arange(b, device=dev)
    spans = ts.diff(dim=1)  # (B, T-1)
    if opts.dt is None:
        n_sub = torch.ones_like(spans, dtype=torch.long)
    else:
        n_sub = torch.ceil(spans / opts.dt * (1 - 1e-12)).clamp(min=1).to(torch.long)
    total = n_sub.sum(1)
    n_steps = int(total.max()) if n_obs > 1 else 0
    k = torch.zeros(b, dtype=torch.long, device=dev)  # current interval
    j = torch.zeros(b, dtype=torch.long, device=dev)  # substep within it
    acc = _Accumulator(y, opts.compensated)
    failures = _FailureLog(y)
    iters = None
    events = None
    if opts.events:
        events = _EventHelper(problem, stepper, opts.events, opts.polish_events, ts[:, 0], y)
    graph_mode = _records_graph(y)
    ys = None if graph_mode else y.new_full((b, n_obs, y.shape[-1]), float("nan"))
    if ys is not None:
        ys[:, 0] = y
    snaps = [y]
    fill = torch.zeros(b, n_obs, dtype=torch.long, device=dev)  # step index that filled each slot
    for s in range(n_steps):
        active = k < n_obs - 1
        kc = k.clamp(max=max(n_obs - 2, 0)).unsqueeze(1)
        nk = n_sub.gather(1, kc).squeeze(1)
        h = torch.where(active, spans.gather(1, kc).squeeze(1) / nk, torch.zeros_like(y[:, 0]))
        t = ts.gather(1, kc).squeeze(1) + j * h
        if opts.callbacks is not None:
            opts.callbacks.attempted(t, y, h)
        delta, info = stepper.step(t, y, h)
        delta = torch.where(active.unsqueeze(-1), delta, torch.zeros_like(delta))
        y_new = acc.add(y, delta)
        if info is not None:
            it = torch.where(active, info.iterations, torch.zeros_like(info.iterations))
            iters = it if iters is None else iters + it
            failures.after_step(info, y_new, active)
        if events is not None:
            events.step(t, h, y, y_new, active)
        if opts.dense is not None:
            opts.dense.fixed(t, h, y_new, active)
        y = y_new
        if s == 0 and not graph_mode and y.requires_grad and torch.is_grad_enabled():
            graph_mode = True  # f has trainable parameters: keep every state for backprop
            ys = None
        j = j + active
        end = active & (j == nk)
        slot = (k + 1).clamp(max=n_obs - 1)
        if graph_mode:
            snaps.append(y)
            fill[rows, slot] = torch.where(end, torch.full_like(slot, s + 1), fill[rows, slot])
        else:
            ys[rows, slot] = torch.where(end.unsqueeze(-1), y, ys[rows, slot])
        k = k + end
        j = torch.where(end, torch.zeros_like(j), j)
    if graph_mode:
        stacked = torch.stack(snaps)  # (S + 1, B, D)
        ys = stacked[fill, rows.unsqueeze(1)]  # (B, T, D)
    record = events.tracker.record(b) if events is not None else None
    return ys, failures.final(y), _stats(b, total, stepper, iters, y), record
