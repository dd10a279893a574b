"""Readable objects: one-line reprs for every public result object; PoincareSurface.plane."""

from __future__ import annotations

import dataclasses
import importlib
import re

import pytest
import torch

import symflow.diagnostics as D
import symflow.systems as S
from symflow.integrators import Event, InvalidArgumentError, solve
from symflow.integrators.reprs import compact_repr, short

PACKAGES = [
    "symflow.integrators",
    "symflow.systems",
    "symflow.diagnostics",
    "symflow.data",
    "symflow.cnf",
    "symflow.learners",
    "symflow.discovery",
    "symflow.training",
    "symflow.demo",
]
HEAVY = ("Tensor", "Module", "CNF", "dict[str, Any]")  # what a generated repr would print in full


def public_dataclasses() -> list[type]:
    found: dict[type, None] = {}
    for name in PACKAGES:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            if isinstance(obj, type) and dataclasses.is_dataclass(obj):
                found[obj] = None
    return list(found)


def holds_data(cls: type, covered: set[type]) -> bool:
    """Fields that hold tensors, models, state dicts or other such objects (callables aside)."""
    for f in dataclasses.fields(cls):
        text = re.sub(r"Callable\[.*\]", "", str(f.type))
        if "type[" in text:
            continue
        if any(h in text for h in HEAVY) or any(c.__name__ in text for c in covered):
            return True
    return False


def test_every_public_result_object_has_its_own_compact_repr():
    classes = public_dataclasses()
    assert len(classes) > 30
    covered: set[type] = set()
    changed = True
    while changed:  # transitively: a result holding a result is a result
        changed = False
        for cls in classes:
            if cls not in covered and holds_data(cls, covered):
                covered.add(cls)
                changed = True
    generated = sorted(
        c.__name__ for c in covered if c.__repr__.__code__.co_filename.endswith("dataclasses.py")
    )
    assert len(covered) >= 15
    assert not generated, f"dataclass-generated reprs print every tensor: {generated}"


@pytest.fixture(scope="module")
def henon_heiles_results():
    hh = S.get_system("henon_heiles")
    y0 = hh.sample(200, seed=0, energy=0.12)
    src = D.IntegratorSource.for_system(hh, "verlet", dt=0.05)
    section = D.poincare_section(src, y0, 60.0)
    traj = src.trajectory(y0[:20], torch.linspace(0, 5, 51, dtype=torch.float64))
    sol = solve(
        S.vector_field(hh),
        y0[:20],
        torch.linspace(0, 20, 41, dtype=torch.float64),
        events=Event(lambda t, y: y[..., 0], 1),
        dense_output=True,
    )
    return {
        "section": section,
        "trajectories": traj,
        "energy": D.energy_error(traj, hh),
        "structure": D.structure(src, y0[:4], [0.05, 0.5]),
        "solution": sol,
        "events": sol.events,
    }


def test_a_section_with_thousands_of_crossings_prints_on_one_line(henon_heiles_results):
    section = henon_heiles_results["section"]
    assert len(section) > 1500
    text = repr(section)
    assert "\n" not in text and len(text) < 200
    counts = section.counts()
    assert text.startswith("PoincareSection('x = 0, p_x > 0', orbits=200, ")
    assert f"crossings={len(section)} ({int(counts.min())}–{int(counts.max())} per orbit)" in text
    assert "plot=('y', 'p_y'), t_end=60, failed=0" in text
    assert str(section) == text


@pytest.mark.parametrize("key", ["trajectories", "energy", "structure", "solution", "events"])
def test_result_reprs_are_one_short_line_with_their_key_facts(henon_heiles_results, key):
    obj = henon_heiles_results[key]
    text = repr(obj)
    assert "\n" not in text and len(text) < 240, text
    assert "tensor(" not in text  # no tensor contents
    expected = {
        "trajectories": "n=20, times=51, dim=4",
        "energy": "samples=20",
        "structure": "states=4, times=(0.05, 0.5)",
        "solution": "dense_output",
        "events": f"crossings={len(obj) if key == 'events' else 0}",
    }[key]
    assert expected in text, text


def test_short_shows_shapes_models_and_sizes_instead_of_contents():
    assert short(torch.zeros(5230, 4, dtype=torch.float64)) == "<5230×4 float64>"
    assert short(torch.tensor(0.25)) == "0.25"
    assert short(torch.nn.Linear(3, 2)) == "<Linear, 8 parameters>"
    assert short({f"k{i}": i for i in range(10)}) == "<10 keys: k0, k1, k2, k3, …>"
    assert short(list(range(100))) == "<100 items>"
    assert short("x" * 200).endswith("…'") and len(short("x" * 200)) < 70

    @dataclasses.dataclass
    class Result:
        weights: torch.Tensor
        note: str | None = None

    big = torch.ones(1000, 1000, dtype=torch.float32)
    assert compact_repr(Result(big)) == "Result(weights=<1000×1000 float32>)"


# -- PoincareSurface.plane ---------------------------------------------------------------------------


def test_plane_by_name_gives_the_catalogue_section():
    hh = S.get_system("henon_heiles")
    y0 = hh.sample(20, seed=1, energy=0.1)
    src = D.IntegratorSource.for_system(hh, "verlet", dt=0.05)
    plane = S.PoincareSurface.plane("x", 0.0, direction=+1, plot=("y", "p_y"), names=hh)
    assert plane.coords == hh.poincare.coords and plane.labels == hh.poincare.labels
    assert plane.description == "x = 0, x increasing"
    ours, ref = D.poincare_section(src, y0, 40.0, surface=plane), D.poincare_section(src, y0, 40.0)
    assert torch.equal(ours.t, ref.t) and torch.equal(ours.y, ref.y)
    assert hh.surface("x", plot=("y", "p_y")).coords == (1, 3)


def test_plane_at_a_level_and_direction_counts_the_right_crossings():
    osc = S.get_system("harmonic_oscillator", n=2)
    y0 = torch.tensor([[1.0, 0.5, 0.0, 0.0]], dtype=torch.float64)  # q0 = cos t: crosses 0.5 at ±π/3 + 2πk
    down = osc.surface("q0", 0.5, direction=-1, plot=("q1", "p1"))
    up = osc.surface(0, 0.5, direction=+1, plot=(1, 3))
    src = D.IntegratorSource.for_system(osc, "dopri5", rtol=1e-10, atol=1e-12)
    t_down = D.poincare_section(src, y0, 13.0, surface=down).t
    t_up = D.poincare_section(src, y0, 13.0, surface=up).t
    pi = torch.pi
    torch.testing.assert_close(t_down, torch.tensor([pi / 3, pi / 3 + 2 * pi], dtype=torch.float64))
    torch.testing.assert_close(t_up, torch.tensor([2 * pi - pi / 3, 4 * pi - pi / 3], dtype=torch.float64))


def test_plane_errors_name_the_argument():
    hh = S.get_system("henon_heiles")
    with pytest.raises(InvalidArgumentError, match=r"^coordinate: .*did you mean 'p_x'"):
        hh.surface("px", plot=("y", "p_y"))
    with pytest.raises(InvalidArgumentError, match=r"^plot: "):
        hh.surface("x", plot=("x", "p_y"))
    with pytest.raises(InvalidArgumentError, match=r"^direction: "):
        hh.surface("x", direction=2, plot=("y", "p_y"))
    with pytest.raises(InvalidArgumentError, match=r"^coordinate: .*names=system"):
        S.PoincareSurface.plane("x", plot=(1, 3))
    with pytest.raises(InvalidArgumentError, match=r"^plot: "):
        hh.surface("x", plot=("y", 7))
    generic = S.PoincareSurface.plane(0, 0.0, plot=(1, 3))
    assert generic.labels == ("y[1]", "y[3]") and repr(generic).startswith("PoincareSurface('y[0] = 0, ")
