"""Every Python code block in the README and docs/ runs, and every example runs in --quick mode.

Code blocks are executed in order, page by page, sharing one namespace per page (so a page can build
up an example across blocks), in a temporary working directory. A block whose info string is
``python no-run`` is skipped (for shell-dependent or long snippets; keep those rare).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
BLOCK = re.compile(r"^```(python[^\n]*)\n(.*?)^```", re.S | re.M)


def python_blocks(page: Path) -> list[str]:
    return [code for info, code in BLOCK.findall(page.read_text()) if "no-run" not in info]


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name)
def test_every_python_block_in_the_docs_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("SYMFLOW_PROGRESS", "0")
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for i, code in enumerate(python_blocks(page)):
        try:
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
        except Exception as err:  # name the page and block in the failure
            raise AssertionError(f"{page.name}, code block {i} failed: {err!r}\n{code}") from err


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_every_example_runs_in_quick_mode(script, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "SYMFLOW_PROGRESS": "0", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(script), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, f"{script.name} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
