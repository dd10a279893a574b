"""``symflow demo``: the main job end to end, from raw trajectories to a report.

1. **Data** — simulate an irregularly sampled, noisy Hénon–Heiles data set to HDF5
   (:func:`symflow.data.simulate`).
2. **Discovery** — train a Hamiltonian neural network on it: secant warm start, then full-batch L-BFGS
   on the one-step error of every pair of observations (:func:`symflow.discovery.training.train_node`).
3. **SympFlow** — train a symplectic flow map on the same file, supervised on its pairs of
   observations (:func:`symflow.learners.train_sympflow` with ``data=``); both surrogates are learned
   from the same data.
4. **Diagnostics** — both models predict the trajectories neither trained on from their first
   observations (:mod:`.heldout`); then the same orbits are followed by a Gauss–Legendre integration of
   the true system (the reference), the learned HNN field and the composed SympFlow map: energy error
   and drift, symplecticity defect and Poincaré sections of each (:func:`symflow.diagnostics.diagnose`),
   scored against the reference.
5. **Report** — side-by-side figures, ``report.json`` and ``REPORT.md`` (:mod:`.report`).

Every stage is also a CLI command (``symflow simulate``, ``symflow train node``,
``symflow train sympflow``, ``symflow diagnose RUN``); :func:`stage_commands` spells them out and the
report repeats them, so a user can rerun any stage alone.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from symflow.integrators import InvalidArgumentError
from symflow.integrators.reprs import compact_repr

from .settings import FULL, QUICK, DemoSettings, hnn_plan

DATA_FILE = "data/henon_heiles_irregular.h5"
HNN_RUN = "runs/hnn"
SYMPFLOW_RUN = "runs/sympflow"
DIAGNOSTICS = "diagnostics"


def stage_commands(s: DemoSettings, out: str = "demo-output") -> dict[str, str]:
    """The CLI commands that run each stage alone with the demo's settings."""
    return {
        "data": (
            f"symflow simulate henon_heiles --n {s.trajectories} --t-end {s.t_end:g} --irregular "
            f"--n-obs {s.observations} --noise {s.noise:g} --seed {s.seed} -o {out}/{DATA_FILE}"
        ),
        "hnn": (
            f"symflow train node --data {out}/{DATA_FILE} --model hnn --gradient explicit "
            f"--width {s.hnn_width} --depth {s.hnn_depth} --window {s.hnn_window} --batch-size {s.hnn_batch} "
            f"--lr {s.hnn_lr:g} --input-scale {s.hnn_input_scale:g} --warm-start {s.hnn_warm_start} "
            f"--steps {s.hnn_steps} --lbfgs-steps {s.hnn_lbfgs} --lbfgs-iterations {s.hnn_lbfgs_iterations} "
            f"--seed {s.seed} --out {out}/{HNN_RUN}"
        ),
        "sympflow": (
            f"symflow train sympflow --data {out}/{DATA_FILE} {_as_flags(sympflow_options(s))} --threads 1 "
            f"--out {out}/{SYMPFLOW_RUN}"
        ),
        "diagnose": (
            f"symflow diagnose {out}/{HNN_RUN} --method {s.hnn_method} --rtol {s.hnn_rtol:g} "
            f"--atol {s.hnn_rtol * 1e-2:g} --energy {s.energy:.6g} --orbits {s.orbits} "
            f"--t-end {s.orbit_t_end:g} --seed {s.seed + 1} --poincare -o {out}/{DIAGNOSTICS}/hnn"
        ),
    }


def sympflow_options(s: DemoSettings) -> dict[str, Any]:
    """The demo's SympFlow options (fields of :class:`~symflow.learners.config.SympFlowConfig`)."""
    steps = s.sympflow_adam + s.sympflow_lbfgs
    return {
        "dt": 1.0,
        "layers": s.sympflow_layers,
        "width": s.sympflow_width,
        "adam_steps": s.sympflow_adam,
        "batch_size": s.sympflow_batch,
        "schedule": "onecycle",
        "lr": s.sympflow_lr,
        "lr_final": 1e-5,
        "lbfgs_steps": s.sympflow_lbfgs,
        "lbfgs_points": s.sympflow_lbfgs_points,
        "test_fraction": s.sympflow_test,
        "horizon": 10.0,
        "eval_multiples": tuple(m for m in (1.0, 10.0, 100.0) if m <= s.orbit_t_end),
        "energy_horizon": s.sympflow_energy_horizon,
        "seed": s.seed,
        "checkpoint_every": max(1, steps // 4),
    }


def _as_flags(options: dict[str, Any]) -> str:
    """``options`` as the command-line flags ``symflow train sympflow`` generates from the same fields."""
    import dataclasses

    from symflow.cli.config_options import flags_of
    from symflow.learners.config import SympFlowConfig

    fields = {f.name: f for f in dataclasses.fields(SympFlowConfig)}
    parts = []
    for name, value in options.items():
        text = (
            " ".join(f"{v:g}" for v in value)
            if isinstance(value, tuple)
            else f"{value:g}"
            if isinstance(value, float)
            else str(value)
        )
        parts.append(f"{flags_of(fields[name])[0]} {text}")
    return " ".join(parts)


@dataclass
class DemoResult:
    """What :func:`run_demo` produced: the report (also in ``report.json``) and where things are."""

    out: Path
    report: dict[str, Any]
    report_json: Path
    report_md: Path
    figures: list[Path] = field(default_factory=list)

    def __repr__(self) -> str:
        return compact_repr(self)


def run_demo(
    out: str | Path = "demo-output",
    *,
    quick: bool = False,
    settings: DemoSettings | None = None,
    device: str = "cpu",
    progress: bool = True,
    parallel: bool | None = None,
    log: Callable[[str], None] = print,
) -> DemoResult:
    """Run the whole demo into ``out`` (created; the demo's own files in it are replaced).

    Args:
        out: output directory.
        quick: the small settings (:data:`~symflow.demo.settings.QUICK`, seconds) instead of the full
            ones (:data:`~symflow.demo.settings.FULL`, a few minutes on a 2-core CPU).
        settings: explicit settings (overrides ``quick``).
        device: where the data are simulated and the HNN is trained (``"cuda"`` when present);
            SympFlow (about a thousand weights: per-operation overhead, not arithmetic) and the
            diagnostics run on the CPU in float64.
        progress: progress bars.
        parallel: train the HNN and SympFlow at the same time in two processes (default: when the
            machine has at least two cores).
        log: receives one line per stage.
    """
    from symflow.data import simulate
    from symflow.diagnostics import IntegratorSource, diagnose, source_from_run
    from symflow.discovery.training import NodeConfig, train_node
    from symflow.systems import get_system

    from .figures import write_figures
    from .heldout import compare_heldout
    from .report import build_demo_report, write_demo_report

    s = settings or (QUICK if quick else FULL)
    device = _check_device(device)
    if parallel is None:
        parallel = (os.cpu_count() or 1) >= 2
    out = Path(out)
    (out / DATA_FILE).parent.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def stage(name: str, message: str) -> Callable[[], None]:
        log(f"[{len(timings) + 1}/{4 if parallel else 5}] {message}")
        t0 = time.perf_counter()
        return lambda: timings.__setitem__(name, time.perf_counter() - t0)

    done = stage("data", f"simulating {s.trajectories} irregularly sampled, noisy Hénon–Heiles trajectories")
    data = simulate(
        "henon_heiles",
        s.trajectories,
        s.t_end,
        output=out / DATA_FILE,
        sampling="irregular",
        n_obs=s.observations,
        noise=s.noise,
        seed=s.seed,
        device=device,
        overwrite=True,
        progress=progress,
    )
    done()

    sym_kwargs: dict[str, Any] = {
        "data": str(out / DATA_FILE),
        **sympflow_options(s),
        "run_dir": str(out / SYMPFLOW_RUN),
        "overwrite": True,
    }
    hnn_cfg = NodeConfig(
        data=str(out / DATA_FILE),
        model="hnn",
        gradient="explicit",
        width=s.hnn_width,
        depth=s.hnn_depth,
        window=s.hnn_window,
        batch_size=s.hnn_batch,
        lr=s.hnn_lr,
        steps=s.hnn_steps,
        lbfgs_steps=s.hnn_lbfgs,
        lbfgs_iterations=s.hnn_lbfgs_iterations,
        warm_start_steps=s.hnn_warm_start,
        input_scale=s.hnn_input_scale,
        seed=s.seed,
        device=device,
        checkpoint_every=max(1, (s.hnn_steps + s.hnn_lbfgs) // 4),
        val_every=max(1, (s.hnn_steps + s.hnn_lbfgs) // 4),
    )
    if parallel:
        # Two small models, each bound by per-operation overhead on one core: train them side by side,
        # SympFlow in a child process (one thread, no bar), the HNN here with its progress bar.
        done = stage(
            "training",
            f"training the HNN ({hnn_plan(s)}) and SympFlow "
            f"({s.sympflow_adam} Adam + {s.sympflow_lbfgs} L-BFGS steps) side by side, both from the file",
        )
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                future = pool.submit(_train_sympflow, sym_kwargs)
                hnn_summary = train_node(hnn_cfg, out / HNN_RUN, overwrite=True, progress=progress)
                if not future.done():
                    log("HNN trained; waiting for SympFlow")
                sym_summary = future.result()
        finally:
            torch.set_num_threads(threads)
        done()
    else:
        done = stage("hnn", f"training the HNN ({hnn_plan(s)})")
        hnn_summary = train_node(hnn_cfg, out / HNN_RUN, overwrite=True, progress=progress)
        done()
        done = stage(
            "sympflow",
            f"training SympFlow from the file ({s.sympflow_adam} Adam + {s.sympflow_lbfgs} L-BFGS steps)",
        )
        sym_summary = _train_sympflow({**sym_kwargs, "progress": progress})
        done()

    done = stage(
        "diagnostics",
        f"held-out trajectories of the file, then {s.orbits} orbits at E = {s.energy:.4g} to "
        f"t = {s.orbit_t_end:g}: {s.reference_method} reference, HNN, SympFlow",
    )
    heldout = compare_heldout(out / DATA_FILE, out / SYMPFLOW_RUN, out / HNN_RUN, t_max=10.0)
    system = get_system("henon_heiles")
    common: dict[str, Any] = dict(
        system=system,
        orbits=s.orbits,
        t_end=s.orbit_t_end,
        energy_level=s.energy,
        samples=s.samples,
        seed=s.seed + 1,  # orbits independent of the training data's initial conditions
        poincare=True,
        progress=progress,
    )
    reference = IntegratorSource.for_system(system, s.reference_method, dt=s.reference_dt)
    diag = {"reference": diagnose(out / DIAGNOSTICS / "reference", source=reference, **common)}
    ref_section = diag["reference"].section
    hnn = source_from_run(out / HNN_RUN, method=s.hnn_method, rtol=s.hnn_rtol, atol=s.hnn_rtol * 1e-2)
    diag["hnn"] = diagnose(
        out / DIAGNOSTICS / "hnn",
        source=hnn.source,
        reference=ref_section,
        learned_hamiltonian=hnn.model.hamiltonian,
        input_info=hnn.info,
        **common,
    )
    sympflow = source_from_run(out / SYMPFLOW_RUN)
    diag["sympflow"] = diagnose(
        out / DIAGNOSTICS / "sympflow",
        source=sympflow.source,
        reference=ref_section,
        input_info=sympflow.info,
        **common,
    )
    done()

    done = stage("report", "writing figures, report.json and REPORT.md")
    figures = write_figures(out, diag, heldout)
    timings["total"] = time.perf_counter() - started  # provisional, for the report's own figure
    report = build_demo_report(
        settings=s,
        device=device,
        data=data,
        hnn=hnn_summary,
        sympflow=sym_summary,
        heldout=heldout,
        diagnostics=diag,
        figures=figures,
        timings=timings,
        commands=stage_commands(s, str(out)),
        out=out,
    )
    done()
    timings["total"] = time.perf_counter() - started
    report["timings_s"] = dict(timings)
    json_path, md_path = write_demo_report(report, out)
    log(f"wrote {md_path} ({timings['total']:.0f} s)")
    return DemoResult(out, report, json_path, md_path, [f.png for f in figures])


def _train_sympflow(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Train the demo's SympFlow; runs in a child process when the training stages run side by side."""
    from symflow.learners import train_sympflow

    if "progress" not in kwargs:  # child process: one thread, float64, no bar
        torch.set_num_threads(1)
        torch.set_default_dtype(torch.float64)
        kwargs = {**kwargs, "progress": False}
    return train_sympflow(**kwargs).summary


def _check_device(device: str) -> str:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InvalidArgumentError("device", device, "'cpu' or 'cuda' (optionally 'cuda:N')") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError("device", device, "'cpu': no CUDA device is available on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise InvalidArgumentError("device", device, "'cpu' or 'cuda'")
    return str(dev)
