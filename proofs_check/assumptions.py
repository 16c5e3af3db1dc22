"""Assumption checks on problems and step schedules: each returns an Assumption
(name, holds, measured, required), with the measured number taken from the problem itself."""
from __future__ import annotations

from typing import Any

import numpy as np

from unfoldkit.theory.bound import Assumption
from unfoldkit.theory.conditions import REL_TOL, step_factor_at_most
from unfoldkit.unrolled.problems.base import Problem


def check_step_size(problem: Problem, step: float, limit: float = 1.0) -> Assumption:
    """gamma <= limit / L with L measured on the problem (limit 1: the hypothesis of the 1/k rates)."""
    return step_factor_at_most(problem.L, float(step), limit)


def check_convergent_step(problem: Problem, step: float) -> Assumption:
    """0 < gamma < 2/L: the range in which GD on an L-smooth convex f is a descent method and in which
    the strongly convex contraction max(|1 - gamma mu|, |1 - gamma L|) is < 1."""
    return step_factor_at_most(problem.L, float(step), 2.0, strict=True)


def check_step_schedule(problem: Problem, steps: Any, limit: float = 1.0, strict: bool = False) -> Assumption:
    """Every step of a schedule satisfies gamma_k L <= limit; the measured value is max_k gamma_k L."""
    arr = np.atleast_1d(np.asarray(steps, dtype=np.float64))
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        return Assumption("step schedule finite and non-empty", False, float("nan"), "finite steps")
    worst = float(arr.max())
    a = step_factor_at_most(problem.L, worst, limit, strict)
    ok = bool(a.holds and np.all(arr > 0))
    op = "<" if strict else "<="
    return Assumption(f"every step gamma_k L {op} {limit:g}", ok, float(worst * problem.L),
                      f"0 < max_k gamma_k L {op} {limit:g}")


def check_strong_convexity(problem: Problem) -> Assumption:
    """mu > 0 (f strongly convex), measured as mu / L = 1 / kappa."""
    ratio = problem.mu / problem.L
    return Assumption("f strongly convex (mu > 0)", bool(ratio > REL_TOL), float(ratio), "mu / L > 0")
