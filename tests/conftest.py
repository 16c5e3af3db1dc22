"""Test configuration: hypothesis profile from $HYPOTHESIS_PROFILE (ci | dev | stress; default dev), and the
set-up of the documented blocks: every ```python block of README.md and docs/*.md is a test
(pytest-markdown-docs, enabled by ``--markdown-docs`` in pyproject.toml; README.md, "Tests")."""
from __future__ import annotations

import os
import re
import tempfile

import pytest

from unfoldkit.proofs_check.profiles import load_profile

load_profile()

#: the exact-coherence cache (unrolled/models/alista_weights.py) of the test run: a temporary folder, so that
#: tests never write into the user's ~/.cache
os.environ.setdefault("UNFOLDKIT_COHERENCE_CACHE", tempfile.mkdtemp(prefix="unfoldkit-coherence-"))

#: the environment variable a long documented block reads, in one shown line, to choose its small settings
DOCS_SMALL = "UNFOLDKIT_DOCS_SMALL"
#: a block that trains a model is long as written; without the small-setting line it is skipped, saying why
_TRAINS = re.compile(r"\btrain\(")


class MarkdownBlocks:
    """The documented blocks' set-up. Registered as a plugin (``pytest_configure`` below) rather than written as
    conftest fixtures, which would reach only the tests under tests/, not README.md and docs/*.md."""

    @pytest.fixture(autouse=True)
    def _documented_block(self, request: pytest.FixtureRequest) -> None:
        """Each block runs in its own temporary folder (the files it writes land there) with
        UNFOLDKIT_DOCS_SMALL=1, unless the environment sets it (UNFOLDKIT_DOCS_SMALL=0: as written)."""
        if request.node.get_closest_marker("markdown-docs") is None:
            return
        monkeypatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setenv(DOCS_SMALL, os.environ.get(DOCS_SMALL, "1"))
        monkeypatch.chdir(request.getfixturevalue("tmp_path"))

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            code = getattr(item, "code", "")
            if item.get_closest_marker("markdown-docs") and _TRAINS.search(code) and DOCS_SMALL not in code:
                item.add_marker(pytest.mark.skip(
                    reason=f"this block trains a model at the size written (hours on 2 cores) and has no "
                           f"small-setting line reading {DOCS_SMALL} (README.md, 'Tests')"))


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(MarkdownBlocks(), "unfoldkit-documented-blocks")
