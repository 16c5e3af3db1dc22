"""benchmarks/lipschitz.py on a tiny grid (n = 12, 16; K = 2, 3; in this process): every method's last-layer
bound is certified (above the attained lower bound), the SDP mode follows n, the tightness rows cover every
layer, the table states the targets, resume skips finished cells; one cell in a worker process reports
its peak memory; the targets' verdicts on synthetic rows; the command line's one-line errors."""
from __future__ import annotations

import json

import pytest

import benchmarks.lipschitz as bench
from unfoldkit.experiments.benchmarking import UsageError, output_paths

TINY = bench.LipConfig(mode="tiny", ns=(12, 16), ks=(2, 3), sdp_optimize_max_n=12, sdp_iters=10,
                       lower_modest=(4, 5), lower_small=(2, 3), small_lower_from_n=16, tight_n=12, tight_k=3,
                       tight_lower=(4, 5, 2, 5), train_epochs=2, train_steps=3, cap_s=120.0)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lip")
    messages: list[str] = []
    doc = bench.run_benchmark(TINY, out, isolate=False, log=messages.append)
    return out, doc, messages


def test_every_cell_every_method_above_the_lower_bound(tiny_run):
    out, _, _ = tiny_run
    json_path, table_path = output_paths(out, "lipschitz", "tiny")
    doc = json.loads(json_path.read_text())
    assert doc["benchmark"] == "lipschitz" and doc["config"] == TINY.to_dict()
    assert set(doc["cells"]) == {bench.cell_key(f, n, k) for f in bench.FAMILIES for n in TINY.ns for k in TINY.ks}
    for key, row in doc["cells"].items():
        assert row["status"] == "done" and row["finite"], key
        assert row["m"] == row["n"] // 2 and row["lower"] > 0 and row["lower_seconds"] > 0
        assert set(row["methods"]) == set(bench.METHODS)
        for name, m in row["methods"].items():
            assert m["value"] >= row["lower"] * (1 - 1e-9), (key, name)
            assert m["ratio"] == pytest.approx(m["value"] / row["lower"]) and m["seconds"] >= 0
        sdp = row["methods"]["sdp"]
        if row["n"] <= TINY.sdp_optimize_max_n:
            assert sdp["mode"] == "optimised" and sdp["evidence"]["status"] == "optimised"
            assert row["lower_options"] == {"starts": 4, "ascent_steps": 5}
        else:
            assert sdp["mode"].endswith("not optimised") and sdp["evidence"]["status"].startswith("not optimised")
            assert row["lower_options"] == {"starts": 2, "ascent_steps": 3}
    table = table_path.read_text()
    assert "| lista | 12 | 6 | 2 |" in table and "not optimised" in table
    assert "SDP certificate at n=100, K=16 under 60 s: not measured in this mode" in table
    assert "some certified bound at n=500, K=16 under 300 s: not measured in this mode" in table
    assert doc["sessions"][0]["wall_time_s"] > 0
    assert set(doc["sessions"][0]["code"]) == {"commit", "theory_lipschitz_modified"}  # which bounds' code ran


def test_tightness_rows_cover_every_layer(tiny_run):
    _, doc, _ = tiny_run
    assert set(doc["tightness"]) == {"init", "trained"}
    for state, row in doc["tightness"].items():
        assert row["K"] == TINY.tight_k and len(row["ratio"]) == TINY.tight_k
        for k in range(TINY.tight_k):
            assert row["ratio"][k] >= 1 - 1e-9 and row["naive_ratio"][k] >= row["ratio"][k] * (1 - 1e-12)
            assert row["best_upper"][k] == pytest.approx(min(v[k] for v in row["upper"].values()))
    assert doc["tightness"]["init"]["ratio"][0] == pytest.approx(1.0, abs=1e-6)  # x_1 = eta(W_1 y): ||W_1||
    assert doc["tightness"]["trained"]["training"]["epochs"] == TINY.train_epochs


def test_resume_skips_finished_cells_and_earlier_files_need_a_flag(tiny_run):
    out, doc, _ = tiny_run
    messages: list[str] = []
    again = bench.run_benchmark(TINY, out, resume=True, isolate=False, log=messages.append)
    assert messages == [] and again["cells"] == json.loads(json.dumps(doc["cells"]))
    assert len(again["sessions"]) == 2
    with pytest.raises(UsageError, match="--resume continues it, --force deletes it"):
        bench.run_benchmark(TINY, out, isolate=False, log=messages.append)


def test_a_cell_in_a_worker_reports_its_peak_memory(tmp_path):
    cfg = bench.LipConfig(**{**TINY.__dict__, "ns": (8,), "ks": (2,), "families": ("lista",)})
    doc = {"cells": {}}
    bench._run_group("lista", 8, cfg, doc, lambda: None, isolate=True, threads=1, log=lambda s: None)
    row = doc["cells"][bench.cell_key("lista", 8, 2)]
    assert row["status"] == "done" and row["peak_rss_mib"] >= row["baseline_rss_mib"] > 0
    assert row["peak_rss_increase_mib"] >= 0


def _row(family, n, K, seconds):
    methods = {m: {"value": 1.0 + i, "ratio": 1.0 + i, "seconds": seconds[m] if isinstance(seconds, dict) else seconds}
               for i, m in enumerate(bench.METHODS)}
    return {"family": family, "n": n, "K": K, "status": "done", "methods": methods}


def test_target_verdicts():
    cfg = {"families": list(bench.FAMILIES)}
    fast = {bench.cell_key(f, 100, 16): _row(f, 100, 16, 10.0) for f in bench.FAMILIES}
    fast.update({bench.cell_key(f, 500, 16): _row(f, 500, 16, {"naive": 400.0, "liplt": 500.0,
                                                                 "eclipse-fast": 250.0, "sdp": 600.0})
                 for f in bench.FAMILIES})
    sdp, anyb = bench._target_rows({"config": cfg, "cells": fast})
    assert sdp["pass"] is True and anyb["pass"] is True
    assert anyb["fastest"]["lista"] == {"method": "eclipse-fast", "seconds": 250.0}
    slow = dict(fast)
    slow[bench.cell_key("alista", 100, 16)] = _row("alista", 100, 16, 61.0)
    slow[bench.cell_key("lista", 500, 16)] = {"family": "lista", "n": 500, "K": 16, "status": "stopped"}
    sdp, anyb = bench._target_rows({"config": cfg, "cells": slow})
    assert sdp["pass"] is False and "alista 61.0 s" in sdp["verdict"]
    assert anyb["pass"] is False and anyb["verdict"].startswith("FAIL")


@pytest.mark.parametrize("argv, fragment", [(["--cap", "0"], "--cap: must be a positive number"), (["--cap", "inf"], "--cap: must be a positive number"), (["--seed", "-1"], "--seed"),
                                            (["--resume", "--force"], "not allowed with argument"),
                                            (["--bogus"], "unrecognized arguments")])
def test_bad_arguments_are_one_line(argv, fragment, tmp_path, capsys):
    assert bench.main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err
    assert list(tmp_path.iterdir()) == []
