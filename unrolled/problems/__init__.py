"""Problem families: sparse recovery / LASSO, least squares, and the Drori-Teboulle worst case."""
from __future__ import annotations

from typing import Any

from unfoldkit.unrolled.problems.base import Problem, ProblemBatch, Reference
from unfoldkit.unrolled.problems.linear import LinearInverseProblem
from unfoldkit.unrolled.problems.quadratic import LeastSquares
from unfoldkit.unrolled.problems.rpca import RobustPCA, RpcaBatch, RpcaReference, pcp_duality_gap, rpca_constants
from unfoldkit.unrolled.problems.sparse import BoundedSparseRecovery, SparseRecovery, lasso_duality_gap, perturbed_dictionary
from unfoldkit.unrolled.problems.worst_case import WorstCaseHuber

#: name -> family, for checkpoints and the command line
FAMILIES: dict[str, type[Problem]] = {
    SparseRecovery.name: SparseRecovery,
    BoundedSparseRecovery.name: BoundedSparseRecovery,
    LeastSquares.name: LeastSquares,
    WorstCaseHuber.name: WorstCaseHuber,
}


def make_problem(name: str, **params: Any) -> Problem:
    """Build a problem family by its registry name (see FAMILIES) from its ``params()`` dict."""
    if name not in FAMILIES:
        raise ValueError(f"unknown problem family {name!r}; known: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name](**params)


__all__ = [
    "BoundedSparseRecovery",
    "FAMILIES",
    "LeastSquares",
    "LinearInverseProblem",
    "Problem",
    "ProblemBatch",
    "Reference",
    "RobustPCA",
    "RpcaBatch",
    "RpcaReference",
    "SparseRecovery",
    "WorstCaseHuber",
    "lasso_duality_gap",
    "make_problem",
    "pcp_duality_gap",
    "perturbed_dictionary",
    "rpca_constants",
]
