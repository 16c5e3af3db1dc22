"""check_lista_model: guarantees on LISTA-family models, and honest refusals where they do not apply.

The measured errors are float64 evaluations of at most 8 layers on m, n <= 150: round-off is far below the
1e-6 relative slack the report uses."""
import numpy as np
import pytest
import torch

from unfoldkit.proofs_check.lista_checks import check_lista_model, layer_constants
from unfoldkit.theory.lista import certified_thresholds
from unfoldkit.unrolled.models import MODELS
from unfoldkit.unrolled.problems import SparseRecovery


@pytest.fixture(scope="module")
def problem():
    return SparseRecovery(m=100, n=150, seed=0)


def alista_with_certified_thresholds(problem, s, B, K=8, gamma=1.0):
    model = MODELS["alista"](problem, K, weight="frobenius", step=gamma, percent=1.2, max_percent=13.0,
                             dtype=torch.float64)
    th = certified_thresholds(model.coherence(), s, B, K, np.full(K, gamma))
    with torch.no_grad():
        model.threshold.copy_(torch.as_tensor(th))
    return model


@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_alista_in_the_theorem_regime_carries_the_guarantee(problem, gamma):
    model = alista_with_certified_thresholds(problem, s=1, B=2.0, gamma=gamma)
    rep = check_lista_model(model, s=1, B=2.0, num_samples=256)
    assert all(a.holds for a in rep.assumptions), rep.summary()
    assert rep.guarantee and all(v["holds"] for v in rep.verdicts.values())
    assert rep.false_positives.sum() == 0
    for b in rep.bounds:
        assert np.all(rep.measured_max_error <= b.values * (1 + 1e-6))
    # the measured per-layer contraction is no worse than the certified factor |1-gamma| + gamma (2s-1) mu
    assert rep.fitted_rate <= rep.theoretical_rate * (1 + 1e-6) + abs(1 - gamma)


def test_practical_sparsity_is_refused(problem):
    model = MODELS["lista-cpss"](problem, 6)
    rep = check_lista_model(model, s=15, B=3.0, num_samples=64)
    names = {a.name: a for a in rep.assumptions}
    sparsity = names["sparsity s < (1 + 1/mu)/2"]
    assert sparsity.holds is False and sparsity.measured == 15
    assert rep.theoretical_rate is None and not rep.guarantee
    assert all(np.isnan(b.values).all() for b in rep.bounds)


def test_uncoupled_lista_fails_the_coupling(problem):
    model = MODELS["lista"](problem, 4, dtype=torch.float64)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-2 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0), dtype=p.dtype))
    rep = check_lista_model(model, s=1, B=1.0, num_samples=16)
    coupling = rep.assumptions[0]
    assert coupling.holds is False and coupling.measured > 1e-3
    assert rep.bounds == [] and not rep.guarantee


def test_constants_and_dtype_restored(problem):
    model = MODELS["lista-cp"](problem, 3)  # float32
    c = layer_constants(model)
    assert c["mu"].shape == (3,) and np.all(c["coupling_residual"] == 0)
    check_lista_model(model, s=1, num_samples=8)
    assert next(model.parameters()).dtype == torch.float32
    with pytest.raises(ValueError, match="LISTA-family"):
        layer_constants(MODELS["ista-learned-step"](problem, 2))
