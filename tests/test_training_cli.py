"""`unfoldkit train`: end to end on a tiny problem, resume, and bad arguments (exit 2, one line)."""
from __future__ import annotations

import json

import pytest
import torch

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
    (["--layers", "-3"], "expected a non-negative integer"),
    (["--lr", "-1"], "lr must be > 0"),
    (["--patience", "0"], "expected a positive integer"),
    (["--problem", "least-squares", "--sparsity", "0.2"], "--sparsity does not apply"),
    (["--weights", "1,x"], "--weights must be comma-separated"),
    (["--weights", "1,1"], "do not apply to scheme 'end-to-end'"),
    (["--scheme", "multi-loss", "--weights", "1,1,1"], "one entry per layer"),
    (["--model-arg", "step"], "KEY=VALUE"),
    (["--model-arg", "bogus=1"], "cannot build"),
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
