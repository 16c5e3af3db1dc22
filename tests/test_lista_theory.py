"""LISTA-CP / ALISTA theory: the recursion certificate, the theorems' constants and where they stop.

Tolerances: iterates are computed in float64 with at most 12 layers of m x n products (m, n <= 80), so
round-off is below 1e-12 relative to the O(s B) quantities; 1e-9 relative on the bound is a wide margin
for that and nothing else (the certificate is exact arithmetic otherwise).
"""
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from unfoldkit.theory import lista
from unfoldkit.unrolled.models.alista_weights import frobenius_weight, generalized_coherence
from unfoldkit.unrolled.problems import BoundedSparseRecovery
from unfoldkit.unrolled.steps import lista_cp_step


def run_alista(problem, y, W, gammas, thetas):
    """x^{k+1} = eta_{theta^k}(x^k - gamma^k W^T (A x^k - y)), float64, whole trajectory."""
    a = torch.as_tensor(problem.A)
    w = torch.as_tensor(W)
    x = torch.zeros(y.shape[0], problem.n, dtype=torch.float64)
    out = [x]
    for g, t in zip(gammas, thetas):
        x = lista_cp_step(x, y, a, w, float(t), step=float(g))
        out.append(x)
    return torch.stack(out)


@given(m=st.integers(30, 80), ratio=st.floats(1.15, 1.6), seed=st.integers(0, 10_000),
       B=st.floats(0.1, 10.0), gamma_frac=st.floats(0.3, 0.99), sigma_frac=st.sampled_from([0.0, 1e-3]),
       data=st.data())
def test_alista_iterates_meet_the_certified_bound(m, ratio, seed, B, gamma_frac, sigma_frac, data):
    n = int(m * ratio)
    p = BoundedSparseRecovery(m=m, n=n, support_size=1, amplitude=B, seed=seed)
    W = frobenius_weight(p.A)
    mu = generalized_coherence(W, p.A)
    limit = lista.sparsity_limit(mu)
    assume(limit > 1.0)
    s = data.draw(st.integers(1, min(6, max(1, math.ceil(limit) - 1))))
    assume(s < limit)
    p = BoundedSparseRecovery(m=m, n=n, support_size=s, amplitude=B, seed=seed)
    K = 10
    gammas = np.full(K, gamma_frac * lista.alista_step_range(mu, s))
    rng = np.random.default_rng(seed)
    batch = p.sample(16, rng=rng)
    sigma = sigma_frac * s * B
    eps = rng.standard_normal((16, m))
    eps *= sigma / np.maximum(np.abs(eps).sum(axis=1, keepdims=True), 1e-300)  # ||eps||_1 = sigma
    y = batch.y + torch.as_tensor(eps)
    c_w = float(np.abs(W).max())
    thetas = lista.certified_thresholds(mu, s, B, K, gammas, sigma, c_w)
    bound = lista.alista_bound(mu, s, B, gammas, weight="frobenius", thresholds=thetas,
                               delta=float(np.max(np.abs(1 - np.sum(W * p.A, axis=0)))), sigma=sigma, c_w=c_w)
    assert bound.assumptions_hold, bound.summary()
    traj = run_alista(p, y, W, gammas, thetas)
    err = (traj - batch.x).norm(dim=-1).numpy()          # (K+1, B) l2 errors
    assert np.all(err <= bound.values[:, None] * (1 + 1e-9)), (err.max(axis=1), bound.values)
    # no false positives: supp(x^k) within supp(x*) at every layer (the theorem's first conclusion).
    # Where the theorem is tight (s = 1, many layers) |z_i| / theta^k -> 1 off the support and float64
    # round-off can leave an entry of order 1e-18; entries above 1e-12 s B would be real violations.
    outside = (traj.abs() > 1e-12 * s * B) & (batch.x == 0)[None]
    assert not bool(outside.any())


def test_closed_form_matches_recursion_noiseless():
    mu, s, B = 0.1, 3, 2.0
    gam = np.array([1.0, 0.8, 1.2, 1.0])
    b = lista.alista_bound(mu, s, B, gam)
    closed = s * B * np.cumprod(np.concatenate([[1.0], (2 * mu * s - mu) * gam + np.abs(1 - gam)]))
    np.testing.assert_allclose(b.values, closed, rtol=1e-12)
    cp = lista.lista_cp_bound(mu, s, B, 4)
    np.testing.assert_allclose(cp.values, s * B * ((2 * s - 1) * mu) ** np.arange(5), rtol=1e-12)
    assert cp.assumptions_hold and cp.status == "confirmed"


def test_where_the_theorem_stops():
    """The papers' setting (250 x 500, Bernoulli(0.1): about 50 nonzeros) is far outside s < (1+1/mu)/2."""
    p = BoundedSparseRecovery(m=250, n=500, support_size=50, seed=0)
    W = frobenius_weight(p.A)
    mu = generalized_coherence(W, p.A)
    assert 0.15 < mu < 0.3  # the digest's measurement: about 0.2 for this family
    b = lista.lista_cp_bound(mu, 50, 1.0, 16, weight="frobenius")
    assert not b.assumptions_hold and np.all(np.isnan(b.values))
    (fail,) = b.failed
    assert fail.measured == 50 and "s <" in fail.required
    assert lista.sparsity_limit(mu) < 4  # "allows only about 3 nonzeros"
    assert lista.lista_cp_bound(mu, 2, 1.0, 16).assumptions_hold


def test_breaking_assumptions_is_reported():
    mu, s = 0.1, 3
    hi = lista.alista_step_range(mu, s)
    assert not lista.alista_bound(mu, s, 1.0, np.array([1.0, hi * 1.01])).assumptions_hold
    th = lista.certified_thresholds(mu, s, 1.0, 4)
    small = th * 0.5
    b = lista.alista_bound(mu, s, 1.0, np.ones(4), thresholds=small)
    assert not b.assumptions_hold and any("threshold" in a.name for a in b.failed)
    assert not lista.alista_bound(mu, s, 1.0, np.ones(4), delta=0.1).assumptions_hold
    e, ok = lista.layer_recursion(np.full(4, mu), 0.0, small, s, 1.0)
    assert not ok[0] and np.isnan(e[1:]).all()


def test_small_thresholds_really_create_false_positives():
    """The threshold hypothesis is not decorative: without it false positives appear."""
    p = BoundedSparseRecovery(m=40, n=60, support_size=3, seed=1)
    W = frobenius_weight(p.A)
    b = p.sample(64, rng=0)
    traj = run_alista(p, b.y, W, np.ones(3), np.full(3, 1e-4))
    assert bool(((traj != 0) & (b.x == 0)[None]).any())


def test_model_recursion_bound_for_trained_weights():
    mus = np.array([0.05, 0.04, 0.04])
    deltas = np.array([0.1, 0.05, 0.0])
    e, _ = lista.layer_recursion(mus, deltas, np.full(3, 10.0), 2, 1.0)
    b = lista.model_recursion_bound(mus, deltas, np.full(3, 10.0), 2, 1.0)
    assert b.assumptions_hold and np.allclose(b.values, e)
    assert b.extra["contraction"]["holds"] is True
    tiny = lista.model_recursion_bound(mus, deltas, np.full(3, 1e-6), 2, 1.0)
    assert not tiny.assumptions_hold


def test_weight_constants_and_fit():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20, 30))
    a /= np.linalg.norm(a, axis=0)
    c = lista.weight_constants(a, a)
    assert c.delta == pytest.approx(0.0, abs=1e-12)
    g = np.abs(a.T @ a)
    np.fill_diagonal(g, 0)
    assert c.mu == pytest.approx(g.max())
    rho, cc = lista.fit_decay_rate(3.0 * 0.5 ** np.arange(10))
    assert rho == pytest.approx(0.5) and cc == pytest.approx(math.log(2))
    assert math.isnan(lista.fit_decay_rate(np.array([1.0]))[0])
    with pytest.raises(ValueError, match="shape"):
        lista.weight_constants(a[:, :5], a)
