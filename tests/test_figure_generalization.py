"""The generalization figure and its sweep on a tiny configuration, through the command line (``reproduce
generalization --quick`` with QUICK made tiny): the files are written, every config has a row with its
measured risks and bounds (the covering bound "not covered" with its reason for ista-correction), every bound
lies above the measured risk, an interrupted run continues where it stopped, an earlier figure is kept
without --force; the sweep's own resume / force rules, its training set, a failed config and its command
line's one-line errors."""
from __future__ import annotations

import json
import math

import pytest

from unfoldkit.experiments import generalization as gen
from unfoldkit.experiments.cli import main
from unfoldkit.experiments.figures import FIGURES
from unfoldkit.experiments.figures import generalization as fig
from unfoldkit.experiments.io import read_json

TINY = gen.SweepSettings(families=("ista-learned-step", "alista", "ista-correction"), ks=(2, 3), ms=(16, 64),
                         seeds=(0,), k_ref=3, m_ref=64, problem_m=8, problem_n=16, train_steps=12, batch_size=16,
                         val_size=32, test_size=400, mc_samples=10, mc_batch=16, posterior_draws=2,
                         posterior_test_size=100, bootstrap=100)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("generalization")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fig, "QUICK", TINY)
        code = main(["reproduce", "generalization", "--quick", "--out", str(out), "--no-progress"])
    return out, code


def test_cli_writes_the_figure_and_every_row(tiny_run):
    out, code = tiny_run
    assert code == 0
    for suffix in ("png", "pdf", "json"):
        assert (out / f"generalization.{suffix}").stat().st_size > 0
    data = read_json(out / "generalization.json")
    assert data["mode"] == "quick" and data["config"] == TINY.to_dict() and data["all_hold"] is True
    keys = {r["key"] for r in data["rows"]}
    assert keys == {gen.config_key(*c) for c in gen.configs(TINY)}
    # cross grid: every m at K = k_ref, every K at m = m_ref
    assert len(keys) == len(TINY.families) * 3
    sweep = read_json(out / gen.RESULT)
    assert sweep["status"] == "done" and set(sweep["rows"]) == keys
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_rows_have_measured_gap_and_bounds(tiny_run):
    out, _ = tiny_run
    data = read_json(out / "generalization.json")
    for r in data["rows"]:
        assert 0 <= r["train_risk"] <= 1 and 0 <= r["test_risk"] <= 1
        assert r["gap"] == pytest.approx(r["test_risk"] - r["train_risk"])
        assert r["gap_ci"][0] <= r["gap_ci"][1] and r["m_test"] == TINY.test_size
        lo, hi = r["test_interval"]
        assert lo <= r["test_risk"] <= hi
        pac = r["bounds"]["pac-bayes-kl"]
        assert pac["status"] in ("vacuous", "non-vacuous") and 0 < pac["value"] <= 1.0 + 1e-12
        assert pac["value"] >= pac["empirical"] and pac["d"] == r["d"]
        assert pac["prior"].startswith("constructor" if r["family"] == "alista" else "init")
        assert r["bounds"]["trivial"]["value"] == TINY.clip and r["bounds"]["trivial"]["status"] == "vacuous"
        cov = r["bounds"]["covering"]
        if r["family"] == "ista-correction":
            assert cov["status"] == "not covered" and "ista-correction" in cov["reason"] and cov["value"] is None
        else:
            assert cov["status"] in ("vacuous", "non-vacuous") and cov["value"] >= cov["empirical"]
            assert (cov["status"] == "vacuous") == (cov["value"] >= TINY.clip)
        assert r["training"]["restore_best"] is False and r["training"]["epochs"] >= 1
    verdicts = data["verdicts"]
    assert verdicts["ista-correction covering >= measured risk"]["state"] == "not applicable"
    assert all(v["holds"] for v in verdicts.values())


def test_interrupted_run_continues_and_force_is_needed_afterwards(tiny_run, monkeypatch, capsys):
    out, _ = tiny_run
    before = (out / "generalization.json").read_bytes()
    assert main(["reproduce", "generalization", "--quick", "--out", str(out)]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert (out / "generalization.json").read_bytes() == before
    # an interrupted run: no figure yet, one row missing from the sweep file -> only that row is computed
    resumed = out / "resumed"
    resumed.mkdir()
    doc = read_json(out / gen.RESULT)
    dropped = sorted(doc["rows"])[0]
    del doc["rows"][dropped]
    (resumed / gen.RESULT).write_text(json.dumps(doc))
    calls = []
    real = gen.run_config

    def counting(settings, family, k, m, seed):
        calls.append(gen.config_key(family, k, m, seed))
        return real(settings, family, k, m, seed)

    monkeypatch.setattr(gen, "run_config", counting)
    monkeypatch.setattr(fig, "QUICK", TINY)
    assert main(["reproduce", "generalization", "--quick", "--out", str(resumed), "--no-progress"]) == 0
    assert calls == [dropped]
    # with --force (the figure exists now) everything is recomputed
    calls.clear()
    assert main(["reproduce", "generalization", "--quick", "--out", str(resumed), "--no-progress", "--force"]) == 0
    assert sorted(calls) == sorted(gen.config_key(*c) for c in gen.configs(TINY))
    assert FIGURES["generalization"].DESCRIPTION == fig.DESCRIPTION


def test_plot_handles_several_seeds_and_a_refused_bound(tiny_run):
    out, _ = tiny_run
    data = read_json(out / "generalization.json")
    rows = data["rows"]
    extra = []
    for r in rows:
        r2 = json.loads(json.dumps(r))
        r2["seed"] = 1
        r2["test_risk"] *= 1.1
        extra.append(r2)
    for r in rows + extra:
        if r["family"] == "alista":
            r["bounds"]["covering"] = {"status": "refused", "value": None, "reason": "alista: negative threshold"}
    data["rows"] = rows + extra
    data["config"]["seeds"] = [0, 1]
    fig.plot(data).savefig(out / "variant.png")
    assert (out / "variant.png").stat().st_size > 0


def test_training_set_is_the_trainers():
    from unfoldkit.unrolled.problems.sparse import SparseRecovery
    from unfoldkit.unrolled.training.trainer import TrainConfig, Trainer

    problem = SparseRecovery(m=8, n=16, seed=0)
    model = gen.build_model("lista", problem, 2)
    trainer = Trainer(model, problem, "end-to-end", TrainConfig(train_size=30, seed=4, progress=False))
    trainer._data(model.model_dtype)
    mine = gen.training_set(problem, 30, 4)
    assert mine.y.dtype == mine.x.dtype == __import__("torch").float64
    assert (mine.y.float() == trainer.train_set.y).all() and (mine.x.float() == trainer.train_set.x).all()
    test = gen.test_set(problem, 30, 4)
    assert not (test.y == mine.y).all()


def test_sweep_resume_force_and_failed_rows(tmp_path, monkeypatch):
    settings = gen.SweepSettings(**{**TINY.__dict__, "families": ("ista-learned-step",), "ks": (2,), "ms": (16,),
                                    "k_ref": 2, "m_ref": 16})
    real = gen.run_config
    state = {"fail": True}

    def flaky(cfg, family, k, m, seed):
        if state["fail"]:
            raise RuntimeError("boom")
        return real(cfg, family, k, m, seed)

    monkeypatch.setattr(gen, "run_config", flaky)
    doc = gen.sweep(settings, tmp_path, progress=False)
    key = gen.config_key("ista-learned-step", 2, 16, 0)
    assert doc["rows"][key]["status"] == "failed" and "RuntimeError: boom" in doc["rows"][key]["error"]
    assert doc["status"].startswith("failed rows")
    with pytest.raises(ValueError, match="--resume continues it, --force replaces it"):
        gen.sweep(settings, tmp_path, progress=False)
    other = gen.SweepSettings(**{**settings.__dict__, "train_steps": 13})
    with pytest.raises(ValueError, match="other settings"):
        gen.sweep(other, tmp_path, resume=True, progress=False)
    state["fail"] = False
    doc = gen.sweep(settings, tmp_path, resume=True, progress=False)  # the failed row is retried
    assert doc["status"] == "done" and doc["rows"][key]["status"] == "done"
    rows = []
    doc = gen.sweep(settings, tmp_path, resume=True, progress=False, on_row=rows.append)
    assert rows == [] and doc["status"] == "done"  # nothing left to do
    doc = gen.sweep(settings, tmp_path, force=True, progress=False, on_row=rows.append)
    assert len(rows) == 1 and math.isfinite(doc["rows"][key]["measured"]["gap"])


@pytest.mark.parametrize("argv, fragment", [
    (["--backend", "spark"], "invalid choice"),
    (["--families", "lista,bogus"], "families must be among"),
    (["--ms", "4"], "every m_train must be >= 8"),
    (["--ks", "a"], "--ks must be comma-separated integers"),
    (["--resume", "--force"], "not allowed with argument"),
])
def test_sweep_command_line_errors_are_one_line(argv, fragment, tmp_path, capsys):
    assert gen.main([*argv, "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err


@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_parallel_backends_give_the_serial_rows(backend, tiny_run):
    if backend == "dask":
        pytest.importorskip("distributed", reason="the dask extra (pip install 'unfoldkit[dask]') is not installed")
    out, _ = tiny_run
    serial = {r["key"]: r for r in read_json(out / gen.RESULT)["rows"].values() if r["family"] == "alista"}
    settings = gen.SweepSettings(**{**TINY.__dict__, "families": ("alista",)})
    rows = list(gen.run_configs(settings, gen.configs(settings), workers=2, backend=backend, progress=False))
    assert {r["key"] for r in rows} == set(serial)
    for r in rows:  # seeded and single-threaded: the same numbers in another process
        s = serial[r["key"]]
        assert r["measured"]["gap"] == s["measured"]["gap"] and r["measured"]["gap_ci"] == s["measured"]["gap_ci"]
        assert r["bounds"]["pac-bayes-kl"]["value"] == s["bounds"]["pac-bayes-kl"]["value"]
        assert r["bounds"]["covering"]["value"] == s["bounds"]["covering"]["value"]
