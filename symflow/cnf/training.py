"""Training CNF fields by maximum likelihood or by flow matching, on ``symflow.training.Trainer``.

Both objectives draw minibatches from a data tensor with a private ``torch.Generator`` that the
checkpoints capture (``GeneratorState``), so an interrupted run resumes bit for bit on the CPU.

* :func:`train_cnf` — maximum likelihood: ``loss = −mean log p(x) + λ_K ∫‖f‖² + λ_J ∫‖∂f/∂y‖_F²``
  (Finlay et al. 2020 regularisers, optional), with the CNF's trace estimator (a fresh Hutchinson
  probe per solve), solver and gradient mode (backprop or continuous adjoint).
* :func:`train_flow_matching` — conditional optimal-transport flow matching (Lipman et al. 2023):
  a regression with no ODE solve; the CNF then samples and evaluates likelihoods as usual.

:func:`evaluate_nll` reports the held-out negative log-likelihood with its standard error, in nats.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from symflow.integrators import InvalidArgumentError
from symflow.integrators.inputs import positive_float, positive_int
from symflow.integrators.reprs import compact_repr
from symflow.training import GeneratorState, RunDirectory, Trainer

from .flow_matching import flow_matching_loss
from .model import CNF, eval_mode

Tensor = torch.Tensor

OBJECTIVES = ("mle", "flow_matching")


@dataclass
class FitResult:
    """What a training run produced.

    Attributes:
        cnf: the trained flow (its field holds the trained parameters).
        metrics: the last logged metrics (``loss``, ``val_nll``, ...).
        steps: optimiser steps done in total (including resumed ones).
        seconds: wall time of this call's training loop.
        run: the run directory (``None`` when training used a temporary one).
    """

    cnf: CNF
    metrics: dict[str, Any]
    steps: int
    seconds: float
    run: Path | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def __repr__(self) -> str:
        return compact_repr(
            self,
            fields=("cnf", "metrics", "steps", "seconds", "run"),
            history=f"<{len(self.history)} records>",
        )


@torch.no_grad()
def evaluate_nll(
    cnf: CNF,
    x: Tensor,
    *,
    batch_size: int = 1024,
    trace: str = "exact",
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """Mean negative log-likelihood of ``x`` under ``cnf`` and its standard error (nats), evaluated
    in eval mode (see :func:`~symflow.cnf.model.eval_mode`)."""
    cnf._check_x(x)
    batch_size = positive_int("batch_size", batch_size)
    x = x.to(dtype=cnf.loc.dtype, device=cnf.loc.device)
    with eval_mode(cnf):  # per-sample steps: the value does not depend on batch_size
        values = torch.cat(
            [
                cnf.log_prob(chunk, trace=trace, generator=generator, adjoint=False)
                for chunk in x.split(batch_size)
            ]
        )
    n = values.numel()
    stderr = float(values.std() / math.sqrt(n)) if n > 1 else float("nan")
    return float(-values.mean()), stderr


def normalisation(data: Tensor) -> tuple[Tensor, Tensor]:
    """Per-dimension mean and standard deviation of a ``(N, D)`` data set (for ``CNF(loc=, scale=)``)."""
    if not isinstance(data, Tensor) or data.dim() != 2 or data.shape[0] < 2:
        raise InvalidArgumentError("data", data, "a (N, D) tensor with N >= 2")
    return data.mean(0), data.std(0).clamp_min(1e-12)


def _check_data(name: str, data: Tensor, dim: int) -> None:
    if not isinstance(data, Tensor) or data.dim() != 2 or data.shape[-1] != dim:
        raise InvalidArgumentError(name, data, f"a (N, {dim}) tensor of data points")
    if not bool(torch.isfinite(data).all()):
        row = int((~torch.isfinite(data)).any(-1).nonzero()[0, 0])
        raise InvalidArgumentError(name, f"non-finite values in row {row}", "finite data")


def _fit(
    cnf: CNF,
    train: Tensor,
    loss_of_batch,
    *,
    objective: str,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    validation: Tensor | None,
    validate_every: int | None,
    validation_size: int,
    run: str | Path | RunDirectory | None,
    resume: bool,
    overwrite: bool,
    checkpoint_every: int,
    log_every: int,
    grad_clip: float | None,
    cosine: bool,
    progress: bool,
    config: dict[str, Any],
) -> FitResult:
    _check_data("train", train, cnf.dim)
    if validation is not None:
        _check_data("validation", validation, cnf.dim)
    steps = positive_int("steps", steps)
    batch_size = positive_int("batch_size", batch_size)
    lr = positive_float("lr", lr)
    dtype, device = cnf.loc.dtype, cnf.loc.device
    train = train.to(dtype=dtype, device=device)
    cnf.train()  # norm="auto" shares the batch's steps while training (a loaded flow comes in eval mode)
    val = None
    if validation is not None:
        val = validation[:validation_size].to(dtype=dtype, device=device)

    tmp = None
    if run is None and resume:
        raise InvalidArgumentError("resume", resume, "a run directory to resume (run=...)")
    if run is None:
        tmp = tempfile.TemporaryDirectory(prefix="symflow-cnf-")
        run_dir = RunDirectory(tmp.name)
    elif isinstance(run, RunDirectory):
        run_dir = run
    else:
        run_dir = RunDirectory(run, resume=resume, overwrite=overwrite)
    full_config = {
        "objective": objective,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "cosine": cosine,
        "grad_clip": grad_clip,
        "cnf": cnf.config(),
        **config,
    }
    if tmp is None:
        run_dir.write_json("config.json", full_config)

    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    optimizer = torch.optim.Adam(cnf.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps) if cosine else None
    trainer = Trainer(
        run_dir,
        cnf,
        optimizer,
        steps=steps,
        config=full_config,
        scheduler=scheduler,
        extra_state={"generator": GeneratorState(gen)},
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        grad_clip=grad_clip,
        progress=progress,
        description=f"cnf ({objective})",
    )
    if resume and tmp is None:
        trainer.restore()
    n = train.shape[0]

    def loss_fn(step: int) -> dict[str, Any]:
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen, device=device)
        return loss_of_batch(train[idx], gen)

    def validate() -> dict[str, Any]:
        nll, _ = evaluate_nll(cnf, val)
        return {"nll": nll}

    started = time.perf_counter()
    try:
        last = trainer.fit(
            loss_fn,
            validate=validate if val is not None and validate_every else None,
            validate_every=validate_every,
        )
        history = run_dir.metrics()
    finally:
        if tmp is not None:
            tmp.cleanup()
    return FitResult(
        cnf=cnf,
        metrics=last,
        steps=trainer.step,
        seconds=time.perf_counter() - started,
        run=None if tmp is not None else run_dir.path,
        history=history,
    )


def train_cnf(
    cnf: CNF,
    train: Tensor,
    *,
    steps: int = 1000,
    batch_size: int = 256,
    lr: float = 1e-3,
    kinetic: float = 0.0,
    jacobian: float = 0.0,
    seed: int = 0,
    validation: Tensor | None = None,
    validate_every: int | None = None,
    validation_size: int = 2048,
    run: str | Path | RunDirectory | None = None,
    resume: bool = False,
    overwrite: bool = False,
    checkpoint_every: int = 250,
    log_every: int = 10,
    grad_clip: float | None = None,
    cosine: bool = True,
    progress: bool = True,
    extra_config: dict[str, Any] | None = None,
) -> FitResult:
    """Maximum-likelihood training of ``cnf`` on ``train (N, D)``.

    Each step integrates a minibatch back to the base with the CNF's solver, trace estimator (one
    Hutchinson probe per sample and solve, from the run's generator) and gradient mode, and
    minimises ``−mean log p + kinetic·mean ∫‖f‖² + jacobian·mean ∫‖∂f/∂y‖_F²``. ``validation``
    data give ``val_nll`` (exact trace) every ``validate_every`` steps. ``run`` is a run directory
    (config, metrics, checkpoints; ``resume=True`` continues it) or ``None`` for a temporary one;
    ``extra_config`` is stored with the run's configuration.
    """
    kinetic = positive_float("kinetic", kinetic, allow_zero=True)
    jacobian = positive_float("jacobian", jacobian, allow_zero=True)

    def loss_of_batch(x: Tensor, gen: torch.Generator) -> dict[str, Any]:
        terms = cnf.density_terms(x, kinetic=kinetic > 0, jacobian=jacobian > 0, generator=gen)
        nll = -terms.log_prob.mean()
        loss = nll
        out: dict[str, Any] = {"nll": nll.detach(), "nfev": terms.nfev.float().mean()}
        if terms.kinetic is not None:
            loss = loss + kinetic * terms.kinetic.mean()
            out["kinetic"] = terms.kinetic.mean().detach()
        if terms.jacobian is not None:
            loss = loss + jacobian * terms.jacobian.mean()
            out["jacobian"] = terms.jacobian.mean().detach()
        out["loss"] = loss
        return out

    return _fit(
        cnf,
        train,
        loss_of_batch,
        objective="mle",
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        validation=validation,
        validate_every=validate_every,
        validation_size=validation_size,
        run=run,
        resume=resume,
        overwrite=overwrite,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        grad_clip=grad_clip,
        cosine=cosine,
        progress=progress,
        config={"kinetic": kinetic, "jacobian": jacobian, **(extra_config or {})},
    )


def train_flow_matching(
    cnf: CNF,
    train: Tensor,
    *,
    steps: int = 5000,
    batch_size: int = 256,
    lr: float = 1e-3,
    sigma_min: float = 1e-4,
    seed: int = 0,
    validation: Tensor | None = None,
    validate_every: int | None = None,
    validation_size: int = 2048,
    run: str | Path | RunDirectory | None = None,
    resume: bool = False,
    overwrite: bool = False,
    checkpoint_every: int = 1000,
    log_every: int = 50,
    grad_clip: float | None = None,
    cosine: bool = True,
    progress: bool = True,
    extra_config: dict[str, Any] | None = None,
) -> FitResult:
    """Conditional OT flow-matching training of ``cnf.field`` on ``train (N, D)`` (no ODE solves).

    The regression runs on the CNF's normalised coordinates ``(x − loc)/scale`` and on the time
    interval ``[0, 1]``, so the CNF must have ``t1 = 1``. ``val_nll`` (when asked) is the CNF's exact
    likelihood on ``validation``. Other options as in :func:`train_cnf`.
    """
    if cnf.t1 != 1.0:
        raise InvalidArgumentError("cnf.t1", cnf.t1, "1.0 (flow-matching paths run over t ∈ [0, 1])")
    sigma_min = positive_float("sigma_min", sigma_min, allow_zero=True)

    def loss_of_batch(x: Tensor, gen: torch.Generator) -> dict[str, Any]:
        y = (x - cnf.loc) / cnf.scale
        return {"loss": flow_matching_loss(cnf.field, y, sigma_min=sigma_min, generator=gen)}

    return _fit(
        cnf,
        train,
        loss_of_batch,
        objective="flow_matching",
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        validation=validation,
        validate_every=validate_every,
        validation_size=validation_size,
        run=run,
        resume=resume,
        overwrite=overwrite,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        grad_clip=grad_clip,
        cosine=cosine,
        progress=progress,
        config={"sigma_min": sigma_min, **(extra_config or {})},
    )
