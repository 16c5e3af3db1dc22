"""`unfoldkit train`: end to end on a tiny problem, resume, and bad arguments (exit 2, one line)."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

import unfoldkit.unrolled.training as training
from unfoldkit.experiments.cli import main
from unfoldkit.unrolled.training import load_checkpoint, load_model

TINY = ["--problem", "sparse", "--m", "20", "--n", "40", "--sparsity", "0.1", "--lam", "0.05", "--layers", "3",
        "--epochs", "2", "--steps-per-epoch", "5", "--batch-size", "32", "--val-size", "128", "--lr", "0.01",
        "--no-progress"]


def _registry():
    try:
        from unfoldkit.unrolled.models import MODELS
    except ImportError:
        return {}
    return MODELS


needs_model = pytest.mark.skipif("ista-learned-step" not in _registry(), reason="models not registered yet")


@needs_model
def test_train_end_to_end_writes_model_checkpoint_and_history(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "ista-learned-step", *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "validation NMSE of x_K" in printed and "wrote" in printed
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "history.json", "model.pt"]
    history = json.loads((out / "history.json").read_text())
    assert history["scheme"] == "end-to-end" and history["epochs_run"] == 2
    assert len(history["history"]) == 3 and len(history["history"][-1]["val_nmse_db"]) == 4
    assert history["final_val_nmse_db"][-1] < history["history"][0]["val_nmse_db"][-1]
    meta = load_checkpoint(out / "model.pt").metadata
    assert meta["problem"]["params"]["m"] == 20 and meta["model"]["config"]["num_layers"] == 3
    model = load_model(out / "model.pt", family="ista-learned-step")
    assert model.num_layers == 3

    assert main(["train", "ista-learned-step", *TINY, "--out", str(out), "--resume"]) == 0   # finished: no-op
    again = json.loads((out / "history.json").read_text())
    strip = lambda h: [{k: v for k, v in e.items() if k != "time_s"} for e in h["history"]]  # noqa: E731
    assert strip(again) == strip(history)
    reloaded = load_model(out / "model.pt")
    assert all(torch.equal(reloaded.state_dict()[k], v) for k, v in model.state_dict().items())


@needs_model
@pytest.mark.parametrize("extra", [["--scheme", "layer-wise", "--epochs", "1", "--float64"],
                                   ["--scheme", "unsupervised", "--problem-seed", "2", "--threads", "1"],
                                   ["--scheme", "multi-loss", "--weights", "0,0.5,1", "--loss", "mse"]])
def test_train_other_schemes(tmp_path, extra):
    out = tmp_path / "run"
    assert main(["train", "ista-learned-step", *TINY, *extra, "--out", str(out)]) == 0
    ckpt = load_checkpoint(out / "model.pt")
    assert ckpt.training["scheme"] == extra[1]
    if "--float64" in extra:
        assert ckpt.metadata["model"]["dtype"] == "float64"


SMALL = ["--m", "8", "--n", "16", "--layers", "2", "--epochs", "1", "--steps-per-epoch", "1", "--val-size", "16",
         "--no-progress"]


def _run(args):
    """Exit code of `unfoldkit train ...` (argparse errors raise SystemExit, others return 2)."""
    try:
        return main(args)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "expected a positive integer"),
    (["--threads", "0"], "expected a positive integer"),
    (["--scheme", "greedy"], "invalid choice"),
    (["--layers", "-3"], "expected a positive integer"),
    (["--lr", "-1"], "lr must be > 0"),
    (["--patience", "0"], "expected a positive integer"),
    (["--problem", "least-squares", "--sparsity", "0.2"], "--sparsity does not apply"),
    (["--weights", "1,x"], "--weights must be comma-separated"),
    (["--weights", "1,1"], "do not apply to scheme 'end-to-end'"),
    (["--scheme", "multi-loss", "--weights", "1,1,1"], "one entry per layer"),
    (["--model-arg", "step"], "KEY=VALUE"),
    (["--model-arg", "bogus=1"], "cannot build ista-learned-step with --model-arg {'bogus': 1}: "
                                 "make_model('ista-learned-step'): unknown argument bogus; ista-learned-step accepts "
                                 "num_layers, step, threshold, learn_threshold, dtype"),
    (["--resume", "--force"], "argument --force: not allowed with argument --resume"),
    (["--sparsity", "2"], "sparsity"),
    (["--lr-schedule", "linear"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, args, message):
    if "ista-learned-step" not in _registry():
        pytest.skip("models not registered yet")
    code = _run(["train", "ista-learned-step", *SMALL, *args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_unknown_model_exits_2(tmp_path, capsys):
    assert _run(["train", "no-such-model", *SMALL, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'no-such-model'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_cuda_unavailable_exits_2(tmp_path, capsys):
    if "ista-learned-step" not in _registry():
        pytest.skip("models not registered yet")
    code = main(["train", "ista-learned-step", *TINY, "--device", "cuda", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "CUDA is not available" in err and len(err.strip().splitlines()) == 1


@needs_model
def test_train_stop_after_pauses_and_resume_finishes(tmp_path, capsys):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main(["train", "ista-learned-step", *TINY, "--out", str(whole)]) == 0
    assert main(["train", "ista-learned-step", *TINY, "--out", str(split), "--stop-after", "1"]) == 0
    assert "paused: --resume continues" in capsys.readouterr().out
    assert json.loads((split / "history.json").read_text())["paused"] is True
    assert main(["train", "ista-learned-step", *TINY, "--out", str(split), "--resume"]) == 0
    a, b = (json.loads((d / "history.json").read_text()) for d in (whole, split))
    assert b["paused"] is False and b["final_val_nmse_db"] == a["final_val_nmse_db"]


@needs_model
def test_resume_with_other_settings_exits_2(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "ista-learned-step", *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "ista-learned-step", *TINY, "--lr", "0.5", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume with different settings" in err and len(err.strip().splitlines()) == 1


# ---- no silent loss: an earlier run needs --resume or --force; Ctrl-C says how to resume -----------------


def _one_line(capsys):
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


@needs_model
def test_an_earlier_run_in_out_needs_resume_or_force(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "ista-learned-step", *TINY, "--out", str(out), "--stop-after", "1"]) == 0   # paused
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["train", "ista-learned-step", *TINY, "--out", str(out)]) == 2
    err = _one_line(capsys)
    assert f"{out / 'checkpoint.pt'} exists (an earlier run): --resume continues it, --force deletes it" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before          # nothing touched
    (out / "checkpoint.pt").unlink()
    (out / "model.pt").unlink()
    assert main(["train", "ista-learned-step", *TINY, "--out", str(out)]) == 2   # history.json alone counts too
    assert f"{out / 'history.json'} exists" in _one_line(capsys)
    assert main(["train", "ista-learned-step", *TINY, "--out", str(out), "--force"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert history["epochs_run"] == 2 and history["paused"] is False


@needs_model
@pytest.mark.parametrize("make", [False, True])
def test_resume_on_a_missing_or_empty_folder_is_an_error(tmp_path, capsys, make):
    out = tmp_path / "typo"
    if make:
        out.mkdir()
    assert main(["train", "ista-learned-step", *TINY, "--out", str(out), "--resume"]) == 2
    err = _one_line(capsys)
    assert f"--resume: nothing to resume in {out} (no checkpoint.pt); run without --resume to start" in err
    assert out.exists() == make                                                # a mistyped folder is not created


@needs_model
def test_resume_from_a_model_file_says_it_holds_no_trainer_state(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "ista-learned-step", *TINY, "--out", str(out)]) == 0
    shutil.copy(out / "model.pt", out / "checkpoint.pt")
    capsys.readouterr()
    assert main(["train", "ista-learned-step", *TINY, "--out", str(out), "--resume"]) == 2
    assert "cannot resume: this file holds no trainer state" in _one_line(capsys)


def _interrupted_at(epoch, monkeypatch):
    """Make `unfoldkit train` meet Ctrl-C after ``epoch`` epochs (0: before training starts)."""
    real = training.train

    def stop(entry):
        if entry["epoch"] == epoch:
            raise KeyboardInterrupt

    def train(*args, **kwargs):
        if epoch == 0:
            raise KeyboardInterrupt
        return real(*args, callback=stop, **kwargs)

    monkeypatch.setattr(training, "train", train)


@needs_model
def test_ctrl_c_says_how_to_resume_and_resume_finishes_the_run(tmp_path, capsys, monkeypatch):
    whole, cut = tmp_path / "whole", tmp_path / "cut run"
    assert main(["train", "ista-learned-step", *TINY, "--out", str(whole)]) == 0
    with monkeypatch.context() as patch:
        _interrupted_at(1, patch)
        capsys.readouterr()
        assert main(["train", "ista-learned-step", *TINY, "--out", str(cut)]) == 130
    err = _one_line(capsys)
    assert err == (f"unfoldkit: interrupted: the run is saved up to its last checkpoint in {cut / 'checkpoint.pt'}; "
                   f"to continue it, run the same command with --resume --out '{cut}'")
    assert main(["train", "ista-learned-step", *TINY, "--out", str(cut), "--resume"]) == 0
    a, b = (json.loads((d / "history.json").read_text()) for d in (whole, cut))
    assert b["epochs_run"] == 2 and b["final_val_nmse_db"] == a["final_val_nmse_db"]


@needs_model
def test_ctrl_c_before_the_first_checkpoint(tmp_path, capsys, monkeypatch):
    _interrupted_at(0, monkeypatch)
    assert main(["train", "ista-learned-step", *TINY, "--out", str(tmp_path / "run")]) == 130
    assert _one_line(capsys) == ("unfoldkit: interrupted: no checkpoint was written yet; run the same command again "
                                 "to start over")


@needs_model
def test_an_unusable_out_is_refused_before_any_work(tmp_path, capsys):
    afile = tmp_path / "file"
    afile.write_text("not a folder")
    assert main(["train", "ista-learned-step", *TINY, "--out", str(afile)]) == 2
    assert f"--out {afile}: exists and is not a folder" in _one_line(capsys)
    assert afile.read_text() == "not a folder"
