"""Learners: SympFlow and PINNs for Hamiltonian flows (neural-ODE models live elsewhere).

>>> from symflow.learners import train_sympflow, load_model
>>> result = train_sympflow("henon_heiles", dt=1.0, energy_max=1 / 12, adam_steps=3000, lbfgs_steps=300,
...                         run_dir="runs/hh")
>>> model = load_model("runs/hh")                       # SympFlow, weights_only checkpoint
>>> ys = model.rollout(x0, torch.linspace(0, 1000, 1001))   # (B, T, D) by composition

Every flow map (``SympFlow``, ``FlowMapPINN``) offers ``model(t, x0)`` for ``t ∈ [0, Δt]``,
``model.flow(t, x0)`` for any ``t ≥ 0``, ``model.rollout(x0, ts)``, ``model.time_derivative``,
and the attributes ``dt``, ``dim``; ``SympFlow.hamiltonian(y)`` is the recovered Hamiltonian.
See ``docs/learners.md``.
"""

from .domains import Box, Domain, EnergySublevel, SystemDomain, make_domain
from .evaluation import a_posteriori, energy_error, reference_rollout, rollout_error
from .flowmap import DERIVATIVES, FlowMap
from .losses import (
    TrajectoryPairs,
    hamiltonian_matching_loss,
    hamiltonian_matching_residual,
    ivp_loss,
    ivp_residual,
    trajectory_loss,
    trajectory_pairs,
)
from .networks import MLP, IncrementMLP
from .optim import AdamThenLBFGS
from .pinn import IVPPINN, FlowMapPINN
from .recovery import recovered_hamiltonian, recovered_vector_field, time_averaged_hamiltonian
from .registry import LEARNERS, LearnerSpec, build_model, load_model
from .sympflow import SympFlow
from .training import (
    TrainResult,
    evaluate_flow_map,
    fit_trajectories,
    system_from_config,
    train_flow_map,
    train_ivp_pinn,
    train_pinn,
    train_sympflow,
)

__all__ = [
    "DERIVATIVES",
    "IVPPINN",
    "LEARNERS",
    "MLP",
    "AdamThenLBFGS",
    "Box",
    "Domain",
    "EnergySublevel",
    "FlowMap",
    "FlowMapPINN",
    "IncrementMLP",
    "LearnerSpec",
    "SympFlow",
    "SystemDomain",
    "TrainResult",
    "TrajectoryPairs",
    "a_posteriori",
    "build_model",
    "energy_error",
    "evaluate_flow_map",
    "fit_trajectories",
    "hamiltonian_matching_loss",
    "hamiltonian_matching_residual",
    "ivp_loss",
    "ivp_residual",
    "load_model",
    "make_domain",
    "recovered_hamiltonian",
    "recovered_vector_field",
    "reference_rollout",
    "rollout_error",
    "system_from_config",
    "time_averaged_hamiltonian",
    "train_flow_map",
    "train_ivp_pinn",
    "train_pinn",
    "train_sympflow",
    "trajectory_loss",
    "trajectory_pairs",
]
