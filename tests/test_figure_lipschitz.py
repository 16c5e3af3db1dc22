"""The lipschitz figure on a tiny configuration, through the command line (``reproduce lipschitz --quick``
with QUICK made tiny): the files are written, every method's curve is there at every layer, every certified
upper bound is above the attained lower bound, and an earlier run's files are kept without --force."""
import math
from dataclasses import asdict

import numpy as np
import pytest

from unfoldkit.experiments.cli import main
from unfoldkit.experiments.figures import FIGURES
from unfoldkit.experiments.figures import lipschitz as fig
from unfoldkit.experiments.io import read_json
from unfoldkit.theory.lipschitz import METHODS

TINY = fig.Config(m=8, n=16, num_layers=3, train_epochs=2, train_steps=3, batch_size=16, lr_lista=1e-3,
                  lr_alista=5e-3, sdp_optimize="last", sdp_iters=10, lower_starts=4, lower_ascent_steps=5,
                  test_size=64)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lipschitz")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fig, "QUICK", TINY)
        code = main(["reproduce", "lipschitz", "--quick", "--out", str(out), "--no-progress"])
    return out, code


def _floats(values):
    return np.array([math.nan if v is None else (math.inf if v == "inf" else float(v)) for v in values])


def test_cli_writes_the_png_and_the_json(tiny_run, capsys):
    out, code = tiny_run
    assert code == 0
    for suffix in ("png", "pdf", "json"):
        assert (out / f"lipschitz.{suffix}").stat().st_size > 0
    data = read_json(out / "lipschitz.json")
    assert data["mode"] == "quick" and data["config"] == asdict(TINY) and data["all_hold"] is True
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_every_method_at_every_layer_and_upper_above_lower(tiny_run):
    out, _ = tiny_run
    data = read_json(out / "lipschitz.json")
    K = TINY.num_layers
    assert set(data["models"]) == set(fig.FAMILIES)
    for fam, entry in data["models"].items():
        assert entry["training"]["epochs_run"] == TINY.train_epochs
        assert entry["training"]["relative_parameter_change"] > 0  # training moved the weights
        for state in fig.STATES:
            res = entry[state]
            lower = _floats(res["lower"])
            assert lower.shape == (K,) and np.all(lower > 0), (fam, state)
            if not res["finite"]:  # a learned negative threshold: no finite constant, said so
                assert res["reason"] and res["best_upper"] == ["inf"] * K
                continue
            assert set(res["upper"]) == set(METHODS), (fam, state)
            for method in METHODS:
                up = _floats(res["upper"][method])
                assert up.shape == (K,) and np.all(np.isfinite(up)), (fam, state, method)
                assert np.all(up >= lower * (1 - 1e-9)), (fam, state, method)
            ratio = _floats(res["ratio"])
            assert np.all(ratio >= 1 - 1e-9)
            assert set(res["seconds"]) == {*METHODS, "lower"}
            verdict = data["verdicts"][f"{fam} {state}: certified upper >= attained lower"]
            assert verdict["holds"] and verdict["tightness"] == pytest.approx(ratio[-1])
    # the first layer x_1 = eta(W_1 y) has constant ||W_1||: the best bound and the search find it
    lista = data["models"]["lista"]["init"]
    assert _floats(lista["ratio"])[0] == pytest.approx(1.0, abs=1e-6)


def test_existing_results_need_force(tiny_run, monkeypatch, capsys):
    out, _ = tiny_run
    before = (out / "lipschitz.json").read_bytes()
    assert main(["reproduce", "lipschitz", "--quick", "--out", str(out)]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert (out / "lipschitz.json").read_bytes() == before
    calls = []

    def fake_reproduce(out_dir, quick, seed, progress):
        calls.append((out_dir, quick, seed))
        return {"verdicts": {}, "paths": [], "all_hold": True}

    monkeypatch.setattr(FIGURES["lipschitz"].module, "reproduce", fake_reproduce)
    assert main(["reproduce", "lipschitz", "--quick", "--out", str(out), "--force", "--seed", "3"]) == 0
    assert calls == [(out, True, 3)]


def test_plot_draws_a_model_without_finite_constant(tiny_run):
    out, _ = tiny_run
    data = read_json(out / "lipschitz.json")
    res = data["models"]["alista"]["trained"]
    K = TINY.num_layers
    res.update(finite=False, reason="negative threshold at layer 2", upper={}, best_upper=["inf"] * K,
               best_method=[None] * K, ratio=["inf"] * K)
    fig.plot(data).savefig(out / "nonfinite.png")
    assert (out / "nonfinite.png").stat().st_size > 0
