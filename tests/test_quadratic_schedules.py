"""theory/quadratic_schedules.py: worst and average case of step schedules on quadratics.

Mathematics checked:

* the Chebyshev (Young 1953) steps attain the minimax value 1/T_K((L+mu)/(L-mu)) on the grid (equality);
* no other schedule goes below it (inequality): for any K steps, p(lam) = prod_k (1 - gamma_k lam) has degree
  K and p(0) = 1, so by de la Vallee Poussin's argument max |p| over the K + 1 Chebyshev alternation points
  (which ``spectrum_grid`` contains) is >= 1/T_K; checked in exact rational arithmetic and in float64;
* the exact supremum ``sup_abs_residual`` dominates fine grids, also with roots at or near the interval ends;
* the residual polynomials reproduce ``run_gd`` / ``run_fista`` iterates, and the average-case oracle
  minimises the expected NMSE;
* ``quadratic_worst_case``: the closed form for a constant step, domination of measured GD (and FISTA)
  trajectories on random LeastSquares problems, attainment by an eigenvector, and its provenance.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from unfoldkit import theory
from unfoldkit.proofs_check import strategies
from unfoldkit.theory import quadratic_schedules as qs
from unfoldkit.theory.bound import Bound, Metric
from unfoldkit.unrolled.problems.quadratic import LeastSquares
from unfoldkit.unrolled.solvers import run_fista, run_gd
from unfoldkit.unrolled.steps import fista_momentum

U = np.finfo(np.float64).eps / 2  # unit round-off of float64


def grid_max(values: np.ndarray) -> float:
    return float(np.max(np.abs(values)))


# ---- Chebyshev: equality with the minimax value -------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3, 8, 16, 32])
@pytest.mark.parametrize("kappa", [1.5, 10.0, 100.0, 1e4])
def test_chebyshev_steps_attain_the_minimax_value(k, kappa):
    """max over the grid of |prod_i (1 - lam / lam_i)| = 1/T_K((L+mu)/(L-mu)) within 1e-9 relative.

    Equality in exact arithmetic: the grid holds the endpoints, where |p| = 1/T_K exactly, and |p| <= 1/T_K on
    [mu, L]. Tolerance: the product form loses at most about 2K u x (lam / distance to the nearest root) at
    the extrema, <= 2 * 32 * 1.1e-16 * 16 K^2 / pi^2 ~ 1e-11 here, and 1/cosh(K acosh x) is accurate to ~1e-13
    relative even for x = 1.0002 (kappa 1e4): 1e-9 leaves a margin of 100."""
    L, mu = 1.0, 1.0 / kappa
    steps = qs.chebyshev_steps(k, mu, L)
    c = qs.minimax_value(k, mu, L)
    grid = qs.spectrum_grid(mu, L, k, 4001)
    assert grid_max(qs.gd_residual(steps, grid)[-1]) == pytest.approx(c, rel=1e-9)
    assert qs.sup_abs_residual(steps, mu, L)[0] == pytest.approx(c, rel=1e-9)
    # the closed form of T_K against the three-term recurrence T_{j+1} = 2x T_j - T_{j-1}
    x, t_prev, t = (L + mu) / (L - mu), 1.0, (L + mu) / (L - mu)
    for _ in range(k - 1):
        t_prev, t = t, 2 * x * t - t_prev
    assert c == pytest.approx(1.0 / t, rel=1e-12)
    # and the closed form 2 rho^K / (1 + rho^(2K)) stated in the docstring
    rho = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    assert c == pytest.approx(2 * rho**k / (1 + rho ** (2 * k)), rel=1e-9)


def test_constant_optimal_step_has_its_closed_form_worst_case():
    """gamma = 2/(mu+L): max |1 - gamma lam| = (kappa-1)/(kappa+1) at both ends, so max|p_K| = that^K."""
    for kappa, k in ((10.0, 5), (100.0, 16)):
        mu, L = 1.0 / kappa, 1.0
        steps = np.full(k, 2.0 / (mu + L))
        value = ((kappa - 1) / (kappa + 1)) ** k
        grid = qs.spectrum_grid(mu, L, k, 2001)
        assert grid_max(qs.gd_residual(steps, grid)[-1]) == pytest.approx(value, rel=1e-12)
        assert qs.sup_abs_residual(steps, mu, L)[0] == pytest.approx(value, rel=1e-12)
        assert value >= qs.minimax_value(k, mu, L)


def test_input_checks_and_degenerate_interval():
    with pytest.raises(ValueError, match="0 < mu <= L"):
        qs.chebyshev_steps(0, 0.1, 1.0)
    with pytest.raises(ValueError, match="0 < mu <= L"):
        qs.minimax_value(3, 2.0, 1.0)
    assert qs.minimax_value(3, 1.0, 1.0) == 0.0
    np.testing.assert_allclose(qs.chebyshev_steps(4, 1.0, 1.0), 1.0)
    assert qs.sup_abs_residual([], 0.1, 1.0) == (1.0, 0.1)


# ---- every other schedule: the inequality -------------------------------------------------------------


def _check_not_below_minimax(steps, mu, L):
    k = len(steps)
    c = qs.minimax_value(k, mu, L)
    ext = qs.chebyshev_extrema(k, mu, L)
    # (1) exact rational arithmetic at the K + 1 alternation points (floats): de la Vallee Poussin gives
    # max >= min_j |p_cheb(ext_j)|, which is c at the exact endpoints and c (1 - O(K^4 u^2)) at the rounded
    # interior extrema (T_K' = 0 there); 1e-12 also covers c's own round-off (~1e-13 relative).
    exact = qs.exact_abs_residual(steps, ext)
    assert float(max(exact)) >= c * (1 - 1e-12)
    # (2) the float64 grid maximum the benchmark reports: the grid contains ext, and the product evaluated
    # in float64 is off by at most ((1 + u)^(2K) - 1) prod_k (1 + |gamma_k lam|) <= 2.01 K u prod (...)
    bound = max(float(np.prod(1.0 + np.abs(np.asarray(steps) * lam))) for lam in ext)
    tol = 1e-12 * c + 2.01 * k * U * bound
    grid = qs.spectrum_grid(mu, L, k, 2001)
    gmax = grid_max(qs.gd_residual(steps, grid)[-1])
    assert gmax >= c - tol
    # (3) the exact supremum is at least the grid maximum (same round-off allowance)
    assert qs.sup_abs_residual(steps, mu, L)[0] >= gmax - tol
    return gmax, c


@given(kappa=st.floats(1.5, 1000.0), data=st.data(), k=st.integers(1, 12))
def test_no_schedule_beats_the_chebyshev_minimax_value(kappa, data, k):
    """Hypothesis-drawn steps in [0.1/L, 2/mu] (roots anywhere in [mu/2, 10 L]). Check (1) is exact; the
    float64 allowance of check (2) is an a-priori bound and is loose when prod (1 + gamma lam) is large."""
    L, mu = 1.0, 1.0 / kappa
    steps = data.draw(st.lists(st.floats(0.1 / L, 2.0 / mu), min_size=k, max_size=k))
    _check_not_below_minimax(np.asarray(steps), mu, L)


@pytest.mark.parametrize("steps, mu", [([1.0, 108.0625], 1 / 109.0), ([1.0, 1.9], 1 / 1.9), ([1.0, 1.0, 2.0], 0.1),
                                       ([100.0, 1.0], 0.01)])
def test_exact_supremum_with_roots_at_or_near_the_interval_ends(steps, mu):
    """Roots at L, at mu, or rounded just inside: the supremum is still found (it dominates a fine grid)."""
    grid = np.linspace(mu, 1.0, 200001)
    fine = grid_max(qs.gd_residual(steps, grid)[-1])
    sup, arg = qs.sup_abs_residual(steps, mu, 1.0)
    assert fine * (1 - 1e-12) <= sup <= fine * (1 + 1e-6) and mu <= arg <= 1.0


@pytest.mark.parametrize("kind", ["1/L", "2/(mu+L)", "cheb-permuted", "cheb-perturbed", "oracle"])
def test_named_schedules_are_not_below_the_minimax_value(kind):
    mu, L, k = 0.01, 1.0, 16
    cheb = qs.chebyshev_steps(k, mu, L)
    rng = np.random.default_rng(0)
    steps = {"1/L": np.full(k, 1.0 / L), "2/(mu+L)": np.full(k, 2.0 / (mu + L)),
             "cheb-permuted": rng.permutation(cheb), "cheb-perturbed": cheb * (1 + 1e-3 * rng.standard_normal(k)),
             "oracle": None}[kind]
    if steps is None:
        eig = L * (L / mu) ** (-np.linspace(1.0, 0.0, 250))
        steps = qs.avg_case_optimal_polynomial(eig, 0.0, k, mu, L)["steps"]
    gmax, c = _check_not_below_minimax(steps, mu, L)
    if kind == "cheb-permuted":  # the order does not change the polynomial
        assert gmax == pytest.approx(c, rel=1e-9)
    elif kind != "cheb-perturbed":
        assert gmax > 1.5 * c


# ---- residual polynomials reproduce the solvers; the oracle minimises the expected NMSE ---------------


def test_residual_polynomials_reproduce_run_gd_and_run_fista():
    """Noiseless y = A x with full-rank A: x_k - x = -V diag(p_k(lam)) V^T x for GD and FISTA."""
    problem = LeastSquares(m=9, n=5, kappa=20.0, L=1.0, seed=3)
    batch = problem.sample(4, np.random.default_rng(1)).to(torch.float64)
    lam, vec = np.linalg.eigh(problem.A.T @ problem.A)
    x = batch.x.numpy()
    steps = np.array([1.0, 3.0, 0.7, 12.0, 1.9])
    cases = [(run_gd(problem, batch.y, 5, step=steps).iterates, qs.gd_residual(steps, lam)),
             (run_fista(problem, batch.y, 5).iterates, qs.fista_residual(np.ones(5), fista_momentum(5), lam))]
    for iterates, res in cases:
        for k in range(6):
            predicted = x - ((x @ vec) * res[k]) @ vec.T
            np.testing.assert_allclose(iterates[k].numpy(), predicted, rtol=0, atol=1e-11)


@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 8), noisy=st.booleans())
def test_oracle_minimises_the_expected_nmse(seed, k, noisy):
    """The KKT solution is the global minimiser of a convex quadratic on an affine set: no schedule
    (Chebyshev, constant, random) has a lower expected NMSE (tolerance 1e-10 relative: solve round-off)."""
    rng = np.random.default_rng(seed)
    mu, L = 0.02, 1.0
    eig = np.sort(rng.uniform(mu, L, 30))
    eig[0], eig[-1] = mu, L
    s2 = 1e-3 if noisy else 0.0
    orc = qs.avg_case_optimal_polynomial(eig, s2, k, mu, L)
    best = orc["expected_nmse"]
    for steps in (qs.chebyshev_steps(k, mu, L), np.full(k, 2 / (mu + L)), rng.uniform(1 / L, 1 / mu, k)):
        assert qs.expected_nmse(qs.gd_residual(steps, eig)[-1], eig, s2) >= best * (1 - 1e-10)
    if orc["realizable"]:
        got = qs.expected_nmse(qs.gd_residual(orc["steps"], eig)[-1], eig, s2)
        assert got == pytest.approx(best, rel=1e-6)


def test_expected_nmse_matches_a_monte_carlo_estimate():
    """The formula against an average over 4000 noisy samples (x ~ N(0, I), per-sample SNR 10 dB): the
    standard error of the estimate is about 1.5 % here, so 8 % relative is > 5 standard errors."""
    problem = LeastSquares(m=12, n=6, kappa=10.0, L=1.0, snr_db=10.0, seed=2)
    batch = problem.sample(4000, np.random.default_rng(5)).to(torch.float64)
    eig = np.linalg.eigvalsh(problem.A.T @ problem.A)
    steps = np.array([1.0, 2.0, 5.0])
    iterates = run_gd(problem, batch.y, 3, step=steps).iterates.numpy()
    x = batch.x.numpy()
    measured = ((iterates - x[None]) ** 2).sum(axis=(1, 2)) / (x**2).sum()
    s2 = qs.noise_variance(eig, problem.m, 10.0)
    predicted = qs.expected_nmse(qs.gd_residual(steps, eig), eig, s2)
    np.testing.assert_allclose(measured, predicted, rtol=0.08)
    assert qs.noise_variance(eig, problem.m, None) == 0.0


# ---- quadratic_worst_case ---------------------------------------------------------------------------


@given(h=st.floats(1e-3, 3.0), kappa=st.floats(1.0, 1e4), L=st.floats(1e-2, 1e2), k=st.integers(0, 40))
def test_worst_case_of_a_constant_step_is_the_closed_form(h, kappa, L, k):
    """Constant step gamma = h/L: |1 - gamma lam|^k is monotone on each side of its root, so its max over
    [mu, L] is max(|1 - gamma mu|, |1 - gamma L|)^k, for every layer. Tolerance 1e-12 relative: the product of
    k <= 40 float64 factors against a power differs by at most ~2k u ~ 1e-14."""
    mu, gamma = L / kappa, h / L
    b = qs.quadratic_worst_case(np.full(k, gamma), mu, L)
    q = max(abs(1 - gamma * mu), abs(1 - gamma * L))
    np.testing.assert_allclose(b.values, q ** np.arange(k + 1), rtol=1e-12, atol=0)
    assert b.assumptions_hold and b.tight and b.metric == Metric.DISTANCE and b.status == "derived"
    assert b.extra["exact"] is True and len(b.extra["argmax_lambda"]) == k + 1


def _amplification(steps, mu, L):
    """prod_{j<k} max(1, |1 - gamma_j mu|, |1 - gamma_j L|) for k = 0..K: an a-priori bound on how much
    float64 round-off made at any layer can grow until layer k (each layer multiplies errors by I - gamma M)."""
    f = np.maximum(1.0, np.maximum(np.abs(1 - steps * mu), np.abs(1 - steps * L)))
    return np.concatenate([[1.0], np.cumprod(f)])


@given(problem=strategies.least_squares_problems(strongly_convex=True, max_n=12), data=st.data(),
       seed=strategies.seeds)
def test_worst_case_dominates_measured_gd_trajectories(problem, data, seed):
    """For random LeastSquares (spectrum exactly in [L/kappa, L]) and random schedules (normalized steps in
    [0.01, 2.5], plus possibly one large learned-like step up to 1/mu), measured ||x_k - x*|| / ||x_0 - x*||
    <= bound_k (1 + 1e-9) + 1e-11 A_k at every layer, from x_0 = 0 and from a random x_0.

    The absolute term covers float64 round-off (trajectory and SVD reference, about kappa u <= 1e-12 relative
    to ||x*||) where the bound itself is ~0 (e.g. kappa = 1, step 1/L), grown by at most A_k
    (``_amplification``)."""
    mu, L = problem.L / problem.kappa_param, problem.L
    k = data.draw(st.integers(1, 10))
    h = np.asarray(data.draw(st.lists(st.floats(0.01, 2.5), min_size=k, max_size=k)))
    if data.draw(st.booleans()) and problem.kappa_param > 2.5:
        h[data.draw(st.integers(0, k - 1))] = data.draw(st.floats(2.5, problem.kappa_param))
    steps = h / L
    bound = qs.quadratic_worst_case(steps, mu, L)
    assert bound.assumptions_hold
    tol = 1e-11 * _amplification(steps, mu, L)
    y = problem.sample(4, rng=seed).y
    x_star = problem.reference(y).x.numpy()
    rng = np.random.default_rng([seed, 1])  # not the sampling stream: x_0 would equal x (= x* if noiseless)
    for x0 in (None, torch.as_tensor(rng.standard_normal(x_star.shape))):
        traj = run_gd(problem, y, k, step=steps, x0=x0).iterates.numpy()
        r0 = np.linalg.norm(traj[0] - x_star, axis=-1)
        ratio = np.linalg.norm(traj - x_star[None], axis=-1) / r0[None]
        assert np.all(ratio <= bound.values[:, None] * (1 + 1e-9) + tol[:, None]), (ratio, bound.values)


@given(problem=strategies.least_squares_problems(strongly_convex=True, max_n=10), seed=strategies.seeds,
       k=st.integers(1, 8), h=st.floats(0.1, 1.5))
def test_momentum_worst_case_is_a_grid_value_below_its_markov_upper_bound(problem, seed, k, h):
    """FISTA (Beck-Teboulle momentum, step h/L): measured ratios stay below the rigorous Markov upper bound,
    which is above the grid value; the grid value is at least the minimax value (the grid holds the
    Chebyshev extrema of every degree). Tolerances as in the GD test (|1 - gamma lam| <= 1 here, |beta| < 1)."""
    mu, L = problem.L / problem.kappa_param, problem.L
    steps, beta = np.full(k, h / L), fista_momentum(k)
    b = qs.quadratic_worst_case(steps, mu, L, momentum=beta)
    assert b.assumptions_hold and not b.tight and b.extra["exact"] is False and "GRID" in b.theorem
    upper = np.asarray(b.extra["markov_upper"])
    # (1e-13 absolute: the recurrence (1 + beta) p_k - beta p_{k-1} cancels, round-off ~ u max_j |p_j|)
    assert np.all(b.values <= upper) and np.all(b.values >= np.asarray(b.extra["minimax_value"]) * (1 - 1e-12) - 1e-13)
    y = problem.sample(3, rng=seed).y
    x_star = problem.reference(y).x.numpy()
    traj = run_fista(problem, y, k, step=steps, momentum=beta).iterates.numpy()
    ratio = np.linalg.norm(traj - x_star[None], axis=-1) / np.linalg.norm(traj[0] - x_star, axis=-1)[None]
    assert np.all(ratio <= upper[:, None] * (1 + 1e-9) + 1e-10)


def _diagonal_gd(eigs, steps, x_star, x0, beta=None):
    """GD (or FISTA-type momentum) on f(x) = 0.5 x^T diag(eigs) x - (diag(eigs) x*)^T x, iterates k = 0..K."""
    b = eigs * x_star
    xs, prev = [x0], x0
    for j, g in enumerate(steps):
        x = xs[-1]
        z = x if beta is None else x + beta[j] * (x - prev)
        prev = x
        xs.append(z - g * (eigs * z - b))
    return np.stack(xs)


@pytest.mark.parametrize("kind", ["chebyshev", "learned-like", "constant-1/L", "fista"])
def test_worst_case_is_attained_by_an_eigenvector(kind):
    """A diagonal quadratic whose spectrum holds every layer's argmax lambda (and mu, L): started on the
    eigenvector of layer k's argmax, ||x_k - x*|| / ||x_0 - x*|| equals the bound at layer k (1e-9 relative;
    in 1-D the iteration multiplies by (1 - gamma lam) up to a few u per step)."""
    mu, L, k = 0.01, 1.0, 12
    rng = np.random.default_rng(4)
    steps = {"chebyshev": qs.chebyshev_steps(k, mu, L), "learned-like": rng.uniform(0.5, 60.0, k),
             "constant-1/L": np.full(k, 1.0 / L), "fista": np.full(k, 1.0 / L)}[kind]
    beta = fista_momentum(k) if kind == "fista" else None
    b = qs.quadratic_worst_case(steps, mu, L, momentum=beta)
    eigs = np.array([mu, L, *b.extra["argmax_lambda"]])
    assert np.all((eigs >= mu) & (eigs <= L))
    x_star = rng.standard_normal(eigs.size)
    for layer in range(k + 1):
        i = 2 + layer
        x0 = x_star.copy()
        x0[i] += 3.0  # x_0 - x* along the eigenvector of argmax_lambda[layer]
        traj = _diagonal_gd(eigs, steps, x_star, x0, beta)
        ratio = np.linalg.norm(traj[layer] - x_star) / 3.0
        assert ratio == pytest.approx(b.values[layer], rel=1e-9, abs=1e-300)


def test_worst_case_provenance_assumptions_and_inputs():
    steps = qs.chebyshev_steps(16, 0.01, 1.0)
    b = theory.quadratic_worst_case(steps, 0.01, 1.0)
    assert isinstance(b, Bound) and b.name == "quadratic-worst-case-gd" and b.assumptions_hold and b.tight
    assert b.values[0] == 1.0 and b.at(16) == pytest.approx(qs.minimax_value(16, 0.01, 1.0), rel=1e-9)
    assert "derived" in b.source and "Young 1953" in b.source and "pep_worst_case" in b.notes
    assert b.to_dict()["assumptions_hold"] is True
    # every layer is at least the minimax value of its degree, and dominates the grid maximum
    grid = qs.spectrum_grid(0.01, 1.0, 16, 2001)
    gmax = np.max(np.abs(qs.gd_residual(steps, grid)), axis=1)
    assert np.all(b.values >= gmax * (1 - 1e-12))
    assert np.all(b.values >= np.asarray(b.extra["minimax_value"]) * (1 - 1e-9))
    # a trained parameter (requires grad) is accepted as it is
    param = torch.nn.Parameter(torch.tensor(steps))
    np.testing.assert_array_equal(qs.quadratic_worst_case(param, 0.01, 1.0).values, b.values)
    # failed assumptions: NaN values, never a number
    for args in (([1.0, math.nan], 0.01, 1.0), ([1.0], 2.0, 1.0), ([1.0], 0.0, 1.0), ([1.0], 0.1, math.inf)):
        bad = qs.quadratic_worst_case(*args)
        assert not bad.assumptions_hold and bad.failed and np.all(np.isnan(bad.values))
    bad = qs.quadratic_worst_case([1.0, 1.0], 0.01, 1.0, momentum=[0.0, math.inf])
    assert [a.name for a in bad.failed] == ["momentum finite"] and np.all(np.isnan(bad.values))
    # structural errors raise
    with pytest.raises(ValueError, match="1-D"):
        qs.quadratic_worst_case(np.ones((2, 2)), 0.01, 1.0)
    with pytest.raises(ValueError, match="one value per step"):
        qs.quadratic_worst_case([1.0, 1.0], 0.01, 1.0, momentum=[0.5])
    # a scalar momentum is broadcast; zero momentum is GD, whose exact value the grid value cannot exceed
    zero = qs.quadratic_worst_case(steps, 0.01, 1.0, momentum=0.0)
    assert np.all(zero.values <= b.values * (1 + 1e-12)) and np.all(b.values <= np.asarray(zero.extra["markov_upper"]))
    # an empty schedule: layer 0 only
    empty = qs.quadratic_worst_case([], 0.01, 1.0)
    assert empty.values.tolist() == [1.0] and empty.iterations.tolist() == [0]


def test_theory_package_exports_the_helpers():
    for name in ("quadratic_worst_case", "chebyshev_steps", "minimax_value", "sup_abs_residual", "gd_residual",
                 "fista_residual", "expected_nmse", "avg_case_optimal_polynomial", "spectrum_grid",
                 "chebyshev_extrema"):
        assert getattr(theory, name) is getattr(qs, name) and name in theory.__all__
