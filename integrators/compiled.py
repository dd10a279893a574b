"""``torch.compile`` kernels for the hot loops (``solve(..., compile=True)``).

* **Adaptive**: one attempted step for every sample (stages, error norm, accept/reject, PID
  controller, commit, counters) is a pure tensor function (:func:`.adaptive.make_advance`);
  compiled, it becomes a few fused kernels instead of ~150 small eager ops per iteration.
* **Fixed step**: ``chunk`` consecutive steps of an explicit RK or splitting method, unrolled, with
  the step sizes as a tensor argument so a chunk compiles once and is reused for every chunk of the
  solve; the chunk returns every intermediate state for the output grid.

Compilation costs seconds to a minute once per (field, method, dtype, device); compiled functions
are cached per field object (weakly, so they go away with it). Batch sizes are treated as dynamic
after the first recompile, so a new ``B`` does not recompile every time.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch

_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple, Callable]] = weakref.WeakKeyDictionary()
_STRONG: dict[tuple, Callable] = {}  # for fields that cannot be weakly referenced


def _cached(field: Any, key: tuple, build: Callable[[], Callable]) -> Callable:
    try:
        per_field = _CACHE.setdefault(field, {})
    except TypeError:
        per_field = _STRONG
        key = (id(field), *key)
    if key not in per_field:
        per_field[key] = build()
    return per_field[key]


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
    key = _advance_key("advance", rk, opts)
    return _cached(f, key, lambda: torch.compile(advance, dynamic=None))


def compiled_chunk(step_fn: Callable, f: Any, key: tuple, compensated: bool) -> Callable:
    """Compile ``run(t0s, hs, y, comp) -> (states (K, B, D), comp)`` for K unrolled steps."""

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

    return _cached(f, ("chunk", *key, compensated), lambda: torch.compile(run, dynamic=None))


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
    key = _advance_key("advance-graphs", rk, opts)
    fn = _cached(f, key, lambda: torch.compile(advance, mode="reduce-overhead", dynamic=False))

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
        self.fn = torch.compile(fn, dynamic=None, fullgraph=True)
        self.failure: str | None = None

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)
