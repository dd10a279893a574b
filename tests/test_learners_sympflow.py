"""SympFlow: exact symplecticity, exact identity at t = 0, derivatives, composition, input errors."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, jacrev, vmap

from symflow.integrators.errors import CapabilityError, InvalidArgumentError
from symflow.learners import FlowMapPINN, IncrementMLP, SympFlow

pytestmark = pytest.mark.usefixtures("one_thread")


def canonical_j(n: int) -> torch.Tensor:
    eye = torch.eye(n)
    zero = torch.zeros(n, n)
    return torch.cat([torch.cat([zero, eye], 1), torch.cat([-eye, zero], 1)], 0)


def randomize(model: torch.nn.Module, scale: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def symplectic_defect(model, t, x) -> torch.Tensor:
    jac = vmap(jacrev(lambda s, y: model(s, y), argnums=1))(t, x)
    j = canonical_j(x.shape[-1] // 2)
    return (jac.transpose(-1, -2) @ j @ jac - j).norm(dim=(-2, -1))


@pytest.mark.parametrize(
    ("derivatives", "dof", "seed"), [("closed_form", 1, 0), ("func", 2, 1), ("closed_form", 3, 2)]
)
def test_sympflow_is_symplectic_to_round_off_for_random_weights_and_times(derivatives, dof, seed):
    torch.manual_seed(seed)
    model = SympFlow(dof, dt=1.0, layers=3, width=8, derivatives=derivatives)
    randomize(model, 0.4, seed)
    x = 0.8 * torch.randn(64, 2 * dof)
    t = torch.rand(64)
    assert symplectic_defect(model, t, x).max() <= 1e-12
    # ... and the map is far from trivial: the Jacobian is not close to the identity.
    jac = vmap(jacrev(lambda s, y: model(s, y), argnums=1))(t, x)
    assert (jac - torch.eye(2 * dof)).norm(dim=(-2, -1)).median() > 0.1


def test_symplecticity_holds_for_every_time_relative_to_the_jacobian_size():
    torch.manual_seed(12)
    model = SympFlow(2, dt=1.0, layers=3, width=8)
    randomize(model, 0.7, 12)
    x, t = 0.8 * torch.randn(64, 4), 3.0 * torch.rand(64)  # far outside [0, Δt]: still symplectic
    jac = vmap(jacrev(lambda s, y: model(s, y), argnums=1))(t, x)
    assert jac.norm(dim=(-2, -1)).max() > 20  # strongly nonlinear, large Jacobians
    relative = symplectic_defect(model, t, x) / jac.norm(dim=(-2, -1)).pow(2)
    assert relative.max() <= 1e-14


def test_flow_map_pinn_is_not_symplectic_which_is_what_sympflow_buys():
    torch.manual_seed(0)
    model = FlowMapPINN(4, dt=1.0, width=16)
    x, t = 0.5 * torch.randn(32, 4), torch.rand(32)
    assert symplectic_defect(model, t, x).median() > 1e-2


@pytest.mark.parametrize("derivatives", ["closed_form", "func", "autograd"])
def test_sympflow_is_exactly_the_identity_at_time_zero(derivatives):
    torch.manual_seed(3)
    model = SympFlow(2, dt=1.0, derivatives=derivatives)
    randomize(model, 1.0, 3)
    x = torch.randn(257, 4)
    assert torch.equal(model(0.0, x), x)
    assert torch.equal(model(torch.zeros(257), x), x)
    y, _ = model.time_derivative(torch.zeros(257), x)
    assert torch.equal(y, x)
    x32 = x.float()
    assert torch.equal(model.float()(0.0, x32), x32)


def test_the_three_derivative_backends_agree_on_values_time_derivatives_and_weight_gradients():
    torch.manual_seed(4)
    model = SympFlow(2, dt=1.0, layers=2, width=7)
    x, t = 0.6 * torch.randn(12, 4), torch.rand(12)
    results = {}
    for how in ("closed_form", "func", "autograd"):
        y, dy = model.time_derivative(t, x, derivatives=how)
        loss = (dy - y.flip(-1)).pow(2).sum()
        grads = torch.autograd.grad(loss, list(model.parameters()))
        results[how] = (y, dy, grads)
    ref_y, ref_dy, ref_g = results["func"]
    for how in ("closed_form", "autograd"):
        y, dy, grads = results[how]
        assert (y - ref_y).abs().max() <= 1e-13
        assert (dy - ref_dy).abs().max() <= 1e-12
        assert max(float((a - b).abs().max()) for a, b in zip(grads, ref_g)) <= 1e-12


def test_time_derivative_matches_central_differences():
    torch.manual_seed(5)
    model = SympFlow(2, dt=1.0)
    x, t = 0.5 * torch.randn(16, 4), 0.2 + 0.6 * torch.rand(16)
    _, dy = model.time_derivative(t, x)
    h = 1e-5
    fd = (model(t + h, x) - model(t - h, x)) / (2 * h)
    assert (dy - fd).abs().max() <= 1e-8


class _MatchingLoss(torch.nn.Module):
    """The oscillator's Hamiltonian-matching loss as a module, so functional_call can swap weights."""

    def __init__(self, model: SympFlow) -> None:
        super().__init__()
        self.model = model

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y, dy = self.model.time_derivative(t, x)
        field = torch.cat([y[:, 1:], -y[:, :1]], dim=-1)
        return (dy - field).pow(2).sum(-1).mean()


def test_weight_gradients_of_the_matching_loss_match_finite_differences():
    # closed_form here; the other backends' weight gradients equal these (test above).
    torch.manual_seed(6)
    loss_module = _MatchingLoss(SympFlow(1, dt=1.0, layers=2, width=4))
    x, t = 0.5 * torch.randn(8, 2), torch.rand(8)
    names = [n for n, _ in loss_module.named_parameters()]
    shapes = [p.shape for p in loss_module.parameters()]
    flat = torch.cat([p.detach().flatten() for p in loss_module.parameters()]).requires_grad_()

    def loss(theta: torch.Tensor) -> torch.Tensor:
        params = dict(
            zip(names, (c.view(s) for c, s in zip(theta.split([s.numel() for s in shapes]), shapes)))
        )
        return functional_call(loss_module, params, (t, x))

    assert torch.autograd.gradcheck(loss, (flat,), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("hidden_layers", [1, 2, 3])
def test_increment_network_closed_form_matches_torch_func(hidden_layers):
    torch.manual_seed(7)
    net = IncrementMLP(3, width=7, hidden_layers=hidden_layers)
    x, xd, t = torch.randn(20, 3), torch.randn(20, 3), torch.rand(20)
    g, gd = net.gradient_and_tangent(t, x, xd)
    ref_g, ref_gd = torch.func.jvp(lambda s, y: net.gradient(s, y), (t, x), (torch.ones_like(t), xd))
    assert (g - ref_g).abs().max() <= 1e-13
    assert (gd - ref_gd).abs().max() <= 1e-13
    assert (net.closed_form_gradient(t, x) - ref_g).abs().max() <= 1e-13
    zero = torch.zeros(20)
    assert torch.equal(net(zero, x), torch.zeros(20))
    assert torch.equal(net.closed_form_gradient(zero, x), torch.zeros(20, 3))


def test_inverse_undoes_the_map():
    torch.manual_seed(8)
    model = SympFlow(2, dt=1.0)
    x, t = 0.5 * torch.randn(30, 4), torch.rand(30)
    assert (model.inverse(t, model(t, x)) - x).abs().max() <= 1e-13


def test_flow_composes_full_steps_and_a_remainder_per_sample():
    torch.manual_seed(9)
    model = SympFlow(1, dt=0.5)
    x = torch.randn(3, 2)
    t = torch.tensor([0.0, 0.3, 1.2])
    out = model.flow(t, x)
    assert torch.equal(out[0], x[0])
    assert torch.allclose(out[1], model(0.3, x[1]), atol=0, rtol=0)
    expected = model(0.2, model(0.5, model(0.5, x[2])))
    assert (out[2] - expected).abs().max() <= 1e-15


def test_rollout_matches_flow_at_every_time_for_shared_and_per_sample_grids():
    torch.manual_seed(10)
    model = SympFlow(2, dt=0.5)
    x = 0.5 * torch.randn(4, 4)
    ts = torch.tensor([0.0, 0.1, 0.5, 0.75, 1.6, 2.0])
    ys = model.rollout(x, ts)
    assert ys.shape == (4, 6, 4)
    assert torch.equal(ys[:, 0], x)
    for j, t in enumerate(ts):
        assert (ys[:, j] - model.flow(t, x)).abs().max() <= 1e-14
    per_sample = torch.stack([ts + 3.0, ts * 2 + 1.0, ts, ts * 0.5 + 7.0])  # own start times and spacing
    ys2 = model.rollout(x, per_sample)
    elapsed = per_sample - per_sample[:, :1]
    for i in range(4):
        for j in range(6):
            assert (ys2[i, j] - model.flow(elapsed[i, j], x[i])).abs().max() <= 1e-14


def test_rollout_is_differentiable_through_the_composition():
    torch.manual_seed(11)
    model = SympFlow(1, dt=0.5, layers=2)
    x = torch.randn(2, 2)
    model.rollout(x, torch.tensor([0.0, 1.3])).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda m: m(0.5, torch.randn(3, 5)), "x0"),
        (lambda m: m(0.5, torch.randn(3, 4, dtype=torch.float32)), "x0"),
        (lambda m: m(torch.rand(2), torch.randn(3, 4)), "t"),
        (lambda m: m.flow(-1.0, torch.randn(3, 4)), "t"),
        (lambda m: m.rollout(torch.randn(3, 4), torch.tensor([1.0, 0.5])), "ts"),
        (lambda m: m.rollout(torch.randn(3, 4), torch.zeros(2, 5)), "ts"),
        (lambda m: m.time_derivative(0.1, torch.randn(2, 4), derivatives="fd"), "derivatives"),
    ],
)
def test_bad_inputs_raise_typed_errors_naming_the_argument(call, argument):
    model = SympFlow(2, dt=1.0)
    with pytest.raises(InvalidArgumentError) as info:
        call(model)
    assert info.value.argument == argument


def test_constructor_validates_its_options():
    with pytest.raises(InvalidArgumentError, match="dt"):
        SympFlow(1, dt=0.0)
    with pytest.raises(InvalidArgumentError, match="layers"):
        SympFlow(1, dt=1.0, layers=0)
    with pytest.raises(InvalidArgumentError, match="width"):
        SympFlow(1, dt=1.0, width=0)
    with pytest.raises(CapabilityError, match="closed_form"):
        FlowMapPINN(2, dt=1.0, derivatives="closed_form")


def test_default_parameter_count_is_the_official_configuration():
    assert 1000 <= SympFlow(2, dt=1.0).num_parameters() <= 1600
    assert 1000 <= FlowMapPINN(4, dt=1.0).num_parameters() <= 1600
