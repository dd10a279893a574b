"""``torch.compile`` kernels for the hot loops (``solve(..., compile=True)``).

* **Adaptive**: one attempted step for every sample (stages, error norm, accept/reject, PID
  controller, commit, counters) is a pure tensor function (:func:`.adaptive.make_advance`);
  compiled, it becomes a few fused kernels instead of ~150 small eager ops per iteration.
* **Fixed step**: ``chunk`` consecutive steps of an explicit RK or splitting method, unrolled, with
  the step sizes as a tensor argument so a chunk compiles once and is reused for every chunk of the
  solve; the chunk returns every intermediate state for the output grid.

Compilation costs seconds to a minute once per (field, method, dtype, device); compiled functions
are cached per field object (weakly, so they go away with it). Batch sizes are treated as dynamic
after the first recompile, so a new ``B`` does not recompile every time. Inductor keeps what it
compiled on disk (its FX-graph and AOTAutograd caches, on by default), so a second process pays
only for tracing: ≈ 7 s for the first ``compile=True`` RK4 solve instead of ≈ 45–50 s
(``benchmarks/README.md``, ``compile_cache``).

**Threads.** Inductor's CPU kernels open an OpenMP parallel region per fused loop, with as many
threads as ``torch.get_num_threads()``; ATen's own element-wise kernels stay on one thread below
``SMALL_PROBLEM`` elements. When the machine is oversubscribed (other processes want the cores), each
region waits for all its threads to get a time slice, and a compiled small-batch solve became 2–5×
*slower* than the eager one (measured: RK4, B = 1024, 2 threads, two other 2-thread torch processes
on 2 cores). :func:`kernel_threads` therefore runs compiled solves of fewer than ``SMALL_PROBLEM``
state elements on one thread when the 1-minute load average says the cores are taken; on an idle
machine they keep the threads (2 threads are 15–40 % faster from B = 1024 on).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_log = logging.getLogger(__name__)

# Below this many state elements (B·D) a compiled solve runs single-threaded on a busy machine: the
# size below which ATen's element-wise kernels do not split work across threads
# (at::internal::GRAIN_SIZE), so a compiled solve is never more exposed to waiting for cores than the
# eager one. Assign to change it.
SMALL_PROBLEM = 32768


def busy_cores(threads: int, load: float | None = None, cores: int | None = None) -> bool:
    """Whether ``threads`` more runnable threads oversubscribe the machine.

    ``load`` (default: the 1-minute load average) counts this process's running thread too, hence the
    ``− 1``; ``cores``: the CPUs this process may run on.
    """
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average on this platform: assume an idle machine
            return False
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return load + threads - 1 > cores


def threads_for(numel: int, threads: int, *, load: float | None = None, cores: int | None = None) -> int:
    """Threads for the compiled kernels of a solve whose state has ``numel`` elements (see the module
    docstring): ``threads`` unless the problem is small and the cores are busy, then 1."""
    if threads <= 1 or numel >= SMALL_PROBLEM:
        return threads
    return 1 if busy_cores(threads, load, cores) else threads


@contextlib.contextmanager
def kernel_threads(numel: int, device: torch.device) -> Iterator[int]:
    """Run the block (a compiled CPU solve) with :func:`threads_for`'s thread count; restored after."""
    before = torch.get_num_threads()
    want = threads_for(numel, before) if device.type == "cpu" else before
    if want == before:
        yield before
        return
    torch.set_num_threads(want)
    try:
        yield want
    finally:
        torch.set_num_threads(before)


_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple, Callable]] = weakref.WeakKeyDictionary()
_STRONG: dict[tuple, Callable] = {}  # for fields that cannot be weakly referenced


_SERIAL = itertools.count()


def _own_code(fn: Callable) -> Callable:
    """``fn`` with a code object of its own.

    Dynamo keeps compiled graphs, and counts recompilations against its limit (8), per *code object*.
    The kernels here are closures built per field from one code object each, so without this the
    ninth field compiled in a process would exceed the limit: a ``fullgraph=True`` function then
    raises, any other silently runs eagerly. A renamed copy of the code gives every field its own
    cache and its own count.
    """
    code = fn.__code__.replace(co_name=f"{fn.__code__.co_name}_{next(_SERIAL)}")
    own = types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)
    own.__kwdefaults__ = fn.__kwdefaults__
    return own


def _cached(field: Any, key: tuple, build: Callable[[], Callable]) -> Callable:
    try:
        per_field = _CACHE.setdefault(field, {})
    except TypeError:
        per_field = _STRONG
        key = (id(field), *key)
    if key not in per_field:
        per_field[key] = build()
    return per_field[key]


def cache_owner(f: Any) -> tuple[Any, bool]:
    """The user's field behind a solve's field ``f`` (unwrapping the time reversal of a decreasing
    grid and the output check) and whether ``f`` is reversed: compiled code is cached on the user's
    object, so every solve with it reuses one compilation (a fresh wrapper per solve would compile
    again each time), and the reversal is part of the cache key."""
    reverse = hasattr(f, "reversed_of")
    base = f.reversed_of if reverse else f
    return getattr(base, "wrapped", base), reverse


def _advance_key(kind: str, rk: Any, opts: Any) -> tuple:
    """What a compiled attempt function bakes in: the method and every option it reads."""
    return (
        kind,
        rk.tableau.name,
        repr(opts.controller),
        _tol_key(opts.rtol),
        _tol_key(opts.atol),
        opts.dt_min,
        opts.dt_max,
        opts.max_steps,
        opts.hit_obs,
        opts.norm,
        opts.compensated,
        rk.perturb,
    )


def compiled_advance(advance: Callable, f: Any, rk: Any, opts: Any) -> Callable:
    f, reverse = cache_owner(f)
    key = (*_advance_key("advance", rk, opts), reverse)
    return _cached(f, key, lambda: torch.compile(_own_code(advance), dynamic=None))


# Chunks of states with at most this many elements lower torch.cat as a pointwise operation, fused
# with its inputs: the hand-written fields assemble dy/dt from components with cat, and as separate
# copy loops those dominate a small batch's kernel (RK4, Hénon–Heiles, 16 steps: B = 1 2.1x and
# B = 64 2.2x faster); from B ≈ 256 on, recomputing the fused inputs per component costs more.
POINTWISE_CAT_MAX = 512


def compiled_chunk(step_fn: Callable, f: Any, key: tuple, compensated: bool, numel: int) -> Callable:
    """Compile ``run(t0s, hs, y, comp) -> (states (K, B, D), comp)`` for K unrolled steps of a state
    with ``numel`` elements."""
    small = numel <= POINTWISE_CAT_MAX
    options = {"force_pointwise_cat": True} if small else None

    def run(t0s: torch.Tensor, hs: torch.Tensor, y: torch.Tensor, comp: torch.Tensor):
        states = []
        for k in range(hs.shape[0]):
            h = hs[k]
            delta = step_fn(t0s[k], y, h)
            if compensated:
                d = delta + comp
                y_new = y + d
                comp = d - (y_new - y)
                y = y_new
            else:
                y = y + delta
            states.append(y)
        return torch.stack(states), comp

    return _cached(
        f,
        ("chunk", *key, compensated, small),
        lambda: torch.compile(_own_code(run), dynamic=None, options=options),
    )


def _describe(f: Any, key: tuple) -> str:
    """``"<field> with <method>"`` for log records: the field's class or function name and the
    stepper's tableau or splitting scheme (``key`` as built in :func:`.fixed` for the chunk cache)."""
    name = getattr(f, "__qualname__", None) or type(f).__qualname__
    method = key[1] or key[2] or key[0]
    return f"{name} with {method}"


def column_chunk(step_fn: Callable, f: Any, key: tuple, compensated: bool, t: torch.Tensor, y: torch.Tensor):
    """Like :func:`compiled_chunk`, with the step in column form (:mod:`.columns`): ``run(t0s, hs, y,
    comp)`` splits ``y (B, D)`` into D columns, runs K steps on them and joins each recorded state
    back into ``(K, B, D)``. ``None`` when the step has no column form (the caller keeps the
    ``(B, D)`` chunk). The column form is traced once per field and method; it holds no batch size."""
    from . import columns

    def build():
        # Traced on a batch of a size no other axis has (D + 2 rows), so a column is never mistaken for
        # a length-D vector; checked against the step on the solve's own state as well.
        d = y.shape[-1]
        probe = y[torch.arange(d + 2, device=y.device) % y.shape[0]]
        h = torch.full((), 1e-2, dtype=y.dtype, device=y.device)
        cstep = columns.column_step(step_fn, t, probe, h)
        if cstep is None or not columns.same_step(cstep, step_fn, t, y, h):
            # The values stay right, only slower (Hénon–Heiles, RK4, B = 1024: 100–210 ms instead of
            # 56 ms, see test_integrators_columns): say why at INFO, once per field and method (the
            # choice is cached), so a field, or a change of a stepper, that loses the column form shows
            # in the log instead of only in a benchmark.
            why = columns.LAST_FALLBACK if cstep is None else "the column form differs on the solve's state"
            _log.info(
                "compile=True: %s keeps the (B, D) step, not the column form: %s", _describe(f, key), why
            )
            return None
        return torch.compile(_own_code(_column_run(cstep, compensated, region)))

    region = _traces_regions_once()
    compiled = _cached(f, ("column-chunk", *key, compensated, y.shape[-1], region), build)
    if compiled is None:
        return None

    def call(t0s: torch.Tensor, hs: torch.Tensor, y_: torch.Tensor, comp: torch.Tensor):
        if not region:
            return compiled(t0s, hs, y_.unbind(-1), comp.unbind(-1))
        # Dynamo reads the option while it traces, which happens inside a call (the first one, and any
        # recompilation); set for this call only, so the user's own compiled code keeps the default.
        config = torch._dynamo.config
        before = config.inline_invoke_subgraph
        config.inline_invoke_subgraph = True
        try:
            return compiled(t0s, hs, y_.unbind(-1), comp.unbind(-1))
        finally:
            config.inline_invoke_subgraph = before

    return call


def _traces_regions_once() -> bool:
    """Whether this PyTorch can trace a repeated region once and inline its copies afterwards:
    ``torch.compiler.nested_compile_region`` and Dynamo's ``inline_invoke_subgraph`` option."""
    import torch._dynamo

    return hasattr(torch.compiler, "nested_compile_region") and hasattr(
        torch._dynamo.config, "inline_invoke_subgraph"
    )


def _column_run(cstep: Callable, compensated: bool, region: bool = False) -> Callable:
    """The chunk of ``hs.shape[0]`` steps on columns, to be compiled.

    With ``region``, the step is a *nested compile region*: Dynamo traces it once and repeats the
    traced graph for the other steps, then (``inline_invoke_subgraph``, set by the caller) inlines
    every copy, so Inductor still gets one flat graph to fuse across the steps. Tracing the
    unrolled chunk op by op was most of the first ``compile=True`` call in a second process, where
    Inductor's own work comes from its disk cache (Hénon–Heiles, RK4, 16 steps of ~100 column
    operations: 9.5–11.2 s → 6.9–7.8 s, benchmarks' ``compile_cache``).
    """
    if region:
        cstep = torch.compiler.nested_compile_region(cstep)

    def run(t0s: torch.Tensor, hs: torch.Tensor, cols: tuple, comp: tuple):
        states = []
        if region:
            # A region's inputs must not alias one another, and the columns of y are views of it.
            cols = tuple(c.clone() for c in cols)
        for k in range(hs.shape[0]):
            delta = cstep(t0s[k], cols, hs[k])
            if compensated:
                ds = [dk + ck for dk, ck in zip(delta, comp)]
                new = [c + dk for c, dk in zip(cols, ds)]
                comp = tuple(dk - (nk - c) for dk, nk, c in zip(ds, new, cols))
                cols = tuple(new)
            else:
                cols = tuple(c + dk for c, dk in zip(cols, delta))
            states.append(torch.stack(cols, -1))
        return torch.stack(states), torch.stack(comp, -1)

    return run


# Largest number of aten operations one compiled fixed-step chunk should hold: compile time grows
# with the unrolled graph (a 16-step RK4 chunk of a CNF's Hutchinson field, ~210 ops a step, had not
# finished compiling after ten minutes on 2 cores), while the per-call overhead a longer chunk
# amortises (tens of µs) only matters for cheap fields (Hénon–Heiles RK4: ~70 ops a step).
CHUNK_OPS = 2048


class _OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def chunk_for(field: Any, eager_step: Callable[[], Any], chunk: int, like: torch.Tensor) -> int:
    """Steps per compiled fixed-step chunk: ``chunk`` (16) for cheap steps, fewer — down to one — when
    one step runs so many operations that ``chunk`` unrolled copies would take minutes to compile.

    Runs ``eager_step`` once (the solve's eager check of the field's output) counting its aten
    operations; the choice is cached per field, so every solve with it reuses one compiled chunk.
    """
    measured = []

    def measure() -> int:
        counter = _OpCounter()
        with counter:
            eager_step()
        measured.append(True)
        ops = max(counter.ops, 1)
        # Cheap steps keep the full chunk (per-call overhead dominates them); expensive ones take
        # chunks of at most a quarter of the budget, where the overhead is negligible next to the step.
        return chunk if ops * chunk <= CHUNK_OPS else max(1, CHUNK_OPS // (4 * ops))

    size = _cached(field, ("chunk-size", chunk, like.dtype, like.device.type, like.shape[-1]), measure)
    if not measured:  # a cached size: the eager check of the field's output still runs
        eager_step()
    return size


def _tol_key(v: Any) -> Any:
    return tuple(v.tolist()) if isinstance(v, torch.Tensor) else v


def compiled_advance_graphs(advance: Callable, f: Any, rk: Any, opts: Any) -> Callable:
    """The attempt function compiled with ``mode="reduce-overhead"`` (``compile="reduce-overhead"``).

    On CUDA, Inductor records the fused kernels of one attempt as a CUDA graph and replays it: one
    launch per attempt instead of one per kernel, which is what a launch-bound loop (small batches,
    cheap fields) needs. A graph replays into the same output buffers, so every call marks a new step
    (``torch.compiler.cudagraph_mark_step_begin``) and returns copies: the loop keeps the previous state
    and the step's stages (dense output, events) after the next call. Shapes are static (a new batch
    size records a new graph). On the CPU there are no graphs and this is ``compile=True`` plus the
    copies.
    """
    f, reverse = cache_owner(f)
    key = (*_advance_key("advance-graphs", rk, opts), reverse)
    fn = _cached(f, key, lambda: torch.compile(_own_code(advance), mode="reduce-overhead", dynamic=False))

    def run(*args: Any) -> Any:
        torch.compiler.cudagraph_mark_step_begin()
        out = fn(*args)
        return torch.utils._pytree.tree_map(lambda x: x.clone() if isinstance(x, torch.Tensor) else x, out)

    return run


def compiled_adjoint_step(step: Callable, f: Any, key: tuple) -> Callable:
    """Compile one backward step of the continuous adjoint (:func:`.adjoint._fused_adjoint_step`).

    Traced with ``fullgraph=True``: the step is either one graph (stages, their vector–Jacobian
    products through ``torch.func.vjp`` — nested transforms in the field included, such as a CNF's
    Hutchinson estimator — and the parameter-quadrature increment) or an error at the first call,
    after which the caller runs the eager loop instead of a partly compiled one.
    """
    return _cached(f, ("adjoint-step", *key), lambda: _FullGraph(step))


class _FullGraph:
    """A ``fullgraph=True`` compiled function that remembers why it could not be compiled
    (``failure``, set by its caller), so later solves with the same field skip it without retracing."""

    def __init__(self, fn: Callable) -> None:
        self.fn = torch.compile(_own_code(fn), dynamic=None, fullgraph=True)
        self.failure: str | None = None

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)
