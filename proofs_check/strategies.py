"""Hypothesis strategies for random problem instances, step sizes and batches, exported for users' tests.

Each problem strategy draws sizes, conditioning, sparsity, noise and the seed of the fixed matrix, so a
failing example shrinks to a small, replayable problem (its ``params()`` rebuild it exactly).
"""
from __future__ import annotations

from hypothesis import strategies as st

from unfoldkit.unrolled.problems import LeastSquares, SparseRecovery, WorstCaseHuber

seeds = st.integers(min_value=0, max_value=2**31 - 1)
snr_levels = st.one_of(st.none(), st.floats(min_value=5.0, max_value=60.0))


@st.composite
def sparse_problems(draw, max_m: int = 24, max_n: int = 40) -> SparseRecovery:
    """LASSO problems: m <= n (under-determined, the compressed-sensing regime) or over-determined."""
    n = draw(st.integers(min_value=2, max_value=max_n))
    m = draw(st.integers(min_value=1, max_value=max_m))
    return SparseRecovery(m=m, n=n, sparsity=draw(st.floats(min_value=0.05, max_value=1.0)),
                          snr_db=draw(snr_levels), lam=draw(st.floats(min_value=1e-3, max_value=1.0)),
                          seed=draw(seeds))


@st.composite
def least_squares_problems(draw, strongly_convex: bool = True, max_n: int = 30) -> LeastSquares:
    """Least squares: with ``strongly_convex`` a chosen kappa in [1, 1e4] and L in [1e-2, 1e2];
    otherwise a Gaussian A (convex; mu = 0 when m < n)."""
    n = draw(st.integers(min_value=1, max_value=max_n))
    if strongly_convex:
        m = draw(st.integers(min_value=n, max_value=n + 20))
        kappa = draw(st.floats(min_value=1.0, max_value=1e4))
        L = draw(st.floats(min_value=1e-2, max_value=1e2))
        return LeastSquares(m=m, n=n, kappa=kappa, L=L, snr_db=draw(snr_levels), seed=draw(seeds))
    m = draw(st.integers(min_value=1, max_value=max_n + 10))
    return LeastSquares(m=m, n=n, kappa=None, snr_db=draw(snr_levels), seed=draw(seeds))


@st.composite
def huber_problems(draw, max_horizon: int = 50) -> WorstCaseHuber:
    """Drori-Teboulle worst-case functions with random L, R, horizon and step factor h in (0, 1]."""
    return WorstCaseHuber(n=draw(st.integers(min_value=1, max_value=5)),
                          L=draw(st.floats(min_value=1e-2, max_value=1e2)),
                          R=draw(st.floats(min_value=1e-2, max_value=1e2)),
                          horizon=draw(st.integers(min_value=1, max_value=max_horizon)),
                          step_factor=draw(st.floats(min_value=0.05, max_value=1.0)))


def step_factors(max_factor: float = 1.0) -> st.SearchStrategy[float]:
    """Normalized steps h = gamma L in (0, max_factor]."""
    return st.floats(min_value=1e-3, max_value=max_factor, exclude_min=False)


batch_sizes = st.integers(min_value=1, max_value=6)
