"""Flow matching: the OT path, a zero loss for the exact field, and a small model that learns."""

from __future__ import annotations

import pytest
import torch

from symflow.cnf import (
    CNF,
    TimeMLP,
    evaluate_nll,
    flow_matching_loss,
    get_dataset,
    ot_path,
    train_flow_matching,
)
from symflow.integrators import InvalidArgumentError


def test_ot_path_starts_at_noise_ends_near_data_and_moves_at_the_target_velocity():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    sigma = 0.1
    start, u = ot_path(x0, x1, torch.zeros(6), sigma)
    end, _ = ot_path(x0, x1, torch.ones(6), sigma)
    torch.testing.assert_close(start, x0)
    torch.testing.assert_close(end, x1 + sigma * x0)
    t, h = torch.full((6,), 0.3), 1e-6
    fd = (ot_path(x0, x1, t + h, sigma)[0] - ot_path(x0, x1, t - h, sigma)[0]) / (2 * h)
    torch.testing.assert_close(fd, u, rtol=1e-8, atol=1e-8)


class SinglePointField(torch.nn.Module):
    """The exact marginal field when the data is one point ``x1``: ``(x1 − (1−σ)x)/(1 − (1−σ)t)``."""

    def __init__(self, x1: torch.Tensor, sigma: float):
        super().__init__()
        self.register_buffer("x1", x1)
        self.sigma = sigma

    def forward(self, t, y):
        t = torch.as_tensor(t, dtype=y.dtype).expand(y.shape[:-1]).unsqueeze(-1)
        return (self.x1 - (1 - self.sigma) * y) / (1 - (1 - self.sigma) * t)


def test_exact_field_has_zero_loss_and_its_cnf_gives_the_analytic_endpoint_density():
    """One data point: conditional and marginal paths coincide, N(0, I) → N(x1, σ²I)."""
    sigma = 0.2
    x1 = torch.tensor([1.5, -0.5])
    field = SinglePointField(x1, sigma)
    loss = flow_matching_loss(
        field, x1.expand(512, 2), sigma_min=sigma, generator=torch.Generator().manual_seed(1)
    )
    assert float(loss) < 1e-20
    cnf = CNF(field, 2, rtol=1e-11, atol=1e-11)
    x = x1 + sigma * torch.randn(16, 2, generator=torch.Generator().manual_seed(2))
    ref = torch.distributions.Normal(x1, sigma).log_prob(x).sum(-1)
    with torch.no_grad():
        torch.testing.assert_close(cnf.log_prob(x), ref, rtol=0, atol=1e-8)
    # A wrong field (the velocity sign flipped) does not have zero loss.
    wrong = flow_matching_loss(lambda t, y: -field(t, y), x1.expand(512, 2), sigma_min=sigma)
    assert float(wrong) > 0.1


def test_flow_matching_lowers_the_loss_and_the_held_out_nll():
    ds = get_dataset("eight_gaussians")
    train = ds.sample(4000, seed=1, dtype=torch.float32)
    test = ds.sample(500, seed=2, dtype=torch.float32)
    torch.manual_seed(0)
    cnf = CNF(TimeMLP(2, (32, 32)).float(), 2, rtol=1e-4, atol=1e-4, scale=torch.full((2,), 2.0))
    before, _ = evaluate_nll(cnf, test)
    fit = train_flow_matching(cnf, train, steps=1200, batch_size=256, lr=5e-3, progress=False, log_every=50)
    losses = [r["loss"] for r in fit.history]
    assert sum(losses[-5:]) / 5 < 0.95 * sum(losses[:5]) / 5  # the conditional loss keeps a large floor
    after, se = evaluate_nll(cnf, test)
    assert after < before - 0.3, (before, after, se)


def test_flow_matching_rejects_a_cnf_on_another_time_interval_and_bad_shapes():
    cnf = CNF(TimeMLP(2, (8,)), 2, t1=2.0)
    with pytest.raises(InvalidArgumentError, match="t1"):
        train_flow_matching(cnf, torch.randn(10, 2), steps=1, progress=False)
    with pytest.raises(InvalidArgumentError, match="x0"):
        ot_path(torch.randn(3, 2), torch.randn(4, 2), torch.rand(4))
    with pytest.raises(InvalidArgumentError, match="t"):
        ot_path(torch.randn(4, 2), torch.randn(4, 2), torch.rand(3))
