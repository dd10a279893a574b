"""``symflow simulate`` / ``symflow validate``, the recipes in ``datasets/`` and the example script."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from symflow.cli import main
from symflow.data import load_recipe, open_trajectories, parse_recipe, validate
from symflow.integrators import UnknownNameError

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "datasets").glob("*.toml"))


def test_simulate_command_writes_an_irregular_file(tmp_path, capsys):
    out = tmp_path / "x.h5"
    rc = main(
        [
            "simulate",
            "henon_heiles",
            "--n",
            "6",
            "--t-end",
            "3",
            "--irregular",
            "--n-obs",
            "7",
            "--param",
            "lam=0.8",
            "--seed",
            "3",
            "--no-progress",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    assert "wrote" in capsys.readouterr().out
    with open_trajectories(out) as f:
        assert (f.n, f.n_times, f.dim) == (6, 7, 4)
        assert f.attrs["sampling"]["kind"] == "uniform" and f.attrs["system_args"] == {"lam": 0.8}
        t, _, _ = f.read_block(0, 6)
    assert not np.array_equal(t[0], t[1]), "per-trajectory observation times"


def test_simulate_from_a_recipe_with_overrides(tmp_path, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'description = "test"\nsystem = "pendulum"\n[simulate]\nn = 500\nt_end = 2.0\n'
        'sampling = "poisson"\nn_obs = 6\nnoise = 0.01\nseed = 9\n'
    )
    out = tmp_path / "r.h5"
    assert (
        main(["simulate", "--recipe", str(recipe), "--n", "5", "--json", "--no-progress", "-o", str(out)])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 5 and summary["failed"] == {}
    with open_trajectories(out) as f:
        assert f.n == 5 and f.attrs["recipe"] == "r" and "poisson" in f.attrs["recipe_toml"]
        assert f.attrs["recipe_overrides"] == {"n": "5"} and f.attrs["seed"] == 9
        assert "y_clean" in f.dataset_names


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["simulate", "henon_heils", "-o", "{out}"], "did you mean 'henon_heiles'"),
        (["simulate", "pendulum", "--param", "mas=2", "-o", "{out}"], "did you mean 'mass'"),
        (["simulate", "pendulum", "--param", "mass", "-o", "{out}"], "KEY=VALUE"),
        (["simulate", "pendulum", "--method", "rk4", "-o", "{out}"], "dt"),
        (["simulate", "-o", "{out}"], "name a SYSTEM"),
        (["simulate", "--recipe", "{missing}", "-o", "{out}"], "No such file"),
        (["validate", "{missing}"], "No such file"),
    ],
)
def test_cli_mistakes_are_one_line_errors(tmp_path, capsys, argv, message):
    argv = [a.format(out=tmp_path / "o.h5", missing=tmp_path / "none.toml") for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o.h5").exists()


def test_validate_command_reports_ok_and_problems(tmp_path, capsys):
    out = tmp_path / "v.h5"
    main(
        ["simulate", "pendulum", "--n", "4", "--t-end", "1", "--n-obs", "3", "--no-progress", "-o", str(out)]
    )
    capsys.readouterr()
    assert main(["validate", str(out)]) == 0
    assert capsys.readouterr().out.startswith("OK ")
    with h5py.File(out, "r+") as f:
        f["t"][2, 1] = -5.0
    assert main(["validate", str(out), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["problems"][0]["trajectory"] == 2
    assert report["problems"][0]["type"] == "TrajectoryError"


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_runs(tmp_path, recipe):
    r = load_recipe(recipe)
    assert r.description and r.options["n"] >= 1000
    out = tmp_path / "r.h5"
    r.simulate(out, n=3, t_end=min(2.0, r.options["t_end"]), progress=False)
    report = validate(out)
    assert report.ok and report.n_trajectories == 3
    with open_trajectories(out) as f:
        assert f.attrs["system"] == r.system and f.attrs["recipe"] == recipe.stem


def test_the_shipped_recipes_cover_the_standard_sets():
    names = {p.stem for p in RECIPES}
    assert {"henon_heiles_irregular", "pendulum_irregular_noisy", "kepler", "fput"} <= names
    hh = load_recipe(ROOT / "datasets" / "henon_heiles_irregular.toml")
    assert hh.options["sampling"] == "uniform" and hh.options["rtol"] == 1e-9
    pend = load_recipe(ROOT / "datasets" / "pendulum_irregular_noisy.toml")
    assert pend.options["noise"] > 0 and pend.options["sampling"] == "poisson"


def test_recipe_mistakes_are_reported():
    with pytest.raises(UnknownNameError, match="did you mean 't_end'"):
        parse_recipe('system = "pendulum"\n[simulate]\nn = 1\nt_ned = 2.0\n')
    with pytest.raises(UnknownNameError, match="did you mean 'simulate'"):
        parse_recipe('system = "pendulum"\n[simulat]\nn = 1\n')
    with pytest.raises(ValueError, match="not valid TOML"):
        parse_recipe("system = \n")
    with pytest.raises(ValueError, match="needs `t_end`"):
        parse_recipe('system = "pendulum"\n[simulate]\nn = 1\n')


def test_example_runs_in_quick_mode(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "simulate_dataset", ROOT / "examples" / "simulate_dataset.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    png = module.main(["--quick", "--out", str(tmp_path)])
    assert png.exists() and png.stat().st_size > 20_000
    assert validate(tmp_path / "henon_heiles_irregular.h5").ok
