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
  only. The parameter gradient of an accepted step, ``h Σᵢ bᵢ Aᵢᵀ ∂f/∂θ(Yᵢ)``, is one batched
  ``torch.func.vjp`` with respect to θ over all stage points, weighted per sample and masked by
  acceptance, so rejected attempts never pollute it.
* **Norm**: by default the error norm of the backward solve covers ``y``, ``a`` *and* each sample's
  parameter accumulator (per-sample gradients via ``vmap``); ``seminorm=True`` leaves the
  accumulator out, which cuts backward steps (Kidger, Chen & Lyons, *"Hey, that's not an ODE"*,
  ICML 2021) and allows the single batched θ-product.

No ``.item()`` or host sync happens per stage; the per-iteration "any sample still active" test is
the only sync, as in the forward driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.func import functional_call, vjp, vmap

from .controller import PIDController
from .errors import CapabilityError, InvalidArgumentError
from .explicit import ExplicitRK, _terms
from .fixed import refuse_long_fixed_solves
from .implicit import ImplicitRK
from .inputs import Problem, positive_float, positive_int
from .methods import MethodSpec, get_method
from .tableau import ButcherTableau

Tensor = torch.Tensor


@dataclass(frozen=True)
class AdjointOptions:
    """How the backward (adjoint) solve runs; ``None`` fields inherit the forward solve's values.

    Attributes:
        method: a Runge–Kutta method for the backward solve: explicit, embedded, or implicit
            (Gauss–Legendre; fixed steps, so it needs ``dt``). Splittings do not apply: the augmented
            ``(y, a)`` system is not separable.
        rtol, atol: backward tolerances (adaptive).
        dt: backward step (fixed-step methods, or to force fixed steps).
        seminorm: leave the parameter accumulator out of the backward error norm.
        max_steps: adaptive backward solves: cap on attempted steps per sample (default 10⁵);
            fixed-step ones: most steps per sample, refused before the loop (default 10⁷).
        controller: step-size controller of the backward solve.
    """

    method: str | None = None
    rtol: float | None = None
    atol: float | None = None
    dt: float | None = None
    seminorm: bool = False
    max_steps: int | None = None
    controller: PIDController = field(default_factory=PIDController)


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
    external: tuple[Tensor, ...] | None = None  # parameters the field closes over (not its own)
    forward_status: Tensor | None = None
    forward_stats: dict[str, Tensor] | None = None
    backward_stats: dict[str, Tensor] | None = None


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
        with torch.enable_grad():
            g_y0, g_ts, g_params = _backward(cfg, ts, ys.detach(), grad_ys, [p.detach() for p in params])
        needs = ctx.needs_input_grad
        return (None, g_y0 if needs[1] else None, g_ts if needs[2] else None, *g_params)


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
    adaptive = (
        bspec.adaptive
        and (opts.dt is None)
        and not (fwd_dt is not None and opts.rtol is None and not spec.adaptive)
    )
    if bspec.adaptive and bdt is not None and opts.rtol is None and opts.dt is not None:
        adaptive = False
    if not adaptive and bdt is None and (spec.adaptive and fwd_dt is None):
        raise InvalidArgumentError(
            "adjoint.dt", None, f"a backward step size for the fixed-step method {bspec.name!r}"
        )
    # (A fixed-step forward solve without dt took one step per output interval; so does the backward.)
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
        external=external,
    )
    cfg.spec_backward = bspec  # type: ignore[attr-defined]
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


def _backward(cfg: _Config, ts: Tensor, ys: Tensor, grad_ys: Tensor, params: list[Tensor]):
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
        return sign * fp(p, sign * t, y)

    driver = _BackwardDriver(cfg, rk, field, params, tsb, ysb, gb)
    a0, g_params, g_times = driver.run()
    if cfg.reverse:
        g_times = -g_times
    g_y0 = a0.reshape(*cfg.batch_shape, d) if cfg.batch_shape else a0.reshape(d)
    if ts.dim() == 1:
        g_ts = g_times.sum(0)
    else:
        g_ts = g_times.reshape(ts.shape)
    return g_y0, g_ts.to(ts.dtype), g_params


class _BackwardDriver:
    """Per-sample reversed-time integration of (y, a) with θ-gradient accumulation.

    Works in ``s = −t`` so every sample steps forward in ``s`` from ``−t_{k}`` to ``−t_{k−1}``.
    """

    def __init__(self, cfg, tableau: ButcherTableau, field, params, ts, ys, gy):
        self.cfg, self.field, self.params = cfg, field, params
        self.ts, self.ys, self.gy = ts, ys, gy
        self.b_terms = _terms(tableau.b)
        if tableau.explicit:
            self.rk, self.implicit = ExplicitRK(tableau), None
        else:
            # Gauss–Legendre on the augmented state z = (y, a); its stages are also the nodes of the
            # parameter quadrature Σᵢ bᵢ aᵢᵀ ∂f/∂θ(Yᵢ).
            self.rk = None
            self.implicit = ImplicitRK(tableau, lambda s, z: torch.cat(self._aug(s, *z.chunk(2, -1)), -1))
            self.c = tuple(float(v) for v in tableau.c)

    # One stage evaluation of the augmented field in s: returns (dy/ds, da/ds).
    def _aug(self, s: Tensor, y: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        fy, pull = vjp(lambda yy: self.field(-s, yy), y)
        (fa,) = pull(a)
        if self.cfg.external is not None and not (y.requires_grad or a.requires_grad):
            # The field uses live parameters: keep their graph out of the backward loop's states (only
            # an implicit step's Jacobian, which differentiates with respect to (y, a), needs a graph).
            fy, fa = fy.detach(), fa.detach()
        return -fy, fa

    def _stages(self, s, y, a, h, k1):
        rk = self.rk
        ky, ka = [k1[0]], [k1[1]]
        ys_, as_, ss_ = [y], [a], [s]
        hc = h.unsqueeze(-1)
        for i in range(1, rk.stages):
            yi, ai = y, a
            for j, w in rk.a_terms[i]:
                yi = yi + (w * hc) * ky[j]
                ai = ai + (w * hc) * ka[j]
            si = s + rk.c[i] * h
            dy, da = self._aug(si, yi, ai)
            ky.append(dy)
            ka.append(da)
            ys_.append(yi)
            as_.append(ai)
            ss_.append(si)
        return ky, ka, ys_, as_, ss_

    def _implicit_step(self, s, y, a, h, active):
        """One implicit RK step of the augmented system; returns the new ``(y, a)`` and the stages."""
        d = y.shape[-1]
        delta, info = self.implicit.step(s, torch.cat([y, a], -1), h)
        if bool((active & ~info.converged).any()):
            raise CapabilityError(
                f"the Newton iteration of the adjoint's implicit backward solve "
                f"({self.implicit.tableau.name}) did not converge; use a smaller AdjointOptions(dt=...) "
                "or an explicit backward method"
            )
        stages = info.stages  # (B, s, 2D)
        n = stages.shape[1]
        ys_ = [stages[:, i, :d] for i in range(n)]
        as_ = [stages[:, i, d:] for i in range(n)]
        ss_ = [s + ci * h for ci in self.c]
        return y + delta[:, :d], a + delta[:, d:], ys_, as_, ss_

    def _theta_increment(self, ys_, as_, ss_, weights: Tensor, per_sample: bool):
        """``Σᵢ Σ_b w_b bᵢ A_{b,i}ᵀ ∂f/∂θ(−s_{b,i}, Y_{b,i})`` (summed over samples, or per sample)."""
        if not self.params:
            return None
        idx = [i for i, _ in self.b_terms]
        coef = torch.tensor([w for _, w in self.b_terms], dtype=weights.dtype, device=weights.device)
        yst = torch.stack([ys_[i] for i in idx])  # (n, B, D)
        ast = torch.stack([as_[i] for i in idx])
        sst = torch.stack([ss_[i] for i in idx])  # (n, B)
        cot = ast * (coef[:, None] * weights[None, :]).unsqueeze(-1)
        return self._param_vjp(yst, cot, sst, per_sample)

    def _param_vjp(self, yst: Tensor, cot: Tensor, sst: Tensor, per_sample: bool):
        """``Σ cotᵀ ∂f/∂θ`` over stage points ``yst (n, B, D)`` at times ``−sst (n, B)``: one tuple of
        tensors shaped like the parameters (or ``(B, *p.shape)`` per sample).

        Module parameters go through ``torch.func`` (``functional_call``, and ``vmap`` per sample);
        parameters the field merely closes over (``adjoint_solve(params=...)`` with tensors that are not
        the module's own) through ``torch.autograd.grad`` on the live tensors, one pass per sample in
        per-sample mode.
        """
        sign = -1.0 if self.cfg.reverse else 1.0
        n, b, d = yst.shape
        if self.cfg.external is not None:
            live = self.cfg.external

            def pull_live(y_rows, s_rows, c_rows):
                with torch.enable_grad():
                    out = sign * self.cfg.f(sign * (-s_rows), y_rows)
                    return torch.autograd.grad(
                        out, live, grad_outputs=c_rows, allow_unused=True, materialize_grads=True
                    )

            if not per_sample:
                return pull_live(
                    yst.reshape(n * b, d).detach(),
                    sst.reshape(n * b).detach(),
                    cot.reshape(n * b, d).detach(),
                )
            rows = [pull_live(yst[:, i].detach(), sst[:, i].detach(), cot[:, i].detach()) for i in range(b)]
            return tuple(torch.stack(col) for col in zip(*rows))
        fp = _field_fn(self.cfg, self.params)
        if not per_sample:

            def g(p):
                return sign * fp(p, sign * (-sst.reshape(n * b)), yst.reshape(n * b, d))

            _, pull = vjp(g, tuple(self.params))
            (grads,) = pull(cot.reshape(n * b, d))
            return grads

        def one(y_col, a_col, s_col):  # y_col (n, D): one sample's stages
            def g(p):
                return sign * fp(p, sign * (-s_col), y_col)

            _, pull = vjp(g, tuple(self.params))
            return pull(a_col)[0]

        return vmap(one, in_dims=(1, 1, 1))(yst, cot, sst)  # tuple of (B, *p.shape)

    def run(self):
        cfg, rk = self.cfg, self.rk
        ts, ys, gy = self.ts, self.ys, self.gy
        b, n_obs, d = ys.shape
        dev, dt_ = ys.device, ys.dtype
        eps = torch.finfo(dt_).eps
        rows = torch.arange(b, device=dev)
        k = torch.full((b,), n_obs - 1, dtype=torch.long, device=dev)  # current interval's end index
        s = -ts[:, -1].clone()
        y = ys[:, -1].clone()
        a = gy[:, -1].clone()
        g_times = torch.zeros(b, n_obs, dtype=dt_, device=dev)
        with torch.no_grad():  # ∂L/∂t_k = (∂L/∂y_k)ᵀ f(t_k, y_k) for every output but the first
            f_all = self.field(ts[:, 1:].reshape(-1), ys[:, 1:].reshape(-1, d)).reshape(b, n_obs - 1, d)
            g_times[:, 1:] = (gy[:, 1:] * f_all).sum(-1)
        per_sample = bool(self.params) and cfg.adaptive and not cfg.seminorm
        shape = (lambda p: (b, *p.shape)) if per_sample else (lambda p: p.shape)
        g_acc = [torch.zeros(shape(p), dtype=p.dtype, device=p.device) for p in self.params]

        def interval_end(k: Tensor) -> Tensor:
            return -ts.gather(1, (k - 1).clamp(min=0).unsqueeze(1)).squeeze(1)

        def fixed_step(span: Tensor) -> Tensor:
            if cfg.dt is None:  # one step per interval, as the forward solve took
                return span
            return span / torch.ceil(span / cfg.dt * (1 - 1e-12)).clamp(min=1)

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
        else:
            h = fixed_step((s_end - s).clamp(min=0))
        err1 = torch.ones(b, dtype=dt_, device=dev)
        explicit = self.implicit is None
        fsal = explicit and rk.fsal
        k1 = self._aug(s, y, a) if explicit else None
        steps = torch.zeros(b, dtype=torch.int64, device=dev)
        k_err = (rk.tableau.embedded_order or rk.tableau.order - 1) + 1 if cfg.adaptive else 0
        while bool(active.any()):
            lands = s + 1.01 * h >= s_end
            h_try = torch.where(active, torch.where(lands, s_end - s, h), torch.zeros_like(h))
            hc = h_try.unsqueeze(-1)
            if explicit:
                ky, ka, ys_, as_, ss_ = self._stages(s, y, a, h_try, k1)
                y_new, a_new = y, a
                for j, w in self.b_terms:
                    y_new = y_new + (w * hc) * ky[j]
                    a_new = a_new + (w * hc) * ka[j]
            else:
                y_new, a_new, ys_, as_, ss_ = self._implicit_step(s, y, a, h_try, active)
            steps = steps + active
            if cfg.adaptive:
                en = self._error_norm(y, a, y_new, a_new, ky, ka, hc, ys_, as_, ss_, h_try, g_acc, per_sample)
                accept = active & (en <= 1.0)
            else:
                accept = active
            if self.params:
                inc = self._theta_increment(ys_, as_, ss_, h_try * accept, per_sample)
                g_acc = [acc + i for acc, i in zip(g_acc, inc)]
            acc_col = accept.unsqueeze(-1)
            y = torch.where(acc_col, y_new, y)
            a = torch.where(acc_col, a_new, a)
            s = torch.where(accept, torch.where(lands, s_end, s + h_try), s)
            if fsal:  # the last stage was evaluated at the new point
                k1 = (torch.where(acc_col, ky[-1], k1[0]), torch.where(acc_col, ka[-1], k1[1]))
            if cfg.adaptive:
                en_c = en.clamp(min=1e-10)
                h_next = h_try * cfg.controller.factor(en_c, err1, err1, accept, k_err)
                h_next = torch.where(accept & lands, torch.maximum(h_next, h), h_next)
                err1 = torch.where(accept, en_c, err1)
                stuck = active & ~accept & (h_next < 16 * eps * s.abs().clamp(min=1.0))
                if bool(stuck.any()) or bool((steps > cfg.max_steps).any()):
                    raise CapabilityError(
                        "the adjoint's backward solve could not meet its tolerance (step-size underflow "
                        "or max_steps); loosen AdjointOptions(rtol=..., atol=...) or use seminorm=True"
                    )
                h = torch.where(active, h_next, h)
            # Samples that reached an observation: jump the adjoint, restart y from the forward value.
            arrived = accept & (s >= s_end)
            if bool(arrived.any()):
                k = k - arrived.long()
                kc = k.clamp(min=0)
                y = torch.where(arrived.unsqueeze(-1), ys[rows, kc], y)
                a = torch.where(arrived.unsqueeze(-1), a + gy[rows, kc], a)
                active = k > 0
                new_end = interval_end(k)
                if not cfg.adaptive:
                    h = torch.where(arrived, fixed_step((new_end - s).clamp(min=0)), h)
                s_end = torch.where(arrived, new_end, s_end)
                if explicit:
                    k1 = self._aug(s, y, a)
            elif explicit and not fsal:
                k1 = self._aug(s, y, a)
        with torch.no_grad():
            # ∂L/∂t_0 = −a(t_0⁺)ᵀ f(t_0, y_0), with the adjoint *before* the jump by ∂L/∂y(t_0): the
            # output at t_0 is y_0 itself and does not move with t_0.
            g_times[:, 0] = -((a - gy[:, 0]) * self.field(ts[:, 0], ys[:, 0])).sum(-1)
        cfg.backward_stats = {"steps": steps}
        g_params = [acc.sum(0) for acc in g_acc] if per_sample else g_acc
        return a, g_params, g_times

    def _error_norm(self, y, a, y_new, a_new, ky, ka, hc, ys_, as_, ss_, h_try, g_acc, per_sample):
        """RMS over (y, a) — and each sample's θ-accumulator unless ``seminorm`` — of err/scale."""
        cfg = self.cfg
        ey, ea = torch.zeros_like(y), torch.zeros_like(a)
        for j, w in self.rk.e_terms:
            ey = ey + (w * hc) * ky[j]
            ea = ea + (w * hc) * ka[j]
        sy = cfg.atol + cfg.rtol * torch.maximum(y.abs(), y_new.abs())
        sa = cfg.atol + cfg.rtol * torch.maximum(a.abs(), a_new.abs())
        sq = (ey / sy).pow(2).sum(-1) + (ea / sa).pow(2).sum(-1)
        count = 2 * y.shape[-1]
        if per_sample:
            b = y.shape[0]
            for e_p, acc_p in zip(self._theta_error(ys_, as_, ss_, h_try), g_acc):
                e_flat = e_p.reshape(b, -1)
                scale = cfg.atol + cfg.rtol * acc_p.reshape(b, -1).abs()
                sq = sq + (e_flat / scale).pow(2).sum(-1)
                count += e_flat.shape[-1]
        en = (sq / count).sqrt()
        return torch.where(torch.isfinite(en), en, torch.full_like(en, float("inf")))

    def _theta_error(self, ys_, as_, ss_, h):
        """Per-sample error estimate of the parameter accumulator (full-norm mode)."""
        idx = [i for i, _ in _terms(self.rk.tableau.error_weights)]
        coef = [w for _, w in _terms(self.rk.tableau.error_weights)]
        yst = torch.stack([ys_[i] for i in idx])
        cot = torch.stack([as_[i] * (w * h).unsqueeze(-1) for i, w in zip(idx, coef)])
        sst = torch.stack([ss_[i] for i in idx])
        return self._param_vjp(yst, cot, sst, per_sample=True)


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
