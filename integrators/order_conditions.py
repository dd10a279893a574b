"""Runge–Kutta order conditions from rooted trees (Butcher's theory).

A method has order ``p`` when ``bᵀ Φ(τ) = 1/γ(τ)`` for every rooted tree ``τ`` with at most ``p``
vertices, where the elementary weight vector is ``Φ(•) = 1`` and
``Φ([τ₁, …, τ_m]) = ∏ₖ A Φ(τₖ)`` (elementwise product), and the density is ``γ(•) = 1``,
``γ([τ₁, …, τ_m]) = |τ| ∏ₖ γ(τₖ)``.

Reference: Hairer, Nørsett, Wanner, *Solving Ordinary Differential Equations I* (2nd ed.), §II.2.
Trees are canonical nested tuples (a tree is the sorted tuple of its children), so each
unlabelled tree is generated once: 1, 1, 2, 4, 9, 20, 48, 115 trees of orders 1…8.
"""

from __future__ import annotations

from functools import cache

import numpy as np

Tree = tuple  # a tree is the sorted tuple of its child trees; () is the single vertex •


def size(tree: Tree) -> int:
    return 1 + sum(size(child) for child in tree)


def density(tree: Tree) -> int:
    out = size(tree)
    for child in tree:
        out *= density(child)
    return out


@cache
def trees_of_order(n: int) -> tuple[Tree, ...]:
    """All rooted trees with ``n`` vertices, each once (children multisets in canonical order)."""
    if n == 1:
        return ((),)
    out: set[Tree] = set()
    # A root with children whose sizes sum to n - 1: build the children multiset as a
    # non-increasing sequence of (size, tree-index) pairs so each multiset appears once.
    catalogue = [(k, i, t) for k in range(1, n) for i, t in enumerate(trees_of_order(k))]

    def extend(remaining: int, max_key: tuple[int, int], children: list[Tree]) -> None:
        if remaining == 0:
            out.add(tuple(sorted(children, key=_sort_key)))
            return
        for k, i, t in catalogue:
            if k <= remaining and (k, i) <= max_key:
                extend(remaining - k, (k, i), [*children, t])

    extend(n - 1, (n, 0), [])
    return tuple(sorted(out, key=_sort_key))


def _sort_key(tree: Tree) -> tuple:
    return (size(tree), tuple(_sort_key(c) for c in tree))


def elementary_weight(tree: Tree, a: np.ndarray) -> np.ndarray:
    """``Φ(τ)`` as a vector over the stages."""
    phi = np.ones(a.shape[0])
    for child in tree:
        phi = phi * (a @ elementary_weight(child, a))
    return phi


def order_defects(a: np.ndarray, b: np.ndarray, max_order: int) -> list[float]:
    """``max_τ |bᵀΦ(τ) − 1/γ(τ)|`` for each order ``1..max_order``."""
    return [
        max(abs(float(b @ elementary_weight(t, a)) - 1.0 / density(t)) for t in trees_of_order(k))
        for k in range(1, max_order + 1)
    ]


def order_of(a: np.ndarray, b: np.ndarray, *, max_order: int = 10, tol: float = 1e-13) -> int:
    """The largest ``p ≤ max_order`` such that all order conditions up to ``p`` hold.

    A condition holds when ``|bᵀΦ(τ) − 1/γ(τ)| ≤ tol · (1/γ(τ) + Σᵢ |bᵢ Φᵢ(τ)|)``: the second term
    is the round-off scale of the sum, since published coefficients are decimal roundings of exact
    values; a violated condition misses by a fraction of ``1/γ``, many orders above that.
    """
    p = 0
    for k in range(1, max_order + 1):
        for t in trees_of_order(k):
            phi = elementary_weight(t, a)
            exact = 1.0 / density(t)
            if abs(float(b @ phi) - exact) > tol * (exact + float(np.abs(b * phi).sum())):
                return p
        p = k
    return p
