"""Every registered system, checked from the registry: energies, fields, flows, samplers, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import jacrev, jvp, vmap

import symflow.systems as s
from symflow.integrators.errors import (
    CapabilityError,
    DuplicateRegistrationError,
    InvalidArgumentError,
    UnknownNameError,
)

NAMES = s.list_systems()
WITH_FLOW = [n for n in NAMES if s.get_system(n).exact_flow is not None]
T0 = torch.tensor(0.0, dtype=torch.float64)


def states(system, n=6, seed=0, dtype=torch.float64):
    return system.sample(n, seed=seed, dtype=dtype)


def fd_gradient(energy, y, h=2e-4):
    """4th-order central differences of a per-sample energy, one coordinate at a time."""
    g = torch.empty_like(y)
    for i in range(y.shape[-1]):
        e = torch.zeros_like(y)
        e[..., i] = h
        g[..., i] = (-energy(y + 2 * e) + 8 * energy(y + e) - 8 * energy(y - e) + energy(y - 2 * e)) / (
            12 * h
        )
    return g


def test_at_least_nine_systems_are_registered():
    assert len(NAMES) >= 9
    for required in [
        "harmonic_oscillator",
        "pendulum",
        "kepler",
        "henon_heiles",
        "double_pendulum",
        "fput",
        "coupled_oscillators",
        "charged_particle",
        "nbody",
    ]:
        assert required in NAMES


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
def test_energy_and_field_broadcast_over_batch_shapes(name, dtype, batch):
    system = s.get_system(name)
    n = max(1, math.prod(batch))
    y = states(system, n, dtype=dtype).reshape(*batch, system.dim)
    energy = system.energy(y)
    assert energy.shape == batch and energy.dtype == dtype
    f = s.vector_field(system)(T0, y)
    assert f.shape == y.shape and f.dtype == dtype
    assert torch.isfinite(f).all()


@pytest.mark.parametrize("name", NAMES)
def test_vector_field_is_symplectic_gradient_of_h_by_finite_differences(name):
    system = s.get_system(name)
    y = states(system, 5, seed=3)
    g = fd_gradient(system.energy, y)
    n = system.dof
    expected = torch.cat([g[..., n:], -g[..., :n]], dim=-1)
    for autodiff in (False, True):
        f = s.vector_field(system, autodiff=autodiff)(T0, y)
        torch.testing.assert_close(f, expected, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("name", [n for n in NAMES if s.get_system(n).grad_hamiltonian is not None])
def test_hand_derived_gradient_matches_torch_func_grad(name):
    system = s.get_system(name)
    y = states(system, 7, seed=4)
    exact = s.vector_field(system, autodiff=True)(T0, y)
    torch.testing.assert_close(s.vector_field(system)(T0, y), exact, atol=1e-13, rtol=1e-13)


@pytest.mark.parametrize("name", [n for n in NAMES if s.get_system(n).separable])
def test_separable_pair_reassembles_the_full_field(name):
    system = s.get_system(name)
    y = states(system, 4, seed=5)
    split = s.separable_field(system)
    q, p = system.split(y)
    torch.testing.assert_close(
        torch.cat([split.drift(T0, p), split.kick(T0, q)], -1), s.vector_field(system)(T0, y)
    )
    assert s.vector_field(system).split is not None


@pytest.mark.parametrize("name", [n for n in NAMES if not s.get_system(n).separable])
def test_non_separable_system_refuses_a_split(name):
    with pytest.raises(CapabilityError, match="not separable"):
        s.separable_field(name)
    assert s.vector_field(name).split is None


@pytest.mark.parametrize("name", NAMES)
def test_field_works_under_vmap_and_jacrev_and_is_hamiltonian(name):
    system = s.get_system(name)
    f = s.vector_field(system, autodiff=True)
    y = states(system, 4, seed=6)
    single = vmap(lambda z: f(T0, z))(y)
    torch.testing.assert_close(single, f(T0, y))
    jac = vmap(jacrev(lambda z: f(T0, z)))(y)  # (B, D, D) = J · Hess H
    d = system.dim
    j = torch.zeros(d, d)
    j[: d // 2, d // 2 :] = torch.eye(d // 2)
    j[d // 2 :, : d // 2] = -torch.eye(d // 2)
    # Hamiltonian fields are infinitesimally symplectic, Aᵀ J + J A = 0, hence divergence-free.
    residual = jac.transpose(-1, -2) @ j + j @ jac
    assert residual.abs().max() < 1e-10
    assert torch.diagonal(jac, dim1=-2, dim2=-1).sum(-1).abs().max() < 1e-10


@pytest.mark.parametrize("name", WITH_FLOW)
def test_exact_flow_satisfies_the_ode_and_conserves_energy(name):
    system = s.get_system(name)
    y0 = states(system, 5, seed=7)
    f = s.vector_field(system)
    for t in (0.3, 2.0, 17.5):
        t = torch.tensor(t)
        yt, dyt = jvp(lambda tt: system.flow(tt, y0), (t,), (torch.ones(()),))
        torch.testing.assert_close(dyt, f(t, yt), atol=1e-11, rtol=1e-10)
        torch.testing.assert_close(system.energy(yt), system.energy(y0), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(system.flow(0.0, y0), y0, atol=1e-14, rtol=0)


@pytest.mark.parametrize("name", WITH_FLOW)
def test_exact_flow_broadcasts_times_against_the_batch(name):
    system = s.get_system(name)
    y0 = states(system, 3)
    ts = torch.linspace(0, 3, 4)
    grid = system.flow(ts[:, None], y0[None])  # (T, B, D)
    assert grid.shape == (4, 3, system.dim)
    torch.testing.assert_close(grid[2, 1], system.flow(ts[2], y0[1]))


def test_exact_flow_is_a_group_phi_s_of_phi_t_equals_phi_s_plus_t():
    for name in WITH_FLOW:
        system = s.get_system(name)
        y0 = states(system, 4, seed=8)
        a, b = torch.tensor(1.3), torch.tensor(2.9)
        torch.testing.assert_close(
            system.flow(a, system.flow(b, y0)), system.flow(a + b, y0), atol=1e-11, rtol=1e-11
        )


def test_kepler_invariants_are_conserved_by_the_exact_flow():
    kepler = s.get_system("kepler")
    y0 = states(kepler, 16, seed=9)
    yt = kepler.flow(torch.linspace(0.5, 80.0, 16), y0)  # many revolutions
    before, after = kepler.invariant_values(y0), kepler.invariant_values(yt)
    assert set(before) == {"energy", "angular_momentum", "lrl"}
    for key in before:
        torch.testing.assert_close(after[key], before[key], atol=1e-11, rtol=1e-11)
    # |A| = μ e, so the eccentricity is in [0, 0.6) for the sampler's orbits.
    assert (before["lrl"].norm(dim=-1) < 0.6).all()


def test_kepler_flow_returns_nan_for_unbound_orbits():
    kepler = s.get_system("kepler")
    escape = torch.tensor([[1.0, 0.0, 0.0, 1.5]])  # |p|²/2 = 1.125 > μ/r = 1
    assert torch.isnan(kepler.flow(1.0, escape)).all()


@pytest.mark.parametrize("name", [n for n in NAMES if s.get_system(n).invariants])
def test_registered_invariants_have_zero_poisson_bracket_with_h(name):
    # d/dt I(y(t)) = ∇I · J∇H must vanish for every conserved quantity.
    system = s.get_system(name)
    f = s.vector_field(system)
    y = states(system, 5, seed=10)
    for key, fn in system.invariants.items():

        def scalar(z, fn=fn):
            value = fn(*system.split(z))
            return value if value.dim() == z.dim() - 1 else value.sum(-1)

        rate = (s.gradient_of(scalar, y) * f(T0, y)).sum(-1)
        assert rate.abs().max() < 1e-11, key


@pytest.mark.parametrize("name", NAMES)
def test_sampler_is_reproducible_from_the_seed(name):
    system = s.get_system(name)
    a, b, c = states(system, 8, seed=11), states(system, 8, seed=11), states(system, 8, seed=12)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.isfinite(a).all()


ENERGIES = {"kepler": -0.4, "nbody": -1.0, "double_pendulum": -2.0, "henon_heiles": 1 / 12}


@pytest.mark.parametrize("name", NAMES)
def test_sampler_hits_the_requested_energy(name):
    system = s.get_system(name)
    energy = ENERGIES.get(name, 0.2)
    y = system.sample(32, seed=1, energy=energy)
    assert y.shape == (32, system.dim)
    # Damped systems on the doubled phase space: H = 0 on every physical state, so `energy=` is the
    # physical energy of the projected state (docs/damped.md).
    measure = system.energy if system.doubling is None else system.doubling.physical_energy
    torch.testing.assert_close(measure(y), torch.full((32,), energy), atol=1e-13, rtol=1e-13)


def test_henon_heiles_shell_samples_stay_in_the_bounded_triangle():
    hh = s.get_system("henon_heiles")
    y = hh.sample(500, seed=2, energy=0.16)
    x, yy = y[:, 0], y[:, 1]
    assert (yy > -0.5).all() and (yy < 1).all() and (yy < math.sqrt(3) * x + 1).all()
    with pytest.raises(InvalidArgumentError, match="bounded"):
        hh.sample(4, energy=0.2)


def test_sample_dtype_and_device_follow_the_request():
    y = s.get_system("pendulum").sample(3, dtype=torch.float32, device="cpu")
    assert y.dtype == torch.float32 and y.device.type == "cpu"


def test_unknown_system_suggests_the_closest_name():
    with pytest.raises(UnknownNameError, match="did you mean 'henon_heiles'"):
        s.get_system("henon_heils")


def test_names_are_case_and_dash_insensitive_and_aliases_resolve():
    assert s.get_system("Henon-Heiles").name == "henon_heiles"
    assert s.get_system("sho").name == "harmonic_oscillator"


def test_bad_parameter_name_is_named_with_a_suggestion():
    with pytest.raises(UnknownNameError, match="did you mean 'alpha'"):
        s.get_system("fput", alpah=0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 2.5}, "parameter 'n'"),
        ({"n": "8"}, "parameter 'n'"),
        ({"alpha": -1.0}, "parameter 'alpha'"),
        ({"alpha": float("nan")}, "parameter 'alpha'"),
        ({"n": True}, "parameter 'n'"),
    ],
)
def test_bad_parameter_values_raise_naming_the_parameter(kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        s.get_system("fput", **kwargs)


def test_parameters_change_the_system():
    chain = s.get_system("fput", n=4, alpha=0.0)
    assert chain.dim == 8 and chain.params["alpha"] == 0.0
    nb = s.get_system("nbody", n=4, dim=3, softening=0.1)
    assert nb.dim == 24
    assert nb.invariant_values(nb.sample(2))["angular_momentum"].shape == (2, 3)


def test_duplicate_registration_is_refused():
    spec = s.get_spec("pendulum")
    with pytest.raises(DuplicateRegistrationError, match="already registered"):
        s.register_system(spec)


def test_user_system_registers_and_integrates_with_the_helpers():
    def h(q, p):
        return 0.5 * (p * p).sum(-1) + (q**4).sum(-1) / 4

    quartic = s.from_hamiltonian(h, dof=1, name="quartic_test")
    try:
        s.register_system(quartic)
        got = s.get_system("quartic_test")
        y = torch.tensor([[1.0, 0.5]])
        torch.testing.assert_close(s.vector_field(got)(T0, y), torch.tensor([[0.5, -1.0]]))
        with pytest.raises(CapabilityError, match="no known exact flow"):
            got.flow(1.0, y)
        assert got.sample(2, seed=0).shape == (2, 2)  # from_hamiltonian's default sampler
        bare = s.HamiltonianSystem(name="bare", dof=1, hamiltonian=h)
        with pytest.raises(CapabilityError, match=r"no initial-condition sampler: give it one with sampler="):
            bare.sample(2)
    finally:
        s.SYSTEMS.unregister("quartic_test")


def test_wrong_state_dimension_is_an_input_error():
    with pytest.raises(InvalidArgumentError, match=r"\(\.\.\., 4\)"):
        s.get_system("henon_heiles").energy(torch.zeros(3, 2))


def test_poincare_surfaces_where_customary():
    hh = s.get_system("henon_heiles")
    assert hh.poincare is not None and hh.poincare.coords == (1, 3) and hh.poincare.direction == 1
    y = torch.tensor([[0.0, 0.1, 0.3, 0.0]])
    assert hh.poincare.g(y).item() == 0.0
