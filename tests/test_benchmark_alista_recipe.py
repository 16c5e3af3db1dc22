"""benchmarks/alista_published_recipe.py: the pairing of our epochs with the published log rows, a two-step
smoke run (JSON structure, finite values, the recipe's model, pause and resume, --force). Its command
line (bad arguments, an earlier run's files) is tested with the other scripts' in tests/test_benchmark_cli.py.

Nothing here checks the quality of the numbers (that needs minutes of training: benchmarks/README.md)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import benchmarks.alista_published_recipe as bench


def test_published_log_is_the_read_rows():
    log40, log20 = bench.published_for(40), bench.published_for(20.0)
    assert set(range(31)) <= set(log40) and set(range(31)) <= set(log20)
    assert log40[419] == pytest.approx(-39.049, abs=1e-3) and log20[419] == pytest.approx(-21.064, abs=1e-3)
    # a transcription check: a training curve whose read rows never rise by more than the epoch-to-epoch
    # fluctuation of their test estimate (the test noise is redrawn every epoch: rises up to 0.024 dB are in
    # the log), 0.05 dB
    for log in (log40, log20):
        epochs = sorted(log)
        assert all(log[b] <= log[a] + 0.05 for a, b in zip(epochs, epochs[1:]))
    with pytest.raises(KeyError):
        bench.published_for(30)


def test_compare_pairs_their_epoch_j_with_ours_after_j_plus_1_epochs():
    ours = [-20.0] + [bench.published_for(40)[j] - 0.5 for j in range(5)]  # 5 epochs, 0.5 dB better each
    cmp = bench.compare(ours, 40.0)
    assert cmp["compared_epochs"] == 5
    assert [r["their_epoch"] for r in cmp["rows"]] == [0, 1, 2, 3, 4]
    assert all(r["difference_db"] == pytest.approx(-0.5) for r in cmp["rows"])
    assert cmp["mean_difference_db"] == pytest.approx(-0.5) and cmp["within_tolerance_at_last"]
    far = bench.compare([0.0, bench.published_for(40)[0] + 3.5], 40.0)
    assert far["within_tolerance_at_last"] is False and far["max_abs_difference_db"] == pytest.approx(3.5)
    assert bench.compare([0.0], 40.0)["compared_epochs"] == 0


def test_smoke_run_writes_json_pauses_and_resumes(tmp_path):
    messages: list[str] = []
    kw = dict(steps_per_epoch=1, test_size=128, total_epochs=3)
    seen: list[list] = []

    def spy(msg: str) -> None:  # the per-epoch JSON, read while the run goes on: index e = after e epochs
        messages.append(msg)
        seen.append(json.loads((tmp_path / "alista_published_recipe_snr40_frobenius.json").read_text())["nmse_db_by_epoch"])

    first = bench.run(40.0, 1, "frobenius", tmp_path, log=spy, **kw)
    assert seen[0][0] is None and seen[0][1] == first["nmse_db_by_epoch"][1]
    assert first["status"] == "paused" and first["epochs_run"] == 1 and len(first["nmse_db_by_epoch"]) == 2
    doc = bench.run(40.0, 2, "frobenius", tmp_path, resume=True, log=messages.append, **kw)
    assert doc["status"] == "paused" and doc["nmse_db_by_epoch"][:2] == first["nmse_db_by_epoch"]
    on_disk = json.loads((tmp_path / "alista_published_recipe_snr40_frobenius.json").read_text())
    assert on_disk["status"] == "paused" and on_disk["nmse_db_by_epoch"] == doc["nmse_db_by_epoch"]
    with pytest.raises(ValueError, match="--resume continues it, --force deletes it"):
        bench.run(40.0, 1, "frobenius", tmp_path, log=lambda m: None, **kw)
    again = bench.run(40.0, 1, "frobenius", tmp_path, force=True, log=lambda m: None, **kw)
    assert again["nmse_db_by_epoch"] == first["nmse_db_by_epoch"]  # started afresh, not resumed
    whole = bench.run(40.0, 3, "frobenius", tmp_path / "whole", log=lambda m: None, **kw)
    assert whole["status"] == "done" and whole["nmse_db_by_epoch"][:3] == doc["nmse_db_by_epoch"]  # bit-exact
    assert len(doc["nmse_db_by_epoch"]) == 3 and all(math.isfinite(v) for v in doc["nmse_db_by_epoch"])
    assert doc["support_counts"] == [3, 6, 10, 14, 18, 22, 25, 29, 33, 37, 41, 44, 48, 52, 56, 60]
    assert doc["recipe"]["lr"] == 2e-4 and doc["recipe"]["batch_size"] == 512 and doc["recipe"]["grad_clip"] == 1.0
    assert doc["comparison"]["compared_epochs"] == 2 and len(messages) == 2
    np.testing.assert_array_equal(doc["final_schedule"]["support_count"], doc["support_counts"])
    assert "| 2 |" in bench.format_report(doc)
