"""Render the CLI reference (``docs/cli.md``) from the argument parsers themselves.

``python -m symflow.cli.reference > docs/cli.md`` regenerates the page; a test fails when the page and
the parsers disagree, so the reference cannot go stale.
"""

from __future__ import annotations

import argparse
import re
import textwrap

from .main import build_parser

INTRO = """\
# CLI reference

`symflow COMMAND [options]`. Every command prints one line and exits non-zero on a wrong input (missing
file, wrong schema, unknown system or method, bad option value), saying what is wrong and how to fix
it; `symflow --debug COMMAND ...` shows the traceback instead. Long jobs show progress bars
(`SYMFLOW_PROGRESS=0` or the command's quiet option turns them off). Training commands write a run
directory (`config.json`, `metrics.jsonl`, atomic `weights_only` checkpoints, `summary.json`) and
continue an interrupted run with `--resume`.

This page is generated from the parsers (`python -m symflow.cli.reference > docs/cli.md`).
"""


def _options(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| option | meaning | default |", "| --- | --- | --- |"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction, argparse._VersionAction)):
            continue
        names = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.metavar or action.dest}`"
        if action.choices is not None and not isinstance(action.choices, dict):
            names += " {" + ", ".join(str(c) for c in action.choices) + "}"
        helptext = (action.help or "").replace("%(default)s", str(action.default)).replace("|", "\\|")
        rows.append(f"| {names} | {helptext} | {default_of(action)} |")
    return rows


# "(default 1000)", "(default: hnn)", "(default dopri5; gl6 for ...)", "(default 0: off)"
_DEFAULT_IN_HELP = re.compile(r"\(default(?::|\s)\s*([^;:)]+)")


def default_of(action: argparse.Action) -> str:
    """The default column: the parser's default, or the one the help text states where the parser's
    is ``None`` because the real default depends on other options or is decided downstream."""
    default = action.default
    flag = isinstance(action, argparse._StoreConstAction)  # store_true/false/const
    unset = default is None or default is argparse.SUPPRESS or default is False or default == []
    if not flag and not unset:
        return f"`{default}`"
    found = _DEFAULT_IN_HELP.search(action.help or "")
    if found:
        return f"`{found.group(1).strip()}`"
    if flag and "(default)" in (action.help or ""):
        return "on"
    return ""


def _walk(parser: argparse.ArgumentParser, name: str, out: list[str], summary: str = "") -> None:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    described = parser.description or summary
    out += [f"## `{name}`", ""]
    if described:
        out += [textwrap.dedent(described).strip(), ""]
    if len(_options(parser)) > 2:
        out += [*_options(parser), ""]
    for sub in subs:
        helps = {a.dest: a.help or "" for a in sub._choices_actions}
        for child_name, child in sub.choices.items():
            _walk(child, f"{name} {child_name}", out, helps.get(child_name, ""))


def render() -> str:
    out = [INTRO]
    _walk(build_parser(), "symflow", out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
