"""Training the learners, all on :class:`symflow.training.Trainer`, configured by one dataclass each.

One entry point, two data sources of the same learner (``docs/learners.md``):

* ``train_flow_map("henon_heiles", learner="sympflow", energy_max=1/12, ...)`` — **Hamiltonian
  matching** on ``Ω × [t_lo, t_hi]`` (unsupervised; the equations are the data);
* ``train_flow_map(data="hh.h5", learner="sympflow", ...)`` — **supervised** from trajectories: a file
  path, a :class:`~symflow.data.TrajectoryDataset` or tensors ``(ts, ys[, mask])``; seeded
  trajectory-level train/validation/test split, pairs of observations within a horizon
  (:mod:`.supervised`), and the held-out evaluation of :mod:`.data_evaluation`.

``train_sympflow`` / ``train_pinn`` fix the learner; ``kind="ivp"`` with ``x0``/``t_end`` trains the
single-IVP PINN. Options are the fields of :class:`~symflow.learners.config.SympFlowConfig` /
:class:`~symflow.learners.config.PinnConfig` (pass a ``config=`` and/or keyword options), checked
before any work. Optimisation is Adam (cosine, one-cycle or constant learning rate, optional
gradient clipping) then optionally L-BFGS (:class:`~symflow.learners.optim.AdamThenLBFGS`); with
``keep_best`` the weights with the lowest validation loss are the ones kept.

All randomness comes from seeded generators that the checkpoints capture (or that are pure functions
of the step), so runs are reproducible and resume bit for bit. A run directory gets ``config.json``
(the configuration plus what was derived from it: model, domain, data split), ``metrics.jsonl``,
checkpoints, ``summary.json`` and PNG figures.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from symflow.integrators.errors import InvalidArgumentError
from symflow.integrators.reprs import compact_repr
from symflow.systems import HamiltonianSystem, ParametricFamily, get_system, parametric_family, vector_field
from symflow.training import GeneratorState, RunDirectory, Trainer, seed_everything

from . import evaluation as ev
from .config import RESUMABLE, FlowMapConfig, PinnConfig, config_class
from .domains import Box, Domain, EnergySublevel, SystemDomain
from .flowmap import FlowMap
from .losses import (
    hamiltonian_matching_loss,
    ivp_loss,
    relative_weights,
    trajectory_loss,
    trajectory_pairs,
)
from .optim import AdamThenLBFGS
from .registry import build_model, dtype_name, parse_dtype, read_config
from .supervised import (
    PairBatches,
    TrajectoryData,
    UnusableDataError,
    data_family,
    data_param_ranges,
    load_trajectory_data,
    named_system,
    split_trajectories,
)

Tensor = torch.Tensor


@dataclass
class TrainResult:
    """What a training function returns: the trained model, the summary written to ``summary.json``,
    the run directory (``None`` for a temporary one), ``config.json``'s content and, for plotting,
    the evaluation tensors."""

    model: nn.Module
    summary: dict[str, Any]
    run_dir: Path | None
    config: dict[str, Any]
    evaluation: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return compact_repr(self, fields=("model", "run_dir", "summary"))


class CollocationSet:
    """The L-BFGS phase's current collocation set (or pair indices in ``t``), checkpointed so a
    resumed run redraws nothing."""

    def __init__(self) -> None:
        self.t = torch.empty(0)
        self.x = torch.empty(0)
        self.mu: Tensor | None = None  # the parameters of a family's collocation points

    @property
    def empty(self) -> bool:
        return self.t.numel() == 0

    def state_dict(self) -> dict[str, Tensor]:
        out = {"t": self.t, "x": self.x}
        if self.mu is not None:
            out["mu"] = self.mu
        return out

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.t, self.x = state["t"], state["x"]
        self.mu = state.get("mu")


class BestWeights:
    """The weights with the lowest validation loss seen so far (``keep_best``), checkpointed with the
    run so a resumed run keeps choosing among the same candidates."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.loss = math.inf
        self.step = -1
        self.weights: dict[str, Tensor] = {}

    def offer(self, loss: float, step: int) -> None:
        if math.isfinite(loss) and loss < self.loss:
            self.loss, self.step = float(loss), int(step)
            self.weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "loss": torch.tensor(self.loss, dtype=torch.float64),
            "step": torch.tensor(self.step),
            "model": self.weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss, self.step = float(state["loss"]), int(state["step"])
        self.weights = dict(state["model"])

    def restore_into_model(self) -> None:
        if self.weights:
            self.model.load_state_dict(self.weights)


# -- entry points ------------------------------------------------------------------------------------


def train_flow_map(
    system: str | HamiltonianSystem | None = None,
    *,
    data: Any = None,
    learner: str = "sympflow",
    config: FlowMapConfig | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
    **options: Any,
) -> TrainResult:
    """Train a learner from a system (Hamiltonian matching) or from trajectory data (supervised).

    Args:
        system: a registered system name or a :class:`HamiltonianSystem` (unsupervised), or ``None``.
        data: a trajectory file path, a :class:`~symflow.data.TrajectoryDataset` or tensors
            ``(ts, ys[, mask])`` (supervised); not together with ``system``.
        learner: ``"sympflow"`` or ``"pinn"`` (``kind="ivp"`` for the single-IVP PINN).
        config: a :class:`~symflow.learners.config.SympFlowConfig` / ``PinnConfig``; ``options``
            (its field names) override it. Every value is checked before any work.
        run_dir: where ``config.json``, ``metrics.jsonl``, checkpoints, ``summary.json`` and figures
            go (``None``: a temporary directory, deleted on return). ``resume`` continues it (only
            ``lbfgs_steps`` and the evaluation options may change); ``overwrite`` starts it afresh.
        progress: show a progress bar.
        stop_at: end this invocation at that step with a checkpoint (the schedule still spans the
            whole run; ``resume=True`` continues it). The evaluation runs when the run completes.
    """
    cls = config_class(learner)
    if config is not None and not isinstance(config, cls):
        raise InvalidArgumentError("config", config, f"a {cls.__name__} for learner {learner!r}")
    cfg = config if config is not None else cls()
    built: HamiltonianSystem | None = None
    if isinstance(system, HamiltonianSystem):
        built = system
        options = {"system": system.name, "system_args": dict(system.params), **options}
    elif system is not None:
        options = {"system": system, **options}
    given = None  # data given as objects (tensors, a dataset) rather than by the config's path
    if data is not None:
        if isinstance(data, (tuple, list)):
            given = data
        else:
            from symflow.data import TrajectoryDataset

            path = data.path if isinstance(data, TrajectoryDataset) else data
            if isinstance(data, TrajectoryDataset):
                options = {**options, **{k: v for k, v in data.keys.items() if v is not None}}
                given = data
            options = {"data": str(path), **options}
    if options:
        cfg = cfg.replace(**options)
    if isinstance(cfg, PinnConfig) and cfg.kind == "ivp":
        return _train_ivp(cfg, built, run_dir, resume, overwrite, progress, stop_at)
    if given is not None or cfg.data is not None:
        cfg.check_source("data")
        source = given if given is not None else cfg.data
        return _train_supervised(cfg, source, run_dir, resume, overwrite, progress, stop_at)
    if cfg.system is None:
        raise InvalidArgumentError(
            "system",
            None,
            "a data source: a system to match (system=/--system) or trajectories (data=/--data)",
        )
    cfg.check_source("system")
    return _train_unsupervised(cfg, built, run_dir, resume, overwrite, progress, stop_at)


def train_sympflow(system: str | HamiltonianSystem | None = None, **kwargs: Any) -> TrainResult:
    """:func:`train_flow_map` with ``learner="sympflow"``."""
    return train_flow_map(system, learner="sympflow", **kwargs)


def train_pinn(system: str | HamiltonianSystem | None = None, **kwargs: Any) -> TrainResult:
    """:func:`train_flow_map` with ``learner="pinn"``: the flow-map PINN (``kind="flow"``, default) or
    the single-IVP PINN (``kind="ivp"`` with ``x0`` and ``t_end``)."""
    return train_flow_map(system, learner="pinn", **kwargs)


def train_ivp_pinn(system: str | HamiltonianSystem, *, x0: Any, t_end: float, **kwargs: Any) -> TrainResult:
    """The single-IVP PINN: :func:`train_pinn` with ``kind="ivp"``."""
    if isinstance(x0, Tensor):
        x0 = x0.detach().flatten().tolist()
    return train_pinn(system, kind="ivp", x0=x0, t_end=t_end, **kwargs)


def system_from_config(config: dict[str, Any]) -> HamiltonianSystem:
    """The true system of a run (registered systems only): the one it was trained on, or the one its
    trajectory file named. Raises :class:`InvalidArgumentError` when the run has none."""
    spec = config.get("system")
    if not spec:
        note = config.get("system_note") or "the run names no system"
        raise InvalidArgumentError("system", None, f"a true system for this run ({note})")
    return get_system(spec["name"], **spec["args"])


# -- shared set-up -----------------------------------------------------------------------------------


def _device(cfg: FlowMapConfig) -> torch.device:
    dev = torch.device(cfg.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError("device", cfg.device, "'cpu': no CUDA device is available on this machine")
    return dev


def _gamma(cfg: FlowMapConfig) -> float:
    """γ of the soft initial condition (PINNs with ``constraint="soft"``; 0 otherwise)."""
    return float(getattr(cfg, "ic_weight", 0.0)) if getattr(cfg, "constraint", None) == "soft" else 0.0


def _system_config(system: HamiltonianSystem) -> dict[str, Any]:
    return {"name": system.name, "args": dict(system.params)}


def _open_run(run_dir: str | Path | None, resume: bool, overwrite: bool) -> tuple[RunDirectory, Any]:
    if run_dir is None:
        if resume:
            raise InvalidArgumentError("resume", resume, "a run_dir to resume from")
        tmp = tempfile.TemporaryDirectory(prefix="symflow-run-")
        return RunDirectory(tmp.name), tmp
    return RunDirectory(run_dir, resume=resume, overwrite=overwrite), None


def _check_resume_config(run: RunDirectory, config: dict[str, Any]) -> None:
    """A resumed run must train the same problem; only the L-BFGS budget and evaluation may change."""
    old = read_config(run.path)
    for key in ("learner", "system", "model", "dtype", "domain", "data"):
        if old.get(key) != config.get(key):
            raise InvalidArgumentError(
                key, config.get(key), f"the value this run was started with ({old.get(key)!r}) to --resume it"
            )
    before = old.get("options", {})
    defaults = config_class(config["learner"])().to_dict()
    for key, value in config["options"].items():
        # an option newer than the run (absent from its config.json) had its default then
        if key not in RESUMABLE and before.get(key, defaults.get(key)) != value:
            raise InvalidArgumentError(
                key, value, f"the value this run was started with ({before.get(key)!r}) to --resume it"
            )


@dataclass
class _Session:
    run: RunDirectory
    tmp: Any
    gen: torch.Generator
    cache: CollocationSet
    best: BestWeights
    opt: AdamThenLBFGS
    trainer: Trainer


def _start_session(
    cfg: FlowMapConfig,
    net: nn.Module,
    config: dict[str, Any],
    run_dir: str | Path | None,
    resume: bool,
    overwrite: bool,
    progress: bool,
    description: str,
    device: torch.device,
) -> _Session:
    """Open (or resume) the run directory and build what every learner's loop needs: the seeded
    generator, the L-BFGS set and the best weights (all checkpointed), the optimiser and the trainer."""
    run, tmp = _open_run(run_dir, resume, overwrite)
    try:
        if resume:
            _check_resume_config(run, config)
        run.write_json("config.json", config)
        gen = torch.Generator().manual_seed(cfg.seed)
        cache = CollocationSet()
        best = BestWeights(net)
        opt = AdamThenLBFGS(
            net.parameters(),
            adam_steps=cfg.adam_steps,
            lr=cfg.lr,
            lr_final=cfg.lr_final,
            schedule=cfg.schedule,
            warmup=cfg.warmup,
            grad_clip=cfg.grad_clip,
            lbfgs_iterations=cfg.lbfgs_iterations,
        )
        trainer = Trainer(
            run,
            net,
            opt,
            steps=cfg.adam_steps + cfg.lbfgs_steps,
            config=config,
            extra_state={"generator": GeneratorState(gen), "collocation": cache, "best": best},
            checkpoint_every=cfg.checkpoint_every,
            log_every=cfg.log_every,
            progress=progress,
            description=description,
        )
        if resume:
            trainer.restore(map_location=device)
    except BaseException:
        run.close()
        if tmp is not None:
            tmp.cleanup()
        raise
    return _Session(run, tmp, gen, cache, best, opt, trainer)


def _fit(
    s: _Session,
    cfg: FlowMapConfig,
    loss_fn: Any,
    validate: Any,
    stop_at: int | None,
) -> tuple[float, float, bool]:
    """Run the trainer (validation feeding ``keep_best``); returns ``(seconds, cpu seconds, done)``."""

    def checked() -> dict[str, Tensor]:
        out = validate()
        s.best.offer(float(next(iter(out.values()))), s.trainer.step)
        return out

    started, cpu = time.perf_counter(), time.process_time()
    s.trainer.fit(
        loss_fn,
        validate=None if validate is None else checked,
        validate_every=cfg.validate_every,
        stop_at=stop_at,
    )
    done = s.trainer.step >= s.trainer.steps
    if cfg.keep_best and done:
        s.best.restore_into_model()
    return time.perf_counter() - started, time.process_time() - cpu, done


def _base_summary(
    cfg: FlowMapConfig, net: nn.Module, s: _Session, seconds: float, cpu: float
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "learner": getattr(net, "learner", cfg.learner) or cfg.learner,
        "parameters": sum(p.numel() for p in net.parameters()),
        "dtype": cfg.dtype,
        "device": cfg.device,
        "steps": s.trainer.step,
        "train_seconds": seconds,
        "train_cpu_seconds": cpu,
        **{f"final_{k}": v for k, v in _last_metrics(s.run).items()},
    }
    if cfg.keep_best and s.best.weights:
        out["best_step"] = s.best.step
        out["best_val_loss"] = s.best.loss
    return out


def _last_metrics(run: RunDirectory) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for record in run.metrics():
        for key in ("loss", "val_residual", "val_loss"):
            if key in record:
                out[key] = record[key]
    return out


def _time_draw(n: int, span: tuple[float, float], gen: torch.Generator) -> Tensor:
    lo, hi = span
    return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64, device="cpu")  # host generator


def _domain(cfg: FlowMapConfig, system: HamiltonianSystem) -> Domain:
    box = None
    if cfg.box is not None:
        pairs = list(zip(cfg.box[0::2], cfg.box[1::2]))
        if len(pairs) == 1:
            pairs *= system.dim
        if len(pairs) != system.dim:
            raise InvalidArgumentError(
                "box",
                list(cfg.box),
                f"LO HI, or {system.dim} pairs LO HI (one per coordinate of {system.name})",
            )
        box = ([p[0] for p in pairs], [p[1] for p in pairs])
    if cfg.energy_max is not None:
        low, high = box if box is not None else (None, None)
        return EnergySublevel(system, cfg.energy_max, low=low, high=high)
    if box is not None:
        return Box(*box)
    return SystemDomain(system)


# -- Hamiltonian matching (unsupervised) ---------------------------------------------------------------


def training_family(cfg: FlowMapConfig) -> ParametricFamily | None:
    """The parametric family a configuration spans (``param_ranges``), or ``None``.

    Parameters given with ``system_args`` and also varying are refused; the other ``system_args`` are
    the family's fixed values.
    """
    if not cfg.param_ranges:
        return None
    if cfg.system is None:
        raise InvalidArgumentError("param_ranges", cfg.param_ranges, "a --system whose family they span")
    both = sorted(set(cfg.system_args) & set(cfg.param_ranges))
    if both:
        raise InvalidArgumentError(
            "system_args",
            {k: cfg.system_args[k] for k in both},
            f"no fixed value for {both}: they vary (--param-range)",
        )
    return parametric_family(cfg.system, dict(cfg.param_ranges), **cfg.system_args)


def family_eval_points(family: ParametricFamily, count: int = 3) -> Tensor:
    """``count`` parameter vectors along the diagonal of the family's box, at ``(2k + 1) / (2 count)``
    of each range: interior points, none of them a bound (and, for uniform training draws, not
    values a training run saw exactly)."""
    lo, hi = family.bounds()
    frac = (2 * torch.arange(count, dtype=torch.float64) + 1) / (2 * count)
    return lo + (hi - lo) * frac[:, None]


def _train_unsupervised(
    cfg: FlowMapConfig,
    built: HamiltonianSystem | None,
    run_dir: str | Path | None,
    resume: bool,
    overwrite: bool,
    progress: bool,
    stop_at: int | None,
) -> TrainResult:
    if built is not None and cfg.param_ranges:
        cfg = cfg.replace(system_args={k: v for k, v in cfg.system_args.items() if k not in cfg.param_ranges})
        built = None  # the family is built from the registry, with the given system's other values
    family = training_family(cfg)
    if family is not None:
        # The domain comes from the system at the centre of the box (samplers do not take μ).
        lo, hi = family.bounds()
        sys_ = family.system((lo + hi) / 2)
    else:
        sys_ = built if built is not None else get_system(cfg.system, **cfg.system_args)
    device = _device(cfg)
    dtype = parse_dtype(cfg.dtype)
    dom = _domain(cfg, sys_)
    span = cfg.time_range()
    if cfg.learner == "sympflow" and sys_.dim % 2:
        raise InvalidArgumentError("system", sys_.name, "a system with states [q, p] of even dimension")
    seed_everything(cfg.seed)
    args = cfg.model_args(sys_.dim)
    if family is not None:
        args["param_ranges"] = {k: list(v) for k, v in family.ranges.items()}
    with torch.device("cpu"):  # initialised on the host: the same weights for a seed whatever the device
        net = build_model(cfg.learner, args, dtype=dtype)
    net = net.to(device)
    config = {
        "learner": cfg.learner,
        "options": cfg.to_dict(),
        "system": _system_config(sys_),
        "model": net.config(),
        "dtype": dtype_name(dtype),
        "domain": dom.config(),
        "data": None,
        "parameters": net.num_parameters(),
    }
    if family is not None:
        config["family"] = family.to_dict()
    s = _start_session(
        cfg, net, config, run_dir, resume, overwrite, progress, f"{cfg.learner} {sys_.name}", device
    )
    try:
        field_ = vector_field(sys_) if family is None else family.field
        cast = {"dtype": dtype, "device": device}

        def draw(n: int) -> tuple[Tensor, Tensor, Tensor | None]:
            t, x = _time_draw(n, span, s.gen).to(**cast), dom.sample(n, s.gen, **cast)
            mu = None if family is None else family.sample(n, seed=s.gen, **cast)  # one μ per point
            return t, x, mu

        def weights(x: Tensor) -> Tensor | None:
            return relative_weights(x) if cfg.relative_residual else None

        def loss_fn(step: int) -> dict[str, Tensor]:
            if step < cfg.adam_steps:
                t, x, mu = draw(cfg.collocation)
                loss = hamiltonian_matching_loss(
                    net, field_, t, x, mu=mu, weights=weights(x), ic_weight=_gamma(cfg)
                )
                return {"loss": loss}
            if s.cache.empty or (step - cfg.adam_steps) % cfg.lbfgs_resample == 0:
                s.cache.t, s.cache.x, s.cache.mu = draw(cfg.lbfgs_points)

            def closure() -> Tensor:
                return hamiltonian_matching_loss(
                    net,
                    field_,
                    s.cache.t,
                    s.cache.x,
                    mu=s.cache.mu,
                    weights=weights(s.cache.x),
                    ic_weight=_gamma(cfg),
                )

            loss = closure()
            s.opt.set_closure(closure, loss)
            return {"loss": loss}

        val_gen = torch.Generator().manual_seed(cfg.seed + 1_000_003)  # held out: never used in training
        val_t = _time_draw(cfg.validation_points, span, val_gen).to(**cast)
        val_x = dom.sample(cfg.validation_points, val_gen, **cast)
        val_mu = None if family is None else family.sample(cfg.validation_points, seed=val_gen, **cast)

        def validate() -> dict[str, Tensor]:
            return {"residual": hamiltonian_matching_loss(net, field_, val_t, val_x, mu=val_mu)}

        seconds, cpu, done = _fit(s, cfg, loss_fn, validate, stop_at)
        net.eval()
        summary = {"system": sys_.name, "dt": net.dt, **_base_summary(cfg, net, s, seconds, cpu)}
        evaluation: dict[str, Any] = {}
        if family is not None:
            summary["family"] = family.to_dict()
            if cfg.evaluate and done:
                more, evaluation = _evaluate_family(cfg, net, family, dom, cast, s.run.path)
                summary.update(more)
            s.run.write_json("summary.json", summary)
            return TrainResult(net, summary, None if s.tmp else s.run.path, config, evaluation)
        if cfg.evaluate and done:
            eval_gen = torch.Generator().manual_seed(cfg.seed + 2_000_003)
            x_eval = dom.sample(cfg.eval_samples, eval_gen, **cast)
            more, evaluation = evaluate_flow_map(
                net,
                sys_,
                x_eval,
                horizon=cfg.horizon,
                energy_horizon=cfg.energy_horizon,
                residual_points=(val_t, val_x),
            )
            summary.update(more)
            if cfg.plots:
                summary["figures"] = [p.name for p in write_figures(net, sys_, evaluation, s.run.path)]
        s.run.write_json("summary.json", summary)
        return TrainResult(net, summary, None if s.tmp else s.run.path, config, evaluation)
    finally:
        s.run.close()  # let other processes open the run directory (its lock)
        if s.tmp is not None:
            s.tmp.cleanup()


def _evaluate_family(
    cfg: FlowMapConfig,
    net: FlowMap,
    family: ParametricFamily,
    dom: Domain,
    cast: dict[str, Any],
    folder: Path,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`evaluate_flow_map` at interior points of the family (:func:`family_eval_points`), each
    against its own system; figures for the middle point."""
    eval_gen = torch.Generator().manual_seed(cfg.seed + 2_000_003)
    x_eval = dom.sample(cfg.eval_samples, eval_gen, **cast)
    points = family_eval_points(family)
    results, evaluation = [], {}
    for k, mu in enumerate(points):
        system = family.system(mu)
        more, data = evaluate_flow_map(
            net.at(mu.to(cast["dtype"])),
            system,
            x_eval,
            horizon=cfg.horizon,
            energy_horizon=cfg.energy_horizon,
        )
        results.append({"params": dict(zip(family.names, mu.tolist())), **more})
        if k == len(points) // 2:
            evaluation = {**data, "params": results[-1]["params"], "system": system}
    summary: dict[str, Any] = {"family_evaluation": results}
    for key in ("rollout_error_max", "rollout_relative_error_max", "energy_error_max"):
        values = [r[key] for r in results if key in r]
        if values:
            summary[f"worst_{key}"] = max(values)
    if cfg.plots and evaluation:
        summary["figures"] = [
            p.name
            for p in write_figures(
                net.at(points[len(points) // 2].to(cast["dtype"])), evaluation["system"], evaluation, folder
            )
        ]
    return summary, evaluation


def evaluate_flow_map(
    model: FlowMap,
    system: HamiltonianSystem,
    x0: Tensor,
    *,
    horizon: float | None = None,
    energy_horizon: float | None = None,
    residual_points: tuple[Tensor, Tensor] | None = None,
    bound_samples: int = 8,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Summary figures (JSON-able) and the tensors behind them, for one flow map trained on a system.

    ``x0 (B, D)`` are the initial states of the rollouts; ``residual_points = (t, x0)`` a held-out
    collocation set. With ``horizon=0`` / ``energy_horizon=0`` those parts are skipped.
    """
    if horizon is None:
        horizon = (100.0 if system.exact_flow is not None else 10.0) * model.dt
    if energy_horizon is None:
        energy_horizon = 1000.0 * model.dt
    x0 = x0.detach().cpu()
    if next(model.parameters()).device.type != "cpu":  # the references are CPU float64; leave `model` alone
        import copy

        model = copy.deepcopy(model).cpu()
    summary: dict[str, Any] = {}
    data: dict[str, Any] = {}
    if residual_points is not None:
        residual_points = (residual_points[0].cpu(), residual_points[1].cpu())
        summary.update(ev.residual_summary(model, system, *residual_points))
    bound = ev.a_posteriori(model, system, x0[:bound_samples])
    summary["a_posteriori"] = bound["summary"]
    doubled = getattr(system, "doubling", None) is not None
    if doubled:
        # A damped system on the doubled phase space: roll out with the projection onto the physical
        # limit after every step, and measure the physical energy (H = 0 on the limit).
        from .dissipative import PhysicalLimitFlow, physical_energy_summary

        limited = PhysicalLimitFlow(model, system)
        if horizon > 0:
            roll = ev.rollout_error(limited, system, x0, horizon)
            summary.update(roll["summary"])
            data["rollout"] = roll
        if energy_horizon > 0:
            more, data["energy"] = physical_energy_summary(model, system, x0, energy_horizon)
            summary.update(more)
        return summary, data
    if horizon > 0:
        roll = ev.rollout_error(model, system, x0, horizon)
        summary.update(roll["summary"])
        data["rollout"] = roll
    if energy_horizon > 0:
        energy = ev.energy_error(model, system, x0, energy_horizon)
        summary.update(energy["summary"])
        data["energy"] = energy
    if hasattr(model, "hamiltonian"):
        states = x0 if residual_points is None else torch.cat([x0, residual_points[1][:500]])
        h_true = system.energy(states.double())
        h_learned = model.hamiltonian(states).detach().double()
        residual = (h_learned - h_learned.mean()) - (h_true - h_true.mean())
        summary["hamiltonian_recovery_relative_rms"] = float(
            residual.pow(2).mean().sqrt() / (h_true - h_true.mean()).pow(2).mean().sqrt().clamp_min(1e-300)
        )
        data["hamiltonian"] = (h_true, h_learned)
    return summary, data


def write_figures(
    model: nn.Module, system: HamiltonianSystem, data: dict[str, Any], folder: Path
) -> list[Path]:
    """``trajectory.png``, ``energy.png`` and (SympFlow) ``hamiltonian.png`` in ``folder``."""
    from .plots import plot_energy, plot_hamiltonian, plot_trajectories

    name = type(model).__name__
    paths = []
    if "rollout" in data:
        roll = data["rollout"]
        paths.append(
            plot_trajectories(
                roll["ts"],
                {name: roll["prediction"]},
                roll["reference"],
                list(system.coordinate_names),
                folder / "trajectory.png",
                title=f"{name} on {system.name}: rollout vs reference (sample 0)",
            )
        )
    if "energy" in data:
        e = data["energy"]
        paths.append(
            plot_energy(
                {name: (e["ts"], e["relative_error"])},
                folder / "energy.png",
                title=f"{name} on {system.name}: relative energy error",
            )
        )
    if "hamiltonian" in data:
        h_true, h_learned = data["hamiltonian"]
        paths.append(
            plot_hamiltonian(
                h_true, h_learned, folder / "hamiltonian.png", title="recovered H̃ (time average) vs true H"
            )
        )
    return paths


# -- supervised, from trajectories -------------------------------------------------------------------


def _pairs(part: TrajectoryData, horizon: float, anchors: str, what: str):
    try:
        return trajectory_pairs(part.ts, part.ys, part.mask, horizon=horizon, anchors=anchors)
    except InvalidArgumentError as err:
        if err.argument != "horizon":
            raise
        gaps = (part.ts[:, 1:] - part.ts[:, :-1])[part.mask[:, 1:] & part.mask[:, :-1]]
        smallest = f"{float(gaps.min()):.4g}" if gaps.numel() else "none"
        raise UnusableDataError(
            f"no two observations of one {what} trajectory are within pair_horizon={horizon:g} "
            f"(smallest gap between consecutive observations: {smallest}); raise --pair-horizon"
        ) from None


def _train_supervised(
    cfg: FlowMapConfig,
    source: Any,
    run_dir: str | Path | None,
    resume: bool,
    overwrite: bool,
    progress: bool,
    stop_at: int | None,
) -> TrainResult:
    device = _device(cfg)
    dtype = parse_dtype(cfg.dtype)
    data = load_trajectory_data(source, t_key=cfg.t_key, y_key=cfg.y_key, mask_key=cfg.mask_key)
    if cfg.learner == "sympflow" and data.dim % 2:
        raise InvalidArgumentError(
            "data", f"states of dimension {data.dim}", "states [q, p] of even dimension"
        )
    split = split_trajectories(
        data, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.seed
    )
    train_d, val_d, test_d = data.select(split.train), data.select(split.val), data.select(split.test)
    param_ranges = data_param_ranges(data, train_d)
    family = None
    if param_ranges is None:
        system, system_note = named_system(data.attrs)
    else:  # one system per trajectory: the references come from the family
        family = data_family(data, param_ranges)
        system = None
        system_note = "per-trajectory parameters (" + ", ".join(param_ranges) + ")"
    horizon = cfg.pair_horizon if cfg.pair_horizon is not None else cfg.dt
    pairs = _pairs(train_d, horizon, cfg.pairs, "training")
    val_pairs = _pairs(val_d, horizon, cfg.pairs, "validation") if val_d.n else None
    to = {"dtype": dtype, "device": device}
    pairs = type(pairs)(pairs.gap.to(**to), pairs.start.to(**to), pairs.end.to(**to), pairs.trajectory)
    if val_pairs is not None:
        val_pairs = type(val_pairs)(
            val_pairs.gap.to(**to), val_pairs.start.to(**to), val_pairs.end.to(**to), val_pairs.trajectory
        )
    seed_everything(cfg.seed)
    args = cfg.model_args(data.dim)
    if param_ranges is not None:
        args["param_ranges"] = param_ranges
    with torch.device("cpu"):  # initialised on the host: the same weights for a seed whatever the device
        net = build_model(cfg.learner, args, dtype=dtype)
    net = net.to(device)
    mu_train = None if param_ranges is None else train_d.params.to(**to)
    mu_val = None if param_ranges is None or not val_d.n else val_d.params.to(**to)
    config = {
        "learner": cfg.learner,
        "options": cfg.to_dict(),
        "system": _system_config(system) if system is not None else None,
        "system_note": system_note,
        "model": net.config(),
        "dtype": dtype_name(dtype),
        "domain": None,
        "data": {
            **data.describe(),
            "split": split.to_dict(data.rows),
            "pairs": {"anchors": cfg.pairs, "horizon": horizon, "train": len(pairs),
                      "val": len(val_pairs) if val_pairs is not None else 0},
        },
        "parameters": net.num_parameters(),
    }  # fmt: skip
    s = _start_session(
        cfg, net, config, run_dir, resume, overwrite, progress, f"{cfg.learner} from data", device
    )
    try:
        n_pairs = len(pairs)
        batches = PairBatches(n_pairs, cfg.batch_size, cfg.seed)
        lbfgs_points = min(cfg.lbfgs_points, n_pairs)

        def loss_fn(step: int) -> dict[str, Tensor]:
            if step < cfg.adam_steps:
                return {"loss": trajectory_loss(net, pairs, batches(step).to(device), mu_train)}
            if s.cache.empty or (step - cfg.adam_steps) % cfg.lbfgs_resample == 0:
                s.cache.t = torch.randperm(n_pairs, generator=s.gen)[:lbfgs_points]
            index = s.cache.t.to(device)

            def closure() -> Tensor:
                return trajectory_loss(net, pairs, index, mu_train)

            loss = closure()
            s.opt.set_closure(closure, loss)
            return {"loss": loss}

        validate = None
        if val_pairs is not None:

            def validate() -> dict[str, Tensor]:
                return {"loss": trajectory_loss(net, val_pairs, params=mu_val)}

        seconds, cpu, done = _fit(s, cfg, loss_fn, validate, stop_at)
        net.eval()
        summary: dict[str, Any] = {
            "mode": "supervised",
            "data": str(cfg.data) if cfg.data is not None else "tensors",
            "system": system.name if system is not None else None,
            "dt": net.dt,
            "trajectories": {"train": train_d.n, "val": val_d.n, "test": test_d.n},
            "pairs": n_pairs,
            "epochs": s.trainer.step / batches.per_epoch if cfg.adam_steps else 0.0,
            **_base_summary(cfg, net, s, seconds, cpu),
        }
        with torch.no_grad():
            summary["train_mse"] = float(trajectory_loss(net, pairs, params=mu_train)) / data.dim
            if val_pairs is not None:
                summary["val_mse"] = float(trajectory_loss(net, val_pairs, params=mu_val)) / data.dim
        summary["data_rmse"] = math.sqrt(summary["train_mse"])
        evaluation: dict[str, Any] = {}
        if param_ranges is not None:
            summary["params"] = {"names": list(param_ranges), "ranges": param_ranges}
        if param_ranges is not None and cfg.evaluate and done:
            from .data_evaluation import evaluate_parametric_data_run

            more, evaluation = evaluate_parametric_data_run(
                net,
                test=test_d,
                train=train_d,
                family=family,
                eval_samples=cfg.eval_samples,
                energy_horizon=cfg.energy_horizon,
            )
            summary.update(more)
        elif cfg.evaluate and done:
            from .data_evaluation import evaluate_data_run

            more, evaluation = evaluate_data_run(
                net,
                test=test_d,
                train=train_d,
                system=system,
                system_note=system_note,
                horizon=cfg.horizon,
                energy_horizon=cfg.energy_horizon,
                eval_samples=cfg.eval_samples,
                seed=cfg.seed,
                multiples=cfg.eval_multiples,
            )
            summary.update(more)
            if cfg.plots:
                summary["figures"] = [p.name for p in write_data_figures(net, system, evaluation, s.run.path)]
        s.run.write_json("summary.json", summary)
        return TrainResult(net, summary, None if s.tmp else s.run.path, config, evaluation)
    finally:
        s.run.close()  # let other processes open the run directory (its lock)
        if s.tmp is not None:
            s.tmp.cleanup()


def write_data_figures(
    model: FlowMap, system: HamiltonianSystem | None, data: dict[str, Any], folder: Path
) -> list[Path]:
    """``heldout.png`` (a test trajectory and every test trajectory's error), ``energy.png`` (true
    energy error, or the learned H̃'s drift) and ``hamiltonian.png`` (H̃ against H) in ``folder``."""
    from .plots import plot_energy, plot_hamiltonian, plot_heldout

    name = type(model).__name__
    labels = list(system.coordinate_names) if system is not None else [f"y{k}" for k in range(model.dim)]
    paths = []
    if "heldout" in data:
        paths.append(plot_heldout(model, data["heldout"], labels, folder / "heldout.png", name=name))
    if "energy" in data:
        e = data["energy"]
        paths.append(
            plot_energy(
                {name: (e["ts"], e["relative_error"])},
                folder / "energy.png",
                title=f"{name} from data: {e['label']}",
                ylabel="|H(x_t) − H(x_0)| / |H(x_0)|" if system is not None else "|H̃(x_t) − H̃(x_0)| / std H̃",
            )
        )
    if "hamiltonian" in data:
        h_true, h_learned = data["hamiltonian"]
        paths.append(
            plot_hamiltonian(
                h_true, h_learned, folder / "hamiltonian.png", title="learned H̃ (time average) vs true H"
            )
        )
    return paths


# -- the single-IVP PINN -------------------------------------------------------------------------------


def _train_ivp(
    cfg: PinnConfig,
    built: HamiltonianSystem | None,
    run_dir: str | Path | None,
    resume: bool,
    overwrite: bool,
    progress: bool,
    stop_at: int | None,
) -> TrainResult:
    if cfg.system is None:
        raise InvalidArgumentError("system", None, "the system whose initial value problem to solve")
    sys_ = built if built is not None else get_system(cfg.system, **cfg.system_args)
    cfg.check_source("system")
    device = _device(cfg)
    dtype = parse_dtype(cfg.dtype)
    if len(cfg.x0 or ()) != sys_.dim:
        raise InvalidArgumentError(
            "x0", list(cfg.x0 or ()), f"one state of {sys_.dim} numbers for {sys_.name}"
        )
    seed_everything(cfg.seed)
    with torch.device("cpu"):  # initialised on the host: the same weights for a seed whatever the device
        net = build_model("pinn_ivp", cfg.model_args(sys_.dim), dtype=dtype)
    net = net.to(device)
    config = {
        "learner": "pinn_ivp",
        "options": cfg.to_dict(),
        "system": _system_config(sys_),
        "model": net.config(),
        "dtype": dtype_name(dtype),
        "domain": None,
        "data": None,
        "parameters": net.num_parameters(),
    }
    s = _start_session(
        cfg, net, config, run_dir, resume, overwrite, progress, f"pinn_ivp {sys_.name}", device
    )
    try:
        field_ = vector_field(sys_)

        def draw(n: int) -> Tensor:
            return _time_draw(n, (0.0, net.t_end), s.gen).to(dtype=dtype, device=device)

        gamma = _gamma(cfg)
        nodes = weights = None
        if cfg.collocation_weights == "gauss_legendre":  # fixed nodes t_i with quadrature weights ω_i
            import numpy as np

            x, w = np.polynomial.legendre.leggauss(cfg.collocation)
            nodes = torch.tensor((x + 1) / 2 * net.t_end, dtype=dtype, device=device)
            weights = torch.tensor(w / 2, dtype=dtype, device=device)  # Σ ω_i = 1

        def loss_fn(step: int) -> dict[str, Tensor]:
            if nodes is not None:
                t_now = nodes
            elif step < cfg.adam_steps:
                t_now = draw(cfg.collocation)
            else:
                if s.cache.empty or (step - cfg.adam_steps) % cfg.lbfgs_resample == 0:
                    s.cache.t = draw(cfg.lbfgs_points)
                t_now = s.cache.t
            if step < cfg.adam_steps:
                return {"loss": ivp_loss(net, field_, t_now, weights=weights, ic_weight=gamma)}

            def closure() -> Tensor:
                return ivp_loss(net, field_, t_now, weights=weights, ic_weight=gamma)

            loss = closure()
            s.opt.set_closure(closure, loss)
            return {"loss": loss}

        seconds, cpu, done = _fit(s, cfg, loss_fn, None, stop_at)
        net.eval()
        summary = {"system": sys_.name, "t_end": net.t_end, **_base_summary(cfg, net, s, seconds, cpu)}
        summary["learner"] = "pinn_ivp"
        evaluation: dict[str, Any] = {}
        if cfg.evaluate and done:
            net = net.cpu()  # the reference and the estimate are computed on the CPU
            bound = ev.a_posteriori(net, sys_, nodes=8, dense=201)
            summary["a_posteriori"] = bound["summary"]
            ts = torch.linspace(0.0, net.t_end, 201, dtype=torch.float64)
            with torch.no_grad():
                pred = net(ts.to(dtype)).double()[None]
            ref = ev.reference_rollout(sys_, net.x0[None], ts)
            err = (pred - ref).norm(dim=-1)
            summary["error_max"] = float(err.max())
            summary["error_final"] = float(err[0, -1])
            summary["initial_condition_error"] = float(err[0, 0])  # ‖N(0) − x0‖: 0 unless soft
            evaluation["rollout"] = {"ts": ts, "prediction": pred, "reference": ref, "error": err}
            if cfg.plots:
                from .plots import plot_trajectories

                path = plot_trajectories(
                    ts,
                    {"IVP PINN": pred},
                    ref,
                    list(sys_.coordinate_names),
                    s.run.path / "trajectory.png",
                    title=f"single-IVP PINN on {sys_.name}",
                )
                summary["figures"] = [path.name]
        s.run.write_json("summary.json", summary)
        return TrainResult(net, summary, None if s.tmp else s.run.path, config, evaluation)
    finally:
        s.run.close()  # let other processes open the run directory (its lock)
        if s.tmp is not None:
            s.tmp.cleanup()
