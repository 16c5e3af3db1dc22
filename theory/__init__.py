"""unfoldkit.theory: bounds with provenance (classical rates, PEP worst cases, LISTA-CP/ALISTA theory).

Imports only from ``unfoldkit.unrolled`` below it.
"""
from unfoldkit.theory.bound import Assumption, Bound, Metric
from unfoldkit.theory.pep import pep_worst_case
from unfoldkit.theory.pep_compare import compare_schedules
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
    "compare_schedules",
    "pep_worst_case",
    "fista_convex",
    "fista_convex_t",
    "gd_convex",
    "gd_convex_tight",
    "gd_strongly_convex",
    "gd_strongly_convex_objective",
    "ista_convex",
    "ista_convex_tight",
]
