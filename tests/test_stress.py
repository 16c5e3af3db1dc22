"""unfoldkit stress: planted failures are found and shrunk, correct targets raise no alarm, counterexamples
replay bit for bit, an interrupted hunt resumes without losing what it found, and bad input exits 2.

Sizes: the planted targets' strategies start at n >= 1 (least squares), n >= 2 (LASSO) and m >= 6 with K >= 2
for an uncoupled LISTA (K = 1 has no W_2), so the shrink bounds below are the minimal instances plus a slack
of 2 for hypothesis's shrinker on a ci budget."""
import json

import numpy as np
import pytest

from unfoldkit.experiments.cli import main
from unfoldkit.experiments.hunt import RESULT, hunt
from unfoldkit.proofs_check.stress import load_counterexample, replay, run_round
from unfoldkit.proofs_check.stress_targets import TARGETS, get_target, lemma_targets

def _run(argv):
    """main(argv), with argparse's SystemExit turned into its status."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


PLANTED_MAX = {"ista-overstep": {"n": 4, "K": 3}, "schedule-divergent": {"n": 3, "K": 3},
               "lista-uncoupled": {"m": 8, "K": 4}}


def test_list_names_every_target_and_marks_planted(capsys):
    assert main(["stress", "--list"]) == 0
    out = capsys.readouterr().out
    for name, t in {**TARGETS, **lemma_targets()}.items():
        assert name in out
    assert sorted(n for n, t in TARGETS.items() if t.planted) == sorted(PLANTED_MAX)
    assert out.count("PLANTED") == 3


@pytest.mark.parametrize("name", sorted(PLANTED_MAX))
def test_planted_failures_are_found_and_shrunk(name, tmp_path):
    doc = hunt(name, tmp_path, examples=60, profile="ci", seed=0)
    assert doc["status"] == "violation" and doc["counts"]["violated"] >= 1
    cex = doc["counterexamples"][0]
    assert cex["kind"] == "violation" and cex["margin"] < 0
    for dim, cap in PLANTED_MAX[name].items():
        assert cex["dims"][dim] <= cap, cex["dims"]
    # the saved file replays to the same margin, bit for bit
    saved, checks = replay(cex["file"])
    assert saved["params"] == cex["params"] and saved["target"] == name
    assert [c.worst_margin for c in checks if c.state == "violated"][0] == cex["margin"]


@pytest.mark.parametrize("name", sorted(n for n, t in TARGETS.items() if not t.planted))
def test_correct_targets_raise_no_alarm(name):
    res = run_round(name, seed=1, examples=10, profile="ci")
    assert res.counterexample is None and res.counts["violated"] == 0 and res.errors == 0, res.counterexample
    assert res.examples == 10 and res.counts["holds"] > 0


@pytest.mark.parametrize("name", sorted(lemma_targets()))
def test_lemmas_hold(name):
    res = run_round(name, seed=2, examples=20, profile="ci")
    assert res.counterexample is None and res.counts["violated"] == 0 and res.counts["holds"] > 0


def test_assumption_breaking_instances_are_never_violations():
    target = get_target("alista")
    # s = 2 on a 6 x 6 dictionary: the sparsity condition s < (1 + 1/mu)/2 fails (mu of a random 6 x 6 is large)
    params = {"m": 6, "extra": 0, "s": 2, "B": 5.0, "K": 6, "seed": 3, "data_seed": 4}
    states = [c.state for c in target.evaluate(params)]
    assert states and "violated" not in states and "not applicable" in states


def test_interrupted_hunt_resumes_without_losing_its_counterexample(tmp_path):
    rounds = []

    def kill_after_first(doc):
        rounds.append(len(doc["rounds"]))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        hunt("schedule-divergent", tmp_path, examples=40, profile="ci", progress=kill_after_first)
    doc = json.loads((tmp_path / RESULT).read_text())
    assert doc["status"] == "interrupted" and len(doc["counterexamples"]) == 1
    cex_file = doc["counterexamples"][0]["file"]
    again = hunt("schedule-divergent", tmp_path, examples=40, profile="ci", resume=True)
    assert again["counterexamples"][0]["file"] == cex_file and load_counterexample(cex_file)["margin"] < 0
    assert again["status"] == "violation"


def test_resume_continues_with_new_seeds_and_keeps_counts(tmp_path):
    first = hunt("quadratic-schedule", tmp_path, examples=20, profile="ci")
    seeds = {r["seed"] for r in first["rounds"]}
    more = hunt("quadratic-schedule", tmp_path, examples=40, profile="ci", resume=True)
    assert more["examples"] == 40 and {r["seed"] for r in more["rounds"]} > seeds
    assert sum(more["counts"].values()) > sum(first["counts"].values())


@pytest.mark.parametrize("argv, message", [
    (["stress", "no-such-target"], "unknown stress target"),
    (["stress", "lemma:nope"], "unknown lemma"),
    (["stress", "gd-convex", "--examples", "0"], "positive integer"),
    (["stress", "gd-convex", "--time", "soon"], "positive duration"),
    (["stress", "gd-convex", "--examples", "5", "--time", "1m"], "not allowed with"),
    (["stress", "--replay", "missing.npz"], "not a unfoldkit counterexample"),
    (["stress"], "give a TARGET"),
])
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert _run(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_checkpoint_exits_2(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["stress", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and len(err.strip().splitlines()) == 1


def test_existing_run_needs_resume_or_force(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["stress", "quadratic-schedule", "--examples", "10", "--profile", "ci", "--out", str(out),
                 "--no-progress"]) == 0
    assert main(["stress", "quadratic-schedule", "--examples", "10", "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["stress", "quadratic-schedule", "--resume", "--out", str(tmp_path / "empty")]) == 2


def test_counterexample_file_is_data_only(tmp_path):
    doc = hunt("ista-overstep", tmp_path, examples=20, profile="ci")
    with np.load(doc["counterexamples"][0]["file"], allow_pickle=False) as data:
        assert {"target", "params_json", "check", "margin", "seed", "call", "version"} <= set(data.files)


def test_time_budget_and_two_workers(tmp_path):
    doc = hunt("quadratic-schedule", tmp_path / "t", time_s=1.0, profile="ci")
    assert doc["status"] == "no violation" and doc["examples"] >= 10
    par = hunt("quadratic-schedule", tmp_path / "w", examples=40, workers=2, profile="ci")
    assert par["examples"] == 40 and len({r["seed"] for r in par["rounds"]}) == len(par["rounds"]) >= 2


def test_dask_backend_on_a_local_cluster(tmp_path):
    pytest.importorskip("distributed", reason="the dask extra (pip install 'unfoldkit[dask]') is not installed")
    doc = hunt("quadratic-schedule", tmp_path, examples=20, workers=2, backend="dask", profile="ci")
    assert doc["examples"] == 20 and doc["counts"]["violated"] == 0


def test_a_checkpoint_is_stressed_with_its_family_guarantees(tmp_path, capsys):
    import torch

    from unfoldkit.unrolled.models import MODELS
    from unfoldkit.unrolled.problems import SparseRecovery
    from unfoldkit.unrolled.training.checkpoint import save_checkpoint

    problem = SparseRecovery(m=8, n=12, seed=0)
    path = tmp_path / "model.pt"
    save_checkpoint(path, MODELS["ista-learned-step"].from_classical(problem, 4, dtype=torch.float64),
                    problem=problem)
    target = get_target(str(path))
    assert "ista-convex" in target.description and not target.planted
    assert _run(["stress", str(path), "--examples", "10", "--profile", "ci", "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 0
    assert "no violation" in capsys.readouterr().out
    uncovered = tmp_path / "corr.pt"
    save_checkpoint(uncovered, MODELS["ista-correction"](problem, 2), problem=problem)
    assert _run(["stress", str(uncovered), "--out", str(tmp_path / "o2")]) == 2
    assert "no theorem covers" in capsys.readouterr().err
