"""Command-line options generated from a learner's configuration dataclass.

Every field of :class:`~symflow.learners.config.SympFlowConfig` / ``PinnConfig`` becomes one option
(``adam_steps`` → ``--steps`` where the field names its flags, else ``--field-name``), listed under the
field's group, with its help text, its valid range and its default — so ``symflow train ... --help``,
``docs/cli.md`` and the Python API describe the same options. :func:`config_from_args` builds the
configuration back from the parsed arguments; the dataclass checks every value (one line naming the
option and the value, before any work).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from symflow.integrators.errors import InvalidArgumentError
from symflow.learners.config import FlowMapConfig, range_text

from .main import CLIError


def _numbers(text: str) -> list[float]:
    """One command-line token of numbers: ``"1"``, ``"-0.5"`` or comma separated ``"1,0"``."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (or comma-separated numbers)") from None


def flags_of(f: dataclasses.Field) -> list[str]:
    """The command-line spellings of a configuration field."""
    meta = f.metadata
    if meta.get("flags"):
        return list(meta["flags"])
    if meta["kind"] == "bool" and f.default is True:
        return [f"--no-{f.name.replace('_', '-')}"]
    return [f"--{f.name.replace('_', '-')}"]


def add_config_options(parser: argparse.ArgumentParser, cls: type[FlowMapConfig]) -> None:
    """Add one option per field of ``cls`` to ``parser``, grouped as the fields are."""
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata
        group = groups.get(meta["group"])
        if group is None:
            group = groups[meta["group"]] = parser.add_argument_group(meta["group"])
        kw: dict[str, Any] = {"dest": f.name, "help": meta["help"]}
        kind = meta["kind"]
        default = f.default if f.default is not dataclasses.MISSING else None
        if kind == "bool":
            kw["action"] = "store_false" if default is True else "store_true"
            kw["default"] = default
        elif kind in ("params", "ranges"):
            kw.update(action="append", metavar=meta["metavar"] or "NAME=VALUE", default=None)
        elif kind == "floats":
            kw.update(nargs="+", type=_numbers, default=default, metavar=meta["metavar"] or "X")
        else:
            kw["type"] = {"int": int, "float": float, "str": str}[kind]
            kw["default"] = default
            if meta["choices"]:
                kw["choices"] = list(meta["choices"])
            if meta["metavar"]:
                kw["metavar"] = meta["metavar"]
        if kind in ("int", "float") and (meta["low"] is not None or meta["high"] is not None):
            kw["help"] += f" ({range_text(meta)})"
        group.add_argument(*flags_of(f), **kw)


def _params(pairs: list[str] | None) -> dict[str, Any]:
    """``["lam=1.0", "n=3"]`` → ``{"lam": 1.0, "n": 3}`` (values parsed as JSON numbers)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--param {pair!r}: expected NAME=VALUE, e.g. --param lam=1.0")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError as err:
            raise CLIError(f"--param {pair!r}: {value!r} is not a number") from err
    return out


def _ranges(items: list[str] | None) -> dict[str, Any]:
    """``["omega=0.5:2", "g"]`` → ``{"omega": [0.5, 2.0], "g": None}`` (``None``: the declared range)."""
    from symflow.systems import parse_range

    out: dict[str, Any] = {}
    for item in items or []:
        try:
            name, bounds = parse_range(item)
        except ValueError as err:
            raise CLIError(
                f"--param-range {item!r}: expected NAME=LO:HI, e.g. --param-range omega=0.5:2"
            ) from err
        out[name] = None if bounds is None else list(bounds)
    return out


def config_from_args(cls: type[FlowMapConfig], args: argparse.Namespace) -> FlowMapConfig:
    """The configuration the parsed options describe (checked by the dataclass)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, f.name)
        kind = f.metadata["kind"]
        if kind == "params":
            value = _params(value)
        elif kind == "ranges":
            value = _ranges(value)
        elif kind == "floats" and isinstance(value, list):  # given: one list of numbers per token
            value = [x for token in value for x in token]
        values[f.name] = value
    try:
        return cls.from_dict(values)
    except InvalidArgumentError as err:
        # The user typed flags, not field names: name the flag they can fix (adam_steps → --steps).
        by_name = {f.name: flags_of(f)[0] for f in dataclasses.fields(cls)}
        if err.argument in by_name:
            raise InvalidArgumentError(by_name[err.argument], err.received, err.expected) from None
        raise
