"""The documentation runs: every ```python block of README.md and docs/*.md is collected as a test by the default
run (pytest-markdown-docs; small settings and a temporary folder from tests/conftest.py), none is switched off
with ``notest``; and the messages the docs quote read as they say (a failed assumption names what was measured,
an invalid PEP input shows a plain number)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from markdown_it import MarkdownIt

from unfoldkit.theory import lista
from unfoldkit.theory.pep import make_spec

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _python_fences(path: Path) -> list[list[str]]:
    """The info strings (split into words) of the python fences of a markdown file, parsed as the plugin does."""
    tokens = MarkdownIt("commonmark").parse(path.read_text(encoding="utf-8"))
    infos = [t.info.split() for t in tokens if t.type == "fence"]
    return [info for info in infos if info and info[0] in ("py", "python", "python3")]


def test_every_documented_python_block_runs_in_the_default_run(pytestconfig):
    assert pytestconfig.option.markdowndocs, "--markdown-docs must stay in pyproject's addopts"
    testpaths = pytestconfig.getini("testpaths")
    assert "README.md" in testpaths and "docs" in testpaths
    fences = {path.name: _python_fences(path) for path in DOCUMENTS}
    off = {name: len([f for f in infos if "notest" in f]) for name, infos in fences.items()}
    assert not any(off.values()), f"python blocks marked notest (every block runs): {off}"
    assert len(fences["README.md"]) >= 5 and sum(map(len, fences.values())) >= 8


def test_failed_no_false_positive_assumption_names_the_layer():
    mus, deltas = np.array([0.05, 0.04, 0.04]), np.array([0.1, 0.05, 0.0])
    holds = lista.model_recursion_bound(mus, deltas, np.full(3, 10.0), 2, 1.0).assumptions[0]
    fails = lista.model_recursion_bound(mus, deltas, np.array([10.0, 1e-6, 1e-6]), 2, 1.0).assumptions[0]
    assert holds.holds and holds.measured is None and "measured" not in str(holds).split(" (required")[0]
    assert not fails.holds and fails.measured == 1.0
    assert str(fails).startswith("learned thresholds theta^k >= mu_k e_k + c_k sigma at every layer "
                                 "(no false positives) FAILS: measured 1 (required no failing layer; measured = "
                                 "the first k with theta^k < mu_k e_k + c_k sigma")


def test_pep_error_shows_a_plain_number():
    with pytest.raises(ValueError, match=r"^steps must be > 0 at every layer, got -1\.0 at layer 1$"):
        make_spec(np.array([1.0, -1.0]), L=1.0)
