"""benchmarks/coherence.py at a tiny size (12 x 24, 5 LP columns, one round): the table and the JSON, the
fast path certified and equal to the LP path on the columns both solved, --force and the one-line errors."""
from __future__ import annotations

import json

import pytest

from benchmarks import coherence as bench


def test_coherence_benchmark_writes_its_table(tmp_path, capsys):
    out = tmp_path / "coherence.json"
    argv = ["--m", "12", "--n", "24", "--lp-columns", "5", "--repeats", "1", "--out", str(out)]
    assert bench.main(argv) == 0
    doc = json.loads(out.read_text())
    r = doc["results"]
    assert doc["benchmark"] == "coherence" and r["matrix"] == {"m": 12, "n": 24, "seed": 0,
                                                               "source": "SparseRecovery(m, n, sparsity=0.1, seed).A"}
    assert r["fast"]["all_certified"] and r["fast"]["max_gap"] <= 1e-6
    assert len(r["fast"]["seconds_1_process"]) == 1 and len(r["fast"]["seconds_2_processes"]) == 1
    assert r["lp"]["extrapolated"] and len(r["lp"]["columns"]) == 5 and len(r["lp"]["seconds_per_column"]) == 5
    assert r["lp"]["extrapolated_s_all_columns"] == pytest.approx(24 * r["lp"]["median_s_per_column"])
    assert r["agreement"]["max_rel_diff_fast_vs_lp"] < 1e-6 and r["agreement"]["lp_below_certified_lower"] == 0
    assert r["fast"]["weight_reaches_upper"] < 1e-9 and isinstance(r["under_target"], bool)
    printed = capsys.readouterr().out
    assert "extrapolated to 24" in printed and "max certified relative gap" in printed
    assert bench.main(argv) == 2                                    # an earlier run's file: only with --force
    assert "--force" in capsys.readouterr().err
    assert bench.main(["--m", "0"]) == 2
    assert bench.main(["--n", "1", "--out", str(tmp_path / "x.json")]) == 2
    assert "at least 2" in capsys.readouterr().err
