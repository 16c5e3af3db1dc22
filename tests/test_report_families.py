"""`unfoldkit check` on every model family (issue 14): a classical-initialised checkpoint of each family in
``MODELS`` (K = 3), saved with ``save_checkpoint`` and read back through ``experiments.report.inputs`` as the
CLI does, gives exit code 0; every verdict line is in one of the three states; the JSON round-trips and the
HTML holds every verdict line. And a checkpoint written by `unfoldkit train` itself, checked through the CLI."""
from __future__ import annotations

import html
import json

import pytest

from unfoldkit.experiments.cli import main
from unfoldkit.experiments.report import CheckInputs, build_report, report_exit_code, write_report
from unfoldkit.experiments.report.build import STATES
from unfoldkit.experiments.report.inputs import resolve_inputs
from unfoldkit.unrolled.models import MODELS
from unfoldkit.unrolled.problems import SparseRecovery
from unfoldkit.unrolled.problems.quadratic import LeastSquares
from unfoldkit.unrolled.training import save_checkpoint

K = 3
FAMILIES = sorted(MODELS)


def _problem(family: str):
    if family == "gd-unfolded":
        return LeastSquares(m=10, n=20, kappa=None, seed=0)
    return SparseRecovery(m=10, n=20, seed=0)


def _model(family: str, problem):
    if family == "ista-correction":
        return MODELS[family].from_classical(problem, K, hidden=4)
    return MODELS[family].from_classical(problem, K)


def test_every_family_is_covered():
    assert {"ista-learned-step", "lista", "lista-cp", "alista", "gd-unfolded"} <= set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_classical_checkpoint_report(family, tmp_path):
    problem = _problem(family)
    path = save_checkpoint(tmp_path / "model.pt", _model(family, problem), problem=problem)
    inp = CheckInputs(**resolve_inputs(checkpoint=str(path), test_size=24, quick=True, seed=0))
    assert inp.model is not None and inp.model.num_layers == K
    report = build_report(inp, quick=True, seed=0)
    bad = [(r["check"], r["detail"]) for r in report["verdicts"] if r["state"] == "fails"]
    assert report_exit_code(report) == report["exit_code"] == 0, bad
    assert report["verdicts"]
    for row in report["verdicts"]:
        assert row["state"] in STATES == ("holds", "fails", "not covered")
    paths = write_report(report, tmp_path / "report")
    assert json.loads(paths["json"].read_text()) == json.loads(json.dumps(report))
    page = " ".join(html.unescape(paths["html"].read_text()).split())
    for row in report["verdicts"]:
        for part in (row["check"], row["detail"], row["state"]):
            assert " ".join(part.split()) in page, (family, part)


def test_trained_checkpoint_through_the_cli(tmp_path, capsys):
    run = tmp_path / "run"
    train = ["train", "ista-learned-step", "--problem", "sparse", "--m", "20", "--n", "40", "--sparsity", "0.1",
             "--lam", "0.05", "--layers", "3", "--epochs", "2", "--steps-per-epoch", "5", "--batch-size", "32",
             "--val-size", "128", "--lr", "0.01", "--no-progress", "--out", str(run)]
    assert main(train) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    flags = capsys.readouterr().out
    for flag in ("--out", "--quick", "--no-progress"):
        assert flag in flags
    out = tmp_path / "report"
    status = main(["check", str(run / "model.pt"), "--out", str(out), "--quick", "--no-progress"])
    err = capsys.readouterr().err
    assert status in (0, 1), err
    assert {p.name for p in out.iterdir()} >= {"report.md", "report.html", "report.json"}
    report = json.loads((out / "report.json").read_text())
    assert report["exit_code"] == status
    assert all(r["state"] in STATES for r in report["verdicts"])
