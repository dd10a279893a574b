"""Implicit Runge–Kutta steps (implicit midpoint, Gauss–Legendre) solved per sample by Newton.

For a tableau ``(A, b, c)`` with ``s`` stages the stage increments ``Zᵢ = Yᵢ − y`` solve

    G(Z) = Z − h (A ⊗ I) F(Z) = 0,   Fᵢ(Z) = f(t + cᵢh, y + Zᵢ).

Simplified Newton (Hairer & Wanner, *Solving ODEs II*, §IV.8) uses one Jacobian ``J = ∂f/∂y(t, y)``
per step and sample: ``(I − h A ⊗ J) ΔZ = −G(Z)``. The ``(B, sD, sD)`` matrices are per-sample blocks
(from ``vmap(jacfwd(f))``), LU-factorised once per step — never one dense matrix over the batch.
Samples converge, stall or diverge independently (masks); samples where Newton fails fall back to
fixed-point iteration ``Z ← h(A ⊗ I)F(Z)``, and those that still fail are reported
``not_converged``. As in Hairer & Wanner's codes the factorised matrix is reused across steps while
the iteration converges quickly (same ``h``, at most 5 iterations); a step that fails with a reused
matrix is redone with a fresh Jacobian. These choices are made per sample (a sample's matrix depends
only on its own history), so one sample that fails leaves every other sample's result and Newton
count bitwise unchanged. The converged result does not depend on the matrix, only the iteration
count does. The step is ``y₁ = y + Σⱼ dⱼ Zⱼ`` with ``dᵀ = bᵀA⁻¹``, which needs no further
evaluations of f.

Under ``torch.func`` transforms (``vmap``, ``jacrev``, …) the loop cannot branch on values: it then
runs exactly ``max_iter`` Newton iterations with the same masks, and no fallback.

Convergence: a sample is done when ``‖ΔZ‖∞ ≤ tol`` (default ``10 eps (1 + ‖y‖∞)``, i.e. to
round-off, which is what energy conservation over 10⁵ steps needs), or when the iteration stalls
at round-off level (``‖ΔZₖ‖ ≥ ‖ΔZₖ₋₁‖`` with ``‖ΔZₖ‖ ≤ 10³ tol``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.func import jacfwd, vmap

from .fields import Field
from .fixed import _functorch_active
from .tableau import ButcherTableau

Tensor = torch.Tensor


@dataclass
class NewtonInfo:
    iterations: Tensor  # (B,) int64
    converged: Tensor  # (B,) bool
    stages: Tensor | None = None  # (B, s, D) stage values Yᵢ = y + Zᵢ (detached), for quadratures


class ImplicitRK:
    def __init__(
        self,
        tableau: ButcherTableau,
        f: Field,
        *,
        tol: float | None = None,
        max_iter: int = 12,
        fixed_point_iter: int = 60,
        reuse_jacobian: bool = True,
    ) -> None:
        self.tableau = tableau
        self.f = f
        self.s = tableau.stages
        self.tol = tol
        self.max_iter = max_iter
        self.fixed_point_iter = fixed_point_iter
        self.d = tableau.B @ np.linalg.inv(tableau.A)
        self.evals_per_step = 0  # counted through NewtonInfo.iterations (s evaluations each)
        self._consts: dict[tuple, tuple[Tensor, Tensor, Tensor]] = {}
        self.reuse_jacobian = reuse_jacobian
        # (batch, h key, lu, pivots, singular, stale) of the last factorisation; stale (B,) marks the
        # samples whose matrix must be refreshed before it is used again.
        self._cached: tuple | None = None
        # Host-side knowledge from the last step's one sync: whether any cached matrix is stale, and how
        # many Newton iterations the slowest sample needed (this step runs that many before looking).
        self._stale_any = True
        self._iter_hint = 2

    def _constants(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        key = (like.dtype, like.device)
        if key not in self._consts:
            self._consts[key] = (
                torch.tensor(self.tableau.A, dtype=like.dtype, device=like.device),
                torch.tensor(self.tableau.C, dtype=like.dtype, device=like.device),
                torch.tensor(self.d, dtype=like.dtype, device=like.device),
            )
        return self._consts[key]

    def _stage_fields(self, t: Tensor, y: Tensor, z: Tensor, h: Tensor, c: Tensor) -> Tensor:
        b, s, d = z.shape
        ts = (t.unsqueeze(-1) + c * h.unsqueeze(-1)).reshape(b * s)
        return self.f(ts, (y.unsqueeze(1) + z).reshape(b * s, d)).reshape(b, s, d)

    def _blocks(self, jac: Tensor, h: Tensor, a: Tensor, per_stage: bool) -> Tensor:
        """``I − h (aᵢⱼ Jⱼ)`` as ``(B, sD, sD)``; ``jac`` is ``(B, D, D)`` or per stage ``(B, s, D, D)``."""
        b, d = jac.shape[0], jac.shape[-1]
        s = self.s
        if per_stage:
            kron = a[None, :, None, :, None] * jac.permute(0, 2, 1, 3)[:, None]  # (B, s, D, s, D)
        else:
            kron = a[None, :, None, :, None] * jac[:, None, :, None, :]
        eye = torch.eye(s * d, dtype=jac.dtype, device=jac.device)
        return eye - h[:, None, None] * kron.reshape(b, s * d, s * d)

    def _jacobian(self, t: Tensor, y: Tensor) -> Tensor:
        """Per-sample ``∂f/∂y``, ``(B, D, D)``.

        Outside ``torch.func`` transforms: one reverse pass over ``D`` stacked copies of the batch,
        copy ``i`` seeded with the output direction ``eᵢ`` (row ``i`` of every sample's Jacobian at
        once); several times faster than ``vmap(jacfwd)`` for small ``D``. Inside transforms,
        ``vmap(jacfwd)`` composes with them.
        """
        if _functorch_active():
            return vmap(jacfwd(lambda yy, tt: self.f(tt, yy)))(y, t)
        b, d = y.shape
        with torch.enable_grad():
            rep = y.detach().unsqueeze(0).expand(d, b, d).reshape(d * b, d).requires_grad_(True)
            out = self.f(t.detach().repeat(d), rep).reshape(d, b, d)
            if not out.requires_grad:  # a field that ignores y: ∂f/∂y = 0
                return torch.zeros(b, d, d, dtype=y.dtype, device=y.device)
            seed = torch.eye(d, dtype=y.dtype, device=y.device).unsqueeze(1).expand(d, b, d)
            (rows,) = torch.autograd.grad(
                out, rep, grad_outputs=seed, allow_unused=True, materialize_grads=True
            )
        return rows.reshape(d, b, d).transpose(0, 1)

    def step(self, t: Tensor, y: Tensor, h: float | Tensor) -> tuple[Tensor, NewtonInfo]:
        b, d = y.shape
        s = self.s
        a, c, dw = self._constants(y)
        hb = h if isinstance(h, Tensor) else y.new_full((b,), h)
        tb = t.expand(b) if t.dim() == 0 else t
        traced = _functorch_active()  # no value-dependent branching under vmap/jacrev/grad
        # The iteration runs on detached values; derivatives (if any are wanted) come from one
        # differentiable Newton step at the solution (implicit-function theorem), see below.
        yd, hd, td = y.detach(), hb.detach(), tb.detach()
        eps = torch.finfo(y.dtype).eps
        tol = self.tol if self.tol is not None else 10 * eps * (1 + yd.abs().amax(-1))
        tol = torch.as_tensor(tol, dtype=y.dtype, device=y.device).expand(b)

        f0 = self.f(td, yd)
        timed = any(isinstance(v, Tensor) and v.requires_grad for v in (t, h))
        wants_graph = traced or (torch.is_grad_enabled() and (f0.requires_grad or y.requires_grad or timed))
        f0 = f0.detach()
        z0 = c[None, :, None] * hd[:, None, None] * f0[:, None, :]  # explicit predictor Zᵢ ≈ cᵢ h f(y)
        iters = torch.ones(b, dtype=torch.int64, device=y.device)  # f0 counts as one evaluation
        # Samples whose state is already non-finite are dead: they get no further work.
        dead = ~torch.isfinite(yd).all(-1)
        # Every decision below is made per sample (which matrix, whether to retry, whether to keep the
        # factorisation), so one sample's trouble never changes another's bits or iteration count.
        solve_fn, singular, fresh = self._newton_system(td, yd, hd, h, a, traced)
        if traced:
            z, done, failed, used = self._newton(td, yd, hd, a, c, z0, solve_fn, singular | dead, tol, True)
            retry, todo_any = None, False
        else:
            z, done, failed, used, retry, todo_any = self._newton_checked(
                td, yd, hd, a, c, z0, solve_fn, singular | dead, tol, dead, fresh
            )
        iters = iters + used
        last = used
        if not traced and retry is not None:  # failed with a reused matrix: redo with a fresh Jacobian
            solve_fn, singular, _ = self._newton_system(td, yd, hd, h, a, traced, refresh=retry)
            z2, done2, failed2, used2 = self._newton(
                td, yd, hd, a, c, z0, solve_fn, singular | ~retry, tol, traced
            )
            col = retry[:, None, None]
            z = torch.where(col, z2, z)
            done = torch.where(retry, done2, done)
            failed = torch.where(retry, failed2, failed)
            iters = iters + used2
            last = torch.where(retry, used2, used)
            stale = (last // s > 5) | ~(done | dead)
            todo_any, self._stale_any = (
                bool(v) for v in torch.stack([(~done & ~dead).any(), stale.any()]).tolist()
            )
            if self._cached is not None:
                self._cached = (*self._cached[:5], stale)

        # Fixed-point fallback for samples Newton could not handle (singular matrix, divergence).
        todo = ~done & ~dead
        if not traced and todo_any:
            z = torch.where(failed[:, None, None], z0, z)
            prev = torch.full((b,), float("inf"), dtype=y.dtype, device=y.device)
            for _ in range(self.fixed_point_iter):
                live = todo & ~done
                if not bool(live.any()):
                    break
                fz = self._stage_fields(td, yd, z, hd, c).detach()
                z_new = hd[:, None, None] * torch.matmul(a, fz)
                size = (z_new - z).abs().amax((1, 2))
                z = torch.where(live[:, None, None], z_new, z)
                iters = iters + s * live
                ok = torch.isfinite(size) & ((size <= tol) | ((size >= prev) & (size <= 1e3 * tol)))
                done = done | (live & ok)
                prev = torch.where(live, size, prev)

        z = z.detach()
        if wants_graph:
            # One full Newton step Z* = Z̄ − M⁻¹ G(Z̄; y, θ) with the exact ∂G/∂Z (per-stage Jacobians)
            # held constant: its value is Z̄ to round-off and its derivative is the implicit-function
            # derivative −M⁻¹ ∂G/∂(y, θ), exact to round-off whatever the iteration count.
            stage_y = (yd.unsqueeze(1) + z).reshape(b * s, d)
            stage_t = (td.unsqueeze(-1) + c * hd.unsqueeze(-1)).reshape(b * s)
            jac = self._jacobian(stage_t, stage_y).reshape(b, s, d, d)
            full = self._blocks(jac, hd, a, per_stage=True)
            g = z - hb[:, None, None] * torch.matmul(a, self._stage_fields(tb, y, z, hb, c))
            z = z - torch.linalg.solve(full, g.reshape(b, s * d, 1)).reshape(b, s, d)
        delta = torch.einsum("j,bjd->bd", dw, z)
        # A sample that did not converge gets a NaN step: no value that looks like data.
        delta = torch.where((done | dead).unsqueeze(-1), delta, torch.full_like(delta, float("nan")))
        return delta, NewtonInfo(iterations=iters, converged=done | dead, stages=yd.unsqueeze(1) + z.detach())

    def _newton_system(self, td, yd, hd, h, a, traced: bool, refresh: Tensor | None = None):
        """A solver for ``(I − h A ⊗ J) x = r`` per sample, and which samples got a fresh matrix.

        With a shared step the last step's factorisations are reused, except for the samples marked
        stale (slow or failed convergence last time) or in ``refresh``: those get ``J`` at the
        current point. The fresh factorisation is computed for the whole batch and selected per
        sample, so a sample's matrix depends only on its own history.
        """
        b = yd.shape[0]
        none = torch.zeros(b, dtype=torch.bool, device=yd.device)
        h_key = h if isinstance(h, float) else None
        if traced:
            # lu_factor_ex/lu_solve give NaN derivatives for some samples under vmap(jacrev(...))
            # (PyTorch 2.13); a plain solve per iteration differentiates correctly.
            matrix = self._blocks(self._jacobian(td, yd), hd, a, per_stage=False)
            return (lambda rhs: torch.linalg.solve(matrix, rhs)), none, ~none
        cached = self._cached
        usable = (
            self.reuse_jacobian
            and cached is not None
            and cached[0] == b
            and cached[1] is not None
            and h_key is not None
            and abs(h_key - cached[1]) <= 1e-6 * abs(cached[1])  # the matrix only steers convergence
        )
        if usable:
            lu, piv, singular, stale = cached[2], cached[3], cached[4], cached[5]
            fresh = stale if refresh is None else stale | refresh
            # Whether any sample needs a new matrix is known on the host without a sync: from the last
            # step's one sync (stale), or because the caller asks for a refresh of failed samples.
            any_fresh = self._stale_any or refresh is not None
        else:
            fresh = ~none
            any_fresh = True
        if any_fresh:
            new_lu, new_piv, info = torch.linalg.lu_factor_ex(
                self._blocks(self._jacobian(td, yd), hd, a, per_stage=False)
            )
            if usable:
                lu = torch.where(fresh[:, None, None], new_lu, lu)
                piv = torch.where(fresh[:, None], new_piv, piv)
                singular = torch.where(fresh, info != 0, singular)
            else:
                lu, piv, singular = new_lu, new_piv, info != 0
        stale = none if not usable else torch.where(fresh, none, cached[5])
        self._cached = (b, h_key, lu, piv, singular, stale) if self.reuse_jacobian else None
        return (lambda rhs: torch.linalg.lu_solve(lu, piv, rhs)), singular, fresh

    def _newton_checked(self, td, yd, hd, a, c, z0, solve_fn, singular, tol, dead, fresh):
        """Newton with one host sync in the common case.

        Runs as many iterations as the slowest sample needed last step without looking (samples that
        have converged are masked: extra iterations change nothing but cost time), then reads back in
        one sync whether any sample is still iterating, whether any must be retried with a fresh matrix
        or needs the fixed-point fallback, whether any cached matrix is stale, and the most iterations
        used. Only when samples are still iterating does it go on, looking after every iteration.
        Returns ``(Z, done, failed, evals, retry or None, any fallback needed)``.
        """
        s = self.s
        carry = self._newton(
            td, yd, hd, a, c, z0, solve_fn, singular, tol, False, n_iter=self._iter_hint, state=True
        )
        z, done, failed, evals, prev, k = carry
        while True:
            live = ~done & ~failed
            retry = ~done & ~dead & ~fresh
            stale = (evals // s > 5) | ~(done | dead)
            flags = torch.stack(
                [live.any(), retry.any(), (~done & ~dead).any(), stale.any(), (evals // s).max()]
            ).tolist()
            live_any, retry_any, todo_any, stale_any, most = (int(v) for v in flags)
            if not live_any or k >= self.max_iter:
                break
            carry = self._newton(
                td,
                yd,
                hd,
                a,
                c,
                z,
                solve_fn,
                singular,
                tol,
                False,
                n_iter=1,
                state=True,
                resume=(done, failed, evals, prev, k),
            )
            z, done, failed, evals, prev, k = carry
        self._iter_hint = max(1, min(self.max_iter, most))
        self._stale_any = bool(stale_any)
        if self._cached is not None:
            # Keep a sample's factorisation for its next step only while it converges fast.
            self._cached = (*self._cached[:5], stale)
        return z, done, failed, evals, (retry if retry_any else None), bool(todo_any)

    def _newton(
        self, td, yd, hd, a, c, z0, solve_fn, singular, tol, traced, *, n_iter=None, state=False, resume=None
    ):
        """Simplified Newton on ``G(Z) = 0`` with per-sample masks, without host syncs.

        Runs ``n_iter`` iterations (default ``max_iter``); samples that converged, stalled or diverged
        stop moving. Returns ``(Z, done, failed, evaluations per sample)``, and with ``state=True``
        also what ``resume`` takes to go on: ``(…, prev, iterations made)``.
        """
        b, s, d = z0.shape
        z = z0
        if resume is None:
            done = torch.zeros(b, dtype=torch.bool, device=z0.device)
            failed = singular.clone()
            evals = torch.zeros(b, dtype=torch.int64, device=z0.device)
            prev = torch.full((b,), float("inf"), dtype=z0.dtype, device=z0.device)
            k = 0
        else:
            done, failed, evals, prev, k = resume
        n = self.max_iter if n_iter is None else min(n_iter, self.max_iter - k)
        for _ in range(n):
            live = ~done & ~failed
            fz = self._stage_fields(td, yd, z, hd, c).detach()
            g = z - hd[:, None, None] * torch.matmul(a, fz)
            dz = -solve_fn(g.reshape(b, s * d, 1)).reshape(b, s, d)
            dz = torch.where(live[:, None, None], dz, torch.zeros_like(dz))
            size = dz.abs().amax((1, 2))
            z = z + dz
            evals = evals + s * live
            bad = live & (~torch.isfinite(size) | (size > 1e3 * (prev + 1e-300)) & (prev < float("inf")))
            failed = failed | bad
            conv = live & ~bad & ((size <= tol) | ((size >= prev) & (size <= 1e3 * tol)))
            done = done | conv
            prev = torch.where(live, size, prev)
        if state:
            return z, done, failed, evals, prev, k + n
        return z, done, failed, evals
