"""unfoldkit.theory: bounds with provenance (convergence rates; later PEP, Lipschitz, generalization).

Imports only from ``unfoldkit.unrolled`` below it.
"""
from unfoldkit.theory.bound import Assumption, Bound, Metric
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
    "fista_convex",
    "fista_convex_t",
    "gd_convex",
    "gd_convex_tight",
    "gd_strongly_convex",
    "gd_strongly_convex_objective",
    "ista_convex",
    "ista_convex_tight",
]
