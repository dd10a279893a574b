"""Neural ODEs conditioned on parameters: ``dy/dt = f_θ(t, y; μ)`` learned from a whole family.

A trajectory file simulated with varying parameters (``symflow simulate ... --param-range``) holds
one ``μ`` per trajectory in its ``params`` dataset. :class:`ParametricVectorField` learns one field
for all of them:

* ``kind="hnn"``: ``H_θ(y; μ) = MLP([s·y; μ̂])`` and ``f = J∇_y H_θ`` — for every fixed ``μ`` an
  exactly Hamiltonian field (Greydanus et al., NeurIPS 2019, with the parameters as extra inputs);
* ``kind="mlp"``: ``f_θ(t, y; μ) = MLP([y; μ̂(; t)])``.

``μ̂ = (μ − centre) / half-width`` rescales each parameter to ``[−1, 1]`` over the family's range.

**The augmented state.** The objectives of :mod:`.objective` and :mod:`.pairs` and every solver see
the model as an ordinary autonomous field on ``z = [y, μ] ∈ R^{D+P}`` with ``dμ/dt = 0``: the
parameters travel with the state (adaptive solvers drop finished samples from their batch, so a
per-sample ``μ`` held aside would lose its alignment). The ``μ`` components stay exactly constant —
every stage of a Runge–Kutta step adds exact zeros to them — so their residuals in the objectives are
exact zeros and the training signal is the ``y`` part alone. :func:`augment` builds ``z`` from data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import grad

from symflow.integrators import solve
from symflow.integrators.errors import InvalidArgumentError

from .models import mlp

Tensor = torch.Tensor

KINDS = ("hnn", "mlp")


def augment(ys: Tensor, params: Tensor) -> Tensor:
    """``[y, μ]``: states ``(B, T, D)`` or ``(B, D)`` with per-trajectory parameters ``(B, P)``."""
    if params.ndim != 2 or params.shape[0] != ys.shape[0]:
        raise InvalidArgumentError("params", params, f"a tensor of shape ({ys.shape[0]}, P)")
    mu = params.to(dtype=ys.dtype, device=ys.device)
    if ys.ndim == 3:
        mu = mu[:, None, :].expand(-1, ys.shape[1], -1)
    return torch.cat([ys, mu], dim=-1)


class ParametricVectorField(nn.Module):
    """A learned field conditioned on named parameters (see the module docstring).

    Args:
        dim: the observed state dimension ``D`` (even for ``kind="hnn"``).
        param_ranges: ``{name: (lo, hi)}`` in column order: the parameters and the range the
            network's input is scaled over (the family's range, or the training data's span).
        kind: ``"hnn"`` or ``"mlp"``.
        width, depth, activation: the MLP.
        input_scale: HNN: ``H_θ(y; μ) = MLP([s·y; μ̂])``.
        time_dependent: MLP: the field also sees ``t``.

    ``model(t, z)`` is the field on augmented states ``z = [y, μ]`` (what solvers and objectives
    call); ``model.field(t, y, mu)`` is ``f(t, y; μ)`` on observed states, checked.
    """

    def __init__(
        self,
        dim: int,
        param_ranges: Mapping[str, Sequence[float]],
        *,
        kind: str = "hnn",
        width: int = 64,
        depth: int = 2,
        activation: str = "tanh",
        input_scale: float = 1.0,
        time_dependent: bool = False,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise InvalidArgumentError("kind", kind, f"one of {', '.join(KINDS)} (conditioned models)")
        if kind == "hnn" and dim % 2:
            raise InvalidArgumentError("dim", dim, "an even state dimension D = 2n ([q, p])")
        if not isinstance(param_ranges, Mapping) or not param_ranges:
            raise InvalidArgumentError("param_ranges", param_ranges, "a non-empty mapping name → (lo, hi)")
        ranges = {}
        for name, bounds in param_ranges.items():
            lo, hi = (float(b) for b in bounds)
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise InvalidArgumentError(f"param_ranges[{name!r}]", bounds, "finite bounds")
            ranges[str(name)] = (lo, hi)
        self.param_ranges = ranges
        self.kind = kind
        self.observed_dim = dim
        self.n_params = len(ranges)
        self.dim = dim + self.n_params  # the augmented state the solvers see
        self.time_dependent = bool(time_dependent) and kind == "mlp"
        self.input_scale = float(input_scale)
        lo = torch.tensor([r[0] for r in ranges.values()], dtype=torch.float64)
        hi = torch.tensor([r[1] for r in ranges.values()], dtype=torch.float64)
        half = ((hi - lo) / 2).clamp_min(1e-12)  # a range of one value (every trajectory alike) is fine
        self.register_buffer("param_centre", (lo + hi) / 2)
        self.register_buffer("param_scale", half)
        inputs = dim + self.n_params + int(self.time_dependent)
        self.net = mlp(inputs, 1 if kind == "hnn" else dim, width, depth, activation)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.param_ranges)

    def _scaled(self, mu: Tensor) -> Tensor:
        return (mu - self.param_centre.to(mu.dtype)) / self.param_scale.to(mu.dtype)

    # -- on observed states, with the parameters apart ------------------------------------------------
    def hamiltonian(self, y: Tensor, mu: Tensor) -> Tensor:
        """``H_θ(y; μ)`` (``kind="hnn"``), shape ``broadcast(y.shape[:-1], mu.shape[:-1])``."""
        if self.kind != "hnn":
            raise InvalidArgumentError("kind", self.kind, "'hnn' for a learned Hamiltonian")
        batch = torch.broadcast_shapes(y.shape[:-1], mu.shape[:-1])
        y = y.expand(*batch, y.shape[-1])
        mu = mu.to(y.dtype).expand(*batch, mu.shape[-1])
        return self.net(torch.cat([y * self.input_scale, self._scaled(mu)], dim=-1)).squeeze(-1)

    def field(self, t: Tensor | float, y: Tensor, mu: Any) -> Tensor:
        """``f(t, y; μ)``: ``y (..., D)``, ``mu (..., P)`` (or a mapping name → value). Refuses a
        missing ``mu`` or other parameter names, naming the ones it was trained with."""
        mu = self.check_params(mu, y)
        batch = torch.broadcast_shapes(y.shape[:-1], mu.shape[:-1])
        z = torch.cat([y.expand(*batch, y.shape[-1]), mu.expand(*batch, mu.shape[-1])], dim=-1)
        return self(torch.as_tensor(t, dtype=y.dtype, device=y.device), z)[..., : self.observed_dim]

    def check_params(self, mu: Any, like: Tensor) -> Tensor:
        names = self.param_names
        if mu is None:
            raise InvalidArgumentError(
                "mu", None, f"the parameters this model was trained with: {list(names)}"
            )
        if isinstance(mu, Mapping):
            if set(mu) != set(names):
                raise InvalidArgumentError(
                    "mu", dict(mu), f"values for the parameters the model was trained with {list(names)}"
                )
            cols = torch.broadcast_tensors(
                *(torch.as_tensor(mu[k], dtype=like.dtype, device=like.device) for k in names)
            )
            mu = torch.stack(cols, dim=-1)
        mu = torch.as_tensor(mu, dtype=like.dtype, device=like.device)
        if mu.ndim < 1 or mu.shape[-1] != self.n_params:
            raise InvalidArgumentError(
                "mu", mu, f"shape (..., {self.n_params}) for the parameters {list(names)}"
            )
        return mu

    # -- on augmented states --------------------------------------------------------------------------
    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        if z.shape[-1] != self.dim:
            raise InvalidArgumentError(
                "z",
                z,
                f"augmented states [y, μ] of size {self.dim} (this model is conditioned on "
                f"{list(self.param_names)}; use .field(t, y, mu) for states of size {self.observed_dim})",
            )
        D = self.observed_dim
        y, mu = z[..., :D], z[..., D:]
        m = self._scaled(mu)
        if self.kind == "hnn":
            g = grad(lambda u: self.net(torch.cat([u * self.input_scale, m], dim=-1)).sum())(y)
            n = D // 2
            dy = torch.cat([g[..., n:], -g[..., :n]], dim=-1)
        else:
            inputs = [y, m]
            if self.time_dependent:
                inputs.append(
                    torch.as_tensor(t, dtype=z.dtype, device=z.device).expand(z.shape[:-1])[..., None]
                )
            dy = self.net(torch.cat(inputs, dim=-1))
        return torch.cat([dy, torch.zeros_like(mu)], dim=-1)

    def extra_repr(self) -> str:
        ranges = ", ".join(f"{k} ∈ [{lo:g}, {hi:g}]" for k, (lo, hi) in self.param_ranges.items())
        return f"kind={self.kind!r}, dim={self.observed_dim}, params: {ranges}"


def conditioned_model(
    name: str, dim: int, param_ranges: Mapping[str, Sequence[float]], **kw: Any
) -> nn.Module:
    """The conditioned version of discovery model ``name`` (``hnn`` or ``mlp``); other models refuse."""
    from .models import MODELS

    canonical = MODELS.canonical(name)
    if canonical not in KINDS:
        from symflow.integrators.errors import CapabilityError

        raise CapabilityError(
            f"model {canonical!r} cannot be conditioned on parameters; use 'hnn' or 'mlp' for a file with a "
            "params dataset (or --ignore-params to train on the states alone)"
        )
    kw = {
        k: v for k, v in kw.items() if k in ("width", "depth", "activation", "input_scale", "time_dependent")
    }
    return ParametricVectorField(dim, param_ranges, kind=canonical, **kw)


@torch.no_grad()
def evaluate_parametric_node(
    model: ParametricVectorField,
    path: str | Path,
    *,
    rows: Sequence[int],
    family: Any = None,
    rtol: float = 1e-9,
    atol: float = 1e-11,
) -> dict[str, Any]:
    """Held-out trajectories of a file (their ``μ`` never seen in training) against the learned field.

    Each trajectory is integrated by the model from its first observation with its own ``μ`` to its
    observation times. Reported: per trajectory ``max_t ‖ŷ(t) − y(t)‖ / max_t ‖y(t)‖`` against the
    reference — the family's exact flow when ``family`` has one, else the stored observations —
    median and max, and the held-out parameter values.
    """
    from symflow.data import TrajectoryDataset, collate_trajectories

    dtype = next(model.parameters()).dtype
    ds = TrajectoryDataset(path, indices=np.asarray(rows, dtype=np.int64), dtype=dtype, check=False)
    if ds.params is None:
        raise InvalidArgumentError("path", str(path), "a file with a params dataset")
    b = collate_trajectories([ds[i] for i in range(len(ds))])
    errs = []
    for r in range(len(b)):  # one solve per trajectory: each has its own observation times
        L = int(b.length[r])
        ts, y_obs, mu = b.ts[r, :L], b.ys[r, :L], b.params[r]
        z0 = torch.cat([y_obs[0], mu.to(dtype)])[None]
        pred = solve(model, z0, ts, "dopri5", rtol=rtol, atol=atol).ys[0, :, : model.observed_dim]
        ref = y_obs
        if family is not None and family.has_exact_flow:
            ref = family.flow(ts - ts[0], y_obs[0].double(), mu.double()[None]).to(dtype)
        errs.append(float((pred - ref).norm(dim=-1).max() / ref.norm(dim=-1).max().clamp_min(1e-300)))
    e = torch.tensor(errs)
    return {
        "trajectories": len(errs),
        "relative_error_max": float(e.max()),
        "relative_error_median": float(e.median()),
        "params": b.params[:, 0].tolist() if b.params.shape[1] == 1 else b.params.tolist(),
        "reference": "exact flow" if family is not None and family.has_exact_flow else "observations",
    }
