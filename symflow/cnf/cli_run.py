"""One CNF training run end to end (what ``symflow train cnf`` does), as a library function.

``run_cnf_experiment(...)`` generates the data set, builds the flow, trains it (maximum likelihood or
flow matching) in a run directory with checkpoints and metrics, evaluates the held-out NLL with the
exact trace, draws the density/sample figure and writes ``summary.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from symflow.integrators import InvalidArgumentError
from symflow.training import RunDirectory
from symflow.training.checks import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    UNIT_INTERVAL_OPEN,
    check_ranges,
)

from .fields import TimeMLP
from .model import CNF
from .plots import plot_cnf
from .toy_data import get_dataset
from .training import evaluate_nll, normalisation, train_cnf, train_flow_matching

DTYPES = {"float32": torch.float32, "float64": torch.float64}

# The range of every numeric setting, checked before any work (``symflow train cnf`` checks the same
# rules against its flags).
CNF_RANGES = {
    "rtol": POSITIVE,
    "atol": POSITIVE,
    "dt": POSITIVE.or_none("the method's adaptive steps"),
    "kinetic": NON_NEGATIVE,
    "jacobian": NON_NEGATIVE,
    "sigma_min": UNIT_INTERVAL_OPEN,
    "steps": POSITIVE_INT,
    "batch_size": POSITIVE_INT,
    "lr": POSITIVE.or_none("1e-2 for mle, 2e-3 for flow matching"),
    "train_size": POSITIVE_INT,
    "test_size": POSITIVE_INT,
    "seed": NON_NEGATIVE_INT,
    "validate_every": POSITIVE_INT.or_none("no validation during training"),
    "checkpoint_every": POSITIVE_INT,
    "samples": POSITIVE_INT,
    "probes": POSITIVE_INT,
}

# Settings that must match when a run is resumed (the step count may be raised).
_RESUME_KEYS = (
    "data",
    "data_params",
    "objective",
    "trace",
    "probe",
    "probes",
    "hidden",
    "activation",
    "method",
    "rtol",
    "atol",
    "dt",
    "adjoint",
    "norm",
    "kinetic",
    "jacobian",
    "sigma_min",
    "batch_size",
    "lr",
    "train_size",
    "seed",
    "dtype",
)


def run_cnf_experiment(
    out: str | Path,
    *,
    data: str = "two_moons",
    data_params: dict[str, Any] | None = None,
    objective: str = "mle",
    trace: str = "exact",
    probe: str = "gaussian",
    probes: int = 1,
    hidden: tuple[int, ...] = (64, 64, 64),
    activation: str = "softplus",
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    dt: float | None = None,
    adjoint: bool = False,
    compile: bool = False,
    norm: str = "auto",
    kinetic: float = 0.0,
    jacobian: float = 0.0,
    sigma_min: float = 1e-4,
    steps: int = 1000,
    batch_size: int = 256,
    lr: float | None = None,
    train_size: int = 20_000,
    test_size: int = 5_000,
    seed: int = 0,
    dtype: str = "float32",
    resume: bool = False,
    overwrite: bool = False,
    validate_every: int | None = None,
    checkpoint_every: int = 100,
    samples: int = 5_000,
    plots: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a CNF in the run directory ``out``; returns the summary dict.

    ``data`` is a toy data set's name (:func:`~symflow.cnf.toy_data.list_datasets`) or the path of a
    trajectory file (``.h5``, or a sharded data set's directory), whose ensemble of phase-space
    states is fitted (:mod:`symflow.cnf.file_data`; ``data_params`` may set ``time_index``). A file
    has no exact density, so the summary then reports the held-out NLL alone.
    """
    check_ranges(locals(), CNF_RANGES)
    if dtype not in DTYPES:
        raise InvalidArgumentError("dtype", dtype, f"one of {', '.join(DTYPES)}")
    if objective not in ("mle", "flow_matching"):
        raise InvalidArgumentError("objective", objective, "'mle' or 'flow_matching'")
    torch_dtype = DTYPES[dtype]
    if lr is None:  # maximum likelihood tolerates (and needs) the larger step
        lr = 1e-2 if objective == "mle" else 2e-3
    from .file_data import file_params, is_file_data, load_file_ensemble

    from_file = is_file_data(data)
    if from_file:
        dataset: Any = load_file_ensemble(data, **file_params(data_params or {}))
    else:
        dataset = get_dataset(data, **(data_params or {}))
    settings = {
        "data": dataset.name,
        "data_params": dataset.params,
        "objective": objective,
        "trace": trace,
        "probe": probe,
        "probes": probes,
        "hidden": list(hidden),
        "activation": activation,
        "method": method,
        "rtol": rtol,
        "atol": atol,
        "dt": dt,
        "adjoint": bool(adjoint),
        "compile": bool(compile),
        "norm": norm,
        "kinetic": kinetic,
        "jacobian": jacobian,
        "sigma_min": sigma_min,
        "batch_size": batch_size,
        "lr": lr,
        "train_size": train_size,
        "seed": seed,
        "dtype": dtype,
    }
    if from_file:  # a finite sample: one seeded split into disjoint parts
        train, test = dataset.split(train_size, test_size, seed=3 * seed + 1, dtype=torch_dtype)
    else:  # train and test sets come from disjoint seeds derived from the run's seed
        train = dataset.sample(train_size, seed=3 * seed + 1, dtype=torch_dtype)
        test = dataset.sample(test_size, seed=3 * seed + 2, dtype=torch_dtype)
    loc, scale = normalisation(train)
    torch.manual_seed(seed)
    field = TimeMLP(dataset.dim, tuple(hidden), activation).to(torch_dtype)
    cnf = CNF(
        field,
        dataset.dim,
        trace=trace,
        probe=probe,
        probes=probes,
        method=method,
        rtol=rtol,
        atol=atol,
        dt=dt,
        adjoint=adjoint,
        compile=compile,
        norm=norm,
        loc=loc,
        scale=scale,
    )  # built before the run directory: bad names fail without leaving an empty run behind
    run = RunDirectory(out, resume=resume, overwrite=overwrite)
    if resume:
        _check_resume(run.path / "config.json", settings)
    common = dict(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        run=run,
        resume=resume,
        checkpoint_every=checkpoint_every,
        progress=progress,
        validation=test if validate_every else None,
        validate_every=validate_every,
        extra_config={"cli": settings},
    )
    started = time.perf_counter()
    if objective == "mle":
        fit = train_cnf(cnf, train, kinetic=kinetic, jacobian=jacobian, **common)
    else:
        fit = train_flow_matching(cnf, train, sigma_min=sigma_min, **common)
    train_seconds = time.perf_counter() - started
    nll, stderr = evaluate_nll(cnf, test)
    entropy = None if from_file else float(-dataset.log_prob(test.double()).mean())
    summary: dict[str, Any] = {
        "data": dataset.name,
        "objective": objective,
        "trace": trace,
        "steps": fit.steps,
        "train_seconds_this_call": train_seconds,
        "held_out_nll": nll,
        "held_out_nll_stderr": stderr,
        "held_out_exact_nll": entropy,
        "gap_to_exact_nats": None if entropy is None else nll - entropy,
        "test_size": int(test.shape[0]),
        "train_size": int(train.shape[0]),
        "final_metrics": fit.metrics,
    }
    if plots:
        path = plot_cnf(
            run.path / "density.png",
            cnf,
            test,
            bounds=dataset.bounds,
            exact_log_prob=dataset.log_prob if dataset.dim == 2 and not from_file else None,
            samples=samples,
            seed=seed,
            title=f"{Path(dataset.name).name}: {objective}, held-out NLL {nll:.3f} nats"
            + (f" (exact {entropy:.3f})" if entropy is not None else ""),
        )
        summary["figure"] = str(path)
    run.write_json("summary.json", summary)
    run.close()  # let other processes open the run directory (its lock)
    return summary


def _check_resume(config_path: Path, settings: dict[str, Any]) -> None:
    if not config_path.exists():
        return
    saved = json.loads(config_path.read_text()).get("cli", {})
    now = json.loads(json.dumps(settings))  # the same JSON normalisation as the saved copy
    diff = [k for k in _RESUME_KEYS if k in saved and saved[k] != now.get(k)]
    if diff:
        shown = ", ".join(f"{k}={saved[k]!r} (now {now.get(k)!r})" for k in diff)
        raise InvalidArgumentError(
            "--resume", shown, "the settings the run was started with (only --steps may change)"
        )
