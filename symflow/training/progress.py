"""Progress bars for long work (tqdm), quiet when disabled or not attached to a terminal."""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm.auto import tqdm


def progress_bar(*, total: int | None = None, desc: str = "", enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar; ``SYMFLOW_PROGRESS=0`` or ``enabled=False`` silences it (e.g. in tests and CI logs)."""
    env = os.environ.get("SYMFLOW_PROGRESS")
    if env is not None:
        enabled = enabled and env not in ("0", "false", "no")
    kwargs.setdefault("leave", False)
    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, dynamic_ncols=True, **kwargs)
