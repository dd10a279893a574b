"""The registry of integration methods: frozen specs with properties computed from their data."""

from __future__ import annotations

from dataclasses import dataclass

from . import tableaux as tb
from .errors import InvalidArgumentError
from .registry import Registry
from .splitting import SYMPLECTIC_EULER, VERLET, YOSHIDA4, YOSHIDA6, SplittingScheme
from .tableau import ButcherTableau

FAMILIES = ("explicit", "embedded", "implicit", "splitting")


@dataclass(frozen=True)
class MethodSpec:
    """An integration method.

    ``family`` is ``explicit`` (fixed-step RK), ``embedded`` (adaptive RK pair; may also run with a
    fixed ``dt``), ``implicit`` (Newton-solved implicit RK) or ``splitting`` (explicit symplectic,
    separable Hamiltonians only).
    """

    name: str
    family: str
    tableau: ButcherTableau | None = None
    scheme: SplittingScheme | None = None
    summary: str = ""
    reference: str = ""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise InvalidArgumentError("family", self.family, f"one of {FAMILIES}")
        if (self.tableau is None) == (self.scheme is None):
            raise InvalidArgumentError(
                f"method {self.name}", (self.tableau, self.scheme), "a tableau or a scheme"
            )
        if self.family in ("explicit", "embedded") and not self.tableau.explicit:
            raise InvalidArgumentError(f"method {self.name}", self.tableau, "an explicit tableau")
        if self.family == "embedded" and self.tableau.b_embedded is None:
            raise InvalidArgumentError(f"method {self.name}", self.tableau, "a tableau with embedded weights")

    @property
    def order(self) -> int:
        return self.tableau.order if self.tableau is not None else self.scheme.order

    @property
    def adaptive(self) -> bool:
        return self.family == "embedded"

    @property
    def symplectic(self) -> bool:
        return self.scheme is not None or bool(self.tableau.symplectic)

    @property
    def needs_separable(self) -> bool:
        return self.family == "splitting"


METHODS: Registry[MethodSpec] = Registry("integration method")


def register_method(
    spec: MethodSpec, *, aliases: tuple[str, ...] = (), overwrite: bool = False
) -> MethodSpec:
    """Add ``spec`` to the method registry (``aliases`` as extra names); an existing name is an error unless
    ``overwrite``.
    """
    return METHODS.register(spec.name, spec, aliases=aliases, overwrite=overwrite)


def get_method(name: str | MethodSpec) -> MethodSpec:
    """The :class:`MethodSpec` registered as ``name`` (a spec passes through); unknown names raise with a
    did-you-mean list.
    """
    return name if isinstance(name, MethodSpec) else METHODS.get(name)


def list_methods(family: str | None = None) -> list[str]:
    """Registered method names, optionally only one ``family`` (``"explicit"``, ``"embedded"``,
    ``"implicit"``, ``"splitting"``).
    """
    return [n for n, m in METHODS.items() if family is None or m.family == family]


def methods_for(*, separable: bool) -> list[str]:
    """Methods that apply to a field (every method but the splittings when it is not separable)."""
    return [n for n, m in METHODS.items() if separable or not m.needs_separable]


HNW = "Hairer, Nørsett & Wanner, Solving ODEs I (1993)"
for _tab, _aliases, _summary in [
    (tb.EULER, ("explicit_euler", "forward_euler"), "forward Euler, order 1"),
    (tb.MIDPOINT, ("explicit_midpoint",), "explicit midpoint, order 2"),
    (tb.HEUN, ("heun2",), "Heun's method (explicit trapezoid), order 2"),
    (tb.HEUN3, (), "Heun's third-order method"),
    (tb.RK4, ("classic_rk4",), "classical Runge–Kutta, order 4"),
    (tb.RK38, ("rk_3_8", "kutta38"), "Kutta's 3/8 rule, order 4"),
]:
    register_method(
        MethodSpec(_tab.name, "explicit", tableau=_tab, summary=_summary, reference=HNW), aliases=_aliases
    )

register_method(
    MethodSpec(
        "heun_euler",
        "embedded",
        tableau=tb.HEUN_EULER,
        summary="Heun–Euler 2(1), cheapest adaptive pair",
        reference=HNW,
    ),
    aliases=("adaptive_heun",),
)
register_method(
    MethodSpec(
        "fehlberg2",
        "embedded",
        tableau=tb.FEHLBERG2,
        summary="Runge–Kutta–Fehlberg 2(1)",
        reference="Fehlberg, NASA TR R-315 (1969)",
    ),
    aliases=("rkf12", "fehlberg12"),
)
register_method(
    MethodSpec(
        "bosh3",
        "embedded",
        tableau=tb.BOSH3,
        summary="Bogacki–Shampine 3(2), FSAL",
        reference="Bogacki & Shampine, Appl. Math. Lett. 2 (1989)",
    ),
    aliases=("bs3", "bogacki_shampine", "rk23"),
)
register_method(
    MethodSpec(
        "dopri5",
        "embedded",
        tableau=tb.DOPRI5,
        summary="Dormand–Prince 5(4), FSAL, order-4 dense output",
        reference="Dormand & Prince, J. Comput. Appl. Math. 6 (1980)",
    ),
    aliases=("dp5", "dormand_prince", "rk45"),
)
register_method(
    MethodSpec(
        "tsit5",
        "embedded",
        tableau=tb.TSIT5,
        summary="Tsitouras 5(4), FSAL",
        reference="Tsitouras, Comput. Math. Appl. 62 (2011)",
    ),
    aliases=("tsitouras5",),
)
register_method(
    MethodSpec(
        "vern7",
        "embedded",
        tableau=tb.VERN7,
        summary="Verner's efficient 7(6), order-7 interpolant; tight tolerances",
        reference="Verner, Numer. Algorithms 53 (2010); RKV76.IIa efficient pair",
    ),
    aliases=("verner7", "rkv76"),
)
register_method(
    MethodSpec(
        "dop853",
        "embedded",
        tableau=tb.DOP853,
        summary="Dormand–Prince 8(5,3) (Hairer's DOP853), order-7 dense output; tight tolerances",
        reference="Prince & Dormand, J. Comput. Appl. Math. 7 (1981); Hairer, Nørsett & Wanner (1993), §II.5",
    ),
    aliases=("dormand_prince853",),
)
register_method(
    MethodSpec(
        "vern9",
        "embedded",
        tableau=tb.VERN9,
        summary="Verner's efficient 9(8), order-9 interpolant; very tight tolerances",
        reference="Verner, Numer. Algorithms 53 (2010); RKV98.IIa efficient pair",
    ),
    aliases=("verner9", "rkv98"),
)
register_method(
    MethodSpec(
        "backward_euler",
        "implicit",
        tableau=tb.BACKWARD_EULER,
        summary="backward (implicit) Euler, 1-stage Radau IIA: order 1, L-stable (stiff problems), "
        "not symplectic",
        reference="Hairer & Wanner, Solving ODEs II (1996), §IV.3 and §IV.5",
    ),
    aliases=("implicit_euler", "euler_implicit", "radau1"),
)
register_method(
    MethodSpec(
        "implicit_midpoint",
        "implicit",
        tableau=tb.IMPLICIT_MIDPOINT,
        summary="implicit midpoint (Gauss–Legendre, 1 stage), symplectic, order 2",
        reference="Hairer, Lubich & Wanner, Geometric Numerical Integration (2006), §VI.4",
    ),
    aliases=("gl2", "midpoint_implicit"),
)
register_method(
    MethodSpec(
        "gl4",
        "implicit",
        tableau=tb.GL4,
        summary="Gauss–Legendre 2 stages, symplectic, order 4",
        reference="Butcher (1964); Hairer, Lubich & Wanner (2006), §II.1.3",
    ),
    aliases=("gauss_legendre4", "gauss4"),
)
register_method(
    MethodSpec(
        "gl6",
        "implicit",
        tableau=tb.GL6,
        summary="Gauss–Legendre 3 stages, symplectic, order 6",
        reference="Butcher (1964); Hairer, Lubich & Wanner (2006), §II.1.3",
    ),
    aliases=("gauss_legendre6", "gauss6"),
)
for _scheme, _aliases, _summary in [
    (SYMPLECTIC_EULER, ("symplectic_euler_b",), "symplectic Euler (drift then kick), order 1"),
    (VERLET, ("leapfrog", "stormer_verlet", "velocity_verlet"), "Störmer–Verlet / leapfrog, order 2"),
    (YOSHIDA4, ("forest_ruth", "ruth4"), "Forest–Ruth / Yoshida triple jump, order 4"),
    (YOSHIDA6, (), "Yoshida composition (solution A), order 6"),
]:
    register_method(
        MethodSpec(_scheme.name, "splitting", scheme=_scheme, summary=_summary, reference=_scheme.reference),
        aliases=_aliases,
    )
