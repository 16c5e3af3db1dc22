"""Property tests: on generated instances every iterate of GD, ISTA and FISTA satisfies its classical
bound; the Drori-Teboulle Huber function attains the tight bound; the proof lemmas hold; a violating
configuration is reported as violating its assumption.

Tolerances. Measured objective gaps are F(x_k) - F(x_ref) + (certified reference gap), the upper end of
what is known about F(x_k) - F*, so no tolerance is needed on that side. The bounds use
R = ||x0 - x_ref||: for strongly convex problems enlarged by the certified sqrt(2 gap / mu); for the
LASSO (mu = 0) the reference error is not certified, and a relative tolerance of 1e-6 on the bound covers
a relative error in R of 5e-7, while the references used here reach duality gaps below 1e-10
(||x_ref - x*|| of order 1e-8 or less on these well-posed random instances). An absolute tolerance of
1e-12 covers float64 round-off in evaluating F near its minimum (objective values are O(1)).
"""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from unfoldkit.proofs_check import lemmas, strategies
from unfoldkit.proofs_check.assumptions import (
    check_convergent_step,
    check_step_schedule,
    check_step_size,
    check_strong_convexity,
)
from unfoldkit.proofs_check.verifier import verify_classical
from unfoldkit.theory import rates
from unfoldkit.unrolled.problems import LeastSquares
from unfoldkit.unrolled.solvers import run_gd

REL_TOL, ABS_TOL = 1e-6, 1e-12
STEPS = 60


def _assert_all_hold(verdicts):
    for v in verdicts:
        assert v.bound.assumptions_hold, v.bound.summary()
        assert v.holds, v.summary()


@given(problem=strategies.sparse_problems(), batch=strategies.batch_sizes, seed=strategies.seeds)
def test_ista_and_fista_iterates_meet_their_bounds(problem, batch, seed):
    y = problem.sample(batch, rng=seed).y
    ref = problem.reference(y)
    assert ref.max_gap < 1e-8
    for alg in ("ista", "fista"):
        _assert_all_hold(verify_classical(problem, y, alg, STEPS, reference=ref, rel_tol=REL_TOL,
                                          abs_tol=ABS_TOL))


@given(problem=strategies.least_squares_problems(strongly_convex=False), batch=strategies.batch_sizes,
       seed=strategies.seeds, h=strategies.step_factors(1.0))
def test_gd_convex_iterates_meet_their_bounds(problem, batch, seed, h):
    y = problem.sample(batch, rng=seed).y
    _assert_all_hold(verify_classical(problem, y, "gd", STEPS, bounds=("gd-convex", "gd-convex-tight"),
                                      step=h / problem.L, rel_tol=REL_TOL, abs_tol=ABS_TOL))


@given(problem=strategies.least_squares_problems(strongly_convex=True), batch=strategies.batch_sizes,
       seed=strategies.seeds, h=st.floats(min_value=1e-3, max_value=1.999))
def test_gd_strongly_convex_contraction(problem, batch, seed, h):
    y = problem.sample(batch, rng=seed).y
    # distances are measured minus the certified reference error, so only round-off needs a
    # tolerance: 1e-9 relative on a product of <= 60 contractions in float64
    _assert_all_hold(verify_classical(problem, y, "gd", STEPS, bounds=("gd-strongly-convex",),
                                      step=h / problem.L, rel_tol=1e-9, abs_tol=1e-12))


@given(problem=strategies.huber_problems())
def test_huber_function_attains_the_tight_bound(problem):
    y = problem.sample(2, rng=0).y
    n_steps, h = problem.horizon, problem.step_factor
    traj = run_gd(problem, y, n_steps, step=h / problem.L)
    final = traj.objective_gap(problem, y, problem.reference(y))[-1]
    bound = rates.gd_convex_tight(problem.L, problem.R, n_steps, step=h / problem.L).at(n_steps)
    # equality up to float64 round-off over N steps of a 1-D recursion
    torch.testing.assert_close(final, torch.full_like(final, bound), rtol=1e-10, atol=0.0)


@given(u=st.lists(st.floats(-5, 5), min_size=6, max_size=6), v=st.lists(st.floats(-5, 5), min_size=6,
       max_size=6), theta=st.floats(0, 3))
def test_soft_threshold_lemmas(u, v, theta):
    ut = torch.tensor([u], dtype=torch.float64)
    vt = torch.tensor([v], dtype=torch.float64)
    # tolerance: a few ulps of values of magnitude <= 100
    for check in (lemmas.soft_threshold_firmly_nonexpansive(ut, vt, theta, tol=1e-12),
                  lemmas.soft_threshold_nonexpansive(ut, vt, theta, tol=1e-12),
                  lemmas.prox_optimality_l1(ut, theta, tol=1e-12)):
        assert check.holds, check


@given(problem=strategies.sparse_problems(), seed=strategies.seeds, h=strategies.step_factors(1.0))
def test_smoothness_lemmas_on_lasso(problem, seed, h):
    rng = np.random.default_rng(seed)
    y = problem.sample(3, rng=rng).y
    x = torch.as_tensor(rng.standard_normal((3, problem.n)))
    z = torch.as_tensor(rng.standard_normal((3, problem.n)))
    # values are O(n); 1e-9 absolute is ~1e5 ulps of them
    for check in (lemmas.descent_lemma(problem, x, z, y, tol=1e-9),
                  lemmas.convexity_gradient_inequality(problem, x, z, y, tol=1e-9),
                  lemmas.proximal_gradient_decrease(problem, x, y, h / problem.L, tol=1e-9)):
        assert check.holds, check


def test_lemma_checks_can_fail():
    """The predicates are not vacuous: a wrong constant is caught."""
    p = LeastSquares(m=6, n=4, kappa=10.0, L=1.0, seed=0)
    y = p.sample(2, rng=0).y
    x = torch.zeros(2, 4, dtype=torch.float64)
    z = torch.ones(2, 4, dtype=torch.float64)
    p.L_param = 0.01  # lie about L: the descent lemma must now fail
    assert not lemmas.descent_lemma(p, x, z, y).holds
    p.L_param = 1.0
    assert not lemmas.proximal_gradient_decrease(p, z, y, 5.0).holds  # step far above 1/L


def test_violating_step_is_detected():
    p = LeastSquares(m=8, n=5, kappa=4.0, L=1.0, seed=0)
    y = p.sample(2, rng=0).y
    big = 2.5 / p.L
    a = check_convergent_step(p, big)
    assert a.holds is False and a.measured == pytest.approx(2.5)
    assert check_step_size(p, big).holds is False
    assert check_step_schedule(p, [0.5, 2.5], limit=2.0, strict=True).holds is False
    assert check_step_schedule(p, [0.5, 1.0]).holds is True
    assert check_strong_convexity(p).holds is True
    assert check_strong_convexity(LeastSquares(m=3, n=5, kappa=None)).holds is False
    verdicts = verify_classical(p, y, "gd", 20, step=big)
    assert verdicts and all(not v.bound.assumptions_hold and not v.holds for v in verdicts)
    assert all("FAILS" in v.details["reason"] for v in verdicts)
    # and the method really diverges there: the bound was right to refuse
    d = run_gd(p, y, 20, step=big).distance(p.reference(y).x)
    assert torch.all(d[-1] > 100 * d[0])


def test_verifier_reports_a_real_violation():
    """Compare against a deliberately wrong (too small) bound: the verifier must flag it."""
    from unfoldkit.proofs_check.verifier import compare_to_bound

    b = rates.gd_convex_tight(1.0, 1.0, 5)
    wrong = type(b).build("wrong", b.iterations, b.values / 10, metric=b.metric, theorem="-", source="-",
                          status="derived", assumptions=b.assumptions)
    measured = b.values[:, None] * 0.5
    assert compare_to_bound(measured, b).holds
    v = compare_to_bound(measured, wrong)
    assert not v.holds and v.worst_margin < 0
