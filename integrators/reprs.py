"""Compact one-line reprs for result objects that hold tensors.

A dataclass's generated repr prints every tensor in full: ``print(section)`` of a Poincaré section
with thousands of crossings is hundreds of lines. Result objects use :func:`compact_repr` instead,
which shows a tensor by its shape and dtype (``<5230×4 float64>``; a single number by its value), a
model by its class and parameter count, long text cut short and large containers by their size:

    PoincareSection(surface='x = 0, p_x > 0', orbits=100, crossings=5230, t_end=1000, ...)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

Tensor = torch.Tensor

_TEXT = 60  # longest text shown in full


def short(value: Any, depth: int = 0) -> str:
    """A few characters that say what ``value`` is (see the module docstring)."""
    if isinstance(value, Tensor):
        if value.numel() == 1 and value.dim() <= 1:
            return _number(value.item())
        dims = "×".join(str(s) for s in value.shape) or "scalar"
        dtype = str(value.dtype).replace("torch.", "")
        where = f" {value.device}" if value.device.type != "cpu" else ""
        return f"<{dims} {dtype}{where}>"
    if isinstance(value, torch.nn.Module):
        n = sum(p.numel() for p in value.parameters())
        return f"<{type(value).__name__}, {n} parameters>"
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, str):
        return repr(value if len(value) <= _TEXT else value[: _TEXT - 1] + "…")
    if isinstance(value, Path):
        return repr(str(value))
    if isinstance(value, torch.dtype | torch.device):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        text = repr(value)
        return text if len(text) <= 2 * _TEXT else f"<{type(value).__name__}>"
    if isinstance(value, Mapping):
        if depth == 0 and len(value) <= 4:
            inner = ", ".join(f"{k!r}: {short(v, depth + 1)}" for k, v in value.items())
            if len(inner) <= 2 * _TEXT:
                return "{" + inner + "}"
        keys = ", ".join(map(str, list(value)[:4])) + (", …" if len(value) > 4 else "")
        return f"<{len(value)} keys: {keys}>" if value else "{}"
    if isinstance(value, (list, tuple)):
        if depth == 0 and len(value) <= 6:
            inner = ", ".join(short(v, depth + 1) for v in value)
            if len(inner) <= _TEXT:
                return (
                    ("[" + inner + "]")
                    if isinstance(value, list)
                    else ("(" + inner + ("," if len(value) == 1 else "") + ")")
                )
        return f"<{len(value)} items>"
    if callable(value):
        return f"<{getattr(value, '__qualname__', type(value).__name__)}>"
    text = repr(value)
    return text if len(text) <= _TEXT else f"<{type(value).__name__}>"


def _number(x: float | int) -> str:
    if isinstance(x, bool):
        return repr(x)
    if isinstance(x, int):
        return str(x)
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def compact_repr(obj: Any, *, fields: tuple[str, ...] | None = None, **extra: Any) -> str:
    """``Class(name=value, ...)`` on one line: the dataclass ``fields`` (default: all of them, with
    ``None`` values left out) followed by ``extra`` facts, each value through :func:`short`."""
    names = fields if fields is not None else tuple(f.name for f in dataclasses.fields(obj))
    parts = []
    for name in names:
        value = getattr(obj, name)
        if fields is None and value is None:
            continue
        parts.append(f"{name}={short(value)}")
    parts += [f"{k}={v if isinstance(v, str) and v.startswith('<') else short(v)}" for k, v in extra.items()]
    return f"{type(obj).__name__}({', '.join(parts)})"
