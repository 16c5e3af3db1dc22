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

    @property
    def state(self) -> str:
        """"holds" or "violated" (a lemma has no assumptions left to fail once its inputs are built)."""
        return "holds" if self.holds else "violated"


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


def prox_three_point(v: torch.Tensor, z: torch.Tensor, threshold: float, tol: float = 1e-12) -> LemmaCheck:
    """Three-point property of the prox (Chen & Teboulle 1993, Lemma 3.2; Beck 2017, Thm 6.39): with
    p = prox_{theta ||.||_1}(v), for every z,
        theta ||z||_1 + 0.5||z - v||^2 >= theta ||p||_1 + 0.5||p - v||^2 + 0.5||z - p||^2
    (the prox objective is 1-strongly convex and minimized at p)."""
    p = soft_threshold(v, threshold)
    lhs = threshold * p.abs().sum(-1) + 0.5 * ((p - v) ** 2).sum(-1) + 0.5 * ((z - p) ** 2).sum(-1)
    rhs = threshold * z.abs().sum(-1) + 0.5 * ((z - v) ** 2).sum(-1)
    return _result("prox three-point inequality", lhs, rhs, tol)


def interpolation_inequality(problem: Problem, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor,
                             tol: float = 1e-10) -> LemmaCheck:
    """F_{mu,L} interpolation (Taylor, Hendrickx & Glineur 2017, Math. Program. 161, Thm 4): for f in F_{mu,L},
        f(x) >= f(z) + <g_z, x - z> + 1/(2(1 - mu/L)) ((1/L)||g_x - g_z||^2 + mu||x - z||^2
                                                      - 2 (mu/L) <g_x - g_z, x - z>),
    g = grad f; with mu = L (f quadratic with a scalar Hessian) it reads f(x) = f(z) + <g_z, x-z> + L/2||x-z||^2,
    checked here only for mu < L."""
    L, mu = problem.L, problem.mu
    gx, gz = problem.grad(x, y), problem.grad(z, y)
    d, dg = x - z, gx - gz
    # the same quantity in the form 1/(2L)||dg||^2 + mu/(2(1 - mu/L))||d - dg/L||^2, stable as mu -> L
    # (||d - dg/L|| <= (1 - mu/L)||d|| on F_{mu,L}, so the large factor meets a small norm, not round-off)
    r = d - dg / L
    quad = (dg * dg).sum(-1) / (2 * L) + mu * (r * r).sum(-1) / (2 * (1 - mu / L))
    rhs = problem.smooth(x, y)
    lhs = problem.smooth(z, y) + (gz * d).sum(-1) + quad
    return _result("F_{mu,L} interpolation inequality", lhs, rhs, tol)


def lista_cp_layer_step(W: torch.Tensor, A: torch.Tensor, x: torch.Tensor, x_star: torch.Tensor,
                        theta: torch.Tensor, tol: float = 1e-10) -> LemmaCheck:
    """One LISTA-CP layer x+ = eta_theta(x + W^T A (x* - x)) (noiseless y = A x*, unit diagonal W_i^T A_i = 1,
    mu = max_{i != j} |W_i^T A_j|), with supp(x) in S = supp(x*), |S| = s, theta >= mu ||x - x*||_1: no false
    positive (supp(x+) in S) and ||x+ - x*||_1 <= (s - 1) mu ||x - x*||_1 + s theta (Chen et al. 2018, proof of
    Thm 2; Liu et al. 2019, proof of Thm 1). Margin: the recursion's slack, -inf-like (-1) on a false positive.
    ``theta`` has one value per row."""
    G = W.T @ A
    mu = (G - torch.diag(torch.diagonal(G))).abs().max()
    xp = soft_threshold(x + (x_star - x) @ G.T, theta[:, None])
    support = x_star != 0
    s = support.sum(-1)
    e = (x - x_star).abs().sum(-1)
    rhs = (s - 1) * mu * e + s * theta
    lhs = (xp - x_star).abs().sum(-1)
    fp = ((xp != 0) & ~support).any(-1)
    margin = torch.where(fp, torch.full_like(rhs, -1.0), rhs - lhs)
    return LemmaCheck("LISTA-CP layer step", bool((margin >= -tol).all()), float(margin.min()))
