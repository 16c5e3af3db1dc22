"""The pep-learned-steps figure on a tiny configuration: PEP worst cases are never below the average case
measured on instances of the class (up to the SDP tolerance), and growth is flagged."""
import numpy as np

from unfoldkit.experiments.figures import pep_learned_steps as fig

TINY = fig.Config(m=12, n=8, kappa=10.0, num_layers=3, train_epochs=3, train_steps=5, lr=0.05, test_size=64)


def test_compute_tiny(tmp_path, monkeypatch):
    result = fig.compute(TINY, seed=0)
    assert len(result["learned_steps_h"]) == 3
    assert set(result["worst_case"]) == {"learned", "constant 1/L", "constant 2/(L+mu)"}
    for name, wc in result["worst_case"].items():
        avg = np.asarray(result["average_case"][name])
        wc = np.asarray(wc, dtype=float)
        # an average over instances of F_{mu,L} cannot exceed the supremum over the class; 1e-6 relative
        # covers the SDP solver tolerance (the certified duality gaps are below 1e-7 here)
        assert np.all(avg[1:] <= wc[1:] * (1 + 1e-6) + 1e-12), name
        assert result["worst_case_provenance"][name]["status"] == "confirmed"
    assert result["all_hold"]
    assert set(result["flags"]["learned"]) >= {"grows", "diverges"}
    monkeypatch.setattr(fig, "QUICK", TINY)
    out = fig.reproduce(tmp_path, quick=True, progress=False)
    assert out["verdicts"] and (tmp_path / "pep-learned-steps.pdf").exists()


def test_flags_a_schedule_that_diverges():
    from unfoldkit.theory.pep import compare_schedules

    comp = compare_schedules(np.array([2.5, 2.5, 2.5]), L=1.0, mu=0.1, method="gd")
    assert comp.growth["learned"].grows and comp.growth["learned"].diverges
    assert "learned" in comp.flagged()
