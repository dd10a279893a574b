"""The docs stand alone: no pointers to files outside the repository, links that resolve, and the HDF5
format documented in the repository for every dataset and attribute a simulated file carries."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import pytest

from symflow.data import schema, simulate

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "datasets" / "README.md", ROOT / "benchmarks" / "README.md"]
PAGES += sorted((ROOT / "docs").glob("*.md"))
SOURCES = [
    p
    for folder in ("symflow", "integrators", "systems", "examples", "benchmarks")
    for p in sorted((ROOT / folder).rglob("*.py"))
]
LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("path", PAGES + SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_points_at_documents_users_do_not_have(path):
    text = path.read_text()
    assert "DESIGN.md" not in text, f"{path.name} refers to DESIGN.md, which is not part of the repository"
    assert "/work/shared" not in text and "shared/seeds" not in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_in_the_docs_resolve(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_the_format_reference_documents_every_dataset_and_attribute_of_a_simulated_file(tmp_path):
    reference = (ROOT / "datasets" / "README.md").read_text()
    out = tmp_path / "x.h5"
    simulate("pendulum", 3, 1.0, output=out, n_obs=4, noise=0.01, progress=False)
    with h5py.File(out, "r") as f:
        names = set(f.keys()) | set(f.attrs.keys())
    names |= {*schema.REQUIRED_DATASETS, *schema.OPTIONAL_DATASETS}
    undocumented = sorted(n for n in names if f"`{n}`" not in reference)
    assert not undocumented, f"datasets/README.md does not document {undocumented}"
    for page in ("diagnostics.md", "cnf.md", "data.md"):
        assert "datasets/README.md" in (ROOT / "docs" / page).read_text()
