"""Training a neural ODE on trajectory files: ``symflow train node`` and :func:`train_node`.

* **Data**: a trajectory file (symflow schema, or a plain layout by key names) read through
  :class:`symflow.data.TrajectoryDataset`; trajectories are split into train/validation sets by a
  seeded permutation (never mixing one trajectory's observations across the two); every item is a
  random sub-window of ``window`` observations.
* **Batches** come from a ``DistributedSampler`` (``num_replicas`` = world size, one shard per rank,
  also in a single process). A step's batch is a pure function of ``(seed, epoch, position)``, so a
  resumed run sees the same batches as an uninterrupted one, bit for bit.
* **Phases**: an optional secant warm start (:mod:`.warm_start`); ``steps`` Adam steps on
  :class:`TrajectoryObjective` (masked MSE after integrating random windows from their first
  observation with their own times; gradients by the continuous adjoint by default); then
  ``lbfgs_steps`` full-batch L-BFGS steps (``lbfgs_iterations`` iterations each) on
  :class:`~.pairs.PairObjective`, the one-step error of every consecutive pair of observations.
  Validation always scores the pair objective on the validation trajectories (deterministic; with
  observation noise σ its floor is about 2σ²).
* **Loop**: :class:`symflow.training.Trainer` (progress bar, JSON metrics, periodic + Ctrl-C
  checkpoints, divergence stop) with :class:`~symflow.learners.optim.AdamThenLBFGS`. Under
  ``torchrun`` both objectives are wrapped in one ``DistributedDataParallel``, every rank holds its
  shard of trajectories, and only rank 0 writes; in the L-BFGS phase the loss value is averaged over
  ranks as well as the gradient, so every rank takes the same line-search decisions.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from symflow.integrators import AdjointOptions, get_method
from symflow.integrators.errors import CapabilityError, InvalidArgumentError, SymflowError
from symflow.training import RunDirectory, RunDirectoryError, Trainer, load_checkpoint, seed_everything
from symflow.training.checkpoint import load_module_state
from symflow.training.checks import (
    FRACTION,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    check_device,
    check_ranges,
)

from . import distributed as D
from .evaluate import evaluate_discovery
from .models import MODELS, build_model
from .objective import TrajectoryObjective
from .pairs import PairObjective

Tensor = torch.Tensor


@dataclass
class NodeConfig:
    """Everything a run needs; saved as ``config.json`` and in every checkpoint."""

    data: str
    model: str = "hnn"
    width: int = 64
    depth: int = 2
    activation: str = "tanh"
    gradient: str = "autodiff"  # HNN: torch.func.grad ("autodiff") or the explicit sweep
    method: str = "dopri5"
    rtol: float = 1e-6
    atol: float = 1e-8
    dt: float | None = None
    adjoint: bool = True
    seminorm: bool = True
    steps: int = 2000
    batch_size: int = 64
    window: int = 8
    lr: float = 3e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.2
    val_every: int = 100
    seed: int = 0
    checkpoint_every: int = 200
    log_every: int = 10
    grad_clip: float | None = 1.0
    dtype: str = "float64"
    device: str = "cpu"
    t_key: str | None = None
    y_key: str | None = None
    mask_key: str | None = None
    warm_start_steps: int = 0  # secant-slope fit before the adjoint objective (warm_start.py)
    lbfgs_steps: int = 0  # full-batch L-BFGS steps on the pair objective after the Adam steps (pairs.py)
    lbfgs_iterations: int = 10  # L-BFGS iterations per step (a step is the unit of logs and checkpoints)
    collocation_gap: float | None = None  # pairs: Hermite–Simpson up to this gap (None: 0.8 / data rate)
    shot_dt: float | None = None  # pairs: largest RK4 step of a shot (None: 0.5 / data rate)
    input_scale: float = 1.0  # HNN: H_θ(y) = MLP(s·y)
    time_dependent: bool = False  # mlp / anode: f_θ(t, y) sees the time
    augment_dim: int = 1  # anode: extra dimensions p of the lifted state
    lift: str = "zeros"  # anode: z0 = (x0, 0) ("zeros") or a learned A x0 + a ("linear")
    projection: str = "slice"  # anode: x = first d components ("slice") or a learned B z + b ("linear")
    params: str = "auto"  # "auto": condition on the file's per-trajectory params when it has them; "ignore"
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> NodeConfig:
        """Check every option before any work (ranges, names, the device); returns ``self``."""
        MODELS.get(self.model)
        check_ranges(self, NODE_RANGES)
        get_method(self.method)
        check_device(self.device)
        if self.steps + self.lbfgs_steps < 1:
            raise InvalidArgumentError(
                "steps", self.steps, "at least one Adam step (steps) or L-BFGS step (lbfgs_steps)"
            )
        if self.window < 2:
            raise InvalidArgumentError(
                "window", self.window, "at least 2 observations (a start and a target)"
            )
        if self.dtype not in ("float32", "float64"):
            raise InvalidArgumentError("dtype", self.dtype, "'float32' or 'float64'")
        if self.params not in ("auto", "ignore"):
            raise InvalidArgumentError(
                "params", self.params, "'auto' (condition on the file's params dataset) or 'ignore'"
            )
        name = MODELS.canonical(self.model)
        if self.time_dependent and name not in ("mlp", "anode"):
            raise InvalidArgumentError(
                "time_dependent", self.time_dependent, f"False for model {name!r} (only mlp and anode take t)"
            )
        if name == "anode":
            a = self.augment_dim
            if isinstance(a, bool) or not isinstance(a, int) or a < 1:
                raise InvalidArgumentError("augment_dim", a, "a positive integer (extra dimensions)")
            if self.lift not in ("zeros", "linear"):
                raise InvalidArgumentError("lift", self.lift, "'zeros' or 'linear'")
            if self.projection not in ("slice", "linear"):
                raise InvalidArgumentError("projection", self.projection, "'slice' or 'linear'")
            if self.warm_start_steps > 0:
                raise InvalidArgumentError(
                    "warm_start_steps",
                    self.warm_start_steps,
                    "0 for model 'anode' (secant slopes live in the observed space)",
                )
        return self

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float32 if self.dtype == "float32" else torch.float64


# The range of every numeric option (checked before any work: a negative grad_clip would turn descent
# into ascent, a zero one would stop learning, both without a word).
NODE_RANGES = {
    "width": POSITIVE_INT,
    "depth": POSITIVE_INT,
    "rtol": POSITIVE,
    "atol": POSITIVE,
    "dt": POSITIVE.or_none("the method's adaptive steps"),
    "steps": NON_NEGATIVE_INT,  # 0: L-BFGS only (at least one step of either, checked in validate)
    "lbfgs_steps": NON_NEGATIVE_INT,
    "lbfgs_iterations": POSITIVE_INT,
    "collocation_gap": NON_NEGATIVE.or_none("0.8 / the data's rate; 0 shoots every pair"),
    "shot_dt": POSITIVE.or_none("0.5 / the data's rate"),
    "augment_dim": POSITIVE_INT,
    "batch_size": POSITIVE_INT,
    "window": POSITIVE_INT,
    "lr": POSITIVE,
    "weight_decay": NON_NEGATIVE,
    "val_fraction": FRACTION,
    "val_every": POSITIVE_INT,
    "seed": NON_NEGATIVE_INT,
    "checkpoint_every": POSITIVE_INT,
    "log_every": POSITIVE_INT,
    "grad_clip": POSITIVE.or_none("no clipping"),
    "warm_start_steps": NON_NEGATIVE_INT,
    "input_scale": POSITIVE,
}

# Options a resumed run may change; every other one must equal the run's (the data path may move).
RESUMABLE = frozenset({"data", "steps", "checkpoint_every", "log_every", "val_every", "device", "extra"})


def model_kwargs(cfg: NodeConfig | dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments of the model, from a config (or the ``config.json`` of a run: what a
    checkpoint is loaded back into, so training and loading can never build different models)."""
    c = dataclasses.asdict(cfg) if isinstance(cfg, NodeConfig) else dict(cfg)
    kw: dict[str, Any] = {"width": c["width"], "depth": c["depth"], "activation": c["activation"]}
    name = MODELS.canonical(c["model"])
    if name == "hnn":
        kw["gradient"] = c.get("gradient", "autodiff")
        kw["input_scale"] = c.get("input_scale", 1.0)  # runs from before the option: 1
    if name in ("mlp", "anode"):
        kw["time_dependent"] = bool(c.get("time_dependent", False))  # runs from before the option
    if name == "anode":
        kw.update(augment_dim=c["augment_dim"], lift=c["lift"], projection=c["projection"])
    return kw


def build_node_model(cfg: NodeConfig | dict[str, Any], dim: int, param_ranges: dict[str, Any] | None) -> Any:
    """The model of a run: plain, or conditioned on the file's parameters (``param_ranges``, see
    :mod:`.parametric`) — the one constructor training and :func:`load_node` share."""
    c = dataclasses.asdict(cfg) if isinstance(cfg, NodeConfig) else dict(cfg)
    if param_ranges:
        from .parametric import conditioned_model

        return conditioned_model(c["model"], dim, param_ranges, **model_kwargs(c))
    return build_model(c["model"], dim, **model_kwargs(c))


def file_param_ranges(cfg: NodeConfig, probe: Any, train_rows: Any) -> dict[str, list[float]] | None:
    """The parameters a run conditions on: ``None`` without a ``params`` dataset (or with
    ``params="ignore"``), else ``{name: [lo, hi]}`` — the file's recorded family range, or the span of
    the training trajectories' values."""
    if cfg.params == "ignore" or probe.params is None:
        return None
    if not probe.param_names:
        raise InvalidArgumentError(
            "data",
            f"{cfg.data} (a params dataset without a param_names attribute)",
            "named parameter columns to condition on, or --params ignore",
        )
    recorded = probe.attrs.get("param_ranges")
    if isinstance(recorded, dict) and set(recorded) == set(probe.param_names):
        return {k: [float(v) for v in recorded[k]] for k in probe.param_names}
    pos = np.searchsorted(probe.indices, train_rows)
    values = probe.params[pos]
    return {
        k: [float(values[:, j].min()), float(values[:, j].max())] for j, k in enumerate(probe.param_names)
    }


class _Batches:
    """Step → batch of this rank, deterministic in (seed, epoch, position)."""

    def __init__(self, dataset, batch_size: int, info: D.DistInfo, seed: int) -> None:
        from symflow.data import collate_trajectories

        self.ds, self.collate = dataset, collate_trajectories
        self.sampler = DistributedSampler(
            dataset,
            num_replicas=info.world_size,
            rank=info.rank,
            shuffle=True,
            seed=seed,
            drop_last=len(dataset) >= info.world_size,
        )
        self.per_epoch = max(1, len(self.sampler) // batch_size)
        self.batch_size = batch_size
        self._epoch: int | None = None
        self._order: list[int] = []

    def __call__(self, step: int):
        epoch, pos = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self.ds.set_epoch(epoch)  # new random windows each epoch
            with torch.device("cpu"):  # the sampler draws with a host generator on the default device
                self._order = list(self.sampler)
            self._epoch = epoch
        idx = self._order[pos * self.batch_size : (pos + 1) * self.batch_size]
        with torch.device("cpu"):  # items are read and padded on the host, then moved by the caller
            return self.collate([self.ds[i] for i in idx])


def _datasets(cfg: NodeConfig):
    from symflow.data import TrajectoryDataset, split_by_trajectory

    keys = {"t_key": cfg.t_key, "y_key": cfg.y_key, "mask_key": cfg.mask_key}
    probe = TrajectoryDataset(cfg.data, window=cfg.window, seed=cfg.seed, dtype=cfg.torch_dtype, **keys)
    # A trajectory of one observation has no target to integrate to: it adds nothing to the loss but
    # zeros (a file of them would "train" to loss 0.0), so it is left out, and none left is an error.
    usable = probe.indices[probe.lengths >= 2]
    if usable.size == 0:
        raise InvalidArgumentError(
            "data",
            f"{cfg.data} ({len(probe.indices)} usable trajectories, each of 1 observation)",
            "trajectories of at least 2 observations (a start and a target to integrate to)",
        )
    train_idx, val_idx = split_by_trajectory(usable, cfg.val_fraction, seed=cfg.seed)
    if len(train_idx) == 0:
        raise InvalidArgumentError(
            "data", cfg.data, "at least one usable (successfully simulated) trajectory"
        )
    mk = lambda idx: TrajectoryDataset(  # noqa: E731
        cfg.data, indices=idx, window=cfg.window, seed=cfg.seed, dtype=cfg.torch_dtype, check=False, **keys
    )
    return probe, mk(train_idx), (mk(val_idx) if len(val_idx) else None)


def _conditioned(model: torch.nn.Module) -> bool:
    from .parametric import ParametricVectorField

    return isinstance(model, ParametricVectorField)


def _states(batch: Any, conditioned: bool) -> Tensor:
    """The states the objectives see: ``ys``, or ``[ys, μ]`` for a conditioned model."""
    if not conditioned:
        return batch.ys
    from .parametric import augment

    return augment(batch.ys, batch.params)


def train_node(
    cfg: NodeConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    evaluate: bool = True,
    stop_at: int | None = None,
) -> dict[str, Any]:
    """Train (or resume) a neural ODE; returns the summary written to ``out/summary.json``.

    ``stop_at`` ends this invocation at that step with a checkpoint (the learning-rate schedule
    still spans ``cfg.steps``); ``resume=True`` continues from it.
    """
    cfg.validate()
    info = D.setup(cfg.device)
    try:
        return _train(
            cfg,
            Path(out),
            info,
            resume=resume,
            overwrite=overwrite,
            progress=progress,
            evaluate=evaluate,
            stop_at=stop_at,
        )
    finally:
        D.teardown()


def _train(cfg, out, info, *, resume, overwrite, progress, evaluate, stop_at):
    from symflow.learners.optim import AdamThenLBFGS

    seed_everything(cfg.seed)
    probe, train_ds, val_ds = _datasets(cfg)
    param_ranges = file_param_ranges(cfg, probe, train_ds.indices)
    conditioned = param_ranges is not None
    true_system = _true_system(cfg, probe.attrs) if evaluate and info.is_main else None
    dim = probe.dim
    with torch.device("cpu"):  # initialised on the host: the same weights for a seed whatever the device
        model = build_node_model(cfg, dim, param_ranges)
    model = model.to(device=info.device, dtype=cfg.torch_dtype)
    adjoint = AdjointOptions(seminorm=cfg.seminorm) if cfg.adjoint else False
    objective = TrajectoryObjective(
        model, method=cfg.method, rtol=cfg.rtol, atol=cfg.atol, dt=cfg.dt, adjoint=adjoint
    )
    # The run directory is claimed (and a resume checked against it) before any training work.
    run = RunDirectory(out, resume=resume, overwrite=overwrite, is_main=info.is_main)
    config = {
        "learner": "node",
        **dataclasses.asdict(cfg),
        "dim": dim,
        "param_ranges": param_ranges,
        "world_size": info.world_size,
        "data_attrs": {k: _jsonable(v) for k, v in probe.attrs.items()},
    }
    if resume:
        _check_resume(run, config)  # before config.json is rewritten: a refused resume keeps the old one
    pairs = _pair_objective(cfg, model, train_ds, info, shard=True) if cfg.lbfgs_steps > 0 else None
    warm = None
    if cfg.warm_start_steps > 0 and not resume:
        # Before DDP wraps the model: every rank runs the same seeded fit on the same training
        # trajectories, so the ranks start from identical weights.
        warm = _warm_start(cfg, train_ds, model, info)
    both = _Objectives(objective, pairs)
    wrapped: torch.nn.Module = both
    if info.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # Plain autograd through the pair objective leaves parameters that do not enter the field (an
        # HNN's output bias) without a gradient, which DDP must be told to expect.
        wrapped = DDP(
            both,
            device_ids=[info.local_rank] if info.device.type == "cuda" else None,
            find_unused_parameters=pairs is not None,
        )
    optimizer = AdamThenLBFGS(
        model.parameters(),
        adam_steps=cfg.steps,
        lr=cfg.lr,
        lr_final=cfg.lr * 0.01,
        lbfgs_iterations=cfg.lbfgs_iterations,
    )
    for group in optimizer.adam.param_groups:  # AdamThenLBFGS has no weight-decay argument of its own
        group["weight_decay"] = cfg.weight_decay
    if info.is_main:
        run.write_json("config.json", config)
    trainer = Trainer(
        run,
        model,
        optimizer,
        steps=cfg.steps + cfg.lbfgs_steps,
        config=config,
        checkpoint_every=cfg.checkpoint_every,
        log_every=cfg.log_every,
        grad_clip=cfg.grad_clip,
        progress=progress,
        description="train node",
        is_main=info.is_main,
    )
    if resume:
        trainer.restore(map_location=info.device)
    batches = _Batches(train_ds, cfg.batch_size, info, cfg.seed)

    def pair_loss() -> Tensor:
        local = wrapped()
        if not info.distributed:
            return local
        # The value L-BFGS sees is the mean over ranks (its line search must decide the same way on
        # every rank); the gradient is DDP's average of the ranks' gradients.
        mean = torch.tensor(D.all_mean(float(local.detach()), info), dtype=local.dtype, device=local.device)
        return local + (mean - local.detach())

    def loss_fn(step: int) -> dict[str, Any]:
        if step < cfg.steps:
            b = batches(step).to(info.device, cfg.torch_dtype)
            return {"loss": wrapped(b.ts, _states(b, conditioned), b.mask)}
        trainer.grad_clip = None  # L-BFGS needs the exact gradient of the loss it line-searches
        loss = pair_loss()
        optimizer.set_closure(pair_loss, loss)
        return {"loss": loss}

    validate = None
    if val_ds is not None:
        val_pairs = _pair_objective(cfg, model, val_ds, info, shard=False)

        def validate() -> dict[str, float]:
            return {"loss": float(val_pairs())}

    started = time.perf_counter()
    last = trainer.fit(loss_fn, validate=validate, validate_every=cfg.val_every, stop_at=stop_at)
    summary: dict[str, Any] = {
        "steps": trainer.step,
        "train_loss": last.get("loss"),
        "val_loss": last.get("val_loss"),
        "wall_s": time.perf_counter() - started,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if warm is not None:
        summary["warm_start"] = warm
    if pairs is not None and info.is_main:
        summary["pair_objective"] = {**pairs.describe(), "integration_check": pairs.integration_check()}
    if conditioned:
        summary["params"] = {"names": list(param_ranges), "ranges": param_ranges}
    if true_system is not None and conditioned:
        from .parametric import evaluate_parametric_node

        rows = val_ds.indices if val_ds is not None else train_ds.indices
        summary["evaluation"] = evaluate_parametric_node(
            model, cfg.data, rows=rows, family=_true_family(probe.attrs, param_ranges)
        )
        summary["evaluation"]["held_out"] = val_ds is not None
    elif true_system is not None:
        summary["evaluation"] = evaluate_discovery(model, true_system, t_end=10.0, seed=cfg.seed + 1000)
    if info.is_main:
        run.write_json("summary.json", summary)
    run.close()
    return summary


def _true_system(cfg: NodeConfig, attrs: dict[str, Any]) -> Any:
    """The system the training file names (for the evaluation after training), built *before* training
    so that a misspelt system, an unknown parameter or unreadable ``system_args`` stop the run at once;
    ``None`` when the file names no system."""
    from symflow.data.reader import system_args
    from symflow.systems import get_system

    name = attrs.get("system")
    if not isinstance(name, str) or name in ("", "unknown"):
        return None
    try:
        return get_system(name, **system_args(attrs, cfg.data))
    except (SymflowError, TypeError) as err:
        raise CapabilityError(
            f"{cfg.data}: the comparison with the true system after training needs the file's system, "
            f"but {' '.join(str(err).split())} (pass --no-eval / evaluate=False to train without it)"
        ) from None


def _true_family(attrs: dict[str, Any], param_ranges: dict[str, Any]) -> Any:
    """The family the file was simulated from (for exact-flow references), or ``None``."""
    from symflow.data.reader import system_args
    from symflow.systems import parametric_family

    try:
        fixed = {k: v for k, v in system_args(attrs).items() if k not in param_ranges}
        return parametric_family(attrs["system"], {k: tuple(v) for k, v in param_ranges.items()}, **fixed)
    except (SymflowError, KeyError, TypeError):
        return None


def _check_resume(run: RunDirectory, config: dict[str, Any]) -> None:
    """A resumed run continues the same problem: every option but those in :data:`RESUMABLE` must equal
    the run's (its ``config.json``), or the resume is refused before anything is written."""
    path = run.path / "config.json"
    if not path.exists():
        return
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InvalidArgumentError("resume", str(path), f"a readable config.json ({err})") from None
    keys = [f.name for f in dataclasses.fields(NodeConfig) if f.name not in RESUMABLE] + [
        "dim",
        "param_ranges",
    ]
    changed = [k for k in keys if k in saved and saved[k] != json.loads(json.dumps(config.get(k)))]
    if changed:
        shown = ", ".join(f"{k}={config.get(k)!r} (the run has {saved[k]!r})" for k in changed)
        free = ", ".join(sorted(RESUMABLE - {"extra"}))
        raise RunDirectoryError(
            f"{run.path}: cannot --resume with changed options: {shown}; resume with the run's options "
            f"(only {free} may change) or start a new run"
        )


class _Objectives(torch.nn.Module):
    """Both objectives behind one module, so one ``DistributedDataParallel`` wraps them: called with a
    batch ``(ts, ys, mask)`` it is the window objective, without arguments the pair objective."""

    def __init__(self, windows: TrajectoryObjective, pairs: PairObjective | None) -> None:
        super().__init__()
        self.windows = windows
        self.pairs = pairs

    def forward(self, *batch: Tensor) -> Tensor:
        if batch:
            return self.windows(*batch)
        if self.pairs is None:
            raise RuntimeError("no pair objective: lbfgs_steps is 0")
        return self.pairs()


def _whole_trajectories(cfg: NodeConfig, ds: Any, indices: Any, info: D.DistInfo):
    from symflow.data import TrajectoryDataset, collate_trajectories

    keys = {"t_key": cfg.t_key, "y_key": cfg.y_key, "mask_key": cfg.mask_key}
    whole = TrajectoryDataset(
        cfg.data, indices=indices, window=None, dtype=cfg.torch_dtype, check=False, **keys
    )
    return collate_trajectories([whole[i] for i in range(len(whole))]).to(info.device, cfg.torch_dtype)


def _pair_objective(cfg: NodeConfig, model: torch.nn.Module, ds: Any, info: D.DistInfo, *, shard: bool):
    """The pair objective of ``ds``'s trajectories (with ``shard``: this rank's share of them)."""
    indices = ds.indices[info.rank :: info.world_size] if shard and info.distributed else ds.indices
    b = _whole_trajectories(cfg, ds, indices, info)
    ys = _states(b, _conditioned(model))
    pairs = PairObjective(model, b.ts, ys, b.mask, collocation_gap=cfg.collocation_gap, shot_dt=cfg.shot_dt)
    if pairs.pairs == 0 and shard and not info.distributed:
        raise InvalidArgumentError(
            "lbfgs_steps", cfg.lbfgs_steps, "0: no training trajectory has two consecutive observations"
        )
    return pairs


def _warm_start(cfg: NodeConfig, train_ds: Any, model: torch.nn.Module, info: D.DistInfo) -> dict[str, Any]:
    from .warm_start import warm_start

    batch = _whole_trajectories(cfg, train_ds, train_ds.indices, info)
    ys = _states(batch, _conditioned(model))
    started = time.perf_counter()
    try:
        out = warm_start(
            model, batch.ts, ys, batch.mask, steps=cfg.warm_start_steps, lr=cfg.lr, seed=cfg.seed
        )
    except ValueError as err:
        raise InvalidArgumentError("warm_start_steps", cfg.warm_start_steps, str(err)) from None
    out["seconds"] = time.perf_counter() - started
    return out


def _jsonable(v: Any) -> Any:
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, bytes):
        return v.decode()
    return v


def load_node(run_dir: str | Path, *, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a trained model from a run directory (config + checkpoint, ``weights_only=True``)."""
    ck = load_checkpoint(Path(run_dir) / "checkpoints", map_location=map_location)
    cfg = ck.config
    if cfg.get("learner") != "node":
        raise InvalidArgumentError("run_dir", str(run_dir), "a run directory of `symflow train node`")
    model = build_node_model(cfg, cfg["dim"], cfg.get("param_ranges"))
    dtype = torch.float32 if cfg.get("dtype") == "float32" else torch.float64
    model = model.to(dtype=dtype)
    load_module_state(model, ck)  # one-line CheckpointError if the weights do not fit
    model.eval()
    return model
