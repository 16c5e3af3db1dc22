"""The lista-theory figure on a tiny configuration: every bound drawn holds, the practical regime is
refused with its numbers, and the files are written."""
import re
import warnings

import numpy as np
import pytest

from unfoldkit.experiments.figures import lista_theory
from unfoldkit.experiments.io import read_json
from unfoldkit.unrolled.problems import SparseRecovery

TINY = lista_theory.Config(m=30, n=45, num_layers=4, samples=64, amplitude=1.0, train_epochs=2, train_steps=3,
                           test_size=64, max_s_reach=3, lam=0.05)


def test_compute_and_plot_tiny(tmp_path, monkeypatch):
    result = lista_theory.compute(TINY, seed=0, cache=tmp_path)
    theorem = result["theorem_regime"]
    assert theorem["coherence"]["mu"] <= theorem["frobenius"]["mu"] + 1e-9  # the LP weight is optimal
    for w in theorem.values():
        for row in w["rows"]:
            assert row["s"] < w["sparsity_limit"]
            assert row["holds"] and row["false_positives"] == 0
            assert np.all(np.asarray(row["measured"]) <= np.asarray(row["bound"]) * (1 + 1e-6))
    prac = result["practical_regime"]
    for fam, rep in prac["checks"].items():
        sparsity = [a for a in rep["assumptions"] if a["name"].startswith("sparsity")][0]
        assert sparsity["holds"] is False and sparsity["measured"] == prac["typical_s"]
        assert rep["guarantee"] is False
    assert set(prac["curves"]) == {"ISTA", "FISTA", "alista", "lista-cpss"}
    assert list(tmp_path.glob("weight-coherence-*.npy"))  # the LP weight is cached
    monkeypatch.setattr(lista_theory, "QUICK", TINY)
    out = lista_theory.reproduce(tmp_path / "out", quick=True, progress=False)
    data = read_json(tmp_path / "out" / "lista-theory.json")
    assert data["all_hold"] is True and out["verdicts"]
    assert (tmp_path / "out" / "lista-theory.png").stat().st_size > 0


def _corrupt(kind, path, shape):
    if kind == "garbage":
        path.write_bytes(b"\x80\x04not a numpy file")
    elif kind == "pickled":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind == "truncated":
        np.save(path, np.ones(shape))
        path.write_bytes(path.read_bytes()[:-40])
    elif kind == "shape":
        np.save(path, np.ones((3, 3)))
    elif kind == "nan":
        np.save(path, np.full(shape, np.nan))
    elif kind == "ints":
        np.save(path, np.ones(shape, dtype=np.int64))


@pytest.mark.parametrize("kind", ["garbage", "pickled", "truncated", "shape", "nan", "ints"])
def test_corrupt_weight_cache_is_recomputed_with_a_warning_naming_it(tmp_path, kind):
    problem = SparseRecovery(m=12, n=20, sparsity=0.1, lam=0.05, seed=0)
    fresh = lista_theory._weight("frobenius", problem, None)
    lista_theory._weight("frobenius", problem, tmp_path)
    (path,) = tmp_path.glob("weight-frobenius-*.npy")
    _corrupt(kind, path, fresh.shape)
    with pytest.warns(RuntimeWarning, match=rf"^{re.escape(str(path))}: cached weight is corrupt .*recomputing"):
        w = lista_theory._weight("frobenius", problem, tmp_path)
    np.testing.assert_array_equal(w, fresh)
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), fresh)  # the file is replaced


def test_valid_weight_cache_is_used(tmp_path):
    problem = SparseRecovery(m=12, n=20, sparsity=0.1, lam=0.05, seed=0)
    lista_theory._weight("frobenius", problem, tmp_path)
    (path,) = tmp_path.glob("weight-frobenius-*.npy")
    marker = np.full((12, 20), 0.5)
    np.save(path, marker)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(lista_theory._weight("frobenius", problem, tmp_path), marker)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file left behind
