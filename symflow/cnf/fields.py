"""Time-dependent vector-field networks ``v_θ(t, y)`` for CNFs and flow matching.

:class:`TimeMLP` is a multilayer perceptron whose every layer sees the time: each hidden layer is
``h ← σ(W h + b + t·w_t)`` (the "concat" layer of FFJORD's toy models, Grathwohl et al. 2019, App.
B). Smooth activations keep the field's Jacobian — whose trace drives the log-density — smooth, as
the ODE solver and the second derivatives of maximum-likelihood training need.
"""

from __future__ import annotations

import itertools

import torch

from symflow.integrators import InvalidArgumentError, Registry

Tensor = torch.Tensor
F = torch.nn.functional

ACTIVATIONS: Registry[type[torch.nn.Module]] = Registry("activation")
ACTIVATIONS.register("softplus", torch.nn.Softplus)
ACTIVATIONS.register("tanh", torch.nn.Tanh)
ACTIVATIONS.register("silu", torch.nn.SiLU, aliases=("swish",))
ACTIVATIONS.register("elu", torch.nn.ELU)


# σ(z) and σ'(z) together, for the forward-mode product (the modules' defaults: softplus with β = 1,
# ELU with α = 1). Each reuses what the value already computed.
def _softplus_slope(z: Tensor) -> tuple[Tensor, Tensor]:
    return F.softplus(z), torch.sigmoid(z)


def _tanh_slope(z: Tensor) -> tuple[Tensor, Tensor]:
    h = torch.tanh(z)
    return h, 1 - h * h


def _silu_slope(z: Tensor) -> tuple[Tensor, Tensor]:
    s = torch.sigmoid(z)
    return z * s, s * (1 + z * (1 - s))


def _elu_slope(z: Tensor) -> tuple[Tensor, Tensor]:
    h = F.elu(z)
    return h, torch.where(z > 0, torch.ones_like(h), h + 1)  # d/dz (e^z − 1) = e^z = h + 1


_SLOPES = {"softplus": _softplus_slope, "tanh": _tanh_slope, "silu": _silu_slope, "elu": _elu_slope}


class TimeMLP(torch.nn.Module):
    """``v(t, y)``: an MLP on ``y`` with the time concatenated to the input of every layer.

    Args:
        dim: data dimension ``D`` (input and output).
        hidden: widths of the hidden layers.
        activation: ``"softplus"``, ``"tanh"``, ``"silu"`` or ``"elu"``.

    ``t`` may be a Python float, a 0-d tensor or a per-sample tensor of the batch shape.
    :meth:`jacobian_product` gives the field with forward-mode Jacobian products.
    """

    def __init__(
        self, dim: int, hidden: tuple[int, ...] | list[int] = (64, 64, 64), activation: str = "softplus"
    ):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise InvalidArgumentError("dim", dim, "a positive integer data dimension")
        widths = list(hidden)
        if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
            raise InvalidArgumentError("hidden", hidden, "a non-empty list of positive layer widths")
        act = ACTIVATIONS.get(activation)
        sizes = [dim, *widths, dim]
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a + 1, b) for a, b in itertools.pairwise(sizes))
        self.act = act()
        self.dim = dim
        self.hidden = tuple(widths)
        self.activation = ACTIVATIONS.canonical(activation)

    def forward(self, t: Tensor | float, y: Tensor) -> Tensor:
        tt = torch.as_tensor(t, dtype=y.dtype, device=y.device).expand(y.shape[:-1]).unsqueeze(-1)
        h = y
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(torch.cat([h, tt], dim=-1))
            if i < last:
                h = self.act(h)
        return h

    def jacobian_product(self, t: Tensor | float, y: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        """``(v(t, y), (∂v/∂y) u)`` in one forward pass (forward-mode differentiation).

        ``u`` has the shape of ``y``, ``(..., D)``, or ``(..., k, D)`` for ``k`` tangents per sample;
        the products have the shape of ``u``. Layer by layer, with ``z = W [h, t] + b``::

            h ← σ(z),    u ← σ'(z) ⊙ (W_y u)

        where ``W_y`` is ``W`` without its time column. Both outputs are differentiable (in ``y``
        and the parameters), as training a CNF through its divergence needs.
        """
        several = u.dim() == y.dim() + 1
        if u.shape[-1] != y.shape[-1] or (u.shape[:-1] != y.shape[:-1] and not several):
            raise InvalidArgumentError(
                "u", u, f"tangents of shape {tuple(y.shape)}, or (..., k, D) for k tangents per sample"
            )
        tt = torch.as_tensor(t, dtype=y.dtype, device=y.device).expand(y.shape[:-1]).unsqueeze(-1)
        slope_of = _SLOPES[self.activation]
        h = y
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            z = layer(torch.cat([h, tt], dim=-1))
            u = F.linear(u, layer.weight[:, :-1])
            if i < last:
                h, slope = slope_of(z)
                u = u * (slope.unsqueeze(-2) if several else slope)
            else:
                h = z
        return h, u

    def config(self) -> dict:
        return {"dim": self.dim, "hidden": list(self.hidden), "activation": self.activation}
