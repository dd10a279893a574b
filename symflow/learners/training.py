"""Training entry points, all built on :class:`symflow.training.Trainer`.

* :func:`train_sympflow` / :func:`train_flow_map` — unsupervised Hamiltonian matching of a flow map
  (SympFlow or the flow-map PINN) on ``Ω × [0, Δt]``;
* :func:`train_pinn` — the PINN learners: ``kind="flow"`` (flow map) or ``kind="ivp"`` (one
  initial value problem, :func:`train_ivp_pinn`);
* :func:`fit_trajectories` — supervised training of a flow map from trajectories given as tensors
  ``ts (B, T)``, ``ys (B, T, D)``, ``mask (B, T)`` (the data layer's batch layout).

Optimisation is Adam on fresh collocation points every step (``collocation`` points, ``t``
uniform in ``[0, Δt]``, ``x0`` from the domain), then optionally L-BFGS on a collocation set that
is redrawn every ``lbfgs_resample`` steps (:class:`~symflow.learners.optim.AdamThenLBFGS`). All
randomness comes from one seeded generator that the checkpoints capture, so runs are reproducible
and resume bit for bit. A run directory gets ``config.json``, ``metrics.jsonl``, checkpoints,
``summary.json`` (residual, a-posteriori estimate, trajectory and energy errors) and PNG figures.
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
from symflow.systems import HamiltonianSystem, get_system, vector_field
from symflow.training import GeneratorState, RunDirectory, Trainer, seed_everything

from . import evaluation as ev
from .domains import Domain, EnergySublevel, make_domain
from .flowmap import FlowMap
from .losses import hamiltonian_matching_loss, ivp_loss, trajectory_loss, trajectory_pairs
from .optim import AdamThenLBFGS
from .registry import LEARNERS, build_model, dtype_name, parse_dtype, read_config

Tensor = torch.Tensor


@dataclass
class TrainResult:
    """What a training function returns: the trained model, the summary written to ``summary.json``,
    the run directory (``None`` for a temporary one) and, for plotting, the evaluation tensors."""

    model: nn.Module
    summary: dict[str, Any]
    run_dir: Path | None
    config: dict[str, Any]
    evaluation: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return compact_repr(self, fields=("model", "summary", "run_dir"))


class CollocationSet:
    """The L-BFGS phase's current collocation set, checkpointed so a resumed run redraws nothing."""

    def __init__(self) -> None:
        self.t = torch.empty(0)
        self.x = torch.empty(0)

    @property
    def empty(self) -> bool:
        return self.t.numel() == 0

    def state_dict(self) -> dict[str, Tensor]:
        return {"t": self.t, "x": self.x}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.t, self.x = state["t"], state["x"]


def _count(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(name, value, f"an integer >= {minimum}")
    return value


def _resolve_system(system: str | HamiltonianSystem, system_args: dict[str, Any] | None) -> HamiltonianSystem:
    if isinstance(system, HamiltonianSystem):
        if system_args:
            raise InvalidArgumentError("system_args", system_args, "no arguments with a built system")
        return system
    return get_system(system, **(system_args or {}))


def _system_config(system: HamiltonianSystem) -> dict[str, Any]:
    return {"name": system.name, "args": dict(system.params)}


def system_from_config(config: dict[str, Any]) -> HamiltonianSystem:
    """The system a run was trained on (registered systems only)."""
    return get_system(config["system"]["name"], **config["system"]["args"])


def _open_run(run_dir: str | Path | None, resume: bool, overwrite: bool) -> tuple[RunDirectory, Any]:
    if run_dir is None:
        if resume:
            raise InvalidArgumentError("resume", resume, "a run_dir to resume from")
        tmp = tempfile.TemporaryDirectory(prefix="symflow-run-")
        return RunDirectory(tmp.name), tmp
    return RunDirectory(run_dir, resume=resume, overwrite=overwrite), None


def _check_resume_config(run: RunDirectory, config: dict[str, Any]) -> None:
    """A resumed run must train the same problem; only the step budget and evaluation may change."""
    old = read_config(run.path)
    mutable = {"lbfgs_steps"}
    for key in ("learner", "system", "model", "dtype", "domain", "data"):
        if old.get(key) != config.get(key):
            raise InvalidArgumentError(
                key, config.get(key), f"the value this run was started with ({old.get(key)!r}) to --resume it"
            )
    for key, value in config.get("training", {}).items():
        if key not in mutable and old.get("training", {}).get(key) != value:
            raise InvalidArgumentError(
                key,
                value,
                f"the value this run was started with ({old['training'].get(key)!r}) to --resume it",
            )


def _start_session(
    run_dir: str | Path | None,
    resume: bool,
    overwrite: bool,
    config: dict[str, Any],
    net: nn.Module,
    *,
    seed: int,
    adam_steps: int,
    lbfgs_steps: int,
    lr: float,
    lr_final: float,
    lbfgs_iterations: int,
    checkpoint_every: int,
    log_every: int,
    progress: bool,
    description: str,
) -> tuple[RunDirectory, Any, torch.Generator, CollocationSet, AdamThenLBFGS, Trainer]:
    """Open (or resume) the run directory and build what every collocation-trained learner needs: the
    seeded generator and the L-BFGS collocation set (both checkpointed), Adam-then-L-BFGS and the
    trainer. Returns ``(run, tmp, generator, collocation, optimizer, trainer)``; ``tmp`` is the temporary
    directory to clean up when ``run_dir`` is ``None``."""
    run, tmp = _open_run(run_dir, resume, overwrite)
    try:
        if resume:
            _check_resume_config(run, config)
        run.write_json("config.json", config)
        gen = torch.Generator().manual_seed(seed)
        cache = CollocationSet()
        opt = AdamThenLBFGS(
            net.parameters(),
            adam_steps=adam_steps,
            lr=lr,
            lr_final=lr_final,
            lbfgs_iterations=lbfgs_iterations,
        )
        trainer = Trainer(
            run,
            net,
            opt,
            steps=adam_steps + lbfgs_steps,
            config=config,
            extra_state={"generator": GeneratorState(gen), "collocation": cache},
            checkpoint_every=checkpoint_every,
            log_every=log_every,
            progress=progress,
            description=description,
        )
        if resume:
            trainer.restore()
    except BaseException:
        run.close()
        if tmp is not None:
            tmp.cleanup()
        raise
    return run, tmp, gen, cache, opt, trainer


def _time_draw(n: int, dt: float, gen: torch.Generator) -> Tensor:
    return dt * torch.rand(n, generator=gen, dtype=torch.float64)


def train_flow_map(
    system: str | HamiltonianSystem,
    *,
    learner: str = "sympflow",
    dt: float = 1.0,
    model: dict[str, Any] | None = None,
    domain: Domain | dict[str, Any] | None = None,
    energy_max: float | None = None,
    adam_steps: int = 2000,
    lbfgs_steps: int = 0,
    collocation: int = 700,
    lbfgs_points: int = 2000,
    lbfgs_resample: int = 10,
    lbfgs_iterations: int = 20,
    lr: float = 1e-2,
    lr_final: float = 1e-4,
    seed: int = 0,
    dtype: str | torch.dtype = "float64",
    run_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    checkpoint_every: int = 200,
    log_every: int = 10,
    validate_every: int = 100,
    validation_points: int = 2000,
    evaluate: bool = True,
    horizon: float | None = None,
    energy_horizon: float | None = None,
    eval_samples: int = 16,
    plots: bool = True,
    system_args: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a flow map by Hamiltonian matching on ``Ω × [0, Δt]`` (see the module docstring).

    Args:
        system: a registered name (with ``system_args``) or a :class:`HamiltonianSystem`.
        learner: ``"sympflow"`` or ``"pinn"`` (the flow-map PINN).
        dt: ``Δt``, the time span the map is trained on.
        model: constructor arguments of the learner (e.g. ``{"layers": 4, "width": 10}``).
        domain: ``Ω`` — a domain object or its config dict; ``energy_max`` is the shortcut for
            :class:`~symflow.learners.domains.EnergySublevel` (``H ≤ energy_max``); default: the
            system's sampler.
        adam_steps, lbfgs_steps: lengths of the two optimisation phases (one "epoch" is one step).
        collocation: fresh collocation points per Adam step (the official configuration uses 700).
        lbfgs_points, lbfgs_resample, lbfgs_iterations: the L-BFGS phase's collocation set size, how
            often it is redrawn (in steps) and iterations per step.
        lr, lr_final: Adam's cosine (in log space) learning-rate schedule.
        seed: seeds the model initialisation and every random draw.
        dtype: ``"float64"`` (default) or ``"float32"``.
        run_dir: where config, metrics, checkpoints, summary and figures go (``None``: a temporary
            directory, deleted on return). ``resume`` continues it (more ``lbfgs_steps`` allowed);
            ``overwrite`` starts it afresh.
        evaluate: after training, measure the residual, the a-posteriori estimate, the trajectory
            error to ``horizon`` (default ``100 Δt`` with an exact flow, else ``10 Δt``) and the
            energy error to ``energy_horizon`` (default ``1000 Δt``) on ``eval_samples`` states.
    """
    spec = LEARNERS.get(learner)
    if not spec.flow_map:
        raise InvalidArgumentError(
            "learner", learner, "a flow-map learner (sympflow or pinn); see train_pinn"
        )
    sys_ = _resolve_system(system, system_args)
    torch_dtype = parse_dtype(dtype)
    adam_steps = _count("adam_steps", adam_steps, 0)
    lbfgs_steps = _count("lbfgs_steps", lbfgs_steps, 0)
    if adam_steps + lbfgs_steps == 0:
        raise InvalidArgumentError("adam_steps", adam_steps, "at least one training step in total")
    collocation = _count("collocation", collocation)
    lbfgs_points = _count("lbfgs_points", lbfgs_points)
    lbfgs_resample = _count("lbfgs_resample", lbfgs_resample)
    if energy_max is not None:
        if domain is not None:
            raise InvalidArgumentError("energy_max", energy_max, "not both energy_max and domain")
        dom: Domain = EnergySublevel(sys_, energy_max)
    elif domain is None or isinstance(domain, dict):
        dom = make_domain(sys_, domain)
    else:
        dom = domain
    if dom.dim != sys_.dim:
        raise InvalidArgumentError("domain", dom, f"a domain of dimension {sys_.dim} for {sys_.name}")

    seed_everything(seed)
    model_args = {"dt": dt, **(model or {})}
    model_args["dof" if spec.name == "sympflow" else "dim"] = (
        sys_.dof if spec.name == "sympflow" else sys_.dim
    )
    net = build_model(spec.name, model_args, dtype=torch_dtype)
    config = {
        "learner": spec.name,
        "system": _system_config(sys_),
        "model": net.config(),
        "dtype": dtype_name(torch_dtype),
        "domain": dom.config(),
        "parameters": net.num_parameters(),
        "training": {
            "adam_steps": adam_steps,
            "lbfgs_steps": lbfgs_steps,
            "collocation": collocation,
            "lbfgs_points": lbfgs_points,
            "lbfgs_resample": lbfgs_resample,
            "lbfgs_iterations": lbfgs_iterations,
            "lr": lr,
            "lr_final": lr_final,
            "seed": seed,
            "validation_points": validation_points,
        },
    }
    session = _start_session(
        run_dir,
        resume,
        overwrite,
        config,
        net,
        seed=seed,
        adam_steps=adam_steps,
        lbfgs_steps=lbfgs_steps,
        lr=lr,
        lr_final=lr_final,
        lbfgs_iterations=lbfgs_iterations,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        progress=progress,
        description=f"{spec.name} {sys_.name}",
    )
    run, tmp, gen, cache, opt, trainer = session
    try:
        field_ = vector_field(sys_)
        cast = {"dtype": torch_dtype}

        def draw(n: int) -> tuple[Tensor, Tensor]:
            t = _time_draw(n, net.dt, gen).to(**cast)
            return t, dom.sample(n, gen, dtype=torch_dtype)

        def loss_fn(step: int) -> dict[str, Tensor]:
            if step < adam_steps:
                t, x = draw(collocation)
                return {"loss": hamiltonian_matching_loss(net, field_, t, x)}
            if cache.empty or (step - adam_steps) % lbfgs_resample == 0:
                cache.t, cache.x = draw(lbfgs_points)

            def closure() -> Tensor:
                return hamiltonian_matching_loss(net, field_, cache.t, cache.x)

            loss = closure()
            opt.set_closure(closure, loss)
            return {"loss": loss}

        val_gen = torch.Generator().manual_seed(seed + 1_000_003)  # held out: never used in training
        val_t = _time_draw(validation_points, net.dt, val_gen).to(**cast)
        val_x = dom.sample(validation_points, val_gen, dtype=torch_dtype)

        def validate() -> dict[str, Tensor]:
            return {"residual": hamiltonian_matching_loss(net, field_, val_t, val_x)}

        started, cpu = time.perf_counter(), time.process_time()
        trainer.fit(loss_fn, validate=validate, validate_every=validate_every)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        net.eval()
        summary: dict[str, Any] = {
            "learner": spec.name,
            "system": sys_.name,
            "parameters": net.num_parameters(),
            "dtype": dtype_name(torch_dtype),
            "dt": net.dt,
            "steps": trainer.step,
            "train_seconds": seconds,
            "train_cpu_seconds": cpu,
            **{f"final_{k}": v for k, v in _last_metrics(run).items()},
        }
        evaluation: dict[str, Any] = {}
        if evaluate:
            eval_gen = torch.Generator().manual_seed(seed + 2_000_003)
            x_eval = dom.sample(_count("eval_samples", eval_samples), eval_gen, dtype=torch_dtype)
            more, evaluation = evaluate_flow_map(
                net,
                sys_,
                x_eval,
                horizon=horizon,
                energy_horizon=energy_horizon,
                residual_points=(val_t, val_x),
            )
            summary.update(more)
            if plots:
                summary["figures"] = [str(p.name) for p in write_figures(net, sys_, evaluation, run.path)]
        run.write_json("summary.json", summary)
        return TrainResult(net, summary, None if tmp else run.path, config, evaluation)
    finally:
        run.close()  # let other processes open the run directory (its lock)
        if tmp is not None:
            tmp.cleanup()


def _last_metrics(run: RunDirectory) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for record in run.metrics():
        for key in ("loss", "val_residual"):
            if key in record:
                out[key] = record[key]
    return out


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
    """Summary figures (JSON-able) and the tensors behind them, for one trained flow map.

    ``x0 (B, D)`` are the initial states of the rollouts; ``residual_points = (t, x0)`` a held-out
    collocation set. With ``horizon=0`` / ``energy_horizon=0`` those parts are skipped.
    """
    if horizon is None:
        horizon = (100.0 if system.exact_flow is not None else 10.0) * model.dt
    if energy_horizon is None:
        energy_horizon = 1000.0 * model.dt
    summary: dict[str, Any] = {}
    data: dict[str, Any] = {}
    if residual_points is not None:
        summary.update(ev.residual_summary(model, system, *residual_points))
    bound = ev.a_posteriori(model, system, x0[:bound_samples])
    summary["a_posteriori"] = bound["summary"]
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


def train_sympflow(system: str | HamiltonianSystem, **kwargs: Any) -> TrainResult:
    """:func:`train_flow_map` with ``learner="sympflow"``."""
    return train_flow_map(system, learner="sympflow", **kwargs)


def train_pinn(system: str | HamiltonianSystem, *, kind: str = "flow", **kwargs: Any) -> TrainResult:
    """A PINN learner: ``kind="flow"`` (flow map, :func:`train_flow_map`) or ``"ivp"`` (one IVP,
    :func:`train_ivp_pinn`)."""
    if kind == "flow":
        return train_flow_map(system, learner="pinn", **kwargs)
    if kind == "ivp":
        return train_ivp_pinn(system, **kwargs)
    raise InvalidArgumentError("kind", kind, "'flow' or 'ivp'")


def train_ivp_pinn(
    system: str | HamiltonianSystem,
    *,
    x0: Tensor | list[float],
    t_end: float,
    model: dict[str, Any] | None = None,
    adam_steps: int = 2000,
    lbfgs_steps: int = 0,
    collocation: int = 1000,
    lbfgs_points: int = 2000,
    lbfgs_resample: int = 10,
    lbfgs_iterations: int = 20,
    lr: float = 1e-2,
    lr_final: float = 1e-4,
    seed: int = 0,
    dtype: str | torch.dtype = "float64",
    run_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    checkpoint_every: int = 200,
    log_every: int = 10,
    evaluate: bool = True,
    plots: bool = True,
    system_args: dict[str, Any] | None = None,
) -> TrainResult:
    """Train :class:`IVPPINN` for one initial value problem on ``[0, t_end]``.

    Collocation times are drawn uniformly in ``[0, t_end]`` afresh each Adam step. The evaluation
    reports the a-posteriori estimate over the whole interval and the error against the reference.
    """
    sys_ = _resolve_system(system, system_args)
    torch_dtype = parse_dtype(dtype)
    adam_steps = _count("adam_steps", adam_steps, 0)
    lbfgs_steps = _count("lbfgs_steps", lbfgs_steps, 0)
    if adam_steps + lbfgs_steps == 0:
        raise InvalidArgumentError("adam_steps", adam_steps, "at least one training step in total")
    start = torch.as_tensor(x0, dtype=torch_dtype).flatten()
    if start.shape != (sys_.dim,):
        raise InvalidArgumentError("x0", x0, f"one state of {sys_.dim} numbers for {sys_.name}")
    seed_everything(seed)
    net = build_model("pinn_ivp", {"x0": start.tolist(), "t_end": t_end, **(model or {})}, dtype=torch_dtype)
    config = {
        "learner": "pinn_ivp",
        "system": _system_config(sys_),
        "model": net.config(),
        "dtype": dtype_name(torch_dtype),
        "domain": None,
        "parameters": net.num_parameters(),
        "training": {
            "adam_steps": adam_steps,
            "lbfgs_steps": lbfgs_steps,
            "collocation": collocation,
            "lbfgs_points": lbfgs_points,
            "lbfgs_resample": lbfgs_resample,
            "lbfgs_iterations": lbfgs_iterations,
            "lr": lr,
            "lr_final": lr_final,
            "seed": seed,
        },
    }
    session = _start_session(
        run_dir,
        resume,
        overwrite,
        config,
        net,
        seed=seed,
        adam_steps=adam_steps,
        lbfgs_steps=lbfgs_steps,
        lr=lr,
        lr_final=lr_final,
        lbfgs_iterations=lbfgs_iterations,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        progress=progress,
        description=f"pinn_ivp {sys_.name}",
    )
    run, tmp, gen, cache, opt, trainer = session
    try:
        field_ = vector_field(sys_)

        def draw(n: int) -> Tensor:
            return _time_draw(n, net.t_end, gen).to(torch_dtype)

        def loss_fn(step: int) -> dict[str, Tensor]:
            if step < adam_steps:
                return {"loss": ivp_loss(net, field_, draw(collocation))}
            if cache.empty or (step - adam_steps) % lbfgs_resample == 0:
                cache.t = draw(lbfgs_points)

            def closure() -> Tensor:
                return ivp_loss(net, field_, cache.t)

            loss = closure()
            opt.set_closure(closure, loss)
            return {"loss": loss}

        started, cpu = time.perf_counter(), time.process_time()
        trainer.fit(loss_fn)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        net.eval()
        summary: dict[str, Any] = {
            "learner": "pinn_ivp",
            "system": sys_.name,
            "parameters": net.num_parameters(),
            "t_end": net.t_end,
            "steps": trainer.step,
            "train_seconds": seconds,
            "train_cpu_seconds": cpu,
            **{f"final_{k}": v for k, v in _last_metrics(run).items()},
        }
        evaluation: dict[str, Any] = {}
        if evaluate:
            bound = ev.a_posteriori(net, sys_, nodes=8, dense=201)
            summary["a_posteriori"] = bound["summary"]
            ts = torch.linspace(0.0, net.t_end, 201, dtype=torch.float64)
            with torch.no_grad():
                pred = net(ts.to(torch_dtype)).double()[None]
            ref = ev.reference_rollout(sys_, net.x0[None], ts)
            err = (pred - ref).norm(dim=-1)
            summary["error_max"] = float(err.max())
            summary["error_final"] = float(err[0, -1])
            evaluation["rollout"] = {"ts": ts, "prediction": pred, "reference": ref, "error": err}
            if plots:
                from .plots import plot_trajectories

                path = plot_trajectories(
                    ts,
                    {"IVP PINN": pred},
                    ref,
                    list(sys_.coordinate_names),
                    run.path / "trajectory.png",
                    title=f"single-IVP PINN on {sys_.name}",
                )
                summary["figures"] = [path.name]
        run.write_json("summary.json", summary)
        return TrainResult(net, summary, None if tmp else run.path, config, evaluation)
    finally:
        run.close()  # let other processes open the run directory (its lock)
        if tmp is not None:
            tmp.cleanup()


def fit_trajectories(
    model: FlowMap,
    ts: Tensor,
    ys: Tensor,
    mask: Tensor | None = None,
    *,
    horizon: float | None = None,
    batch_size: int = 700,
    adam_steps: int = 2000,
    lbfgs_steps: int = 0,
    lbfgs_points: int = 4000,
    lbfgs_resample: int = 10,
    lbfgs_iterations: int = 20,
    lr: float = 1e-2,
    lr_final: float = 1e-4,
    seed: int = 0,
    run_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    checkpoint_every: int = 200,
    log_every: int = 10,
    system: HamiltonianSystem | str | None = None,
) -> TrainResult:
    """Supervised training of a flow map from observed trajectories (in-memory tensors).

    Args:
        model: a :class:`SympFlow` or :class:`FlowMapPINN` (its ``dt`` is ``Δt``).
        ts, ys, mask: ``(B, T)``, ``(B, T, D)``, ``(B, T)`` bool — the data layer's collate layout
            (NaN padding where ``mask`` is false); ``ts`` may be ``(T,)`` when shared.
        horizon: largest time gap between paired observations (default ``Δt``; larger gaps are
            predicted by composition ``N(δt) ∘ N(Δt)^n``, differentiably).
        batch_size: pairs per Adam step; the L-BFGS phase uses ``lbfgs_points`` pairs, redrawn every
            ``lbfgs_resample`` steps.
        system: optional, only recorded in the config (the loss needs no equations).

    The loss is the mean of ``‖N(t_k − t_j, y_j) − y_k‖²`` over observed pairs (see
    :func:`~symflow.learners.losses.trajectory_pairs`). Afterwards, ``model.hamiltonian`` (SympFlow)
    is the Hamiltonian recovered from the data. To resume, pass the same tensors again.
    """
    if not isinstance(model, FlowMap):
        raise InvalidArgumentError("model", model, "a flow map (SympFlow or FlowMapPINN)")
    dtype = model.parameter_dtype
    ys = ys.to(dtype)
    pairs = trajectory_pairs(ts, ys, mask, horizon=model.dt if horizon is None else float(horizon))
    n_pairs = len(pairs)
    batch_size = min(_count("batch_size", batch_size), n_pairs)
    lbfgs_points = min(_count("lbfgs_points", lbfgs_points), n_pairs)
    sys_cfg = None
    if system is not None:
        sys_cfg = _system_config(_resolve_system(system, None))
    config = {
        "learner": model.learner,
        "system": sys_cfg,
        "model": model.config(),
        "dtype": dtype_name(dtype),
        "domain": None,
        "parameters": model.num_parameters(),
        "data": {
            "trajectories": int(ys.shape[0]),
            "length": int(ys.shape[1]),
            "pairs": n_pairs,
            "horizon": model.dt if horizon is None else float(horizon),
        },
        "training": {
            "mode": "supervised",
            "adam_steps": adam_steps,
            "lbfgs_steps": lbfgs_steps,
            "batch_size": batch_size,
            "lbfgs_points": lbfgs_points,
            "lbfgs_resample": lbfgs_resample,
            "lbfgs_iterations": lbfgs_iterations,
            "lr": lr,
            "lr_final": lr_final,
            "seed": seed,
        },
    }
    run, tmp = _open_run(run_dir, resume, overwrite)
    try:
        if resume:
            _check_resume_config(run, config)
        run.write_json("config.json", config)
        seed_everything(seed)
        gen = torch.Generator().manual_seed(seed)
        cache = CollocationSet()
        opt = AdamThenLBFGS(
            model.parameters(),
            adam_steps=_count("adam_steps", adam_steps, 0),
            lr=lr,
            lr_final=lr_final,
            lbfgs_iterations=lbfgs_iterations,
        )
        trainer = Trainer(
            run,
            model,
            opt,
            steps=adam_steps + _count("lbfgs_steps", lbfgs_steps, 0),
            config=config,
            extra_state={"generator": GeneratorState(gen), "collocation": cache},
            checkpoint_every=checkpoint_every,
            log_every=log_every,
            progress=progress,
            description=f"{model.learner} from data",
        )
        if resume:
            trainer.restore()

        def pick(n: int) -> Tensor:
            return torch.randperm(n_pairs, generator=gen)[:n]

        def loss_fn(step: int) -> dict[str, Tensor]:
            if step < adam_steps:
                return {"loss": trajectory_loss(model, pairs, pick(batch_size))}
            if cache.empty or (step - adam_steps) % lbfgs_resample == 0:
                cache.t = pick(lbfgs_points)

            def closure() -> Tensor:
                return trajectory_loss(model, pairs, cache.t)

            loss = closure()
            opt.set_closure(closure, loss)
            return {"loss": loss}

        started, cpu = time.perf_counter(), time.process_time()
        trainer.fit(loss_fn)
        model.eval()
        summary = {
            "learner": model.learner,
            "mode": "supervised",
            "parameters": model.num_parameters(),
            "pairs": n_pairs,
            "steps": trainer.step,
            "train_seconds": time.perf_counter() - started,
            "train_cpu_seconds": time.process_time() - cpu,
            **{f"final_{k}": v for k, v in _last_metrics(run).items()},
        }
        with torch.no_grad():
            summary["data_rmse"] = math.sqrt(float(trajectory_loss(model, pairs)) / model.dim)
        run.write_json("summary.json", summary)
        return TrainResult(model, summary, None if tmp else run.path, config, {})
    finally:
        run.close()  # let other processes open the run directory (its lock)
        if tmp is not None:
            tmp.cleanup()
