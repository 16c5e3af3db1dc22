"""Exact worst cases of (learned) step schedules by performance estimation (PEP), as Bounds with provenance.

Entry point: ``pep_worst_case(steps, L=..., ...)``: a schedule (one step per layer) goes in, a ``Bound`` of
exact per-layer worst cases over the function class comes out; ``compare_schedules`` puts a learned schedule
beside classical ones and flags worst cases that grow with the layer index.

Modules (one idea each):

* ``problem``: what is analysed (``PepSpec``, ``make_spec``, N = 0 closed forms) and what a solve returns
  (``PepSolution``);
* ``gram``: our engine, the Gram-matrix SDP written with cvxpy (``solve_gram``);
* ``pepit``: the reference engine, the same spec written with PEPit (``solve_pepit``);
* ``worst_case``: the entry points (``pep_worst_case``, ``pep_bound``, ``solve_pep``) and the ``Bound``;
* ``compare``: classical schedules, silver steps, growth flags (``compare_schedules``, ``growth_report``).
"""
from unfoldkit.theory.pep.compare import (
    GrowthReport,
    ScheduleComparison,
    classical_schedules,
    compare_schedules,
    growth_report,
    silver_rate,
    silver_steps,
)
from unfoldkit.theory.pep.gram import CERTIFICATE_TOL, build_gram_program, solve_gram
from unfoldkit.theory.pep.pepit import solve_pepit
from unfoldkit.theory.pep.problem import PepSolution, PepSpec, initial_worst_case, make_spec
from unfoldkit.theory.pep.worst_case import (
    ENGINES,
    PEP_SOURCE,
    PEP_SOURCE_COMPOSITE,
    PEP_THEOREM,
    pep_bound,
    pep_worst_case,
    solve_pep,
)

__all__ = [
    "CERTIFICATE_TOL",
    "ENGINES",
    "GrowthReport",
    "PEP_SOURCE",
    "PEP_SOURCE_COMPOSITE",
    "PEP_THEOREM",
    "PepSolution",
    "PepSpec",
    "ScheduleComparison",
    "build_gram_program",
    "classical_schedules",
    "compare_schedules",
    "growth_report",
    "initial_worst_case",
    "make_spec",
    "pep_bound",
    "pep_worst_case",
    "silver_rate",
    "silver_steps",
    "solve_gram",
    "solve_pep",
    "solve_pepit",
]
