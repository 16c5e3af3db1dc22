"""The measured side of a verdict: a trajectory's metric against a certified reference minimizer.

Objective gaps get the reference's duality gap added (the upper end of F(x_k) - F*, so a pass is
certified); distances get the certified ||x_ref - x*|| <= sqrt(2 gap / mu) subtracted when mu > 0.
"""
from __future__ import annotations

import numpy as np
import torch

from unfoldkit.theory.bound import Metric
from unfoldkit.unrolled.problems.base import Problem, Reference
from unfoldkit.unrolled.trajectory import Trajectory


def measure(problem: Problem, y: torch.Tensor, trajectory: Trajectory, reference: Reference,
            metric: str) -> np.ndarray:
    """Measured metric per (k, b), float64, against the reference minimizer: objective gaps include the
    reference gap (upper end); distances subtract the certified reference slack."""
    if metric == Metric.OBJECTIVE_GAP:
        gap = trajectory.objective_gap(problem, y, reference).double().cpu().numpy()
        return gap + reference.gap.cpu().numpy()[None, :]
    dist = trajectory.distance(reference.x).double().cpu().numpy()
    slack = reference_distance_slack(problem, reference)
    if metric == Metric.DISTANCE:
        return dist - slack[None, :]
    if metric == Metric.SQ_DISTANCE:
        return np.maximum(dist - slack[None, :], 0.0) ** 2
    raise ValueError(f"cannot measure metric {metric!r}")


def reference_distance_slack(problem: Problem, reference: Reference) -> np.ndarray:
    """Certified ||x_ref - x*|| <= sqrt(2 gap / mu) when mu > 0; 0 when the gap is 0; else 0 with the
    caller's relative tolerance covering the (uncertified) error."""
    gap = reference.gap.cpu().numpy()
    if problem.mu > 0:
        return np.sqrt(2.0 * gap / problem.mu)
    return np.zeros_like(gap)


def roundoff_floor(problem: Problem, y: torch.Tensor, trajectory: Trajectory, x_star: torch.Tensor,
                   metric: str, reference: Reference | None = None, gain: float = 1.0) -> np.ndarray:
    """Absolute float64 round-off of a measured metric, per (k, b). With c = 8 (n + K) eps and
    d = c (||x_k|| + ||x*||) the round-off of the computed iterate (K iterations add about one eps of ||x||
    each): distances get d (2 d ||x_k - x*|| + d^2 when squared); objective gaps get
    c (|F(x_k)| + |F(x_ref)| + ||y||^2 / 2) (differences of computed values whose terms, like the reference's
    duality gap, are of the size of F(0) = ||y||^2 / 2) plus what d moves F by,
    (||grad f(x_k)|| + lam sqrt(n)) d + (L/2) d^2, plus the reference's certified gap. The factor 8 covers
    the constants of the dot products and norms; ``gain`` (>= 1) multiplies c for runs whose layers amplify
    round-off (a learned weight of norm ||W|| on a dictionary A: 1 + ||W|| ||A||). It is the abs_tol
    ``verify`` uses unless told otherwise."""
    it = trajectory.iterates.double()
    k1, _, n = it.shape
    c = 8.0 * (n + k1) * float(np.finfo(np.float64).eps) * max(1.0, float(gain))
    scale = it.norm(dim=-1).cpu().numpy() + x_star.double().cpu().norm(dim=-1).numpy()[None, :]
    floor = c * scale
    if metric == Metric.OBJECTIVE_GAP:
        assert reference is not None
        f = trajectory.objective(problem, y).double().abs().cpu().numpy()
        flat = it.reshape(-1, n)
        grad = problem.grad(flat, y.double().repeat(k1, 1)).norm(dim=-1).reshape(k1, -1).cpu().numpy()
        lip = grad + float(getattr(problem, "lam", 0.0)) * np.sqrt(n)  # |F(x + d) - F(x)| <= lip ||d|| + L/2 ||d||^2
        scale_f = f + np.abs(reference.objective.double().cpu().numpy())[None, :] \
            + 0.5 * (y.double().cpu() ** 2).sum(dim=-1).numpy()[None, :]
        # the reference's own certified gap: the measured side already carries it as its upper end, and the
        # bound's R comes from the same reference (uncertified when mu = 0), so a difference of the size of
        # that gap is not a counterexample either way
        ref_gap = reference.gap.double().cpu().numpy()[None, :]
        return c * scale_f + lip * floor + 0.5 * problem.L * floor**2 + ref_gap
    if metric == Metric.SQ_DISTANCE:
        dist = trajectory.distance(x_star).double().cpu().numpy()
        return 2.0 * dist * floor + floor**2
    return floor
