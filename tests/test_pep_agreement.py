"""Our Gram-matrix SDP and PEPit (the reference) agree to 1e-6 relative, layer by layer."""
import numpy as np
import pytest

from unfoldkit.theory.bound import Metric
from unfoldkit.theory.pep import pep_worst_case, silver_steps

RTOL = 1e-6
_rng = np.random.default_rng(20240607)
LEARNED = _rng.uniform(0.3, 1.9, size=5)        # learned-like steps (units of 1/L), some above 1/L
MOMENTUM = np.array([0.0, 0.4, -0.2, 0.8, 1.1])  # negative and above-1 momentum are allowed

CASES = {
    "gd-constant": dict(steps=np.full(5, 1.0), method="gd"),
    "gd-learned": dict(steps=LEARNED, method="gd"),
    "gd-learned-sq-distance": dict(steps=LEARNED, method="gd", metric=Metric.SQ_DISTANCE),
    "gd-learned-grad-norm": dict(steps=LEARNED, method="gd", metric=Metric.SQ_GRAD_NORM),
    "gd-silver": dict(steps=silver_steps(5, 1.0), method="gd"),
    "gd-strongly-convex": dict(steps=LEARNED, method="gd", mu=0.1),
    "gd-strongly-convex-distance": dict(steps=LEARNED, method="gd", mu=0.1, metric=Metric.SQ_DISTANCE),
    "gd-function-initial": dict(steps=LEARNED, method="gd", mu=0.1, initial="function"),
    "pgm-learned": dict(steps=LEARNED, method="pgm"),
    "pgm-strongly-convex-distance": dict(steps=LEARNED, method="pgm", mu=0.1, metric=Metric.SQ_DISTANCE),
    "agd-learned-momentum": dict(steps=LEARNED, method="agd", momentum=MOMENTUM),
    "fista-beck-teboulle": dict(steps=np.full(5, 1.0), method="fista"),
    "fista-learned": dict(steps=LEARNED, method="fista", momentum=MOMENTUM),
}


def _relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    both_inf = np.isinf(a) & np.isinf(b)
    with np.errstate(invalid="ignore"):
        return np.where(both_inf, 0.0, np.abs(a - b) / np.maximum(np.abs(b), 1e-12))


@pytest.mark.parametrize("name", sorted(CASES))
def test_gram_matches_pepit_per_layer(name):
    kw = dict(CASES[name])
    steps = kw.pop("steps") / 2.0  # L = 2
    ours = pep_worst_case(steps, L=2.0, R=1.3, engine="gram", **kw)
    ref = pep_worst_case(steps, L=2.0, R=1.3, engine="pepit", **kw)
    np.testing.assert_array_equal(ours.iterations, np.arange(6))
    rel = _relative(ours.values[1:], ref.values[1:])
    assert np.all(rel <= RTOL), (name, ours.values, ref.values, rel)
    assert ours.assumptions_hold and ref.extra["engine"] == "pepit"


def test_mismatched_prox_step_is_unbounded_in_both_engines():
    """tau_k != gamma_k: no finite worst case over all closed convex h (the layer's fixed point minimizes
    f + (tau/gamma) h, and h can be scaled at will); both engines report +inf from the layer on."""
    kw = dict(steps=np.ones(3), L=1.0, method="pgm", prox_steps=[1.0, 1.0, 0.8])
    ours = pep_worst_case(**kw, engine="gram")
    ref = pep_worst_case(**kw, engine="pepit")
    assert np.isfinite(ours.values[1:3]).all() and np.isinf(ours.values[3])
    np.testing.assert_allclose(ours.values[1:3], ref.values[1:3], rtol=RTOL)
    assert np.isinf(ref.values[3])
    assert "tau_k != gamma_k" in ours.notes


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gd", "pgm", "fista"])
def test_gram_matches_pepit_longer_schedules(method):
    """K = 12 learned-like layers (a few layers). Where PEPit's own solve ends 'optimal_inaccurate' (it does
    for FISTA at K = 12) the reference is only good to ~1e-5; our engine is then checked against itself with
    the other solver (SCS, no preconditioning) to 1e-6."""
    steps = np.random.default_rng(3).uniform(0.3, 1.9, size=12)
    layers = [4, 8, 12]
    ours = pep_worst_case(steps, L=1.0, method=method, layers=layers, engine="gram")
    ref = pep_worst_case(steps, L=1.0, method=method, layers=layers, engine="pepit")
    scs = pep_worst_case(steps, L=1.0, method=method, layers=layers, engine="gram", solver="SCS")
    exact = np.array([s == "optimal" for s in ref.extra["solver_status"]])
    rel = _relative(ours.values, ref.values)
    assert np.all(rel[exact] <= RTOL), (ours.values, ref.values)
    assert np.all(rel[~exact] <= 1e-4), (ours.values, ref.values)
    assert np.all(_relative(ours.values, scs.values) <= RTOL), (ours.values, scs.values)
