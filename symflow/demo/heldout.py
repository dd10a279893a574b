"""The demo's two surrogates on the same held-out trajectories of the same file.

The SympFlow run records its test trajectories (``config.json``: ``data.split.test``); the HNN run
(``symflow train node``) holds out a validation set drawn from the front of the same seeded
permutation (:func:`symflow.data.split_by_trajectory`). The trajectories in both are the ones neither
model trained on. Each is predicted from its first observation — the HNN by integrating its learned
field (``dopri5``), SympFlow by composing its map — at its own observation times up to ``t_max``, and
scored by the same per-trajectory RMS error against the noisy observations
(:func:`symflow.learners.data_evaluation.heldout_summary`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from symflow.integrators import InvalidArgumentError


def compare_heldout(
    data_file: str | Path,
    sympflow_run: str | Path,
    hnn_run: str | Path,
    *,
    t_max: float = 10.0,
    rtol: float = 1e-8,
) -> dict[str, Any]:
    """Held-out errors of both models on the trajectories neither trained on, to ``t_max``.

    Returns ``{"trajectories": rows, "t_max", "sympflow": summary, "hnn": summary}`` plus, for the
    figure, ``"curves"`` (elapsed times and per-observation errors of both).
    """
    from symflow.data import TrajectoryDataset, pad_for_solver, split_by_trajectory
    from symflow.discovery.training import load_node
    from symflow.integrators import solve
    from symflow.learners import load_model, load_trajectory_data
    from symflow.learners.data_evaluation import heldout_error, heldout_summary

    sym_config = json.loads((Path(sympflow_run) / "config.json").read_text())
    hnn_config = json.loads((Path(hnn_run) / "config.json").read_text())
    probe = TrajectoryDataset(data_file, check=False)
    _, hnn_val = split_by_trajectory(probe.indices, hnn_config["val_fraction"], seed=hnn_config["seed"])
    rows = sorted(set(sym_config["data"]["split"]["test"]) & {int(r) for r in hnn_val})
    if not rows:
        raise InvalidArgumentError(
            "runs", (str(sympflow_run), str(hnn_run)), "runs that hold out some of the same trajectories"
        )
    test = load_trajectory_data(TrajectoryDataset(data_file, indices=rows, check=False))
    sympflow = heldout_error(load_model(sympflow_run), test, t_max)
    hnn = load_node(hnn_run)
    t0, y0 = test.first_states()
    length = test.mask.sum(-1)
    grid = pad_for_solver(test.ts - t0[:, None], length)
    with torch.no_grad():
        sol = solve(hnn, y0, grid, "dopri5", rtol=rtol, atol=rtol * 1e-2, throw=False)
    hnn_summary = heldout_summary(sol.ys, test, t_max)
    return {
        "trajectories": rows,
        "t_max": t_max,
        "sympflow": sympflow["summary"],
        "hnn": {**hnn_summary["summary"], "integrator": f"dopri5, rtol {rtol:g}"},
        "curves": {
            "elapsed": sympflow["elapsed"],
            "used": sympflow["used"],
            "sympflow": sympflow["error"],
            "hnn": hnn_summary["error"],
        },
    }
