"""The command line of the four benchmark scripts (benchmarks/*.py), through their ``main``: bad arguments
and the files of an earlier run are one line on stderr with exit status 2, before any work; ``--resume`` on
a folder with nothing to resume names it; Ctrl-C says how to continue. Also pep_scaling's files: a tiny run
(one engine, K = 1, 2, seconds), its resume and --force."""
from __future__ import annotations

import io
import json
import math

import pytest

import benchmarks.alista_published_recipe as alista
import benchmarks.pep_scaling as pep
import benchmarks.unfolded_quadratic as quad
import benchmarks.unfolded_sparse as sparse
from unfoldkit.experiments.benchmarking import output_paths
from unfoldkit.unrolled.io import write_json

MAINS = {"unfolded_sparse": sparse.main, "unfolded_quadratic": quad.main, "alista_published_recipe": alista.main,
         "pep_scaling": pep.main}
#: per script: the arguments of a run, and each file or folder such a run leaves in --out
RUNS = [
    ("unfolded_sparse", ["--quick"], ["unfolded_sparse_quick.json", "unfolded_sparse_quick.txt", "checkpoints/quick/"]),
    ("unfolded_sparse", ["--quick", "--estimate"], ["unfolded_sparse_quick_estimate.json"]),
    ("unfolded_quadratic", ["--quick"],
     ["unfolded_quadratic_quick.json", "unfolded_quadratic_quick.txt", "checkpoints/quadratic_quick/"]),
    ("alista_published_recipe", ["--snr", "20"],
     ["alista_published_recipe_snr20_frobenius-na.json", "checkpoints/alista_published_recipe/snr20_frobenius-na/"]),
    ("pep_scaling", ["--quick", "--method", "pgm"], ["pep_scaling_pgm_quick.json", "pep_scaling_pgm_quick.txt"]),
]


def one_line_error(script: str, argv: list[str], capsys) -> str:
    """The stderr of ``script``'s main on ``argv``, checked to be one line with exit status 2."""
    assert MAINS[script](argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("script, argv, fragment", [
    ("unfolded_sparse", ["--models", "nope"], "unknown model 'nope'"),
    ("unfolded_sparse", ["--models", "alista,alista"], "listed twice"),
    ("unfolded_sparse", ["--snr", "loud"], "not a number"),
    ("unfolded_sparse", ["--snr", "nan"], "not a finite SNR"),
    ("unfolded_sparse", ["--seed", "-1"], "--seed"),
    ("unfolded_sparse", ["--threads", "x"], "--threads"),
    ("unfolded_sparse", ["--device", "tpu"], "--device"),
    ("unfolded_sparse", ["--estimate", "--resume"], "nothing to resume"),
    ("unfolded_quadratic", ["--snr", "inf,inf"], "listed twice"),
    ("unfolded_quadratic", ["--seed", "-1"], "--seed"),
    ("alista_published_recipe", ["--snr", "30"], "published log exists only"),
    ("alista_published_recipe", ["--snr", "loud"], "not a number"),
    ("alista_published_recipe", ["--epochs", "0"], "--epochs"),
    ("alista_published_recipe", ["--weight", "learned"], "--weight"),
    ("alista_published_recipe", ["--threads", "-1"], "--threads"),
    ("pep_scaling", ["--cap", "0"], "--cap: must be > 0"),
    ("pep_scaling", ["--cap", "nan"], "--cap: must be > 0"),
    ("pep_scaling", ["--engines", "gram-clarabel,nope"], "unknown engine(s) nope"),
    ("pep_scaling", ["--engines", ","], "(none given)"),
    ("pep_scaling", ["--method", "newton"], "--method"),
    ("pep_scaling", ["--long", "--quick"], "not allowed with argument"),
    ("pep_scaling", ["--schedule", "silver"], "--schedule"),
    *[(script, ["--bogus"], "unrecognized arguments") for script in MAINS],
    *[(script, ["--resume", "--force"], "not allowed with argument") for script in MAINS],
])
def test_bad_arguments_exit_2_with_one_line(script, argv, fragment, capsys, tmp_path):
    assert fragment in one_line_error(script, [*argv, "--out", str(tmp_path)], capsys)


@pytest.mark.parametrize("script", MAINS)
def test_out_that_is_a_file_is_a_usage_error(script, tmp_path, capsys):
    afile = tmp_path / "file"
    afile.write_text("x")
    err = one_line_error(script, ["--out", str(afile)], capsys)
    assert "--out" in err and str(afile) in err and "not a folder" in err


@pytest.mark.parametrize("script, argv, left", RUNS)
def test_each_file_of_an_earlier_run_needs_resume_or_force(script, argv, left, tmp_path, capsys):
    for name in left:  # any one of them stops the run before it starts, naming it and both flags
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir() if name.endswith("/") else path.write_text("{}")
        err = one_line_error(script, [*argv, "--out", str(tmp_path)], capsys)
        assert f"error: {path} exists (an earlier run): --resume continues it, --force deletes it" in err
        path.rmdir() if name.endswith("/") else path.unlink()
        assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == []  # nothing was written


@pytest.mark.parametrize("script, argv, left", [run for run in RUNS if "--estimate" not in run[1]])
def test_resume_with_nothing_to_resume_names_the_folder(script, argv, left, tmp_path, capsys):
    typo = tmp_path / "typo"
    err = one_line_error(script, [*argv, "--resume", "--out", str(typo)], capsys)
    assert f"--resume: nothing to resume in {typo} (no {left[0]}); run without --resume to start" in err
    assert not typo.exists() or list(typo.iterdir()) == []  # (the --out check may have created it)


@pytest.mark.parametrize("script", ["unfolded_sparse", "unfolded_quadratic"])
def test_resume_from_another_run_is_a_usage_error(script, tmp_path, capsys):
    path = output_paths(tmp_path, script, "quick")[0]
    argv = ["--quick", "--resume", "--out", str(tmp_path)]
    write_json(path, {"benchmark": script, "format_version": 1, "config": {"mode": "quick", "m": 1}})
    assert "was made with another configuration" in one_line_error(script, argv, capsys)
    write_json(path, {"benchmark": "other", "format_version": 1})
    assert f"is not a result of {script} (format v1); --force replaces it" in one_line_error(script, argv, capsys)
    path.write_text("{truncated")
    assert f"--resume: cannot read {path}" in one_line_error(script, argv, capsys)


def test_ctrl_c_is_one_line_saying_how_to_resume(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(quad, "run_benchmark", interrupted)
    assert quad.main(["--quick", "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err.strip() == ("interrupted: what was finished is saved in --out; run the same command with --resume "
                           "to continue")


def test_pep_scaling_tiny_run_writes_its_files_resumes_and_is_replaced_with_force(tmp_path):
    log = io.StringIO()
    pep.run_benchmark("gd", [1, 2], 60.0, ["gram-clarabel"], tmp_path, "tiny", log=log)
    json_path, table_path = output_paths(tmp_path, "pep_scaling", "tiny")
    doc = json.loads(json_path.read_text())
    assert doc["benchmark"] == "pep_scaling" and doc["config"]["ks"] == [1, 2] and len(doc["sessions"]) == 1
    engine = doc["results"]["gram-clarabel"]
    assert [r["K"] for r in engine["rows"]] == [1, 2] and engine["largest_K_within_cap"] == 2
    assert all(math.isfinite(r["value"]) and r["value"] > 0 for r in engine["rows"])
    assert "gram-clarabel: largest K solved within 60 s = 2" in table_path.read_text()
    log = io.StringIO()
    again = pep.run_benchmark("gd", [1, 2], 60.0, ["gram-clarabel"], tmp_path, "tiny", resume=True, log=log)
    assert "gram-clarabel: done already (--resume), skipped" in log.getvalue() and len(again["sessions"]) == 2
    assert again["results"] == doc["results"]
    with pytest.raises(ValueError, match="another configuration"):
        pep.run_benchmark("gd", [1, 2, 3], 60.0, [], tmp_path, "tiny", resume=True)
    fresh = pep.run_benchmark("gd", [1], 60.0, [], tmp_path, "tiny", force=True)
    assert fresh["results"] == {} and not table_path.exists() and len(fresh["sessions"]) == 1


def test_pep_scaling_generation_engines_tiny_run(tmp_path):
    """The constraint-generation engines: value equal to the full formulation's, pairs and rounds recorded,
    the per-layer Bound only at PER_LAYER_KS, flagged statuses explained under the table."""
    log = io.StringIO()
    doc = pep.run_benchmark("gd", [2, 3], 60.0, ["gram-generation", "gram-scs"], tmp_path, "tiny", log=log,
                            kind="constant")
    gen, full = doc["results"]["gram-generation"]["rows"], doc["results"]["gram-scs"]["rows"]
    assert [r["K"] for r in gen] == [2, 3] and all(r["pairs_used"] <= r["pairs_total"] for r in gen)
    for g, f in zip(gen, full):
        assert abs(g["value"] - f["value"]) <= 1e-6 * f["value"]
    assert abs(gen[0]["value"] - 1.0 / (4 * 2 + 2)) <= 1e-6  # Drori-Teboulle: L R^2 / (4N + 2) at steps 1/L
    _, table_path = output_paths(tmp_path, "pep_scaling_constant", "tiny")
    assert "gram-generation pairs used: K=2:" in table_path.read_text()
    assert pep.engine_ks("gram-generation-all-layers", [10, 50, 100, 200], "long") == [50, 100]
    assert pep.engine_ks("gram-scs", [100, 120, 140], "long") == [100, 120]
    assert pep.engine_ks("gram-scs", [100, 120, 140], "full") == [100, 120, 140]
