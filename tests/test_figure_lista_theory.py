"""The lista-theory figure on a tiny configuration: every bound drawn holds, the practical regime is
refused with its numbers, and the files are written."""
import numpy as np

from unfoldkit.experiments.figures import lista_theory
from unfoldkit.experiments.io import read_json

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
