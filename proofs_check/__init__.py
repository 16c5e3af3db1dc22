"""unfoldkit.proofs_check: assumption checks, lemma predicates, hypothesis strategies and the verifier.

Imports from ``unfoldkit.theory`` and ``unfoldkit.unrolled`` only.
"""
from unfoldkit.proofs_check.assumptions import (
    check_convergent_step,
    check_step_size,
    check_strong_convexity,
    check_step_schedule,
)
from unfoldkit.proofs_check.verifier import Verdict, compare_to_bound, verify_classical

__all__ = [
    "Verdict",
    "check_convergent_step",
    "check_step_schedule",
    "check_step_size",
    "check_strong_convexity",
    "compare_to_bound",
    "verify_classical",
]
