"""Dataset recipes: TOML files that pin down a :func:`~symflow.data.simulate` run.

A recipe (see ``datasets/*.toml``)::

    description = "Hénon–Heiles, chaotic energy, irregular observation times"
    system = "henon_heiles"

    [params]            # optional: system parameters
    lam = 1.0

    [simulate]          # keyword arguments of symflow.data.simulate
    n = 10000
    t_end = 100.0
    sampling = "uniform"
    n_obs = 50
    rtol = 1e-9
    seed = 0

Unknown keys are errors (with did-you-mean suggestions). The recipe's text is stored in the
file's ``recipe`` attribute, so every file says how to make it again.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from symflow.integrators.errors import InvalidArgumentError, SymflowError
from symflow.integrators.registry import Registry
from symflow.integrators.reprs import compact_repr

from .simulate import SimulationResult, simulate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TOP_LEVEL = ("description", "system", "params", "simulate")
# simulate() options a recipe may set; output, overwrite, progress and y0 belong to the run.
OPTIONS = (
    "n",
    "t_end",
    "method",
    "rtol",
    "atol",
    "dt",
    "max_steps",
    "sampling",
    "n_obs",
    "min_obs",
    "max_obs",
    "noise",
    "energy",
    "seed",
    "device",
    "dtype",
    "chunk_size",
    "store_energy",
    "store_clean",
    "compression_level",
)
_DTYPES = {"float64": torch.float64, "float32": torch.float32}


class RecipeError(SymflowError, ValueError):
    """A recipe file that cannot be parsed or misses a required entry."""


def _registry(kind: str, names: tuple[str, ...]) -> Registry[None]:
    reg: Registry[None] = Registry(kind)
    for name in names:
        reg.register(name, None)
    return reg


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe: the system, its parameters and the options of :func:`simulate`."""

    name: str
    system: str
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    path: Path | None = None

    def simulate(
        self, output: str | os.PathLike, *, params: Mapping[str, Any] | None = None, **overrides: Any
    ) -> SimulationResult:
        """Run the recipe into ``output``.

        ``params`` update the system parameters and ``overrides`` replace recipe options (e.g. a
        smaller ``n``); both are recorded in the file (``recipe_overrides``). Run-time options of
        :func:`simulate` (``overwrite``, ``progress``) pass through.
        """
        options = {**self.options, **overrides}
        if isinstance(options.get("dtype"), str):
            options["dtype"] = _DTYPES[options["dtype"]]
        n, t_end = options.pop("n"), options.pop("t_end")
        changed = {k: str(v) for k, v in overrides.items() if k in OPTIONS}
        changed.update({f"params.{k}": str(v) for k, v in (params or {}).items()})
        attrs = {"recipe": self.name, "recipe_toml": self.text, **options.pop("attrs", {})}
        if changed:
            attrs["recipe_overrides"] = changed
        return simulate(
            self.system,
            n,
            t_end,
            output=output,
            params={**self.params, **(params or {})},
            attrs=attrs,
            **options,
        )

    def __repr__(self) -> str:
        return compact_repr(self, fields=("name", "system", "params", "options", "path"))


def parse_recipe(text: str, *, name: str = "recipe", path: Path | None = None) -> Recipe:
    """Parse and check the TOML text of a recipe (values are checked again by :func:`simulate`)."""
    where = str(path) if path is not None else name
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise RecipeError(f"{where}: not valid TOML: {err}") from None
    top = _registry("recipe entry", TOP_LEVEL)
    for key in doc:
        top.get(key)  # unknown entries raise with a did-you-mean
    if not isinstance(doc.get("system"), str):
        raise RecipeError(f'{where}: missing `system = "<name>"` (see `symflow systems`)')
    params = doc.get("params", {})
    options = doc.get("simulate", {})
    for key, value in (("params", params), ("simulate", options)):
        if not isinstance(value, Mapping):
            raise RecipeError(f"{where}: `{key}` must be a table ([{key}])")
    opts = _registry("simulate option in a recipe", OPTIONS)
    for key in options:
        opts.get(key)
    for key in ("n", "t_end"):
        if key not in options:
            raise RecipeError(f"{where}: [simulate] needs `{key}`")
    if "dtype" in options and options["dtype"] not in _DTYPES:
        raise InvalidArgumentError("dtype", options["dtype"], "'float64' or 'float32'")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise RecipeError(f"{where}: `description` must be a string")
    return Recipe(name, doc["system"], description, dict(params), dict(options), text, path)


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read a recipe file (``FileNotFoundError`` if it does not exist)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    return parse_recipe(text, name=path.stem, path=path)
