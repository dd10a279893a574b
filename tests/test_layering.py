"""The one-way layering integrators ← systems ← symflow, checked on the source text."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path, package: str) -> list[str]:
    """Absolute names of every module imported by ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    parts = package.split(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + 1]
                names.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.append(node.module)
    return names


def layer_violations(folder: str, package: str, allowed: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        sub = path.relative_to(ROOT / folder).with_suffix("").parts
        pkg = ".".join([package, *sub[:-1]])
        for name in imported_modules(path, pkg):
            if (name == "symflow" or name.startswith("symflow.")) and not name.startswith(allowed):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
            if name.split(".")[0] in ("integrators", "systems"):
                bad.append(f"{path.relative_to(ROOT)} imports top-level {name}; use symflow.{name}")
    return bad


@pytest.mark.parametrize(
    ("folder", "package", "allowed"),
    [
        ("integrators", "symflow.integrators", ("symflow.integrators",)),
        ("systems", "symflow.systems", ("symflow.integrators", "symflow.systems")),
    ],
)
def test_lower_layers_never_import_upward(folder, package, allowed):
    assert layer_violations(folder, package, allowed) == []


def test_layering_check_catches_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "integrators"
    fake.mkdir()
    (fake / "bad.py").write_text("from symflow.systems import get_system\nfrom ..learners import x\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = layer_violations("integrators", "symflow.integrators", ("symflow.integrators",))
    assert len(found) == 2
