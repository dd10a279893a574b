"""The column form of a step (compiled fixed-step solves): exact where it applies, refused elsewhere.

Every registered system's RK4 step is rewritten and compared with the ``(B, D)`` step on a batch of
another size than the one it was traced on; fields outside the column form (matrix products,
reductions over the batch, autodiff gradients) must come back as ``None`` with a reason, never as a
different computation.
"""

from __future__ import annotations

import pytest
import torch

import symflow.systems as S
from symflow.integrators import columns, get_method, list_methods
from symflow.integrators.columns import column_step, same_step
from symflow.integrators.explicit import ExplicitStepper
from symflow.integrators.fields import split_of
from symflow.integrators.splitting import SplittingStepper

F64 = torch.float64


def rk4(f):
    def step(t, y, h):
        k1 = f(t, y)
        k2 = f(t + h / 2, y + h / 2 * k1)
        k3 = f(t + h / 2, y + h / 2 * k2)
        k4 = f(t + h, y + h * k3)
        return h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    return step


# Hand-derived fields written on components: these must keep their column form (the compiled
# fixed-step speed-up of the catalogue rests on it).
MUST_SPLIT = {"harmonic_oscillator", "pendulum", "kepler", "henon_heiles", "fput", "charged_particle"}


@pytest.mark.parametrize("name", S.list_systems())
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_every_system_step_has_an_exact_column_form_or_none(name, dtype):
    system = S.get_system(name)
    step = rk4(S.vector_field(system))
    y = system.sample(7, seed=0).to(dtype)
    t, h = torch.tensor(0.3, dtype=dtype), torch.tensor(0.05, dtype=dtype)
    cstep = column_step(step, t, y, h)
    if name in MUST_SPLIT:
        assert cstep is not None, columns.LAST_FALLBACK
    if cstep is None:
        assert columns.LAST_FALLBACK
        return
    other = system.sample(33, seed=1).to(dtype)  # another batch size, other values
    want = step(t, other, h)
    got = torch.stack(cstep(t, other.unbind(-1), h), -1)
    scale = 64 * torch.finfo(dtype).eps * (1 + float(want.abs().max()) + float(other.abs().max()))
    assert (got - want).abs().max() <= scale


LIBRARY_STEPPERS = [*list_methods("explicit"), *list_methods("embedded"), *list_methods("splitting")]


@pytest.mark.parametrize("method", LIBRARY_STEPPERS)
@pytest.mark.parametrize("name", sorted(MUST_SPLIT))
def test_the_library_steppers_keep_the_column_form_of_the_catalogue_fields(name, method):
    """The steppers compiled fixed-step solves run, not a hand-written RK4: an in-place operation in a
    stage combination once sent every compiled Hénon–Heiles solve back to the slower (B, D) chunk
    (B = 1024, RK4: 56 → 150–210 ms) without a test noticing."""
    system = S.get_system(name)
    f = S.vector_field(system)
    spec = get_method(method)
    if spec.family == "splitting":
        split = split_of(f)
        if split is None:
            pytest.skip(f"{name} has no separable form")
        stepper = SplittingStepper(spec.scheme, split)
    else:
        stepper = ExplicitStepper(spec.tableau, f)
    y = system.sample(7, seed=0)
    t, h = torch.tensor(0.3, dtype=F64), torch.tensor(0.05, dtype=F64)
    step = lambda t_, y_, h_: stepper.step(t_, y_, h_)[0]  # noqa: E731  (as compiled.py calls it)
    cstep = column_step(step, t, y, h)
    assert cstep is not None, columns.LAST_FALLBACK
    assert same_step(cstep, step, t, system.sample(33, seed=1), h)


def _batch_mean(t, y):
    return y - y.mean(0)


def _matrix(t, y):
    return y @ torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=y.dtype)


def _time_column(t, y):
    return torch.cat([y[:, 1:], -torch.sin(t) * y[:, :1]], -1)


def _width_one(t, y):
    return y * y.sum(-1, keepdim=True) - torch.linalg.vector_norm(y, dim=-1, keepdim=True) * y


def _branches_on_values(t, y):
    return -y if bool(y.abs().max() > 100) else torch.cat([y[:, 1:], -y[:, :1]], -1)


def _writes_in_place(t, y):
    out = torch.cat([y[:, 1:], -y[:, :1]], -1)
    out[:, 0] *= 2
    return out


@pytest.mark.parametrize(
    ("field", "splits"),
    [
        (_batch_mean, False),
        (_matrix, False),
        (_branches_on_values, False),
        (_writes_in_place, False),
        (_time_column, True),
        (_width_one, True),
    ],
    ids=[
        "reduction-over-the-batch",
        "matrix-product",
        "branch-on-values",
        "in-place-write",
        "time-dependent",
        "width-one-broadcasts",
    ],
)
def test_operations_outside_the_column_form_fall_back_and_inside_it_agree(field, splits):
    step = rk4(field)
    y = torch.randn(5, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    t, h = torch.tensor(0.2, dtype=F64), torch.tensor(0.1, dtype=F64)
    cstep = column_step(step, t, y, h)
    assert (cstep is not None) == splits, columns.LAST_FALLBACK
    if splits:
        assert same_step(cstep, step, t, torch.randn(11, 2, dtype=F64), h)


def test_a_column_form_that_computes_something_else_is_caught():
    step = rk4(lambda t, y: torch.cat([y[:, 1:], -y[:, :1]], -1))
    y = torch.randn(6, 2, dtype=F64)
    t, h = torch.tensor(0.0, dtype=F64), torch.tensor(0.1, dtype=F64)
    cstep = column_step(step, t, y, h)
    assert cstep is not None

    def wrong(t_, cols, h_):
        out = cstep(t_, cols, h_)
        return (out[0] * (1 + 1e-9), out[1])

    assert not same_step(wrong, step, t, y, h)


@pytest.mark.slow
@pytest.mark.parametrize("compensated", [False, True])
def test_compiled_fixed_step_solves_on_columns_match_the_eager_solve(compensated):
    """B·D above the small-batch size: the compiled chunk runs on columns (taken, not fallen back)."""
    import symflow.integrators.compiled as compiled
    from symflow.integrators import solve

    hh = S.get_system("henon_heiles")
    f = S.vector_field(hh)
    y0 = hh.sample(200, seed=2)
    ts = torch.linspace(0, 3, 7, dtype=F64)
    weights = torch.randn(200, 7, 4, dtype=F64, generator=torch.Generator().manual_seed(0))
    out = []
    for compile_ in (False, True):
        y = y0.clone().requires_grad_(True)
        sol = solve(f, y, ts, "rk4", dt=0.01, compensated=compensated, compile=compile_)
        (sol.ys * weights).sum().backward()  # gradients flow through the column chunk too
        out.append((sol.ys.detach(), y.grad))
    (eager, g_eager), (got, g_got) = out
    torch.testing.assert_close(got, eager, atol=1e-12, rtol=0)
    torch.testing.assert_close(g_got, g_eager, atol=1e-11, rtol=0)
    built = [k for k, v in compiled._CACHE[f].items() if k[0] == "column-chunk" and v is not None]
    assert built


@pytest.mark.slow
def test_a_compiled_column_chunk_traces_its_step_once_not_once_per_step():
    """Dynamo traces the step once and repeats it (a nested compile region, then inlined for Inductor
    to fuse): the 16-step Hénon–Heiles RK4 chunk captured 1618 operations traced step by step, 198
    this way, which is most of what a second process's first compile=True call saves."""
    from torch._dynamo.utils import counters

    import symflow.integrators.compiled as compiled
    from symflow.integrators import solve

    if not (
        hasattr(torch.compiler, "nested_compile_region")
        and hasattr(torch._dynamo.config, "inline_invoke_subgraph")
    ):
        pytest.skip("this PyTorch has no nested compile regions to inline")
    base = S.vector_field(S.get_system("henon_heiles"))

    def field(t, y):  # a field object of its own, so that this test's solve compiles
        return base(t, y)

    y0 = S.get_system("henon_heiles").sample(200, seed=2)
    ts = torch.linspace(0, 3, 7, dtype=F64)
    counters.clear()
    sol = solve(field, y0, ts, "rk4", dt=0.01, compile=True)
    assert [k for k, v in compiled._CACHE[field].items() if k[0] == "column-chunk" and v is not None]
    assert 0 < counters["stats"]["calls_captured"] < 500
    assert not torch._dynamo.config.inline_invoke_subgraph  # set for the chunk's calls only
    torch.testing.assert_close(sol.ys, solve(base, y0, ts, "rk4", dt=0.01).ys, atol=1e-12, rtol=0)


@pytest.mark.parametrize("b", [1, 2])
def test_a_batch_that_cannot_be_told_from_the_components_is_refused(b):
    """With B = 1 or B = D a (B,) column and a length-D or one-element vector look alike."""
    step = rk4(lambda t, y: torch.cat([y[:, 1:], -y[:, :1]], -1))
    y = torch.randn(b, 2, dtype=F64)
    assert column_step(step, torch.tensor(0.0, dtype=F64), y, torch.tensor(0.1, dtype=F64)) is None
    assert "B != D" in columns.LAST_FALLBACK


def test_a_compiled_chunk_that_loses_the_column_form_says_why_once_at_info(caplog):
    """The fallback keeps the values and costs about 2x, so it must be visible without a profiler:
    one INFO record per field and method (the choice is cached), none for a field that keeps it."""
    import symflow.integrators.compiled as compiled

    y = torch.randn(64, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor(0.0, dtype=F64)
    key = ("ExplicitStepper", "rk4", None, 8, F64, "cpu", False)
    logger = "symflow.integrators.compiled"

    def batch_mean_field(t_, y_):
        return _batch_mean(t_, y_)

    def rotation(t_, y_):
        return torch.cat([y_[:, 1:], -y_[:, :1]], -1)

    with caplog.at_level("INFO", logger=logger):
        for _ in range(2):  # the second call is served from the cache and says nothing more
            assert compiled.column_chunk(rk4(batch_mean_field), batch_mean_field, key, False, t, y) is None
        assert compiled.column_chunk(rk4(rotation), rotation, key, False, t, y) is not None
    records = [r for r in caplog.records if r.name == logger]
    assert len(records) == 1, [r.getMessage() for r in records]
    message = records[0].getMessage()
    assert records[0].levelname == "INFO"
    assert "batch_mean_field with rk4" in message and "(B, D) step" in message
    assert message.endswith("aten.mean.dim")  # the operation that stopped the rewrite
