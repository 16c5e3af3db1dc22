"""Property: a PEP worst case is never below the error measured on random instances of its
function class, for random (learned-like) schedules, including steps above 2/L.

Tolerances: the measured side is float64 and includes the reference's certified gap; the PEP side is an SDP
solved to ~1e-8 with certified duality gaps, but its relative accuracy degrades to about 1e-5 when the
worst case is orders of magnitude below its initial value (docs/pep.md), hence 1e-5 relative plus 1e-9
absolute (values are normalized by L R^2 = O(1)). The LASSO reference distance R is uncertified (mu = 0):
1e-5 relative also covers a relative error of 5e-6 in R, far above what duality gaps < 1e-10 imply.
"""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from unfoldkit.proofs_check import strategies
from unfoldkit.theory.bound import Metric
from unfoldkit.theory.pep import pep_worst_case
from unfoldkit.unrolled.solvers import run_gd, run_ista

REL, ABS = 1e-5, 1e-9
def normalized_gaps(problem, y, traj, ref):
    """(F(x_k) - F(x_ref) + certified gap) / ||x0 - x_ref||^2 per (k, b), and the squared radii."""
    r2 = np.maximum(((traj.iterates[0] - ref.x) ** 2).sum(-1).double().numpy(), 1e-300)
    gap = traj.objective_gap(problem, y, ref).double().numpy() + ref.gap.numpy()[None]
    return gap / r2[None], r2


schedules = st.lists(st.floats(min_value=0.05, max_value=2.5), min_size=1, max_size=3)


@given(problem=strategies.least_squares_problems(strongly_convex=True, max_n=12), h=schedules,
       seed=strategies.seeds)
def test_gd_pep_dominates_random_quadratics(problem, h, seed):
    y = problem.sample(4, rng=seed).y
    ref = problem.reference(y)
    steps = np.asarray(h) / problem.L
    traj = run_gd(problem, y, len(h), step=steps)
    gap, r2 = normalized_gaps(problem, y, traj, ref)
    dist = ((traj.iterates - ref.x) ** 2).sum(-1).double().numpy() / r2[None]
    # F_{mu,L} grows as mu shrinks, so the PEP over mu' = min(mu, 0.999 L) still dominates (PEP rejects
    # the degenerate class mu = L, a single quadratic, which kappa = 1 draws)
    mu = min(problem.mu, 0.999 * problem.L)
    for metric, measured in ((Metric.OBJECTIVE_GAP, gap), (Metric.SQ_DISTANCE, dist)):
        wc = pep_worst_case(steps, L=problem.L, mu=mu, method="gd", metric=metric, R=1.0).values
        assert np.all(measured <= wc[:, None] * (1 + REL) + ABS), (metric, measured.max(1), wc)


@given(problem=strategies.sparse_problems(max_m=12, max_n=20), h=st.lists(st.floats(0.05, 1.5), min_size=1,
       max_size=3), seed=strategies.seeds)
def test_ista_pep_dominates_random_lasso(problem, h, seed):
    y = problem.sample(3, rng=seed).y
    ref = problem.reference(y)
    steps = np.asarray(h) / problem.L
    traj = run_ista(problem, y, len(h), step=steps)
    gap, r2 = normalized_gaps(problem, y, traj, ref)
    wc = pep_worst_case(steps, L=problem.L, method="pgm", metric=Metric.OBJECTIVE_GAP, R=1.0).values
    use = r2 > 1e-12  # x* = 0 = x0: nothing to measure
    assert np.all(gap[1:, use] <= wc[1:, None] * (1 + REL) + ABS), (gap.max(1), wc)
