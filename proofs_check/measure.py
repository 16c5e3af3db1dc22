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
