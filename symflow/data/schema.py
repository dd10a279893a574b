"""The HDF5 trajectory schema (version 1): names, attribute keys and the errors of malformed files.

A trajectory file holds ``N`` trajectories of up to ``T`` observations of a ``D``-dimensional
state. Trajectory ``i`` has ``length[i] = L_i`` observations at strictly increasing, finite times
``t[i, :L_i]``; entries past ``L_i`` are padding (NaN). Datasets (chunked along ``N``, compressed,
``fletcher32`` checksums, NaN fill value)::

    t        (N, T)     float64   observation times, NaN past length
    y        (N, T, D)  float     observed states (with observation noise, if any), NaN past length
    length   (N,)       int32     number of observations L_i, 1 <= L_i <= T
    status   (N,)       int8      optional; symflow.integrators.Status code of the solve (0 = success)
    energy   (N, T)     float     optional; H of the noise-free state at each observation
    y_clean  (N, T, D)  float     optional; noise-free states (written when noise was added)
    params   (N, P)     float     optional; per-trajectory system parameters, columns named by the
                                  root attribute param_names (a JSON list of the system's parameters)

Root attributes: ``schema="symflow.trajectories"``, ``schema_version=1``, ``symflow_version``,
``system``, ``system_args`` (JSON), ``integrator``, ``rtol``/``atol`` or ``dt``, ``seed``,
``created`` (ISO 8601), the sampling and noise settings, and ``complete=True``, written last: a
file without it was interrupted while being written and is refused. ``datasets/README.md`` is the
reference of the format.
"""

from __future__ import annotations

from typing import Any

from symflow.integrators.errors import SymflowError

SCHEMA = "symflow.trajectories"
SCHEMA_VERSION = 1

# Dataset names.
T = "t"
Y = "y"
LENGTH = "length"
STATUS = "status"
ENERGY = "energy"
Y_CLEAN = "y_clean"
PARAMS = "params"

REQUIRED_DATASETS = (T, Y, LENGTH)
OPTIONAL_DATASETS = (STATUS, ENERGY, Y_CLEAN, PARAMS)

# Root attribute keys written by every symflow writer.
ATTR_SCHEMA = "schema"
ATTR_VERSION = "schema_version"
ATTR_COMPLETE = "complete"
ATTR_SYMFLOW_VERSION = "symflow_version"
ATTR_CREATED = "created"
ATTR_PARAM_NAMES = "param_names"  # JSON list naming the P columns of `params` (the system's parameters)
ATTR_PARAM_RANGES = "param_ranges"  # JSON {name: [lo, hi]}: the family the parameters were drawn from
ATTR_WRITER_PID = "writer_pid"  # the process that wrote the file (named when a concurrent writer loses)

# Status value of rows a writer has not filled (the dataset's fill value), and of length.
STATUS_UNWRITTEN = -1
LENGTH_UNWRITTEN = 0


class DataFormatError(SymflowError, ValueError):
    """A trajectory file (or an array handed to a writer) does not follow the schema.

    Attributes:
        path: the file, when there is one.
        index: the offending trajectory's row, when the problem belongs to one trajectory.
        expected: what the schema requires there.
        got: what was found.
        problems: every problem found (a list of :class:`DataFormatError`, this one first) when
            the error sums up a validation with several findings.
    """

    def __init__(
        self,
        what: str,
        *,
        path: Any = None,
        index: int | None = None,
        expected: str | None = None,
        got: Any = None,
        problems: list[DataFormatError] | None = None,
    ) -> None:
        self.what = what
        self.path = None if path is None else str(path)
        self.index = index
        self.expected = expected
        self.got = got
        self.problems = problems if problems is not None else [self]
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.path}: " if self.path else ""
        row = f"trajectory {self.index}: " if self.index is not None else ""
        detail = ""
        if self.expected is not None:
            detail += f"; expected {self.expected}"
        if self.got is not None:
            detail += f", got {self.got}"
        return f"{where}{row}{self.what}{detail}"

    @property
    def detail(self) -> str:
        """The message without the file name (for listing several problems of one file)."""
        row = f"trajectory {self.index}: " if self.index is not None else ""
        text = f"{row}{self.what}"
        if self.expected is not None:
            text += f"; expected {self.expected}"
        if self.got is not None:
            text += f", got {self.got}"
        return text


class UnreadableFileError(DataFormatError):
    """The file is not HDF5, is truncated, or its data fail their checksums."""


class IncompleteFileError(DataFormatError):
    """The file lacks ``complete=True``: its writer was interrupted before it finished."""


class SchemaError(DataFormatError):
    """Wrong schema name or version, or a dataset that is missing or has the wrong shape or dtype."""


class TrajectoryError(DataFormatError):
    """One trajectory's values break the schema: non-finite or non-increasing times, a length out
    of range, non-finite states of a successful solve, or padding that is not NaN."""


def summarize(path: Any, problems: list[DataFormatError], limit: int = 10) -> DataFormatError:
    """One error of the first problem's type listing up to ``limit`` problems (all kept in ``problems``)."""
    first = problems[0]
    if len(problems) == 1:
        return first
    shown = "; ".join(p.detail for p in problems[:limit])
    more = f"; … ({len(problems)} problems in all)" if len(problems) > limit else ""
    return type(first)(f"{len(problems)} problems: {shown}{more}", path=path, problems=list(problems))
