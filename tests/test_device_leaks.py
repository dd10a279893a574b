"""No tensor is created off the state's device: everything runs with the default device set to ``meta``.

A GPU run fails (or silently round-trips through the host) wherever the code creates a tensor without
naming a device, or with ``torch.tensor(...)`` on the CPU next to device tensors. On the CPU those bugs
are invisible, unless the *default* device is one the state is not on: with
``torch.set_default_device("meta")`` every tensor created without a device lands on ``meta``, mixing it
with the CPU state raises, and a result on ``meta`` has no values. So each entry point below runs with
the state on the CPU and the default device ``meta``, and must give finite CPU results.
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

import symflow.systems as S
from symflow.integrators import Event, solve


@contextlib.contextmanager
def default_device_meta():
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(None)


def _on_cpu(*tensors: torch.Tensor) -> None:
    for x in tensors:
        assert x.device.type == "cpu", x.device
        assert torch.isfinite(x).all()


def test_the_meta_default_catches_a_tensor_created_without_a_device():
    """The trap works: a CPU 0-d tensor built without a device next to CPU state fails."""
    y = torch.ones(3, device="cpu")
    with default_device_meta(), pytest.raises(RuntimeError, match="meta"):
        torch.where(y > 0, y, torch.tensor(0.0))


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("dopri5", {}),
        ("dopri5", {"dense_output": True}),
        ("dopri5", {"hit_obs": True, "compensated": True}),
        ("tsit5", {}),
        ("dop853", {}),
        ("bosh3", {}),
        ("rk4", {"dt": 0.05}),
        ("gl4", {"dt": 0.1}),
        ("implicit_midpoint", {"dt": 0.1}),
    ],
)
def test_solvers_create_nothing_off_the_state_device(method, options):
    hh = S.get_system("henon_heiles")
    f = S.vector_field(hh)
    y0 = hh.sample(8, seed=0).to(torch.float64)
    ts = torch.linspace(0.0, 2.0, 11, dtype=torch.float64)
    with default_device_meta():
        sol = (
            solve(f, y0, ts, method, rtol=1e-7, atol=1e-9, **options)
            if "dt" not in options
            else solve(f, y0, ts, method, **options)
        )
        _on_cpu(sol.ys)
        if options.get("dense_output"):
            _on_cpu(sol.evaluate(torch.tensor([0.3, 1.7], device="cpu", dtype=torch.float64)))


def test_events_and_per_sample_grids_create_nothing_off_the_state_device():
    osc = S.get_system("harmonic_oscillator")
    f = S.vector_field(osc)
    y0 = osc.sample(6, seed=1).to(torch.float64)
    ts = torch.linspace(0.0, 7.0, 8, dtype=torch.float64).expand(6, -1) * torch.linspace(
        0.5, 1.0, 6, dtype=torch.float64
    ).unsqueeze(1)
    with default_device_meta():
        sol = solve(
            f, y0, ts, "dopri5", events=Event(lambda t, y: y[..., 0], direction=1), polish_events=True
        )
        _on_cpu(sol.ys, sol.events.t)
        assert sol.events.t.numel() > 0


class _Field(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4)).double()

    def forward(self, t, y):
        return self.net(y)


def test_the_adjoint_creates_nothing_off_the_state_device():
    hh = S.get_system("henon_heiles")
    field = _Field()
    y0 = hh.sample(4, seed=2).to(torch.float64).requires_grad_(True)
    ts = torch.linspace(0.0, 1.0, 5, dtype=torch.float64)
    with default_device_meta():
        for method in ("dopri5", "gl4"):
            extra = {"dt": 0.1} if method == "gl4" else {}
            sol = solve(field, y0, ts, method, adjoint=True, **extra)
            sol.ys.square().sum().backward()
            _on_cpu(y0.grad, *(p.grad for p in field.parameters()))
            y0.grad = None
            field.zero_grad()


def test_train_node_creates_nothing_off_the_cpu(tmp_path):
    from symflow.data import simulate
    from symflow.discovery.training import NodeConfig, train_node

    path = tmp_path / "hh.h5"
    simulate("henon_heiles", 8, 2.0, output=path, sampling="irregular", n_obs=6, seed=3, progress=False)
    cfg = NodeConfig(
        data=str(path), model="hnn", width=8, depth=2, steps=3, batch_size=4, window=3, val_every=3,
        checkpoint_every=3, log_every=1, rtol=1e-5, atol=1e-7, seed=1,
    )  # fmt: skip
    with default_device_meta():
        summary = train_node(cfg, tmp_path / "run", progress=False, evaluate=False)
        more = NodeConfig(**{**cfg.__dict__, "steps": 4})
        resumed = train_node(more, tmp_path / "run", progress=False, evaluate=False, resume=True)
    assert summary["steps"] == 3 and resumed["steps"] == 4
    assert math.isfinite(resumed["train_loss"])


@pytest.mark.parametrize("learner", ["sympflow", "pinn"])
def test_learners_create_nothing_off_the_cpu(learner, tmp_path):
    from symflow.learners.training import train_pinn, train_sympflow

    train = train_sympflow if learner == "sympflow" else train_pinn
    depth = {"layers": 1} if learner == "sympflow" else {"hidden_layers": 1}
    with default_device_meta():
        result = train(
            "harmonic_oscillator", dt=0.5, energy_max=0.5, width=4, adam_steps=3, lbfgs_steps=1, **depth,
            collocation=32, lbfgs_points=32, lbfgs_iterations=2, validation_points=32, progress=False,
            log_every=1, validate_every=2, horizon=1.0, energy_horizon=1.0, eval_samples=2,
            run_dir=tmp_path / learner,
        )  # fmt: skip
    assert all(math.isfinite(v) for v in result.summary.values() if isinstance(v, float))


def test_the_cnf_creates_nothing_off_the_cpu():
    from symflow.cnf import CNF, TimeMLP, get_dataset, normalisation, train_cnf

    train = get_dataset("two_moons").sample(64, seed=0, dtype=torch.float32)
    torch.manual_seed(0)
    loc, scale = normalisation(train)
    for trace, adjoint in (("exact", False), ("hutchinson", True)):
        cnf = CNF(TimeMLP(2, (8, 8)).float(), 2, trace=trace, rtol=1e-3, atol=1e-3, adjoint=adjoint, loc=loc,
                  scale=scale)  # fmt: skip
        with default_device_meta():
            fit = train_cnf(cnf, train, steps=2, batch_size=32, lr=1e-2, progress=False, log_every=1)
            logp = cnf.log_prob(train[:16])
            x = cnf.sample(8, generator=torch.Generator(device="cpu").manual_seed(1), device="cpu")
        _on_cpu(logp, x)
        assert math.isfinite(fit.history[-1]["loss"])


class _Reduced(Exception):
    pass


def test_the_validation_mean_is_reduced_on_the_rank_device(monkeypatch):
    """NCCL reduces device tensors only: the buffer all_mean hands to all_reduce must live on the rank's
    device (``meta`` stands in for a GPU; the fake all_reduce records the device and stops there)."""
    import symflow.discovery.distributed as D

    seen = []

    def all_reduce(t, *args, **kwargs):
        seen.append(t.device)
        raise _Reduced

    monkeypatch.setattr(D.dist, "all_reduce", all_reduce)
    with pytest.raises(_Reduced):
        D.all_mean(1.5, D.DistInfo(rank=0, world_size=2, device=torch.device("meta")))
    assert seen == [torch.device("meta")]
