"""One frozen configuration dataclass per learner: :class:`SympFlowConfig` and :class:`PinnConfig`.

A configuration holds everything a training run needs — data source, model, domain, optimisation,
evaluation — and is stored as ``config.json`` in the run directory. Every field carries its own
documentation and valid range (:func:`option`), so

* a configuration is checked field by field when it is built (a typed
  :class:`~symflow.integrators.errors.InvalidArgumentError` naming the field and the value, before any
  work starts);
* the command-line options of ``symflow train sympflow|pinn`` are generated from the fields
  (:mod:`symflow.cli.config_options`), so the API and the CLI cannot drift apart.

The two data sources of a flow-map learner are two settings of the same configuration: ``system``
(Hamiltonian matching on the equations, unsupervised) or ``data`` (a trajectory file, supervised).
Options that belong to the other source are refused when set (:meth:`FlowMapConfig.check_source`).

The published SympFlow code (Canizares et al., arXiv:2412.16787, 2024) trains with a box domain,
collocation times ``t ∈ [−0.1, Δt]``, gradient clipping at norm 1, a one-cycle learning rate and the
best checkpoint by a held-out loss; every one of those is an option here (``box``,
``collocation_times``, ``grad_clip``, ``schedule="onecycle"``, ``keep_best``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from symflow.integrators.errors import InvalidArgumentError, UnknownNameError

#: The kinds of option values: how they are checked, serialised and parsed on the command line.
KINDS = ("int", "float", "bool", "str", "floats", "params", "ranges")


def option(
    default: Any,
    *,
    kind: str,
    help: str,
    group: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
    choices: Sequence[str] | None = None,
    flags: Sequence[str] | None = None,
    metavar: str | None = None,
    lengths: str | None = None,
) -> Any:
    """A configuration field with its documentation and valid range.

    Args:
        default: the default value (``dict`` defaults become a factory).
        kind: one of :data:`KINDS`.
        help: one line for ``--help`` and the CLI reference.
        group: the section of ``--help`` the option is listed under.
        low, high: the valid range of a number (inclusive unless ``low_open``/``high_open``).
        optional: ``None`` is a valid value (meaning: the documented automatic choice).
        choices: the valid strings.
        flags: command-line spellings (default ``--field-name``).
        metavar: the placeholder in ``--help``.
        lengths: for ``floats``: ``"2"`` (exactly two numbers), ``"pairs"`` (an even count) or
            ``"any"``.
    """
    if kind not in KINDS:
        raise ValueError(f"option kind {kind!r} is not one of {KINDS}")
    meta = {
        "kind": kind,
        "help": help,
        "group": group,
        "low": low,
        "high": high,
        "low_open": low_open,
        "high_open": high_open,
        "optional": optional,
        "choices": tuple(choices) if choices is not None else None,
        "flags": tuple(flags) if flags is not None else None,
        "metavar": metavar,
        "lengths": lengths,
    }
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


def range_text(meta: Mapping[str, Any]) -> str:
    """The valid values of a field in words, e.g. ``"a number > 0"``, ``"an integer >= 1"``."""
    noun = {"int": "an integer", "float": "a finite number", "floats": "finite numbers"}[meta["kind"]]
    bounds = []
    if meta["low"] is not None:
        bounds.append(f"{'>' if meta['low_open'] else '>='} {meta['low']:g}")
    if meta["high"] is not None:
        bounds.append(f"{'<' if meta['high_open'] else '<='} {meta['high']:g}")
    text = f"{noun} {' and '.join(bounds)}" if bounds else noun
    return text + (" (or None)" if meta["optional"] else "")


def _check_number(name: str, value: Any, meta: Mapping[str, Any]) -> float | int:
    integer = meta["kind"] == "int"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        raise InvalidArgumentError(name, value, range_text(meta))
    low, high = meta["low"], meta["high"]
    if low is not None and (value <= low if meta["low_open"] else value < low):
        raise InvalidArgumentError(name, value, range_text(meta))
    if high is not None and (value >= high if meta["high_open"] else value > high):
        raise InvalidArgumentError(name, value, range_text(meta))
    return int(value) if integer else float(value)


def check_field(name: str, value: Any, meta: Mapping[str, Any]) -> Any:
    """``value`` checked against the field's kind, range and choices; returns it normalised (floats
    as ``float``, number lists as tuples). Raises :class:`InvalidArgumentError` naming ``name``."""
    if value is None:
        if meta["optional"]:
            return None
        expected = range_text(meta) if meta["kind"] in ("int", "float", "floats") else f"a {meta['kind']}"
        raise InvalidArgumentError(name, value, f"{expected}, not None")
    kind = meta["kind"]
    if kind in ("int", "float"):
        return _check_number(name, value, meta)
    if kind == "bool":
        if not isinstance(value, bool):
            raise InvalidArgumentError(name, value, "True or False")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise InvalidArgumentError(name, value, "a string")
        if meta["choices"] is not None and value not in meta["choices"]:
            raise InvalidArgumentError(name, value, f"one of {', '.join(meta['choices'])}")
        return value
    if kind == "floats":
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise InvalidArgumentError(name, value, "a list of numbers")
        numbers = tuple(_check_number(name, v, {**meta, "kind": "float"}) for v in value)
        lengths = meta["lengths"] or "any"
        if lengths == "2" and len(numbers) != 2:
            raise InvalidArgumentError(name, value, "exactly two numbers LO HI")
        if lengths == "pairs" and (len(numbers) == 0 or len(numbers) % 2):
            raise InvalidArgumentError(name, value, "pairs of numbers LO HI (an even count)")
        if lengths == "any" and not numbers:
            raise InvalidArgumentError(name, value, "at least one number")
        return numbers
    if kind == "ranges":  # parameter name -> [lo, hi], or None for the system's declared range
        if not isinstance(value, Mapping) or not all(isinstance(k, str) and k for k in value):
            raise InvalidArgumentError(name, value, "a mapping of parameter names to ranges (lo, hi)")
        out: dict[str, Any] = {}
        for key, bounds in value.items():
            if bounds is None:
                out[key] = None
                continue
            ok = isinstance(bounds, Sequence) and not isinstance(bounds, (str, bytes)) and len(bounds) == 2
            ok = ok and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
            if not ok or not (
                math.isfinite(bounds[0]) and math.isfinite(bounds[1]) and bounds[0] < bounds[1]
            ):
                raise InvalidArgumentError(f"{name}[{key!r}]", bounds, "a range LO:HI with LO < HI, finite")
            out[key] = [float(bounds[0]), float(bounds[1])]
        return out
    # params: a mapping of parameter names to numbers (a system's parameters)
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidArgumentError(name, value, "a mapping of parameter names to numbers")
    for key, v in value.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InvalidArgumentError(f"{name}[{key!r}]", v, "a finite number")
    return dict(value)


# Fields that only matter for one of the two data sources of a flow map. Setting one of them to a
# value other than its default with the other source is refused (it would be silently ignored).
UNSUPERVISED_ONLY = (
    "energy_max",
    "box",
    "collocation_times",
    "collocation",
    "validation_points",
    "param_ranges",
    "relative_residual",
)
SUPERVISED_ONLY = ("val_fraction", "test_fraction", "pairs", "pair_horizon", "batch_size", "eval_multiples")
#: Fields a resumed run may change: the L-BFGS budget, and what is evaluated and written afterwards.
RESUMABLE = (
    "lbfgs_steps",
    "evaluate",
    "horizon",
    "energy_horizon",
    "eval_samples",
    "eval_multiples",
    "plots",
    "checkpoint_every",
    "log_every",
)

SOURCE, MODEL, DOMAIN, OPTIM, DATA, EVAL, RUN = (
    "data source",
    "model",
    "domain (Hamiltonian matching)",
    "optimisation",
    "trajectory data (supervised)",
    "evaluation",
    "run",
)


@dataclass(frozen=True)
class FlowMapConfig:
    """The options every flow-map learner shares (see the module docstring); subclasses add the model.

    Build it with keyword arguments; every field is checked on construction. ``to_dict()`` is what
    ``config.json`` stores and ``from_dict()`` reads it back.
    """

    learner: ClassVar[str] = ""

    # -- data source ---------------------------------------------------------------------------------
    system: str | None = option(
        None,
        kind="str",
        optional=True,
        group=SOURCE,
        help="registered system: learn its flow by Hamiltonian matching on the equations (unsupervised)",
    )
    system_args: dict[str, float] = option(  # noqa: RUF009 (option() returns a field with a factory)
        {},
        kind="params",
        group=SOURCE,
        flags=("--param",),
        metavar="NAME=VALUE",
        help="system parameter (repeatable), e.g. lam=1.0",
    )
    param_ranges: dict[str, list[float] | None] = option(  # noqa: RUF009 (option() returns a field with a factory)
        {},
        kind="ranges",
        group=SOURCE,
        flags=("--param-range",),
        metavar="NAME=LO:HI",
        help="learn the whole parametric family: the parameter varies in [LO, HI] (repeatable; NAME alone: "
        "the system's declared range), e.g. omega=0.5:2; the model is then N(t, x0; μ)",
    )
    data: str | None = option(
        None,
        kind="str",
        optional=True,
        group=SOURCE,
        metavar="FILE",
        help="trajectory file (HDF5): learn the flow from its observed pairs (supervised); not with --system",
    )
    t_key: str | None = option(
        None, kind="str", optional=True, group=SOURCE, help="plain-layout files: name of the times dataset"
    )
    y_key: str | None = option(
        None, kind="str", optional=True, group=SOURCE, help="plain-layout files: name of the states dataset"
    )
    mask_key: str | None = option(
        None, kind="str", optional=True, group=SOURCE, help="plain-layout files: name of the mask dataset"
    )

    # -- model -------------------------------------------------------------------------------------
    dt: float = option(
        1.0,
        kind="float",
        low=0.0,
        low_open=True,
        group=MODEL,
        help="Δt: the map is trained on t ∈ [0, Δt]; longer times by composition",
    )
    dtype: str = option("float64", kind="str", choices=("float64", "float32"), group=MODEL, help="precision")
    device: str = option("cpu", kind="str", group=MODEL, help="where the model trains: cpu, cuda or cuda:N")

    # -- domain (unsupervised) -------------------------------------------------------------------------
    energy_max: float | None = option(
        None,
        kind="float",
        optional=True,
        group=DOMAIN,
        metavar="E",
        help="train on Ω = {H ≤ E} (forward invariant); default: the system's own sampler",
    )
    box: tuple[float, ...] | None = option(
        None,
        kind="floats",
        optional=True,
        lengths="pairs",
        group=DOMAIN,
        metavar="LO HI",
        help="the box Ω is drawn from: LO HI for every coordinate, or LO1 HI1 LO2 HI2 … one pair per "
        "coordinate; with --energy-max, the box the sublevel set is sampled in",
    )
    collocation_times: tuple[float, float] | None = option(
        None,
        kind="floats",
        optional=True,
        lengths="2",
        group=DOMAIN,
        metavar="LO HI",
        help="collocation times are drawn uniformly in [LO, HI] (default 0 Δt; the published code "
        "uses -0.1 Δt)",
    )
    collocation: int = option(
        700, kind="int", low=1, group=DOMAIN, help="fresh collocation points per Adam step"
    )
    validation_points: int = option(
        2000, kind="int", low=1, group=DOMAIN, help="held-out collocation points for the validation residual"
    )
    relative_residual: bool = option(
        False,
        kind="bool",
        group=DOMAIN,
        help="weight each collocation residual by 1/|x0|^2 (scale-free accuracy, for damped systems whose "
        "states decay towards 0; docs/damped.md)",
    )

    # -- trajectory data (supervised) -----------------------------------------------------------------
    val_fraction: float = option(
        0.1,
        kind="float",
        low=0.0,
        high=1.0,
        high_open=True,
        group=DATA,
        help="fraction of the trajectories held out for validation (whole trajectories)",
    )
    test_fraction: float = option(
        0.1,
        kind="float",
        low=0.0,
        high=1.0,
        high_open=True,
        group=DATA,
        help="fraction of the trajectories held out for the final evaluation (whole trajectories)",
    )
    pairs: str = option(
        "all",
        kind="str",
        choices=("all", "first"),
        group=DATA,
        help="training pairs: every pair of observations of a trajectory within --pair-horizon (all), or "
        "only from each trajectory's first observation (first: the published method's setting)",
    )
    pair_horizon: float | None = option(
        None,
        kind="float",
        optional=True,
        low=0.0,
        low_open=True,
        group=DATA,
        help="largest time gap of a training pair (default Δt; longer gaps are predicted by composition)",
    )
    batch_size: int = option(700, kind="int", low=1, group=DATA, help="pairs per Adam step")

    # -- optimisation ----------------------------------------------------------------------------------
    adam_steps: int = option(
        2000,
        kind="int",
        low=0,
        group=OPTIM,
        flags=("--steps",),
        help="Adam steps (supervised: an epoch is ⌈pairs / batch size⌉ steps)",
    )
    lbfgs_steps: int = option(0, kind="int", low=0, group=OPTIM, help="L-BFGS steps after Adam")
    lbfgs_points: int = option(
        2000, kind="int", low=1, group=OPTIM, help="L-BFGS collocation points (or pairs) per set"
    )
    lbfgs_resample: int = option(10, kind="int", low=1, group=OPTIM, help="redraw that set every N steps")
    lbfgs_iterations: int = option(20, kind="int", low=1, group=OPTIM, help="L-BFGS iterations per step")
    lr: float = option(
        1e-2,
        kind="float",
        low=0.0,
        low_open=True,
        high=10.0,
        group=OPTIM,
        help="Adam learning rate (cosine: the first; onecycle: the peak)",
    )
    lr_final: float = option(
        1e-4,
        kind="float",
        low=0.0,
        low_open=True,
        high=10.0,
        group=OPTIM,
        help="the last Adam learning rate (onecycle: also the first)",
    )
    schedule: str = option(
        "cosine",
        kind="str",
        choices=("cosine", "onecycle", "constant"),
        group=OPTIM,
        help="learning rate: cosine lr → lr-final (in log space); onecycle lr-final → lr → lr-final; "
        "or constant lr",
    )
    warmup: float = option(
        0.3,
        kind="float",
        low=0.0,
        high=1.0,
        high_open=True,
        group=OPTIM,
        help="onecycle: fraction of the Adam steps spent rising to the peak",
    )
    grad_clip: float | None = option(
        None,
        kind="float",
        optional=True,
        low=0.0,
        low_open=True,
        group=OPTIM,
        help="clip the gradient norm of each Adam step to this (the published code uses 1)",
    )
    seed: int = option(0, kind="int", low=0, group=OPTIM, help="seed of initialisation, sampling and split")
    keep_best: bool = option(
        False,
        kind="bool",
        group=OPTIM,
        help="keep the weights with the lowest validation loss, not the last ones",
    )
    validate_every: int = option(100, kind="int", low=1, group=OPTIM, help="steps between validation losses")

    # -- evaluation ------------------------------------------------------------------------------------
    evaluate: bool = option(
        True, kind="bool", group=EVAL, flags=("--no-eval",), help="skip the evaluation after training"
    )
    horizon: float | None = option(
        None,
        kind="float",
        optional=True,
        low=0.0,
        group=EVAL,
        help="trajectory-error horizon (default: 100Δt with an exact flow, else 10Δt; with --data: "
        "every held-out observation)",
    )
    energy_horizon: float | None = option(
        None, kind="float", optional=True, low=0.0, group=EVAL, help="energy-error horizon (default 1000Δt)"
    )
    eval_samples: int = option(16, kind="int", low=1, group=EVAL, help="initial states for the evaluation")
    eval_multiples: tuple[float, ...] = option(
        (1.0, 10.0, 100.0),
        kind="floats",
        low=0.0,
        low_open=True,
        group=EVAL,
        metavar="K",
        help="with --data: report the error at these multiples of Δt (by composition) from the test "
        "trajectories' first states",
    )
    plots: bool = option(True, kind="bool", group=EVAL, flags=("--no-plots",), help="skip the PNG figures")

    # -- run -------------------------------------------------------------------------------------------
    checkpoint_every: int = option(200, kind="int", low=1, group=RUN, help="steps between checkpoints")
    log_every: int = option(10, kind="int", low=1, group=RUN, help="steps between metrics.jsonl lines")

    # -- checks ----------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = check_field(f.name, getattr(self, f.name), f.metadata)
            object.__setattr__(self, f.name, value)
        self._check_combinations()

    def _check_combinations(self) -> None:
        if self.system is not None and self.data is not None:
            raise InvalidArgumentError(
                "data",
                self.data,
                f"one data source: a system to match (--system {self.system}) or a trajectory file "
                "(--data), not both",
            )
        if self.system_args and self.system is None:
            raise InvalidArgumentError("system_args", self.system_args, "a --system they belong to")
        if self.param_ranges and self.system is None and self.data is None:
            raise InvalidArgumentError("param_ranges", self.param_ranges, "a --system whose family they span")
        if self.val_fraction + self.test_fraction >= 1:
            raise InvalidArgumentError(
                "test_fraction",
                self.test_fraction,
                f"val_fraction + test_fraction < 1 (val_fraction is {self.val_fraction}): "
                "some trajectories must be left to train on",
            )
        if self.collocation_times is not None:
            lo, hi = self.collocation_times
            if not (lo < hi and hi > 0):
                raise InvalidArgumentError("collocation_times", self.collocation_times, "LO < HI with HI > 0")
        if self.adam_steps + self.lbfgs_steps == 0:
            raise InvalidArgumentError("adam_steps", self.adam_steps, "at least one training step in total")
        if self.device.split(":")[0] not in ("cpu", "cuda"):
            raise InvalidArgumentError("device", self.device, "'cpu', 'cuda' or 'cuda:N'")

    def check_source(self, source: str) -> None:
        """Refuse options of the other data source (``source`` is ``"system"`` or ``"data"``): they
        would be silently ignored otherwise."""
        others = UNSUPERVISED_ONLY if source == "data" else SUPERVISED_ONLY
        defaults = type(self)()
        for name in others:
            if getattr(self, name) != getattr(defaults, name):
                what = (
                    "Hamiltonian matching on a system (--system)"
                    if source == "data"
                    else "training from a trajectory file (--data)"
                )
                raise InvalidArgumentError(name, getattr(self, name), f"nothing here: it applies to {what}")
        if self.keep_best and source == "data" and self.val_fraction == 0:
            raise InvalidArgumentError(
                "keep_best", True, "validation trajectories to choose by (val_fraction > 0)"
            )

    # -- derived values ------------------------------------------------------------------------------
    def time_range(self) -> tuple[float, float]:
        """The collocation time range ``[lo, hi]`` (default ``[0, Δt]``)."""
        return self.collocation_times if self.collocation_times is not None else (0.0, self.dt)

    def model_args(self, dim: int) -> dict[str, Any]:  # pragma: no cover - per learner
        raise NotImplementedError

    # -- serialisation -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values (what ``config.json`` stores under ``"options"``)."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FlowMapConfig:
        """A configuration from :meth:`to_dict`'s output or keyword options; unknown names are errors."""
        known = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                import difflib

                close = difflib.get_close_matches(key, known, n=2)
                raise UnknownNameError(f"{cls.learner} option", key, known, close)
        return cls(**dict(values))

    def replace(self, **changes: Any) -> FlowMapConfig:
        """A copy with ``changes`` applied (checked like a new configuration)."""
        return type(self).from_dict({**self.to_dict(), **changes})


@dataclass(frozen=True)
class SympFlowConfig(FlowMapConfig):
    """Configuration of a SympFlow run (:class:`~symflow.learners.SympFlow`); see
    :class:`FlowMapConfig` for the shared options."""

    learner: ClassVar[str] = "sympflow"

    layers: int = option(
        4, kind="int", low=1, high=1000, group=MODEL, help="number of (φ_q, φ_p) block pairs L"
    )
    width: int = option(
        10, kind="int", low=1, high=100000, group=MODEL, help="hidden units of each potential"
    )
    hidden_layers: int = option(
        2, kind="int", low=1, high=100, group=MODEL, help="hidden layers of each potential"
    )
    derivatives: str = option(
        "closed_form",
        kind="str",
        choices=("closed_form", "func", "autograd"),
        group=MODEL,
        help="how ∇V, ∇K and dN/dt are computed (same numbers, different speed)",
    )

    def model_args(self, dim: int) -> dict[str, Any]:
        """Constructor arguments of the :class:`~symflow.learners.SympFlow` for states of size ``dim``."""
        return {
            "dof": dim // 2,
            "dt": self.dt,
            "layers": self.layers,
            "width": self.width,
            "hidden_layers": self.hidden_layers,
            "derivatives": self.derivatives,
        }


@dataclass(frozen=True)
class PinnConfig(FlowMapConfig):
    """Configuration of a PINN run: the flow-map PINN (``kind="flow"``, same options as SympFlow) or the
    single initial value problem (``kind="ivp"`` with ``x0`` and ``t_end``; no data source but a
    system)."""

    learner: ClassVar[str] = "pinn"

    kind: str = option(
        "flow", kind="str", choices=("flow", "ivp"), group=MODEL, help="flow map N(t, x0) or one IVP N(t)"
    )
    width: int | None = option(
        None,
        kind="int",
        optional=True,
        low=1,
        high=100000,
        group=MODEL,
        help="hidden units (default 30 for a flow map, 32 for an IVP)",
    )
    hidden_layers: int = option(2, kind="int", low=1, high=100, group=MODEL, help="hidden layers")
    constraint: str = option(
        "linear",
        kind="str",
        choices=("linear", "tfc", "soft"),
        group=MODEL,
        help="how N(0) = x0 is imposed: x0 + t·Ñ (linear), Ñ(t) − Ñ(0) + x0 (tfc), or only by the loss "
        "term γ‖N(0) − x0‖² (soft)",
    )
    ic_weight: float = option(
        1.0,
        kind="float",
        low=0.0,
        group=OPTIM,
        help="γ of the soft initial condition γ‖N(0) − x0‖² (constraint soft)",
    )
    collocation_weights: str = option(
        "uniform",
        kind="str",
        choices=("uniform", "gauss_legendre"),
        group=OPTIM,
        help="--kind ivp: ω_i of the residual: uniform (ω_i = 1/C at random times) or gauss_legendre (C "
        "fixed Gauss–Legendre nodes on [0, T] with their quadrature weights)",
    )
    derivatives: str = option(
        "func", kind="str", choices=("func", "autograd"), group=MODEL, help="how dN/dt is computed"
    )
    x0: tuple[float, ...] | None = option(
        None,
        kind="floats",
        optional=True,
        group=MODEL,
        metavar="X",
        help="--kind ivp: the initial state (numbers, space or comma separated)",
    )
    t_end: float | None = option(
        None,
        kind="float",
        optional=True,
        low=0.0,
        low_open=True,
        group=MODEL,
        help="--kind ivp: the end of the time interval",
    )

    def _check_combinations(self) -> None:
        super()._check_combinations()
        if self.kind == "ivp":
            if self.x0 is None or self.t_end is None:
                raise InvalidArgumentError(
                    "x0" if self.x0 is None else "t_end",
                    None,
                    "--kind ivp needs --x0 (the initial state) and --t-end (the interval's end)",
                )
            if self.data is not None:
                raise InvalidArgumentError(
                    "data", self.data, "a --system for --kind ivp (no trajectory data)"
                )
        elif self.x0 is not None or self.t_end is not None:
            raise InvalidArgumentError(
                "x0" if self.x0 is not None else "t_end",
                self.x0 if self.x0 is not None else self.t_end,
                "--x0 and --t-end apply to --kind ivp only",
            )
        if self.collocation_weights != "uniform" and self.kind != "ivp":
            raise InvalidArgumentError(
                "collocation_weights",
                self.collocation_weights,
                "'uniform' for a flow map (gauss_legendre: --kind ivp)",
            )
        if self.constraint == "soft" and self.data is not None:
            raise InvalidArgumentError(
                "constraint", "soft", "an exact constraint (linear or tfc) when training from data"
            )

    @property
    def registry_name(self) -> str:
        """The learner registry's name of the model: ``"pinn"`` or ``"pinn_ivp"``."""
        return "pinn_ivp" if self.kind == "ivp" else "pinn"

    def model_args(self, dim: int) -> dict[str, Any]:
        """Constructor arguments of the :class:`~symflow.learners.FlowMapPINN` (or, for
        ``kind="ivp"``, of the :class:`~symflow.learners.IVPPINN`)."""
        if self.kind == "ivp":
            return {
                "x0": list(self.x0 or ()),
                "t_end": self.t_end,
                "width": self.width or 32,
                "hidden_layers": self.hidden_layers,
                "constraint": self.constraint,
            }
        return {
            "dim": dim,
            "dt": self.dt,
            "width": self.width or 30,
            "hidden_layers": self.hidden_layers,
            "constraint": self.constraint,
            "derivatives": self.derivatives,
        }


CONFIGS: dict[str, type[FlowMapConfig]] = {"sympflow": SympFlowConfig, "pinn": PinnConfig}


def config_class(learner: str) -> type[FlowMapConfig]:
    """The configuration class of a learner (``"sympflow"``, ``"pinn"``; aliases resolved)."""
    from .registry import LEARNERS

    name = LEARNERS.canonical(learner)
    return CONFIGS["pinn" if name == "pinn_ivp" else name]
