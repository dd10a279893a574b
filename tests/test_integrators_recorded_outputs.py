"""A shared-grid fixed-step solve records its outputs through a staging buffer when no graph is
recorded, and keeps the states (one ``stack`` at the end) when one is: both give the same ``ys``."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import forward_ad as fwad

import symflow.integrators.fixed as fixed
import symflow.systems as S
from symflow.integrators import list_methods, solve

HH = S.get_system("henon_heiles")
TS = torch.linspace(0.0, 2.3, 24, dtype=torch.float64)  # 23 outputs after y0
FIXED_STEP = [*list_methods("explicit"), *list_methods("splitting"), *list_methods("implicit")]


def _state_bytes(y0: torch.Tensor) -> int:
    return y0.numel() * y0.element_size()


@pytest.mark.parametrize("states_per_stage", [1, 5, 23, 100])
@pytest.mark.parametrize("method", list_methods("explicit"))  # they carry nothing between steps
def test_staged_outputs_equal_a_chain_of_one_interval_solves_bitwise(method, states_per_stage, monkeypatch):
    # 23 outputs through a stage of 5 leaves a partial stage (3 states) for the final flush; the
    # reference solves each interval on its own from the previous one's end (same steps, one output).
    f = S.vector_field(HH)
    y0 = HH.sample(6, seed=3)
    monkeypatch.setattr(fixed._Recorder, "STAGE_BYTES", states_per_stage * _state_bytes(y0))
    ys = solve(f, y0, TS, method, dt=0.05).ys
    assert ys.shape == (6, 24, 4) and ys.is_contiguous() and not ys.requires_grad
    chain = [y0]
    for k in range(len(TS) - 1):
        chain.append(solve(f, chain[-1], TS[k : k + 2], method, dt=0.05).ys[:, -1])
    assert torch.equal(ys, torch.stack(chain, dim=1))


@pytest.mark.parametrize("method", FIXED_STEP)
def test_staged_outputs_equal_the_kept_and_stacked_states_bitwise(method, monkeypatch):
    f = S.vector_field(HH)
    y0 = HH.sample(6, seed=3)
    monkeypatch.setattr(fixed._Recorder, "STAGE_BYTES", 5 * _state_bytes(y0))
    staged = solve(f, y0, TS, method, dt=0.05).ys
    monkeypatch.setattr(fixed._Recorder, "_allocate", lambda self, y0: None)  # keep every state
    kept = solve(f, y0, TS, method, dt=0.05).ys
    assert torch.equal(staged, kept)


@pytest.mark.parametrize("method", list_methods("explicit"))
def test_a_recorded_graph_gives_the_same_outputs_as_no_graph(method, monkeypatch):
    f = S.vector_field(HH)
    y0 = HH.sample(6, seed=3)
    monkeypatch.setattr(fixed._Recorder, "STAGE_BYTES", 5 * _state_bytes(y0))
    staged = solve(f, y0, TS, method, dt=0.05).ys
    kept = solve(f, y0.clone().requires_grad_(), TS, method, dt=0.05).ys  # the graph path
    assert kept.requires_grad
    assert torch.equal(staged, kept.detach())


def test_a_solve_under_no_grad_stages_its_outputs_even_from_a_state_that_requires_grad(monkeypatch):
    f = S.vector_field(HH)
    y0 = HH.sample(3, seed=4).requires_grad_()
    monkeypatch.setattr(fixed._Recorder, "STAGE_BYTES", 4 * _state_bytes(y0))
    with torch.no_grad():
        ys = solve(f, y0, TS, "rk4", dt=0.05).ys
    assert not ys.requires_grad
    assert torch.equal(ys, solve(f, y0.detach(), TS, "rk4", dt=0.05).ys)


class _Linear(torch.nn.Module):
    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = torch.nn.Parameter(torch.tensor(rate, dtype=torch.float64))

    def forward(self, t, y):
        return self.rate * y


@pytest.mark.parametrize("states_per_stage", [1, 5, 100])
def test_a_field_with_parameters_keeps_the_graph_from_the_first_output(states_per_stage, monkeypatch):
    """y' = λy by RK4 with one step per output: y_k = R(λh)^k y0, R(z) = 1 + z + z²/2 + z³/6 + z⁴/24,
    so d/dλ Σ_k y_k = Σ_k k R^(k−1) R'(λh) h y0 — the exact derivative of the discrete solution."""
    y0 = torch.tensor([[1.0], [-2.0]], dtype=torch.float64)
    monkeypatch.setattr(fixed._Recorder, "STAGE_BYTES", states_per_stage * _state_bytes(y0))
    field = _Linear(-0.7)
    ts = torch.linspace(0.0, 2.0, 41, dtype=torch.float64)
    ys = solve(field, y0, ts, "rk4").ys
    # One stack of the kept states, not one in-place copy per output into a buffer (whose backward
    # would pass the whole buffer's gradient through every copy).
    node = ys.grad_fn
    while type(node).__name__ in ("ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0"):
        node = node.next_functions[0][0]
    assert type(node).__name__ == "StackBackward0"
    ys.sum().backward()
    lam, h = -0.7, 0.05
    z = lam * h
    r = 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24
    dr = (1 + z + z**2 / 2 + z**3 / 6) * h
    expected = float(y0.sum()) * sum(k * r ** (k - 1) * dr for k in range(1, 41))
    assert math.isclose(field.rate.grad.item(), expected, rel_tol=1e-12)
    torch.testing.assert_close(ys[:, :, 0].detach(), y0 * r ** torch.arange(41, dtype=torch.float64))


class _LateParameter(torch.nn.Module):
    """y' = −y, and from t ≥ 1 on y' = −λy: the states start needing a graph halfway through."""

    def __init__(self) -> None:
        super().__init__()
        self.rate = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    def forward(self, t, y):
        return -y if float(t) < 1.0 else -self.rate * y


def test_states_recorded_before_a_field_starts_using_its_parameters_are_kept(monkeypatch):
    # The nine states before t = 1 need no graph: eight go through the staging buffer (of four) into
    # ys, the ninth is still staged when the tenth, which needs one, arrives.
    y0 = torch.tensor([[1.0], [3.0]], dtype=torch.float64)
    monkeypatch.setattr(fixed._Recorder, "STAGE_BYTES", 4 * _state_bytes(y0))
    field = _LateParameter()
    ts = torch.linspace(0.0, 2.0, 21, dtype=torch.float64)
    ys = solve(field, y0, ts, "rk4").ys
    with torch.no_grad():
        reference = solve(field, y0, ts, "rk4").ys
    assert ys.requires_grad
    assert torch.equal(ys.detach(), reference)
    ys[:, -1].sum().backward()
    assert field.rate.grad is not None and float(field.rate.grad) < 0


def test_forward_mode_dual_states_keep_their_tangents(monkeypatch):
    f = S.vector_field(HH)
    y0 = HH.sample(2, seed=5)
    tangent = torch.randn_like(y0)
    monkeypatch.setattr(fixed._Recorder, "STAGE_BYTES", 3 * _state_bytes(y0))
    with fwad.dual_level():
        ys = solve(f, fwad.make_dual(y0, tangent), TS, "rk4", dt=0.05).ys
        primal, jvp_dual = fwad.unpack_dual(ys)
    assert jvp_dual is not None
    eps = 1e-6
    plus, minus = (solve(f, y0 + s * eps * tangent, TS, "rk4", dt=0.05).ys for s in (1, -1))
    torch.testing.assert_close(jvp_dual, (plus - minus) / (2 * eps), atol=1e-8, rtol=1e-7)
    assert torch.equal(primal, solve(f, y0, TS, "rk4", dt=0.05).ys)
