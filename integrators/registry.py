"""A small name → spec registry with "did you mean" errors, shared by systems, methods and learners.

Names are the lowercase names used in the literature (``"rk4"``, ``"dopri5"``, ``"henon_heiles"``).
Lookups are case-insensitive and treat ``-`` like ``_``, because users type ``Henon-Heiles``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Generic, TypeVar

from .errors import DuplicateRegistrationError, InvalidArgumentError, UnknownNameError

T = TypeVar("T")


def normalize_name(name: str) -> str:
    """Canonical registry key: lowercase, ``-`` and spaces become ``_``."""
    return name.strip().lower().replace("-", "_").replace(" ", "_")


class Registry(Generic[T]):
    """Ordered mapping of canonical names to frozen specs.

    ``kind`` is a human noun used in messages (``"system"``, ``"integration method"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, item: T, *, aliases: tuple[str, ...] = (), overwrite: bool = False) -> T:
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgumentError("name", name, f"a non-empty string naming the {self.kind}")
        key = normalize_name(name)
        if key != name:
            raise InvalidArgumentError(
                "name", name, f"a lowercase {self.kind} name with underscores, e.g. {key!r}"
            )
        if not overwrite and (key in self._items or key in self._aliases):
            raise DuplicateRegistrationError(
                f"a {self.kind} named {key!r} is already registered; choose another name or pass "
                "overwrite=True to replace it"
            )
        self._items[key] = item
        for alias in aliases:
            self._aliases[normalize_name(alias)] = key
        return item

    def unregister(self, name: str) -> None:
        key = self._resolve(name)
        del self._items[key]
        for alias in [a for a, k in self._aliases.items() if k == key]:
            del self._aliases[alias]

    def _resolve(self, name: str) -> str:
        if not isinstance(name, str):
            raise InvalidArgumentError(self.kind, name, f"the name of a {self.kind} (a string)")
        key = normalize_name(name)
        if key in self._items:
            return key
        if key in self._aliases:
            return self._aliases[key]
        candidates = list(self._items) + list(self._aliases)
        close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)
        suggestions = list(dict.fromkeys(self._aliases.get(c, c) for c in close))
        raise UnknownNameError(self.kind, name, self.names(), suggestions)

    def get(self, name: str) -> T:
        return self._items[self._resolve(name)]

    def canonical(self, name: str) -> str:
        """The registered name behind ``name`` (resolving case, dashes and aliases)."""
        return self._resolve(name)

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = normalize_name(name)
        return key in self._items or key in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
