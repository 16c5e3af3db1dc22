"""The inequalities the convergence proofs rest on, as batched predicates checked on generated data.

Each returns a LemmaCheck: whether the inequality held on every row within ``tol`` and the worst
margin (rhs - lhs, negative when violated). Tolerances are absolute, in the units of the inequality,
and the caller states why they suffice (round-off of the dtype in use).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from unfoldkit.unrolled.operators import soft_threshold
from unfoldkit.unrolled.problems.base import Problem


@dataclass(frozen=True)
class LemmaCheck:
    name: str
    holds: bool
    worst_margin: float


def _result(name: str, lhs: torch.Tensor, rhs: torch.Tensor, tol: float) -> LemmaCheck:
    margin = rhs - lhs
    return LemmaCheck(name, bool((margin >= -tol).all()), float(margin.min()))


def soft_threshold_firmly_nonexpansive(u: torch.Tensor, v: torch.Tensor, threshold: float,
                                       tol: float = 1e-12) -> LemmaCheck:
    """||P u - P v||^2 <= <P u - P v, u - v> for P = soft_threshold(., theta), theta >= 0: P is the prox
    of theta ||.||_1, and proximal operators of convex functions are firmly nonexpansive
    (Bauschke & Combettes 2017, Prop. 12.28)."""
    d = soft_threshold(u, threshold) - soft_threshold(v, threshold)
    return _result("soft threshold firmly nonexpansive", (d * d).sum(-1), (d * (u - v)).sum(-1), tol)


def soft_threshold_nonexpansive(u: torch.Tensor, v: torch.Tensor, threshold: float,
                                tol: float = 1e-12) -> LemmaCheck:
    """||P u - P v|| <= ||u - v|| (implied by firm nonexpansiveness and Cauchy-Schwarz)."""
    d = soft_threshold(u, threshold) - soft_threshold(v, threshold)
    return _result("soft threshold nonexpansive", d.norm(dim=-1), (u - v).norm(dim=-1), tol)


def prox_optimality_l1(v: torch.Tensor, threshold: float, tol: float = 1e-12) -> LemmaCheck:
    """p = prox_{theta||.||_1}(v) iff v - p in theta d||p||_1: |v_i - p_i| <= theta everywhere and
    v_i - p_i = theta sign(p_i) where p_i != 0 (Fermat's rule). Margin: theta - |v - p| and -|v - p -
    theta sign(p)| on the support."""
    p = soft_threshold(v, threshold)
    r = v - p
    off = threshold - r.abs()
    on = -(r - threshold * torch.sign(p)).abs()
    margin = torch.where(p != 0, on, off).min(dim=-1).values
    return LemmaCheck("prox optimality of soft threshold", bool((margin >= -tol).all()), float(margin.min()))


def descent_lemma(problem: Problem, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor,
                  tol: float = 1e-10) -> LemmaCheck:
    """f(z) <= f(x) + <grad f(x), z - x> + (L/2)||z - x||^2 for L-smooth f (Nesterov 2004, Lemma 1.2.3)."""
    lhs = problem.smooth(z, y)
    d = z - x
    rhs = problem.smooth(x, y) + (problem.grad(x, y) * d).sum(-1) + 0.5 * problem.L * (d * d).sum(-1)
    return _result("descent lemma", lhs, rhs, tol)


def convexity_gradient_inequality(problem: Problem, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor,
                                  tol: float = 1e-10) -> LemmaCheck:
    """f(z) >= f(x) + <grad f(x), z - x> + (mu/2)||z - x||^2 (mu-strong convexity; mu = 0: convexity)."""
    d = z - x
    lower = problem.smooth(x, y) + (problem.grad(x, y) * d).sum(-1) + 0.5 * problem.mu * (d * d).sum(-1)
    return _result("first-order convexity", lower, problem.smooth(z, y), tol)


def proximal_gradient_decrease(problem: Problem, x: torch.Tensor, y: torch.Tensor, step: float,
                               tol: float = 1e-10) -> LemmaCheck:
    """Sufficient decrease of one proximal gradient step with gamma <= 1/L (Beck & Teboulle 2009,
    Lemma 2.3 with z = x): F(x+) <= F(x) - (1/(2 gamma)) ||x+ - x||^2."""
    xp = problem.prox(x - step * problem.grad(x, y), step)
    d = xp - x
    rhs = problem.objective(x, y) - (d * d).sum(-1) / (2.0 * step)
    return _result("proximal gradient sufficient decrease", problem.objective(xp, y), rhs, tol)
