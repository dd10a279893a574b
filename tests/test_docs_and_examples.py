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
# Examples whose quick mode a dedicated test already runs and checks the outputs of; running them
# here again would only double the suite's time. The test below keeps this list honest.
OWN_TEST = {
    "cnf_two_moons.py": "test_cnf_example.py",
    "custom_double_well.py": "test_custom_system_example.py",
    "liouville_transport.py": "test_cnf_example.py",
    "poincare_sections.py": "test_diagnostics_report.py",
    "simulate_dataset.py": "test_data_cli.py",
    "sympflow_oscillator.py": "test_learners_examples.py",
    "sympflow_henon_heiles.py": "test_learners_examples.py",
}
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


def test_examples_skipped_here_are_run_by_their_own_test():
    for name, test in OWN_TEST.items():
        assert (ROOT / "examples" / name).exists(), f"OWN_TEST names a missing example {name}"
        source = (ROOT / "tests" / test).read_text()
        assert Path(name).stem in source and "--quick" in source, f"{test} does not run {name} --quick"


@pytest.mark.parametrize("script", [p for p in EXAMPLES if p.name not in OWN_TEST], ids=lambda p: p.name)
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


def test_cli_reference_page_matches_the_parsers():
    from symflow.cli.reference import render

    page = (ROOT / "docs" / "cli.md").read_text()
    assert page == render(), "docs/cli.md is stale: run `python -m symflow.cli.reference > docs/cli.md`"
