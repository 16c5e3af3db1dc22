"""ALISTA analytic weights: the closed-form Frobenius weight (eq. (17)) against the authors' projected
gradient, the LP minimiser of the generalized coherence (eq. (8)), and generalized_coherence (eq. (9))."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from unfoldkit.unrolled.models import (
    coherence_weight,
    column_coherences,
    frobenius_weight,
    frobenius_weight_projected_gradient,
    generalized_coherence,
    normalize_diagonal,
)
from unfoldkit.unrolled.problems.linear import gaussian_unit_columns


def _frobenius_objective(w: np.ndarray, a: np.ndarray) -> float:
    return float(np.sum((w.T @ a) ** 2))


@pytest.fixture(scope="module")
def gaussian() -> np.ndarray:
    """The papers' setting at a test-friendly size: N(0, 1/m) entries, unit-norm columns, 40 x 80."""
    return gaussian_unit_columns(40, 80, np.random.default_rng(0))


@pytest.fixture(scope="module")
def weights(gaussian: np.ndarray) -> dict[str, np.ndarray]:
    return {"frobenius": frobenius_weight(gaussian), "coherence": coherence_weight(gaussian)}


def test_closed_form_matches_the_authors_projected_gradient(gaussian: np.ndarray) -> None:
    w = frobenius_weight(gaussian)
    w_pg, iters = frobenius_weight_projected_gradient(gaussian)
    assert iters < 20_000
    assert np.linalg.norm(w_pg - w) <= 1e-8 * np.linalg.norm(w)
    # the authors' own setting: step 0.1 (their ||A||^2 is about 6, here about 6 too: 0.1 < 2/L)
    w_authors, _ = frobenius_weight_projected_gradient(gaussian, step=0.1)
    assert np.linalg.norm(w_authors - w) <= 1e-7 * np.linalg.norm(w)


def test_closed_form_is_feasible_and_optimal(gaussian: np.ndarray) -> None:
    w = frobenius_weight(gaussian)
    np.testing.assert_allclose(np.sum(w * gaussian, axis=0), 1.0, rtol=0, atol=1e-12)
    # KKT: (A A^T) w_i is parallel to a_i
    g = gaussian @ gaussian.T @ w
    nu = np.sum(g * gaussian, axis=0)
    np.testing.assert_allclose(g, gaussian * nu, rtol=0, atol=1e-10 * np.abs(g).max())
    # feasible perturbations (columns orthogonal to a_i) never decrease the objective
    rng = np.random.default_rng(1)
    f0 = _frobenius_objective(w, gaussian)
    for _ in range(5):
        d = rng.standard_normal(w.shape)
        d -= gaussian * np.sum(d * gaussian, axis=0)
        assert _frobenius_objective(w + 1e-3 * d, gaussian) >= f0


def test_tall_full_rank_matrix_has_zero_coherence() -> None:
    a = gaussian_unit_columns(30, 12, np.random.default_rng(2))
    w = frobenius_weight(a)
    np.testing.assert_allclose(w.T @ a, np.eye(12), atol=1e-12)
    assert generalized_coherence(w, a) < 1e-12


def test_both_weights_beat_the_plain_coherence(gaussian: np.ndarray, weights: dict[str, np.ndarray]) -> None:
    mu_a = generalized_coherence(gaussian, gaussian)
    mu_fro = generalized_coherence(weights["frobenius"], gaussian)
    mu_lp = generalized_coherence(weights["coherence"], gaussian)
    gram = np.abs(gaussian.T @ gaussian)
    np.fill_diagonal(gram, 0.0)
    assert mu_a == pytest.approx(gram.max(), rel=1e-14)  # W = A: the ordinary mutual coherence mu(A)
    assert mu_lp <= mu_fro < mu_a
    ratio = mu_fro / mu_lp
    print(f"\n40x80 Gaussian: mu(A) = {mu_a:.4f}, mu(W_frob, A) = {mu_fro:.4f}, mu~(A) = {mu_lp:.4f}, "
          f"ratio frobenius / LP = {ratio:.2f}")
    assert 1.5 < ratio < 3.0  # the literature reports about 2x


def test_lp_minimises_every_column(gaussian: np.ndarray, weights: dict[str, np.ndarray]) -> None:
    lp = column_coherences(weights["coherence"], gaussian)
    fro = column_coherences(weights["frobenius"], gaussian)
    plain = column_coherences(gaussian, gaussian)
    assert np.all(lp <= fro + 1e-9) and np.all(lp <= plain + 1e-9)
    np.testing.assert_allclose(np.sum(weights["coherence"] * gaussian, axis=0), 1.0, rtol=0, atol=1e-12)


@given(seed=st.integers(0, 2**31 - 1), m=st.integers(2, 7), extra=st.integers(1, 6))
def test_weights_on_random_matrices(seed: int, m: int, extra: int) -> None:
    """Closed form: feasible, KKT, never beaten by the projected gradient (which can be very slow when
    A A^T is ill-conditioned, e.g. nearly square A); LP: per-column optimal, never above W = A."""
    n = m + extra
    a = gaussian_unit_columns(m, n, np.random.default_rng(seed))
    w = frobenius_weight(a)
    np.testing.assert_allclose(np.sum(w * a, axis=0), 1.0, rtol=0, atol=1e-9)
    g = a @ a.T @ w
    np.testing.assert_allclose(g, a * np.sum(g * a, axis=0), rtol=0, atol=1e-8 * max(1.0, np.abs(g).max()))
    w_pg, _ = frobenius_weight_projected_gradient(a, max_iter=2_000)
    f, f_pg = _frobenius_objective(w, a), _frobenius_objective(w_pg, a)
    assert f <= f_pg * (1 + 1e-12) + 1e-12
    lp = coherence_weight(a)
    assert np.all(column_coherences(lp, a) <= column_coherences(w, a) + 1e-8)
    assert generalized_coherence(lp, a) <= generalized_coherence(a, a) + 1e-8


def test_generalized_coherence_checks_its_input() -> None:
    a = gaussian_unit_columns(5, 9, np.random.default_rng(3))
    with pytest.raises(ValueError, match="diag"):
        generalized_coherence(2.0 * a, a)
    assert generalized_coherence(normalize_diagonal(2.0 * a, a), a) == pytest.approx(generalized_coherence(a, a))
    with pytest.raises(ValueError, match="same shape"):
        generalized_coherence(a[:, :4], a)
    with pytest.raises(ValueError, match="NaN"):
        generalized_coherence(np.full_like(a, np.nan), a)
    with pytest.raises(ValueError, match="dimension"):
        generalized_coherence(a[0], a)
    zero_col = a.copy()
    zero_col[:, 2] = 0.0
    for fn in (frobenius_weight, coherence_weight, lambda x: frobenius_weight_projected_gradient(x)):
        with pytest.raises(ValueError, match="zero column"):
            fn(zero_col)
    with pytest.raises(ValueError, match="cannot normalize"):
        normalize_diagonal(np.zeros_like(a), a)


@pytest.mark.slow
def test_paper_size_weights() -> None:
    """250 x 500 (the papers' size): 500 LPs, several minutes."""
    a = gaussian_unit_columns(250, 500, np.random.default_rng(0))
    mu_a = generalized_coherence(a, a)
    mu_fro = generalized_coherence(frobenius_weight(a), a)
    mu_lp = generalized_coherence(coherence_weight(a), a)
    print(f"\n250x500: mu(A) = {mu_a:.4f}, frobenius = {mu_fro:.4f}, LP = {mu_lp:.4f}, ratio {mu_fro / mu_lp:.2f}")
    assert mu_lp < mu_fro < mu_a


def test_na_alista_weight_is_feasible_and_stops_short_of_the_minimiser() -> None:
    """The NA-ALISTA truncated projected gradient keeps diag(W^T A) = 1 (to rounding, 1e-12) and never goes
    below the Frobenius minimum (the closed form is optimal: >= up to a 1e-9 relative rounding slack); with
    step sizes summing to ~1 it stops measurably above it (> 1 % at this size), and more steps only help."""
    from unfoldkit.unrolled.models.alista_weights import na_alista_frobenius_weight

    a = gaussian_unit_columns(60, 120, np.random.default_rng(3))
    best = _frobenius_objective(frobenius_weight(a), a)
    w = na_alista_frobenius_weight(a)
    np.testing.assert_allclose(np.diag(w.T @ a), 1.0, rtol=0, atol=1e-12)
    short = _frobenius_objective(w, a)
    assert best * (1 - 1e-9) <= short and short > 1.01 * best
    longer = _frobenius_objective(na_alista_frobenius_weight(a, steps=4000, decay=0.999), a)
    assert best * (1 - 1e-9) <= longer < short


def test_na_alista_initial_weight_is_independent_of_a_problem_drawn_with_the_same_seed() -> None:
    """With one stream W_0 would equal A before normalisation; our W_0 has its own stream. For independent
    Gaussian matrices of N = m n entries the normalised inner product is ~ N(0, 1/N): at N = 125,000 a bound
    of 0.02 is about 7 standard deviations, while the shared-stream value is ~1."""
    from unfoldkit.unrolled.models.alista_weights import na_alista_initial_weight
    from unfoldkit.unrolled.problems import SparseRecovery

    for seed in (0, 1):
        a = SparseRecovery(m=250, n=500, sparsity=0.1, seed=seed).A
        w0 = na_alista_initial_weight(250, 500, seed)
        assert abs(float(np.sum(w0 * a)) / (np.linalg.norm(w0) * np.linalg.norm(a))) < 0.02
        assert w0.std() == pytest.approx(1 / np.sqrt(250), rel=0.01)
    np.testing.assert_array_equal(na_alista_initial_weight(5, 7, 4), na_alista_initial_weight(5, 7, 4))
