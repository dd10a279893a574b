"""Poincaré sections of many orbits in one call, and a distance between two sections.

A surface of section is ``g(y) = 0`` crossed in a chosen direction (a
:class:`~symflow.systems.PoincareSurface`; every system with a customary one carries it, e.g.
Hénon–Heiles ``x = 0, p_x > 0`` plotted in ``(y, p_y)``). For ``B`` orbits from ``y0 (B, D)`` up to
``t_end`` the section is every crossing — non-terminating — with its time, full state and orbit index.

**Locating crossings on the map itself** (``locate="map"``, the default). The source is marched on a
grid of stride ``Δ`` (one :func:`~symflow.integrators.solve` per segment for integrators; repeated
application of the map ``N(Δ)`` for flow maps, which is exactly the long-time map ``N(δ)∘N(Δ)ⁿ``).
A sign change of ``g`` in the requested direction between grid states ``x_k`` and ``x_{k+1}``
(``+1``: from ``< 0`` to ``≥ 0``, SciPy's convention; a state exactly on the surface at the start of an
interval is not counted again) brackets a root of

    G(τ) = g(Φ_τ(x_k)),   τ ∈ (0, Δ],

which is found for all crossings of a segment at once — thousands of orbits and hundreds of steps in
one batched root-finding — by a safeguarded Newton iteration: Newton steps with
``G'(τ) = ∇g · Φ̇`` (the vector field where the source has one, else autograd through the map in
``τ``), replaced by an Illinois (modified regula falsi) step whenever Newton would leave the current
bracket, so it never leaves the step and converges superlinearly either way. The first guess comes
from a cubic Hermite interpolant of the grid states when the velocity is known, else from linear
interpolation of ``g``. Each evaluation ``Φ_τ(x_k)`` is a real propagation (for a fixed-step
integrator with ``Δ = dt``: one real step of size ``τ``), so crossings are as accurate as the map.

**Solver events** (``locate="events"``, integrator sources only) hand the surface to
:func:`~symflow.integrators.solve` as an :class:`~symflow.integrators.Event`, located on the method's
dense output and polished on real partial steps. Both are tested against a SciPy DOP853 reference.

**Section distance.** Orbits of chaotic systems diverge, so sections are compared as *point sets*:
:func:`section_distance` gives per orbit the symmetric Chamfer distance in the plotted plane,
``½ (mean_{a∈A} min_{b∈B} ‖a − b‖ + mean_{b∈B} min_{a∈A} ‖a − b‖)`` (or the Hausdorff distance,
``max(max_a min_b, max_b min_a)``), e.g. a learned model's section against the true system's from
the same initial conditions.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch

from symflow.integrators import Event, InvalidArgumentError, Status, solve
from symflow.integrators.reprs import short
from symflow.systems import HamiltonianSystem, PoincareSurface

from .sources import FlowSource, IntegratorSource, as_source

Tensor = torch.Tensor

LOCATE = ("map", "events")


@dataclass(frozen=True)
class PoincareSection:
    """Crossings of a surface of section by ``n_orbits`` orbits, sorted by orbit then time.

    Attributes:
        t: ``(M,)`` crossing times.
        y: ``(M, D)`` full states at the crossings.
        orbit: ``(M,)`` index of the orbit (row of ``y0``) each crossing belongs to.
        n_orbits: number of orbits integrated.
        coords, labels: the two plotted state components and their names.
        description: the surface, e.g. ``"x = 0, p_x > 0"``.
        status: ``(n_orbits,)`` int8 status of each orbit's propagation (0: success), or ``None``.
        t_end: the time the orbits were followed to.
        source: description of the map that produced it.
    """

    t: Tensor
    y: Tensor
    orbit: Tensor
    n_orbits: int
    coords: tuple[int, int]
    labels: tuple[str, str]
    description: str
    status: Tensor | None = None
    t_end: float = math.nan
    source: str = ""

    @property
    def points(self) -> Tensor:
        """``(M, 2)`` crossings in the plotted coordinates."""
        return self.y[:, list(self.coords)]

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def counts(self) -> Tensor:
        """Crossings per orbit, ``(n_orbits,)``."""
        return torch.bincount(self.orbit, minlength=self.n_orbits)

    def for_orbit(self, index: int) -> PoincareSection:
        keep = self.orbit == index
        return PoincareSection(
            self.t[keep],
            self.y[keep],
            self.orbit[keep],
            self.n_orbits,
            self.coords,
            self.labels,
            self.description,
            self.status,
            self.t_end,
            self.source,
        )

    def summary(self) -> dict[str, Any]:
        counts = self.counts().to(torch.float64)
        failed = 0 if self.status is None else int((self.status != 0).sum())
        return {
            "surface": self.description,
            "labels": list(self.labels),
            "source": self.source,
            "n_orbits": self.n_orbits,
            "t_end": self.t_end,
            "n_crossings": len(self),
            "mean_crossings_per_orbit": float(counts.mean()) if self.n_orbits else 0.0,
            "min_crossings_per_orbit": int(counts.min()) if self.n_orbits else 0,
            "failed_orbits": failed,
        }

    def __repr__(self) -> str:
        counts = self.counts()
        per = f" ({int(counts.min())}–{int(counts.max())} per orbit)" if self.n_orbits else ""
        failed = 0 if self.status is None else int((self.status != 0).sum())
        return (
            f"PoincareSection({self.description!r}, orbits={self.n_orbits}, crossings={len(self)}{per}, "
            f"plot={self.labels}, t_end={self.t_end:g}, failed={failed}, source={short(self.source)})"
        )


def poincare_section(
    source: Any,
    y0: Tensor,
    t_end: float,
    *,
    surface: PoincareSurface | None = None,
    locate: str = "map",
    stride: float | None = None,
    segment_steps: int | None = None,
    tol: float | None = None,
    max_iter: int = 30,
    progress: bool = False,
) -> PoincareSection:
    """Crossings of ``surface`` by the orbits from ``y0 (B, D)`` over ``[0, t_end]``.

    Args:
        source: a :class:`~symflow.diagnostics.sources.FlowSource`, or a system / system name (its
            field integrated with dopri5 at ``rtol=1e-9, atol=1e-12``; pass an
            :class:`~symflow.diagnostics.sources.IntegratorSource` to choose).
        y0: initial states ``(B, D)``.
        t_end: final time (the orbits start at ``t = 0``).
        surface: the surface of section (default: the source's system's customary one).
        locate: ``"map"`` (root finding on the map, any source) or ``"events"`` (the solver's event
            location; integrator sources only). See the module docstring.
        stride: grid spacing ``Δ`` that brackets crossings with ``locate="map"`` (default: ``dt`` for
            fixed-step integrators, ``Δt`` for flow maps, 0.1 otherwise). It must be shorter than the
            time between two crossings of ``g = 0`` in either direction, or pairs of them are missed.
        segment_steps: grid steps per segment (default: at most 2000 and ~32 MB of states each, and
            about 25 segments when ``progress`` shows a bar).
        tol: stop root finding when ``|G| ≤ tol`` (default: 0, i.e. until ``τ`` stops moving at
            round-off).
        max_iter: root-finding iterations per crossing.
        progress: show a progress bar over the segments.
    """
    src = _source(source)
    if not isinstance(y0, Tensor) or y0.dim() != 2 or not y0.is_floating_point():
        raise InvalidArgumentError("y0", y0, "initial states of shape (B, D)")
    if isinstance(t_end, bool) or not isinstance(t_end, (int, float)) or not (0 < t_end < math.inf):
        raise InvalidArgumentError("t_end", t_end, "a positive finite final time")
    surface = _surface(surface, src)
    if locate not in LOCATE:
        raise InvalidArgumentError("locate", locate, f"one of {LOCATE}")
    if stride is not None and (
        isinstance(stride, bool) or not isinstance(stride, (int, float)) or not (0 < stride < math.inf)
    ):
        raise InvalidArgumentError("stride", stride, "a positive grid spacing")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise InvalidArgumentError("max_iter", max_iter, "a positive integer")
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or tol < 0):
        raise InvalidArgumentError("tol", tol, "a non-negative tolerance on |g|")
    if segment_steps is not None and (
        isinstance(segment_steps, bool) or not isinstance(segment_steps, int) or segment_steps < 1
    ):
        raise InvalidArgumentError("segment_steps", segment_steps, "a positive integer")
    if locate == "events":
        if not isinstance(src, IntegratorSource):
            raise InvalidArgumentError(
                "locate", locate, f"'map' for a {type(src).__name__} (solver events need an integrator)"
            )
        if stride is not None or tol is not None or segment_steps is not None:
            raise InvalidArgumentError(
                "stride/tol/segment_steps",
                (stride, tol, segment_steps),
                "none of them with locate='events' (options of locate='map')",
            )
        return _by_events(src, y0, float(t_end), surface, progress)
    step = float(stride) if stride is not None else src.default_stride
    if step > src.max_step * (1 + 1e-12):
        raise InvalidArgumentError("stride", step, f"at most the map's max_step {src.max_step:g}")
    return _by_map(src, y0, float(t_end), surface, step, segment_steps, tol or 0.0, max_iter, progress)


def _source(source: Any) -> FlowSource:
    if isinstance(source, (HamiltonianSystem, str)):
        return as_source(source, method="dopri5", rtol=1e-9, atol=1e-12)
    return as_source(source)


def _surface(surface: PoincareSurface | None, src: FlowSource) -> PoincareSurface:
    if surface is None:
        if src.system is None or src.system.poincare is None:
            what = "its system has no customary surface" if src.system is not None else "no system is known"
            raise InvalidArgumentError(
                "surface", None, f"a PoincareSurface for {src.name} ({what}; pass surface=...)"
            )
        return src.system.poincare
    if not isinstance(surface, PoincareSurface):
        raise InvalidArgumentError("surface", surface, "a symflow.systems.PoincareSurface")
    return surface


def _g(surface: PoincareSurface, y: Tensor) -> Tensor:
    g = surface.g(y)
    if not isinstance(g, Tensor) or g.shape != y.shape[:-1]:
        raise InvalidArgumentError(
            f"surface {surface.description!r}", g, f"one value per state, shape {tuple(y.shape[:-1])}"
        )
    return g


def _crossed(g_old: Tensor, g_new: Tensor, direction: int) -> Tensor:
    up = (g_old < 0) & (g_new >= 0)
    down = (g_old > 0) & (g_new <= 0)
    return up if direction > 0 else down if direction < 0 else up | down


def _segments(t_end: float, step: float, per_segment: int) -> list[list[float]]:
    """Consecutive step durations covering ``[0, t_end]``, grouped into segments."""
    n_full = math.floor(t_end / step * (1 + 1e-12))
    rest = t_end - n_full * step
    steps = [step] * n_full + ([rest] if rest > 1e-12 * step else [])
    return [steps[i : i + per_segment] for i in range(0, len(steps), per_segment)]


def _per_segment(b: int, d: int, itemsize: int, total: int, segment_steps: int | None, progress: bool) -> int:
    """Grid steps per segment: at most 2000 and ~32 MB of states; about 25 segments with a progress bar.

    Fewer segments mean fewer (larger) batched root findings, each with a fixed cost; the cap keeps one
    segment's solve well inside ``solve``'s ``max_steps`` at any reasonable tolerance.
    """
    if segment_steps is not None:
        return segment_steps
    memory = (32 << 20) // max(1, b * d * itemsize)
    return int(max(16, min(memory, 2000, math.ceil(total / 25) if progress else total)))


def _progress(total: int, enabled: bool, what: str):
    from symflow.training.progress import progress_bar  # honours SYMFLOW_PROGRESS=0

    return progress_bar(total=total, enabled=enabled, desc=what, unit="seg")


def _by_map(
    src: FlowSource,
    y0: Tensor,
    t_end: float,
    surface: PoincareSurface,
    step: float,
    segment_steps: int | None,
    tol: float,
    max_iter: int,
    progress: bool,
) -> PoincareSection:
    b, d = y0.shape
    total = math.ceil(t_end / step * (1 - 1e-12))
    segments = _segments(t_end, step, _per_segment(b, d, y0.element_size(), total, segment_steps, progress))
    ts, ys, orbits = [], [], []
    y = y0
    t_start = 0.0
    status = torch.zeros(b, dtype=torch.int8, device=y0.device)
    with torch.no_grad(), _progress(len(segments), progress, "Poincaré section") as bar:
        for durations in segments:
            states, seg_status = src.march(y, durations)  # (B, K + 1, D)
            g = _g(surface, states)  # (B, K + 1)
            hit = _crossed(g[:, :-1], g[:, 1:], surface.direction)
            if bool(hit.any()):
                rows, k = hit.nonzero(as_tuple=True)
                offsets = torch.tensor([0.0, *durations], dtype=y0.dtype, device=y0.device).cumsum(0)
                span = torch.tensor(durations, dtype=y0.dtype, device=y0.device)[k]
                tau, yc = _root(
                    src,
                    surface,
                    states[rows, k],
                    states[rows, k + 1],
                    g[rows, k],
                    g[rows, k + 1],
                    span,
                    tol,
                    max_iter,
                )
                ts.append(t_start + offsets[k] + tau)
                ys.append(yc)
                orbits.append(rows)
            # The first failure of an orbit is its status; a map without one fails by non-finite states.
            if seg_status is None:
                seg_status = torch.where(torch.isfinite(states[:, -1]).all(-1), 0, int(Status.NONFINITE))
            status = torch.where(status == 0, seg_status.to(torch.int8), status)
            y = states[:, -1]
            t_start += sum(durations)
            bar.update(1)
    return _assemble(ts, ys, orbits, y0, b, surface, status, t_end, src.name)


def _root(
    src: FlowSource,
    surface: PoincareSurface,
    x_lo: Tensor,
    x_hi: Tensor,
    g_lo: Tensor,
    g_hi: Tensor,
    span: Tensor,
    tol: float,
    max_iter: int,
) -> tuple[Tensor, Tensor]:
    """Safeguarded Newton/Illinois on ``G(τ) = g(Φ_τ(x_lo))`` near ``(0, span]``, batched over crossings.

    The grid bracket ``[0, span]`` holds ``g`` of the *grid* states; re-propagating from ``x_lo`` may
    move the root of ``G`` past ``span`` by the map's own error (an adaptive solve restarted at
    ``x_lo`` takes other steps), so Newton steps may land slightly outside it (up to 1 % of ``span``).
    The bracket is updated only with evaluations inside it and drives the regula falsi fallback,
    used when Newton has no usable slope, leaves that range, or stops reducing ``|G|``.
    """
    m = x_lo.shape[0]
    dtype = x_lo.dtype
    eps = torch.finfo(dtype).eps
    tiny = torch.finfo(dtype).tiny
    lo = torch.zeros(m, dtype=dtype, device=x_lo.device)
    hi = span.clone()
    g_lo, g_hi = g_lo.clone(), g_hi.clone()
    tau = _first_guess(src, surface, x_lo, x_hi, g_lo, g_hi, span)
    best_tau, best_y = hi.clone(), x_hi.clone()  # the grid state is a valid fallback
    best_g = g_hi.abs()
    g_scale = torch.maximum(g_lo.abs(), g_hi.abs())
    prev_g = torch.full_like(lo, math.inf)
    was_newton = torch.zeros(m, dtype=torch.bool, device=x_lo.device)
    side = torch.zeros(m, dtype=torch.int8, device=x_lo.device)  # Illinois: which end moved last
    todo = torch.arange(m, device=x_lo.device)
    for _ in range(max_iter):
        if todo.numel() == 0:
            break
        tt = tau[todo]
        yt = src.flow(tt, x_lo[todo])
        gt = _g(surface, yt)
        ag = gt.abs()
        # Keep the evaluated pair closest to the surface (what is returned is always a real evaluation).
        better = ag <= best_g[todo]
        best_tau[todo] = torch.where(better, tt, best_tau[todo])
        best_y[todo] = torch.where(better.unsqueeze(-1), yt, best_y[todo])
        best_g[todo] = torch.where(better, ag, best_g[todo])
        # A Newton step that no longer reduces |G| once it is tiny has hit the noise floor of the map:
        # nothing better can be found.
        progress = ag < prev_g[todo]
        stall = was_newton[todo] & ~progress & (prev_g[todo] <= 1e-6 * g_scale[todo])
        prev_g[todo] = torch.minimum(ag, prev_g[todo])
        # Shrink the bracket with evaluations inside it: the end whose g has the sign of G(τ) moves.
        l, h, gl, gh, sd = lo[todo], hi[todo], g_lo[todo], g_hi[todo], side[todo]
        inside = (tt > l) & (tt < h)
        move_lo = inside & (torch.sign(gt) == torch.sign(gl))
        move_hi = inside & ~move_lo
        gh = torch.where(move_lo & (sd == 1), 0.5 * gh, gh)  # Illinois: halve the value of a stale end
        gl = torch.where(move_hi & (sd == -1), 0.5 * gl, gl)
        l, gl = torch.where(move_lo, tt, l), torch.where(move_lo, gt, gl)
        h, gh = torch.where(move_hi, tt, h), torch.where(move_hi, gt, gh)
        sd = torch.where(move_lo, torch.ones_like(sd), torch.where(move_hi, -torch.ones_like(sd), sd))
        lo[todo], hi[todo], g_lo[todo], g_hi[todo], side[todo] = l, h, gl, gh, sd
        width = span[todo]
        slope = _slope(src, surface, tt, yt, x_lo[todo])
        newton = tt - gt / torch.where(slope != 0, slope, torch.ones_like(slope))
        denom = gh - gl
        falsi = (l * gh - h * gl) / torch.where(denom != 0, denom, torch.ones_like(denom))
        falsi = torch.where((denom != 0) & (falsi > l) & (falsi < h), falsi, 0.5 * (l + h))
        ok = (
            (slope != 0)
            & torch.isfinite(newton)
            & (newton > 0)
            & (newton <= 1.01 * width)
            & (progress | ~was_newton[todo])
        )
        new = torch.where(ok, newton, falsi).clamp(min=tiny)
        done = (
            (ag <= tol)
            | stall
            | (ok & ((new - tt).abs() <= 4 * eps * torch.maximum(tt.abs(), width)))
            | (h - l <= 4 * eps * width)
        )
        tau[todo] = new
        was_newton[todo] = ok
        todo = todo[~done]
    return best_tau, best_y


def _first_guess(src, surface, x_lo, x_hi, g_lo, g_hi, span) -> Tensor:
    """Root of ``g`` on a cubic Hermite interpolant of the grid (velocity known), else linear in ``g``."""
    linear = span * g_lo / (g_lo - g_hi)
    linear = torch.where(torch.isfinite(linear), linear, 0.5 * span).clamp(min=0.0)
    v_lo, v_hi = src.velocity(x_lo), src.velocity(x_hi)
    if v_lo is None or v_hi is None:
        return torch.minimum(linear, span)
    lo, hi = torch.zeros_like(span), torch.ones_like(span)
    glo, ghi = g_lo.clone(), g_hi.clone()
    theta = (linear / span).clamp(0.0, 1.0)
    for _ in range(8):  # a few bisection-safeguarded secant steps on the interpolant are plenty
        h = span.unsqueeze(-1)
        th = theta.unsqueeze(-1)
        y = (
            (1 + 2 * th) * (1 - th) ** 2 * x_lo
            + th * (1 - th) ** 2 * h * v_lo
            + th * th * (3 - 2 * th) * x_hi
            + th * th * (th - 1) * h * v_hi
        )
        gt = _g(surface, y)
        same = torch.sign(gt) == torch.sign(glo)
        lo, glo = torch.where(same, theta, lo), torch.where(same, gt, glo)
        hi, ghi = torch.where(same, hi, theta), torch.where(same, ghi, gt)
        denom = ghi - glo
        sec = (lo * ghi - hi * glo) / torch.where(denom != 0, denom, torch.ones_like(denom))
        theta = torch.where((denom != 0) & (sec > lo) & (sec < hi), sec, 0.5 * (lo + hi))
    return (theta * span).clamp(min=torch.finfo(span.dtype).tiny)


def _slope(src: FlowSource, surface: PoincareSurface, tau: Tensor, y: Tensor, x0: Tensor) -> Tensor:
    """``G'(τ) = ∇g(Φ_τ) · dΦ_τ/dτ``: the vector field where known, else autograd through the map."""
    v = src.velocity(y)
    if v is not None:
        try:
            with torch.enable_grad():
                z = y.detach().clone().requires_grad_(True)
                (dg,) = torch.autograd.grad(surface.g(z).sum(), z)
        except RuntimeError:
            return torch.zeros_like(tau)  # g not differentiable: the safeguard falls back to regula falsi
        return (dg * v).sum(-1)
    try:
        with torch.enable_grad():
            tt = tau.detach().clone().requires_grad_(True)
            out = surface.g(src.flow(tt, x0))
            (slope,) = torch.autograd.grad(out.sum(), tt)
        return slope.detach()
    except RuntimeError:
        return torch.zeros_like(tau)


def _by_events(
    src: IntegratorSource,
    y0: Tensor,
    t_end: float,
    surface: PoincareSurface,
    progress: bool,
) -> PoincareSection:
    b = y0.shape[0]
    # The solver's events need no grid: segments of at most 200 time units keep each solve well inside
    # its max_steps, and give the progress bar something to count.
    n_seg = max(math.ceil(t_end / 200.0), min(25, math.ceil(t_end / 10.0)) if progress else 1)
    edges = [t_end * i / n_seg for i in range(n_seg + 1)]
    event = Event(lambda t, y: surface.g(y), surface.direction, surface.description)
    ts, ys, orbits = [], [], []
    status = torch.zeros(b, dtype=torch.int8, device=y0.device)
    y = y0
    with _progress(n_seg, progress, "Poincaré section") as bar:
        for a, c in itertools.pairwise(edges):
            grid = torch.tensor([a, c], dtype=y0.dtype, device=y0.device)
            sol = solve(src.f, y, grid, src.method, events=event, throw=False, **src.options)
            rec = sol.events
            ts.append(rec.t)
            ys.append(rec.y)
            orbits.append(rec.sample)
            status = torch.where(status == 0, sol.status, status)
            y = sol.ys[:, -1]
            bar.update(1)
    return _assemble(ts, ys, orbits, y0, b, surface, status, t_end, src.name + ", solver events")


def _assemble(ts, ys, orbits, y0, b, surface, status, t_end, name) -> PoincareSection:
    if ts:
        t = torch.cat(ts)
        y = torch.cat(ys)
        orbit = torch.cat(orbits).long()
    else:
        t = y0.new_zeros(0)
        y = y0.new_zeros(0, y0.shape[-1])
        orbit = torch.zeros(0, dtype=torch.long, device=y0.device)
    order = torch.argsort(t, stable=True)
    order = order[torch.argsort(orbit[order], stable=True)]
    return PoincareSection(
        t[order],
        y[order],
        orbit[order],
        b,
        tuple(surface.coords),
        tuple(surface.labels),
        surface.description,
        status,
        t_end,
        name,
    )


def section_distance(a: PoincareSection, b: PoincareSection, *, kind: str = "chamfer") -> Tensor:
    """Per-orbit distance between two sections of the same orbits, in the plotted plane.

    ``kind="chamfer"``: ``½ (mean_a min_b ‖a − b‖ + mean_b min_a ‖a − b‖)``; ``kind="hausdorff"``:
    ``max(max_a min_b, max_b min_a)``. An orbit with crossings in one section and none in the other
    gets ``inf``; one with none in both gets NaN. Returns ``(n_orbits,)``.
    """
    if not isinstance(a, PoincareSection) or not isinstance(b, PoincareSection):
        raise InvalidArgumentError("a, b", (type(a), type(b)), "two PoincareSection objects")
    if a.n_orbits != b.n_orbits:
        raise InvalidArgumentError("b", b.n_orbits, f"a section of the same {a.n_orbits} orbits")
    if tuple(a.coords) != tuple(b.coords):
        raise InvalidArgumentError("b", b.coords, f"a section plotted in the same coordinates {a.coords}")
    if kind not in ("chamfer", "hausdorff"):
        raise InvalidArgumentError("kind", kind, "'chamfer' or 'hausdorff'")
    pa, pb = a.points, b.points.to(a.points.dtype)
    ca, cb = a.counts().tolist(), b.counts().tolist()
    parts_a, parts_b = pa.split(ca), pb.split(cb)
    out = torch.empty(a.n_orbits, dtype=pa.dtype)
    for i, (ai, bi) in enumerate(zip(parts_a, parts_b)):
        if ai.shape[0] == 0 or bi.shape[0] == 0:
            out[i] = math.nan if ai.shape[0] == bi.shape[0] else math.inf
            continue
        dist = torch.cdist(ai, bi)
        ab, ba = dist.min(1).values, dist.min(0).values
        if kind == "chamfer":
            out[i] = 0.5 * (ab.mean() + ba.mean())
        else:
            out[i] = torch.maximum(ab.max(), ba.max())
    return out
