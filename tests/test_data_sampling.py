"""Observation-time samplers: shapes, distributions, reproducibility, solver padding."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from symflow.data import make_sampling, pad_for_solver
from symflow.integrators import InvalidArgumentError, UnknownNameError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_valid_grids(times: torch.Tensor, length: torch.Tensor, t_end: float) -> None:
    T = times.shape[1]
    inside = torch.arange(T) < length[:, None]
    assert torch.isfinite(times[inside]).all()
    assert torch.isnan(times[~inside]).all()
    assert (times[:, 0] == 0).all()
    assert (times[inside] <= t_end).all()
    d = times.diff(dim=-1)
    assert (d[inside[:, 1:]] > 0).all()


def test_regular_grid_is_shared_and_hits_both_ends():
    s = make_sampling("regular", 2.0, 5)
    times, length = s.draw(3, gen())
    assert times.shape == (3, 5)
    assert torch.equal(times[0], torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0], dtype=torch.float64))
    assert torch.equal(times[0], times[2])
    assert (length == 5).all()


def test_uniform_times_are_uniform_order_statistics():
    s = make_sampling("irregular", 10.0, 20)
    times, length = s.draw(500, gen(1))
    assert s.kind == "uniform" and not s.variable
    assert (length == 20).all()
    assert_valid_grids(times, length, 10.0)
    # The 19 non-initial times of every row, pooled, are uniform on (0, 10].
    pooled = (times[:, 1:] / 10.0).flatten().numpy()
    assert stats.kstest(pooled, "uniform").pvalue > 1e-3
    # Each row differs: per-trajectory grids.
    assert not torch.equal(times[0], times[1])


def test_uniform_variable_counts_cover_the_range():
    s = make_sampling("uniform", 5.0, 12, min_obs=4)
    times, length = s.draw(400, gen(2))
    assert s.variable and s.width == 12
    assert int(length.min()) == 4 and int(length.max()) == 12
    assert_valid_grids(times, length, 5.0)


def test_poisson_counts_are_poisson_and_times_uniform_given_the_count():
    s = make_sampling("poisson", 50.0, 26)  # rate 0.5
    times, length = s.draw(2000, gen(3))
    assert s.rate == pytest.approx(0.5)
    assert s.width == 26 + math.ceil(6 * math.sqrt(26))
    assert_valid_grids(times, length, 50.0)
    # Count − 1 is Poisson(25) (the conditioning on ≥ 1 and the cap are negligible here): mean and
    # variance 25, each within 5 standard errors.
    k = (length - 1).double()
    assert float(k.mean()) == pytest.approx(25.0, abs=5 * 5 / math.sqrt(2000))
    assert float(k.var()) == pytest.approx(25.0, abs=5 * 25 * math.sqrt(2 / 2000))
    # Given the count, the times of a Poisson process are independent and uniform on the window.
    inside = torch.arange(s.width)[1:] < length[:, None]
    pooled = (times[:, 1:][inside] / 50.0).numpy()
    assert stats.kstest(pooled, "uniform").pvalue > 1e-3


def test_poisson_min_obs_conditions_the_count():
    s = make_sampling("poisson", 1.0, 3, min_obs=3)
    _, length = s.draw(300, gen(4))
    assert int(length.min()) >= 3


def test_draws_are_reproducible_from_the_generator():
    s = make_sampling("poisson", 10.0, 10)
    a = s.draw(50, gen(7))
    b = s.draw(50, gen(7))
    c = s.draw(50, gen(8))
    assert torch.equal(a[0].nan_to_num(-1), b[0].nan_to_num(-1)) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0].nan_to_num(-1), c[0].nan_to_num(-1))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_solver_padding_is_strictly_increasing_and_keeps_real_times(dtype):
    s = make_sampling("uniform", 100.0, 30, min_obs=2)
    times, length = s.draw(200, gen(5))
    padded = pad_for_solver(times, length, dtype)
    assert padded.dtype == dtype
    assert torch.isfinite(padded).all()
    assert (padded.diff(dim=-1) > 0).all()
    inside = torch.arange(30) < length[:, None]
    assert torch.equal(padded[inside], times[inside].to(dtype))
    # The padding ends within T·ε^(3/4)·|t| of the last observation: negligible extra integration.
    last = times.gather(1, (length - 1)[:, None])[:, 0]
    bound = 30 * torch.finfo(dtype).eps ** 0.75 * 100.0 * 1.01
    assert float((padded[:, -1].double() - last).max()) < bound


@pytest.mark.parametrize(
    ("kind", "kwargs", "argument"),
    [
        ("regular", {"min_obs": 3}, "min_obs"),
        ("uniform", {"max_obs": 30}, "max_obs"),
        ("uniform", {"min_obs": 0}, "min_obs"),
        ("uniform", {"min_obs": 11}, "min_obs"),
        ("poisson", {"max_obs": 5}, "max_obs"),
    ],
)
def test_inconsistent_sampling_options_are_rejected(kind, kwargs, argument):
    with pytest.raises(InvalidArgumentError, match=argument):
        make_sampling(kind, 1.0, 10, **kwargs)


def test_bad_window_and_counts_are_rejected():
    with pytest.raises(InvalidArgumentError, match="t_end"):
        make_sampling("uniform", -1.0, 10)
    with pytest.raises(InvalidArgumentError, match="t_end"):
        make_sampling("uniform", math.inf, 10)
    with pytest.raises(InvalidArgumentError, match="n_obs"):
        make_sampling("regular", 1.0, 1)
    with pytest.raises(UnknownNameError, match="did you mean 'poisson'"):
        make_sampling("poisson_", 1.0, 10)
