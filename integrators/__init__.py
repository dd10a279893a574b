"""Batched numerical integrators for ``dy/dt = f(t, y)`` (pure numerics; knows nothing of learners)."""

from .errors import (
    CapabilityError,
    DuplicateRegistrationError,
    IntegrationError,
    InvalidArgumentError,
    SymflowError,
    UnknownNameError,
)
from .fields import SplitField, split_of
from .registry import Registry

__all__ = [
    "CapabilityError",
    "DuplicateRegistrationError",
    "IntegrationError",
    "InvalidArgumentError",
    "Registry",
    "SplitField",
    "SymflowError",
    "UnknownNameError",
    "split_of",
]
