"""The verifier: run an algorithm on sampled problems and hold each iterate against its bound.

A measured objective gap uses a reference minimizer, so F(x_k) - F* lies in
[measured, measured + reference gap]; the verifier compares the *upper* end with the bound (a violation
it reports is real, a pass is certified up to the stated tolerances). For the distance-based R in a
bound it uses ||x0 - x_ref||, enlarged by the certified ||x_ref - x*|| <= sqrt(2 gap / mu) when mu > 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from unfoldkit.theory.bound import Bound, Metric
from unfoldkit.theory.rates import CLASSICAL_RATES
from unfoldkit.unrolled.problems.base import Problem, Reference
from unfoldkit.unrolled.solvers import Trajectory, run_fista, run_gd, run_ista

RUNNERS = {"gd": run_gd, "ista": run_ista, "fista": run_fista}


@dataclass(frozen=True)
class Verdict:
    """Outcome of comparing measured values (K+1, B) with a bound.

    ``worst_margin`` = min over k, b of (bound - measured_upper - tolerance), negative on a violation;
    ``worst`` locates it as (k, b); ``tightness`` = min over k >= 1 and b of bound / measured (1 means the
    bound is attained, large means loose; k = 0 is skipped as trivially tight for linear rates); ``holds`` is False also when the bound's assumptions fail.
    """

    bound: Bound
    holds: bool
    worst_margin: float
    worst: tuple[int, int]
    tightness: float
    measured_max: np.ndarray
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        state = "holds" if self.holds else "VIOLATED" if self.bound.holds else "not applicable"
        return (f"{self.bound.name}: {state}; worst margin {self.worst_margin:.3e} at k={self.worst[0]}, "
                f"tightness {self.tightness:.3g}")


def compare_to_bound(measured: np.ndarray, bound: Bound, rel_tol: float = 0.0,
                     abs_tol: float = 0.0) -> Verdict:
    """Check measured[k, b] <= bound.values[k(, b)] * (1 + rel_tol) + abs_tol for every k, b.

    ``measured`` must already be the upper end of what is known (e.g. measured gap + reference gap).
    Iterations where the bound is +inf are skipped; a NaN bound (assumption failed) fails the verdict.
    """
    meas = np.asarray(measured, dtype=np.float64)
    if meas.ndim == 1:
        meas = meas[:, None]
    vals = np.asarray(bound.values, dtype=np.float64)
    if vals.ndim == 1:
        vals = np.broadcast_to(vals[:, None], meas.shape)
    if vals.shape != meas.shape:
        raise ValueError(f"measured has shape {meas.shape} but bound values broadcast to {vals.shape}")
    finite = np.isfinite(vals)
    margin = np.where(finite, vals * (1 + rel_tol) + abs_tol - meas, np.inf)
    if not bound.holds or np.isnan(vals).any():
        return Verdict(bound, False, float("nan"), (0, 0), float("nan"), meas.max(axis=1),
                       {"reason": "bound not applicable: " + "; ".join(str(a) for a in bound.failed)})
    idx = np.unravel_index(np.argmin(margin), margin.shape)
    worst_margin = float(margin[idx])
    mmax = meas.max(axis=1)
    usable = finite & (meas > 0)
    if usable[1:].any():  # iteration 0 is trivially tight for rates that start at their initial value
        usable[0] = False
    tightness = float(np.min(vals[usable] / meas[usable])) if usable.any() else math.inf
    return Verdict(bound, worst_margin >= 0, worst_margin, (int(idx[0]), int(idx[1])), tightness, mmax)


def measure(problem: Problem, y: torch.Tensor, trajectory: Trajectory, reference: Reference,
            metric: str) -> np.ndarray:
    """Upper end of the measured metric per (k, b), float64: objective gaps include the reference gap."""
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


def verify_classical(problem: Problem, y: torch.Tensor, algorithm: str, num_steps: int,
                     bounds: tuple[str, ...] | None = None, step: float | None = None,
                     reference: Reference | None = None, rel_tol: float = 1e-6,
                     abs_tol: float = 0.0) -> list[Verdict]:
    """Run GD, ISTA or FISTA for ``num_steps`` on the batch ``y`` and check every iterate against each
    applicable classical bound (all of CLASSICAL_RATES for that algorithm by default)."""
    if algorithm not in RUNNERS:
        raise ValueError(f"algorithm must be one of {sorted(RUNNERS)}, got {algorithm!r}")
    ref = problem.reference(y) if reference is None else reference
    traj = RUNNERS[algorithm](problem, y, num_steps, step=step)
    gamma = 1.0 / problem.L if step is None else float(step)
    x0 = traj.iterates[0]
    r = (x0 - ref.x.to(x0.dtype)).norm(dim=-1).double().cpu().numpy() + reference_distance_slack(problem, ref)
    names = bounds or tuple(n for n, (_, alg, _) in CLASSICAL_RATES.items() if alg == algorithm)
    verdicts = []
    for name in names:
        fn, alg, needs_mu = CLASSICAL_RATES[name]
        if alg != algorithm:
            raise ValueError(f"bound {name!r} governs {alg}, not {algorithm}")
        args = (problem.L, problem.mu) if needs_mu else (problem.L,)
        bound = fn(*args, r, num_steps, step=gamma)
        meas = measure(problem, y, traj, ref, bound.metric)
        verdicts.append(compare_to_bound(meas, bound, rel_tol=rel_tol, abs_tol=abs_tol))
    return verdicts
