"""examples/custom_double_well.py --quick: the three jobs of a new user on a system outside the registry,
and the --plugin mechanism that lets the CLI run on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import symflow.systems as S
from symflow.cli import main
from symflow.integrators import UnknownNameError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "custom_double_well.py"


def test_custom_double_well_example_does_the_three_jobs_in_quick_mode(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "SYMFLOW_PROGRESS": "0", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "double_well" not in S.list_systems()  # the system is not in the registry
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["separable"] is True
    growth = summary["energy_growth"]
    assert growth["verlet"] < 1.3 and growth["yoshida4"] < 1.3 and growth["rk4"] > 1.5  # bounded vs drift
    assert summary["diagnosis_reference"].startswith("true double_well, dopri5")
    assert summary["section_crossings"] > 100  # 16 orbits to t = 60
    report = json.loads((tmp_path / "diagnosis" / "report.json").read_text())
    assert report["input"]["system"] == "double_well" and report["energy"]["true"]["initial_energy_min"] == (
        pytest.approx(0.8, abs=1e-9)
    )
    for png in ("energy_error.png", "poincare_section.png", "diagnosis/poincare_section.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plugin_registers_a_system_for_the_command(tmp_path, capsys, monkeypatch):
    plugin = tmp_path / "my_systems.py"
    plugin.write_text(
        "import symflow.systems as S\n"
        "S.register_system(S.from_hamiltonian(lambda q, p: 0.5 * (p**2).sum(-1) + (q**4).sum(-1), 1,"
        " name='plugin_quartic_test'), overwrite=True)\n"
    )
    try:
        assert main(["--plugin", str(plugin), "systems", "plugin_quartic_test"]) == 0
        assert "plugin_quartic_test" in capsys.readouterr().out
        out = tmp_path / "q.h5"
        argv = [
            "simulate",
            "plugin_quartic_test",
            "--n",
            "4",
            "--t-end",
            "1",
            "--n-obs",
            "3",
            "--energy",
            "0.5",
        ]
        monkeypatch.setenv("SYMFLOW_PLUGINS", str(plugin))
        assert main([*argv, "--no-progress", "-o", str(out)]) == 0
    finally:
        if "plugin_quartic_test" in S.SYSTEMS:
            S.SYSTEMS.unregister("plugin_quartic_test")


def test_plugin_mistakes_and_unknown_custom_systems_are_one_line_errors(tmp_path, capsys):
    assert main(["--plugin", str(tmp_path / "missing.py"), "systems"]) == 1
    err = capsys.readouterr().err
    assert "--plugin" in err and "no such file" in err and "Traceback" not in err
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    assert main(["--plugin", str(broken), "systems"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: boom" in err and len(err.strip().splitlines()) == 2
    with pytest.raises(UnknownNameError, match=r"symflow --plugin FILE\.py"):
        S.get_system("my_double_well")
