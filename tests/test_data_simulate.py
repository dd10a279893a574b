"""``simulate``: per-trajectory solves, exact flows, failures kept, noise, reproducibility, input errors."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch

import symflow.systems as systems
from symflow.data import make_sampling, open_trajectories, pad_for_solver, simulate, validate
from symflow.data.simulate import block_generator
from symflow.integrators import CapabilityError, InvalidArgumentError, Status, UnknownNameError, solve

SIM = importlib.import_module("symflow.data.simulate")  # the module (the package exports the function)


def read_all(path):
    with open_trajectories(path) as f:
        t, y, length = f.read_block(0, f.n)
        extra = {k: f.read_dataset(k) for k in ("energy", "y_clean") if k in f.dataset_names}
        return t, y, length, f.status, f.attrs, extra


@pytest.fixture(scope="module")
def hh_irregular(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "hh.h5"
    simulate(
        "henon_heiles",
        10,
        4.0,
        output=path,
        sampling="uniform",
        n_obs=9,
        min_obs=3,
        rtol=1e-10,
        atol=1e-12,
        chunk_size=4,
        seed=11,
        progress=False,
    )
    return path


def test_irregular_trajectories_equal_single_trajectory_solves(hh_irregular):
    """Each trajectory of the batched solve is what solving it alone on its own times gives."""
    t, y, length, status, _attrs, _ = read_all(hh_irregular)
    assert (status == Status.SUCCESS).all()
    assert len(set(length.tolist())) > 1, "variable observation counts"
    hh = systems.get_system("henon_heiles")
    f = systems.vector_field(hh)
    T = t.shape[1]
    for i in range(t.shape[0]):
        L = int(length[i])
        ti = torch.from_numpy(t[i, :L])
        y0 = torch.from_numpy(y[i, :1])
        alone = solve(f, y0, ti, "dopri5", rtol=1e-10, atol=1e-12).ys[0].numpy()
        # Up to the tolerance, alone on its real times (the batch also stepped a hair past t_L).
        np.testing.assert_allclose(y[i, :L], alone, rtol=0, atol=1e-9)
        # To round-off, alone on the grid the batch used (its times padded past the last one).
        grid = pad_for_solver(torch.from_numpy(t[i : i + 1]), torch.tensor([L]))[0]
        same = solve(f, y0, grid, "dopri5", rtol=1e-10, atol=1e-12).ys[0].numpy()
        np.testing.assert_allclose(y[i, :L], same[:L], rtol=0, atol=1e-12)
        assert np.isnan(y[i, L:]).all() and np.isnan(t[i, L:]).all()
        assert L == T or grid[L] > ti[-1]


def test_irregular_harmonic_oscillator_matches_the_exact_flow(tmp_path):
    out = tmp_path / "ho.h5"
    simulate(
        "harmonic_oscillator",
        16,
        10.0,
        output=out,
        sampling="poisson",
        n_obs=12,
        rtol=1e-11,
        atol=1e-13,
        progress=False,
    )
    t, y, length, _, _, extra = read_all(out)
    ho = systems.get_system("harmonic_oscillator")
    for i in range(t.shape[0]):
        L = int(length[i])
        y0 = torch.from_numpy(y[i, :1]).expand(L, -1)
        exact = ho.flow(torch.from_numpy(t[i, :L]), y0).numpy()
        np.testing.assert_allclose(y[i, :L], exact, rtol=0, atol=1e-8)
    # Stored energy is H of the states.
    energy = ho.energy(torch.from_numpy(np.nan_to_num(y))).numpy()
    inside = np.arange(t.shape[1])[None] < length[:, None]
    np.testing.assert_allclose(extra["energy"][inside], energy[inside], rtol=1e-14)


def test_regular_sampling_uses_one_grid_and_a_fixed_step_method_works(tmp_path):
    out = tmp_path / "pend.h5"
    simulate("pendulum", 5, 2.0, output=out, method="rk4", dt=0.01, n_obs=5, progress=False, seed=2)
    t, y, length, _status, attrs, _ = read_all(out)
    assert (length == 5).all() and np.array_equal(t, np.tile(np.linspace(0, 2, 5), (5, 1)))
    assert attrs["integrator"] == "rk4" and attrs["dt"] == 0.01 and "rtol" not in attrs
    f = systems.vector_field("pendulum")
    ref = solve(f, torch.from_numpy(y[:, 0]), torch.linspace(0, 2, 5, dtype=torch.float64), "rk4", dt=0.01)
    np.testing.assert_allclose(y, ref.ys.numpy(), rtol=0, atol=1e-13)


def test_failed_trajectories_are_kept_with_their_status(tmp_path):
    out = tmp_path / "fail.h5"
    # Up to t = 8, a Kepler orbit of eccentricity 0.99 needs ~1400 steps at rtol 1e-9 where nearly
    # circular ones need ~200: a budget of 700 fails it alone.
    y0 = torch.tensor([[1, 0, 0, 1.0], [1, 0, 0, 0.1], [1, 0, 0, 0.9]], dtype=torch.float64)
    result = simulate("kepler", 3, 8.0, output=out, y0=y0, max_steps=700, n_obs=6, progress=False)
    t, y, _length, status, attrs, _ = read_all(out)
    assert t.shape[0] == 3, "no trajectory is dropped"
    failed = status == Status.MAX_STEPS
    assert failed.tolist() == [False, True, False]
    assert result.failed == {"max_steps": int(failed.sum())} == attrs["failed"]
    assert np.isnan(y[failed][:, -1]).all() and np.isfinite(y[~failed]).all()
    report = validate(out)
    assert report.ok and report.n_failed == int(failed.sum())


def test_noise_is_gaussian_on_the_stored_states_only(tmp_path):
    out = tmp_path / "noisy.h5"
    simulate("pendulum", 300, 3.0, output=out, n_obs=8, noise=[0.1, 0.02], seed=5, progress=False)
    _t, y, _length, _, attrs, extra = read_all(out)
    resid = y - extra["y_clean"]
    assert resid[..., 0].std() == pytest.approx(0.1, rel=0.05)
    assert resid[..., 1].std() == pytest.approx(0.02, rel=0.05)
    assert abs(resid.mean()) < 0.005
    assert attrs["noise"]["sigma"] == [0.1, 0.02] and attrs["noise"]["kind"] == "gaussian"
    # Energy belongs to the noise-free states.
    pend = systems.get_system("pendulum")
    np.testing.assert_allclose(extra["energy"], pend.energy(torch.from_numpy(extra["y_clean"])).numpy())


def test_every_random_choice_comes_from_the_seed_whatever_the_chunk_size(tmp_path, monkeypatch):
    monkeypatch.setattr(SIM, "RNG_BLOCK", 16)  # small random blocks keep the test fast
    kw = dict(sampling="poisson", n_obs=6, noise=0.05, t_end=2.0, progress=False)
    n = 3 * 16 + 5  # four random blocks, the last one partial
    a = read_all(simulate("pendulum", n, output=tmp_path / "a.h5", chunk_size=7, seed=4, **kw).path)
    b = read_all(simulate("pendulum", n, output=tmp_path / "b.h5", chunk_size=30, seed=4, **kw).path)
    c = read_all(simulate("pendulum", n, output=tmp_path / "c.h5", chunk_size=30, seed=5, **kw).path)
    assert np.array_equal(a[0], b[0], equal_nan=True) and np.array_equal(a[2], b[2])
    # Solver outputs may differ in the last bits with the batch size; noise draws are identical.
    np.testing.assert_allclose(a[5]["y_clean"], b[5]["y_clean"], rtol=0, atol=1e-13)
    np.testing.assert_allclose(a[1] - a[5]["y_clean"], b[1] - b[5]["y_clean"], rtol=0, atol=1e-13)
    assert not np.array_equal(a[0], c[0], equal_nan=True)
    # The recorded scheme regenerates the initial states.
    y0 = systems.get_system("pendulum").sample(16, seed=block_generator(4, "initial", 1))
    assert np.array_equal(a[5]["y_clean"][16:32, 0], y0.numpy())
    assert (
        a[4]["seed"] == 4 and a[4]["sampling"]["kind"] == "poisson" and "SeedSequence" in a[4]["seed_scheme"]
    )


def test_given_initial_states_and_float32(tmp_path):
    y0 = torch.tensor([[0.1, 0.0], [0.0, 0.5]], dtype=torch.float64)
    out = tmp_path / "f32.h5"
    simulate(
        "harmonic_oscillator",
        2,
        1.0,
        output=out,
        y0=y0,
        n_obs=3,
        dtype=torch.float32,
        rtol=1e-6,
        progress=False,
    )
    with open_trajectories(out) as f:
        assert f._y.dtype == np.float32 and f._t.dtype == np.float64
        assert f.attrs["initial"]["source"] == "given" and f.attrs["dtype"] == "float32"
        _, y = f.trajectory(1)
    exact = systems.get_system("harmonic_oscillator").flow(torch.tensor([0.0, 0.5, 1.0]), y0[1].expand(3, -1))
    np.testing.assert_allclose(y, exact.numpy(), atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": "rk4"}, InvalidArgumentError, "dt"),
        ({"dt": 0.1, "rtol": 1e-6}, InvalidArgumentError, "rtol"),
        ({"method": "rk4", "dt": -0.1}, InvalidArgumentError, "dt"),
        ({"rtol": 0.0}, InvalidArgumentError, "rtol"),
        ({"sampling": make_sampling("uniform", 2.0, 5)}, InvalidArgumentError, "t_end"),
        ({"method": "verlet", "dt": 0.1, "system": "double_pendulum"}, CapabilityError, "separable"),
        ({"method": "dopri"}, UnknownNameError, "did you mean"),
        ({"noise": -1.0}, InvalidArgumentError, "noise"),
        ({"noise": [0.1, 0.1, 0.1]}, InvalidArgumentError, "one standard deviation per"),
        ({"energy": 10.0, "system": "henon_heiles"}, InvalidArgumentError, "energy"),
        ({"params": {"lamb": 2.0}, "system": "henon_heiles"}, UnknownNameError, "lam"),
        ({"n": 0}, InvalidArgumentError, "n:"),
        ({"seed": -1}, InvalidArgumentError, "seed"),
        ({"sampling": "sometimes"}, UnknownNameError, "observation sampling"),
        ({"y0": torch.zeros(3, 2)}, InvalidArgumentError, "y0"),
    ],
)
def test_bad_arguments_fail_before_any_work(tmp_path, kwargs, error, match):
    kwargs = {"system": "pendulum", "n": 4, **kwargs}
    out = tmp_path / "x.h5"
    with pytest.raises(error, match=match):
        simulate(kwargs.pop("system"), kwargs.pop("n"), 1.0, output=out, progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_refused_before_solving(tmp_path, monkeypatch):
    out = tmp_path / "x.h5"
    out.write_bytes(b"precious")
    monkeypatch.setattr(SIM, "solve", lambda *a, **k: pytest.fail("solved before checking the output"))
    with pytest.raises(FileExistsError, match="overwrite"):
        simulate("pendulum", 2, 1.0, output=out, progress=False)
    assert out.read_bytes() == b"precious"


def test_interrupt_during_simulate_keeps_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / "x.h5"
    simulate("pendulum", 3, 1.0, output=out, n_obs=3, progress=False)
    before = out.read_bytes()
    calls = {"n": 0}
    real = SIM.solve

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(SIM, "solve", flaky)
    with pytest.raises(KeyboardInterrupt):
        simulate("pendulum", 10, 1.0, output=out, n_obs=3, chunk_size=4, overwrite=True, progress=False)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.h5"]


def test_result_summary_reports_throughput(tmp_path):
    r = simulate("pendulum", 8, 1.0, output=tmp_path / "s.h5", n_obs=4, progress=False)
    assert r.n == 8 and r.n_times == 4 and r.dim == 2 and r.n_failed == 0
    assert math.isfinite(r.throughput) and r.throughput > 0
    assert "8 trajectories" in str(r)


def test_simulate_writes_batch_by_batch_and_never_holds_all_trajectories(tmp_path, monkeypatch):
    writer_cls = SIM.TrajectoryWriter
    seen = []
    real_append = writer_cls.append

    def spy(self, **arrays):
        seen.append((arrays["y"].shape[0], self.written))
        return real_append(self, **arrays)

    monkeypatch.setattr(writer_cls, "append", spy)
    drawn = []
    real_draw = SIM.ObservationTimes.draw
    monkeypatch.setattr(SIM.ObservationTimes, "draw", lambda s, m, g: drawn.append(m) or real_draw(s, m, g))
    monkeypatch.setattr(SIM, "RNG_BLOCK", 8)
    simulate(
        "pendulum",
        50,
        1.0,
        output=tmp_path / "b.h5",
        sampling="uniform",
        n_obs=4,
        chunk_size=12,
        progress=False,
    )
    assert [b for b, _ in seen] == [10, 10, 10, 10, 10]  # equal chunks of at most 12
    assert [w for _, w in seen] == [0, 10, 20, 30, 40]  # appended in order, each written at once
    assert max(drawn) <= 8 and sum(drawn) == 50  # random draws per block, each block once
