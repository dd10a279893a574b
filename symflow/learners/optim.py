"""Adam, then L-BFGS: the two-phase optimiser the learners train with.

PINN-type residual losses are smooth in the weights and the networks are small (~10³ weights), so
after a first-order phase on fresh collocation points, a quasi-Newton phase (L-BFGS with a strong
Wolfe line search; Nocedal & Wright, *Numerical Optimization*, 2nd ed. (2006), §7.2) lowers the
residual by orders of magnitude in a few hundred iterations — the usual recipe since Raissi,
Perdikaris & Karniadakis (2019). Measured on the harmonic oscillator: Adam alone stalls near a
mean squared residual of 1e-5 to 1e-4 in the time L-BFGS reaches 1e-7.

:class:`AdamThenLBFGS` is one ``torch.optim.Optimizer`` so that the shared
:class:`~symflow.training.Trainer` (one ``step()`` per training step, checkpointed
``state_dict``) drives both phases. In the L-BFGS phase the loss function registers a closure
(:meth:`set_closure`) evaluating the loss on that step's collocation set; each ``step()`` then runs
up to ``lbfgs_iterations`` L-BFGS iterations. The gradient the trainer has just computed is reused
as the first closure evaluation, so no evaluation is wasted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from symflow.integrators.errors import InvalidArgumentError

Tensor = torch.Tensor


SCHEDULES = ("cosine", "onecycle", "constant")


class AdamThenLBFGS(torch.optim.Optimizer):
    """``adam_steps`` Adam steps with a learning-rate schedule, then L-BFGS.

    Schedules of the Adam phase (step ``k`` of ``K``, ``c(x) = (1 + cos πx)/2`` falling from 1 to 0):

    * ``"cosine"``: ``lr → lr_final`` along ``c`` in log space, ``log lr_k = log lr_final +
      c(k/(K−1)) (log lr − log lr_final)``;
    * ``"onecycle"`` (Smith & Topin, "Super-convergence", arXiv:1708.07120, 2017; the schedule of the
      published SympFlow code): rises from ``lr_final`` to the peak ``lr`` over the first ``warmup``
      fraction of the steps and anneals back to ``lr_final``, both halves along ``c`` (linear space);
    * ``"constant"``: ``lr`` throughout.

    Args:
        params: the model's parameters.
        adam_steps: length of the Adam phase (``0``: L-BFGS from the start).
        lr, lr_final: see the schedules.
        schedule, warmup: see the schedules.
        grad_clip: clip the gradient norm of every Adam step to this (``None``: no clipping). The
            L-BFGS phase is never clipped: its line search needs the true gradient.
        lbfgs_iterations: L-BFGS iterations per training step (function evaluations may be a few more
            because of the line search).
        history: L-BFGS memory.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        *,
        adam_steps: int,
        lr: float = 1e-2,
        lr_final: float = 1e-4,
        schedule: str = "cosine",
        warmup: float = 0.3,
        grad_clip: float | None = None,
        lbfgs_iterations: int = 20,
        history: int = 50,
    ) -> None:
        params = list(params)
        for name, value in (("lr", lr), ("lr_final", lr_final)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InvalidArgumentError(name, value, "a positive learning rate")
        if isinstance(adam_steps, bool) or not isinstance(adam_steps, int) or adam_steps < 0:
            raise InvalidArgumentError("adam_steps", adam_steps, "a non-negative integer")
        if schedule not in SCHEDULES:
            raise InvalidArgumentError("schedule", schedule, f"one of {', '.join(SCHEDULES)}")
        if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or not 0 <= warmup < 1:
            raise InvalidArgumentError("warmup", warmup, "a fraction in [0, 1)")
        if grad_clip is not None and (
            isinstance(grad_clip, bool) or not isinstance(grad_clip, (int, float)) or not grad_clip > 0
        ):
            raise InvalidArgumentError("grad_clip", grad_clip, "a positive gradient norm, or None")
        super().__init__(params, {"lr": float(lr)})
        self.adam_steps = adam_steps
        self.lr_start = float(lr)
        self.lr_final = float(lr_final)
        self.schedule = schedule
        self.warmup = float(warmup)
        self.grad_clip = None if grad_clip is None else float(grad_clip)
        self.adam = torch.optim.Adam(params, lr=float(lr))
        self.lbfgs = torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=int(lbfgs_iterations),
            history_size=int(history),
            line_search_fn="strong_wolfe",
            tolerance_grad=0.0,  # never stop early: the step budget decides
            tolerance_change=0.0,
        )
        self.steps_taken = 0
        self._closure: Callable[[], Tensor] | None = None
        self._pending: Tensor | None = None

    @property
    def phase(self) -> str:
        """``"adam"`` or ``"lbfgs"``: what the next ``step()`` does."""
        return "adam" if self.steps_taken < self.adam_steps else "lbfgs"

    def learning_rate(self, step: int) -> float:
        """Adam's learning rate at ``step`` (0-based) under the schedule."""
        if self.schedule == "constant" or self.adam_steps <= 1:
            return self.lr_start
        last = self.adam_steps - 1
        k = min(step, last)
        if self.schedule == "cosine":
            c = _falling(k / last)
            return math.exp(math.log(self.lr_final) + c * (math.log(self.lr_start) - math.log(self.lr_final)))
        peak = round(self.warmup * last)  # onecycle
        if k < peak:
            return self.lr_start + _falling(k / peak) * (self.lr_final - self.lr_start)
        frac = (k - peak) / (last - peak) if last > peak else 1.0
        return self.lr_final + _falling(frac) * (self.lr_start - self.lr_final)

    def set_closure(self, closure: Callable[[], Tensor], loss: Tensor) -> None:
        """Register the L-BFGS phase's loss closure; ``loss`` is the value the trainer back-propagates."""
        self._closure = closure
        self._pending = loss

    def _lbfgs_closure(self) -> Tensor:
        if self._pending is not None:  # gradients of this value are already in .grad (trainer's backward)
            loss, self._pending = self._pending, None
            return loss.detach()
        self.zero_grad(set_to_none=False)
        with torch.enable_grad():
            loss = self._closure()
            loss.backward()
        return loss.detach()

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        if self.phase == "adam":
            lr = self.learning_rate(self.steps_taken)
            for group in self.adam.param_groups:
                group["lr"] = lr
            for group in self.param_groups:
                group["lr"] = lr
            if self.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.adam.param_groups[0]["params"], self.grad_clip)
            self.adam.step()
            out = None
        else:
            if self._closure is None:
                raise RuntimeError("AdamThenLBFGS: the L-BFGS phase needs set_closure() before step()")
            for group in self.param_groups:
                group["lr"] = 1.0
            out = self.lbfgs.step(self._lbfgs_closure)
            self._pending = None
        self.steps_taken += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "adam": self.adam.state_dict(),
            "lbfgs": self.lbfgs.state_dict(),
            "steps_taken": self.steps_taken,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.adam.load_state_dict(state_dict["adam"])
        self.lbfgs.load_state_dict(state_dict["lbfgs"])
        self.steps_taken = int(state_dict["steps_taken"])
        lr = self.learning_rate(self.steps_taken) if self.phase == "adam" else 1.0
        for group in self.param_groups:
            group["lr"] = lr


def _falling(x: float) -> float:
    """``(1 + cos πx)/2``: 1 at ``x = 0``, 0 at ``x = 1``."""
    return 0.5 * (1.0 + math.cos(math.pi * x))
