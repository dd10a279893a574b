"""The training loop every learner uses: progress, metrics, checkpoints, resume, divergence, Ctrl-C.

The learner supplies ``loss_fn(step) -> dict`` returning at least ``"loss"`` (a scalar tensor
with a graph); the trainer does ``zero_grad → backward → (clip) → optimizer.step → scheduler.step``.
All randomness a step uses must come from the global RNGs or from generators registered in
``extra_state`` (objects with ``state_dict``/``load_state_dict``), which checkpoints capture: a
resumed CPU run then reproduces the uninterrupted one bit for bit.

* **Checkpoints** every ``checkpoint_every`` steps, at the end, and when Ctrl-C is pressed or
  SIGTERM arrives (what batch schedulers send before killing a job): the signal is deferred to the
  end of the current step, so parameters are never half-updated; a second signal aborts at once
  and the last good checkpoint stays intact.
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

from .checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .checkpoint import one_line as _one_line
from .progress import progress_bar
from .runs import RunDirectory


class TrainingDiverged(SymflowError, RuntimeError):
    """The loss became NaN/inf; the message names the step and the last good checkpoint."""


class TrainingInterrupted(SymflowError, RuntimeError):
    """Ctrl-C (or SIGTERM) during training; a checkpoint of the last completed step was written.

    ``signum`` is the signal that stopped the run (the CLI exits with ``128 + signum``)."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)


# Signals that stop training cleanly at the end of the current step.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
        self._stop_requested: int | None = None

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
        state = ckpt.state
        needed = ["model", "optimizer", "rng"] + (["extra"] if self.extra_state else [])
        missing = [k for k in needed if k not in state]
        missing += [f"extra.{k}" for k in self.extra_state if k not in state.get("extra", {})]
        if missing:
            raise CheckpointError(
                f"{ckpt.path}: the checkpoint lacks {', '.join(repr(k) for k in missing)}; "
                "it was not written by this kind of run"
            )
        parts = [("model", self.model, state["model"]), ("optimizer", self.optimizer, state["optimizer"])]
        if self.scheduler is not None and "scheduler" in state:
            parts.append(("scheduler", self.scheduler, state["scheduler"]))
        parts += [(f"extra.{k}", v, state["extra"][k]) for k, v in self.extra_state.items()]
        for name, target, saved in parts:
            try:
                target.load_state_dict(saved)
            except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as err:
                raise CheckpointError(
                    f"{ckpt.path}: the saved {name} state does not fit this run's {name} ({_one_line(err)}); "
                    "resume with the options the run was started with"
                ) from err
        try:
            set_rng_state(state["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise CheckpointError(f"{ckpt.path}: unusable RNG state ({_one_line(err)})") from err
        self.step = ckpt.step
        self.last_checkpoint_step = ckpt.step
        self.run.truncate_metrics(ckpt.step)
        return ckpt.step

    # -- loop ----------------------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        if self._stop_requested is not None:  # a second signal: abort now
            raise KeyboardInterrupt
        self._stop_requested = signum

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
        self._stop_requested = None
        previous = (
            {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS} if in_main_thread else {}
        )
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
                if self._stop_requested is not None:
                    self.save()
                    name = signal.Signals(self._stop_requested).name
                    raise TrainingInterrupted(
                        f"interrupted ({name}) at step {self.step}; checkpoint saved in "
                        f"{self.run.checkpoints} (resume with --resume)",
                        self._stop_requested,
                    )
            self.save()
        finally:
            bar.close()
            for sig, handler in previous.items():
                if handler is not None:  # None: a handler installed outside Python, not restorable
                    signal.signal(sig, handler)
        return last


def _scalar(v: Any) -> bool:
    if isinstance(v, (int, float)):
        return True
    return isinstance(v, torch.Tensor) and v.numel() == 1
