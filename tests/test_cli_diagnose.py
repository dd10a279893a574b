"""``symflow diagnose``: file and system inputs, the report it writes, one-line errors."""

from __future__ import annotations

import json

import h5py
import pytest
import torch

import symflow.systems as S
from symflow.cli import main
from symflow.data import write_trajectories
from symflow.diagnostics import load_report
from symflow.integrators import solve

HH = S.get_system("henon_heiles")


@pytest.fixture(scope="module")
def h5file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "hh.h5"
    y0 = HH.sample(5, seed=7, energy=1 / 10)
    ts = torch.linspace(0, 30, 61, dtype=torch.float64)
    ys = solve(S.vector_field(HH), y0, ts, "rk4", dt=0.05).ys
    write_trajectories(
        path,
        ts.expand(5, 61).numpy(),
        ys.numpy(),
        attrs={"system": "henon_heiles", "system_args": json.dumps({"lam": 1.0})},
    )
    return path


def test_diagnose_a_trajectory_file(h5file, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(
        [
            "diagnose",
            str(h5file),
            "--poincare",
            "--orbits",
            "3",
            "--t-end",
            "30",
            "--method",
            "verlet",
            "--dt",
            "0.05",
            "--quiet",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    report = load_report(out / "report.json")
    assert report["input"]["kind"] == "file" and report["input"]["system"] == "henon_heiles"
    assert report["energy"]["true"]["n_samples"] == 5  # every trajectory of the file
    assert report["poincare"]["n_orbits"] == 3
    assert report["settings"]["method"] == "verlet" and report["settings"]["dt"] == 0.05
    assert (out / "REPORT.md").is_file() and len(report["figures"]) == 4
    assert capsys.readouterr().out == ""


def test_diagnose_a_system_without_input(tmp_path, capsys):
    out = tmp_path / "sys"
    code = main(
        [
            *("diagnose", "--system", "henon_heiles", "--energy", "0.125", "--orbits", "4", "--t-end", "20"),
            *("--samples", "50", "--method", "yoshida4", "--dt", "0.1", "--pdf", "-o", str(out)),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "max symplecticity defect" in printed and "wrote" in printed
    report = load_report(out / "report.json")
    assert report["poincare"] is None and report["input"]["kind"] == "system"
    assert all(f["pdf"] for f in report["figures"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["diagnose", "-o", "x"], "--system NAME"),
        (["diagnose", "--system", "henon_heils", "-o", "x"], "did you mean 'henon_heiles'"),
        (["diagnose", "--system", "henon_heiles", "--method", "verlet", "-o", "x"], "--dt"),
        (
            [
                "diagnose",
                "--system",
                "henon_heiles",
                "--method",
                "verlet",
                "--dt",
                "0.1",
                "--rtol",
                "1e-3",
                "-o",
                "x",
            ],
            "--rtol",
        ),
        (["diagnose", "--system", "henon_heiles", "--param", "lam", "-o", "x"], "NAME=VALUE"),
        (["diagnose", "--system", "henon_heiles", "--orbits", "0", "-o", "x"], "--orbits"),
    ],
)
def test_mistakes_are_one_line_errors(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_file_mistakes(h5file, tmp_path, capsys):
    assert main(["diagnose", str(h5file), "--energy", "0.1", "-o", str(tmp_path / "a")]) == 1
    assert "--energy" in capsys.readouterr().err
    assert main(["diagnose", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "b")]) == 1
    assert "No such file" in capsys.readouterr().err
    assert main(["diagnose", str(h5file.parent), "-o", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "not a training run" in err and "hh.h5" in err
    unnamed = tmp_path / "unnamed.h5"
    with h5py.File(h5file, "r") as src:
        t, y = src["t"][...], src["y"][...]
    write_trajectories(unnamed, t, y, attrs={"system": "unknown"})
    assert main(["diagnose", str(unnamed), "-o", str(tmp_path / "d")]) == 1
    assert "--system NAME" in capsys.readouterr().err
