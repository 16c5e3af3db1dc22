"""The light commands stay light: `unfoldkit --help`, `unfoldkit list` and every command's own --help import
neither torch nor the solvers (checked in a fresh interpreter, an assertion on sys.modules, not a timing:
benchmarks/startup.py measures the time); the figure registry matches the figure modules it stands for."""
from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from unfoldkit.experiments.commands import COMMANDS
from unfoldkit.experiments.figures import FIGURES

HEAVY = ("torch", "numpy", "scipy", "cvxpy", "PEPit", "matplotlib", "celer")

_PROBE = """
import contextlib, io, sys
from unfoldkit.experiments.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        status = main(sys.argv[1:])
    except SystemExit as stop:
        status = stop.code
print(status, *sorted(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize("argv", [["--help"], ["list"], *([c.NAME, "--help"] for c in COMMANDS)], ids=" ".join)
def test_light_commands_import_no_heavy_module(argv):
    done = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), *argv],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    status, *imported = done.stdout.split()
    assert status == "0"
    assert imported == [], f"unfoldkit {' '.join(argv)} imported {imported}"


def test_figure_registry_matches_its_modules():
    for name, figure in FIGURES.items():
        module = importlib.import_module(figure.module_name)
        assert (name, figure.NAME, figure.DESCRIPTION) == (module.NAME, module.NAME, module.DESCRIPTION)
        assert figure.module is module and callable(module.reproduce)


def test_startup_benchmark_writes_its_table(tmp_path, capsys):
    from benchmarks import startup

    out = tmp_path / "startup.json"
    assert startup.main(["--repeats", "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc["results"]) == set(startup.commands())
    for label in startup.LIGHT:
        row = doc["results"][label]
        assert len(row["times_s"]) == 1 and row["median_s"] > 0 and isinstance(row["under_target"], bool)
    assert "unfoldkit list" in capsys.readouterr().out
    assert startup.main(["--repeats", "0"]) == 2
    assert startup.main(["--repeats", "1", "--out", str(out)]) == 2  # an earlier run's file: only with --force
    assert "--force" in capsys.readouterr().err


def test_version_is_the_installed_distributions():
    import importlib.metadata

    import unfoldkit

    assert unfoldkit.__version__ == importlib.metadata.version("unfoldkit")
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        unfoldkit.nope  # noqa: B018
