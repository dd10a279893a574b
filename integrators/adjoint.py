"""The continuous adjoint method: gradients of a solve in O(1) memory in the number of steps.

For ``dy/dt = f(t, y; θ)`` and a loss ``L`` of the outputs ``y(t_k)``, the adjoint
``a(t) = ∂L/∂y(t)`` satisfies, backwards in time between observations,

    da/dt = −aᵀ ∂f/∂y,      dg/dt = −aᵀ ∂f/∂θ,      g(t_end) = 0,

and jumps by ``∂L/∂y(t_k)`` at every observation time. Then ``∂L/∂θ = g(t_0)``, ``∂L/∂y0 = a(t_0)``,
``∂L/∂t_k = (∂L/∂y(t_k))ᵀ f(t_k, y_k)`` for ``k ≥ 1`` and ``∂L/∂t_0 = −a(t_0)ᵀ f(t_0, y_0)``
(Pontryagin et al. 1962; Chen, Rubanova, Bettencourt & Duvenaud, *Neural ODEs*, NeurIPS 2018, §2
and App. B; the seeds ``001_*``/``003_*`` derive it).

Implementation (:class:`_AdjointSolve`, a ``torch.autograd.Function`` with a separate
``setup_context``):

* **Forward**: an ordinary :func:`solve` under ``no_grad``; only the outputs ``(B, T, D)`` are kept.
* **Backward**: every sample integrates ``(y, a)`` in reversed time ``s = −t`` over its *own*
  intervals (per-sample irregular grids), restarting ``y`` from the stored forward value at each of
  its observation times (so reverse-time error in ``y`` does not accumulate) and adding
  ``∂L/∂y(t_k)`` to ``a``. Adaptive pairs control the step of each sample separately; fixed-step
  methods split each interval into ``⌈Δt/dt⌉`` steps.
* The stage vector–Jacobian products ``aᵀ∂f/∂y`` come from ``torch.func.vjp`` with respect to ``y``
  only. The parameter gradient is **one joint accumulator** shaped like the parameters (not one per
  sample): the increment of an iteration, ``Σ_b h_b Σᵢ bᵢ A_{b,i}ᵀ ∂f/∂θ(Y_{b,i})``, is one
  ``torch.func.vjp`` with respect to θ over all samples' stage points, weighted per sample and masked
  by acceptance, so rejected attempts never pollute it (the design the torchode paper recommends:
  per-sample state and adjoint, parameters accumulated jointly; Lienen & Günnemann, *torchode*,
  2022, §3).
* **Norm**: by default a sample's step is accepted when the RMS error of its ``(y, a)`` *and* the
  batch-level RMS error of the joint parameter accumulator (its error estimate is a second
  cotangent pulled through the same forward pass) are both ≤ 1 — the maximum of the norms of the
  parts, as torchdiffeq's default adjoint norm takes it. ``seminorm=True`` leaves the accumulator
  out, which cuts backward steps (Kidger, Chen & Lyons, *"Hey, that's not an ODE"*, ICML 2021).

No host sync happens per iteration: every branch is a masked update, failures are recorded per
sample and raised once after the loop, and "any sample still active?" is read once per
``AdjointOptions.sync_every`` iterations (every iteration on the CPU, where reads are free; every
``SYNC_EVERY_ACCELERATOR`` = 8 on an accelerator). Fixed-step backward solves know their number of
iterations up front and read once before and once after the loop.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.func import functional_call, vjp

from .controller import PIDController
from .errors import CapabilityError, InvalidArgumentError
from .explicit import ExplicitRK, _terms, combine
from .fixed import refuse_long_fixed_solves
from .implicit import ImplicitRK
from .inputs import Problem, positive_float, positive_int
from .methods import MethodSpec, get_method
from .norms import batch_rms_norm, is_batch_norm, rms_norm
from .tableau import ButcherTableau

Tensor = torch.Tensor


@dataclass(frozen=True)
class AdjointOptions:
    """How the backward (adjoint) solve runs; ``None`` fields inherit the forward solve's values.

    Attributes:
        method: a Runge–Kutta method for the backward solve: explicit, embedded, or implicit
            (Gauss–Legendre; fixed steps, so it needs ``dt``). Splittings do not apply: the augmented
            ``(y, a)`` system is not separable.
        rtol, atol: backward tolerances (adaptive). Setting either makes an embedded backward method
            step adaptively even after a fixed-step forward solve.
        dt: backward step (fixed-step methods, or to force fixed steps). A fixed-step forward solve
            (any method given ``dt``, or an embedded pair with ``adaptive=False``) hands on its steps:
            unless backward tolerances are set, the backward steps with the same ``dt`` (or one step
            per output interval).
        seminorm: leave the parameter accumulator out of the backward error norm.
        max_steps: adaptive backward solves: cap on attempted steps per sample (default 10⁵);
            fixed-step ones: most steps per sample, refused before the loop (default 10⁷).
        controller: step-size controller of the backward solve.
        sync_every: adaptive backward solves read "is any sample still active?" (a host sync on an
            accelerator) once per this many iterations; ``None``: after every iteration on the CPU,
            where a read is free, and every ``SYNC_EVERY_ACCELERATOR`` (8) iterations elsewhere. At
            most ``sync_every − 1`` fully masked iterations run after the last sample finished.
        norm: error norm of an adaptive backward solve over the augmented ``(y, a)`` state:
            ``"sample"`` (each sample steps on its own) or ``"batch"`` (one RMS over the batch, shared
            steps; see :mod:`.norms`); ``None``: ``"batch"`` when the forward solve's ``norm`` is, else
            ``"sample"``.
        compile: run each backward step as one ``torch.compile``'d function (stages, their
            vector–Jacobian products and the parameter increment; explicit fixed-step methods on a
            grid shared by the batch); ``None``: as the forward solve's ``compile``. A field that
            cannot be traced runs eagerly after a one-line warning.
    """

    method: str | None = None
    rtol: float | None = None
    atol: float | None = None
    dt: float | None = None
    seminorm: bool = False
    max_steps: int | None = None
    controller: PIDController = field(default_factory=PIDController)
    sync_every: int | None = None
    compile: bool | None = None
    norm: str | None = None


@dataclass
class _Config:
    f: Any
    names: tuple[str, ...]  # parameter names (nn.Module) in the order of the tensors passed
    module: torch.nn.Module | None
    forward_kwargs: dict[str, Any]
    spec: MethodSpec
    rtol: float
    atol: float
    dt: float | None
    adaptive: bool
    seminorm: bool
    max_steps: int
    controller: PIDController
    batch_shape: tuple[int, ...]
    reverse: bool
    sync_every: int | None = None
    external: tuple[Tensor, ...] | None = None  # parameters the field closes over (not its own)
    compile: bool = False  # compile the backward step where it is supported (see _fused_adjoint_step)
    batch_norm: bool = False  # the adaptive backward solve's error norm is batch-wide (shared steps)
    forward_status: Tensor | None = None
    forward_stats: dict[str, Tensor] | None = None
    backward_stats: dict[str, Any] | None = None


class _AdjointSolve(torch.autograd.Function):
    @staticmethod
    def forward(cfg: _Config, y0: Tensor, ts: Tensor, *params: Tensor) -> Tensor:  # type: ignore[override]
        from .solve import solve

        with torch.no_grad():
            sol = solve(cfg.f, y0, ts, cfg.spec, throw=False, **cfg.forward_kwargs)
        cfg.forward_status, cfg.forward_stats = sol.status, sol.stats
        return sol.ys

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        cfg, _y0, ts, *params = inputs
        ctx.cfg = cfg
        ctx.save_for_backward(ts, output, *params)

    @staticmethod
    def backward(ctx: Any, grad_ys: Tensor) -> tuple:  # type: ignore[override]
        cfg: _Config = ctx.cfg
        ts, ys, *params = ctx.saved_tensors
        # The common case: the module still holds the very tensors it was solved with (not swapped in by
        # a functional_call around the solve). Then the backward calls it directly and differentiates
        # its live parameters, without functional_call's per-call parameter swapping.
        live = dict(cfg.module.named_parameters()) if cfg.module is not None else {}
        direct = bool(params) and all(live.get(n) is p for n, p in zip(cfg.names, params))
        with torch.enable_grad():
            needs = ctx.needs_input_grad
            # The times enter the backward solve as values: ∂L/∂t is assembled explicitly. Detached, so
            # that times which require grad do not make every backward step record a graph (memory
            # growing with the steps, and each stage's autograd pass walking the whole history).
            g_y0, g_ts, g_params = _backward(
                cfg,
                ts.detach(),
                ys.detach(),
                grad_ys,
                [p.detach() for p in params],
                live=params if direct else None,
                times=needs[2],
            )
        return (None, g_y0 if needs[1] else None, g_ts if needs[2] else None, *g_params)


def _backward_norm_is_batch(option: Any, forward_norm: Any) -> bool:
    """Whether the adaptive backward solve uses the batch-wide error norm (``AdjointOptions.norm``)."""
    if option is None:
        return is_batch_norm(forward_norm)
    if not isinstance(option, str):
        raise InvalidArgumentError("adjoint.norm", option, "'sample' or 'batch'")
    return is_batch_norm(option)  # an unknown name: an error with a did-you-mean


def adjoint_solve(
    f: Any,
    y0: Tensor,
    ts: Any,
    method: str | MethodSpec = "dopri5",
    *,
    params: Sequence[Tensor] | None = None,
    adjoint: AdjointOptions | None = None,
    **forward: Any,
):
    """:func:`solve` whose backward pass is the continuous adjoint (see the module docstring).

    ``f`` is an ``nn.Module`` (its parameters that require grad are differentiated) or a plain
    callable (then only ``y0`` and ``ts`` get gradients). ``params`` selects the tensors to
    differentiate instead: a subset of the module's parameters, or any tensors the field closes over
    (a plain callable's weights, a module's buffers made trainable, ...); those that do not require
    grad are left out.
    ``forward`` holds the usual solve options (``rtol``, ``atol``, ``dt``, ...). Returns a
    :class:`Solution` whose ``ys`` is differentiable with respect to ``y0``, ``ts`` and the
    parameters.
    """
    from .inputs import prepare_problem
    from .solution import Solution

    opts = adjoint or AdjointOptions()
    if not isinstance(opts, AdjointOptions):
        raise InvalidArgumentError("adjoint", opts, "an AdjointOptions or True")
    spec = get_method(method)
    module = f if isinstance(f, torch.nn.Module) else None
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad] if module is not None else []
    external = None
    if params is not None:
        params = tuple(params) if not isinstance(params, Tensor) else (params,)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor) or not p.is_floating_point():
                raise InvalidArgumentError(f"params[{i}]", p, "a floating-point tensor the field uses")
        params = tuple(p for p in params if p.requires_grad)
        own = {id(p): n for n, p in named}
        if all(id(p) in own for p in params):
            named = [(own[id(p)], p) for p in params]
        else:
            # Tensors the field closes over: their vector-Jacobian products come from autograd on the
            # live tensors instead of torch.func.functional_call.
            named, external = [(f"params[{i}]", p) for i, p in enumerate(params)], params
    problem: Problem = prepare_problem(f, y0, ts)  # validates inputs before any work
    bspec = get_method(opts.method) if opts.method is not None else spec
    if bspec.family == "splitting":
        raise CapabilityError(
            f"the adjoint's backward solve needs a Runge–Kutta method (explicit, embedded or implicit), "
            f"not the splitting {bspec.name!r}: the augmented (y, a) system is not separable; pass "
            "AdjointOptions(method='dopri5') or differentiate through the solver (adjoint=False)"
        )
    fwd_dt = forward.get("dt")
    bdt = opts.dt if opts.dt is not None else fwd_dt
    # Whether the forward solve stepped adaptively, by solve()'s own rule: an embedded pair does unless
    # it was given a dt (without adaptive=True, which makes dt its first step) or adaptive=False.
    fwd_adaptive_flag = forward.get("adaptive")
    forward_adaptive = spec.adaptive and (
        fwd_adaptive_flag is True or (fwd_adaptive_flag is None and fwd_dt is None)
    )
    # A fixed-step forward solve hands its steps on, as every unset option is inherited: the backward
    # steps with the same dt (or one step per output interval) unless backward tolerances ask for an
    # adaptive solve, or an embedded backward method is named with no dt to inherit. (Before, an
    # embedded pair's fixed-step forward solve went back adaptively at the default rtol 1e-6 /
    # atol 1e-9: with heun_euler, tens of thousands of backward steps for a forty-step forward solve.)
    inherit_fixed = (
        not forward_adaptive
        and opts.rtol is None
        and opts.atol is None
        and (fwd_dt is not None or opts.method is None)
    )
    adaptive = bspec.adaptive and opts.dt is None and not inherit_fixed
    if not adaptive and bdt is None and forward_adaptive:
        raise InvalidArgumentError(
            "adjoint.dt", None, f"a backward step size for the fixed-step method {bspec.name!r}"
        )
    cfg = _Config(
        f=f,
        names=tuple(n for n, _ in named),
        module=module if external is None else None,
        forward_kwargs={k: v for k, v in forward.items() if k != "throw"},
        spec=spec,
        rtol=positive_float(
            "adjoint.rtol", opts.rtol if opts.rtol is not None else forward.get("rtol", 1e-6)
        ),
        atol=positive_float(
            "adjoint.atol", opts.atol if opts.atol is not None else forward.get("atol", 1e-9)
        ),
        dt=None if bdt is None else positive_float("adjoint.dt", bdt),
        adaptive=adaptive,
        seminorm=bool(opts.seminorm),
        max_steps=positive_int(
            "adjoint.max_steps",
            opts.max_steps if opts.max_steps is not None else (100_000 if adaptive else 10_000_000),
        ),
        controller=opts.controller,
        batch_shape=problem.batch_shape,
        reverse=problem.reverse,
        sync_every=None if opts.sync_every is None else positive_int("adjoint.sync_every", opts.sync_every),
        external=external,
        compile=bool(forward.get("compile", False)) if opts.compile is None else bool(opts.compile),
        batch_norm=_backward_norm_is_batch(opts.norm, forward.get("norm")),
    )
    cfg.spec_backward = bspec  # type: ignore[attr-defined]
    if cfg.batch_norm and problem.shared is None:
        raise CapabilityError(
            "a batch-wide backward norm gives the whole batch one step size and needs a grid shared by "
            "the batch; with per-sample grids use AdjointOptions(norm='sample')"
        )
    if not adaptive:
        refuse_long_fixed_solves(problem.ts, cfg.dt, cfg.max_steps)
    ts_t = ts if isinstance(ts, Tensor) else torch.as_tensor(ts, dtype=y0.dtype, device=y0.device)
    ys = _AdjointSolve.apply(cfg, y0, ts_t, *[p for _, p in named])
    sol = Solution(
        ts=ts_t, ys=ys, status=cfg.forward_status, stats=cfg.forward_stats, method=spec.name, adjoint=cfg
    )
    if forward.get("throw", True):
        sol.raise_for_status()
    return sol


# --- the backward solve ------------------------------------------------------------------------------


def _field_fn(cfg: _Config, params: list[Tensor]):
    """``(t, y) -> f`` with the parameters as explicit inputs (for vjp with respect to θ)."""
    if cfg.module is None:
        return lambda p, t, y: cfg.f(t, y)
    names = cfg.names

    def fn(p: Sequence[Tensor], t: Tensor, y: Tensor) -> Tensor:
        return functional_call(cfg.module, dict(zip(names, p)), (t, y))

    return fn


def _fused_adjoint_step(cfg: _Config, rk: ExplicitRK, d: int):
    """One explicit backward step of the augmented system as a pure tensor function, for
    ``torch.compile`` (``compile=True``; see :func:`.compiled.compiled_adjoint_step`).

    ``step(s, h, z, params) -> (z_new, inc, err)``: from ``z = (y, a)`` at ``s = −t`` (every sample at
    the same ``s`` and with the same step ``h``, shaped ``(B,)``), the stages
    ``Kᵢ = (−f(Yᵢ), Aᵢᵀ∂f/∂y(Yᵢ))`` of the tableau, ``z_new = z + h Σᵢ bᵢ Kᵢ``, the parameter
    quadrature increment ``inc = h Σᵢ bᵢ Σ_b A_{b,i}ᵀ ∂f/∂θ(Yᵢ)`` — the same numbers as the eager loop's
    ``"uniform"`` θ-mode — and, for an embedded pair, the error estimate ``err = h Σᵢ eᵢ Kᵢ`` (else
    ``None``). Adaptive backward solves run it when the batch shares its steps (``norm="batch"``) and
    the parameter accumulator stays out of the norm (seminorm): the loop then decides acceptance from
    ``err`` and keeps or drops ``inc`` for the whole batch. Each stage is one ``torch.func.vjp`` of
    the field with respect to ``(y, θ)`` through ``functional_call``, so the parameters are inputs of
    the compiled graph, not constants.
    Inactive samples carry ``h = 0`` (a step of zero; with a shared grid either all samples are
    active or none, so ``h[0]`` weights the increment).
    """
    sign = -1.0 if cfg.reverse else 1.0
    theta_w = dict(rk.b_terms)
    adaptive = cfg.adaptive and rk.e_terms is not None
    fp = _field_fn(cfg, [])  # the parameters come in as arguments of the compiled step

    def f(p, t: Tensor, y: Tensor) -> Tensor:
        return sign * fp(p, sign * t, y)

    def step(s: Tensor, h: Tensor, z: Tensor, params: tuple[Tensor, ...]):
        ks: list[Tensor] = []
        g = [torch.zeros_like(p) for p in params]
        for i in range(rk.stages):
            zi = z if i == 0 else combine(z, h, rk.a_terms[i], ks, rk.a_pivots[i])
            ti = -(s + rk.c[i] * h) if rk.c[i] else -s
            y, a = zi[..., :d], zi[..., d:]
            if params and i in theta_w:
                out, pull = vjp(lambda yy, pp, ti=ti: f(pp, ti, yy), y, params)
                fa, gp = pull(a)
                g = [gi + theta_w[i] * gpi for gi, gpi in zip(g, gp)]
            else:
                out, pull = vjp(lambda yy, ti=ti: f(params, ti, yy), y)
                (fa,) = pull(a)
            ks.append(torch.cat([-out, fa], -1))
        w = h[0]
        err = rk.error(h, ks) if adaptive else None
        return combine(z, h, rk.b_terms, ks, rk.b_pivot), tuple(w * gi for gi in g), err

    return step


def _backward(
    cfg: _Config,
    ts: Tensor,
    ys: Tensor,
    grad_ys: Tensor,
    params: list[Tensor],
    live: Sequence[Tensor] | None,
    times: bool = True,
):
    bspec: MethodSpec = cfg.spec_backward  # type: ignore[attr-defined]
    rk = bspec.tableau
    d = ys.shape[-1]
    shape = ys.shape
    # The forward solve ran with the times cast to the state's dtype; so does the backward one.
    ts_flat = ts.expand(*cfg.batch_shape, ts.shape[-1]) if ts.dim() == 1 else ts
    tsb = ts_flat.reshape(-1, shape[-2]).to(ys.dtype)
    ysb = ys.reshape(-1, shape[-2], d)
    gb = grad_ys.reshape(-1, shape[-2], d)
    if cfg.reverse:
        tsb = -tsb  # the forward grid decreased; work in the increasing variable as the forward did
    fp = _field_fn(cfg, params)
    sign = -1.0 if cfg.reverse else 1.0

    def field(t: Tensor, y: Tensor, p: Sequence[Tensor] = params) -> Tensor:
        if p is live:
            return sign * cfg.f(sign * t, y)
        return sign * fp(p, sign * t, y)

    # ∂L/∂t costs two more field evaluations: only when the times need it.
    driver = _BackwardDriver(
        cfg, rk, field, params, tsb, ysb, gb, live, shared_grid=ts.dim() == 1, times=times
    )
    if driver.fused is not None:  # compiled backward steps: the thread rule of compiled solves
        from .compiled import kernel_threads

        with kernel_threads(ysb[:, 0].numel() * 2, ysb.device):  # the state is (y, a)
            a0, g_params, g_times = driver.run()
    else:
        a0, g_params, g_times = driver.run()
    if cfg.reverse:
        g_times = -g_times
    g_y0 = a0.reshape(*cfg.batch_shape, d) if cfg.batch_shape else a0.reshape(d)
    if ts.dim() == 1:
        g_ts = g_times.sum(0)
    else:
        g_ts = g_times.reshape(ts.shape)
    return g_y0, g_ts.to(ts.dtype), g_params


def _zeros_for_unused(grads, leaves, lead: tuple[int, ...]) -> tuple[Tensor, ...]:
    """Zeros (with the batched pass's leading axes) for parameters the field does not use — e.g. the
    output bias of H_θ in a Hamiltonian network's ``J∇H``."""
    return tuple(
        torch.zeros((*lead, *p.shape), dtype=p.dtype, device=p.device) if g is None else g
        for g, p in zip(grads, leaves)
    )


# How many backward iterations run between two "is any sample still active?" reads on an accelerator
# (each read is a host sync that drains the device queue). On the CPU a read costs nothing and the
# loop checks after every iteration, so no fully masked iteration runs after the last sample finished.
SYNC_EVERY_ACCELERATOR = 8

_FAIL_TOLERANCE, _FAIL_MAX_STEPS, _FAIL_NEWTON = 1, 2, 3


class _BackwardDriver:
    """Per-sample reversed-time integration of (y, a) with a joint θ-gradient accumulator.

    Works in ``s = −t`` so every sample steps forward in ``s`` from ``−t_{k}`` to ``−t_{k−1}``. The
    state of a sample is ``z = (y, a)`` (one ``(B, 2D)`` tensor, so each stage combination is one
    fused pass over it); the parameter gradient is one accumulator shaped like the parameters,
    advanced by one batched vector–Jacobian product per iteration.

    The loop is free of per-iteration host syncs: every branch is a masked update, failures
    (step-size underflow, ``max_steps``, a Newton failure of an implicit backward method) are recorded
    per sample and raised once after the loop, and "any sample still active?" is read once per
    ``sync_every`` iterations (iterations after the last sample finished are fully masked no-ops).
    """

    def __init__(
        self,
        cfg,
        tableau: ButcherTableau,
        field,
        params,
        ts,
        ys,
        gy,
        live=None,
        shared_grid=False,
        times=True,
    ):
        self.cfg, self.field, self.params = cfg, field, params
        self.shared_grid = shared_grid
        self.times = times  # compute ∂L/∂t (two more field evaluations)
        # The tensors the θ-products differentiate: the field's own live tensors when it closes over
        # them or (``live``) when the module still holds them, else leaf copies of the module's
        # parameters that ``field`` substitutes.
        if cfg.external is not None:
            self.leaves = list(cfg.external)
        elif live is not None:
            self.leaves = live
        else:
            self.leaves = [p.detach().requires_grad_() for p in params]
        self.ts, self.ys, self.gy = ts, ys, gy
        self.d = ys.shape[-1]
        self.b_terms = _terms(tableau.b)
        if tableau.explicit:
            self.rk, self.implicit = ExplicitRK(tableau), None
        else:
            # Gauss–Legendre on the augmented state z = (y, a); its stages are also the nodes of the
            # parameter quadrature Σᵢ bᵢ aᵢᵀ ∂f/∂θ(Yᵢ).
            self.rk = None
            self.implicit = ImplicitRK(tableau, self._aug)
            self.c = tuple(float(v) for v in tableau.c)
        e = tableau.error_weights if (tableau.explicit and cfg.adaptive) else None
        self.e_terms = _terms(e) if e is not None else ()
        # Stage points of the θ-products: those with a nonzero b weight, and in full-norm mode also
        # those with a nonzero error weight (one forward pass of f serves both cotangents).
        full = bool(params) and cfg.adaptive and not cfg.seminorm and bool(self.e_terms)
        self.full_norm = full
        idx = sorted({i for i, _ in self.b_terms} | ({i for i, _ in self.e_terms} if full else set()))
        self.theta_idx = tuple(idx)
        self.theta_set = frozenset(idx) if params else frozenset()
        # How the θ-products are taken (see _aug_graph): every sample carries the same quadrature
        # weights when all of them take the same steps (one sample, or fixed steps on a grid shared by
        # the batch); otherwise the stage's backward pass is scaled by h_b, and attempts that are not
        # kept are subtracted afterwards — which needs a read of "were there any?" per iteration,
        # free on the CPU; where reads are syncs, the graphs are pulled after the acceptance test.
        self.sync_every = cfg.sync_every or (1 if ys.device.type == "cpu" else SYNC_EVERY_ACCELERATOR)
        # Shared adaptive steps (norm="batch") on a shared grid keep the batch in lockstep: every sample
        # has the same weights too, and an FSAL pair's last stage, evaluated with its θ-product, is the
        # next attempt's first stage (it is re-evaluated otherwise: 7 evaluations a step instead of 6
        # for dopri5). Deciding to carry it reads "all accepted?" per attempt: the CPU only.
        self.fsal = bool(
            tableau.explicit
            and tableau.fsal
            and cfg.adaptive
            and cfg.batch_norm
            and shared_grid
            and self.sync_every == 1
        )
        if not tableau.explicit:
            self.theta_mode = "implicit"
        elif ys.shape[0] == 1 or (shared_grid and not cfg.adaptive) or self.fsal:
            self.theta_mode = "uniform"
        elif not cfg.adaptive or self.sync_every == 1:
            # Fixed steps never drop an attempted step; adaptive ones may, and then need a read.
            self.theta_mode = "scaled"
        else:
            self.theta_mode = "graphs"
        dt_, dev = ys.dtype, ys.device
        bw, ew = dict(self.b_terms), dict(self.e_terms)
        self.theta_b = torch.tensor([bw.get(i, 0.0) for i in idx], dtype=dt_, device=dev)
        self.theta_e = torch.tensor([ew.get(i, 0.0) for i in idx], dtype=dt_, device=dev)
        self.fused = self._compiled_step() if cfg.compile else None

    def _compiled_step(self):
        """The compiled backward step (``compile=True``) where it applies, else ``None`` with a warning
        naming why. It applies to explicit methods on a grid shared by the batch — with fixed steps, or
        adaptive with shared steps (``norm="batch"``) and the seminorm — and to a field that is an
        ``nn.Module`` or a plain callable (not one closing over the tensors it is differentiated for)."""
        cfg = self.cfg
        why = None
        if self.implicit is not None:
            why = "its method is implicit"
        elif cfg.adaptive and not (cfg.batch_norm and cfg.seminorm and self.shared_grid):
            why = (
                "it is adaptive (adaptive backward solves are compiled with shared steps, norm='batch', "
                "the seminorm and a grid shared by the batch)"
            )
        elif self.theta_mode != "uniform" and not cfg.adaptive:
            why = "the samples have their own time grids (compiled only on a grid shared by the batch)"
        elif cfg.external is not None:
            why = "the differentiated tensors are closed over by the field (pass an nn.Module)"
        if why is not None:
            warnings.warn(f"compile=True: the adjoint's backward solve runs eagerly: {why}", stacklevel=2)
            return None
        from .compiled import compiled_adjoint_step

        p0 = self.params[0] if self.params else self.ys
        key = (self.rk.tableau.name, cfg.names, cfg.reverse, self.d, p0.dtype, p0.device.type, cfg.adaptive)
        fn = compiled_adjoint_step(_fused_adjoint_step(cfg, self.rk, self.d), cfg.f, key)
        if fn.failure is not None:  # an earlier solve found this field untraceable
            warnings.warn(fn.failure, stacklevel=2)
            return None
        return fn

    def _run_fused(self, s: Tensor, z: Tensor, h: Tensor):
        """One compiled step, or ``None`` (after a one-line warning, once per field and method) when
        the field cannot be traced: the loop then takes the eager path, from the same state."""
        try:
            return self.fused(s, h, z, tuple(self.params))
        except Exception as exc:  # any tracing or compilation failure: run eagerly
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            self.fused.failure = (
                f"compile=True: the adjoint's backward step could not be compiled "
                f"({type(exc).__name__}: {first}); running it eagerly"
            )
            warnings.warn(self.fused.failure, stacklevel=2)
            self.fused = None
            return None

    # One stage evaluation of the augmented field in s: z = (y, a) -> (dy/ds, da/ds).
    def _aug(self, s: Tensor, z: Tensor) -> Tensor:
        y, a = z[..., : self.d], z[..., self.d :]
        fy, pull = vjp(lambda yy: self.field(-s, yy), y)
        (fa,) = pull(a)
        if self.cfg.external is not None and not z.requires_grad:
            # The field uses live parameters: keep their graph out of the backward loop's states (only
            # an implicit step's Jacobian, which differentiates with respect to (y, a), needs a graph).
            fy, fa = fy.detach(), fa.detach()
        return torch.cat([-fy, fa], -1)

    def _aug_graph(self, s: Tensor, z: Tensor, theta: bool, h: Tensor) -> tuple[Tensor, Any]:
        """Like :meth:`_aug`, but by plain autograd; for a stage of the θ-quadrature (``theta``) also
        its θ-product, by :attr:`theta_mode`:

        * ``"uniform"`` (every sample has the same weights): ``G = Σ_b A_bᵀ∂f/∂θ`` from the same
          backward pass as ``Aᵀ∂f/∂y``;
        * ``"scaled"``: the backward pass takes the cotangent ``h_b A_b``, which gives
          ``G = Σ_b h_b A_bᵀ∂f/∂θ`` and ``h_b A_bᵀ∂f/∂y`` (divided by ``h_b``; samples with ``h_b = 0``
          are inactive and get zero); the graph is kept, for the corrections of rejected samples;
        * ``"graphs"``: only ``Aᵀ∂f/∂y``; the graph is kept and the θ-products are pulled later with
          per-sample weights (no second forward pass of ``f``).

        Returns the stage derivative and ``(output of f, G or None)`` for θ-stages, else ``None``.
        """
        d, mode = self.d, self.theta_mode
        with torch.enable_grad():
            y = z[..., :d].detach().requires_grad_()
            out = self.field(-s, y, self.leaves)
            if not out.requires_grad:  # a field that depends on neither y nor the parameters
                g0 = _zeros_for_unused([None] * len(self.leaves), self.leaves, ())
                return torch.cat([-out.detach(), torch.zeros_like(y)], -1), (out, g0) if theta else None
            joint = theta and mode in ("uniform", "scaled")
            a = z[..., d:]
            scaled = joint and mode == "scaled"
            grads = torch.autograd.grad(
                out,
                [y, *self.leaves] if joint else y,
                a * h.unsqueeze(-1) if scaled else a,
                retain_graph=theta and mode != "uniform",
                allow_unused=True,
            )
        fa = torch.zeros_like(y) if grads[0] is None else grads[0]
        if scaled:
            hc = h.unsqueeze(-1)
            fa = torch.where(hc > 0, fa / torch.where(hc > 0, hc, torch.ones_like(hc)), torch.zeros_like(fa))
        k = torch.cat([-out.detach(), fa], -1)
        if not theta:
            return k, None
        g = _zeros_for_unused(grads[1:], self.leaves, ()) if joint else None
        return k, (out, g)

    def _stages(self, s, z, h, first=None):
        """All explicit stages of one step: derivatives, states, times and, per θ-quadrature stage,
        ``(output of f, θ-product)`` (see :meth:`_aug_graph`).

        ``first`` is the first stage ``(k₁, output)`` when it is already known at ``(s, z)`` — the last
        stage of the step just accepted (FSAL), or the first stage of the attempt just rejected — which
        only the lockstep mode (:attr:`fsal`) passes: its θ-products are unscaled, so they serve any
        next step size. Otherwise the first stage is evaluated afresh: after an observation restarts
        ``(y, a)`` it would have to be anyway."""
        rk, want = self.rk, self.theta_set
        last = rk.stages - 1
        k1, o1 = first if first is not None else self._aug_graph(s, z, 0 in want, h)
        ks, zs, ss, outs = [k1], [z], [s], [o1]
        for i in range(1, rk.stages):
            zi = combine(z, h, rk.a_terms[i], ks, rk.a_pivots[i])
            si = s + rk.c[i] * h
            # In lockstep the FSAL stage also takes its θ-product, for when it becomes the next k₁.
            ki, oi = self._aug_graph(si, zi, i in want or (self.fsal and i == last and 0 in want), h)
            ks.append(ki)
            zs.append(zi)
            ss.append(si)
            outs.append(oi)
        return ks, zs, ss, outs

    def _theta_sums(self, coefs: list[Tensor], weight: Tensor, active: Tensor, zs, outs) -> list[tuple]:
        """For each ``c`` in ``coefs`` (``(n,)`` over the θ-stages): ``Σᵢ cᵢ Σ_b w_b A_{b,i}ᵀ∂f/∂θ``
        with ``weight = w (B,)`` — ``h_b`` times the acceptance mask."""
        idx = self.theta_idx
        if self.theta_mode == "uniform":
            # The same for every sample (in lockstep, a sample that rejects while the others accept
            # has failed, and the solve raises before these sums are used).
            w0 = weight[0]
            gs = [list(outs[i][1]) for i in idx]
            sums = []
            for c in coefs:
                # One fused multi-tensor op per stage instead of one op per parameter tensor.
                cw = c * w0
                total = torch._foreach_mul(gs[0], cw[0])
                for j in range(1, len(idx)):
                    torch._foreach_add_(total, torch._foreach_mul(gs[j], cw[j]))
                sums.append(tuple(total))
            return sums
        if self.theta_mode == "graphs":
            return [self._pull_graphs(zs, outs, c[:, None] * weight[None, :]) for c in coefs]
        # "scaled": the stage passes summed h_b A_bᵀ∂f/∂θ over all active samples; subtract the
        # samples that are active but not kept — only when there are some (a read that is free on
        # the CPU, the one place this mode runs).
        gs = [outs[i][1] for i in idx]
        sums = [
            [sum(c[j] * gs[j][q] for j in range(len(idx))) for q in range(len(self.leaves))] for c in coefs
        ]
        h = self._h_try
        dropped = active & ~(weight > 0) & (h > 0)
        if self.cfg.adaptive and bool(dropped.any()):  # fixed steps keep every attempt
            for c, total in zip(coefs, sums):
                corr = self._pull_graphs(zs, outs, c[:, None] * (h * dropped)[None, :])
                for q, cq in enumerate(corr):
                    total[q] = total[q] - cq
        return [tuple(t) for t in sums]

    def _pull_graphs(self, zs, outs, w: Tensor) -> tuple[Tensor, ...]:
        """``Σᵢ Σ_b w_{i,b} A_{b,i}ᵀ ∂f/∂θ(Y_{b,i})`` by one backward pass through the kept stage
        graphs (``w`` is ``(n, B)`` over the θ-stages); the graphs are kept for further passes."""
        d, idx, leaves = self.d, self.theta_idx, self.leaves
        used = [j for j, i in enumerate(idx) if outs[i][0].requires_grad]
        if not used:  # the field does not depend on the parameters
            return _zeros_for_unused([None] * len(leaves), leaves, ())
        o = [outs[idx[j]][0] for j in used]
        cots = [zs[idx[j]][..., d:] * w[j, :, None] for j in used]
        grads = torch.autograd.grad(o, leaves, cots, allow_unused=True, retain_graph=True)
        return _zeros_for_unused(grads, leaves, ())

    def _implicit_step(self, s, z, h):
        """One implicit RK step of the augmented system: new ``z``, stage states and times, and the
        samples whose Newton iteration failed."""
        delta, info = self.implicit.step(s, z, h)
        stages = info.stages  # (B, s, 2D)
        zs = [stages[:, i] for i in range(stages.shape[1])]
        ss = [s + ci * h for ci in self.c]
        return z + delta, zs, ss, ~info.converged

    def _theta_pull(self, zs, ss):
        """One forward pass of ``f`` at the θ-quadrature's stage points, batched over samples (the
        implicit backward methods, whose stages come from a Newton iteration).

        Returns ``pull(weights (n, B)) -> Σᵢ Σ_b w_{i,b} A_{b,i}ᵀ ∂f/∂θ(−s_{b,i}, Y_{b,i})``, a tuple
        shaped like the parameters.
        """
        d, idx = self.d, self.theta_idx
        yst = torch.stack([zs[i][..., :d] for i in idx])  # (n, B, D)
        ast = torch.stack([zs[i][..., d:] for i in idx])
        sst = torch.stack([ss[i] for i in idx])  # (n, B)
        n, b, _ = yst.shape
        with torch.enable_grad():
            out = self.field(-sst.reshape(n * b).detach(), yst.reshape(n * b, d).detach(), self.leaves)

        def pull(w: Tensor):
            if not out.requires_grad:  # the field does not depend on the parameters
                return _zeros_for_unused([None] * len(self.leaves), self.leaves, ())
            cot = (ast * w.unsqueeze(-1)).reshape(n * b, d).detach()
            grads = torch.autograd.grad(out, self.leaves, cot, allow_unused=True)
            return _zeros_for_unused(grads, self.leaves, ())

        return pull

    def run(self):
        cfg, rk, d = self.cfg, self.rk, self.d
        ts, ys, gy = self.ts, self.ys, self.gy
        b, n_obs, _ = ys.shape
        dev, dt_ = ys.device, ys.dtype
        eps = torch.finfo(dt_).eps
        rows = torch.arange(b, device=dev)
        k = torch.full((b,), n_obs - 1, dtype=torch.long, device=dev)  # current interval's end index
        s = -ts[:, -1].clone()
        z = torch.cat([ys[:, -1], gy[:, -1]], -1)
        g_times = torch.zeros(b, n_obs, dtype=dt_, device=dev)
        with torch.no_grad():  # ∂L/∂t_k = (∂L/∂y_k)ᵀ f(t_k, y_k) for every output but the first
            if self.times:
                f_all = self.field(ts[:, 1:].reshape(-1), ys[:, 1:].reshape(-1, d)).reshape(b, n_obs - 1, d)
                g_times[:, 1:] = (gy[:, 1:] * f_all).sum(-1)
        g_acc = [torch.zeros_like(p) for p in self.params]

        def interval_end(k: Tensor) -> Tensor:
            return -ts.gather(1, (k - 1).clamp(min=0).unsqueeze(1)).squeeze(1)

        def fixed_step(span: Tensor) -> Tensor:
            if cfg.dt is None:  # one step per interval, as the forward solve took
                return span
            return span / torch.ceil(span / cfg.dt * (1 - 1e-12)).clamp(min=1)

        sync_every = self.sync_every
        failed = torch.zeros(b, dtype=torch.int8, device=dev)
        active = k > 0
        s_end = interval_end(k)
        if cfg.adaptive:
            # Start from each sample's mean forward step (the backward dynamics share its time scale).
            accepted = (cfg.forward_stats or {}).get("accepted")
            total = ts[:, -1] - ts[:, 0]
            h = (
                total / accepted.reshape(-1).clamp(min=1).to(dt_)
                if accepted is not None
                else (s_end - s) * 0.1
            )
            if cfg.batch_norm:  # shared steps start from one step size: the smallest
                h = h.min().expand_as(h).clone()
            first_chunk = sync_every
        else:
            h = fixed_step((s_end - s).clamp(min=0))
            # Fixed steps: every active sample takes one step per iteration, so the number of
            # iterations is known up front (one read); the loop then checks once that all arrived.
            spans = (ts[:, 1:] - ts[:, :-1]).clamp(min=0)
            per = (
                torch.ones_like(spans)
                if cfg.dt is None
                else torch.ceil(spans / cfg.dt * (1 - 1e-12)).clamp(min=1)
            )
            first_chunk = max(int(per.sum(1).max()), 1)
        err1 = torch.ones(b, dtype=dt_, device=dev)
        explicit = self.implicit is None
        steps = torch.zeros(b, dtype=torch.int64, device=dev)
        k_err = (rk.tableau.embedded_order or rk.tableau.order - 1) + 1 if cfg.adaptive else 0
        chunk, iterations, reads = first_chunk, 0, 0
        carry = None  # lockstep mode: the next attempt's first stage, when already evaluated
        while True:
            iterations += chunk
            for _ in range(chunk):
                lands = s + 1.01 * h >= s_end
                h_try = torch.where(active, torch.where(lands, s_end - s, h), torch.zeros_like(h))
                ks = outs = implicit_pull = fused = None
                if self.fused is not None:
                    fused = self._run_fused(s, z, h_try)
                err = None
                if fused is not None:
                    z_new, fused_inc, err = fused
                elif explicit:
                    ks, zs, ss, outs = self._stages(s, z, h_try, carry)
                    z_new = combine(z, h_try, self.rk.b_terms, ks, self.rk.b_pivot)
                    if cfg.adaptive:
                        err = self.rk.error(h_try, ks)
                else:
                    ks = None
                    z_new, zs, ss, newton_failed = self._implicit_step(s, z, h_try)
                    failed = torch.where(active & newton_failed, _FAIL_NEWTON, failed)
                    if self.params:
                        implicit_pull = self._theta_pull(zs, ss)
                steps = steps + active
                if cfg.adaptive:
                    en = self._error_norm(z, z_new, err)
                    accept = active & (en <= 1.0)
                else:
                    accept = active & (failed == 0)
                self._h_try = h_try
                if implicit_pull is not None:
                    inc = implicit_pull(self.theta_b[:, None] * (h_try * accept)[None, :])
                    g_acc = [acc + i for acc, i in zip(g_acc, inc)]
                elif self.full_norm:
                    # The error estimate and the increment of the joint θ-accumulator over the
                    # samples whose (y, a) passed. A batch-level rejection rejects them all (the
                    # θ-norm is one number), so the increment is kept or dropped as a whole.
                    e_theta, inc = self._theta_sums(
                        [self.theta_e, self.theta_b], h_try * accept, active, zs, outs
                    )
                    en_theta = self._theta_norm(e_theta, g_acc, inc)
                    theta_ok = en_theta <= 1.0
                    accept = accept & theta_ok
                    en = torch.maximum(en, en_theta)
                    g_acc = [
                        acc + torch.where(theta_ok, i, torch.zeros_like(i)) for acc, i in zip(g_acc, inc)
                    ]
                elif fused is not None:
                    if self.params and cfg.adaptive:
                        # Shared steps: the batch accepts or rejects as one (a sample that fails alone
                        # ends the solve with an error below), so the increment is kept or dropped whole.
                        kept = accept.any()
                        g_acc = [acc + torch.where(kept, i, 0.0) for acc, i in zip(g_acc, fused_inc)]
                    elif self.params:
                        g_acc = torch._foreach_add(g_acc, list(fused_inc))
                elif self.params:
                    (inc,) = self._theta_sums([self.theta_b], h_try * accept, active, zs, outs)
                    g_acc = torch._foreach_add(g_acc, list(inc))
                acc_col = accept.unsqueeze(-1)
                z = torch.where(acc_col, z_new, z)
                s = torch.where(accept, torch.where(lands, s_end, s + h_try), s)
                if cfg.adaptive:
                    en_c = en.clamp(min=1e-10)
                    h_next = h_try * cfg.controller.factor(en_c, err1, err1, accept, k_err)
                    h_next = torch.where(accept & lands, torch.maximum(h_next, h), h_next)
                    err1 = torch.where(accept, en_c, err1)
                    stuck = active & ~accept & (h_next < 16 * eps * s.abs().clamp(min=1.0))
                    failed = torch.where(stuck, _FAIL_TOLERANCE, failed)
                    failed = torch.where(active & (steps > cfg.max_steps), _FAIL_MAX_STEPS, failed)
                    h = torch.where(active, h_next, h)
                # Samples that reached an observation: jump the adjoint, restart y from the forward
                # value (masked: a no-op for the others).
                arrived = accept & (s >= s_end)
                if self.fsal and ks is not None:
                    # Two reads per attempt (free on the CPU, the only place this mode runs).
                    n_acc = int(accept.sum())
                    if n_acc == b and not bool(arrived.any()):
                        carry = (ks[-1], outs[-1])  # FSAL: the last stage is at the new (s, z)
                    elif n_acc == 0:
                        carry = (ks[0], outs[0])  # rejected: the same (s, z) again
                    else:
                        carry = None  # an observation restarts (y, a), or the lockstep broke
                k = k - arrived.long()
                kc = k.clamp(min=0)
                restart = torch.cat([ys[rows, kc], z[:, d:] + gy[rows, kc]], -1)
                z = torch.where(arrived.unsqueeze(-1), restart, z)
                active = (k > 0) & (failed == 0)
                new_end = interval_end(k)
                if not cfg.adaptive:
                    h = torch.where(arrived, fixed_step((new_end - s).clamp(min=0)), h)
                s_end = torch.where(arrived, new_end, s_end)
            reads += 1
            if not bool(active.any()):
                break
            chunk = sync_every
        self._raise_failures(failed)
        a = z[:, d:]
        if self.times:
            # ∂L/∂t_0 = −a(t_0⁺)ᵀ f(t_0, y_0), with the adjoint *before* the jump by ∂L/∂y(t_0): the
            # output at t_0 is y_0 itself and does not move with t_0.
            with torch.no_grad():
                g_times[:, 0] = -((a - gy[:, 0]) * self.field(ts[:, 0], ys[:, 0])).sum(-1)
        # steps: attempted steps per sample; iterations: loop iterations run (masked ones included);
        # active_reads: how many times the loop read "any sample still active?" (host syncs).
        cfg.backward_stats = {"steps": steps, "iterations": iterations, "active_reads": reads}
        return a, g_acc, g_times

    def _raise_failures(self, failed: Tensor) -> None:
        """The loop's one failure check: raise for the first kind of failure any sample recorded."""
        code = int(failed.max())
        if code == _FAIL_NEWTON:
            raise CapabilityError(
                f"the Newton iteration of the adjoint's implicit backward solve "
                f"({self.implicit.tableau.name}) did not converge; use a smaller AdjointOptions(dt=...) "
                "or an explicit backward method"
            )
        if code in (_FAIL_TOLERANCE, _FAIL_MAX_STEPS):
            what = "step-size underflow" if code == _FAIL_TOLERANCE else "max_steps"
            raise CapabilityError(
                f"the adjoint's backward solve could not meet its tolerance ({what}); loosen "
                "AdjointOptions(rtol=..., atol=...) or use seminorm=True"
            )

    def _error_norm(self, z, z_new, err):
        """RMS of err/scale over ``(y, a)``: per sample, or over the batch (``AdjointOptions.norm``)."""
        cfg = self.cfg
        scale = cfg.atol + cfg.rtol * torch.maximum(z.abs(), z_new.abs())
        en = (batch_rms_norm if cfg.batch_norm else rms_norm)(err / scale)
        return torch.where(torch.isfinite(en), en, torch.full_like(en, float("inf")))

    def _theta_norm(self, e_theta, g_acc, inc) -> Tensor:
        """Batch-level norm of err/scale of the joint θ-accumulator (a 0-d tensor): the largest RMS
        over the parameter tensors.

        The accumulator is one tensor for the whole batch, so its error estimate
        ``Σᵢ eᵢ h_b A_{b,i}ᵀ ∂f/∂θ`` sums the samples' current attempts and is measured against
        ``atol + rtol max(|g|, |g + Δg|)`` of the batch gradient — as a shared-step solver's norm over
        the augmented state does; the step's norm is the larger of this and the sample's own (the
        "mixed norm" of torchdiffeq's adjoint: the maximum of the norms of the parts, here also the
        maximum over the parameter tensors).
        """
        cfg = self.cfg
        en = torch.stack(
            [
                (e / (cfg.atol + cfg.rtol * torch.maximum(g.abs(), (g + i).abs()))).pow(2).mean().sqrt()
                for e, g, i in zip(e_theta, g_acc, inc)
            ]
        ).max()
        return torch.where(torch.isfinite(en), en, torch.full_like(en, float("inf")))


def gradient_audit(
    f: torch.nn.Module,
    y0: Tensor,
    ts: Tensor,
    loss_fn: Any,
    method: str = "dopri5",
    *,
    directions: int = 3,
    eps: float = 1e-6,
    seed: int = 0,
    adjoint: AdjointOptions | None = None,
    **forward: Any,
) -> dict[str, float]:
    """Compare the adjoint gradient with discrete backprop and finite differences.

    For the parameters ``θ`` of ``f`` (and ``y0``), computes the gradient of
    ``loss_fn(solve(f, y0, ts).ys)`` three ways: continuous adjoint, autograd through the solver,
    and central finite differences of the loss along ``directions`` random unit directions ``v``
    (``(L(θ + εv) − L(θ − εv)) / 2ε`` against ``⟨∇L, v⟩``). Returns relative errors (use float64).
    """
    from .solve import solve

    params = [p for p in f.parameters() if p.requires_grad]
    y0 = y0.detach().clone().requires_grad_(True)

    def grads(adj: Any) -> list[Tensor]:
        sol = solve(f, y0, ts, method, adjoint=adj, **forward)
        # A parameter can be absent from the graph (e.g. the output bias of H_θ in an HNN's
        # explicit ∇H): its gradient is zero, as the adjoint reports it.
        return list(
            torch.autograd.grad(loss_fn(sol.ys), [y0, *params], allow_unused=True, materialize_grads=True)
        )

    g_adj = grads(adjoint or AdjointOptions())
    g_bp = grads(False)
    flat_adj = torch.cat([g.reshape(-1) for g in g_adj])
    flat_bp = torch.cat([g.reshape(-1) for g in g_bp])
    gen = torch.Generator().manual_seed(seed)
    fd_rel = 0.0
    with torch.no_grad():
        for _ in range(directions):
            v = [torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in [y0, *params]]
            norm = torch.sqrt(sum((x * x).sum() for x in v))
            v = [x / norm for x in v]
            backup = [p.detach().clone() for p in [y0, *params]]

            def loss_at(sign: float, v=v, backup=backup) -> float:
                for p, b, d in zip([y0, *params], backup, v):
                    p.copy_(b + sign * eps * d)
                return float(loss_fn(solve(f, y0, ts, method, **forward).ys))

            fd = (loss_at(1.0) - loss_at(-1.0)) / (2 * eps)
            for p, b in zip([y0, *params], backup):
                p.copy_(b)
            exact = float(sum((g * d).sum() for g, d in zip(g_adj, v)))
            fd_rel = max(fd_rel, abs(fd - exact) / max(abs(fd), 1e-300))
    return {
        "adjoint_vs_backprop": float((flat_adj - flat_bp).norm() / flat_bp.norm().clamp_min(1e-300)),
        "adjoint_vs_finite_differences": fd_rel,
        "gradient_norm": float(flat_adj.norm()),
    }
