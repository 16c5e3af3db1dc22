"""benchmarks/unfolded_quadratic.py: a tiny end-to-end run (JSON structure, finite curves, the theory columns
against the minimax value), resume (also of an interrupted run), --force, the verdict of T2 on synthetic
rows, and the symmetry check. Its command line (bad arguments, an earlier run's files) is tested with the
other scripts' in tests/test_benchmark_cli.py. The mathematics behind the theory columns (Chebyshev steps, alternation, residual
polynomials, the exact supremum, the average-case oracle) lives in ``unfoldkit.theory.quadratic_schedules``
and is tested in tests/test_quadratic_schedules.py.

The tiny run (m = 12, n = 6, K = 3, a few training steps) takes about a second."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import benchmarks.unfolded_quadratic as bench
from unfoldkit.experiments.benchmarking import Budget, output_paths
from unfoldkit.theory import quadratic_schedules

ROOT = Path(__file__).resolve().parents[1]

TINY = bench.QuadConfig(mode="tiny", m=12, n=6, kappa=10.0, num_layers=3, test_size=40, train_val_size=16,
                        budget=Budget(2, 3, 8, None), grid_points=2001)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quad")
    messages: list[str] = []
    doc = bench.run_benchmark(TINY, [None, 40.0], out, log=messages.append)
    return out, doc, messages


def test_tiny_run_writes_json_with_every_row_and_finite_curves(tiny_run):
    out, _, _ = tiny_run
    json_path, table_path = output_paths(out, "unfolded_quadratic", "tiny")
    doc = json.loads(json_path.read_text())
    assert doc["benchmark"] == "unfolded_quadratic" and doc["format_version"] == bench.FORMAT_VERSION
    assert doc["config"] == TINY.to_dict()
    assert set(doc["results"]) == {"snr=inf", "snr=40"} == set(doc["settings"])
    k = TINY.num_layers
    minimax = bench.minimax_value(k, TINY.mu, TINY.L)
    for key, rows in doc["results"].items():
        assert tuple(rows) == bench.ROW_ORDER
        for name, row in rows.items():
            if name == "oracle-avg-case" and row["status"] == "not realizable":
                continue
            assert row["status"] == "done", (key, name)
            for curve in (row["nmse_db"], row["expected_nmse_db"]):
                assert len(curve) == k + 1 and all(isinstance(v, float) and math.isfinite(v) for v in curve)
            assert row["nmse_db"][0] == 0.0  # x_0 = 0: the error is x itself, computed in float64
            assert row["nmse_db_K"] == row["nmse_db"][-1]
            assert row["worst_case"]["grid_max_abs_p_K"] >= minimax * (1 - 1e-9)
        learned = rows["gd-unfolded"]
        assert learned["params"] == k and learned["train_time_s"] > 0 and len(learned["steps"]) == k
        assert learned["steps_sorted"] == sorted(learned["steps"]) and len(learned["init_steps"]) == k
        assert learned["model_config"]["dtype"] == "float64"
        assert learned["worst_case"]["sup_abs_p_K"] >= learned["worst_case"]["grid_max_abs_p_K"] * (1 - 1e-12)
        assert rows["chebyshev"]["worst_case"]["minimax_value"] == pytest.approx(minimax, rel=1e-12)
        facts = doc["settings"][key]
        assert facts["symmetry_check"]["relative_spread"] < 1e-10
        assert set(facts["float32_check"]) == {"chebyshev", "gd-unfolded"}
    t2 = [t for t in doc["targets"] if t["target"].startswith("T2")]
    assert {t["setting"] for t in t2} == {"snr=inf", "snr=40"}
    assert all(isinstance(t["pass"], bool) and t["pass"] == (t["ours_db"] < t["reference_db"]) for t in t2)
    assert any(t["target"].startswith("info: worst-case") for t in doc["targets"])
    table = table_path.read_text()
    assert "| gd-unfolded | noiseless |" in table and "T2 gd-unfolded better than FISTA" in table
    assert "| rank | gd-unfolded | Chebyshev |" in table
    assert doc["sessions"][0]["wall_time_s"] > 0


def test_resume_skips_finished_settings_and_rejects_another_config(tiny_run):
    out, doc, _ = tiny_run
    messages: list[str] = []
    again = bench.run_benchmark(TINY, [None, 40.0], out, resume=True, log=messages.append)
    assert sum("skipped" in m for m in messages) == 2 and not any("training" in m for m in messages)
    assert again["results"] == json.loads(json.dumps(doc["results"]))
    other = bench.QuadConfig(**{**TINY.__dict__, "seed": 1})
    with pytest.raises(ValueError, match="another configuration"):
        bench.run_benchmark(other, [None], out, resume=True, log=lambda m: None)


def test_an_interrupted_run_resumes_and_force_starts_afresh(tmp_path):
    def interrupt(message):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # at the first message, before the training
        bench.run_benchmark(TINY, [None], tmp_path, log=interrupt)
    json_path = output_paths(tmp_path, "unfolded_quadratic", "tiny")[0]
    assert json.loads(json_path.read_text())["results"] == {}  # the file is claimed at once: resumable
    with pytest.raises(ValueError, match="--resume continues it, --force deletes it"):
        bench.run_benchmark(TINY, [None], tmp_path, log=lambda m: None)
    doc = bench.run_benchmark(TINY, [None], tmp_path, resume=True, log=lambda m: None)
    assert doc["results"]["snr=inf"]["gd-unfolded"]["status"] == "done" and len(doc["sessions"]) == 2
    stale = tmp_path / "checkpoints" / "quadratic_tiny" / "stale"
    stale.write_text("from an earlier run")
    fresh = bench.run_benchmark(TINY, [40.0], tmp_path, force=True, log=lambda m: None)
    assert not stale.exists() and len(fresh["sessions"]) == 1 and set(fresh["results"]) == {"snr=40"}
    assert json.loads(json_path.read_text())["sessions"] == json.loads(json.dumps(fresh["sessions"]))


def test_t2_verdict_states_the_margin_and_the_layers():
    def row(curve, **extra):
        return {"status": "done", "nmse_db": curve, "nmse_db_K": curve[-1], **extra}

    wc = {"sup_abs_p_K": 0.1, "grid_max_abs_p_K": 0.1, "argmax_lambda": 0.5, "ratio_to_minimax": 1.2}
    rows = {"fista": row([0.0, -5.0, -10.0, -12.0]), "chebyshev": row([0.0, -1.0, -2.0, -13.0]),
            bench.MODEL: row([0.0, -6.0, -9.0, -12.14], worst_case=wc)}
    t2, gap = bench.evaluate_targets({"snr=inf": rows})[:2]
    assert t2["verdict"] == "PASS (narrow) by 0.14 dB at layer 3; beats FISTA at 2 of 3 layers" and t2["pass"]
    assert gap["pass"] is None and "verdict" not in gap and gap["note"] == "ours 0.86 dB higher (worse)"
    table = bench.format_targets(bench.evaluate_targets({"snr=inf": rows}))
    assert f"| {t2['verdict']} |" in table and "| info |" in table


# ---- the benchmark's own checks -------------------------------------------------------------------------


THEORY_NAMES = ("chebyshev_steps", "minimax_value", "chebyshev_extrema", "spectrum_grid", "gd_residual",
                "fista_residual", "sup_abs_residual", "exact_abs_residual", "expected_nmse",
                "avg_case_optimal_polynomial", "noise_variance")


def test_benchmark_uses_the_theory_module_without_copies():
    source = (ROOT / "benchmarks" / "unfolded_quadratic.py").read_text(encoding="utf-8")
    for name in THEORY_NAMES:
        assert getattr(bench, name) is getattr(quadratic_schedules, name), name
        assert f"def {name}(" not in source, name


def test_gradient_is_symmetric_at_constant_steps():
    """Why the initial steps are perturbed: at equal steps every partial derivative of the loss is equal."""
    problem = bench.make_problem(TINY, None)
    check = bench.symmetry_check(TINY, problem, batch_size=16)
    assert check["relative_spread"] < 1e-10 and len(check["gradient_at_constant_1/L"]) == TINY.num_layers
