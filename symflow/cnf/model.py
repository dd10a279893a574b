"""Continuous normalizing flows: exact likelihood and sampling through one ODE solver.

A CNF transports the base density ``p_0 = N(0, I)`` at ``t = 0`` along ``dy/dt = f(t, y)`` to the
model density ``p_1`` at ``t = t1``. Integrating the augmented system of
:mod:`symflow.cnf.augmented`:

* **density evaluation** (backwards, ``t1 → 0``): from ``y(t1) = x``, ``ℓ(t1) = 0``,
  ``log p_1(x) = log p_0(y(0)) − ℓ(0)``, since ``ℓ(0) = ∫_0^{t1} tr ∂f/∂y dt``;
* **sampling** (forwards, ``0 → t1``): from ``y(0) = z ~ p_0``, ``ℓ(0) = log p_0(z)``,
  ``x = y(t1)`` and ``log p_1(x) = ℓ(t1)``

(Chen et al. 2018, §4; Grathwohl et al., *FFJORD*, ICLR 2019). An optional affine normalisation
``x = loc + scale ⊙ y`` lets the flow work on standardised data; its log-Jacobian
``−Σ log scale`` is added exactly.

Gradients for maximum likelihood come from backprop through the solver (``adjoint=False``) or from
the continuous adjoint of ``symflow.integrators`` (``adjoint=True`` uses the seminorm, which is the
efficient choice here — Kidger, Chen & Lyons, ICML 2021 — or pass an
:class:`~symflow.integrators.AdjointOptions`).

Adaptive steps follow the module's mode by default (``norm="auto"``), as ``BatchNorm`` does: in
training mode the batch shares one error norm and so one step size (training minimises a batch mean,
and the batch then costs its average sample instead of its slowest); in eval mode (``cnf.eval()``)
every sample meets the tolerance on its own, so a log-density does not depend on the batch it is
evaluated in. symflow's own evaluation (``evaluate_nll``, the density plots, ``load_cnf``) runs in
eval mode.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from symflow.integrators import AdjointOptions, InvalidArgumentError, Registry, get_method, solve
from symflow.integrators.inputs import positive_float
from symflow.integrators.reprs import compact_repr

from .augmented import AugmentedField
from .trace import PROBES, check_trace, draw_probe

Tensor = torch.Tensor

# Step norms a CNF accepts: the solver's, and "auto" (the module's mode decides; see the module doc).
CNF_NORMS: Registry[str | None] = Registry("CNF step norm")
CNF_NORMS.register("auto", None)
CNF_NORMS.register("sample", "sample", aliases=("per_sample",))
CNF_NORMS.register("batch", "batch", aliases=("shared",))


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """``log N(z; 0, I)`` summed over the last dimension."""
    d = z.shape[-1]
    return -0.5 * z.pow(2).sum(-1) - 0.5 * d * math.log(2 * math.pi)


@contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``module`` in eval mode inside the block, its own mode restored after (a CNF with
    ``norm="auto"`` then steps every sample on its own: batch-independent log-densities)."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@dataclass(frozen=True)
class DensityTerms:
    """Per-sample outputs of a density evaluation.

    Attributes:
        log_prob: ``log p_1(x)``, shape ``(B,)``.
        z: the base point ``y(0)`` the sample maps to, ``(B, D)``.
        kinetic: ``∫_0^{t1} ‖f‖² dt`` (when asked), ``(B,)``.
        jacobian: ``∫_0^{t1} ‖∂f/∂y‖_F² dt`` (exact or Hutchinson estimate, when asked), ``(B,)``.
        nfev: right-hand-side evaluations of the forward solve, ``(B,)``.
    """

    log_prob: Tensor
    z: Tensor
    kinetic: Tensor | None
    jacobian: Tensor | None
    nfev: Tensor

    def __repr__(self) -> str:
        return compact_repr(self)


class CNF(torch.nn.Module):
    """A continuous normalizing flow over a vector-field model ``field(t, y)``.

    Args:
        field: ``nn.Module`` with ``forward(t, y)``, ``y (B, D)``, ``t`` a 0-d tensor or ``(B,)``;
            it must act on each row independently (no batch norm).
        dim: data dimension ``D``.
        trace: ``"exact"`` (``D`` vector–Jacobian products; small ``D``) or ``"hutchinson"`` (one).
        probe: Hutchinson probe distribution, ``"gaussian"`` or ``"rademacher"``.
        probes: Hutchinson probes per sample, averaged (variance / ``probes``, at ``probes``
            vector–Jacobian products per evaluation).
        t1: integration time of the flow.
        method: integration method (see ``symflow.integrators.list_methods()``).
        rtol, atol: tolerances of adaptive methods.
        dt: fixed step (fixed-step methods; with an embedded method it makes the solve fixed-step).
        adjoint: ``False`` (backprop through the solver), ``True`` (continuous adjoint with the
            seminorm), or an :class:`AdjointOptions`.
        loc, scale: optional data normalisation ``x = loc + scale ⊙ y`` (``(D,)`` tensors).
        compile: run the solves through ``torch.compile`` (``solve(..., compile=True)``): fixed-step
            forward solves as compiled chunks of steps, adaptive ones as compiled attempts, and each
            step of the adjoint's backward solve as one compiled function (stages, the trace
            estimator's vector–Jacobian products and the parameter increment fused) when it is
            fixed-step, or adaptive with ``norm="batch"``. The first call of each
            kind compiles (tens of seconds); later calls reuse the compiled code.
        norm: error norm of adaptive steps. ``"sample"``: every sample meets the tolerance on its own
            and its log-density does not depend on the rest of the batch. ``"batch"``: one RMS over
            the batch, so the samples share their steps (as torchdiffeq/FFJORD do); a batch then
            costs its average sample instead of its slowest one, which is what training on a
            batch-mean likelihood wants (the adjoint's backward solve shares its steps too).
            ``"auto"`` (default): ``"batch"`` in training mode, ``"sample"`` in eval mode
            (:attr:`step_norm`).
    """

    def __init__(
        self,
        field: torch.nn.Module,
        dim: int,
        *,
        trace: str = "exact",
        probe: str = "gaussian",
        probes: int = 1,
        t1: float = 1.0,
        method: str = "dopri5",
        rtol: float = 1e-5,
        atol: float = 1e-5,
        dt: float | None = None,
        adjoint: bool | AdjointOptions = False,
        loc: Tensor | None = None,
        scale: Tensor | None = None,
        compile: bool = False,
        norm: str = "auto",
    ) -> None:
        super().__init__()
        if not isinstance(field, torch.nn.Module):
            raise InvalidArgumentError("field", field, "an nn.Module with forward(t, y)")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise InvalidArgumentError("dim", dim, "a positive integer data dimension")
        self.field = field
        self.dim = dim
        self.trace = check_trace(trace)
        self.probe = PROBES.canonical(probe)
        if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
            raise InvalidArgumentError("probes", probes, "a positive number of Hutchinson probes")
        self.probes = probes
        self.t1 = positive_float("t1", t1)
        self.method = get_method(method).name
        spec = get_method(self.method)
        self.dt = None if dt is None else positive_float("dt", dt)
        if not spec.adaptive and self.dt is None:
            raise InvalidArgumentError("dt", None, f"a step size for the fixed-step method {self.method!r}")
        self.rtol = positive_float("rtol", rtol)
        self.atol = positive_float("atol", atol)
        if adjoint is True:
            adjoint = AdjointOptions(seminorm=True)
        elif adjoint is not False and not isinstance(adjoint, AdjointOptions):
            raise InvalidArgumentError("adjoint", adjoint, "True, False or an AdjointOptions")
        self.adjoint = adjoint
        if not isinstance(compile, bool):
            raise InvalidArgumentError("compile", compile, "True or False")
        self.compile = compile
        if not isinstance(norm, str):
            raise InvalidArgumentError("norm", norm, "'auto', 'sample' or 'batch'")
        self.norm = CNF_NORMS.canonical(norm)
        # One augmented field per (trace, regularisers) setting, reused across calls: compiled code is
        # cached per field object, so a fresh one per call would compile again every time.
        self._augmented: dict[tuple, AugmentedField] = {}
        for name, value in (("loc", loc), ("scale", scale)):
            if value is not None and (not isinstance(value, Tensor) or value.shape != (dim,)):
                raise InvalidArgumentError(name, value, f"a tensor of shape ({dim},)")
        if scale is not None and not bool((scale > 0).all()):
            raise InvalidArgumentError("scale", scale, "positive values")
        # The flow's dtype and device follow the field's parameters (buffers included).
        ref = next((p for p in field.parameters() if p.is_floating_point()), None)
        dtype = ref.dtype if ref is not None else torch.get_default_dtype()
        device = ref.device if ref is not None else None
        as_buffer = {"dtype": dtype, "device": device}
        self.register_buffer(
            "loc", torch.zeros(dim, **as_buffer) if loc is None else loc.detach().to(**as_buffer)
        )
        self.register_buffer(
            "scale", torch.ones(dim, **as_buffer) if scale is None else scale.detach().to(**as_buffer)
        )

    # -- configuration -----------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Solver and estimator settings (JSON-friendly), for run configs and summaries."""
        return {
            "dim": self.dim,
            "trace": self.trace,
            "probe": self.probe,
            "probes": self.probes,
            "t1": self.t1,
            "method": self.method,
            "rtol": self.rtol,
            "atol": self.atol,
            "dt": self.dt,
            "adjoint": self.adjoint is not False,
            "compile": self.compile,
            "norm": self.norm,
        }

    @property
    def step_norm(self) -> str:
        """The error norm adaptive solves use now: :attr:`norm`, with ``"auto"`` resolved by the
        module's mode (``"batch"`` while training, ``"sample"`` in eval mode)."""
        if self.norm == "auto":
            return "batch" if self.training else "sample"
        return self.norm

    def _solve(self, aug: AugmentedField, z0: Tensor, t_from: float, t_to: float, adjoint: Any):
        ts = torch.tensor([t_from, t_to], dtype=z0.dtype, device=z0.device)
        opts: dict[str, Any] = {}
        if self.dt is not None:
            opts["dt"] = self.dt
        else:
            # The probe's components never change, yet they count in the RMS error norm: scale the
            # tolerances so that the test is the one on [y, ℓ, regularisers] alone.
            c = math.sqrt((aug.size - aug.probe_size) / aug.size)
            opts.update(rtol=self.rtol * c, atol=self.atol * c, norm=self.step_norm)
        use_adjoint = self.adjoint if adjoint is None else adjoint
        if use_adjoint is True:
            use_adjoint = AdjointOptions(seminorm=True)
        return solve(aug, z0, ts, self.method, adjoint=use_adjoint, compile=self.compile, **opts)

    def _augmented_field(self, trace: str, kinetic: bool = False, jacobian: bool = False) -> AugmentedField:
        key = (check_trace(trace), bool(kinetic), bool(jacobian), self.probes)
        if key not in self._augmented:
            self._augmented[key] = AugmentedField(
                self.field, self.dim, trace=key[0], kinetic=key[1], jacobian=key[2], probes=self.probes
            )
        return self._augmented[key]

    def _check_x(self, x: Tensor, name: str = "x") -> None:
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[-1] != self.dim:
            raise InvalidArgumentError(name, x, f"a tensor of shape (B, {self.dim})")
        if not x.is_floating_point():
            raise InvalidArgumentError(name, x, "a floating-point tensor")

    def _probe_for(self, aug: AugmentedField, like: Tensor, generator) -> Tensor | None:
        if not aug.uses_probe:
            return None
        shape = (*like.shape[:-1], *aug.probe_shape_suffix)
        return draw_probe(shape, self.probe, generator=generator, dtype=like.dtype, device=like.device)

    # -- density -----------------------------------------------------------------------------------
    def density_terms(
        self,
        x: Tensor,
        *,
        kinetic: bool = False,
        jacobian: bool = False,
        trace: str | None = None,
        generator: torch.Generator | None = None,
        probe: Tensor | None = None,
        adjoint: bool | AdjointOptions | None = None,
    ) -> DensityTerms:
        """Integrate ``x`` back to the base: log-density, base point and regularisers per sample.

        ``trace`` overrides the estimator for this call (e.g. train with Hutchinson, evaluate
        exactly); ``probe`` fixes the Hutchinson probes ``(B, D)`` (``(B, k, D)`` for ``probes=k``;
        default: drawn from ``generator``); ``adjoint`` overrides the gradient mode.
        """
        self._check_x(x)
        aug = self._augmented_field(trace or self.trace, kinetic, jacobian)
        y1 = (x - self.loc.to(x)) / self.scale.to(x)
        if probe is None:
            probe = self._probe_for(aug, y1, generator)
        sol = self._solve(aug, aug.pack(y1, probe=probe), self.t1, 0.0, adjoint)
        end = aug.unpack(sol.ys[:, -1])
        log_det_scale = torch.log(self.scale.to(x)).sum()
        logp = standard_normal_log_prob(end.y) - end.logp - log_det_scale
        # Regularisers were integrated backwards in time, so their values come out negated.
        return DensityTerms(
            log_prob=logp,
            z=end.y,
            kinetic=None if end.kinetic is None else -end.kinetic,
            jacobian=None if end.jacobian is None else -end.jacobian,
            nfev=sol.stats["nfev"],
        )

    def log_prob(self, x: Tensor, **kwargs: Any) -> Tensor:
        """``log p_1(x)`` per sample, shape ``(B,)`` (options as in :meth:`density_terms`)."""
        return self.density_terms(x, **kwargs).log_prob

    def nll(self, x: Tensor, **kwargs: Any) -> Tensor:
        """Mean negative log-likelihood of the batch ``x`` in nats."""
        return -self.log_prob(x, **kwargs).mean()

    # -- sampling ----------------------------------------------------------------------------------
    def base_sample(self, n: int, *, generator=None, dtype=None, device=None) -> Tensor:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgumentError("n", n, "a positive integer number of samples")
        return torch.randn(
            n, self.dim, generator=generator, dtype=dtype or self.loc.dtype, device=device or self.loc.device
        )

    def sample_with_log_prob(
        self,
        n: int | None = None,
        *,
        z: Tensor | None = None,
        trace: str | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``n`` samples (or the images of given base points ``z``) with their log-densities."""
        if z is None:
            if n is None:
                raise InvalidArgumentError("n", None, "a number of samples (or base points z)")
            z = self.base_sample(n, generator=generator, dtype=dtype, device=device)
        else:
            self._check_x(z, "z")
        aug = self._augmented_field(trace or self.trace)
        probe = self._probe_for(aug, z, generator)
        sol = self._solve(aug, aug.pack(z, standard_normal_log_prob(z), probe), 0.0, self.t1, False)
        end = aug.unpack(sol.ys[:, -1])
        x = self.loc.to(z) + self.scale.to(z) * end.y
        return x, end.logp - torch.log(self.scale.to(z)).sum()

    def sample(
        self,
        n: int | None = None,
        *,
        z: Tensor | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """``n`` samples of the model (only ``y`` is integrated: no trace work)."""
        if z is None:
            if n is None:
                raise InvalidArgumentError("n", None, "a number of samples (or base points z)")
            z = self.base_sample(n, generator=generator, dtype=dtype, device=device)
        else:
            self._check_x(z, "z")
        ts = torch.tensor([0.0, self.t1], dtype=z.dtype, device=z.device)
        opts: dict[str, Any] = (
            {"dt": self.dt}
            if self.dt is not None
            else {"rtol": self.rtol, "atol": self.atol, "norm": self.step_norm}
        )
        y = solve(self.field, z, ts, self.method, compile=self.compile, **opts).ys[:, -1]
        return self.loc.to(z) + self.scale.to(z) * y

    def forward(self, x: Tensor) -> Tensor:
        """``log p_1(x)`` (so the module can be called like a density)."""
        return self.log_prob(x)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())
