"""User systems from ``from_hamiltonian``: the default sampler and separability detection.

Checked against the catalogue: every registered Hamiltonian, re-wrapped as a plain callable, must be
found separable exactly when the catalogue says it is, and its derived split must give the same
field and the same Verlet trajectory as the hand-written one.
"""

from __future__ import annotations

import pytest
import torch

import symflow.systems as s
from symflow.integrators import CapabilityError, InvalidArgumentError, solve

T0 = torch.tensor(0.0, dtype=torch.float64)
NAMES = s.list_systems()


def double_well(q, p):
    return 0.5 * (p * p).sum(-1) + ((q * q - 1) ** 2).sum(-1)


def wrapped(name: str) -> tuple[s.HamiltonianSystem, s.HamiltonianSystem]:
    """A catalogue system and the same H handed to from_hamiltonian as a bare callable."""
    system = s.get_system(name)
    return system, s.from_hamiltonian(system.hamiltonian, system.dof, name=f"custom_{name}")


# -- default sampler ---------------------------------------------------------------------------------


def test_default_sampler_draws_reproducibly_from_the_box():
    well = s.from_hamiltonian(double_well, dof=2)
    y = well.sample(2000, seed=3)
    assert y.shape == (2000, 4) and y.dtype == torch.float64
    assert (y.abs() <= 1).all() and y.abs().max() > 0.99  # fills [-1, 1]^4
    assert torch.equal(y, well.sample(2000, seed=3)) and not torch.equal(y, well.sample(2000, seed=4))
    wide = s.from_hamiltonian(double_well, dof=2, box=(-3.0, [1.0, 2.0, 3.0, 4.0]))
    z = wide.sample(4000, seed=0)
    assert (z >= -3).all() and (z <= torch.tensor([1.0, 2.0, 3.0, 4.0])).all()
    assert z[:, 3].max() > 3.9 and z[:, 0].min() < -2.9


CASES = [
    ("double_well", lambda: s.from_hamiltonian(double_well, dof=1), [0.05, 0.5, 1.0, 3.0]),
    ("double_well_2dof", lambda: s.from_hamiltonian(double_well, dof=2), [0.3, 2.0]),
    ("double_pendulum", lambda: wrapped("double_pendulum")[1], [-2.5, -1.0, 1.0]),
    ("henon_heiles", lambda: wrapped("henon_heiles")[1], [1 / 12, 1 / 8]),
    ("kepler", lambda: wrapped("kepler")[1], [-1.0, -0.3]),
    ("charged_particle", lambda: wrapped("charged_particle")[1], [0.2, 1.5]),
]


@pytest.mark.parametrize(("label", "build", "energies"), CASES, ids=[c[0] for c in CASES])
def test_default_sampler_puts_every_state_on_the_requested_energy_shell(label, build, energies):
    system = build()
    for energy in energies:
        y = system.sample(256, seed=1, energy=energy)
        assert y.shape == (256, system.dim) and torch.isfinite(y).all()
        torch.testing.assert_close(
            system.energy(y), torch.full((256,), energy, dtype=torch.float64), rtol=1e-12, atol=1e-12
        )
        assert y.std(0).min() > 1e-3, f"{label}: states at E={energy} are not spread over the shell"


def test_double_well_shell_below_the_barrier_reaches_both_wells():
    y = s.from_hamiltonian(double_well, dof=1).sample(400, seed=0, energy=0.5)
    assert (y[:, 0] > 0.5).any() and (y[:, 0] < -0.5).any()
    assert (y[:, 0].abs() > 0.5).all()  # below the barrier H(0, 0) = 1 the wells are disjoint


def test_impossible_energy_names_the_box_keyword_and_the_lowest_energy_found():
    well = s.from_hamiltonian(double_well, dof=1)
    with pytest.raises(
        InvalidArgumentError, match=r"energy: .*lowest H found in the sampling box.*box=.*sampler="
    ):
        well.sample(4, energy=-0.5)
    with pytest.raises(InvalidArgumentError, match="box"):
        s.from_hamiltonian(double_well, dof=1, box=(1.0, -1.0))


def test_a_system_without_a_sampler_names_the_keyword():
    bare = s.HamiltonianSystem(name="bare", dof=1, hamiltonian=double_well)
    with pytest.raises(CapabilityError, match="sampler="):
        bare.sample(3)


def test_a_user_sampler_is_used_when_given():
    def sampler(n, gen, energy):
        return torch.full((n, 2), 0.25 if energy is None else energy, dtype=torch.float64)

    system = s.from_hamiltonian(double_well, dof=1, sampler=sampler)
    assert torch.equal(system.sample(3), torch.full((3, 2), 0.25, dtype=torch.float64))


# -- separability ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_separability_is_detected_exactly_where_the_catalogue_has_a_split(name):
    system, custom = wrapped(name)
    assert custom.separable == system.separable, repr(custom)
    assert "detected" in repr(custom) if system.separable else "∂²H/∂q∂p ≠ 0" in repr(custom)
    if not system.separable:
        return
    y = system.sample(16, seed=2)
    q, p = system.split(y)
    torch.testing.assert_close(
        custom.kinetic(p) + custom.potential(q), system.energy(y), rtol=1e-12, atol=1e-12
    )
    split_custom, split_true = s.separable_field(custom), s.separable_field(system)
    torch.testing.assert_close(split_custom(T0, y), split_true(T0, y), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("name", ["henon_heiles", "kepler", "fput"])
def test_verlet_on_a_detected_split_follows_the_catalogue_trajectory(name):
    system, custom = wrapped(name)
    y0 = system.sample(4, seed=5, energy={"kepler": -0.5}.get(name))
    ts = torch.linspace(0.0, 5.0, 51, dtype=torch.float64)
    ours = solve(s.vector_field(custom), y0, ts, "verlet", dt=0.01).ys
    ref = solve(s.vector_field(system), y0, ts, "verlet", dt=0.01).ys
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-10)


def test_separable_double_well_runs_symplectic_splittings_and_says_so():
    well = s.from_hamiltonian(double_well, dof=1, name="double_well")
    assert repr(well) == (
        "HamiltonianSystem(double_well(), dof=1, separable=True "
        "(detected: ∂²H/∂q∂p = 0 at 64 sampled states))"
    )
    y0 = well.sample(4, seed=0, energy=0.8)
    ts = torch.linspace(0, 100, 1001, dtype=torch.float64)
    f = s.vector_field(well, compile=False)
    for method, bound in (("verlet", 5e-2), ("yoshida4", 5e-3)):
        err = (well.energy(solve(f, y0, ts, method).ys) - 0.8).abs()
        first, second = err[:, :500].max(), err[:, 500:].max()
        assert second < 1.5 * first and second < bound, (method, first, second)  # bounded, no drift
    err = (well.energy(solve(f, y0, ts, "rk4").ys) - 0.8).abs()
    assert err[:, 500:].max() > 1.5 * err[:, :500].max()  # the contrast: a non-symplectic method drifts


def test_non_separable_h_fails_splittings_naming_the_keyword():
    _, custom = wrapped("double_pendulum")
    y0 = custom.sample(2)
    with pytest.raises(CapabilityError, match=r"kinetic=T, potential=V"):
        solve(s.vector_field(custom), y0, torch.linspace(0, 1, 3, dtype=torch.float64), "verlet")
    with pytest.raises(CapabilityError, match=r"kinetic=T, potential=V"):
        s.separable_field(custom)


def test_explicit_split_is_checked_against_h_and_separable_flag_is_honoured():
    T = lambda p: 0.5 * (p * p).sum(-1)  # noqa: E731
    V = lambda q: ((q * q - 1) ** 2).sum(-1)  # noqa: E731
    given = s.from_hamiltonian(double_well, dof=1, kinetic=T, potential=V)
    assert given.separable and "given" in repr(given)
    shifted = s.from_hamiltonian(double_well, dof=1, kinetic=T, potential=lambda q: V(q) + 3.0)
    assert shifted.separable  # a constant offset does not change the dynamics
    with pytest.raises(InvalidArgumentError, match="kinetic/potential"):
        s.from_hamiltonian(double_well, dof=1, kinetic=T, potential=lambda q: (q**2).sum(-1))
    only_split = s.from_hamiltonian(None, dof=1, kinetic=T, potential=V)
    torch.testing.assert_close(only_split.energy(torch.tensor([[0.5, 2.0]])), torch.tensor([2.0 + 0.5625]))
    kept_whole = s.from_hamiltonian(double_well, dof=1, separable=False)
    assert not kept_whole.separable and "separable=False" in repr(kept_whole)
    with pytest.raises(InvalidArgumentError, match="separable"):
        s.from_hamiltonian(s.get_system("double_pendulum").hamiltonian, dof=2, separable=True)


def test_value_dependent_h_is_still_checked_one_state_at_a_time():
    def piecewise(q, p):  # Python branching on values: not vmappable
        v = (q * q).sum(-1)
        return 0.5 * (p * p).sum(-1) + (v if float(v.detach().flatten()[0]) >= 0 else -v)

    system = s.from_hamiltonian(piecewise, dof=1)
    assert system.separable, repr(system)


# -- automatic differentiation of the field -----------------------------------------------------------


def test_autodiff_field_paths_agree_and_keep_graphs_where_needed():
    from torch.func import jacrev, vmap

    from symflow.systems.fields import symplectic_gradient

    _, custom = wrapped("double_pendulum")
    f = s.vector_field(custom, compile=False)
    y = custom.sample(8, seed=0)
    reference = symplectic_gradient(custom.energy, y)  # torch.func.grad, the composable path
    assert torch.equal(f(T0, y), reference)  # the plain reverse pass gives the same bits
    with torch.no_grad():
        assert torch.equal(f(T0, y), reference)
    # Under transforms and with a graph the composable path is taken: Jacobians and backprop work.
    jac = vmap(jacrev(lambda z: f(T0, z)))(y)
    assert jac.shape == (8, 4, 4) and torch.isfinite(jac).all()
    yg = y.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(T0, yg).square().sum(), yg)
    torch.testing.assert_close(g, torch.einsum("bij,bi->bj", jac, 2 * reference))


def test_a_hamiltonian_with_trainable_parameters_keeps_their_gradient():
    k = torch.nn.Parameter(torch.tensor(2.0, dtype=torch.float64))
    system = s.from_hamiltonian(lambda q, p: 0.5 * (p * p).sum(-1) + 0.5 * k * (q * q).sum(-1), dof=1)
    f = s.vector_field(system, compile=False)
    y = torch.tensor([[0.5, 0.1], [1.5, -0.2]], dtype=torch.float64)
    for _ in range(3):  # the first call finds the trainable tensor; later calls must keep using it
        out = f(T0, y)
        assert out.requires_grad
        (dk,) = torch.autograd.grad(out[:, 1].sum(), k)  # dp/dt = -k q
        assert float(dk) == pytest.approx(-2.0)


def test_auto_compile_switches_after_the_threshold_and_says_so(monkeypatch):
    from symflow.systems import autodiff

    monkeypatch.setattr(autodiff, "COMPILE_AFTER", 5)
    well = s.from_hamiltonian(double_well, dof=2, name="double_well")
    f = s.vector_field(well)  # compile="auto"
    y = well.sample(16, seed=0)
    eager = s.vector_field(well, compile=False)(T0, y)
    with pytest.warns(s.CompiledFieldWarning, match="evaluated 5 times"):
        for _ in range(6):
            out = f(T0, y)
    assert "compiled" in repr(f)
    torch.testing.assert_close(out, eager, rtol=1e-13, atol=1e-14)
    with pytest.raises(InvalidArgumentError, match="compile"):
        s.vector_field(well, compile="sometimes")


def test_separability_check_scales_to_many_degrees_of_freedom():
    import time

    chain = s.get_system("fput", n=400)  # D = 800: a dense Hessian per state would be 640k entries
    t0 = time.perf_counter()
    custom = s.from_hamiltonian(chain.hamiltonian, chain.dof)
    assert custom.separable and time.perf_counter() - t0 < 30
    y = chain.sample(3, seed=0)
    q, p = chain.split(y)
    torch.testing.assert_close(
        custom.kinetic(p) + custom.potential(q), chain.energy(y), rtol=1e-12, atol=1e-12
    )
