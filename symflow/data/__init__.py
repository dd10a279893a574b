"""Trajectory data: simulation to HDF5, irregular sampling, validation, PyTorch datasets.

>>> from symflow.data import simulate, open_trajectories, TrajectoryDataset, collate_trajectories
>>> simulate("henon_heiles", 1000, 50.0, output="hh.h5", sampling="irregular", n_obs=50)
>>> ds = TrajectoryDataset("hh.h5", window=16)

The file format (schema version 1) is described in :mod:`symflow.data.schema` and, as the
reference, in ``datasets/README.md``.
"""

from .dataset import (
    TrajectoryBatch,
    TrajectoryDataset,
    collate_trajectories,
    split_by_trajectory,
    window_start,
)
from .reader import TrajectoryFile, ValidationReport, open_trajectories, validate
from .recipes import Recipe, RecipeError, load_recipe, parse_recipe
from .sampling import ObservationTimes, make_sampling, pad_for_solver
from .schema import (
    SCHEMA,
    SCHEMA_VERSION,
    DataFormatError,
    IncompleteFileError,
    SchemaError,
    TrajectoryError,
    UnreadableFileError,
)
from .simulate import SimulationResult, simulate
from .writer import OutputExistsError, TrajectoryWriter, write_trajectories

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "DataFormatError",
    "IncompleteFileError",
    "ObservationTimes",
    "OutputExistsError",
    "Recipe",
    "RecipeError",
    "SchemaError",
    "SimulationResult",
    "TrajectoryBatch",
    "TrajectoryDataset",
    "TrajectoryError",
    "TrajectoryFile",
    "TrajectoryWriter",
    "UnreadableFileError",
    "ValidationReport",
    "collate_trajectories",
    "load_recipe",
    "make_sampling",
    "open_trajectories",
    "pad_for_solver",
    "parse_recipe",
    "simulate",
    "split_by_trajectory",
    "validate",
    "window_start",
    "write_trajectories",
]
