"""``solve``: the one entry point for every method.

    sol = solve(f, y0, ts, method="dopri5", rtol=1e-8, atol=1e-10)
    sol.ys            # (*batch, T, D), batch first
    sol.status        # (*batch,) per-sample Status codes
    sol.stats         # per-sample steps, accepted, rejected, nfev, newton_iters

``ts`` is a shared grid ``(T,)`` or per-sample grids ``(*batch, T)`` (irregular observation times:
each sample steps to its own times; no union of grids). A decreasing grid integrates backwards.
Options that do not apply to the chosen method are errors, not silently ignored.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable
from typing import Any

import torch

from .adaptive import AdaptiveOptions, integrate_adaptive
from .callbacks import StepCallbacks
from .controller import PIDController
from .dense import DenseRecorder
from .errors import CapabilityError, InvalidArgumentError, UnknownNameError
from .events import Event, as_events
from .explicit import ExplicitRK, ExplicitStepper
from .fixed import FixedOptions, _functorch_active, integrate_fixed, refuse_long_fixed_solves
from .implicit import ImplicitRK
from .inputs import positive_float, positive_int, prepare_problem, tolerance
from .methods import MethodSpec, get_method, list_methods, methods_for
from .norms import batch_rms_norm, resolve_norm, rms_norm
from .registry import Registry
from .solution import EventRecord, Solution
from .splitting import SplittingStepper

Tensor = torch.Tensor

ADAPTIVE_MAX_STEPS = 100_000  # attempted steps per sample
FIXED_MAX_STEPS = 10_000_000  # steps per sample, checked before the loop


def _compiled_threads(compile: Any, problem: Any):
    """The thread count of compiled kernels (:func:`.compiled.kernel_threads`); nothing when eager."""
    if not compile:
        return contextlib.nullcontext()
    from .compiled import kernel_threads

    return kernel_threads(problem.y0.numel(), problem.y0.device)


def solve(
    f: Any,
    y0: Tensor,
    ts: Any,
    method: str | MethodSpec = "dopri5",
    *,
    dt: float | None = None,
    rtol: float | Tensor = 1e-6,
    atol: float | Tensor = 1e-9,
    adaptive: bool | None = None,
    dt0: float | None = None,
    dt_min: float = 0.0,
    dt_max: float = math.inf,
    max_steps: int | None = None,
    controller: PIDController | None = None,
    hit_obs: bool = False,
    events: Any = None,
    polish_events: bool = True,
    compensated: bool | None = None,
    newton_tol: float | None = None,
    newton_max_iter: int = 12,
    throw: bool = True,
    compile: bool | str = False,
    adjoint: Any = False,
    dense_output: bool = False,
    norm: str | Callable[[Tensor], Tensor] | None = None,
    perturb: bool = False,
    callbacks: Any = None,
    **unknown: Any,
) -> Solution:
    """Integrate ``dy/dt = f(t, y)`` from ``y0`` over the times ``ts``.

    Args:
        f: vector field ``f(t, y)``; ``y`` is ``(B, D)``, ``t`` a 0-d tensor or ``(B,)``. Splitting
            methods need a separable field (a :class:`SplitField`, or an object with ``.split``).
        y0: initial states ``(*batch, D)``; dtype and device of everything follow it.
        ts: output times ``(T,)`` shared, or ``(*batch, T)`` per sample; ``ts[..., 0]`` is the
            initial time. Strictly increasing (or strictly decreasing to integrate backwards).
        method: registry name (see :func:`~symflow.integrators.list_methods`).
        dt: step size for fixed-step methods (each output interval is split into ``⌈Δt/dt⌉`` equal
            steps; ``None``: one step per interval). With an embedded method it makes the solve
            fixed-step unless ``adaptive=True``, in which case it is the initial step.
        rtol, atol: tolerances of adaptive methods (floats, or per-component tensors ``(D,)``).
        adaptive: force adaptive (``True``) or fixed-step (``False``) use of an embedded pair.
        dt0, dt_min, dt_max, controller: step-size control of adaptive methods.
        max_steps: most steps per sample. Adaptive solves count attempted steps (default 10⁵; a
            sample that runs out gets ``Status.MAX_STEPS``); fixed-step solves know their step
            count before the loop and refuse one above ``max_steps`` (default 10⁷) at once.
        hit_obs: adaptive only; shorten steps to land on every output time instead of using the
            dense output.
        events: an :class:`Event`, a callable ``g(t, y) -> (B,)``, or a list of them; crossings are
            returned in ``Solution.events``.
        polish_events: refine event locations on real partial steps (see :mod:`.events`).
        compensated: Kahan-compensated summation of the state updates ``y + δ``. Fixed-step solves:
            default on for symplectic methods, whose long runs are limited by round-off. Adaptive
            solves: default off; turn it on at tolerances near round-off (rtol ≲ 1e-12), where the
            rounding of ``y + δ`` over many steps, not the method, limits the accuracy.
        newton_tol, newton_max_iter: implicit methods' Newton iteration.
        throw: raise :class:`IntegrationError` after the loop if any sample failed (skipped inside
            ``torch.func`` transforms, where the check cannot run; inspect ``status`` there).
        compile: run the hot loop through ``torch.compile`` (see :mod:`.compiled`): one fused kernel
            per adaptive attempt, or per chunk of fixed steps. Worth it for long solves; the first
            call compiles (seconds to a minute; a second process reuses Inductor's on-disk cache).
            Not available for implicit methods. On a busy CPU, small problems (fewer than
            ``compiled.SMALL_PROBLEM`` state elements) run their compiled kernels on one thread
            (:func:`.compiled.kernel_threads`).
            ``compile="reduce-overhead"`` (adaptive forward solves): the attempt is also recorded as a
            CUDA graph and replayed, one launch per attempt (see :func:`.compiled.compiled_advance_graphs`).
        norm: adaptive only; the error norm of a step, applied to the scaled error
            ``err / (atol + rtol max(|y|, |ŷ|))`` (a step is accepted when it is ≤ 1): ``"sample"``
            (default: RMS over the components of each sample; every sample steps on its own),
            ``"batch"`` (one RMS over the whole batch: the samples share their steps, as in
            torchdiffeq; needs a shared grid; see :mod:`.norms`), or a callable ``(B, D) -> (B,)``.
            With ``adjoint``, the backward solve uses the same kind of norm unless
            ``AdjointOptions(norm=...)`` says otherwise.
        perturb: explicit RK methods; evaluate ``f`` one floating-point number inside the step at its
            ends (``t⁺`` at the start, ``(t + h)⁻`` at the end), so a field with a jump exactly at a
            step boundary sees the side being integrated.
        callbacks: an object defining any of ``callback_step``, ``callback_accept_step``,
            ``callback_reject_step`` (see :mod:`.callbacks`); called around every step.
        adjoint: ``True`` or an :class:`~.adjoint.AdjointOptions` to differentiate the solve with the
            continuous adjoint (O(1) memory in the number of steps; ``f`` should be an ``nn.Module``
            so its parameters get gradients). ``False`` (default): autograd differentiates through
            the solver's operations (discrete backprop).
        dense_output: keep what each step's interpolant needs, so that :meth:`Solution.evaluate`
            gives the solution at any time of the solved interval (see :mod:`.dense`): the method's
            continuous extension where it has one (dopri5, tsit5, bosh3), cubic Hermite otherwise.

    Returns:
        :class:`Solution` with ``ys`` of shape ``(*batch, T, D)``.
    """
    if unknown:
        name = next(iter(unknown))
        reg: Registry[None] = Registry("solve option")
        for opt in _OPTIONS:
            reg.register(opt, None)
        reg.get(name)  # raises with a did-you-mean
        raise UnknownNameError("solve option", name, list(_OPTIONS), [])  # pragma: no cover
    if dense_output not in (True, False):
        raise InvalidArgumentError("dense_output", dense_output, "True or False")
    if not (compile is True or compile is False or compile == "reduce-overhead"):
        raise InvalidArgumentError("compile", compile, "True, False or 'reduce-overhead'")
    graphs = compile == "reduce-overhead"
    if graphs and adjoint is not False and adjoint is not None:
        raise CapabilityError(
            "compile='reduce-overhead' applies to forward adaptive solves; use compile=True"
        )
    if adjoint is not False and adjoint is not None:
        if dense_output:
            raise CapabilityError(
                "dense_output=True keeps the forward solve's steps, which the adjoint does not; solve with "
                "adjoint=False (gradients then flow through evaluate() by ordinary autograd)"
            )
        from .adjoint import AdjointOptions, adjoint_solve

        given = {
            k: v
            for k, v in dict(
                dt=dt,
                rtol=rtol,
                atol=atol,
                adaptive=adaptive,
                dt0=dt0,
                dt_min=dt_min,
                dt_max=dt_max,
                max_steps=max_steps,
                controller=controller,
                hit_obs=hit_obs,
                compensated=compensated,
                newton_tol=newton_tol,
                newton_max_iter=newton_max_iter,
                throw=throw,
                compile=compile,
                norm=norm,
                perturb=perturb or None,
                callbacks=callbacks,
            ).items()
            if v is not None
        }
        if events is not None:
            raise CapabilityError("events are not differentiated by the adjoint; solve with adjoint=False")
        opts = AdjointOptions() if adjoint is True else adjoint
        return adjoint_solve(f, y0, ts, method, adjoint=opts, **given)
    spec = get_method(method)
    problem = prepare_problem(f, y0, ts)
    y = problem.y0
    use_adaptive = spec.adaptive if adaptive is None else adaptive
    if use_adaptive and not spec.adaptive:
        raise CapabilityError(
            f"method {spec.name!r} has no error estimate and cannot step adaptively; adaptive methods: "
            + ", ".join(list_methods("embedded"))
        )
    if dt is not None:
        dt = positive_float("dt", dt)
    if spec.adaptive and adaptive is None and dt is not None:
        use_adaptive = False  # an embedded pair with a fixed dt runs fixed-step
    if graphs and not use_adaptive:
        raise CapabilityError(
            f"compile='reduce-overhead' applies to adaptive solves (not {spec.name!r} with a fixed step); "
            "use compile=True"
        )
    norm = resolve_norm("norm", norm)
    _reject_inapplicable(
        spec,
        use_adaptive,
        dict(
            rtol=rtol != 1e-6 if not isinstance(rtol, Tensor) else True,
            atol=atol != 1e-9 if not isinstance(atol, Tensor) else True,
            dt0=dt0 is not None,
            dt_min=dt_min != 0.0,
            dt_max=dt_max != math.inf,
            controller=controller is not None,
            hit_obs=hit_obs,
            newton_tol=newton_tol is not None,
            newton_max_iter=newton_max_iter != 12,
            norm=norm is not None and norm is not rms_norm,  # naming "sample", the default, is fine anywhere
        ),
    )
    if norm is batch_rms_norm and problem.shared is None:
        raise CapabilityError(
            "norm='batch' gives the whole batch one step size and needs a grid shared by the batch; "
            "with per-sample grids use norm='sample'"
        )
    if perturb and spec.family not in ("explicit", "embedded"):
        raise InvalidArgumentError(
            "perturb", perturb, f"an option of explicit RK methods (not {spec.name!r})"
        )
    cbs = StepCallbacks.of(callbacks)
    if cbs is not None and compile:
        raise CapabilityError("callbacks run Python code around every step and cannot be compiled; drop one")
    evs = as_events(events)
    if problem.reverse and evs:
        evs = tuple(Event(lambda s, yy, fn=e.fn: fn(-s, yy), e.direction, e.name) for e in evs)
    if spec.needs_separable and problem.split is None:
        raise CapabilityError(
            f"method {spec.name!r} is an explicit splitting and needs a separable Hamiltonian field "
            "H = T(p) + V(q): a SplitField, e.g. symflow.systems.vector_field of a separable system "
            "(a custom H: symflow.systems.from_hamiltonian(H, dof, kinetic=T, potential=V), or let it "
            "detect the split); methods that apply to this field: "
            f"{', '.join(methods_for(separable=False))}"
        )

    recorder = None
    if dense_output:
        if _functorch_active():
            raise CapabilityError("dense_output=True is not available inside torch.func transforms")
        recorder = _dense_recorder(spec, use_adaptive, problem)
    if use_adaptive:
        if _functorch_active():
            raise CapabilityError(
                "adaptive solves branch on values (accept/reject, termination) and cannot run inside "
                "torch.func transforms (vmap, grad, jacrev, jvp); use a fixed-step method with dt=..., "
                "or differentiate an adaptive solve with ordinary autograd / the adjoint"
            )
        opts = AdaptiveOptions(
            rtol=tolerance("rtol", rtol, y),
            atol=tolerance("atol", atol, y),
            dt0=None if dt0 is None else positive_float("dt0", dt0),
            dt_min=positive_float("dt_min", dt_min, allow_zero=True),
            dt_max=positive_float("dt_max", dt_max, allow_inf=True),
            max_steps=positive_int("max_steps", ADAPTIVE_MAX_STEPS if max_steps is None else max_steps),
            controller=controller if controller is not None else PIDController(),
            hit_obs=bool(hit_obs),
            events=evs,
            polish_events=bool(polish_events),
            dense=recorder,
            norm=norm,
            callbacks=cbs,
            compensated=bool(compensated),
        )
        if not isinstance(opts.controller, PIDController):
            raise InvalidArgumentError("controller", controller, "a PIDController")
        with _compiled_threads(compile, problem):
            ys, status, stats, record = integrate_adaptive(
                problem,
                ExplicitRK(spec.tableau, perturb=bool(perturb)),
                opts,
                compile="reduce-overhead" if graphs else bool(compile),
            )
    else:
        if spec.family in ("explicit", "embedded"):
            stepper = ExplicitStepper(spec.tableau, problem.f, perturb=bool(perturb))
        elif spec.family == "implicit":
            stepper = ImplicitRK(
                spec.tableau,
                problem.f,
                tol=None if newton_tol is None else positive_float("newton_tol", newton_tol),
                max_iter=positive_int("newton_max_iter", newton_max_iter),
            )
        else:
            stepper = SplittingStepper(spec.scheme, problem.split)
        if compile and spec.family == "implicit":
            raise CapabilityError(
                f"compile=True is not available for implicit methods ({spec.name!r}): their Newton loop "
                "branches on convergence; use it with explicit or splitting methods"
            )
        refuse_long_fixed_solves(
            problem.ts, dt, FIXED_MAX_STEPS if max_steps is None else positive_int("max_steps", max_steps)
        )
        fopts = FixedOptions(
            dt=dt,
            compensated=spec.symplectic if compensated is None else bool(compensated),
            events=evs,
            polish_events=bool(polish_events),
            compile=bool(compile),
            dense=recorder,
            callbacks=cbs,
        )
        with _compiled_threads(compile, problem):
            ys, status, stats, record = integrate_fixed(problem, stepper, fopts)

    if record is not None and problem.reverse:
        record = EventRecord(-record.t, record.y, record.sample, record.event)
    batch = problem.batch_shape
    sol = Solution(
        ts=ts if isinstance(ts, Tensor) else (-problem.ts if problem.reverse else problem.ts)[0],
        ys=ys.reshape(*batch, ys.shape[1], ys.shape[2]),
        status=status.reshape(batch),
        stats={k: v.reshape(batch) for k, v in stats.items()},
        method=spec.name,
        events=record,
        interpolation=None
        if recorder is None
        else recorder.finish(reverse=problem.reverse, batch_shape=batch),
    )
    if throw and not _functorch_active():
        sol.raise_for_status()
    return sol


#: Every keyword ``solve`` accepts, for the unknown-option message (read from the signature, so that it
#: cannot fall behind it).
_OPTIONS = (
    "method",
    *(p.name for p in inspect.signature(solve).parameters.values() if p.kind == p.KEYWORD_ONLY),
)


def _dense_recorder(spec: MethodSpec, adaptive: bool, problem: Any) -> DenseRecorder:
    """The method's continuous extension where its tableau has one, cubic Hermite otherwise."""
    has_extension = spec.tableau is not None and spec.tableau.explicit and spec.tableau.dense is not None
    rk = ExplicitRK(spec.tableau) if has_extension else None
    return DenseRecorder(rk, problem.f, problem.y0, problem.ts)


def _reject_inapplicable(spec: MethodSpec, adaptive: bool, given: dict[str, bool]) -> None:
    """Options that would be silently ignored by this method are errors."""
    adaptive_only = ("rtol", "atol", "dt0", "dt_min", "dt_max", "controller", "hit_obs", "norm")
    implicit_only = ("newton_tol", "newton_max_iter")
    for name, was_given in given.items():
        if not was_given:
            continue
        if name in adaptive_only and not adaptive:
            raise InvalidArgumentError(
                name,
                "given",
                f"an option of adaptive solves only; method {spec.name!r} runs fixed-step here (use dt)",
            )
        if name in implicit_only and spec.family != "implicit":
            raise InvalidArgumentError(
                name, "given", f"an option of implicit methods only (not {spec.name!r})"
            )
