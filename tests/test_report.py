"""The guarantee report of ``unfoldkit check`` (experiments/report): one report per model family, a black
box, a declared module whose coupling is broken (exit code 1), and the three renderings."""
from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

from unfoldkit.experiments.report import CheckInputs, build_report, report_exit_code, write_report
from unfoldkit.experiments.report.build import LIPSCHITZ_OPTIONS, LOWER_OPTIONS, MATCH_CAP, classical_match_depth
from unfoldkit.experiments.report.render import render_md
from unfoldkit.proofs_check.stress_targets import _certified_lista_cp, _lista_instance
from unfoldkit.theory.lipschitz import lipschitz_bounds
from unfoldkit.unrolled.metrics import LayerNMSE
from unfoldkit.unrolled.models import MODELS
from unfoldkit.unrolled.problems import SparseRecovery
from unfoldkit.unrolled.solvers import run_ista
from unfoldkit.unrolled.training.threads import limit_threads

K = 4


@pytest.fixture(scope="module")
def data():
    p = SparseRecovery(m=10, n=20, seed=0)
    return p, p.sample(24, rng=1), p.sample(24, rng=2)


def _model(family: str, p):
    if family == "alista-ss":  # support selection: discontinuous, no finite Lipschitz constant
        return MODELS["alista"](p, K, percent=0.1, max_percent=0.5)
    return MODELS[family].from_classical(p, K)


_cache: dict[str, dict] = {}


def _report(family: str, data) -> dict:
    if family not in _cache:
        p, test, train = data
        with limit_threads(1):
            inp = CheckInputs(p, test.y, test.x, model=_model(family, p), train_y=train.y, train_x=train.x,
                              source=f"test {family}")
            _cache[family] = build_report(inp, quick=True)
    return _cache[family]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for key in ("href", "src"):
            if key in a and tag != "img":
                self.links.append(a[key])

    def handle_data(self, d):
        self.text.append(d)


def _check_files(report: dict, tmp_path) -> None:
    paths = write_report(report, tmp_path)
    assert {"json", "md", "html"} <= set(paths)
    assert json.loads(paths["json"].read_text()) == json.loads(json.dumps(report))
    page = _Page()
    html_text = paths["html"].read_text()
    page.feed(html_text)
    page.close()
    assert page.imgs, "the report has figures"
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not page.links and "http://" not in html_text and "https://" not in html_text
    text = " ".join(page.text)
    md = paths["md"].read_text()
    for row in report["verdicts"]:
        assert row["state"] in ("holds", "fails", "not covered")
        for part in (row["check"], row["detail"]):
            assert part in text or part in " ".join(text.split())
            assert part.replace("|", "\\|") in md


@pytest.mark.parametrize("family", ["ista-learned-step", "lista-cp", "alista-ss", "fista-unfolded"])
def test_report_per_family(family, data, tmp_path):
    r = _report(family, data)
    _check_files(r, tmp_path)
    assert r["model"]["family"] == family.replace("-ss", "")
    assert r["model"]["num_layers"] == K
    assert {q["name"] for q in r["model"]["parameters"]}
    assert r["error"]["available"] and len(r["error"]["model"]["mean"]) == K + 1
    names = [row["check"] for row in r["verdicts"]]
    assert "Lipschitz constant" in names and "stress" in names
    assert report_exit_code(r) == r["exit_code"] == 0


def test_ista_learned_step_classical_holds(data):
    r = _report("ista-learned-step", data)
    states = {row["check"]: row["state"] for row in r["verdicts"]}
    assert states["ista-convex"] == states["pep-pgm-schedule"] == "holds"
    assert states["Lipschitz constant"] == "holds"
    assert r["pep"]["applies"]
    # classical-initialised: ISTA reaches the model's NMSE at equal depth
    assert r["error"]["match"]["results"]["ista"]["depth"] == K
    assert report_exit_code(r) == 0


def test_alista_support_selection_has_no_finite_constant(data):
    r = _report("alista-ss", data)
    row = next(x for x in r["verdicts"] if x["check"] == "Lipschitz constant")
    assert row["state"] == "not covered" and row["detail"].startswith("no finite constant: ")
    assert r["lipschitz"]["finite"] is False
    cov = next(x for x in r["verdicts"] if x["check"] == "generalization: covering")
    assert cov["state"] == "not covered"


def test_numbers_equal_the_api(data):
    p, test, _ = data
    r = _report("lista-cp", data)
    model = _model("lista-cp", p)
    with limit_threads(1):
        lb = lipschitz_bounds(model, **LIPSCHITZ_OPTIONS[True], lower_options=LOWER_OPTIONS[True], seed=0)
        traj = model.to(torch.float64).trajectory(test.y.double())
    best = [float(v) for v in lb.best_upper()]
    assert r["lipschitz"]["best_upper"] == pytest.approx(best, rel=1e-12)
    assert r["lipschitz"]["lower"] == pytest.approx([float(v) for v in lb.lower], rel=1e-12)
    assert r["error"]["model"]["mean"] == pytest.approx(LayerNMSE().add(traj.iterates, test.x).nmse(), rel=1e-12)
    ista = run_ista(p, test.y.double(), K)
    assert r["error"]["classical"]["ista"]["mean"] == pytest.approx(LayerNMSE().add(ista.iterates, test.x).nmse(),
                                                                    rel=1e-12)
    # the streamed classical run agrees with the solver
    target = LayerNMSE().add(ista.iterates[-1:], test.x).nmse()[0]
    m = classical_match_depth(p, test.y.double(), test.x, "ista", target * (1 + 1e-12), MATCH_CAP[True])
    assert m["depth"] == K


def test_black_box(data, tmp_path):
    p, test, train = data

    def fn(y: torch.Tensor) -> torch.Tensor:  # a user's ISTA, no declared architecture
        return run_ista(p, y.double(), K).iterates

    with limit_threads(1):
        r = build_report(CheckInputs(p, test.y, test.x, fn=fn, train_y=train.y, train_x=train.x, source="fn"),
                         quick=True)
    _check_files(r, tmp_path)
    assert r["model"]["kind"] == "black box" and r["model"]["num_layers"] == K
    states = {row["check"]: row["state"] for row in r["verdicts"]}
    assert states["theorems"] == "not covered" and states["Lipschitz constant"] == "not covered"
    assert r["lipschitz"]["lower"][-1] is not None and r["generalization"]["gap"]["m_test"] == 24
    assert report_exit_code(r) == 0


def test_planted_failure_broken_coupling(tmp_path):
    """A LISTA whose W2 != I - W1 A, declared as the certified LISTA-CP it was built from: exit code 1."""
    params = {"m": 10, "extra": 10, "s": 1, "B": 1.0, "K": K, "seed": 0, "data_seed": 0}
    problem, batch, weight, mu = _lista_instance(params)
    test = problem.sample(16, rng=3)
    cp = _certified_lista_cp(problem, weight, mu, params)
    broken = MODELS["lista"](problem, K, dtype=torch.float64)
    rng = np.random.default_rng(0)
    with torch.no_grad():
        broken.W1.copy_(torch.as_tensor(np.stack([weight.T] * K)))
        eye = np.eye(problem.n) - weight.T @ problem.A
        broken.W2.copy_(torch.as_tensor(eye[None] + rng.standard_normal((K - 1, problem.n, problem.n))))
        broken.threshold.copy_(cp.threshold)
    with limit_threads(1):
        good = build_report(CheckInputs(problem, test.y, test.x, model=cp, source="certified"), quick=True)
        bad = build_report(CheckInputs(problem, test.y, test.x, model=cp, fn=lambda y: broken(y, trajectory=True),
                                       source="declared lista-cp"), quick=True)
    assert report_exit_code(good) == 0
    assert any(r["state"] == "holds" and r["check"] == "lista-cp-recursion" for r in good["verdicts"])
    assert report_exit_code(bad) == 1
    fails = [r for r in bad["verdicts"] if r["state"] == "fails"]
    assert any(r["check"].startswith("declaration") for r in fails)
    assert any(r["check"] == "module vs lista-cp-recursion" for r in fails)
    assert all("layer" in r for r in fails)
    _check_files(bad, tmp_path)
    assert "fails" in render_md(bad)


def test_stress_counterexample_is_written(data, tmp_path, monkeypatch):
    """A stress run that finds a counterexample: the line fails, names the file, and write_report saves it."""
    from unfoldkit.proofs_check import stress_targets
    from unfoldkit.proofs_check.stress import load_counterexample

    p, test, _ = data
    # the planted LISTA target stands in for the family's own, so that the short run finds a violation
    monkeypatch.setitem(stress_targets.TARGETS, "lista", stress_targets.TARGETS["lista-uncoupled"])
    with limit_threads(1):
        r = build_report(CheckInputs(p, test.y, test.x, model=MODELS["lista"].from_classical(p, K)), quick=True)
    row = next(x for x in r["verdicts"] if x["check"] == "stress")
    assert row["state"] == "fails" and row["counterexample"] in row["detail"]
    assert report_exit_code(r) == 1
    paths = write_report(r, tmp_path)
    assert paths["counterexample"] == tmp_path / row["counterexample"]
    cex = load_counterexample(paths["counterexample"])
    assert cex["target"] == "lista" and cex["check"] == r["stress"]["counterexample"]["check"]


def test_checkpoint_is_stressed(data, tmp_path):
    from unfoldkit.unrolled.training.checkpoint import save_checkpoint

    p, test, _ = data
    model = _model("ista-learned-step", p)
    path = save_checkpoint(tmp_path / "ils.pt", model)
    with limit_threads(1):
        r = build_report(CheckInputs(p, test.y, test.x, model=model, source=str(path)), quick=True)
    assert r["stress"]["target"] == str(path) and r["stress"]["examples"] > 0
    assert next(x for x in r["verdicts"] if x["check"] == "stress")["state"] == "holds"
