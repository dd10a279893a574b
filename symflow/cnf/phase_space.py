"""Thermal ensembles in phase space and learning their density with a CNF.

**Canonical ensemble.** At temperature ``T`` the equilibrium phase-space density is
``ρ(y) = exp(−H(y)/T) / Z`` (Gibbs). For a quadratic Hamiltonian ``H = ½ yᵀ S y`` with ``S ≻ 0``
it is the Gaussian ``N(0, T S⁻¹)``, sampled and evaluated exactly by :func:`canonical_ensemble`.
``ρ`` depends on ``y`` only through ``H``, which the flow conserves, so the ensemble is stationary:
:func:`simulate_thermal_ensemble` evolves canonical initial conditions with the system's vector field
and collects snapshots, which are again canonical (Liouville; see :mod:`.liouville`) — the data a
simulation writes to an HDF5 trajectory file.

**Learning the density.** :func:`fit_phase_space_density` takes phase-space points ``(N, D)`` — any
source: an ensemble sampled here, or the states of a trajectory file flattened over samples and
times (the HDF5 reader of ``symflow.data`` supplies them; this module reads no files) — and trains a
CNF on them by flow matching or maximum likelihood; :func:`density_error` compares the learned
density with an exact one (KL divergence estimate on held-out points).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.func import hessian

from symflow.integrators import CapabilityError, InvalidArgumentError, solve
from symflow.integrators.inputs import positive_float, positive_int
from symflow.integrators.reprs import compact_repr
from symflow.systems import HamiltonianSystem, get_system, vector_field

from .fields import TimeMLP
from .model import CNF, eval_mode
from .training import FitResult, evaluate_nll, normalisation, train_cnf, train_flow_matching

Tensor = torch.Tensor
F64 = torch.float64


@dataclass(frozen=True)
class ThermalEnsemble:
    """Canonical ensemble ``ρ ∝ exp(−H/T)`` of a quadratic system, with its exact density.

    Attributes:
        system: the Hamiltonian system.
        temperature: ``T`` (in units of energy, ``k_B = 1``).
        covariance: ``T S⁻¹``, shape ``(D, D)``.
    """

    system: HamiltonianSystem
    temperature: float
    covariance: Tensor

    @property
    def distribution(self) -> torch.distributions.MultivariateNormal:
        return torch.distributions.MultivariateNormal(
            torch.zeros(self.covariance.shape[0], dtype=F64), covariance_matrix=self.covariance
        )

    def sample(self, n: int, *, seed: int | torch.Generator = 0) -> Tensor:
        n = positive_int("n", n)
        gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
        chol = torch.linalg.cholesky(self.covariance)
        return torch.randn(n, chol.shape[0], generator=gen, dtype=F64) @ chol.T

    def log_density(self, y: Tensor) -> Tensor:
        """Exact ``log ρ(y) = −H(y)/T − log Z`` (float64)."""
        return self.distribution.log_prob(y.to(F64))

    def __repr__(self) -> str:
        return compact_repr(self)


def canonical_ensemble(system: str | HamiltonianSystem, temperature: float) -> ThermalEnsemble:
    """The canonical ensemble of a quadratic Hamiltonian at ``temperature``.

    Raises :class:`CapabilityError` when ``H`` is not quadratic (checked at random states) or its
    Hessian is not positive definite (then ``exp(−H/T)`` cannot be normalised).
    """
    sys_ = get_system(system)
    temperature = positive_float("temperature", temperature)
    d = sys_.dim
    s = hessian(lambda y: sys_.energy(y))(torch.zeros(d, dtype=F64))
    s = 0.5 * (s + s.T)
    probe = torch.randn(32, d, generator=torch.Generator().manual_seed(0), dtype=F64)
    quad = 0.5 * torch.einsum("bi,ij,bj->b", probe, s, probe)
    if not torch.allclose(
        sys_.energy(probe), quad + sys_.energy(torch.zeros(d, dtype=F64)), rtol=1e-9, atol=1e-12
    ):
        raise CapabilityError(
            f"system {sys_.name!r} has a non-quadratic Hamiltonian; its canonical density has no closed "
            "form here — sample states by simulation and fit them with fit_phase_space_density"
        )
    eig = torch.linalg.eigvalsh(s)
    if not bool((eig > 0).all()):
        raise CapabilityError(
            f"system {sys_.name!r}: the Hessian of H has eigenvalue {float(eig.min()):.3g} ≤ 0, so "
            "exp(−H/T) is not normalisable"
        )
    return ThermalEnsemble(system=sys_, temperature=temperature, covariance=temperature * torch.linalg.inv(s))


def simulate_thermal_ensemble(
    system: str | HamiltonianSystem,
    n: int,
    temperature: float,
    *,
    t_max: float = 10.0,
    snapshots: int = 5,
    seed: int = 0,
    rtol: float = 1e-9,
    atol: float = 1e-11,
) -> tuple[Tensor, ThermalEnsemble]:
    """Canonical initial conditions evolved by the system's flow; snapshots stacked to ``(n·snapshots, D)``.

    Returns the states (ordered snapshot-major) and the ensemble, whose exact density they follow at
    every time (the canonical density is invariant under the flow).
    """
    ens = canonical_ensemble(system, temperature)
    n = positive_int("n", n)
    snapshots = positive_int("snapshots", snapshots)
    y0 = ens.sample(n, seed=seed)
    ts = torch.linspace(0.0, positive_float("t_max", t_max), snapshots + 1, dtype=F64)[1:]
    ts = torch.cat([torch.zeros(1, dtype=F64), ts])
    ys = solve(vector_field(ens.system), y0, ts, rtol=rtol, atol=atol).ys[:, 1:]  # (n, snapshots, D)
    return ys.transpose(0, 1).reshape(-1, ys.shape[-1]), ens


@dataclass
class PhaseSpaceFit:
    """A CNF fitted to phase-space points, with its held-out negative log-likelihood (nats)."""

    cnf: CNF
    fit: FitResult
    held_out_nll: float
    held_out_stderr: float
    held_out: Tensor

    def __repr__(self) -> str:
        return compact_repr(self)


def fit_phase_space_density(
    states: Tensor,
    *,
    objective: str = "flow_matching",
    hidden: tuple[int, ...] = (64, 64, 64),
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 2e-3,
    held_out_fraction: float = 0.1,
    trace: str = "exact",
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    run: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    **cnf_options: Any,
) -> PhaseSpaceFit:
    """Learn the density of phase-space points ``states (N, D)`` with a CNF.

    The points are shuffled (seeded) and split into training and held-out parts; a :class:`TimeMLP`
    field on standardised coordinates is trained by ``objective`` (``"flow_matching"`` or ``"mle"``)
    and the held-out NLL is evaluated with the exact trace. ``cnf_options`` go to :class:`CNF`
    (solver, tolerances, trace for MLE training).
    """
    if not isinstance(states, Tensor) or states.dim() != 2 or states.shape[0] < 10:
        raise InvalidArgumentError("states", states, "a (N, D) tensor of phase-space points with N >= 10")
    if not bool(torch.isfinite(states).all()):
        row = int((~torch.isfinite(states)).any(-1).nonzero()[0, 0])
        raise InvalidArgumentError("states", f"non-finite values in row {row}", "finite phase-space points")
    frac = positive_float("held_out_fraction", held_out_fraction)
    if frac >= 1:
        raise InvalidArgumentError("held_out_fraction", frac, "a fraction in (0, 1)")
    trainers: dict[str, Callable[..., FitResult]] = {"flow_matching": train_flow_matching, "mle": train_cnf}
    if objective not in trainers:
        from symflow.integrators import Registry

        reg: Registry[None] = Registry("training objective")
        for name in trainers:
            reg.register(name, None)
        objective = reg.canonical(objective)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(states.shape[0], generator=gen)
    n_val = max(1, math.ceil(frac * states.shape[0]))
    data = states.to(dtype)[perm]
    held, train = data[:n_val], data[n_val:]
    loc, scale = normalisation(train)
    torch.manual_seed(seed)
    d = states.shape[-1]
    field = TimeMLP(d, hidden).to(dtype)
    cnf = CNF(field, d, trace=trace, loc=loc, scale=scale, **cnf_options)
    fit = trainers[objective](
        cnf,
        train,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        run=run,
        resume=resume,
        progress=progress,
    )
    nll, stderr = evaluate_nll(cnf, held)
    return PhaseSpaceFit(cnf=cnf, fit=fit, held_out_nll=nll, held_out_stderr=stderr, held_out=held)


@torch.no_grad()
def density_error(
    cnf: CNF, states: Tensor, exact_log_density: Callable[[Tensor], Tensor]
) -> dict[str, float]:
    """How far the learned density is from an exact one on points ``states`` drawn from it.

    Returns the Monte Carlo KL divergence ``E[log ρ − log p_θ]`` (≥ 0 up to sampling noise) with its
    standard error, and the RMS of the centred log-density difference (shape mismatch, ignoring
    normalisation).
    """
    x = states.to(dtype=cnf.loc.dtype, device=cnf.loc.device)
    with eval_mode(cnf):  # per-sample steps: batch-independent log-densities
        learned = torch.cat([cnf.log_prob(c) for c in x.split(1024)]).to(F64)
    exact = exact_log_density(states.to(F64)).to(F64)
    diff = exact - learned
    n = diff.numel()
    return {
        "kl": float(diff.mean()),
        "kl_stderr": float(diff.std() / math.sqrt(n)),
        "centred_rms": float((diff - diff.mean()).pow(2).mean().sqrt()),
    }
