"""Issue 18 end to end: `unfoldkit train --certify schedule|safeguard|lista` writes a certificate that holds,
`unfoldkit check` recomputes it from the checkpoint's metadata (and says "holds"), bad combinations exit 2 with
one line, and the `certified-training` figure on a tiny configuration has every verdict holding."""
from __future__ import annotations

import json
from dataclasses import replace

import matplotlib
import numpy as np
import pytest

from unfoldkit.experiments.cli import main
from unfoldkit.experiments.figures import certified_training as fig_mod
from unfoldkit.unrolled.training import load_checkpoint

matplotlib.use("Agg")

COMMON = ["--layers", "4", "--epochs", "2", "--steps-per-epoch", "5", "--batch-size", "32", "--val-size", "128",
          "--no-progress", "--threads", "1"]
RUNS = {
    "schedule": ["gd-unfolded", "--problem", "least-squares", "--m", "20", "--n", "12", "--kappa", "10",
                 "--lr", "0.05"],
    "safeguard": ["lista-cp", "--m", "20", "--n", "40", "--snr-db", "40", "--lam", "0.05", "--lr", "0.003"],
    "lista": ["lista-cp", "--m", "32", "--n", "48", "--lr", "0.001", "--class-s", "1"],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = {}
    for mech, args in RUNS.items():
        d = tmp_path_factory.mktemp(mech) / "run"
        assert main(["train", *args, *COMMON, "--certify", mech, "--out", str(d)]) == 0
        out[mech] = d
    return out


@pytest.mark.parametrize("mech", list(RUNS))
def test_train_certify_writes_a_certificate_that_holds(trained, mech):
    d = trained[mech]
    cert = json.loads((d / "certificate.json").read_text())
    assert cert["mechanism"] == mech and cert["holds"] is True
    meta = load_checkpoint(d / "model.pt").training["certify"]
    assert meta["mechanism"] == mech and meta["holds"] is True
    if mech == "safeguard":
        assert all(r["bound_holds"] for r in cert["runs"].values())
    if mech == "schedule":
        c = cert["certificate"]
        assert c["holds"] and all(u <= e * (1 + 1e-6) for u, e in zip(c["upper"], c["envelope"]))


@pytest.mark.parametrize("mech", list(RUNS))
def test_check_recomputes_the_certificate(trained, mech, tmp_path):
    out = tmp_path / "report"
    assert main(["check", str(trained[mech] / "model.pt"), "--out", str(out), "--quick", "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["certified"]["applies"] and report["certified"]["holds"]
    rows = [r for r in report["verdicts"] if r["section"] == "certified"]
    assert len(rows) == 1 and rows[0]["state"] == "holds"
    assert "Certified training" in (out / "report.md").read_text()


@pytest.mark.parametrize("args, words", [
    (["lista", "--certify", "schedule"], "--certify schedule covers"),
    (["lista-cp", "--snr-db", "30", "--certify", "lista"], "noiseless"),
    (["lista", "--certify", "lista"], "W_2 is not tied"),
    (["alista", "--certify", "lista", "--class-s", "40"], "outside ALISTA Thm 1"),
    (["gd-unfolded", "--problem", "least-squares", "--certify", "safeguard"], "needs --problem sparse"),
    (["gd-unfolded", "--problem", "least-squares", "--certify", "schedule", "--envelope-factor", "-1"],
     "--envelope-factor"),
])
def test_bad_certify_arguments_exit_2_with_one_line(args, words, tmp_path, capsys):
    small = ["--m", "20", "--n", "40", "--layers", "3", "--epochs", "1", "--steps-per-epoch", "2", "--no-progress"]
    if "least-squares" in args:
        small = ["--m", "20", "--n", "12", "--layers", "3", "--epochs", "1", "--steps-per-epoch", "2", "--no-progress"]
    assert main(["train", *args, *small, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1


TINY = replace(fig_mod.QUICK, ls_m=20, ls_n=12, kappa=10.0, ls_layers=4, ls_epochs=4, ls_steps=5,
               sg_m=20, sg_n=40, sg_layers=4, sg_epochs=2, sg_steps=10, cl_m=32, cl_n=48, cl_layers=4,
               cl_epochs=2, cl_steps=5, test_size=64)


def test_figure_on_a_tiny_configuration(tmp_path):
    """Every verdict (certificates recomputed from scratch; the safeguard bound on every sample) holds, the
    numbers are finite and the figure is written. The unconstrained models are measured, not judged."""
    result = fig_mod.compute(TINY, seed=0)
    assert result["all_hold"], {k: v for k, v in result["verdicts"].items() if not v["holds"]}
    assert set(result["lista"]["models"]) == {"alista unconstrained", "alista certified",
                                              "lista-cp unconstrained", "lista-cp certified"}
    for m in result["lista"]["models"].values():
        assert np.all(np.isfinite(m["nmse_db"])) and len(m["nmse_db"]) == TINY.cl_layers + 1
    sched = result["schedule"]
    assert sched["holds"]["certified"] and np.all(np.isfinite(sched["average_case"]["certified"]))
    fig = fig_mod.plot(result)
    from unfoldkit.experiments.figures.output import write_figure

    paths = write_figure(result, fig, tmp_path, fig_mod.NAME, quick=True)
    assert all((tmp_path / p).exists() for p in paths)


def test_stress_target_of_a_safeguarded_checkpoint_checks_the_safeguard(trained):
    """`unfoldkit stress MODEL.pt` on a --certify safeguard checkpoint adds the safeguard's bound, run under a
    drawn dictionary mismatch: it holds (the theorem), and the same verdict flags a trace whose residual
    exceeds its bound (so the check can fail)."""
    import torch

    from unfoldkit.proofs_check.certified_safeguard import safeguard_verdict
    from unfoldkit.proofs_check.stress_targets import get_target

    target = get_target(str(trained["safeguard"] / "model.pt"))
    assert "safeguard-residual" in target.description
    for eps, seed in ((0.0, 1), (1.5, 2)):
        verdicts = target.evaluate({"data_seed": seed, "eps": eps, "s": 2, "B": 1.0})
        guard = [v for v in verdicts if v.bound.name == "safeguard-residual"]
        assert len(guard) == 1 and guard[0].holds
    from unfoldkit.unrolled.safeguard import SafeguardedModel
    from unfoldkit.unrolled.training import load_model

    model = load_model(trained["safeguard"] / "model.pt").to(torch.float64)
    trace = SafeguardedModel(model).run(model.problem.sample(8, rng=0).y.double())
    trace.residuals[-1] = trace.bound[-1] * 1.01 + 1e-3 * trace.residuals[0]   # tamper: above the bound
    assert not safeguard_verdict(trace).holds


def test_train_certify_schedule_with_momentum(tmp_path):
    """fista-unfolded (learned steps and momentum, threshold = lam x step: PEP method "fista") trains certified
    from the command line, and `check` recomputes the certificate with its momentum."""
    out = tmp_path / "fista"
    args = ["fista-unfolded", "--m", "20", "--n", "30", "--lam", "0.1", "--lr", "0.05", *COMMON]
    assert main(["train", *args, "--certify", "schedule", "--out", str(out)]) == 0
    cert = json.loads((out / "certificate.json").read_text())
    assert cert["holds"] and cert["settings"]["method"] == "fista" and cert["certificate"]["momentum"] is not None
    report = tmp_path / "report"
    assert main(["check", str(out / "model.pt"), "--out", str(report), "--quick", "--no-progress"]) == 0
    assert json.loads((report / "report.json").read_text())["certified"]["holds"]
