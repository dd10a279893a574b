"""``TrajectoryDataset``, ``collate_trajectories``, windows and splits, with DataLoader workers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, RandomSampler

from symflow.data import (
    TrajectoryDataset,
    collate_trajectories,
    open_trajectories,
    split_by_trajectory,
    window_start,
    write_trajectories,
)
from symflow.integrators import InvalidArgumentError, solve


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """40 trajectories with irregular times, lengths 5..20, two failed solves."""
    rng = np.random.default_rng(0)
    n, T, D = 40, 20, 2
    length = rng.integers(5, T + 1, size=n)
    t = np.sort(rng.uniform(0, 5, size=(n, T)), axis=1)
    t[:, 0] = 0
    y = rng.normal(size=(n, T, D))
    status = np.zeros(n, dtype=np.int8)
    status[[7, 30]] = 1
    y[7, 3:] = np.nan
    path = tmp_path_factory.mktemp("ds") / "d.h5"
    write_trajectories(path, t, y, length, status=status, chunk_rows=6)
    return path


def batches(loader):
    return [(b.ts.clone(), b.ys.clone(), b.mask.clone(), b.index.clone()) for b in loader]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            assert torch.equal(u.nan_to_num(-7.0), v.nan_to_num(-7.0))


def test_items_are_whole_trajectories_and_failed_ones_are_skipped(data_file):
    ds = TrajectoryDataset(data_file)
    assert len(ds) == 38 and 7 not in ds.indices and 30 not in ds.indices
    with open_trajectories(data_file) as f:
        for i in (0, 10, 37):
            item = ds[i]
            t, y = f.trajectory(item["index"])
            assert torch.equal(item["t"], torch.from_numpy(t)) and torch.equal(item["y"], torch.from_numpy(y))
    assert len(TrajectoryDataset(data_file, include_failed=True)) == 40
    with pytest.raises(InvalidArgumentError, match="include_failed"):
        TrajectoryDataset(data_file, indices=[1, 7])
    with pytest.raises(IndexError):
        ds[38]


def test_lazy_and_in_memory_reads_agree(data_file):
    lazy = TrajectoryDataset(data_file, in_memory=False, window=6, seed=3)
    mem = TrajectoryDataset(data_file, in_memory=True, window=6, seed=3)
    for i in range(len(lazy)):
        a, b = lazy[i], mem[i]
        assert a["index"] == b["index"] and torch.equal(a["t"], b["t"]) and torch.equal(a["y"], b["y"])


def test_collate_pads_with_nan_and_masks(data_file):
    ds = TrajectoryDataset(data_file, dtype=torch.float32)
    items = [ds[0], ds[1], ds[2]]
    batch = collate_trajectories(items)
    width = max(len(it["t"]) for it in items)
    assert batch.ts.shape == (3, width) and batch.ys.shape == (3, width, 2) and batch.mask.shape == (3, width)
    assert batch.ts.dtype == torch.float32 and batch.mask.dtype == torch.bool
    for r, it in enumerate(items):
        L = len(it["t"])
        assert batch.length[r] == L and batch.mask[r].sum() == L and batch.mask[r, :L].all()
        assert torch.isnan(batch.ts[r, L:]).all() and torch.isnan(batch.ys[r, L:]).all()
        assert batch.index[r] == it["index"]


def test_solver_times_of_a_batch_feed_a_per_sample_solve(data_file):
    batch = collate_trajectories([TrajectoryDataset(data_file)[i] for i in range(4)])
    grid = batch.solver_times()
    assert (grid.diff(dim=-1) > 0).all()
    assert torch.equal(grid[batch.mask], batch.ts[batch.mask])
    sol = solve(lambda t, y: -y, batch.ys[:, 0], grid, "dopri5", rtol=1e-10, atol=1e-12)
    exact = batch.ys[:, :1] * torch.exp(-(grid - grid[:, :1]))[..., None]
    torch.testing.assert_close(sol.ys[batch.mask], exact[batch.mask], rtol=1e-8, atol=1e-10)


def test_windows_are_random_reproducible_and_change_with_the_epoch(data_file):
    ds = TrajectoryDataset(data_file, window=4, seed=1)
    starts0 = [float(ds[i]["t"][0]) for i in range(len(ds))]
    assert all(len(ds[i]["t"]) == 4 for i in range(len(ds)))
    assert [float(ds[i]["t"][0]) for i in range(len(ds))] == starts0
    ds.set_epoch(1)
    starts1 = [float(ds[i]["t"][0]) for i in range(len(ds))]
    assert starts1 != starts0
    assert len({window_start(1, 0, 5, 20, 4) for _ in range(3)}) == 1
    # Offsets cover every admissible start, roughly uniformly.
    offsets = [window_start(9, e, 3, 12, 4) for e in range(4000)]
    counts = np.bincount(offsets, minlength=9)
    assert len(counts) == 9 and counts.min() > 350


def test_state_dict_resumes_the_windows_bit_for_bit(data_file):
    ds = TrajectoryDataset(data_file, window=5, seed=2)
    ds.set_epoch(3)
    state = ds.state_dict()
    expected = [ds[i] for i in range(len(ds))]
    fresh = TrajectoryDataset(data_file, window=5, seed=0)
    fresh.load_state_dict(pickle.loads(pickle.dumps(state)))
    for a, b in zip(expected, (fresh[i] for i in range(len(fresh)))):
        assert torch.equal(a["t"], b["t"]) and torch.equal(a["y"], b["y"])


def test_short_trajectories_come_whole_under_a_long_window(data_file):
    ds = TrajectoryDataset(data_file, window=15)
    lengths = [len(ds[i]["t"]) for i in range(len(ds))]
    assert max(lengths) == 15 and min(lengths) < 15


@pytest.mark.parametrize("persistent", [False, True])
def test_dataloader_with_two_workers_yields_the_same_batches_as_zero(data_file, persistent):
    ds = TrajectoryDataset(data_file, window=6, seed=5, in_memory=False)

    def loader(workers):
        # The sampler owns its generator: DataLoader also draws worker seeds from `generator`, once
        # per epoch without persistent workers but only once with them.
        return DataLoader(
            ds,
            batch_size=5,
            sampler=RandomSampler(ds, generator=torch.Generator().manual_seed(0)),
            num_workers=workers,
            persistent_workers=persistent and workers > 0,
            collate_fn=collate_trajectories,
        )

    single, multi = loader(0), loader(2)
    for epoch in range(2):
        ds.set_epoch(epoch)  # reaches persistent workers through shared memory
        a, b = batches(single), batches(multi)
        assert_same_batches(a, b)


def test_dataset_pickles_without_an_open_handle(data_file):
    ds = TrajectoryDataset(data_file, in_memory=False)
    ds[0]  # opens the file in this process
    assert ds._file is not None
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._file is None
    assert torch.equal(clone[3]["y"], ds[3]["y"])
    ds.close()


def test_split_by_trajectory_is_a_seeded_partition(data_file):
    train, val = split_by_trajectory(100, 0.2, seed=0)
    assert len(val) == 20 and len(train) == 80
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))
    again, _ = split_by_trajectory(100, 0.2, seed=0)
    other, _ = split_by_trajectory(100, 0.2, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    ds = TrajectoryDataset(data_file)
    tr, va = ds.split(0.25, seed=0)
    assert len(tr) + len(va) == len(ds) and not set(tr.indices) & set(va.indices)
    assert set(tr.indices) | set(va.indices) == set(ds.indices)
    t, v = split_by_trajectory(2, 0.01)
    assert len(t) == 1 and len(v) == 1
    with pytest.raises(InvalidArgumentError, match="val_fraction"):
        split_by_trajectory(10, 1.5)


def test_plain_layout_dataset(tmp_path):
    import h5py

    path = tmp_path / "ext.h5"
    y = np.random.default_rng(0).normal(size=(6, 8, 2)).astype(np.float32)
    mask = np.ones((6, 8), dtype=bool)
    mask[2, 5:] = False
    with h5py.File(path, "w") as f:
        f["obs"], f["time"], f["valid"] = y, np.linspace(0, 1, 8), mask
    ds = TrajectoryDataset(path, y_key="obs", t_key="time", mask_key="valid")
    assert len(ds) == 6 and len(ds[2]["t"]) == 5 and ds[2]["y"].dtype == torch.float32
