"""Neural-ODE discovery: learn the vector field of an unknown system from trajectory data.

Models (:mod:`.models`), the masked trajectory objective trained with the continuous adjoint
(:mod:`.objective`), training from HDF5 data with checkpoints and DDP (:mod:`.training`), and the
comparison with the true system (:mod:`.evaluate`); fields conditioned on per-trajectory parameters
(:mod:`.parametric`).
"""

from .evaluate import evaluate_discovery
from .models import (
    MODELS,
    AugmentedNeuralODE,
    HamiltonianNN,
    MLPVectorField,
    SeparableHamiltonianNN,
    build_model,
    observed_solve,
)
from .objective import TrajectoryObjective, fill_padded_times
from .parametric import ParametricVectorField, augment, evaluate_parametric_node

__all__ = [
    "MODELS",
    "AugmentedNeuralODE",
    "HamiltonianNN",
    "MLPVectorField",
    "ParametricVectorField",
    "SeparableHamiltonianNN",
    "TrajectoryObjective",
    "augment",
    "build_model",
    "evaluate_discovery",
    "evaluate_parametric_node",
    "fill_padded_times",
    "observed_solve",
]
