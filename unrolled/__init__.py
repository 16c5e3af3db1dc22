"""unfoldkit.unrolled: problems, operators, step functions, classical solvers and unfolded models.

The lowest layer of unfoldkit: it imports nothing from ``theory``, ``proofs_check`` or ``experiments``.
"""
from unfoldkit.unrolled.problems import (
    LeastSquares,
    Problem,
    ProblemBatch,
    Reference,
    SparseRecovery,
    WorstCaseHuber,
    make_problem,
)
from unfoldkit.unrolled.solvers import run_admm, run_fista, run_gd, run_ista
from unfoldkit.unrolled.trajectory import Trajectory

__all__ = [
    "LeastSquares",
    "Problem",
    "ProblemBatch",
    "Reference",
    "SparseRecovery",
    "Trajectory",
    "WorstCaseHuber",
    "make_problem",
    "run_admm",
    "run_fista",
    "run_gd",
    "run_ista",
]
