"""benchmarks/check.py on a tiny setting (n = 16, K = 2, in this process): both models, both report modes,
stage times, the table and its target line, resume skips the finished cells; the target's verdict on
synthetic rows; the command line's one-line errors."""
from __future__ import annotations

import json

import benchmarks.check as bench
from unfoldkit.experiments.benchmarking import output_paths

TINY = bench.CheckConfig(mode="tiny", n=16, num_layers=2, train_epochs=1, train_steps=2, train_batch=16,
                         cap_s=60.0)


def test_tiny_run_and_resume(tmp_path):
    messages: list[str] = []
    doc = bench.run_benchmark(TINY, tmp_path, isolate=False, log=messages.append)
    json_path, table_path = output_paths(tmp_path, "check", "tiny")
    saved = json.loads(json_path.read_text())
    assert saved["config"] == TINY.to_dict() == doc["config"]
    assert set(saved["cells"]) == {bench.cell_key(f, m) for f in bench.FAMILIES for m in bench.REPORT_MODES}
    for key, row in saved["cells"].items():
        assert row["status"] == "done", key
        assert row["exit_code"] in (0, 1)
        assert set(bench.STAGES) <= set(row["stages"]) and row["stages"]["total"] > 0
        assert row["total_seconds"] >= row["build_seconds"] > 0 and row["write_seconds"] > 0
        assert row["test_samples"] == (64 if key.endswith("quick") else 256)
        assert {"json", "md", "html"} <= set(row["file_bytes"])
    assert saved["models"]["alista"]["state"] == "trained" and saved["models"]["alista"]["epochs"] == 1
    assert saved["models"]["lista-cp"]["state"] == "classical initialisation"
    table = table_path.read_text()
    assert "| alista | default | 256 |" in table and "| lista-cp | quick | 64 |" in table
    assert "not measured in this mode" in table
    messages.clear()
    again = bench.run_benchmark(TINY, tmp_path, resume=True, isolate=False, log=messages.append)
    assert not messages and again["cells"] == saved["cells"] and len(again["sessions"]) == 2


def test_target_verdict():
    doc = {"config": bench.FULL.to_dict(),
           "cells": {"alista default": {"status": "done", "total_seconds": 100.0},
                     "lista-cp default": {"status": "done", "total_seconds": 200.0}}}
    assert [(t["family"], t["passed"]) for t in bench._targets(doc)] == [("alista", True), ("lista-cp", False)]
    doc["cells"]["alista default"] = {"status": "stopped"}
    assert not bench._targets(doc)[0]["passed"]
    assert bench._targets({"config": bench.QUICK.to_dict(), "cells": {}}) == []


def test_command_line_errors(tmp_path, capsys):
    assert bench.main(["--cap", "0", "--out", str(tmp_path)]) == 2
    assert "--cap" in capsys.readouterr().err
    assert bench.main(["--resume", "--out", str(tmp_path)]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert bench.main(["--resume", "--force"]) == 2
