"""What the CLI prints: simulate's observation counts, `symflow systems` tables, docs/cli.md defaults."""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pytest

import symflow.systems as S
from symflow.cli import main
from symflow.cli.main import build_parser
from symflow.cli.reference import default_of, render
from symflow.data import open_trajectories


def test_simulate_reports_observations_per_trajectory_not_the_padded_width(tmp_path, capsys):
    out = tmp_path / "p.h5"
    argv = ["simulate", "henon_heiles", "--n", "64", "--t-end", "5", "--sampling", "poisson", "--n-obs", "20"]
    assert main([*argv, "--seed", "2", "--no-progress", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    with open_trajectories(out) as f:
        _, _, length = f.read_block(0, 64)
        width = f.n_times
    lo, hi, mean = int(length.min()), int(length.max()), float(np.mean(length))
    assert lo < hi < width  # Poisson counts vary and the arrays are padded past the longest
    assert f"64 trajectories of {lo}–{hi} observations (mean {mean:.1f}; stored padded to {width})" in printed
    assert f"× {width} observations" not in printed

    out2 = tmp_path / "q.h5"
    assert main([*argv, "--seed", "2", "--no-progress", "--json", "-o", str(out2)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["observations"] == {"min": lo, "mean": pytest.approx(mean), "max": hi}
    assert summary["n_times"] == width


def test_regular_sampling_still_reads_trajectories_times_observations(tmp_path, capsys):
    out = tmp_path / "r.h5"
    assert (
        main(
            [
                "simulate",
                "pendulum",
                "--n",
                "5",
                "--t-end",
                "1",
                "--n-obs",
                "7",
                "--no-progress",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert "5 trajectories × 7 observations × dim 2" in capsys.readouterr().out


@pytest.mark.parametrize("name", S.list_systems())
def test_systems_detail_rows_are_aligned(name, capsys):
    assert main(["systems", name]) == 0
    lines = capsys.readouterr().out.splitlines()
    header, row = lines[0], lines[1]
    assert row.index(S.get_spec(name).summary) == header.index("summary")
    params = [line for line in lines[2:] if " = " in line and not line.strip().startswith("Poincaré")]
    assert len(params) == len(S.get_spec(name).parameters)
    assert len({line.index(" = ") for line in params}) == 1, params  # the '=' signs line up
    docs = {line.index(p.doc) for line, p in zip(params, S.get_spec(name).parameters)}
    assert len(docs) == 1, params  # and so do the descriptions


def _actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _actions(child)
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield action


def test_cli_reference_fills_the_default_column_wherever_a_default_is_stated():
    actions = list(_actions(build_parser()))
    stated = [a for a in actions if re.search(r"\(default", a.help or "")]
    assert len(stated) > 30
    missing = [a.option_strings or a.dest for a in stated if not default_of(a)]
    assert not missing, f"help states a default the reference does not show: {missing}"
    zero = [a for a in actions if type(a.default) is int and a.default == 0]
    assert zero and all(default_of(a) == "`0`" for a in zero)  # 0 is a default, not "no default"
    page = render()
    assert "| `-n`, `--n` | number of trajectories (default 1000) | `1000` |" in page
