"""Continuous normalizing flows, flow matching and Liouville density transport.

>>> from symflow.cnf import CNF, TimeMLP, get_dataset, train_cnf
>>> data = get_dataset("two_moons").sample(20_000, seed=0, dtype=torch.float32)
>>> cnf = CNF(TimeMLP(2), 2, trace="hutchinson", adjoint=True)
>>> train_cnf(cnf, data, steps=1000, run="runs/moons")
>>> cnf.log_prob(x), cnf.sample(1000)

Modules: :mod:`.trace` (exact and Hutchinson divergence), :mod:`.augmented` (the ``[y, log p, …]``
ODE), :mod:`.model` (:class:`CNF`), :mod:`.flow_matching`, :mod:`.training`, :mod:`.liouville`
(Hamiltonian density transport), :mod:`.phase_space` (thermal ensembles, density fitting),
:mod:`.toy_data`, :mod:`.fields`, :mod:`.plots`. See ``docs/cnf.md``.
"""

from .augmented import AugmentedField, AugmentedState
from .fields import TimeMLP
from .flow_matching import flow_matching_loss, ot_path
from .liouville import (
    DensityTransport,
    LiouvilleReport,
    flow_log_det,
    gaussian_ensemble,
    liouville_check,
    transport_density,
)
from .model import CNF, DensityTerms, eval_mode, standard_normal_log_prob
from .phase_space import (
    PhaseSpaceFit,
    ThermalEnsemble,
    canonical_ensemble,
    density_error,
    fit_phase_space_density,
    simulate_thermal_ensemble,
)
from .toy_data import DATASETS, ToyDataset, get_dataset, list_datasets
from .trace import (
    PROBES,
    Divergence,
    draw_probe,
    exact_divergence,
    hutchinson_divergence,
    hutchinson_variance,
)
from .training import FitResult, evaluate_nll, normalisation, train_cnf, train_flow_matching

__all__ = [
    "CNF",
    "DATASETS",
    "PROBES",
    "AugmentedField",
    "AugmentedState",
    "DensityTerms",
    "DensityTransport",
    "Divergence",
    "FitResult",
    "LiouvilleReport",
    "PhaseSpaceFit",
    "ThermalEnsemble",
    "TimeMLP",
    "ToyDataset",
    "canonical_ensemble",
    "density_error",
    "draw_probe",
    "eval_mode",
    "evaluate_nll",
    "exact_divergence",
    "fit_phase_space_density",
    "flow_log_det",
    "flow_matching_loss",
    "gaussian_ensemble",
    "get_dataset",
    "hutchinson_divergence",
    "hutchinson_variance",
    "liouville_check",
    "list_datasets",
    "normalisation",
    "ot_path",
    "simulate_thermal_ensemble",
    "standard_normal_log_prob",
    "train_cnf",
    "train_flow_matching",
    "transport_density",
]
