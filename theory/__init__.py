"""unfoldkit.theory: bounds with provenance (classical rates, PEP worst cases, LISTA-CP/ALISTA theory, worst and
average case of step schedules on quadratics).

Imports only from ``unfoldkit.unrolled`` below it.
"""
from unfoldkit.theory.bound import Assumption, Bound, Metric
from unfoldkit.theory.pep import compare_schedules, pep_worst_case
from unfoldkit.theory.quadratic_schedules import (
    avg_case_optimal_polynomial,
    chebyshev_extrema,
    chebyshev_steps,
    expected_nmse,
    fista_residual,
    gd_residual,
    minimax_value,
    quadratic_worst_case,
    spectrum_grid,
    sup_abs_residual,
)
from unfoldkit.theory.rates import (
    CLASSICAL_RATES,
    fista_convex,
    fista_convex_t,
    gd_convex,
    gd_convex_tight,
    gd_strongly_convex,
    gd_strongly_convex_objective,
    ista_convex,
    ista_convex_tight,
)

__all__ = [
    "Assumption",
    "Bound",
    "CLASSICAL_RATES",
    "Metric",
    "avg_case_optimal_polynomial",
    "chebyshev_extrema",
    "chebyshev_steps",
    "compare_schedules",
    "expected_nmse",
    "fista_residual",
    "gd_residual",
    "minimax_value",
    "pep_worst_case",
    "quadratic_worst_case",
    "spectrum_grid",
    "sup_abs_residual",
    "fista_convex",
    "fista_convex_t",
    "gd_convex",
    "gd_convex_tight",
    "gd_strongly_convex",
    "gd_strongly_convex_objective",
    "ista_convex",
    "ista_convex_tight",
]
