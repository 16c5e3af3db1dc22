"""Exact worst cases of (learned) step schedules by performance estimation (PEP), as Bounds with provenance.

Entry point: ``pep_worst_case(steps, L=..., ...)``: a schedule (one step per layer) goes in, a ``Bound`` of
exact per-layer worst cases over the function class comes out; ``compare_schedules`` puts a learned schedule
beside classical ones and flags worst cases that grow with the layer index.

Modules (one idea each):

* ``problem``: what is analysed (``PepSpec``, ``make_spec``, N = 0 closed forms) and what a solve returns
  (``PepSolution``);
* ``methods``: any fixed-step method in step-matrix form (``LinearMethod``), the classical methods as its
  constructors (GD, AGD, ISTA, FISTA, OGM, OGM-G, heavy ball, triple momentum, strongly convex AGD, silver
  steps), and ``method_worst_case``;
* ``gram``: our engine, the Gram-matrix SDP written with cvxpy (``solve_gram``);
* ``constraint_generation``: the same SDP at long horizons, solved with a growing subset of the pairs until
  every pair holds (``solve_generation``; ``formulation=`` of the entry points);
* ``pepit``: the reference engine, the same spec written with PEPit (``solve_pepit``);
* ``worst_case``: the entry points (``pep_worst_case``, ``pep_bound``, ``solve_pep``) and the ``Bound``;
* ``compare``: classical schedules, silver steps, growth flags (``compare_schedules``, ``growth_report``).

The names below are imported from their module on first use (PEP 562), so that importing this package
does not load cvxpy and PEPit.
"""
from importlib import import_module
from typing import Any

#: the public names, by the module that defines them
_EXPORTS = {
    "compare": ("GrowthReport", "ScheduleComparison", "classical_schedules", "compare_schedules", "growth_report",
                "silver_rate", "silver_steps"),
    "constraint_generation": ("GENERATION_TOL", "GenerationInfo", "point_layout", "solve_generation",
                              "start_pairs"),
    "gram": ("CERTIFICATE_TOL", "build_gram_program", "solve_gram"),
    "methods": ("LinearMethod", "agd_strongly_convex", "composite_method", "gradient_method", "heavy_ball",
                "method_worst_case", "ogm", "ogm_g", "proximal_gradient_method", "silver_strongly_convex_steps",
                "smooth_method", "triple_momentum"),
    "pepit": ("solve_pepit",),
    "problem": ("PepSolution", "PepSpec", "initial_worst_case", "make_linear_spec", "make_spec"),
    "worst_case": ("ENGINES", "FORMULATIONS", "PEP_SOURCE", "PEP_SOURCE_COMPOSITE", "PEP_THEOREM", "pep_bound",
                   "pep_worst_case", "solve_pep"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """A public name, imported from its module (then cached in this package's namespace)."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
