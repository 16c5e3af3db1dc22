"""PEP by constraint generation (theory/pep/constraint_generation.py): the rows it builds are the builder's rows,
its certificate is the full program's certificate, its value is the full formulation's value, unbounded
programs give +inf, and the entry points record which formulation was used.

Tolerance of the value comparison: both formulations accept a solve only when the duality gap, the primal
residual and the dual residual recomputed from the data are <= CERTIFICATE_TOL = 1e-6 (relative); the
primal value is then within ~1e-6 of the dual value and both bracket the exact worst case, so two accepted
solves agree to ~1e-6 relative. Measured (docs/pep.md): differences of 1e-10..4e-7 with K <= 8, and the one
larger difference found (2.3e-6, pgm, mu > 0, F(x_0) - F* initial condition) came from the full program's
Clarabel solve ending 'optimal_inaccurate' (the full program solved by SCS agrees with generation to 2e-9);
so when the full solve is 'optimal_inaccurate', the full program solved with SCS is the reference as well.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from unfoldkit.theory.bound import Metric
from unfoldkit.theory.pep import (
    build_gram_program,
    make_spec,
    pep_bound,
    pep_worst_case,
    point_layout,
    solve_generation,
    solve_gram,
    solve_pep,
    start_pairs,
)
from unfoldkit.theory.pep import constraint_generation as cg
from unfoldkit.theory.pep.gram import CERTIFICATE_TOL, _certificate

RTOL = 1e-6


def _spec(method: str, K: int, mu: float, metric: str, initial: str = "distance", seed: int = 0, **kw):
    rng = np.random.default_rng(seed)
    steps = rng.uniform(0.3, 1.9, K) / 2.0
    momentum = rng.uniform(-0.3, 1.2, K) if method in ("agd", "fista") else None
    return make_spec(steps, L=2.0, mu=mu, method=method, momentum=momentum, metric=metric, initial=initial,
                     R=1.3, **kw)


# ------------------------------------------------------------------------------ rows equal the builder's
CASES = [(m, mu, metric, init) for m in ("gd", "pgm", "agd", "fista") for mu in (0.0, 0.2)
         for metric in (Metric.OBJECTIVE_GAP, Metric.SQ_DISTANCE, Metric.SQ_GRAD_NORM)
         for init in ("distance", "function", "lyapunov")
         if not (metric == Metric.SQ_GRAD_NORM and m in ("pgm", "fista"))]


@pytest.mark.parametrize("method, mu, metric, initial", CASES)
def test_rows_equal_build_gram_program(method, mu, metric, initial):
    spec = _spec(method, 4, mu, metric, initial)
    prog = build_gram_program(spec, precondition=False)
    lay = point_layout(spec)
    assert (lay.gram_size, lay.num_values) == (prog.gram_size, prog.num_values)
    assert (lay.num_f_points, lay.num_h_points) == (prog.num_f_points, prog.num_h_points)
    assert lay.num_pairs == prog.pair_q.shape[0]
    q, b = cg.gram_order_rows(lay, np.arange(lay.num_pairs))
    np.testing.assert_allclose(q, prog.pair_q, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b, prog.pair_b, rtol=0, atol=1e-12)
    # initial condition and objective rows (SCS order -> symmetric matrix -> the builder's entries)
    for (vec, lin, w), (pq, pb) in (((lay.init_vec, lay.init_lin, lay.init_weight), (prog.init_q, prog.init_b)),
                                    ((lay.obj_vec, lay.obj_lin, 1.0), (prog.obj_q, prog.obj_b))):
        row = cg._vec_row(lay, vec, lin, w)
        T = lay.gram_size * (lay.gram_size + 1) // 2
        M = cg._to_matrix(lay.gram_size, row[:T])
        np.testing.assert_allclose(M[prog.rows, prog.cols], pq, rtol=0, atol=1e-12)
        np.testing.assert_allclose(row[T:], pb, rtol=0, atol=1e-12)
    # every pair evaluated from G without the rows = the rows applied to G
    rng = np.random.default_rng(1)
    P = rng.normal(size=(lay.gram_size, lay.gram_size))
    G = P @ P.T
    F = rng.normal(size=lay.num_values)
    svec = G[prog.rows, prog.cols] * prog.weights
    np.testing.assert_allclose(cg.all_pair_values(lay, G, F), prog.pair_q @ svec + prog.pair_b @ F,
                               rtol=1e-12, atol=1e-10)
    # pair indices round-trip
    idx = np.arange(lay.num_pairs)
    np.testing.assert_array_equal(lay.pair_index(*lay.pair_of(idx)), idx)


def test_rows_of_a_general_method_equal_the_builder():
    from unfoldkit.theory.pep import make_linear_spec, ogm

    spec = make_linear_spec(ogm(5, 1.0), L=1.0)
    prog = build_gram_program(spec, precondition=False)
    lay = point_layout(spec)
    q, b = cg.gram_order_rows(lay, np.arange(lay.num_pairs))
    np.testing.assert_allclose(q, prog.pair_q, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b, prog.pair_b, rtol=0, atol=1e-12)


def test_certificate_is_the_full_programs():
    """The certificate recomputed by generation = ``gram._certificate`` of the FULL program at the same
    solution with the multipliers padded by zeros."""
    spec = _spec("pgm", 5, 0.0, Metric.OBJECTIVE_GAP)
    sol, info = solve_generation(spec, solver="SCS", keep_solution=True)
    assert info.pairs_used < info.pairs_total
    prog = build_gram_program(spec, precondition=False)
    lay = point_layout(spec)
    # F at the solution: rebuild it from a fresh solve of the same subset (the values are not stored)
    run = cg._generate(lay, "SCS", start_pairs(lay))
    lam = np.zeros(lay.num_pairs)
    lam[run["active"]] = run["lam"]
    ref = _certificate(prog, run["G"], run["F"], lam, run["lam0"])
    mine = cg._certificate_full(lay, run["A"], run["init_row"], run["obj_row"], run["G"], run["F"], run["lam"],
                                run["lam0"])
    np.testing.assert_allclose(mine, ref, rtol=1e-6, atol=1e-14)
    assert max(ref) <= CERTIFICATE_TOL
    np.testing.assert_array_equal(sol.multipliers != 0, np.isin(np.arange(lay.num_pairs), run["active"])
                                  & (sol.multipliers != 0))


# ------------------------------------------------------------------- equal to the full formulation
def _reference(spec):
    full = solve_gram(spec)
    refs = [full.value]
    if full.status == "optimal_inaccurate":
        try:
            refs.append(solve_gram(spec, solver="SCS").value)
        except RuntimeError:
            pass
    return full, refs


@given(method=st.sampled_from(["gd", "pgm", "agd", "fista"]), K=st.integers(1, 8),
       mu=st.sampled_from([0.0, 0.1, 0.3]), metric=st.sampled_from([Metric.OBJECTIVE_GAP, Metric.DISTANCE]),
       seed=st.integers(0, 2**16))
def test_generation_equals_full_formulation(method, K, mu, metric, seed):
    spec = _spec(method, K, mu, metric, seed=seed)
    full, refs = _reference(spec)
    gen, info = solve_generation(spec)
    assert info.rounds >= 1 and info.pairs_used <= info.pairs_total
    if np.isinf(full.value):
        assert np.isinf(gen.value)
        return
    assert np.isfinite(gen.value)
    assert gen.duality_gap <= CERTIFICATE_TOL or gen.duality_gap * gen.value <= CERTIFICATE_TOL
    assert max(gen.primal_residual, gen.dual_residual) <= CERTIFICATE_TOL
    rel = min(abs(gen.value - r) / max(abs(r), 1e-12) for r in refs)
    assert rel <= RTOL, (spec.describe(), gen.value, refs, gen.attempts, full.attempts)


def test_generation_uses_fewer_pairs_at_longer_horizons():
    spec = make_spec(np.random.default_rng(0).uniform(0.5, 1.9, 30), L=1.0)
    gen, info = solve_generation(spec)
    full = solve_gram(spec, solver="SCS")
    assert abs(gen.value - full.value) <= RTOL * full.value
    assert info.pairs_used == start_pairs(point_layout(spec)).size < info.pairs_total / 5


# ------------------------------------------------------------------------------------------ unbounded
@pytest.mark.parametrize("kwargs", [
    dict(method="pgm", prox_steps=[1.0, 0.5, 1.0]),               # tau != gamma: unbounded (docs/pep.md)
    dict(method="fista", prox_steps=[1.0, 1.0, 2.0]),
    dict(method="gd", initial="function", metric=Metric.SQ_DISTANCE),  # mu = 0: x_0 arbitrarily far
])
def test_unbounded_is_plus_inf(kwargs):
    spec = make_spec([1.0, 1.0, 1.0], L=1.0, **kwargs)
    gen, _ = solve_generation(spec)
    assert gen.value == float("inf") and gen.status.startswith("unbounded")
    assert "verified on every pair" in gen.attempts[-1]
    b = pep_worst_case([1.0, 1.0, 1.0], L=1.0, layers="final", formulation="generation", **kwargs)
    assert b.values[-1] == float("inf")


def test_large_steps_stay_finite():
    """Steps far above 2/L make the worst case grow, but it stays finite at a finite horizon: not +inf."""
    spec = make_spec([3.0, 3.5, 4.0], L=1.0)
    gen, _ = solve_generation(spec)
    assert np.isfinite(gen.value)
    assert abs(gen.value - solve_gram(spec).value) <= RTOL * gen.value


# ---------------------------------------------------------------------------------------- entry points
def test_formulation_bad_value_is_one_line_value_error():
    spec = make_spec([1.0], L=1.0)
    for bad in ("dense", None, 3):
        with pytest.raises(ValueError, match="formulation must be one of") as err:
            solve_pep(spec, formulation=bad)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="formulation must be one of"):
        pep_worst_case([1.0], L=1.0, formulation="fast")
    with pytest.raises(ValueError, match="formulation='generation' is for engine='gram'"):
        solve_pep(spec, engine="pepit", formulation="generation")
    with pytest.raises(ValueError, match="solver for formulation='generation'"):
        solve_pep(spec, solver="OSQP", formulation="generation")


def test_bound_records_formulation_pairs_and_rounds():
    steps = np.random.default_rng(3).uniform(0.5, 1.9, 45)  # d = 47 > AUTO_GENERATION_GRAM_SIZE at K = 45
    b = pep_bound(make_spec(steps, L=1.0), layers=[0, 3, 45])
    assert b.extra["formulation"] == ["closed form", "full", "generation"]
    assert b.extra["generation_pairs"][:2] == [None, None]
    assert b.extra["generation_pairs"][2] < b.extra["generation_pairs_total"][2] == 47 * 46
    assert b.extra["generation_rounds"][2] >= 1
    g = pep_bound(make_spec(steps[:3], L=1.0), layers="final", formulation="generation")
    f = pep_bound(make_spec(steps[:3], L=1.0), layers="final", formulation="full")
    assert g.extra["formulation"] == ["generation"] and f.extra["formulation"] == ["full"]
    assert abs(g.values[-1] - f.values[-1]) <= RTOL * f.values[-1]
