"""unfoldkit.proofs_check: assumption checks, lemma predicates, hypothesis strategies, the guarantee registry
and the verifier (one path for classical solvers and unfolded models).

Imports from ``unfoldkit.theory`` and ``unfoldkit.unrolled`` only.
"""
from unfoldkit.proofs_check.assumptions import (
    check_convergent_step,
    check_step_schedule,
    check_step_size,
    check_strong_convexity,
)
from unfoldkit.proofs_check.guarantees import REGISTRY, Coverage, Guarantee, coverage
from unfoldkit.proofs_check.targets import Target, as_target, classical
from unfoldkit.proofs_check.verdict import Verdict, compare_to_bound, verdicts_dict
from unfoldkit.proofs_check.verifier import verify, verify_classical

__all__ = [
    "REGISTRY",
    "Coverage",
    "Guarantee",
    "Target",
    "Verdict",
    "as_target",
    "check_convergent_step",
    "check_step_schedule",
    "check_step_size",
    "check_strong_convexity",
    "classical",
    "compare_to_bound",
    "coverage",
    "verdicts_dict",
    "verify",
    "verify_classical",
]
