"""`symflow demo --quick` end to end, its report, and diagnosing the run directories it leaves."""

from __future__ import annotations

import json
import shlex

import pytest
import torch

from symflow.cli.main import build_parser, main
from symflow.demo import DEMO_KEYS, QUICK, run_demo, stage_commands, validate_demo_report
from symflow.diagnostics import ReportError, RunDirectoryError, source_from_run
from symflow.discovery.warm_start import secant_pairs, warm_start


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    """`symflow demo --quick`, exactly as CI and a new user run it (through the CLI entry point)."""
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--quick", "-o", str(out), "--quiet"]) == 0
    return out, json.loads((out / "report.json").read_text())


def test_run_demo_logs_one_line_per_stage(tmp_path):
    lines: list[str] = []
    settings = QUICK.with_overrides(
        hnn_steps=2, hnn_lbfgs=1, hnn_warm_start=2, sympflow_adam=2, sympflow_lbfgs=0, orbits=2
    )
    result = run_demo(tmp_path, settings=settings, progress=False, parallel=False, log=lines.append)
    assert [line[:5] for line in lines[:5]] == ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]
    assert "wrote" in lines[-1] and result.report_md.exists()
    assert set(result.report["timings_s"]) == {"data", "hnn", "sympflow", "diagnostics", "report", "total"}


def test_quick_demo_writes_data_runs_figures_and_a_valid_report(quick_demo):
    out, report = quick_demo
    assert (out / "data" / "henon_heiles_irregular.h5").stat().st_size > 10_000
    for run in ("runs/hnn", "runs/sympflow"):
        assert (out / run / "config.json").exists() and (out / run / "summary.json").exists()
        assert any((out / run / "checkpoints").glob("*.pt"))
    validate_demo_report(report)
    assert set(report) == set(DEMO_KEYS)
    assert report["settings"]["trajectories"] == QUICK.trajectories
    assert report["hnn"]["steps"] == QUICK.hnn_steps + QUICK.hnn_lbfgs
    diag = report["diagnostics"]
    # The reference is Gauss–Legendre on the true system: symplectic and energy-conserving.
    assert diag["reference"]["max_defect"] < 1e-12
    assert diag["reference"]["energy_max_error"] < 1e-6
    # SympFlow is symplectic by construction, whatever its training; the HNN's field is integrated by
    # dopri5 at a tight tolerance, so its map is symplectic to that tolerance.
    assert diag["sympflow"]["max_defect"] < 1e-12
    assert diag["hnn"]["max_defect"] < 1e-6
    assert diag["reference"]["crossings"] > 0
    for name in ("hnn", "sympflow"):  # None only when no orbit crosses in both sections (toy sizes)
        d = diag[name]["section_distance_median"]
        assert d is None or d >= 0
    md = (out / "REPORT.md").read_text()
    for fig in report["figures"]:
        png = out / fig["png"]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
        assert f"]({fig['png']})" in md
    assert {"poincare_side_by_side", "energy_error", "prediction_error", "heldout_error"} <= {
        f["name"] for f in report["figures"]
    }
    # SympFlow is trained from the same file as the HNN; both are scored on trajectories neither saw.
    config = json.loads((out / "runs" / "sympflow" / "config.json").read_text())
    assert config["options"]["data"].endswith("henon_heiles_irregular.h5") and config["system"]
    held = report["heldout"]
    assert held["rows"] and set(held["rows"]) <= set(config["data"]["split"]["test"])
    assert held["sympflow"]["error_rms_median"] > 0 and held["hnn"]["error_rms_median"] > 0
    assert report["sympflow"]["pairs"] > 0 and report["sympflow"]["symplecticity_defect_max"] < 1e-12
    for name in ("reference", "hnn", "sympflow"):
        assert (out / diag[name]["report"]).exists()


def test_report_states_every_stage_as_a_command_the_cli_accepts(quick_demo):
    _, report = quick_demo
    commands = report["commands"]
    assert list(commands) == ["data", "hnn", "sympflow", "diagnose"]
    parser = build_parser()
    for line in commands.values():
        argv = shlex.split(line)
        assert argv[0] == "symflow"
        parser.parse_args(argv[1:])  # exits (SystemExit) on an unknown option
    assert stage_commands(QUICK, "x")["hnn"].count("--warm-start") == 1


def test_cli_diagnoses_the_run_directories(quick_demo, tmp_path, capsys):
    out, _ = quick_demo
    common = ["--energy", "0.08", "--orbits", "2", "--t-end", "6", "--poincare", "--quiet"]
    assert main(["diagnose", str(out / "runs" / "sympflow"), *common, "-o", str(tmp_path / "s")]) == 0
    report = json.loads((tmp_path / "s" / "report.json").read_text())
    assert report["input"]["kind"] == "run" and report["structure"]["max_defect"] < 1e-12
    argv = [
        "diagnose",
        str(out / "runs" / "hnn"),
        "--method",
        "gl4",
        "--dt",
        "0.2",
        *common,
        "-o",
        str(tmp_path / "h"),
    ]
    assert main(argv) == 0
    report = json.loads((tmp_path / "h" / "report.json").read_text())
    assert report["settings"]["method"] == "gl4" and "learned" in report["energy"]
    # A flow map is its own integrator: integrator options are refused in one line.
    bad = ["diagnose", str(out / "runs" / "sympflow"), "--method", "rk4", *common, "-o", str(tmp_path / "x")]
    assert main(bad) == 1
    assert "its own integrator" in capsys.readouterr().err


def test_directories_that_are_not_runs_are_refused(tmp_path, capsys):
    with pytest.raises(RunDirectoryError, match=r"no config\.json"):
        source_from_run(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"learner": "cnf"}))
    with pytest.raises(RunDirectoryError, match="node, sympflow or pinn"):
        source_from_run(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["diagnose", str(empty), "-o", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "not a training run" in err and "Traceback" not in err


def test_demo_rejects_an_unusable_device_in_one_line(tmp_path, capsys):
    assert main(["demo", "--quick", "--device", "tpu", "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("symflow demo: error:") and "'cpu' or 'cuda'" in err[0]
    assert "Traceback" not in "".join(err) and not any(tmp_path.iterdir())
    if not torch.cuda.is_available():
        assert main(["demo", "--quick", "--device", "cuda", "-o", str(tmp_path)]) == 1
        assert "no CUDA device" in capsys.readouterr().err


def test_demo_report_validation_names_missing_and_unknown_keys(quick_demo):
    _, report = quick_demo
    broken = dict(report)
    broken.pop("hnn")
    broken["extra"] = 1
    with pytest.raises(ReportError, match=r"missing \['hnn'\], unknown \['extra'\]"):
        validate_demo_report(broken)


def test_secant_pairs_are_exact_for_straight_lines_and_respect_the_gap_limits():
    ts = torch.tensor([[0.0, 0.05, 0.4, 1.0, 3.0]])
    slope = torch.tensor([0.5, -2.0])
    ys = ts.unsqueeze(-1) * slope + torch.tensor([1.0, 3.0])
    mask = torch.ones_like(ts, dtype=torch.bool)
    t_mid, y_mid, s = secant_pairs(ts, ys, mask, min_gap=0.1, max_gap=1.0)
    # gaps 0.05 (too small) and 2.0 (too large) are left out
    assert torch.allclose(t_mid, torch.tensor([0.225, 0.7]))
    assert torch.allclose(s, slope.expand(2, 2)) and torch.allclose(
        y_mid, t_mid.unsqueeze(-1) * slope + torch.tensor([1.0, 3.0])
    )
    mask[0, 2] = False  # an unobserved point removes both pairs that touch it
    assert secant_pairs(ts, ys, mask, min_gap=0.1, max_gap=1.0)[0].numel() == 0


def test_warm_start_fits_a_linear_field_from_its_secants():
    from symflow.discovery.models import build_model

    torch.manual_seed(0)
    a = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])  # harmonic oscillator, exact flow = rotation
    ts = torch.sort(torch.rand(32, 12) * 6, dim=1).values
    y0 = torch.randn(32, 2) * 0.5
    c, s_ = torch.cos(ts), torch.sin(ts)
    ys = torch.stack([c * y0[:, :1] + s_ * y0[:, 1:], -s_ * y0[:, :1] + c * y0[:, 1:]], dim=-1)
    mask = torch.ones_like(ts, dtype=torch.bool)
    model = build_model("mlp", 2, width=32, depth=2)
    out = warm_start(model, ts, ys, mask, steps=400, lr=1e-2, min_gap=0.05, max_gap=0.8)
    y = torch.randn(64, 2) * 0.4
    err = (model(torch.zeros(()), y) - y @ a.T).norm(dim=-1) / (y @ a.T).norm(dim=-1)
    assert out["pairs"] > 100 and out["slope_mse"] < 1e-2
    assert err.median() < 0.1


def test_warm_start_steps_must_be_a_non_negative_integer(tmp_path):
    from symflow.discovery.training import NodeConfig
    from symflow.integrators import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="warm_start_steps"):
        NodeConfig(data="x.h5", warm_start_steps=-1).validate()
