"""A step traced in *column form*: every ``(B, D)`` tensor of the step becomes D separate ``(B,)`` columns.

Why: a catalogue field is written on a ``(B, D)`` state — ``x, y = q[..., 0], q[..., 1]`` … then
``torch.stack([...], -1)``. Compiled, every stage then reads its components with stride D and writes
them back interleaved, which keeps inductor's CPU kernels from vectorising and fusing across the
stages. The same arithmetic on separate component columns is plain contiguous element-wise work
over ``B``: a 16-step compiled RK4 chunk of Hénon–Heiles at B = 1024 takes about half the time
(``benchmarks/README.md``, compiled fixed step).

How: :func:`column_step` traces ``step(t, y, h)`` to aten operations with ``make_fx`` and rewrites the
graph, keeping every value whose last axis is the component axis as a list of columns:

* ``select`` / ``slice`` / ``cat`` on the last axis, ``stack`` of columns on a new last axis and
  ``unsqueeze(-1)`` / ``reshape(-1, 1)`` of a column pick, split and join columns (no data moves);
* element-wise operations (aten's ``pointwise`` tag) apply column by column, broadcasting one-column
  values and scalars;
* ``sum`` and the 2-norm over the last axis add columns up; ``zeros_like`` / ``ones_like`` /
  ``clone`` / ``expand`` act per column.

Anything else (a matrix product, a reduction over the batch, an in-place write, a branch on values, …)
makes :func:`column_step` return ``None`` and the caller keeps the ``(B, D)`` step: the transform never
changes what is computed, only how the components are laid out, and it is checked against the
original step on the traced input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.fx import Graph, GraphModule, Node

aten = torch.ops.aten


class Unsupported(Exception):
    """An operation the column form does not handle (the caller falls back to the ``(B, D)`` step)."""


class _Cols:
    """A ``(B, k)`` value of the original graph, held as k ``(B,)`` column nodes of the new one."""

    __slots__ = ("cols",)

    def __init__(self, cols: list[Node]) -> None:
        self.cols = cols


def _last_axis(dim: int, ndim: int) -> bool:
    return dim in (-1, ndim - 1)


def column_step(step: Callable, t: torch.Tensor, y: torch.Tensor, h: torch.Tensor) -> Callable | None:
    """``step(t, y (B, D), h) -> (B, D)`` as ``cstep(t, cols, h) -> cols`` on a tuple of D ``(B,)``
    columns, or ``None`` when the step uses an operation outside the column form."""
    from torch.fx.experimental.proxy_tensor import make_fx

    global LAST_FALLBACK
    LAST_FALLBACK = None
    if y.dim() != 2 or y.shape[0] in (1, y.shape[1]):
        # Columns are told from other values by their length B: it must differ from 1 and from D.
        LAST_FALLBACK = "the state is not (B, D) with 1 < B != D"
        return None
    try:
        # Traced on fake tensors: a step that branches on values (``if y.abs().max() > 1``) or reads
        # them (``.item()``) fails here instead of having one branch baked into the column form.
        traced = make_fx(step, tracing_mode="fake")(t, y, h)
    except Exception as why:  # any step that cannot be traced keeps the (B, D) chunk
        LAST_FALLBACK = f"not traceable: {type(why).__name__}"
        return None
    try:
        gm = _rewrite(traced, y.shape[0], y.shape[1])
    except Unsupported as why:
        LAST_FALLBACK = str(why)
        return None

    def cstep(t_: torch.Tensor, cols: tuple[torch.Tensor, ...], h_: torch.Tensor) -> tuple:
        return gm(t_, *cols, h_)

    if not same_step(cstep, step, t, y, h):
        LAST_FALLBACK = "the column form differs from the step"  # a defect of the rewrite, never silent
        return None
    return cstep


# Why the last call of column_step returned None (None when it did not).
LAST_FALLBACK: str | None = None


def same_step(cstep: Callable, step: Callable, t: torch.Tensor, y: torch.Tensor, h: torch.Tensor) -> bool:
    """Whether the column step gives the step's values on ``y``: the same operations per element, so
    equal up to the association of sums over the components (a few ulps of the state's size)."""
    y = y.detach()
    with torch.no_grad():
        want = step(t, y, h)
        got = torch.stack(cstep(t, tuple(y.unbind(-1)), h), -1)
    if got.shape != want.shape or got.dtype != want.dtype:
        return False
    tol = 64 * torch.finfo(want.dtype).eps * (1.0 + float(want.abs().max()) + float(y.abs().max()))
    close = ((got - want).abs() <= tol) | (got.isnan() & want.isnan())
    return bool(close.all())


def _rewrite(gm: GraphModule, b: int, d: int) -> GraphModule:
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 3:
        raise Unsupported("step signature")
    lower = _Lowering(b)
    t_ph, y_ph, h_ph = placeholders
    lower.env[t_ph] = lower.new_placeholder("t", _ndim(t_ph))
    lower.env[y_ph] = _Cols([lower.new_placeholder(f"y{i}", 1) for i in range(d)])
    lower.env[h_ph] = lower.new_placeholder("h", _ndim(h_ph))
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            out = lower.arg(node.args[0])
            if not isinstance(out, _Cols) or len(out.cols) != d:
                raise Unsupported("the output is not a (B, D) value")
            lower.g.output(tuple(out.cols))
            continue
        if node.op != "call_function":
            raise Unsupported(node.op)
        schema = getattr(node.target, "_schema", None)
        if schema is not None and schema.is_mutable:  # an in-place write may alias a (B, D) view
            raise Unsupported(f"{node.target} writes in place")
        lower.env[node] = lower.lower(node)
    return GraphModule(torch.nn.Module(), lower.g)


def _ndim(node: Node) -> int:
    val = node.meta.get("val")
    return val.dim() if isinstance(val, torch.Tensor) else 0


class _Lowering:
    """The rewrite's state: the new graph, the map from old nodes to new values, and the rank of
    every plain (not column-split) new node — ``(B,)`` columns have rank 1, scalars rank 0."""

    def __init__(self, b: int) -> None:
        self.g = Graph()
        self.b = b
        self.env: dict[Node, Any] = {}
        self.rank: dict[Node, int] = {}

    def new_placeholder(self, name: str, rank: int) -> Node:
        n = self.g.placeholder(name)
        self.rank[n] = rank
        return n

    def call(self, op: Any, args: tuple, kwargs: dict, rank: int) -> Node:
        n = self.g.call_function(op, args, kwargs)
        self.rank[n] = rank
        return n

    def arg(self, a: Any) -> Any:
        if isinstance(a, Node):
            return self.env[a]
        if isinstance(a, (list, tuple)):
            return type(a)(self.arg(x) for x in a)
        return a

    def lower(self, node: Node) -> Any:
        op, args, kwargs = node.target, self.arg(node.args), self.arg(node.kwargs)
        flat = _flat(args) + _flat(kwargs.values())
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            raise Unsupported(f"{op} returns {type(val).__name__}")
        if not any(isinstance(a, _Cols) for a in flat):
            return self._plain(node, op, args, kwargs, flat, val)
        return self._split(op, args, kwargs)

    def _plain(self, node: Node, op: Any, args: tuple, kwargs: dict, flat: list, val: torch.Tensor) -> Any:
        """An operation on columns and scalars only."""
        if val.dim() == 2 and val.shape[0] == self.b:
            if op is aten.stack.default:  # columns joined on a new last axis
                parts, dim = args[0], (args[1] if len(args) > 1 else kwargs.get("dim", 0))
                if _last_axis(dim, 2) and all(isinstance(p, Node) and self.rank[p] == 1 for p in parts):
                    return _Cols(list(parts))
            # A (B, 1) value made from a column — reshape(-1, 1) or unsqueeze(-1) — is one column.
            if val.shape[1] == 1 and op in _RESHAPES:
                (x,) = [a for a in flat if isinstance(a, Node)]
                if self.rank[x] == 1:
                    return _Cols([x])
            raise Unsupported(f"{op} makes a (B, D) value")
        if val.dim() == 1 and val.shape[0] == 1:
            rank = 0  # a one-element vector broadcasts against a column as a scalar does
        elif val.dim() > 1 or (val.dim() == 1 and val.shape[0] != self.b):
            raise Unsupported(f"{op} makes a value of shape {tuple(val.shape)}")
        else:
            rank = val.dim()
        ranks = {self.rank[a] for a in flat if isinstance(a, Node)}
        if 1 in ranks and not _pointwise(op):
            raise Unsupported(f"{op} on a column")
        return self.call(op, args, kwargs, rank)

    def _split(self, op: Any, args: tuple, kwargs: dict) -> Any:
        """An operation with a column-split ``(B, k)`` operand."""
        if op is aten.select.int:
            x, dim, i = args
            if not _last_axis(dim, 2):
                raise Unsupported("select across the batch")
            return x.cols[i]
        if op is aten.slice.Tensor:
            x, dim, start, end, step = (*args, None, None, None)[:5]
            if not _last_axis(dim, 2):
                raise Unsupported("slice across the batch")
            return _Cols(x.cols[slice(start, end, step)])
        if op is aten.cat.default:
            parts, dim = args[0], (args[1] if len(args) > 1 else kwargs.get("dim", 0))
            if not _last_axis(dim, 2) or not all(isinstance(p, _Cols) for p in parts):
                raise Unsupported("cat across the batch")
            return _Cols([c for p in parts for c in p.cols])
        if op in (aten.sum.dim_IntList, aten.linalg_vector_norm.default):
            return self._reduce(op, args, kwargs)
        if op in (aten.zeros_like.default, aten.ones_like.default, aten.clone.default, aten.alias.default):
            return _Cols([self.call(op, (c, *args[1:]), kwargs, 1) for c in args[0].cols])
        if op is aten.detach.default:
            return _Cols([self.call(op, (c,), {}, 1) for c in args[0].cols])
        if op is aten.expand.default:
            x, size = args[0], list(args[1])
            if len(size) != 2 or size[0] not in (-1, self.b):
                raise Unsupported("expand")
            if size[1] in (-1, len(x.cols)):
                return x
            if len(x.cols) == 1:
                return _Cols(x.cols * size[1])
            raise Unsupported("expand")
        if _pointwise(op):
            return self._pointwise(op, args, kwargs)
        raise Unsupported(str(op))

    def _reduce(self, op: Any, args: tuple, kwargs: dict) -> Any:
        x = args[0]
        if op is aten.sum.dim_IntList:
            dims = args[1]
            keep = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
            if kwargs.get("dtype") is not None:
                raise Unsupported("sum with a dtype")
            terms = list(x.cols)
        else:
            order = args[1] if len(args) > 1 else kwargs.get("ord", 2)
            dims = args[2] if len(args) > 2 else kwargs.get("dim")
            keep = args[3] if len(args) > 3 else kwargs.get("keepdim", False)
            if order != 2 or kwargs.get("dtype") is not None:
                raise Unsupported("a norm other than the 2-norm")
            terms = [self.call(aten.mul.Tensor, (c, c), {}, 1) for c in x.cols]
        if dims is None or list(dims) not in ([-1], [1]):
            raise Unsupported("a reduction across the batch")
        total = terms[0]
        for c in terms[1:]:
            total = self.call(aten.add.Tensor, (total, c), {}, 1)
        if op is aten.linalg_vector_norm.default:
            total = self.call(aten.sqrt.default, (total,), {}, 1)
        return _Cols([total]) if keep else total

    def _pointwise(self, op: Any, args: tuple, kwargs: dict) -> _Cols:
        widths = {len(a.cols) for a in args if isinstance(a, _Cols)}
        k = max(widths)
        if widths - {1, k}:
            raise Unsupported("operands of different widths")
        if any(isinstance(a, Node) and self.rank[a] != 0 for a in args):
            raise Unsupported(f"{op} broadcasts a column against the component axis")
        out = []
        for i in range(k):
            ai = tuple(a.cols[i if len(a.cols) > 1 else 0] if isinstance(a, _Cols) else a for a in args)
            out.append(self.call(op, ai, kwargs, 1))
        return _Cols(out)


_RESHAPES = (aten.view.default, aten.reshape.default, aten.unsqueeze.default, aten._unsafe_view.default)


def _flat(args: Any) -> list:
    out: list = []
    for a in args:
        if isinstance(a, (list, tuple)):
            out.extend(_flat(a))
        else:
            out.append(a)
    return out


def _pointwise(op: Any) -> bool:
    return isinstance(op, torch._ops.OpOverload) and torch.Tag.pointwise in op.tags
