"""Any fixed-step first-order method through one PEP path (issue 16): PEPit's own examples, published rates,
the step-matrix form against PEPit on random methods, the quadratic class, and input errors.

Tolerance: 1e-6 relative. Both values are certified SDP optima: ours has relative duality gap and residuals
<= 1e-6 (``CERTIFICATE_TOL``), PEPit's value is its dual objective with Clarabel's default 1e-8 tolerances;
measured disagreements on these examples are <= 2e-7.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unfoldkit.theory.bound import Metric
from unfoldkit.theory.pep import (
    composite_method,
    gradient_method,
    make_linear_spec,
    make_spec,
    method_worst_case,
    proximal_gradient_method,
    smooth_method,
    solve_gram,
    solve_pepit,
)
from unfoldkit.theory.pep import methods as M
from unfoldkit.theory.quadratic_schedules import quadratic_objective_worst_case
from unfoldkit.theory.rates import (
    agd_strongly_convex_rate,
    heavy_ball_rate,
    ogm_g_rate,
    ogm_rate,
    silver_strongly_convex_rate,
    triple_momentum_rate,
)

pytest.importorskip("PEPit")
from PEPit.examples.unconstrained_convex_minimization import (  # noqa: E402
    accelerated_gradient_strongly_convex as ex_agd,
    gradient_descent_quadratics as ex_quad,
    gradient_descent_silver_stepsize_strongly_convex as ex_silver,
    heavy_ball_momentum as ex_hb,
    optimized_gradient as ex_ogm,
    optimized_gradient_for_gradient as ex_ogmg,
    triple_momentum as ex_tmm,
)

RTOL = 1e-6
L, MU = 3.0, 0.1
ALPHA = 1 / (2 * L)
BETA = math.sqrt((1 - ALPHA * MU) * (1 - ALPHA * L))


def _ours(method, **kw):
    return method_worst_case(method, L=L, **kw).values[-1]


CASES = {
    # name: (our method, our options, PEPit example call, published rate, rate is tight)
    "ogm": (lambda n: M.ogm(n, L), {}, lambda n: ex_ogm.wc_optimized_gradient(L, n, solver="CLARABEL", verbose=-1),
            lambda n: ogm_rate(L, 1.0, n), True),
    "ogm-g": (lambda n: M.ogm_g(n, L), dict(metric=Metric.SQ_GRAD_NORM, initial="function"),
              lambda n: ex_ogmg.wc_optimized_gradient_for_gradient(L, n, solver="CLARABEL", verbose=-1),
              lambda n: ogm_g_rate(L, 1.0, n), True),
    "heavy-ball": (lambda n: M.heavy_ball(ALPHA, BETA, n), dict(mu=MU, initial="function"),
                   lambda n: ex_hb.wc_heavy_ball_momentum(MU, L, ALPHA, BETA, n, solver="CLARABEL", verbose=-1),
                   lambda n: heavy_ball_rate(L, MU, ALPHA, BETA, 1.0, n), False),
    "triple-momentum": (lambda n: M.triple_momentum(MU, L, n), dict(mu=MU),
                        lambda n: ex_tmm.wc_triple_momentum(MU, L, n, solver="CLARABEL", verbose=-1),
                        lambda n: triple_momentum_rate(L, MU, 1.0, n), True),
    "agd-strongly-convex": (lambda n: M.agd_strongly_convex(MU, L, n), dict(mu=MU, initial="lyapunov"),
                            lambda n: ex_agd.wc_accelerated_gradient_strongly_convex(MU, L, n, solver="CLARABEL",
                                                                                     verbose=-1),
                            lambda n: agd_strongly_convex_rate(L, MU, 1.0, n), False),
    "silver-strongly-convex": (lambda n: gradient_method(M.silver_strongly_convex_steps(n, MU, L)[0] / L),
                               dict(mu=MU, metric=Metric.SQ_DISTANCE),
                               lambda n: ex_silver.wc_gradient_descent_silver_stepsize_strongly_convex(
                                   L, MU, n, solver="CLARABEL", verbose=-1),
                               lambda n: silver_strongly_convex_rate(L, MU, 1.0, n), False),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("n", [1, 2, 4])
def test_pepit_examples_agree_and_rates_hold(name, n):
    method, kw, example, rate, tight = CASES[name]
    ours = _ours(method(n), **kw)
    pepit_tau, theoretical_tau = example(n)
    assert abs(ours - pepit_tau) <= RTOL * abs(pepit_tau), (ours, pepit_tau)
    published = rate(n)
    assert published.assumptions_hold
    assert float(published.values[-1]) == pytest.approx(theoretical_tau, rel=1e-12)  # the same formula as PEPit's
    assert ours <= float(published.values[-1]) * (1 + RTOL)  # a published upper bound is never below the exact worst case
    if tight:
        assert ours == pytest.approx(float(published.values[-1]), rel=RTOL)


@pytest.mark.parametrize("mu, gamma, n", [(0.1, 1.0, 4), (0.0, 0.5, 5), (0.1, 1.8, 3), (0.2, 0.3, 7)])
def test_gd_on_the_quadratic_class(mu, gamma, n):
    """GD on {f = x^T M x / 2: spectrum in [mu, 1]}, objective gap: the exact polynomial maximum equals PEPit's
    SDP over its quadratic class (RTOL) and PEPit's closed form (round-off)."""
    ours, _ = quadratic_objective_worst_case([gamma] * n, mu, 1.0)
    pepit_tau, theory = ex_quad.wc_gradient_descent_quadratics(mu, 1.0, gamma, n, verbose=-1)
    assert ours == pytest.approx(pepit_tau, rel=RTOL)
    assert ours == pytest.approx(theory, rel=1e-12)


def test_silver_schedule_is_generated():
    steps, rate = M.silver_strongly_convex_steps(4, MU, L)
    kappa = L / MU
    psi = lambda t: (1 + kappa * t) / (1 + t)  # noqa: E731
    z0 = MU / L
    eta = 1 - z0
    y1, z1 = z0 / (eta + math.sqrt(1 + eta**2)), z0 * (eta + math.sqrt(1 + eta**2))
    eta = 1 - z1
    y2, z2 = z1 / (eta + math.sqrt(1 + eta**2)), z1 * (eta + math.sqrt(1 + eta**2))
    # h(0) = [b0]; h(1) = [a1, b1]; h(2) = [a1, a2, a1, b2]
    np.testing.assert_allclose(steps, [psi(y1), psi(y2), psi(y1), psi(z2)], rtol=1e-14)
    assert rate == pytest.approx(((1 - z2) / (1 + z2)) ** 2, rel=1e-14)
    assert len(M.silver_strongly_convex_steps(5, MU, L)[0]) == 5


def test_templates_are_step_matrices():
    """GD with steps gamma_k is x_n = x_0 - sum_{i<n} gamma_i g_i: O[n, i] = gamma_i; FISTA's combination rows."""
    g = np.array([0.5, 0.7, 0.2])
    m = gradient_method(g)
    np.testing.assert_array_equal(m.O, np.tril(np.tile(g, (4, 1)), -1))
    np.testing.assert_array_equal(m.H, m.O[:3])
    f = proximal_gradient_method(g, momentum=[0.0, 0.3, 0.5])
    np.testing.assert_allclose(f.C, [[1, 0, 0, 0], [-0.3, 1.3, 0, 0], [0, -0.5, 1.5, 0]])
    # a template spec and its step-matrix spec give the same worst case
    for spec_t, meth in ((make_spec(g, L=1.0), m),
                         (make_spec(g, L=1.0, method="fista", momentum=[0.0, 0.3, 0.5]), f)):
        spec_l = make_linear_spec(meth, L=1.0)
        assert solve_gram(spec_l).value == pytest.approx(solve_gram(spec_t).value, rel=1e-9)


@settings(max_examples=10, deadline=None)
@given(N=st.integers(1, 3), seed=st.integers(0, 10_000), strongly=st.booleans(),
       metric=st.sampled_from([Metric.OBJECTIVE_GAP, Metric.SQ_DISTANCE, Metric.SQ_GRAD_NORM]))
def test_random_step_matrices_agree_with_pepit(N, seed, strongly, metric):
    """Any strictly lower-triangular H and output O: our Gram SDP equals PEPit on the same method (RTOL)."""
    rng = np.random.default_rng(seed)
    H = np.tril(rng.uniform(0.0, 1.5, (N + 1, N)), -1)
    meth = smooth_method(H)
    spec = make_linear_spec(meth, L=1.0, mu=0.1 if strongly else 0.0, metric=metric)
    ours, ref = solve_gram(spec).value, solve_pepit(spec).value
    assert ours == pytest.approx(ref, rel=RTOL, abs=1e-9)


def test_random_composite_method_agrees_with_pepit():
    rng = np.random.default_rng(3)
    C = np.array([[1.0, 0, 0], [-0.4, 1.4, 0]])
    meth = composite_method(C, rng.uniform(0.3, 1.0, 2))
    spec = make_linear_spec(meth, L=1.0, metric=Metric.SQ_DISTANCE)
    assert solve_gram(spec).value == pytest.approx(solve_pepit(spec).value, rel=RTOL)


def test_mismatched_prox_steps_are_unbounded():
    """tau_k != gamma_k: over all closed convex h the worst case is unbounded (docs/pep.md): +inf, never finite."""
    meth = composite_method([[1.0, 0.0]], [0.5], [1.0])
    assert math.isinf(solve_gram(make_linear_spec(meth, L=1.0)).value)


def test_lyapunov_initial_condition_at_n0():
    b = method_worst_case(M.agd_strongly_convex(MU, L, 2), L=L, mu=MU, initial="lyapunov", layers=[0])
    assert float(b.values[0]) == pytest.approx(L / (L + MU))


@pytest.mark.parametrize("call, match", [
    (lambda: smooth_method(np.ones((3, 2))), "strictly lower triangular"),
    (lambda: smooth_method(np.zeros((2, 2))), r"shape \(N \+ 1, N\)"),
    (lambda: smooth_method(np.zeros((2, 2)), np.zeros((2, 2))), r"O must have shape"),
    (lambda: composite_method([[0.5, 0.0]], [1.0]), "sum to 1"),
    (lambda: composite_method([[1.0, 0.0]], [-1.0]), "gammas must be > 0"),
    (lambda: make_linear_spec("gd", L=1.0), "LinearMethod"),
    (lambda: make_linear_spec(gradient_method([1.0]), L=1.0, mu=2.0), "mu must satisfy"),
    (lambda: make_linear_spec(proximal_gradient_method([1.0]), L=1.0, metric=Metric.SQ_GRAD_NORM), "smooth methods"),
    (lambda: make_linear_spec(gradient_method([1.0]), L=1.0, initial="nope"), "initial must be one of"),
])
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_heavy_ball_rate_refuses_a_beta_outside_its_theorem():
    """Ghadimi et al.'s Thm 4 needs beta = sqrt((1 - alpha mu)(1 - alpha L)): another beta blanks the bound."""
    b = heavy_ball_rate(L, MU, ALPHA, BETA + 0.05, 1.0, 3)
    assert not b.assumptions_hold and np.all(np.isnan(b.values))


def test_lyapunov_closed_forms_at_n0_are_attained_limits():
    """N = 0 under f(x0) - f* + mu/2 ||x0 - x*||^2 <= D: squared distance D/mu (the quadratic mu/2 ||x||^2) and
    squared gradient 2 L^2 D/(L + mu) (the quadratic L/2 ||x||^2: ||grad||^2 = L^2 R^2 with (L + mu) R^2/2 = D)."""
    from unfoldkit.theory.pep import initial_worst_case

    m = M.agd_strongly_convex(MU, L, 1)
    d = initial_worst_case(make_linear_spec(m, L=L, mu=MU, metric=Metric.SQ_DISTANCE, initial="lyapunov",
                                            initial_gap=2.0))
    g = initial_worst_case(make_linear_spec(m, L=L, mu=MU, metric=Metric.SQ_GRAD_NORM, initial="lyapunov",
                                            initial_gap=2.0))
    assert d == pytest.approx(2.0 / MU) and g == pytest.approx(2 * L * L * 2.0 / (L + MU))
    # one gradient step 1/L contracts the distance on F_{mu,L}: the exact worst case after it stays below the start's
    one = method_worst_case(m, L=L, mu=MU, metric=Metric.SQ_DISTANCE, initial="lyapunov", initial_gap=2.0)
    assert float(one.values[-1]) <= d * (1 + RTOL)
