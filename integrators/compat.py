"""A torchdiffeq-compatible facade over :func:`~symflow.integrators.solve`: change one import.

    # from torchdiffeq import odeint, odeint_adjoint, odeint_event
    from symflow.integrators import odeint, odeint_adjoint, odeint_event

The three functions take torchdiffeq's arguments and follow its documented conventions:

* ``func(t, y)`` gets a scalar ``t`` and ``y`` shaped like ``y0`` (any shape, or a tuple of tensors,
  real or complex); the whole ``y0`` is *one* state with one step size, as in torchdiffeq (for
  per-sample step sizes use :func:`solve` with a batch).
* Outputs are time-first: ``(len(t), *y0.shape)``, or a tuple of such for tuple ``y0``.
* ``t`` is 1-d, increasing or decreasing; gradients flow to ``y0``, ``t`` and the parameters.
* Method names are torchdiffeq's (:data:`TORCHDIFFEQ_METHODS`); its ``rk4`` is Kutta's 3/8 rule, so
  it maps to ``rk38`` here. Any name of symflow's own registry also works (``"classic_rk4"``,
  ``"dop853"``, ``"vern9"``, ``"gl6"`` ...), torchdiffeq's meaning winning where both exist.
* ``options``: ``step_size``, ``grid_constructor``, ``perturb``, ``interp`` (fixed step);
  ``first_step``, ``safety``, ``ifactor``, ``dfactor``, ``max_num_steps``, ``step_t``, ``jump_t``
  (and the older ``grid_points``), ``norm`` (adaptive); callbacks ``callback_step``,
  ``callback_accept_step``, ``callback_reject_step`` defined on ``func``.
* ``odeint_adjoint``: ``adjoint_rtol``, ``adjoint_atol``, ``adjoint_method``, ``adjoint_options``
  (``step_size``, ``norm="seminorm"``, ``max_num_steps``, ``safety``/``ifactor``/``dfactor``) and
  ``adjoint_params``, which need not belong to ``func`` (``func`` need not be a module then).
* ``odeint_event`` (and ``odeint(..., event_fn=...)``) integrates until the first zero crossing of
  any element of ``event_fn(t, y)`` and returns ``(event_t, states at [t0, event_t])``; gradients
  reach the event time through the implicit function theorem.

Deliberate differences (each raises a clear error or is listed in ``docs/integrators.md``): fixed-step
solves split every output interval into ``⌈Δt/step_size⌉`` equal steps, so outputs are exact step
ends rather than interpolated (``interp`` has nothing to do); times follow ``y0``'s dtype (the
``dtype`` option is refused unless it equals it); the adaptive controller is the integral one
torchdiffeq uses, but step sequences are not bitwise torchdiffeq's; event times are polished on the
integrator's own steps (more accurate than ``atol``); multistep methods (``explicit_adams``,
``implicit_adams``, ``fixed_adams``) and ``scipy_solver`` are not provided; adjoint-pass callbacks
(``callback_*_adjoint``), callable adjoint norms and per-element adjoint tolerances are refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .adjoint import AdjointOptions, adjoint_solve
from .controller import PIDController
from .errors import CapabilityError, IntegrationError, InvalidArgumentError, UnknownNameError
from .events import Event
from .methods import MethodSpec, get_method, list_methods
from .solve import solve

Tensor = torch.Tensor

#: torchdiffeq's method names and the symflow method each runs.
TORCHDIFFEQ_METHODS = {
    "dopri5": "dopri5",
    "dopri8": "dop853",  # torchdiffeq: Dormand–Prince 8(7) 13M; here Hairer's 8(5,3), also 8th order
    "tsit5": "tsit5",
    "bosh3": "bosh3",
    "fehlberg2": "fehlberg2",
    "adaptive_heun": "heun_euler",
    "euler": "euler",
    "midpoint": "midpoint",
    "heun2": "heun",
    "heun3": "heun3",
    "rk4": "rk38",  # torchdiffeq's rk4 is the 3/8 rule
    "implicit_euler": "backward_euler",
    "implicit_midpoint": "implicit_midpoint",
    "gl4": "gl4",
    "gl6": "gl6",
}
NOT_PROVIDED = {
    "explicit_adams": "a multistep method",
    "implicit_adams": "a multistep method",
    "fixed_adams": "a multistep method",
    "scipy_solver": "a wrapper around SciPy's solve_ivp",
    "trapezoid": "an implicit method",
    "radauIIA3": "an implicit method",
    "radauIIA5": "an implicit method",
    "sdirk2": "an implicit method",
    "trbdf2": "an implicit method",
}
FIXED_OPTIONS = ("step_size", "grid_constructor", "perturb", "interp")
ADAPTIVE_OPTIONS = (
    "first_step",
    "safety",
    "ifactor",
    "dfactor",
    "max_num_steps",
    "dtype",
    "step_t",
    "jump_t",
    "grid_points",
    "norm",
)
ADJOINT_OPTIONS = ("step_size", "norm", "max_num_steps", "safety", "ifactor", "dfactor")
CALLBACKS = ("callback_step", "callback_accept_step", "callback_reject_step")


def resolve_method(name: str | None) -> MethodSpec:
    """The symflow method behind a torchdiffeq method name (``None``: ``dopri5``)."""
    if name is None:
        return get_method("dopri5")
    if not isinstance(name, str):
        raise InvalidArgumentError("method", name, "a method name such as 'dopri5' or 'rk4'")
    if name in TORCHDIFFEQ_METHODS:
        return get_method(TORCHDIFFEQ_METHODS[name])
    if name in NOT_PROVIDED:
        raise CapabilityError(
            f"method {name!r} ({NOT_PROVIDED[name]}) is not provided by symflow's torchdiffeq facade; "
            f"use one of {', '.join(TORCHDIFFEQ_METHODS)} "
            f"(or any symflow method: {', '.join(list_methods())})"
        )
    try:
        return get_method(name)
    except UnknownNameError as err:
        raise UnknownNameError(
            "method", name, sorted({*TORCHDIFFEQ_METHODS, *list_methods()}), err.suggestions
        ) from None


# --- states of any shape, or tuples of them, as one flat row ---------------------------------------


@dataclass(frozen=True)
class _Layout:
    """How a user state (a tensor of any shape, or a tuple) maps to one flat real row ``(D,)``."""

    shapes: tuple[torch.Size, ...]
    is_tuple: bool
    is_complex: bool
    dtype: torch.dtype  # the real dtype of the flat row
    device: torch.device

    @staticmethod
    def of(y0: Any) -> _Layout:
        parts = _parts("y0", y0)
        dtypes = {p.dtype for p in parts}
        devices = {p.device for p in parts}
        if len(dtypes) > 1 or len(devices) > 1:
            raise InvalidArgumentError("y0", y0, "tensors of one dtype on one device")
        first = parts[0]
        if not (first.is_floating_point() or first.is_complex()):
            raise InvalidArgumentError("y0", first, "floating-point (or complex) tensors")
        real = first.real.dtype if first.is_complex() else first.dtype
        return _Layout(
            tuple(p.shape for p in parts), not isinstance(y0, Tensor), first.is_complex(), real, first.device
        )

    @property
    def sizes(self) -> list[int]:
        return [math.prod(s) * (2 if self.is_complex else 1) for s in self.shapes]

    def flatten(self, y: Any, name: str = "y0") -> Tensor:
        """``y`` (user layout) → ``(D,)``; checks shapes."""
        parts = _parts(name, y)
        if len(parts) != len(self.shapes) or any(p.shape != s for p, s in zip(parts, self.shapes)):
            got = tuple(tuple(p.shape) for p in parts) if self.is_tuple else tuple(parts[0].shape)
            want = tuple(tuple(s) for s in self.shapes) if self.is_tuple else tuple(self.shapes[0])
            raise InvalidArgumentError(name, got, f"the shape of y0: {want}")
        flat = [torch.view_as_real(p) if self.is_complex else p for p in parts]
        return torch.cat([p.reshape(-1) for p in flat])

    def unflatten(self, row: Tensor, lead: tuple[int, ...] = ()) -> Any:
        """``(*lead, D)`` → user layout with ``lead`` dimensions in front."""
        out, start = [], 0
        for shape, size in zip(self.shapes, self.sizes):
            piece = row[..., start : start + size]
            start += size
            if self.is_complex:
                piece = torch.view_as_complex(piece.reshape((*lead, *shape, 2)).contiguous())
            else:
                piece = piece.reshape((*lead, *shape))
            out.append(piece)
        return tuple(out) if self.is_tuple else out[0]


def _parts(name: str, y: Any) -> list[Tensor]:
    if isinstance(y, Tensor):
        return [y]
    if isinstance(y, (tuple, list)) and y and all(isinstance(p, Tensor) for p in y):
        return list(y)
    raise InvalidArgumentError(name, y, "a tensor or a tuple of tensors")


class _Field(torch.nn.Module):
    """The user's ``func(t, y)`` seen as a symflow field on flat rows ``(R, D)``.

    torchdiffeq calls ``func`` with one scalar time and one state; symflow's drivers may evaluate
    several rows at once (implicit stages and Jacobians, event location), so rows are evaluated one by
    one here. ``func`` is a submodule when it is a module, so its parameters are this module's.
    """

    def __init__(self, func: Callable, layout: _Layout, name: str = "func") -> None:
        super().__init__()
        self.func = func
        self.layout = layout
        self.name = name

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        rows = y.shape[0]
        ts = t.reshape(-1).expand(rows) if t.numel() == 1 else t.reshape(rows)
        out = [self._one(ts[r], y[r]) for r in range(rows)]
        return torch.stack(out)

    def _one(self, t: Tensor, row: Tensor) -> Tensor:
        value = self.func(t, self.layout.unflatten(row))
        try:
            flat = self.layout.flatten(value, self.name)
        except InvalidArgumentError as err:
            raise InvalidArgumentError(
                self.name, err.received, f"{self.name}(t, y) to return dy/dt like y: {err.expected}"
            ) from None
        if flat.dtype != row.dtype or flat.device != row.device:
            raise InvalidArgumentError(
                self.name, value, f"{self.name}(t, y) to return dy/dt in y's dtype and device ({row.dtype})"
            )
        return flat


class _Callbacks:
    """torchdiffeq callbacks defined on ``func``, called with the user's scalar time and state."""

    def __init__(self, func: Any, layout: _Layout, reverse: bool) -> None:
        self.func, self.layout, self.sign = func, layout, -1.0 if reverse else 1.0
        for name in CALLBACKS:
            fn = getattr(func, name, None)
            setattr(self, name, None if fn is None else self._wrap(fn))

    def _wrap(self, fn: Callable) -> Callable:
        def call(t: Tensor, y: Tensor, dt: Tensor) -> None:
            for r in range(t.shape[0]):
                fn(self.sign * t[r], self.layout.unflatten(y[r]), dt[r])

        return call

    @staticmethod
    def wanted(func: Any) -> bool:
        return any(getattr(func, n, None) is not None for n in CALLBACKS)


# --- options -----------------------------------------------------------------------------------------


@dataclass
class _Plan:
    spec: MethodSpec
    layout: _Layout
    kwargs: dict[str, Any] = field(default_factory=dict)  # solve options
    breaks: list[float] = field(default_factory=list)  # restart the solve at these times
    grid_constructor: Callable | None = None
    max_num_steps: int | None = None


def _tol(name: str, value: Any, layout: _Layout) -> float | Tensor:
    """A tolerance: a float, or per element of ``y0`` (a tensor broadcastable to it, or for tuple
    ``y0`` a tuple of those) flattened like the state."""
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.detach() if not value.requires_grad else value
    if isinstance(value, Tensor) and value.requires_grad:
        raise InvalidArgumentError(name, value, "a tolerance that does not require grad")
    if isinstance(value, Tensor) and value.numel() == 1:
        return float(value)
    if isinstance(value, bool):
        raise InvalidArgumentError(name, value, "a positive float or a tensor shaped like y0")
    if isinstance(value, (int, float)):
        return float(value)
    parts = value if isinstance(value, (tuple, list)) and layout.is_tuple else None
    if parts is None and isinstance(value, Tensor) and not layout.is_tuple:
        parts = [value]
    if parts is None or len(parts) != len(layout.shapes):
        raise InvalidArgumentError(name, value, "a float, or per-element tolerances shaped like y0")
    flat = []
    for v, shape in zip(parts, layout.shapes):
        try:
            v = torch.as_tensor(v, dtype=layout.dtype, device=layout.device).expand(shape)
        except RuntimeError:
            raise InvalidArgumentError(name, value, f"tolerances broadcastable to {tuple(shape)}") from None
        if layout.is_complex:  # one tolerance for the real and the imaginary part
            v = v.unsqueeze(-1).expand(*shape, 2)
        flat.append(v.reshape(-1))
    return torch.cat(flat)


def _controller(options: dict[str, Any], prefix: str) -> PIDController | None:
    keys = ("safety", "ifactor", "dfactor")
    if not any(k in options for k in keys):
        return PIDController(pcoeff=0.0, icoeff=1.0, dcoeff=0.0)  # torchdiffeq's integral control
    try:
        return PIDController(
            pcoeff=0.0,
            icoeff=1.0,
            dcoeff=0.0,
            safety=float(options.get("safety", 0.9)),
            factor_min=float(options.get("dfactor", 0.2)),
            factor_max=float(options.get("ifactor", 10.0)),
        )
    except InvalidArgumentError as err:
        raise InvalidArgumentError(
            f"{prefix}['safety'/'ifactor'/'dfactor']", err.received, err.expected
        ) from None


def _norm(norm: Any, layout: _Layout, name: str) -> Callable[[Tensor], Tensor] | None:
    """A user norm on the user's layout → a row norm ``(B, D) → (B,)``; tuples default to torchdiffeq's
    max over the tuple of per-tensor RMS norms."""
    if norm is None:
        if not layout.is_tuple:
            return None

        def mixed(e: Tensor) -> Tensor:
            parts = []
            start = 0
            for size in layout.sizes:
                parts.append(e[:, start : start + size].pow(2).mean(-1).sqrt())
                start += size
            return torch.stack(parts, -1).amax(-1)

        return mixed
    if isinstance(norm, str):
        raise InvalidArgumentError(
            name, norm, "a callable norm; 'seminorm' applies to adjoint_options only (the backward pass)"
        )
    if not callable(norm):
        raise InvalidArgumentError(name, norm, "a callable mapping a state-shaped tensor to a scalar")

    def rows(e: Tensor) -> Tensor:
        out = [torch.as_tensor(norm(layout.unflatten(e[r])), dtype=e.dtype) for r in range(e.shape[0])]
        return torch.stack([o.reshape(()) for o in out])

    return rows


def _plan(func: Any, y0: Any, t: Tensor, rtol, atol, method, options, reverse: bool) -> _Plan:
    layout = _Layout.of(y0)
    spec = resolve_method(method)
    options = dict(options or {})
    plan = _Plan(spec, layout)
    fixed = not spec.adaptive or spec.family == "splitting"
    allowed = FIXED_OPTIONS if fixed else ADAPTIVE_OPTIONS
    for key in options:
        if key not in allowed:
            other = "adaptive" if key in ADAPTIVE_OPTIONS else "fixed-step" if key in FIXED_OPTIONS else None
            hint = f" ({key!r} is an option of {other} methods)" if other else ""
            raise InvalidArgumentError(
                f"options[{key!r}]",
                options[key],
                f"an option of the {'fixed-step' if fixed else 'adaptive'} method {method or 'dopri5'!r}: "
                f"one of {', '.join(allowed)}{hint}",
            )
    kw = plan.kwargs
    if fixed:
        if options.get("step_size") is not None and options.get("grid_constructor") is not None:
            raise InvalidArgumentError(
                "options", "step_size and grid_constructor", "at most one of them (as in torchdiffeq)"
            )
        if options.get("step_size") is not None:
            kw["dt"] = _positive("options['step_size']", options["step_size"])
        if options.get("grid_constructor") is not None:
            if not callable(options["grid_constructor"]):
                raise InvalidArgumentError(
                    "options['grid_constructor']", options["grid_constructor"], "a callable (func, y0, t)"
                )
            plan.grid_constructor = options["grid_constructor"]
        if options.get("perturb"):
            kw["perturb"] = True
        interp = options.get("interp", "linear")
        if interp not in ("linear", "cubic"):
            raise InvalidArgumentError("options['interp']", interp, "'linear' or 'cubic'")
        # Outputs are exact step ends here (every output interval is split into whole steps), so
        # there is nothing to interpolate: both values give the same result.
    else:
        kw["rtol"] = _tol("rtol", rtol, layout)
        kw["atol"] = _tol("atol", atol, layout)
        if options.get("first_step") is not None:
            kw["dt0"] = _positive("options['first_step']", options["first_step"])
        kw["controller"] = _controller(options, "options")
        if options.get("max_num_steps") is not None:
            plan.max_num_steps = int(options["max_num_steps"])
            kw["max_steps"] = min(plan.max_num_steps, 2**62)
        if "dtype" in options and options["dtype"] != layout.dtype:
            raise InvalidArgumentError(
                "options['dtype']",
                options["dtype"],
                f"y0's dtype ({layout.dtype}): symflow keeps times in the state's precision",
            )
        norm = _norm(options.get("norm"), layout, "options['norm']")
        if norm is not None:
            kw["norm"] = norm
        for key in ("step_t", "jump_t", "grid_points"):
            if options.get(key) is not None:
                times = torch.as_tensor(options[key]).detach().reshape(-1).tolist()
                plan.breaks.extend(float(v) for v in times)
        if plan.breaks and spec.family in ("explicit", "embedded"):
            # Each segment ends and starts exactly on a break: evaluate f just inside it, so a jump
            # there is seen on the side each segment integrates over.
            kw["perturb"] = True
    if _Callbacks.wanted(func):
        kw["callbacks"] = _Callbacks(func, layout, reverse)
    return plan


def _positive(name: str, value: Any) -> float:
    v = float(value) if isinstance(value, (Tensor, int, float)) and not isinstance(value, bool) else None
    if v is None or not (v > 0 and math.isfinite(v)):
        raise InvalidArgumentError(name, value, "a positive finite number")
    return v


def _check_t(t: Any, layout: _Layout) -> Tensor:
    if not isinstance(t, Tensor):
        raise InvalidArgumentError("t", t, "a 1-d tensor of times")
    if not t.is_floating_point():
        raise InvalidArgumentError("t", t, "a floating-point tensor of times (as in torchdiffeq)")
    if t.dim() != 1 or t.shape[0] < 1:
        raise InvalidArgumentError("t", t, "a 1-d tensor of times")
    return t.to(layout.device) if t.device != layout.device else t


# --- the integration -------------------------------------------------------------------------------


def _segments(t: Tensor, breaks: list[float]) -> list[tuple[list[Tensor], list[int]]]:
    """Split the output grid at the restart times strictly inside it.

    Returns, per segment, its times (0-d tensors: output times keep their autograd link) and for each
    the output index it fills (-1 for a restart time that is not an output)."""
    values = t.detach().tolist()
    sign = 1.0 if len(values) < 2 or values[-1] >= values[0] else -1.0
    inside = sorted(
        {b for b in breaks if sign * (b - values[0]) > 0 and sign * (values[-1] - b) > 0},
        key=lambda b: sign * b,
    )
    segments: list[tuple[list[Tensor], list[int]]] = []
    times, index = [t[0]], [0]
    k = 1
    for b in [*inside, None]:
        while k < len(values) and (b is None or sign * (values[k] - b) < 0):
            times.append(t[k])
            index.append(k)
            k += 1
        if b is None:
            break
        if k < len(values) and values[k] == b:
            times.append(t[k])
            index.append(k)
            k += 1
        else:
            times.append(t.new_tensor(b).detach())
            index.append(-1)
        segments.append((times, index))
        times, index = [times[-1]], [index[-1]]
    segments.append((times, index))
    return [s for s in segments if len(s[0]) > 1] or [segments[0]]


def _run(func_m: _Field, plan: _Plan, y_flat: Tensor, t: Tensor, adjoint: dict | None) -> Tensor:
    """States at every time of ``t``: ``(T, D)``."""
    if plan.grid_constructor is not None:
        return _run_on_grid(func_m, plan, y_flat, t, adjoint)
    out: list[Tensor | None] = [None] * t.shape[0]
    out[0] = y_flat
    y = y_flat
    for times, index in _segments(t, plan.breaks):
        if len(times) < 2:
            continue
        ys = _call(func_m, plan, y.unsqueeze(0), torch.stack(times), adjoint)[0]
        for j, k in enumerate(index):
            if k >= 0 and j > 0:
                out[k] = ys[j]
        y = ys[-1]
    return torch.stack(out)


def _run_on_grid(func_m: _Field, plan: _Plan, y_flat: Tensor, t: Tensor, adjoint: dict | None) -> Tensor:
    """Fixed steps on a user grid, merged with the output times so every output is a step end."""
    grid = plan.grid_constructor(func_m.func, plan.layout.unflatten(y_flat), t)
    if not isinstance(grid, Tensor) or grid.dim() != 1 or grid.shape[0] < 2:
        raise InvalidArgumentError("options['grid_constructor']", grid, "a callable returning a 1-d grid")
    grid = grid.to(dtype=t.dtype, device=t.device).detach()
    if float(grid[0]) != float(t.detach()[0]) or float(grid[-1]) != float(t.detach()[-1]):
        raise InvalidArgumentError(
            "options['grid_constructor']",
            f"a grid from {float(grid[0])} to {float(grid[-1])}",
            f"a grid from t[0] = {float(t.detach()[0])} to t[-1] = {float(t.detach()[-1])}",
        )
    extra = grid[~torch.isin(grid, t.detach())]
    merged = torch.cat([t, extra])
    descending = t.shape[0] > 1 and float(t.detach()[-1]) < float(t.detach()[0])
    order = torch.argsort(merged.detach(), descending=descending, stable=True)
    times = merged[order]
    where = torch.empty_like(order)
    where[order] = torch.arange(order.shape[0], device=order.device)
    ys = _call(func_m, plan, y_flat.unsqueeze(0), times, adjoint)[0]
    return ys[where[: t.shape[0]]]


def _call(func_m: _Field, plan: _Plan, y: Tensor, ts: Tensor, adjoint: dict | None) -> Tensor:
    try:
        if adjoint is None:
            return solve(func_m, y, ts, plan.spec, **plan.kwargs).ys
        return adjoint_solve(
            func_m, y, ts, plan.spec, params=adjoint["params"], adjoint=adjoint["options"], **plan.kwargs
        ).ys
    except IntegrationError as err:
        status = err.solution.summary() if err.solution is not None else str(err)
        raise IntegrationError(f"odeint ({plan.spec.name}) failed: {status}", solution=err.solution) from None


def _prepare(func, y0, t, rtol, atol, method, options):
    if not callable(func):
        raise InvalidArgumentError("func", func, "a callable func(t, y)")
    layout = _Layout.of(y0)
    t = _check_t(t, layout)
    reverse = t.shape[0] > 1 and float(t.detach()[-1]) < float(t.detach()[0])
    plan = _plan(func, y0, t, rtol, atol, method, options, reverse)
    return layout, t, plan, _Field(func, layout)


def _output(layout: _Layout, ys: Tensor) -> Any:
    return layout.unflatten(ys, (ys.shape[0],))


def odeint(
    func: Callable,
    y0: Any,
    t: Tensor,
    *,
    rtol: float | Tensor = 1e-7,
    atol: float | Tensor = 1e-9,
    method: str | None = None,
    options: dict[str, Any] | None = None,
    event_fn: Callable | None = None,
) -> Any:
    """Solve ``dy/dt = func(t, y)``, ``y(t[0]) = y0`` with torchdiffeq's conventions (see the module doc).

    Returns ``(len(t), *y0.shape)`` (a tuple for tuple ``y0``); with ``event_fn``, ``(event_t, states at
    [t[0], event_t])`` as torchdiffeq does (``t`` must then hold two times, the second only giving the
    direction).
    """
    layout, t, plan, func_m = _prepare(func, y0, t, rtol, atol, method, options)
    y_flat = layout.flatten(y0)
    if event_fn is not None:
        t_event, y_event = _until_event(func_m, plan, y_flat, t, event_fn, None)
        return t_event.detach(), _output(layout, torch.stack([y_flat, y_event]))
    return _output(layout, _run(func_m, plan, y_flat, t, None))


def odeint_adjoint(
    func: Callable,
    y0: Any,
    t: Tensor,
    *,
    rtol: float | Tensor = 1e-7,
    atol: float | Tensor = 1e-9,
    method: str | None = None,
    options: dict[str, Any] | None = None,
    event_fn: Callable | None = None,
    adjoint_rtol: float | None = None,
    adjoint_atol: float | None = None,
    adjoint_method: str | None = None,
    adjoint_options: dict[str, Any] | None = None,
    adjoint_params: Sequence[Tensor] | None = None,
) -> Any:
    """:func:`odeint` differentiated by the continuous adjoint (O(1) memory in the number of steps).

    ``adjoint_params`` defaults to ``tuple(func.parameters())`` (``func`` must then be an
    ``nn.Module``); given explicitly, they may be any tensors ``func`` uses.
    """
    if adjoint_params is None and not isinstance(func, torch.nn.Module):
        raise InvalidArgumentError(
            "func",
            func,
            "an nn.Module (its parameters are the adjoint's), or pass adjoint_params=(...) explicitly "
            "(adjoint_params=() when nothing but y0 and t needs gradients)",
        )
    adjoint_callbacks = [n for n in CALLBACKS if getattr(func, n + "_adjoint", None) is not None]
    if adjoint_callbacks:
        raise CapabilityError(
            f"callbacks during the adjoint pass ({', '.join(n + '_adjoint' for n in adjoint_callbacks)}) are "
            "not supported by symflow's facade; the forward-pass callbacks are"
        )
    layout, t, plan, func_m = _prepare(func, y0, t, rtol, atol, method, options)
    params = tuple(func.parameters()) if adjoint_params is None else tuple(adjoint_params)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise InvalidArgumentError(f"adjoint_params[{i}]", p, "a tensor")
    adjoint = {
        "params": params,
        "options": _adjoint_options(plan, adjoint_rtol, adjoint_atol, adjoint_method, adjoint_options),
    }
    y_flat = layout.flatten(y0)
    if event_fn is not None:
        t_event, y_event = _until_event(func_m, plan, y_flat, t, event_fn, adjoint)
        return t_event.detach(), _output(layout, torch.stack([y_flat, y_event]))
    return _output(layout, _run(func_m, plan, y_flat, t, adjoint))


def _adjoint_options(plan: _Plan, rtol, atol, method, options) -> AdjointOptions:
    options = dict(options or {})
    for key in options:
        if key not in ADJOINT_OPTIONS:
            raise InvalidArgumentError(
                f"adjoint_options[{key!r}]",
                options[key],
                f"one of {', '.join(ADJOINT_OPTIONS)} (symflow's backward solve restarts at every "
                "forward output and jump time by itself)",
            )
    spec = resolve_method(method) if method is not None else plan.spec
    if spec.family == "splitting":
        raise CapabilityError(f"adjoint_method {method!r} is a splitting; use a Runge–Kutta method")
    norm = options.get("norm")
    if norm is not None and norm != "seminorm":
        raise CapabilityError(
            "adjoint_options['norm'] must be 'seminorm' (or absent: the full norm over the state, the "
            "adjoint and the parameter gradients); callable adjoint norms are not supported"
        )
    for name, value, forward in (("adjoint_rtol", rtol, "rtol"), ("adjoint_atol", atol, "atol")):
        if isinstance(value, Tensor) and value.numel() > 1:
            raise CapabilityError(f"{name}: per-element tolerances are not supported for the backward pass")
        if value is None and isinstance(plan.kwargs.get(forward), Tensor):
            raise CapabilityError(
                f"{forward} is per element; pass {name} as a float for the backward pass (per-element "
                "backward tolerances are not supported)"
            )
    dt = options.get("step_size")
    if dt is None and not spec.adaptive and method is not None:
        dt = plan.kwargs.get("dt")
    return AdjointOptions(
        method=spec.name if method is not None else None,
        rtol=None if rtol is None else float(rtol),
        atol=None if atol is None else float(atol),
        dt=None if dt is None else _positive("adjoint_options['step_size']", dt),
        seminorm=norm == "seminorm",
        max_steps=None if options.get("max_num_steps") is None else int(options["max_num_steps"]),
        controller=_controller(options, "adjoint_options"),
    )


# --- events ----------------------------------------------------------------------------------------


def _event_values(event_fn: Callable, layout: _Layout, t: Tensor, row: Tensor) -> Tensor:
    value = event_fn(t, layout.unflatten(row))
    if not isinstance(value, Tensor):
        raise InvalidArgumentError("event_fn", value, "a tensor (one or more event values)")
    return value.reshape(-1)


def _until_event(func_m: _Field, plan: _Plan, y_flat: Tensor, t: Tensor, event_fn, adjoint):
    """First zero crossing of any element of ``event_fn`` from ``t[0]`` in the direction of ``t[1]``.

    The search solves windows of doubling length (each starting from the last window's end) with the
    crossing located by symflow's event machinery; the state at the event is then recomputed by one
    differentiable solve from ``t[0]``.
    """
    if t.shape[0] != 2:
        raise InvalidArgumentError(
            "t", t, "two times in event mode: t[0] and a second one giving the direction"
        )
    if not callable(event_fn):
        raise InvalidArgumentError("event_fn", event_fn, "a callable event_fn(t, y)")
    layout = plan.layout
    if not plan.spec.adaptive and "dt" not in plan.kwargs:
        raise InvalidArgumentError(
            "options['step_size']",
            None,
            f"a step size: {plan.spec.name!r} is fixed-step and an event search "
            "has no output grid to step between",
        )
    t0 = t[0]
    sign = 1.0 if float(t.detach()[1]) > float(t0.detach()) else -1.0
    n_events = _event_values(event_fn, layout, t0.detach(), y_flat.detach()).shape[0]
    events = [
        Event(
            lambda tt, yy, k=k: torch.stack(
                [
                    _event_values(
                        event_fn, layout, tt.reshape(-1)[r] if tt.numel() > 1 else tt.reshape(()), yy[r]
                    )[k]
                    for r in range(yy.shape[0])
                ]
            )
        )
        for k in range(n_events)
    ]
    kwargs = dict(plan.kwargs)
    kwargs.pop("max_steps", None)
    budget = plan.max_num_steps or 100_000
    span, used = max(abs(float(t.detach()[1]) - float(t0.detach())), 1.0), 0
    start, y = float(t0.detach()), y_flat.detach().unsqueeze(0)
    with torch.no_grad():
        while True:
            window = torch.tensor([start, start + sign * span], dtype=y.dtype, device=y.device)
            sol = solve(func_m, y, window, plan.spec, events=events, throw=True, **kwargs)
            used += int(sol.stats["steps"].sum())
            if len(sol.events):
                first = int(torch.argmin(sign * sol.events.t))
                t_event = sol.events.t[first]
                which = int(sol.events.event[first])
                break
            if used > budget:
                raise IntegrationError(
                    f"odeint_event: no event within {used} steps (up to t = {start + sign * span:g}); raise "
                    "options['max_num_steps'] or check event_fn"
                )
            start, y = start + sign * span, sol.ys[:, -1]
            span *= 2.0
    # The state at the event, differentiable with respect to y0, t0 and the parameters.
    times = torch.stack([t0, t_event.to(t.dtype)])
    y_event = _call(func_m, plan, y_flat.unsqueeze(0), times, adjoint)[0, -1]
    # Implicit-function theorem: g(t_e, y(t_e)) = 0 ⇒ dt_e = −(∂g/∂y dy)/(∂g/∂t + ∂g/∂y f).
    t_det = t_event.detach().to(y_event.dtype)
    with torch.enable_grad():
        tt = t_det.clone().requires_grad_(True)
        yy = y_event.detach().clone().requires_grad_(True)
        g = _event_values(event_fn, layout, tt, yy)[which]
        g_t, g_y = torch.autograd.grad(g, (tt, yy), allow_unused=True, materialize_grads=True)
    with torch.no_grad():
        f_event = func_m(t_det.reshape(1), y_event.detach().unsqueeze(0))[0]
        rate = g_t + (g_y * f_event).sum()
    if float(rate) == 0.0:
        return t_det.to(t.dtype), y_event
    g_live = _event_values(event_fn, layout, t_det, y_event)[which]
    t_out = t_det - (g_live - g_live.detach()) / rate
    y_out = y_event + f_event * (t_out - t_det)
    return t_out.to(t.dtype), y_out


def odeint_event(
    func: Callable,
    y0: Any,
    t0: Tensor,
    *,
    event_fn: Callable,
    reverse_time: bool = False,
    odeint_interface: Callable = odeint,
    **kwargs: Any,
) -> tuple[Tensor, Any]:
    """Integrate from ``t0`` until an element of ``event_fn(t, y)`` crosses zero; returns ``(event_t,
    states at [t0, event_t])`` (time-first). Gradients reach ``event_t`` and the final state through the
    implicit function theorem (``event_fn``'s own parameters too). ``odeint_interface`` is this module's
    :func:`odeint` or :func:`odeint_adjoint`; ``kwargs`` go to it.
    """
    if odeint_interface not in (odeint, odeint_adjoint):
        raise InvalidArgumentError(
            "odeint_interface", odeint_interface, "symflow.integrators.odeint or odeint_adjoint"
        )
    if not isinstance(t0, Tensor):
        t0 = torch.as_tensor(t0, dtype=_Layout.of(y0).dtype)
    t0 = t0.reshape(-1)[:1]
    t = torch.cat([t0, t0.detach() + (-1.0 if reverse_time else 1.0)])
    layout, t, plan, func_m = _prepare(
        func,
        y0,
        t,
        kwargs.pop("rtol", 1e-7),
        kwargs.pop("atol", 1e-9),
        kwargs.pop("method", None),
        kwargs.pop("options", None),
    )
    adjoint = None
    if odeint_interface is odeint_adjoint:
        params = kwargs.pop("adjoint_params", None)
        if params is None:
            if not isinstance(func, torch.nn.Module):
                raise InvalidArgumentError("func", func, "an nn.Module, or pass adjoint_params=(...)")
            params = tuple(func.parameters())
        adjoint = {
            "params": tuple(params),
            "options": _adjoint_options(
                plan,
                kwargs.pop("adjoint_rtol", None),
                kwargs.pop("adjoint_atol", None),
                kwargs.pop("adjoint_method", None),
                kwargs.pop("adjoint_options", None),
            ),
        }
    if kwargs:
        raise InvalidArgumentError(
            "odeint_event", f"unexpected arguments {sorted(kwargs)}", "the arguments of odeint_interface"
        )
    y_flat = layout.flatten(y0)
    t_event, y_event = _until_event(func_m, plan, y_flat, t, event_fn, adjoint)
    return t_event, _output(layout, torch.stack([y_flat, y_event]))
