"""proofs_check.generalization_gap: the bootstrap intervals cover a known truth at their nominal rate
(Beta-distributed losses, 400 seeded repetitions; the accepted band [0.92, 0.98] is about 3 binomial
standard deviations around 0.95), Hoeffding's interval is conservative, measure_gap on a model agrees with
the losses it is built from, and bad inputs are one-line errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from unfoldkit.proofs_check.generalization_gap import (
    bootstrap_ci, gap_from_losses, hoeffding_halfwidth, losses, measure_gap,
)
from unfoldkit.theory.generalization import clipped_nmse
from unfoldkit.unrolled.models import MODELS
from unfoldkit.unrolled.problems.sparse import SparseRecovery

REPS = 400
#: binomial(400, 0.95): standard deviation 0.011, so [0.92, 0.98] is about -2.7 / +2.8 sigma
BAND = (0.92, 0.98)


def test_one_sample_interval_covers_the_beta_mean():
    a, b, n = 2.0, 5.0, 100
    truth = a / (a + b)
    rng = np.random.default_rng(0)
    hits = 0
    for rep in range(REPS):
        lo, hi = bootstrap_ci(rng.beta(a, b, size=n), bootstrap=1000, seed=rep)
        hits += lo <= truth <= hi
    assert BAND[0] <= hits / REPS <= BAND[1], hits / REPS


def test_gap_interval_covers_the_true_gap():
    """Test losses Beta(2, 5) (m_test = 400), train losses Beta(2, 3) (m_train = 200): gap = 2/7 - 2/5."""
    truth = 2 / 7 - 2 / 5
    rng = np.random.default_rng(1)
    hits = hoeff = 0
    for rep in range(REPS):
        tr, te = rng.beta(2.0, 3.0, size=200), rng.beta(2.0, 5.0, size=400)
        res = gap_from_losses(tr, te, clip=1.0, bootstrap=1000, seed=rep)
        lo, hi = res["gap_ci"]
        hits += lo <= truth <= hi
        tlo, thi = res["test_interval"]
        hoeff += tlo <= 2 / 7 <= thi
    assert BAND[0] <= hits / REPS <= BAND[1], hits / REPS
    assert hoeff / REPS >= 0.95  # Hoeffding is exact-level conservative (in fact near 1 here)


def test_intervals_are_seeded_and_ordered():
    v = np.random.default_rng(3).beta(1.0, 3.0, size=50)
    assert bootstrap_ci(v, seed=5) == bootstrap_ci(v, seed=5)
    assert bootstrap_ci(v, seed=5) != bootstrap_ci(v, seed=6)
    lo, hi = bootstrap_ci(v, confidence=0.5)
    lo2, hi2 = bootstrap_ci(v, confidence=0.99)
    assert lo2 <= lo <= v.mean() <= hi <= hi2
    assert hoeffding_halfwidth(2.0, 1000, 0.95) == pytest.approx(2.0 * np.sqrt(np.log(40.0) / 2000.0))


def test_measure_gap_on_a_model():
    problem = SparseRecovery(m=8, n=16, seed=0)
    model = MODELS["ista-learned-step"].from_classical(problem, 3)
    train, test = problem.sample(40, rng=1), problem.sample(700, rng=2)
    res = measure_gap(model, train.y, train.x, test.y, test.x, clip=1.0, bootstrap=300, seed=0)
    with torch.no_grad():
        ref_tr = clipped_nmse(model.double()(train.y), train.x).mean().item()
        ref_te = clipped_nmse(model(test.y), test.x).mean().item()
    assert res["train_risk"] == pytest.approx(ref_tr, rel=1e-12)
    assert res["test_risk"] == pytest.approx(ref_te, rel=1e-12)
    assert res["gap"] == pytest.approx(ref_te - ref_tr)
    assert res["gap_ci"][0] <= res["gap"] <= res["gap_ci"][1]
    assert res["m_train"] == 40 and res["m_test"] == 700
    assert res["test_interval"][1] - res["test_interval"][0] <= 2 * res["hoeffding_halfwidth"] + 1e-15
    # chunking does not change the numbers
    assert np.allclose(losses(model, test.y, test.x, batch_size=7), losses(model, test.y, test.x, batch_size=1000))


@pytest.mark.parametrize("kwargs, fragment", [
    ({"clip": 0.0}, "clip must be a finite number > 0"),
    ({"confidence": 1.0}, "confidence must be a number in (0, 1)"),
    ({"bootstrap": 0}, "bootstrap must be an integer >= 1"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"test_losses": [0.5, 1.5]}, "test_losses must lie in [0, clip = 1]"),
    ({"train_losses": [[0.1]]}, "train_losses must be a non-empty 1-D array"),
    ({"train_losses": [float("nan")]}, "train_losses contains NaN or inf"),
])
def test_bad_inputs_are_one_line(kwargs, fragment):
    args = {"train_losses": [0.1, 0.2], "test_losses": [0.3, 0.4], **kwargs}
    with pytest.raises(ValueError) as err:
        gap_from_losses(**args)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_measure_gap_bad_data_is_one_line():
    problem = SparseRecovery(m=8, n=16, seed=0)
    model = MODELS["ista-learned-step"].from_classical(problem, 2)
    b = problem.sample(5, rng=0)
    bad = b.y.clone()
    bad[0, 0] = float("nan")
    for args, fragment in [((bad, b.x, b.y, b.x), "train_y contains NaN"),
                           ((b.y, b.x, b.y[0], b.x), "test_y must have shape (N, dim)"),
                           ((b.y, b.x[:3], b.y, b.x), "same N")]:
        with pytest.raises(ValueError) as err:
            measure_gap(model, *args)
        assert fragment in str(err.value) and "\n" not in str(err.value)
