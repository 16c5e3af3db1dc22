"""The command line and atomic outputs."""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from unfoldkit.experiments.arguments import int_at_least, output_folder
from unfoldkit.experiments.cli import main
from unfoldkit.experiments.figures import classical_rates, lista_theory, pep_learned_steps
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


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("unfoldkit: error:") and len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def no_work(monkeypatch):
    """Every figure's ``reproduce`` fails the test if called: a bad --out must be found before any work."""
    for module in (classical_rates, lista_theory, pep_learned_steps):
        monkeypatch.setattr(module, "reproduce", lambda *a, **k: pytest.fail("work started before --out was checked"))


def test_output_below_a_file_is_a_one_line_error(tmp_path, capsys, no_work):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["reproduce", "classical-rates", "--quick", "--out", str(blocker / "sub"), "--no-progress"])
    assert code == 2
    err = _one_line_error(capsys)
    assert f"--out {blocker / 'sub'}: cannot create this folder" in err and "give a folder" in err


def test_output_that_is_a_file_is_a_one_line_error(tmp_path, capsys, no_work):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["reproduce", "pep-learned-steps", "--quick", "--out", str(blocker)]) == 2
    assert f"--out {blocker}: exists and is not a folder" in _one_line_error(capsys)
    assert blocker.read_text() == "x"


def test_unwritable_output_is_found_before_any_work(tmp_path, capsys, no_work, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # the writability probe (root may write anywhere)
    assert main(["reproduce", "pep-learned-steps", "--quick", "--out", str(tmp_path)]) == 2
    err = _one_line_error(capsys)
    assert f"--out {tmp_path}: cannot write files in this folder (Permission denied)" in err


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs /sys/kernel (sysfs: no one, root included, "
                                                                 "can create files there)")
def test_sysfs_output_is_refused_before_any_work(capsys, no_work):
    assert main(["reproduce", "pep-learned-steps", "--quick", "--out", "/sys/kernel"]) == 2
    assert "--out /sys/kernel: cannot write files in this folder" in _one_line_error(capsys)


def test_output_folder_is_created_and_left_clean(tmp_path):
    target = output_folder("--out", tmp_path / "a" / "b")
    assert target.is_dir() and list(target.iterdir()) == []
    with pytest.raises(ValueError, match=r"^--dir .*: exists and is not a folder"):
        output_folder("--dir", __file__)


def test_existing_results_are_kept_without_force(tmp_path, capsys, monkeypatch):
    (tmp_path / "classical-rates.png").write_text("old png")
    (tmp_path / "classical-rates.json").write_text("{}")
    calls = []
    for module in (classical_rates, pep_learned_steps):
        def fake_reproduce(out, quick, seed, progress, name=module.NAME):
            calls.append((name, out))
            return {"verdicts": {}, "paths": [], "all_hold": True}

        monkeypatch.setattr(module, "reproduce", fake_reproduce)
    assert main(["reproduce", "classical-rates", "--quick", "--out", str(tmp_path)]) == 2
    err = _one_line_error(capsys)
    assert f"--out {tmp_path} already holds classical-rates.png, classical-rates.json; pass --force" in err
    assert calls == [] and (tmp_path / "classical-rates.png").read_text() == "old png"
    # another figure into the same folder is fine, and --force overwrites
    assert main(["reproduce", "pep-learned-steps", "--quick", "--out", str(tmp_path)]) == 0
    assert main(["reproduce", "classical-rates", "--quick", "--out", str(tmp_path), "--force"]) == 0
    assert calls == [("pep-learned-steps", tmp_path), ("classical-rates", tmp_path)]


@pytest.mark.parametrize("minimum, text, message", [
    (0, "-1", "expected a non-negative integer, got '-1'"), (1, "-3", "expected a positive integer, got '-3'"),
    (1, "0", "expected a positive integer, got '0'"), (3, "2", "expected an integer >= 3, got '2'"),
    (1, "x", "expected a positive integer, got 'x'")])
def test_integer_messages_say_what_is_accepted(minimum, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=f"^{message}$"):
        int_at_least(minimum)(text)
    assert int_at_least(minimum)(str(minimum)) == minimum


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
