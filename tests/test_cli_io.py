"""The command line and atomic outputs."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from unfoldkit.experiments.cli import main
from unfoldkit.experiments.io import atomic_write, read_json, write_json


def test_list_names_classical_rates(capsys):
    assert main(["list"]) == 0
    assert "classical-rates" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["reproduce", "nope"], ["reproduce", "classical-rates", "--seed", "-2"],
                                  ["frobnicate"], []])
def test_bad_arguments_exit_2_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("unfoldkit") and "error" in err and len(err.splitlines()) == 1


def test_help_is_clear():
    out = subprocess.run([sys.executable, "-m", "unfoldkit.experiments.cli", "reproduce", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "--quick" in out and "--out" in out and "classical-rates" in out


def test_reproduce_classical_rates_quick(tmp_path, capsys):
    assert main(["reproduce", "classical-rates", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    for suffix in ("png", "pdf", "json"):
        assert (tmp_path / f"classical-rates.{suffix}").stat().st_size > 0
    data = read_json(tmp_path / "classical-rates.json")
    assert data["all_hold"] is True and data["mode"] == "quick"
    # the Huber instance touches the tight Drori-Teboulle bound (float64 round-off only)
    assert data["huber"]["max_rel_deviation_from_tight"] < 1e-12
    assert data["verdicts"]["gd-convex-tight (Huber instance)"]["tightness"] == pytest.approx(1.0, abs=1e-9)
    for name, v in data["verdicts"].items():
        assert v["holds"], name
    assert data["bounds"]["gd-convex-tight"]["source"].startswith("Drori & Teboulle 2014")
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    assert "all bounds hold" in capsys.readouterr().out


def test_unwritable_output_is_a_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["reproduce", "classical-rates", "--quick", "--out", str(blocker / "sub"), "--no-progress"])
    assert code == 2
    assert capsys.readouterr().err.startswith("unfoldkit: error:")


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"v": 1})

    def boom(path):
        path.write_text("partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert read_json(target) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_json_handles_nan_inf_numpy(tmp_path):
    write_json(tmp_path / "b.json", {"a": np.array([1.0, math.nan, math.inf]), "b": np.int64(3),
                                     "c": np.bool_(True)})
    assert json.loads((tmp_path / "b.json").read_text()) == {"a": [1.0, None, "inf"], "b": 3, "c": True}
