"""Hamiltonian systems and their registry.

>>> import symflow.systems as s
>>> hh = s.get_system("henon_heiles")
>>> y0 = hh.sample(4, seed=0, energy=1 / 12)      # (4, 4) states with H = 1/12
>>> f = s.vector_field(hh)                          # f(t, y) = J∇H(y)

Layering: this package imports only ``symflow.integrators`` (for shared types), never the rest of
``symflow``.
"""

# isort: off
# Importing the catalogue registers it, simplest systems first (this is the order `list_systems` shows).
from . import oscillators, pendulums, celestial, henon_heiles, fput, dissipative  # noqa: F401

# isort: on
from .autodiff import CompiledFieldWarning
from .dissipative import (
    DissipativeSystem,
    Doubling,
    damped_harmonic_oscillator,
    damped_pendulum,
    doubled,
)
from .exact import kepler_flow, linear_flow
from .families import ParametricFamily, declared_ranges, parametric_family, parse_range
from .fields import (
    HamiltonianField,
    gradient_of,
    separable_field,
    symplectic_gradient,
    vector_field,
)
from .registry import SYSTEMS, from_hamiltonian, get_spec, get_system, list_systems, register_system
from .spec import HamiltonianSystem, Parameter, PoincareSurface, SystemSpec

__all__ = [
    "SYSTEMS",
    "CompiledFieldWarning",
    "DissipativeSystem",
    "Doubling",
    "HamiltonianField",
    "HamiltonianSystem",
    "Parameter",
    "ParametricFamily",
    "PoincareSurface",
    "SystemSpec",
    "damped_harmonic_oscillator",
    "damped_pendulum",
    "declared_ranges",
    "doubled",
    "from_hamiltonian",
    "get_spec",
    "get_system",
    "gradient_of",
    "kepler_flow",
    "linear_flow",
    "list_systems",
    "parametric_family",
    "parse_range",
    "register_system",
    "separable_field",
    "symplectic_gradient",
    "vector_field",
]
