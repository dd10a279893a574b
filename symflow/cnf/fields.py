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

ACTIVATIONS: Registry[type[torch.nn.Module]] = Registry("activation")
ACTIVATIONS.register("softplus", torch.nn.Softplus)
ACTIVATIONS.register("tanh", torch.nn.Tanh)
ACTIVATIONS.register("silu", torch.nn.SiLU, aliases=("swish",))
ACTIVATIONS.register("elu", torch.nn.ELU)


class TimeMLP(torch.nn.Module):
    """``v(t, y)``: an MLP on ``y`` with the time concatenated to the input of every layer.

    Args:
        dim: data dimension ``D`` (input and output).
        hidden: widths of the hidden layers.
        activation: ``"softplus"``, ``"tanh"``, ``"silu"`` or ``"elu"``.

    ``t`` may be a Python float, a 0-d tensor or a per-sample tensor of the batch shape.
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

    def config(self) -> dict:
        return {"dim": self.dim, "hidden": list(self.hidden), "activation": self.activation}
