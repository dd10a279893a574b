"""Figures open and show their data; the report JSON validates against its documented keys."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

import symflow.systems as S
from symflow.diagnostics import (
    REPORT_KEYS,
    IntegratorSource,
    ReportError,
    build_report,
    diagnose,
    energy_error,
    load_report,
    plot_energy_error,
    plot_section,
    plot_structure,
    plot_trajectories,
    poincare_section,
    structure,
    validate_report,
    write_report,
)

HH = S.get_system("henon_heiles")


@pytest.fixture(scope="module")
def results():
    src = IntegratorSource.for_system(HH, "verlet", dt=0.05)
    y0 = HH.sample(12, seed=0, energy=1 / 8)
    traj = src.trajectory(y0, torch.linspace(0, 50, 201, dtype=torch.float64))
    return {
        "source": src,
        "traj": traj,
        "energy": {"true": energy_error(traj, HH)},
        "structure": structure(src, y0[:6], [0.05, 0.5]),
        "section": poincare_section(src, y0, 60.0),
    }


def image(path) -> np.ndarray:
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300
    return img


def test_section_png_is_coloured_by_orbit(tmp_path, results):
    fig = plot_section(results["section"], tmp_path / "sec", pdf=True)
    img = image(fig.png)
    assert fig.pdf.is_file() and fig.pdf.read_bytes()[:4] == b"%PDF"
    # Many distinct colours: orbits are drawn in their own colours (not one uniform colour).
    colours = {tuple(np.round(px[:3], 2)) for px in img.reshape(-1, img.shape[-1])[::7]}
    assert len(colours) > 50


def test_section_side_by_side_with_a_reference(tmp_path, results):
    fig = plot_section(results["section"], tmp_path / "cmp.png", reference=results["section"])
    assert fig.png.name == "cmp.png" and image(fig.png).shape[1] > 1000  # two panels


def test_energy_structure_and_trajectory_pngs_are_written(tmp_path, results):
    for fig in (
        plot_energy_error(results["energy"], tmp_path / "energy"),
        plot_structure(results["structure"], tmp_path / "structure"),
        plot_trajectories(
            results["traj"].t[:2],
            {"a": results["traj"].y[:2], "b": results["traj"].y[:2] * 1.001},
            tmp_path / "traj",
        ),
    ):
        image(fig.png)
        assert fig.pdf is None and fig.caption


def test_energy_plot_uses_a_log_axis(tmp_path, results, monkeypatch):
    from matplotlib.axes import Axes

    scales = []
    original = Axes.set_yscale
    monkeypatch.setattr(
        Axes, "set_yscale", lambda self, value, **kw: scales.append(value) or original(self, value, **kw)
    )
    plot_energy_error(results["energy"], tmp_path / "e")
    assert "log" in scales


def test_report_round_trip_validates(tmp_path, results):
    figs = [plot_section(results["section"], tmp_path / "poincare_section")]
    report = build_report(
        input={"kind": "system", "system": "henon_heiles", "description": "test"},
        settings={"method": "verlet", "dt": 0.05},
        energy=results["energy"],
        structure=results["structure"],
        poincare=results["section"],
        figures=figs,
        root=tmp_path,
    )
    json_path, md_path = write_report(report, tmp_path)
    loaded = load_report(json_path)
    assert set(loaded) == set(REPORT_KEYS)
    assert loaded["figures"][0]["png"] == "poincare_section.png"
    assert loaded["structure"]["max_defect"] < 1e-12
    text = md_path.read_text()
    assert "Poincaré section" in text and "![" in text


def test_validation_lists_every_problem(tmp_path, results):
    report = build_report(input={"kind": "system"}, energy=results["energy"], root=tmp_path)
    validate_report(report)
    broken = json.loads(json.dumps(report))
    del broken["created"]
    broken["extra"] = 1
    broken["energy"]["true"]["max_error"] = "big"
    broken["figures"] = [{"name": "x", "png": "missing.png", "pdf": None, "caption": "c"}]
    with pytest.raises(ReportError) as err:
        validate_report(broken, root=tmp_path)
    message = str(err.value)
    for expected in (
        "report.created: missing",
        "report.extra: unknown key",
        "max_error: expected",
        "missing.png",
    ):
        assert expected in message


def test_diagnose_writes_every_figure_and_a_valid_report(tmp_path):
    src = IntegratorSource.for_system(HH, "verlet", dt=0.05)
    result = diagnose(
        tmp_path, system=HH, source=src, orbits=8, t_end=40.0, energy_level=1 / 8, poincare=True
    )
    report = load_report(tmp_path / "report.json")
    assert [f["name"] for f in report["figures"]] == [
        "energy_error",
        "trajectories",
        "structure_histogram",
        "poincare_section",
    ]
    for fig in report["figures"]:
        image(tmp_path / fig["png"])
    assert report["poincare"]["n_orbits"] == 8 and result.section is not None
    assert report["energy"]["true"]["n_samples"] == 8 and report["structure"]["max_defect"] < 1e-12


def test_example_runs_in_quick_mode(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "poincare_sections.py"
    spec = importlib.util.spec_from_file_location("poincare_sections_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reports = module.main(["--quick", "--out", str(tmp_path)])
    verlet, rk4 = reports["verlet_dt0.1"], reports["rk4_dt0.5"]
    assert verlet["structure"]["max_defect"] < 1e-12 < rk4["structure"]["max_defect"]
    assert verlet["poincare"]["distance"]["median"] < rk4["poincare"]["distance"]["median"]
    for key in reports:
        load_report(tmp_path / key / "report.json")


def test_a_flow_map_with_a_learned_hamiltonian_reports_both_energies(tmp_path):
    from symflow.diagnostics import FlowMapSource

    exact_ish = IntegratorSource.for_system(HH, "yoshida4", dt=0.05)
    model = FlowMapSource(
        lambda t, y: exact_ish.flow(t, y), max_step=0.2, system=HH, hamiltonian=lambda y: 1.05 * HH.energy(y)
    )
    result = diagnose(tmp_path, system=HH, source=model, orbits=3, t_end=6.0, samples=31, energy_level=0.1)
    assert set(result.report["energy"]) == {"true", "learned"}
    assert result.report["energy"]["learned"]["max_error"] < 1e-3  # a scaled H is conserved as well
    assert result.report["poincare"] is None
