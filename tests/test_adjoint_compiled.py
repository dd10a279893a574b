"""The compiled backward step of the continuous adjoint (``compile=True``): the same gradients as the
eager backward loop, for plain fields and for a CNF whose field itself takes a vector–Jacobian
product (nested ``torch.func`` transforms); a field that cannot be traced falls back to the eager
loop with one warning, never a different number."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from symflow.cnf import CNF
from symflow.cnf.fields import TimeMLP
from symflow.cnf.trace import draw_probe
from symflow.integrators import AdjointOptions, InvalidArgumentError, solve


class MLPField(torch.nn.Module):
    def __init__(self, d: int = 3, width: int = 16, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(d + 1, width), torch.nn.Tanh(), torch.nn.Linear(width, d)
        )
        self.unused = torch.nn.Parameter(torch.ones(2))  # gets a zero gradient on both paths

    def forward(self, t, y):
        t = torch.as_tensor(t, dtype=y.dtype).expand(y.shape[:-1]).unsqueeze(-1)
        return self.net(torch.cat([y, t], -1))


class HostSyncField(MLPField):
    """Reads a value on the host in every evaluation: dynamo cannot trace it into one graph."""

    def forward(self, t, y):
        if float(y.detach().abs().max()) > 1e6:  # never true here; a graph break all the same
            return torch.zeros_like(y)
        return super().forward(t, y)


def _gradients(field, y0, ts, method, adjoint, **kw):
    y0 = y0.clone().requires_grad_(True)
    ts = ts.clone().requires_grad_(True)
    sol = solve(field, y0, ts, method, adjoint=adjoint, **kw)
    target = torch.linspace(-1, 1, sol.ys.numel(), dtype=sol.ys.dtype).reshape(sol.ys.shape)
    loss = ((sol.ys - target) ** 2).sum()
    inputs = [y0, ts, *field.parameters()]
    grads = torch.autograd.grad(loss, inputs, allow_unused=True, materialize_grads=True)
    return [g.detach() for g in grads], sol


def _max_rel(a, b) -> float:
    return max(float((x - y).norm() / y.norm().clamp_min(1e-30)) for x, y in zip(a, b, strict=True))


def _problem(dtype, reverse=False, b=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    y0 = torch.randn(b, 3, generator=g, dtype=dtype)
    ts = torch.tensor([0.0, 0.3, 0.7, 1.0], dtype=dtype)
    return y0, ts.flip(0) if reverse else ts


@pytest.mark.usefixtures("one_thread")
def test_compiled_backward_step_gives_the_eager_adjoint_gradients_float64():
    field = MLPField().double()
    y0, ts = _problem(torch.float64)
    eager, sol_e = _gradients(field, y0, ts, "rk4", AdjointOptions(), dt=0.1)
    comp, sol_c = _gradients(field, y0, ts, "rk4", AdjointOptions(compile=True), dt=0.1)
    assert _max_rel(comp, eager) < 1e-12  # y0, every output time and every parameter
    unused = [n for n, _ in field.named_parameters()].index("unused")
    assert float(comp[2 + unused].abs().max()) == 0.0
    assert torch.equal(sol_c.adjoint.backward_stats["steps"], sol_e.adjoint.backward_stats["steps"])
    # The compiled step is cached per field: a second solve does not compile again.
    again, _ = _gradients(field, y0, ts, "rk4", AdjointOptions(compile=True), dt=0.1)
    assert _max_rel(again, comp) == 0.0


@pytest.mark.usefixtures("one_thread")
def test_untraceable_field_falls_back_to_the_eager_backward_with_one_warning():
    field = HostSyncField().double()
    y0, ts = _problem(torch.float64)
    eager, _ = _gradients(field, y0, ts, "rk4", AdjointOptions(), dt=0.25)
    with pytest.warns(UserWarning, match="could not be compiled.*running it eagerly"):
        comp, _ = _gradients(field, y0, ts, "rk4", AdjointOptions(compile=True), dt=0.25)
    assert _max_rel(comp, eager) == 0.0  # the very same eager computation
    # Later solves remember the failure: they warn again without tracing again.
    with pytest.warns(UserWarning, match="could not be compiled"):
        _gradients(field, y0, ts, "rk4", AdjointOptions(compile=True), dt=0.25)


def test_compile_where_the_backward_step_is_not_compiled_says_so():
    field = MLPField().double()
    y0, ts = _problem(torch.float64)
    with pytest.warns(UserWarning, match="runs eagerly: it is adaptive"):
        comp, _ = _gradients(field, y0, ts, "dopri5", AdjointOptions(compile=True), rtol=1e-6, atol=1e-8)
    eager, _ = _gradients(field, y0, ts, "dopri5", AdjointOptions(), rtol=1e-6, atol=1e-8)
    assert _max_rel(comp, eager) == 0.0
    per_sample = ts.expand(y0.shape[0], -1).clone()
    with pytest.warns(UserWarning, match="runs eagerly: the samples have their own time grids"):
        _gradients(field, y0, per_sample, "rk4", AdjointOptions(compile=True), dt=0.1)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(
    "method, reverse",
    [("dopri5", False), pytest.param("bosh3", True, marks=pytest.mark.slow)],
)
def test_compiled_adaptive_backward_with_shared_steps_gives_the_eager_gradients(method, reverse):
    field = MLPField(seed=3).double()
    y0, ts = _problem(torch.float64, reverse=reverse)
    kw = dict(rtol=1e-8, atol=1e-10, norm="batch")
    eager, sol_e = _gradients(field, y0, ts, method, AdjointOptions(seminorm=True), **kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        comp, sol_c = _gradients(field, y0, ts, method, AdjointOptions(seminorm=True, compile=True), **kw)
    assert not [w for w in caught if "eagerly" in str(w.message)]  # compiled, not a fallback
    assert _max_rel(comp, eager) < 1e-12  # y0, every output time and every parameter
    steps = sol_c.adjoint.backward_stats["steps"]
    assert torch.equal(steps, sol_e.adjoint.backward_stats["steps"]) and len(set(steps.tolist())) == 1
    # Without the seminorm (or with per-sample steps) the backward solve says it runs eagerly.
    with pytest.warns(UserWarning, match="runs eagerly: it is adaptive"):
        _gradients(field, y0, ts, method, AdjointOptions(compile=True), **kw)


def _cnf_grads(cnf, x, probe):
    cnf.field.zero_grad()
    (-cnf.density_terms(x, probe=probe).log_prob.mean()).backward()
    return [p.grad.clone() for p in cnf.field.parameters()]


def _small_cnf_problem(b: int):
    """A float32 TimeMLP field, ``b`` points and a fixed Rademacher probe."""
    torch.manual_seed(0)
    field = TimeMLP(2, (16, 16)).float()
    x = torch.randn(b, 2, dtype=torch.float32)
    probe = draw_probe((b, 2), "rademacher", generator=torch.Generator().manual_seed(1), dtype=torch.float32)
    return field, x, probe


@pytest.mark.usefixtures("one_thread")
def test_cnf_hutchinson_adjoint_compiled_matches_eager_float32():
    # The field's Hutchinson estimator takes a torch.func.vjp inside the backward step's vjp.
    field, x, probe = _small_cnf_problem(16)
    kw = dict(trace="hutchinson", method="rk4", dt=0.25)
    eager = _cnf_grads(CNF(field, 2, adjoint=True, **kw), x, probe)
    comp = _cnf_grads(CNF(field, 2, adjoint=AdjointOptions(seminorm=True, compile=True), **kw), x, probe)
    assert _max_rel(comp, eager) < 2e-6


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_cnf_dopri5_adjoint_with_shared_steps_compiles_both_solves_with_the_eager_gradients():
    field, x, probe = _small_cnf_problem(32)
    kw = dict(trace="hutchinson", adjoint=True, norm="batch", rtol=1e-5, atol=1e-5)
    eager = _cnf_grads(CNF(field, 2, **kw), x, probe)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        comp = _cnf_grads(CNF(field, 2, compile=True, **kw), x, probe)
    assert not [w for w in caught if "eagerly" in str(w.message)]
    assert _max_rel(comp, eager) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("method", ["rk4", "rk38", "midpoint"])
@pytest.mark.parametrize("reverse", [False, True])
def test_compiled_backward_step_matches_eager_across_methods_and_directions(method, reverse):
    field = MLPField(seed=2).double()
    y0, ts = _problem(torch.float64, reverse=reverse)
    eager, _ = _gradients(field, y0, ts, method, AdjointOptions(), dt=0.1)
    comp, _ = _gradients(field, y0, ts, method, AdjointOptions(compile=True), dt=0.1)
    assert _max_rel(comp, eager) < 1e-12


@pytest.mark.slow
def test_compiled_adjoint_float32_mlp_within_float32_rounding():
    field = MLPField(seed=3).float()
    y0, ts = _problem(torch.float32)
    eager, _ = _gradients(field, y0, ts, "rk4", AdjointOptions(), dt=0.1)
    comp, _ = _gradients(field, y0, ts, "rk4", AdjointOptions(compile=True), dt=0.1)
    assert _max_rel(comp, eager) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-11), (torch.float32, 2e-5)])
def test_cnf_compile_option_compiles_forward_and_backward_with_the_eager_gradients(dtype, tol):
    torch.manual_seed(0)
    field = TimeMLP(3, (16, 16)).to(dtype)
    x = torch.randn(24, 3, dtype=dtype)
    probe = draw_probe((24, 3), "gaussian", generator=torch.Generator().manual_seed(2), dtype=dtype)
    kw = dict(trace="hutchinson", method="rk38", dt=0.2, adjoint=True)
    ref = CNF(field, 3, **kw)
    cnf = CNF(field, 3, compile=True, **kw)
    assert cnf.config()["compile"] is True
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="compile=True")  # neither path falls back
        comp = _cnf_grads(cnf, x, probe)
    assert _max_rel(comp, _cnf_grads(ref, x, probe)) < tol
    lp_c = cnf.log_prob(x, probe=probe)
    lp_e = ref.log_prob(x, probe=probe)
    assert float((lp_c - lp_e).abs().max()) < tol * 10


def test_cnf_compile_option_is_validated_and_recorded():
    field = TimeMLP(2, (8,))
    with pytest.raises(InvalidArgumentError, match="compile"):
        CNF(field, 2, compile="yes")
    assert CNF(field, 2, method="rk4", dt=0.1, compile=True).config()["compile"] is True
    assert CNF(field, 2).config()["compile"] is False


@pytest.mark.slow
def test_cli_compile_flag_trains_a_fixed_step_adjoint_cnf(tmp_path):
    from symflow.cli.main import main

    args = ["train", "cnf", "--data", "two_moons", "--steps", "2", "--hidden", "8,8", "--train-size", "200"]
    args += ["--test-size", "100", "--samples", "100", "--no-plots", "--trace", "hutchinson", "--adjoint"]
    args += ["--method", "rk4", "--dt", "0.25", "--compile", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["cli"]["compile"] is True


def test_compiled_fixed_step_chunks_shrink_for_expensive_steps():
    from symflow.integrators.compiled import CHUNK_OPS, chunk_for

    y = torch.zeros(4, 2)
    cheap, costly = MLPField(), MLPField()
    assert chunk_for(cheap, lambda: y + 1, 16, y) == 16  # one op a step: the whole chunk

    def expensive_step():
        z = y
        for _ in range(CHUNK_OPS // 4):
            z = z + 1
        return z

    assert chunk_for(costly, expensive_step, 16, y) == 1
    # The choice is remembered per field: later solves do not count again.
    assert chunk_for(costly, lambda: y + 1, 16, y) == 1


def test_compiled_solves_of_one_field_forward_and_reversed_keep_their_own_direction(monkeypatch):
    # Compiled code is cached on the field object; a decreasing grid must not reuse the increasing
    # grid's kernel (or the other way round). What is cached is the point here, not Inductor's code:
    # torch.compile is replaced by the identity so the test takes no compilation time.
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: fn)
    field = MLPField(seed=4).double()
    y0 = torch.randn(5, 3, dtype=torch.float64)
    for ts in (torch.tensor([0.0, 0.5, 1.0]), torch.tensor([1.0, 0.5, 0.0])):
        for _ in range(2):
            comp = solve(field, y0, ts, "midpoint", dt=0.25, compile=True).ys
            torch.testing.assert_close(comp, solve(field, y0, ts, "midpoint", dt=0.25).ys, atol=1e-12, rtol=0)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_more_fields_than_dynamos_recompile_limit_all_get_a_compiled_backward_step(monkeypatch):
    # Dynamo counts recompilations per code object (limit 8); every field's step must have its own.
    # Tracing is what is limited, so the test traces with the eager backend (no Inductor: seconds).
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: real(fn, backend="eager", **kw))
    # Ten fields, each with its own graph (method and direction are constants of the step).
    cases = [(m, r) for m in ("euler", "midpoint", "heun", "heun3", "rk4") for r in (False, True)]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="compile=True")  # a fallback to the eager loop
        for seed, (method, reverse) in enumerate(cases):
            y0, ts = _problem(torch.float64, reverse=reverse, b=3)
            field = MLPField(d=3, width=4, seed=seed).double()
            eager, _ = _gradients(field, y0, ts, method, AdjointOptions(), dt=0.5)
            comp, _ = _gradients(field, y0, ts, method, AdjointOptions(compile=True), dt=0.5)
            assert _max_rel(comp, eager) < 1e-12
