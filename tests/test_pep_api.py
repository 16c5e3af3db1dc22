"""PEP API: input validation, Bound provenance, solver failures, program structure, schedule comparison."""
import math

import numpy as np
import pytest
import torch

from unfoldkit.theory.bound import Bound, Metric
from unfoldkit.theory.pep import (
    PEP_SOURCE,
    build_gram_program,
    classical_schedules,
    compare_schedules,
    growth_report,
    initial_worst_case,
    make_spec,
    pep_worst_case,
    silver_rate,
    silver_steps,
    solve_gram,
)
from unfoldkit.theory.pep import gram as pep_gram


# ----------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("kwargs, match", [
    (dict(L=0.0), "L must be > 0"),
    (dict(L=-1.0), "L must be > 0"),
    (dict(L=float("nan")), "L must be a finite"),
    (dict(L=1.0, mu=2.0), "mu must be <= L"),
    (dict(L=1.0, mu=1.0), "use mu < L"),
    (dict(L=1.0, mu=-0.1), "mu must be >= 0"),
    (dict(L=1.0, metric="nmse"), "metric must be one of"),
    (dict(L=1.0, initial="nowhere"), "initial must be one of"),
    (dict(L=1.0, R=0.0), "R must be > 0"),
    (dict(L=1.0, method="newton"), "method must be one of"),
    (dict(L=1.0, momentum=[0.1, 0.2]), "momentum is only used by"),
    (dict(L=1.0, prox_steps=[1.0, 1.0]), "prox_steps are only used by"),
    (dict(L=1.0, method="pgm", metric=Metric.SQ_GRAD_NORM), "smooth methods"),
    (dict(L=1.0, method="agd", momentum=[0.1]), "one value per layer"),
    (dict(L=1.0, method="agd", momentum=[0.1, float("nan")]), "momentum contains NaN"),
    (dict(L=1.0, method="pgm", prox_steps=[1.0, 0.0]), "prox_steps must be > 0"),
])
def test_invalid_inputs_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_spec([1.0, 1.0], **kwargs)


@pytest.mark.parametrize("steps, match", [
    ([], "empty"),
    ([1.0, float("nan")], "steps contains NaN"),
    ([1.0, float("inf")], "steps contains NaN"),
    ([[1.0, 1.0]], "1-D"),
    ([1.0, -0.5], "steps must be > 0"),
    (["a"], "1-D array of real numbers"),
])
def test_invalid_schedules_raise_value_error(steps, match):
    with pytest.raises(ValueError, match=match):
        pep_worst_case(steps, L=1.0)


def test_negative_momentum_and_torch_schedules_are_accepted():
    b = pep_worst_case(torch.tensor([1.0, 1.0, 1.0]), L=1.0, method="agd", momentum=np.array([0.0, -0.3, 0.5]),
                       layers="final")
    assert b.values.shape == (1,) and np.isfinite(b.values).all() and b.values[0] > 0


def test_bad_engine_and_layers():
    with pytest.raises(ValueError, match="engine"):
        pep_worst_case([1.0], L=1.0, engine="mosek")
    with pytest.raises(ValueError, match="layers"):
        pep_worst_case([1.0, 1.0], L=1.0, layers=[3])
    with pytest.raises(ValueError, match="layers"):
        pep_worst_case([1.0, 1.0], L=1.0, layers="some")


# ----------------------------------------------------------------------------------------------- provenance
def test_bound_is_data_with_provenance():
    b = pep_worst_case(np.array([1.0, 1.2, 0.8]), L=1.0, layers="all")
    assert isinstance(b, Bound) and b.status == "confirmed" and b.tight and b.assumptions_hold
    assert b.metric == Metric.OBJECTIVE_GAP and b.source == PEP_SOURCE
    assert "Thm 4 in Math. Prog. 161" in b.source and "Drori & Teboulle 2014" in b.source
    np.testing.assert_array_equal(b.iterations, [0, 1, 2, 3])
    for key in ("solver", "solver_status", "solve_time", "duality_gap", "primal_residual", "dual_residual",
                "gram_size", "num_constraints", "attempts", "steps"):
        assert len(b.extra[key]) in (3, 4), key
    assert b.extra["solver"][1:] == ["CLARABEL"] * 3
    assert max(b.extra["duality_gap"]) < 1e-6
    assert b.to_dict()["status"] == "confirmed"
    assert "SIAM J. Optim." in pep_worst_case([1.0], L=1.0, method="pgm").source
    final = pep_worst_case(np.array([1.0, 1.2, 0.8]), L=1.0, layers="final")
    np.testing.assert_array_equal(final.iterations, [3])
    np.testing.assert_allclose(final.values, b.values[-1:], rtol=1e-7)


def test_layer_zero_closed_forms():
    L, mu, R, D = 2.0, 0.5, 1.5, 0.7
    cases = [(dict(), 0.5 * L * R**2), (dict(metric=Metric.SQ_DISTANCE), R**2),
             (dict(metric=Metric.SQ_GRAD_NORM), L**2 * R**2), (dict(method="pgm"), math.inf),
             (dict(initial="function"), D), (dict(initial="function", metric=Metric.SQ_DISTANCE), 2 * D / mu),
             (dict(initial="function", metric=Metric.SQ_GRAD_NORM), 2 * L * D)]
    for kw, expected in cases:
        spec = make_spec([1.0], L=L, mu=mu, R=R, initial_gap=D, **kw).truncated(0)
        assert initial_worst_case(spec) == pytest.approx(expected), kw


def test_solver_failure_raises_runtime_error_naming_the_solvers(monkeypatch):
    monkeypatch.setattr(pep_gram, "_solve_with", lambda prog, name, extra=None: {"name": name, "status": "infeasible"})
    with pytest.raises(RuntimeError, match=r"CLARABEL: infeasible; SCS: infeasible"):
        pep_worst_case([1.0, 1.0], L=1.0)
    with pytest.raises(RuntimeError, match=r"NOSUCHSOLVER: not installed"):
        solve_gram(make_spec([1.0], L=1.0), solver="nosuchsolver")


def test_fallback_to_scs_is_reported(monkeypatch):
    real = pep_gram._solve_with

    def broken_clarabel(prog, name, extra=None):
        if name == "CLARABEL":
            return {"name": name, "status": "solver_error", "note": "simulated"}
        return real(prog, name, extra)

    monkeypatch.setattr(pep_gram, "_solve_with", broken_clarabel)
    sol = solve_gram(make_spec(np.ones(3), L=1.0))
    assert sol.solver == "SCS" and sol.attempts[0].startswith("CLARABEL: solver_error")
    assert sol.value == pytest.approx(1 / 14, rel=1e-6)


def test_auto_solver_puts_scs_first_for_long_schedules():
    b = pep_worst_case(np.ones(45), L=1.0, solver="auto", layers=[5, 45])
    assert b.extra["solver"] == ["CLARABEL", "SCS"]
    np.testing.assert_allclose(b.values, [1 / 22, 1 / 182], rtol=1e-6)


# ------------------------------------------------------------------------------------------- formulation
@pytest.mark.parametrize("N", [1, 3, 6])
def test_program_is_lean(N):
    """GD, objective: points {*, x_0..x_N}, all ordered pairs, Gram size N + 2; distance: no f-point at x_N;
    proximal gradient: f at {*, x_0..x_{N-1}, x_N}, h at {*, x_1..x_N}, Gram size 2N + 3."""
    gd = build_gram_program(make_spec(np.ones(N), L=1.0))
    assert (gd.gram_size, gd.num_f_points, gd.num_h_points) == (N + 2, N + 2, 0)
    assert gd.num_constraints == (N + 2) * (N + 1) + 1
    dist = build_gram_program(make_spec(np.ones(N), L=1.0, metric=Metric.SQ_DISTANCE))
    assert (dist.gram_size, dist.num_constraints) == (N + 1, (N + 1) * N + 1)
    pgm = build_gram_program(make_spec(np.ones(N), L=1.0, method="pgm"))
    assert (pgm.gram_size, pgm.num_f_points, pgm.num_h_points) == (2 * N + 3, N + 2, N + 1)


def test_preconditioning_is_an_exact_reformulation():
    spec = make_spec(np.array([0.5, 1.5, 1.0, 1.8]), L=1.0, mu=0.05, method="fista")
    plain = solve_gram(spec, precondition=False)
    pre = solve_gram(spec, precondition=True, keep_solution=True)
    assert pre.value == pytest.approx(plain.value, rel=1e-6)
    assert np.linalg.eigvalsh(pre.gram).min() > -1e-7 and pre.gram[0, 0] <= 1 + 1e-7
    assert pre.multipliers.min() > -1e-7


# ------------------------------------------------------------------------------------------- comparison
def test_silver_steps_and_rate():
    np.testing.assert_allclose(silver_steps(7, 2.0) * 2.0,
                               [math.sqrt(2), 2, math.sqrt(2), 2 + math.sqrt(2), math.sqrt(2), 2, math.sqrt(2)])
    assert silver_rate(1, 1.0) == pytest.approx(1 / (1 + math.sqrt(4 * (1 + math.sqrt(2)) ** 2 - 3)))
    with pytest.raises(ValueError, match="2\\^k - 1"):
        silver_rate(6, 1.0)


def test_classical_schedules():
    assert set(classical_schedules(4, 2.0)) == {"constant 1/L", "silver"}
    assert set(classical_schedules(4, 2.0, mu=0.1)) == {"constant 1/L", "constant 2/(L+mu)"}
    fista = classical_schedules(4, 2.0, method="fista")
    assert fista["1/L, no momentum (pgm)"]["method"] == "pgm"


def test_growth_report_flags():
    def bound(values):
        return Bound.build("b", np.arange(len(values)), np.array(values, dtype=float), metric=Metric.OBJECTIVE_GAP,
                           theorem="t", source="s", status="confirmed")
    ok = growth_report(bound([1.0, 0.5, 0.3]))
    assert not ok.grows and ok.final_above_initial is False
    bumpy = growth_report(bound([1.0, 0.5, 0.6, 0.3]))
    assert bumpy.grows and not bumpy.diverges and bumpy.non_monotone_layers == (2,)
    assert bumpy.max_increase == pytest.approx(1.2)
    up = growth_report(bound([1.0, 0.5, 2.0]))
    assert up.diverges and up.final_above_initial and up.final_over_initial == pytest.approx(2.0)
    inf = growth_report(bound([1.0, 0.5, math.inf]))
    assert inf.unbounded_layers == (2,) and inf.diverges
    no_initial = growth_report(bound([math.inf, 0.5, 0.4]))
    assert no_initial.final_above_initial is None and not no_initial.grows


def test_compare_flags_a_divergent_learned_schedule():
    """A learned schedule with long steps: better than 1/L at some layers, worse at the end, and divergent in
    the worst case (final worst case above the initial one); 1/L is monotone; silver is non-monotone but
    does not diverge."""
    learned = np.array([1.5, 1.9, 2.2, 2.6, 2.6])
    cmp = compare_schedules(learned, L=1.0)
    assert set(cmp.bounds) == {"learned", "constant 1/L", "silver"}
    assert cmp.growth["learned"].diverges and "learned" in cmp.flagged()
    assert not cmp.growth["constant 1/L"].grows
    assert cmp.growth["silver"].grows and not cmp.growth["silver"].diverges
    ratio = cmp.ratio_to_best_classical()
    assert cmp.bounds["learned"].values[1] < cmp.bounds["constant 1/L"].values[1]
    assert ratio[-1] > 10.0 and cmp.growth["learned"].final_over_initial > 1.5
    assert "diverges" in cmp.summary() and len(cmp.rows()) == 6


def test_compare_a_good_learned_schedule_strongly_convex():
    cmp = compare_schedules(np.full(3, 2.0 / 1.1), L=1.0, mu=0.1, metric=Metric.SQ_DISTANCE)
    assert not cmp.flagged()
    np.testing.assert_allclose(cmp.ratio_to_best_classical(), 1.0, rtol=1e-6)
