"""Counting host synchronisations without a GPU (shared by the sync-budget tests).

On a GPU, every ``bool(tensor)``, ``tensor.item()``, ``tensor.tolist()``, ``int(tensor)``,
``float(tensor)``, ``tensor.nonzero()`` and ``tensor.cpu()``/``.numpy()`` of a device tensor waits for
the device to finish its queue. On the CPU the same calls are cheap, but they are the same calls:
counting them on the CPU tells how many times a loop would stall a GPU. :func:`count_host_syncs`
patches those entry points of ``torch.Tensor`` for the duration of a ``with`` block::

    with count_host_syncs() as syncs:
        solve(f, y0, ts, "dopri5")
    assert syncs.count <= budget, syncs.by_name

Only tensors with more than zero elements that are not Python-side constants count; calls made by the
counter itself do not.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

# ``nonzero`` has a data-dependent shape: the host waits for the device to know it.
_ENTRY_POINTS = ("__bool__", "item", "tolist", "__int__", "__float__", "__index__", "numpy", "cpu", "nonzero")


@dataclass
class SyncCount:
    """The syncs seen so far: ``count`` in all, ``by_name`` per entry point."""

    by_name: Counter = field(default_factory=Counter)

    @property
    def count(self) -> int:
        return sum(self.by_name.values())


@contextlib.contextmanager
def count_host_syncs() -> Iterator[SyncCount]:
    """Count calls of the host-sync entry points of ``torch.Tensor`` inside the block."""
    seen = SyncCount()
    originals = {name: getattr(torch.Tensor, name) for name in _ENTRY_POINTS}
    depth = [0]

    def wrap(name, original):
        def counted(self, *args, **kwargs):
            if depth[0] == 0:
                seen.by_name[name] += 1
            depth[0] += 1
            try:
                return original(self, *args, **kwargs)
            finally:
                depth[0] -= 1

        counted.__name__ = name
        return counted

    for name, original in originals.items():
        setattr(torch.Tensor, name, wrap(name, original))
    try:
        yield seen
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
