"""Training infrastructure shared by every learner: checkpoints, run directories, progress, loop.

>>> run = RunDirectory("runs/hnn", resume=args.resume)
>>> trainer = Trainer(run, model, optimizer, steps=2000, config=cfg)
>>> if args.resume: trainer.restore()
>>> trainer.fit(lambda step: {"loss": loss_of(step)})
"""

from .checkpoint import (
    Checkpoint,
    CheckpointError,
    GeneratorState,
    has_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from .progress import progress_bar
from .runs import RunDirectory, RunDirectoryError
from .trainer import Trainer, TrainingDiverged, TrainingInterrupted

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "GeneratorState",
    "RunDirectory",
    "RunDirectoryError",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "has_checkpoint",
    "load_checkpoint",
    "progress_bar",
    "rng_state",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
]
