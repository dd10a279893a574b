"""The CNF example runs end to end in its quick mode and writes its figure and summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cnf_two_moons_example_quick_mode_writes_figure_and_summary(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "cnf_two_moons.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"SYMFLOW_PROGRESS": "0", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "cnf_two_moons.json").read_text())
    # Even the short runs beat an untrained flow (about 3.4 nats); none beats the data's own density.
    assert summary["exact_nll"] - 0.1 < summary["maximum likelihood"]["held_out_nll"] < 3.32
    assert summary["exact_nll"] - 0.1 < summary["flow matching"]["held_out_nll"] < 3.1
    assert (out / "cnf_two_moons.png").stat().st_size > 20_000
    assert "held-out NLL" in proc.stdout


def test_liouville_example_quick_mode_keeps_the_log_density_and_fits_the_ensemble(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "liouville_transport.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"SYMFLOW_PROGRESS": "0", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "liouville_transport.json").read_text())
    assert max(summary["henon_heiles"]["max_abs_log_density_change"]) <= 1e-10
    assert summary["thermal_fit"]["kl"] < 0.2
    assert (out / "liouville_transport.png").stat().st_size > 20_000
