"""Learners: SympFlow and PINNs for Hamiltonian flows (neural-ODE models live elsewhere).

>>> from symflow.learners import train_sympflow, load_model
>>> result = train_sympflow("henon_heiles", dt=1.0, energy_max=1 / 12, adam_steps=3000, lbfgs_steps=300,
...                         run_dir="runs/hh")             # Hamiltonian matching on the equations
>>> result = train_sympflow(data="hh.h5", run_dir="runs/hh-data")  # supervised, from a trajectory file
>>> model = load_model("runs/hh")                       # SympFlow, weights_only checkpoint
>>> ys = model.rollout(x0, torch.linspace(0, 1000, 1001))   # (B, T, D) by composition

Options are the fields of one frozen dataclass per learner (:class:`SympFlowConfig`,
:class:`PinnConfig`), stored as ``config.json``; ``symflow train sympflow|pinn`` generates its
options from them.

Every flow map (``SympFlow``, ``FlowMapPINN``) offers ``model(t, x0)`` for ``t ∈ [0, Δt]``,
``model.flow(t, x0)`` for any ``t ≥ 0``, ``model.rollout(x0, ts)``, ``model.time_derivative``,
and the attributes ``dt``, ``dim``; ``SympFlow.hamiltonian(y)`` is the recovered Hamiltonian.
See ``docs/learners.md``.
"""

from .config import FlowMapConfig, PinnConfig, SympFlowConfig, config_class
from .data_evaluation import evaluate_data_run, hamiltonian_recovery, heldout_error
from .dissipative import PhysicalLimitFlow, damped_metrics, physical_rollout
from .domains import Box, Domain, EnergySublevel, SystemDomain, make_domain
from .evaluation import a_posteriori, energy_error, reference_rollout, rollout_error
from .flowmap import DERIVATIVES, FixedParameterMap, FlowMap
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
from .supervised import (
    DataSplit,
    PairBatches,
    TrajectoryData,
    UnusableDataError,
    load_trajectory_data,
    split_trajectories,
)
from .sympflow import SympFlow
from .training import (
    TrainResult,
    evaluate_flow_map,
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
    "DataSplit",
    "Domain",
    "EnergySublevel",
    "FixedParameterMap",
    "FlowMap",
    "FlowMapConfig",
    "FlowMapPINN",
    "IncrementMLP",
    "LearnerSpec",
    "PairBatches",
    "PhysicalLimitFlow",
    "PinnConfig",
    "SympFlow",
    "SympFlowConfig",
    "SystemDomain",
    "TrainResult",
    "TrajectoryData",
    "TrajectoryPairs",
    "UnusableDataError",
    "a_posteriori",
    "build_model",
    "config_class",
    "damped_metrics",
    "energy_error",
    "evaluate_data_run",
    "evaluate_flow_map",
    "hamiltonian_matching_loss",
    "hamiltonian_matching_residual",
    "hamiltonian_recovery",
    "heldout_error",
    "ivp_loss",
    "ivp_residual",
    "load_model",
    "load_trajectory_data",
    "make_domain",
    "physical_rollout",
    "recovered_hamiltonian",
    "recovered_vector_field",
    "reference_rollout",
    "rollout_error",
    "split_trajectories",
    "system_from_config",
    "time_averaged_hamiltonian",
    "train_flow_map",
    "train_ivp_pinn",
    "train_pinn",
    "train_sympflow",
    "trajectory_loss",
    "trajectory_pairs",
]
