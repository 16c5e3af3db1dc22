"""benchmarks/generalization.py on a tiny grid (n = 16, K = 3, m in 16, 64; in this process): every family has
a row per m with its measured gap and bounds (covering "not covered" for ista-correction), the table has the
three sections and says the target is not measured, resume skips finished configs; the analysis on synthetic
rows (slopes, vacuity in d, the target's verdict); the command line's one-line errors."""
from __future__ import annotations

import json
import math

import pytest

import benchmarks.generalization as bench
from unfoldkit.experiments.benchmarking import UsageError, output_paths

TINY = bench.GenConfig(mode="tiny", ms=(16, 64), families=("ista-learned-step", "alista", "ista-correction"),
                       num_layers=3, problem_m=8, problem_n=16, train_steps=12, batch_size=16, val_size=32,
                       test_size=300, mc_samples=10, mc_batch=16, posterior_draws=2, posterior_test_size=100,
                       bootstrap=100)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    messages: list[str] = []
    doc = bench.run_benchmark(TINY, out, log=messages.append)
    return out, doc, messages


def test_every_family_every_m(tiny_run):
    out, _, messages = tiny_run
    json_path, table_path = output_paths(out, "generalization", "tiny")
    doc = json.loads(json_path.read_text())
    assert doc["benchmark"] == "generalization" and doc["config"] == TINY.to_dict() and doc["failed"] == {}
    assert len(doc["rows"]) == len(TINY.families) * len(TINY.ms) == len(messages)
    for r in doc["rows"].values():
        assert r["K"] == 3 and r["m_train"] in TINY.ms
        assert r["gap"] == pytest.approx(r["test_risk"] - r["train_risk"])
        assert r["bounds"]["pac-bayes-kl"]["value"] >= r["bounds"]["pac-bayes-kl"]["empirical"]
        if r["family"] == "ista-correction":
            assert r["bounds"]["covering"]["status"] == "not covered"
    table = table_path.read_text()
    assert "Target: ista-learned-step, m = 10000, n = 100, K = 10: not measured in this mode" in table
    assert "| alista | 6 | 16 | 0 |" in table  # d = 2K: one step and one threshold per layer
    assert "Slope in m" in table and "Vacuity in the parameter count d" in table
    an = doc["analysis"]
    assert an["slopes"]["ista-correction"]["covering"]["reason"] == "not covered"
    assert an["vacuity"]["covering"]["m_train"] == 64 and set(an["vacuity"]["covering"]["levels"]) == {"1", "0.9"}
    # ista-learned-step and alista share d = 2K (steps and thresholds): one point per distinct d
    pts = an["vacuity"]["pac-bayes-kl"]["levels"]["1"]["points"]
    assert len(pts) == len({r["d"] for r in doc["rows"].values()})


def test_resume_skips_finished_configs_and_earlier_files_need_a_flag(tiny_run):
    out, doc, _ = tiny_run
    messages: list[str] = []
    again = bench.run_benchmark(TINY, out, resume=True, log=messages.append)
    assert messages == [] and again["rows"] == json.loads(json.dumps(doc["rows"]))
    assert len(again["sessions"]) == 2
    with pytest.raises(UsageError, match="--resume continues it, --force deletes it"):
        bench.run_benchmark(TINY, out, log=messages.append)


def test_slopes_on_synthetic_rows():
    def row(fam, m, gap, pac, cov):
        return {"family": fam, "m_train": m, "K": 10, "d": 20, "gap": gap,
                "bounds": {"pac-bayes-kl": {"value": pac + 0.1, "empirical": 0.1, "status": "non-vacuous", "d": 20,
                                            "complexity": 7.0 / m},
                           "covering": {"value": cov + 0.1, "empirical": 0.1, "status": "vacuous", "d": 20}}}

    ms = [100, 1000, 10_000]
    rows = [row("a", m, 3.0 * m ** -0.5, 0.5 * m ** -1.0, 40.0 * m ** -0.5) for m in ms]
    rows.append(row("a", 300, -0.01, 0.85, 40.0 * 300 ** -0.5))  # gap <= 0 and a near-vacuous PAC-Bayes point
    s = bench.slopes(rows, ("a",))["a"]
    assert s["measured"]["slope"] == pytest.approx(-0.5) and (s["measured"]["points"], s["measured"]["of"]) == (3, 4)
    assert s["pac-bayes-kl"]["slope"] == pytest.approx(-1.0) and s["pac-bayes-kl"]["points"] == 3
    assert s["pac-bayes-kl complexity"]["slope"] == pytest.approx(-1.0) and s["pac-bayes-kl complexity"]["points"] == 4
    assert s["covering"]["slope"] == pytest.approx(-0.5) and s["covering"]["points"] == 4
    assert bench.loglog_slope([1.0], [2.0])["slope"] is None


def test_vacuity_in_d():
    v = bench.vacuity_in_d([(20, 0.5), (20, 0.2), (1640, 0.9), (50_010, 1.5), (140_010, 3.0)])
    assert v["largest_below_d"] == 1640 and v["smallest_above_d"] == 50_010
    t = (0.0 - math.log(0.9)) / (math.log(1.5) - math.log(0.9))
    assert v["d_star"] == pytest.approx(math.exp(math.log(1640) + t * (math.log(50_010) - math.log(1640))))
    assert v["points"][0] == [20, pytest.approx(math.sqrt(0.1))]  # geometric mean of the two d = 20 values
    assert bench.vacuity_in_d([(20, 2.0)])["reading"].startswith("at or above c at every d")
    assert bench.vacuity_in_d([(20, 0.3), (40, 0.4)])["d_star"] is None
    near = bench.vacuity_in_d([(20, 0.5), (1640, 0.99), (50_010, 0.9999)], level=0.9)
    assert near["smallest_above_d"] == 1640 and 20 < near["d_star"] < 1640
    # value = 0.1 sqrt(d): exponent 1/2, reaches c = 1 at d = 100 (inside the range) and 1.5 at d = 225
    fit = bench.vacuity_in_d([(4, 0.2), (400, 2.0), (10_000, 10.0)])
    assert fit["exponent"] == pytest.approx(0.5) and fit["d_star_fit"] == pytest.approx(100.0)
    assert fit["fit_extrapolated"] is False and fit["d_star"] == pytest.approx(100.0)
    assert bench.vacuity_in_d([(4, 0.2), (400, 2.0)], fit=False)["exponent"] is None
    out = bench.vacuity_in_d([(400, 2.0), (10_000, 10.0)])
    assert out["d_star_fit"] == pytest.approx(100.0) and out["fit_extrapolated"] is True and out["d_star"] is None


def test_target_verdict():
    def doc(value):
        r = {"family": "ista-learned-step", "m_train": 10_000, "K": 10, "d": 20, "gap": 0.001,
             "bounds": {"pac-bayes-kl": {"value": value, "empirical": 0.1, "status": "x", "delta": 0.035, "d": 20},
                        "covering": {"value": 1.3, "empirical": 0.1, "status": "vacuous", "d": 20}}}
        return {"config": {"problem_n": 100, "families": ["ista-learned-step"]}, "rows": {"k": r}}

    good, bad = bench.analyse(doc(0.5))["target"], bench.analyse(doc(1.0))["target"]
    assert good["pass"] is True and good["verdict"].startswith("PASS") and "delta = 0.035" in good["verdict"]
    assert bad["pass"] is False and "vacuous" in bad["verdict"]


@pytest.mark.parametrize("argv, fragment", [(["--workers", "0"], "--workers"), (["--seed", "-1"], "--seed"),
                                            (["--backend", "spark"], "invalid choice"),
                                            (["--resume", "--force"], "not allowed with argument"),
                                            (["--resume"], "nothing to resume")])
def test_bad_arguments_are_one_line(argv, fragment, tmp_path, capsys):
    assert bench.main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err
    assert list(tmp_path.iterdir()) == []
