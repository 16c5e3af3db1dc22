"""Numeric hypotheses that rate theorems state on their own inputs (step sizes, constants).

Each returns an Assumption (name, holds, measured, required). A relative slack of ``REL_TOL`` absorbs
the round-off of computing gamma = 1/L in float64 (gamma L = 1 +- a few ulps); it never admits a step
that is larger in any meaningful sense.
"""
from __future__ import annotations

import math

from unfoldkit.theory.bound import Assumption

REL_TOL = 1e-12


def step_factor_at_most(L: float, step: float, limit: float, strict: bool = False) -> Assumption:
    """The normalized step h = gamma L must satisfy 0 < h <= limit (or < limit when ``strict``)."""
    h = step * L
    op = "<" if strict else "<="
    if strict:
        ok = 0 < h < limit * (1 - REL_TOL) or (0 < h < limit)
    else:
        ok = 0 < h <= limit * (1 + REL_TOL)
    return Assumption(f"step size gamma L {op} {limit:g}", bool(ok and math.isfinite(h)), float(h),
                      f"0 < gamma L {op} {limit:g} (gamma {op} {limit / L:.6g})")


def positive_constant(name: str, value: float) -> Assumption:
    """A constant (L, R, mu) that the theorem needs strictly positive and finite."""
    ok = math.isfinite(value) and value > 0
    return Assumption(f"{name} > 0", bool(ok), float(value), f"{name} > 0 and finite")


def ordered_constants(mu: float, L: float) -> Assumption:
    """Strong convexity and smoothness constants must satisfy 0 < mu <= L."""
    ok = 0 < mu <= L * (1 + REL_TOL)
    return Assumption("0 < mu <= L", bool(ok), float(mu / L) if L > 0 else float("nan"), "0 < mu/L <= 1")
