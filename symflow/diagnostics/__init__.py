"""Diagnostics: energy error and drift, symplecticity defect, Poincaré sections, plots, reports.

Diagnostics accept anything that maps states forward (:mod:`.sources`): a
:class:`~symflow.integrators.Solution` or an HDF5 trajectory file (as :class:`Trajectories`), a
vector field integrated by ``solve`` or an integrator step (:class:`IntegratorSource`), a system's
exact flow (:class:`ExactFlowSource`), or a learned flow map ``model(t, x0)``
(:meth:`FlowMapSource.from_model`).

>>> import symflow.diagnostics as D
>>> src = D.IntegratorSource.for_system("henon_heiles", "verlet", dt=0.05)
>>> y0 = src.system.sample(1000, energy=1 / 8)
>>> section = D.poincare_section(src, y0, t_end=1000.0)          # every crossing of x = 0, p_x > 0
>>> D.structure(src, y0[:64], [0.05]).summary()["max_defect"]      # ~1e-16 for a symplectic step
"""

from .energy import ABS_BELOW, DRIFT_THRESHOLD, EnergyReport, drift_exponent, energy_error, energy_errors
from .pipeline import Diagnostics, diagnose
from .plots import FigureFile, plot_energy_error, plot_section, plot_structure, plot_trajectories
from .poincare import PoincareSection, poincare_section, section_distance
from .report import (
    ENERGY_KEYS,
    FIGURE_KEYS,
    INPUT_KEYS,
    POINCARE_KEYS,
    REPORT_KEYS,
    STRUCTURE_KEYS,
    ReportError,
    build_report,
    load_report,
    render_markdown,
    validate_report,
    write_report,
)
from .runs import RunDirectoryError, RunSource, source_from_run
from .sources import (
    ExactFlowSource,
    FlowMapSource,
    FlowSource,
    IntegratorSource,
    Trajectories,
    as_source,
    from_solution,
    load_trajectory_file,
)
from .symplectic import (
    StructureReport,
    flow_jacobian,
    j_matrix,
    reversibility_error,
    structure,
    symplectic_defect,
    volume_error,
)

__all__ = [
    "ABS_BELOW",
    "DRIFT_THRESHOLD",
    "ENERGY_KEYS",
    "FIGURE_KEYS",
    "INPUT_KEYS",
    "POINCARE_KEYS",
    "REPORT_KEYS",
    "STRUCTURE_KEYS",
    "Diagnostics",
    "EnergyReport",
    "ExactFlowSource",
    "FigureFile",
    "FlowMapSource",
    "FlowSource",
    "IntegratorSource",
    "PoincareSection",
    "ReportError",
    "RunDirectoryError",
    "RunSource",
    "StructureReport",
    "Trajectories",
    "as_source",
    "build_report",
    "diagnose",
    "drift_exponent",
    "energy_error",
    "energy_errors",
    "flow_jacobian",
    "from_solution",
    "j_matrix",
    "load_report",
    "load_trajectory_file",
    "plot_energy_error",
    "plot_section",
    "plot_structure",
    "plot_trajectories",
    "poincare_section",
    "render_markdown",
    "reversibility_error",
    "section_distance",
    "source_from_run",
    "structure",
    "symplectic_defect",
    "validate_report",
    "volume_error",
    "write_report",
]
