"""Batched numerical integrators for ``dy/dt = f(t, y)`` (pure numerics; knows nothing of learners).

>>> from symflow.integrators import solve
>>> sol = solve(f, y0, ts, method="dopri5", rtol=1e-8, atol=1e-10)   # ys: (B, T, D)

torchdiffeq users change one import (time-first outputs, its method names and options):

>>> from symflow.integrators import odeint, odeint_adjoint, odeint_event
"""

from .adjoint import AdjointOptions, adjoint_solve, gradient_audit
from .compat import odeint, odeint_adjoint, odeint_event
from .controller import INTEGRAL, PIDController
from .errors import (
    CapabilityError,
    DuplicateRegistrationError,
    IntegrationError,
    InvalidArgumentError,
    SymflowError,
    UnknownNameError,
)
from .events import Event
from .fields import SplitField, split_of
from .methods import METHODS, MethodSpec, get_method, list_methods, methods_for, register_method
from .registry import Registry
from .solution import EventRecord, Solution, Status
from .solve import solve
from .splitting import SplittingScheme
from .tableau import ButcherTableau

__all__ = [
    "INTEGRAL",
    "METHODS",
    "AdjointOptions",
    "ButcherTableau",
    "CapabilityError",
    "DuplicateRegistrationError",
    "Event",
    "EventRecord",
    "IntegrationError",
    "InvalidArgumentError",
    "MethodSpec",
    "PIDController",
    "Registry",
    "Solution",
    "SplitField",
    "SplittingScheme",
    "Status",
    "SymflowError",
    "UnknownNameError",
    "adjoint_solve",
    "get_method",
    "gradient_audit",
    "list_methods",
    "methods_for",
    "odeint",
    "odeint_adjoint",
    "odeint_event",
    "register_method",
    "solve",
    "split_of",
]
