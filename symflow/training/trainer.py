"""The training loop every learner uses: progress, metrics, checkpoints, resume, divergence, Ctrl-C.

The learner supplies ``loss_fn(step) -> dict`` returning at least ``"loss"`` (a scalar tensor
with a graph); the trainer does ``zero_grad → backward → (clip) → optimizer.step → scheduler.step``.
All randomness a step uses must come from the global RNGs or from generators registered in
``extra_state`` (objects with ``state_dict``/``load_state_dict``), which checkpoints capture: a
resumed CPU run then reproduces the uninterrupted one bit for bit.

* **Checkpoints** every ``checkpoint_every`` steps, at the end, and when Ctrl-C is pressed (the
  signal is deferred to the end of the current step, so parameters are never half-updated; a
  second Ctrl-C aborts at once and the last good checkpoint stays intact).
* **Divergence**: a non-finite loss stops training with :class:`TrainingDiverged`, naming the
  step and the last good checkpoint, which is left untouched.
* **Distributed** (DDP): every rank runs the loop; only ``is_main`` writes logs and checkpoints.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

from symflow.integrators.errors import SymflowError

from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .progress import progress_bar
from .runs import RunDirectory


class TrainingDiverged(SymflowError, RuntimeError):
    """The loss became NaN/inf; the message names the step and the last good checkpoint."""


class TrainingInterrupted(SymflowError, RuntimeError):
    """Ctrl-C during training; a checkpoint of the last completed step was written."""


LossFn = Callable[[int], dict[str, Any]]


class Trainer:
    """The training loop shared by every learner: steps, gradient clipping, schedule, progress bar, metrics
    log, atomic checkpoints every N steps and on Ctrl-C, NaN stop with the last good checkpoint, bit-for-
    bit resume.
    """

    def __init__(
        self,
        run: RunDirectory,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        steps: int,
        config: dict[str, Any],
        scheduler: Any = None,
        extra_state: dict[str, Any] | None = None,
        checkpoint_every: int = 500,
        log_every: int = 10,
        grad_clip: float | None = None,
        progress: bool = True,
        description: str = "train",
        is_main: bool = True,
    ) -> None:
        self.run = run
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.extra_state = extra_state or {}
        self.steps = int(steps)
        self.config = config
        self.checkpoint_every = max(1, int(checkpoint_every))
        self.log_every = max(1, int(log_every))
        self.grad_clip = grad_clip
        self.progress = progress and is_main
        self.description = description
        self.is_main = is_main
        self.step = 0
        self.last_checkpoint_step: int | None = None
        self._stop_requested = False

    # -- state -------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        st = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_state(),
            "extra": {k: v.state_dict() for k, v in self.extra_state.items()},
        }
        if self.scheduler is not None:
            st["scheduler"] = self.scheduler.state_dict()
        return st

    def save(self) -> None:
        if self.is_main:
            save_checkpoint(self.run.checkpoints, self.state(), step=self.step, config=self.config)
        self.last_checkpoint_step = self.step

    def restore(self, map_location: str | torch.device = "cpu") -> int:
        """Load the run's checkpoint into model/optimizer/scheduler/extra state and RNGs; returns the step."""
        ckpt = load_checkpoint(self.run.checkpoints, map_location=map_location)
        self.model.load_state_dict(ckpt.state["model"])
        self.optimizer.load_state_dict(ckpt.state["optimizer"])
        if self.scheduler is not None and "scheduler" in ckpt.state:
            self.scheduler.load_state_dict(ckpt.state["scheduler"])
        for k, v in self.extra_state.items():
            v.load_state_dict(ckpt.state["extra"][k])
        set_rng_state(ckpt.state["rng"])
        self.step = ckpt.step
        self.last_checkpoint_step = ckpt.step
        self.run.truncate_metrics(ckpt.step)
        return ckpt.step

    # -- loop ----------------------------------------------------------------------------------------
    def _on_sigint(self, signum, frame) -> None:
        if self._stop_requested:  # second Ctrl-C: abort now
            raise KeyboardInterrupt
        self._stop_requested = True

    def fit(
        self,
        loss_fn: LossFn,
        *,
        validate: Callable[[], dict[str, Any]] | None = None,
        validate_every: int | None = None,
        stop_at: int | None = None,
    ) -> dict[str, Any]:
        """Run from the current step to ``steps`` (or to ``stop_at``, checkpointing there: a long run
        split into several invocations, e.g. under a job time limit); returns the last logged metrics."""
        end = self.steps if stop_at is None else min(self.steps, int(stop_at))
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self._on_sigint) if in_main_thread else None
        last: dict[str, Any] = {}
        bar = progress_bar(total=self.steps, initial=self.step, desc=self.description, enabled=self.progress)
        started = time.perf_counter()
        try:
            while self.step < end:
                out = loss_fn(self.step)
                loss = out["loss"]
                value = float(loss.detach())
                if not math.isfinite(value):
                    good = self.last_checkpoint_step
                    where = (
                        f"the last good checkpoint (step {good}) is in {self.run.checkpoints}"
                        if good is not None
                        else "no checkpoint was written yet"
                    )
                    raise TrainingDiverged(
                        f"loss became {value} at step {self.step}; {where}. Lower the learning rate, "
                        "clip gradients (grad_clip) or check the data for NaN"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
                self.optimizer.step()
                if self.scheduler is not None:
                    self.scheduler.step()
                self.step += 1
                bar.update(1)
                record = {"step": self.step, "loss": value, "lr": self.optimizer.param_groups[0]["lr"]}
                record.update({k: float(v) for k, v in out.items() if k != "loss" and _scalar(v)})
                if (
                    validate is not None
                    and validate_every
                    and (self.step % validate_every == 0 or self.step == self.steps)
                ):
                    with torch.no_grad():
                        record.update({f"val_{k}": float(v) for k, v in validate().items()})
                if self.step % self.log_every == 0 or self.step == self.steps or "val_loss" in record:
                    record["elapsed_s"] = time.perf_counter() - started
                    self.run.log(record)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k in ("loss", "val_loss")})
                last = record
                if self.step % self.checkpoint_every == 0 and self.step < self.steps:
                    self.save()
                if self._stop_requested:
                    self.save()
                    raise TrainingInterrupted(
                        f"interrupted at step {self.step}; checkpoint saved in {self.run.checkpoints} "
                        "(resume with --resume)"
                    )
            self.save()
        finally:
            bar.close()
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        return last


def _scalar(v: Any) -> bool:
    if isinstance(v, (int, float)):
        return True
    return isinstance(v, torch.Tensor) and v.numel() == 1
