"""Analytic weights of ALISTA and the generalized mutual coherence (numpy, float64).

Notation: A in R^{m x n} (the LISTA papers' D or A) with columns a_i; a weight W in R^{m x n} with
columns w_i, used by the coupled layer x+ = eta_theta(x - gamma W^T (A x - y)) (Liu, Chen, Wang & Yin,
ICLR 2019, "ALISTA", eqs. (6) and (16)).

- Generalized mutual coherence (ALISTA Def. 1, eqs. (8)-(9); Chen et al. 2018, Def. 1):
  mu(W, A) = max_{i != j} |w_i^T a_j| over weights with diag(W^T A) = 1; its infimum over W is mu~(A).
- ``frobenius_weight``: the Stage-1 weight of ALISTA eq. (17), argmin ||W^T A||_F^2 s.t. w_i^T a_i = 1,
  in closed form (derivation below), cross-checked against the authors' projected-gradient solver
  (``frobenius_weight_projected_gradient``, their ``matlabs/CalculateW.m``, "Algorithm 1, App. E.1").
- ``coherence_weight``: the exact minimiser of the generalized coherence (ALISTA eq. (8)), one linear
  program per column, so that ``generalized_coherence(coherence_weight(A), A) = mu~(A)`` (the reference
  path, ``method="lp"``); ``method="fast"`` (``coherence_bounds``) reaches the same optimum with a
  certified duality gap per column in seconds instead of minutes (section "Fast path" below).

Closed form of eq. (17). The objective separates over columns, ||W^T A||_F^2 = sum_i w_i^T G w_i with
G = A A^T, and column i solves min w^T G w s.t. w^T a_i = 1. Stationarity gives G w = nu a_i; a_i lies in
range(A) = range(G), so w = G^+ a_i / (a_i^T G^+ a_i) is a minimiser (adding a vector of null(G) = null(A^T)
changes neither the objective nor the constraint: it is the minimum-norm one). With A = U S V^T (thin,
rank r), G^+ a_i = U S^{-1} V^T e_i = (A^+)^T e_i and a_i^T G^+ a_i = (A^+ A)_{ii} = ||V^T e_i||^2, so

    W = (A^+)^T diag(A^+ A)^{-1},

well defined whenever every column of A is non-zero. When A has full column rank (m >= n), A^+ A = I and
W^T A = I: the coherence is 0. For m < n this is the formula w_i = (A A^T)^{-1} a_i / (a_i^T (A A^T)^{-1} a_i).
"""
from __future__ import annotations

import hashlib
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unfoldkit.unrolled.validation import finite_array, positive_int, positive_real

#: tolerance on diag(W^T A) = 1 accepted by ``generalized_coherence`` (relative to max(1, ||w_i|| ||a_i||))
DIAG_ATOL = 1e-8


def _matrix(name: str, value: Any) -> np.ndarray:
    a = finite_array(name, value, ndim=2)
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{name} must be a non-empty matrix, got shape {a.shape}")
    return a


def _nonzero_columns(a: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=0)
    if np.any(norms <= 0):
        bad = int(np.flatnonzero(norms <= 0)[0])
        raise ValueError(f"A has a zero column (index {bad}): no weight satisfies w_i^T a_i = 1")
    return norms


def _rank_tolerance(s: np.ndarray, shape: tuple[int, int]) -> float:
    return float(s[0]) * max(shape) * np.finfo(np.float64).eps if s.size else 0.0


def frobenius_weight(A: Any) -> np.ndarray:
    """ALISTA's analytic weight (Liu et al. 2019, eq. (17)): argmin_W ||W^T A||_F^2 s.t. w_i^T a_i = 1.

    Closed form W = (A^+)^T diag(A^+ A)^{-1} (derived in the module docstring), computed from a thin SVD.
    Returns an (m, n) float64 array with diag(W^T A) = 1 up to round-off. Raises ValueError for a
    non-finite A or a zero column.
    """
    a = _matrix("A", A)
    _nonzero_columns(a)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    keep = s > _rank_tolerance(s, a.shape)
    u, s, vt = u[:, keep], s[keep], vt[keep]
    pinv_t = (u / s) @ vt                     # (A^+)^T, shape (m, n)
    diag = np.sum(vt * vt, axis=0)            # (A^+ A)_{ii} = ||V^T e_i||^2
    return pinv_t / diag


def frobenius_weight_projected_gradient(A: Any, step: float | None = None, max_iter: int = 20_000,
                                        tol: float = 1e-13) -> tuple[np.ndarray, int]:
    """The authors' solver of ALISTA eq. (17): projected gradient from W = A (``matlabs/CalculateW.m``).

    Iterates W <- P(W - eta A (A^T W - I)) with P the exact projection onto {w_i^T a_i = 1},
    w_i <- w_i + (1 - a_i^T w_i) a_i / ||a_i||^2 (the authors' projection assumes ||a_i|| = 1). The
    authors stop when the off-diagonal objective changes by less than 1e-12 relatively; here the stop is
    ||W_{t+1} - W_t||_F <= tol ||W_t||_F, which pins the iterate (not only the objective) down. The default
    step is 1/||A||_2^2 (the authors use 0.1 for their 250 x 500 matrix). Returns (W, iterations).
    Used to cross-check the closed form of ``frobenius_weight``. Its linear rate degrades with the
    conditioning of A A^T (nearly square A converge very slowly): prefer the closed form.
    """
    a = _matrix("A", A)
    norms2 = _nonzero_columns(a) ** 2
    max_iter = positive_int("max_iter", max_iter)
    tol = positive_real("tol", tol)
    eta = 1.0 / float(np.linalg.norm(a, 2) ** 2) if step is None else positive_real("step", step)
    n = a.shape[1]
    eye = np.eye(n)

    def project(w: np.ndarray) -> np.ndarray:
        return w + ((1.0 - np.sum(a * w, axis=0)) / norms2) * a

    w = project(a.copy())
    for it in range(1, max_iter + 1):
        w_next = project(w - eta * (a @ (a.T @ w - eye)))
        change = float(np.linalg.norm(w_next - w))
        w = w_next
        if change <= tol * float(np.linalg.norm(w)):
            return w, it
    return w, max_iter


def na_alista_initial_weight(m: int, n: int, seed: int = 0) -> np.ndarray:
    """W_0 of ``na_alista_frobenius_weight``: m x n with N(0, 1/m) entries, drawn after A in their code.

    Drawn from its own stream, ``numpy.random.default_rng([2021, seed])``, so that it is independent of
    a problem matrix drawn from ``default_rng(seed)`` (with one stream, W_0 would equal A before A's
    column normalisation, and the truncated iteration would start next to A: a better, unfaithful W).
    """
    m, n = positive_int("m", m), positive_int("n", n)
    return np.random.default_rng([2021, int(seed)]).normal(scale=1.0 / np.sqrt(m), size=(m, n))


def na_alista_frobenius_weight(A: Any, steps: int = 1000, step: float = 0.01, decay: float = 0.99,
                               seed: int = 0) -> np.ndarray:
    """The NA-ALISTA authors' *approximate* W_frob (Behrens, Sauder & Jung, ICLR 2021, code
    ``utils/optimize_matrices.py``, ``opt_frobenius``): from a Gaussian W_0 with N(0, 1/m) entries,

        W <- P(W - eta_t A A^T W),   W <- W diag(W^T A)^{-1},   eta_{t+1} = decay eta_t,   eta_0 = step,

    for ``steps`` steps, P the projection onto {w_i^T a_i = 1} (exact here; theirs assumes unit columns).
    The step sizes sum to step (1 - decay^steps) / (1 - decay) ~ 1, so the iteration stops well before the
    minimiser ``frobenius_weight``: on the 250 x 500 benchmark matrix ||W^T A||_F comes out 5 % larger
    (33.25 vs 31.65) and an untrained ALISTA with their initialization 1.3 dB worse (-26.5 vs -27.8 dB at
    40 dB). Use it to reproduce their published ALISTA logs; use
    ``frobenius_weight`` otherwise. ``seed`` draws W_0 (``na_alista_initial_weight``; their run used numpy's
    global RNG, whose state is not recoverable).
    """
    a = _matrix("A", A)
    norms2 = _nonzero_columns(a) ** 2
    steps = positive_int("steps", steps)
    eta = positive_real("step", step)
    decay = positive_real("decay", decay)
    m, n = a.shape
    w = na_alista_initial_weight(m, n, seed)
    for _ in range(steps):
        w = w - eta * (a @ (a.T @ w))
        w = w + ((1.0 - np.sum(a * w, axis=0)) / norms2) * a
        w = w / np.sum(w * a, axis=0)
        eta *= decay
    return w


def coherence_weight(A: Any, method: str = "lp") -> np.ndarray:
    """Exact generalized-coherence minimiser (ALISTA Def. 1, eq. (8)), one linear program per column.

    ``method="lp"`` (default, the reference path) is described here; ``method="fast"`` returns
    ``coherence_bounds(A).weight`` (same optimum, certified to ``COHERENCE_RTOL`` per column, cached).

    Column i solves  min_{w, t} t  s.t.  -t <= w^T a_j <= t (j != i),  w^T a_i = 1,  with scipy's HiGHS;
    the optimal values are the per-column coherences, and their maximum is mu~(A) (eq. (9)). Each column
    is finally rescaled so that w_i^T a_i = 1 holds to round-off. Cost: n LPs with m + 1 variables and
    2(n - 1) inequalities (about a second each for 250 x 500). Raises RuntimeError naming the column if
    an LP fails, ValueError for a non-finite A or a zero column.
    """
    if method == "fast":
        return coherence_weight_fast(A)
    if method != "lp":
        raise ValueError(f"method must be 'lp' or 'fast', got {method!r}")
    a = _matrix("A", A)
    _nonzero_columns(a)
    m, n = a.shape
    w = np.empty((m, n))
    for i in range(n):
        w[:, i] = lp_column_weight(a, i)
    return w


def lp_column_weight(A: Any, i: int) -> np.ndarray:
    """Column i of ``coherence_weight(A, method="lp")``: the reference LP of that column alone (HiGHS),
    rescaled so that w_i^T a_i = 1 (used to time and check the fast path on a subset of columns)."""
    from scipy.optimize import linprog

    a = _matrix("A", A)
    m, n = a.shape
    i = int(i)
    if not 0 <= i < n:
        raise ValueError(f"column index must be in [0, {n}), got {i}")
    c = np.zeros(m + 1)
    c[-1] = 1.0
    bounds = [(None, None)] * m + [(0.0, None)]
    others = np.delete(a, i, axis=1).T                     # (n - 1, m): rows a_j^T, j != i
    ones = -np.ones((n - 1, 1))
    a_ub = np.vstack([np.hstack([others, ones]), np.hstack([-others, ones])])
    b_ub = np.zeros(2 * (n - 1))
    a_eq = np.append(a[:, i], 0.0)[None, :]
    res = linprog(c, A_ub=a_ub if n > 1 else None, b_ub=b_ub if n > 1 else None, A_eq=a_eq,
                  b_eq=[1.0], bounds=bounds, method="highs")
    if res.status != 0 or res.x is None:
        raise RuntimeError(f"coherence_weight: the LP of column {i} failed ({res.message})")
    col = res.x[:m]
    return col / float(col @ a[:, i])


def column_coherences(W: Any, A: Any, atol: float = DIAG_ATOL) -> np.ndarray:
    """Per-column generalized coherences max_{j != i} |w_i^T a_j|, i = 1..n (rows of W^T A off the diagonal).

    Checks the normalization diag(W^T A) = 1 first (ValueError otherwise; see ``normalize_diagonal``).
    """
    w = _matrix("W", W)
    a = _matrix("A", A)
    if w.shape != a.shape:
        raise ValueError(f"W and A must have the same shape (m, n), got {w.shape} and {a.shape}")
    g = w.T @ a
    diag = np.diag(g).copy()
    scale = np.maximum(1.0, np.linalg.norm(w, axis=0) * np.linalg.norm(a, axis=0))
    err = np.abs(diag - 1.0) / scale
    if np.any(err > atol):
        i = int(np.argmax(err))
        raise ValueError(f"the generalized coherence needs diag(W^T A) = 1; column {i} has w_i^T a_i = "
                         f"{diag[i]!r} (use normalize_diagonal)")
    off = np.abs(g)
    np.fill_diagonal(off, 0.0)
    return off.max(axis=1) if a.shape[1] > 1 else np.zeros(1)


def generalized_coherence(W: Any, A: Any, atol: float = DIAG_ATOL) -> float:
    """Generalized mutual coherence mu(W, A) = max_{i != j} |w_i^T a_j| (ALISTA eq. (9)), diag(W^T A) = 1 checked.

    With W = A and unit-norm columns it is the ordinary mutual coherence mu(A); at W = coherence_weight(A)
    it is mu~(A). Raises ValueError on shape mismatch, non-finite input, or diag(W^T A) != 1 (beyond ``atol``).
    """
    return float(column_coherences(W, A, atol).max())


def normalize_diagonal(W: Any, A: Any) -> np.ndarray:
    """Rescale each column of W so that w_i^T a_i = 1 (ValueError where w_i^T a_i = 0)."""
    w = _matrix("W", W)
    a = _matrix("A", A)
    if w.shape != a.shape:
        raise ValueError(f"W and A must have the same shape (m, n), got {w.shape} and {a.shape}")
    d = np.sum(w * a, axis=0)
    if np.any(d == 0):
        raise ValueError(f"w_i^T a_i = 0 for column {int(np.flatnonzero(d == 0)[0])}: cannot normalize")
    return w / d


# --------------------------------------------------------------------------------------------------------
# Fast path (issue 17): the same per-column optimum, certified, in seconds.
#
# Column i's LP and its dual (basis pursuit; LP duality, e.g. Chen, Donoho & Saunders, SIAM J. Sci.
# Comput. 1998, sec. 3.1):
#
#     max_w a_i^T w  s.t. |a_j^T w| <= 1 (j != i)    =    min_z ||z||_1  s.t. A_{-i} z = a_i,
#
# and mu_i = 1 / (optimal value), w_i = w / (a_i^T w) (scaling the LP of ``coherence_weight``).
# 1. A batched first-order method approximates every column's basis pursuit at once with matrix-matrix
#    products: ADMM on min ||z||_1 s.t. A z = a_i, z_i = 0, over all i together (Boyd, Parikh, Chu, Peleato
#    & Eckstein, "Distributed optimization ... ADMM", FnT ML 2011, sec. 6.2 "Basis pursuit", with
#    over-relaxation, sec. 3.4.3); the projection onto {A z = a_i} uses one pseudo-inverse for all columns.
# 2. Crossover per column: the m largest |z_j| of the ADMM iterate are a starting basis S; the basic
#    solution z_S = A_S^{-1} a_i with signs s = sign(z_S) is feasible for basis pursuit (written in standard
#    form z = z+ - z-), and the primal simplex method (Dantzig's rule, explicit inverse with rank-one
#    updates, refactored every ``_REFACTOR`` pivots) runs to optimality: w = A_S^{-T} s, |a_j^T w| <= 1 for
#    every j (the reduced costs 1 -+ a_j^T w are non-negative). From the ADMM start it needs tens of pivots.
# 3. Certificate per column, recomputed from scratch at the final basis: the upper bound is the achieved
#    value upper_i = max_{j != i} |a_j^T w_i| of the returned weight (a_i^T w_i = 1 to round-off); the lower
#    bound is weak duality: for the optimal w* (a_i^T w* = 1) and any z with A_S z = a_i + r,
#        1 = z^T A_S^T w* - r^T w* <= ||z||_1 mu_i + ||r||_2 ||w*||_2,
#    and ||w*||_2 <= ||A_S^{-1}||_F ||A_S^T w*||_2 <= ||A_S^{-1}||_F sqrt(m) upper_i, so
#        lower_i = (1 - ||r||_2 ||A_S^{-1}||_F sqrt(m) upper_i) / ||z||_1 <= mu_i <= upper_i.
#    A column is accepted when (upper_i - lower_i) <= rtol upper_i (or upper_i <= ``ZERO_COHERENCE``);
#    otherwise (pivot cap, singular basis, rank-deficient A_{-i}) it falls back to the LP of
#    ``coherence_weight`` with tight HiGHS tolerances, re-crossed to an exact vertex when possible, else
#    certified from the LP's dual multipliers (the same bound with ||w*||_2 <= sqrt(n - 1) upper_i /
#    sigma_min^+(A_{-i}), w* taken in range(A_{-i}), which loses nothing when a_i is in that range).
#    A column still uncertified raises RuntimeError in ``coherence_weight``; ``coherence_bounds`` reports it.
# --------------------------------------------------------------------------------------------------------

#: relative duality gap (upper - lower) / upper certified per column by the fast path (issue 17)
COHERENCE_RTOL = 1e-6
#: a column whose weight reaches a coherence <= this counts as zero-coherence (a_i outside range(A_{-i}))
ZERO_COHERENCE = 1e-12
#: environment variable naming the cache folder of ``coherence_bounds`` (default ~/.cache/unfoldkit/coherence)
COHERENCE_CACHE_ENV = "UNFOLDKIT_COHERENCE_CACHE"
_CACHE_VERSION = 1
_REFACTOR = 50
_OPT_TOL = 1e-11


@dataclass(frozen=True)
class CoherenceBounds:
    """Certified per-column generalized coherences of ``weight`` (ALISTA eq. (8)).

    ``upper[i] = max_{j != i} |w_i^T a_j|`` is what ``weight`` achieves; ``lower[i]`` is a certified lower
    bound on the optimum mu_i (weak duality, see the "Fast path" comment); so
    max(lower) <= mu~(A) <= max(upper) = ``coherence``. ``fallback[i]`` marks columns the LP solved,
    ``pivots[i]`` the simplex pivots of the crossover, ``seconds`` the computing time (of the run that
    filled the cache when ``cached``)."""

    weight: np.ndarray
    upper: np.ndarray
    lower: np.ndarray
    fallback: np.ndarray
    pivots: np.ndarray
    seconds: float
    cached: bool = False

    @property
    def gaps(self) -> np.ndarray:
        """Relative gaps (upper - lower) / upper per column (0 where upper <= ZERO_COHERENCE)."""
        u = self.upper
        return np.where(u > ZERO_COHERENCE, (u - self.lower) / np.where(u > 0, u, 1.0), 0.0)

    @property
    def max_gap(self) -> float:
        return float(self.gaps.max()) if self.gaps.size else 0.0

    @property
    def certified(self) -> np.ndarray:
        """Columns whose relative gap is within ``COHERENCE_RTOL`` (or whose coherence is zero)."""
        return self.gaps <= COHERENCE_RTOL

    @property
    def coherence(self) -> float:
        """max(upper): the generalized coherence of ``weight``, mu~(A) to within ``max_gap`` relatively."""
        return float(self.upper.max())

    @property
    def coherence_lower(self) -> float:
        return float(self.lower.max())


def _admm_basis_pursuit(a: np.ndarray, iterations: int, rho: float | None, alpha: float = 1.5) -> np.ndarray:
    """Approximate solutions Z[:, i] of min ||z||_1 s.t. A z = a_i, z_i = 0, for all i at once (ADMM)."""
    m, n = a.shape
    u_, s, vt = np.linalg.svd(a, full_matrices=False)
    keep = s > _rank_tolerance(s, a.shape)
    pinv = (vt[keep].T / s[keep]) @ u_[:, keep].T            # A^+, (n, m)
    if rho is None:
        # ||z||_1 = 1 / mu_i ~ 1 / mu_frob spread over ~m entries: threshold 1 / rho near a typical |z_j|
        fro = frobenius_weight(a)
        g = np.abs(fro.T @ a)
        np.fill_diagonal(g, 0.0)
        rho = max(1e-3, 0.5 * m * float(np.median(g.max(axis=1))))
    diag = np.eye(n, dtype=bool)
    # float32 throughout: the iterate only chooses a starting basis (the crossover is float64, exact),
    # and single-precision products are twice as fast
    a, pinv = a.astype(np.float32), pinv.astype(np.float32)
    z = np.zeros((n, n), dtype=np.float32)
    u = np.zeros((n, n), dtype=np.float32)
    x = z
    kappa = np.float32(1.0 / rho)
    alpha = np.float32(alpha)
    for _ in range(iterations):
        v = z - u
        x = v - pinv @ (a @ v - a)                           # projection onto {A x = a_i} per column
        xr = alpha * x + (np.float32(1.0) - alpha) * z
        v = xr + u
        z = np.sign(v) * np.maximum(np.abs(v) - kappa, np.float32(0.0))
        z[diag] = 0.0
        u += xr - z
    return x.astype(np.float64)


def _certify(a: np.ndarray, at: np.ndarray, i: int, w: np.ndarray, z: np.ndarray, residual: float,
             w_norm_factor: float) -> tuple[np.ndarray, float, float] | None:
    """(w_i, upper, lower) from a weight direction w and a basis-pursuit point z (||A z - a_i|| = residual);
    ``w_norm_factor`` bounds ||w*||_2 / mu_i. None when a_i^T w <= 0."""
    v = float(a[:, i] @ w)
    if not np.isfinite(v) or v <= 0:
        return None
    wi = w / v
    g = at @ wi
    g[i] = 0.0
    upper = float(np.abs(g).max()) if g.size > 1 else 0.0
    l1 = float(np.abs(z).sum())
    lower = 0.0
    if l1 > 0 and np.isfinite(l1):
        lower = max(0.0, 1.0 - residual * w_norm_factor * upper) / l1
    return wi, upper, min(lower, upper) if upper > 0 else 0.0


def _column_vertex(a: np.ndarray, at: np.ndarray, i: int, start: np.ndarray,
                   max_pivots: int) -> tuple[np.ndarray, float, float, int] | None:
    """Primal simplex on column i's basis pursuit from the basis ``start`` (m indices != i), then the
    certificate at the final basis. None on a singular basis or the pivot cap."""
    m, n = a.shape
    c = a[:, i]
    basis = np.array(start, dtype=int)
    try:
        binv = np.linalg.inv(a[:, basis])
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(binv)):
        return None
    z = binv @ c
    s = np.where(z >= 0, 1.0, -1.0)
    excluded = np.zeros(n, dtype=bool)
    excluded[basis] = True
    excluded[i] = True
    pivots = 0
    while True:
        g = at @ (s @ binv)
        g[excluded] = 0.0
        j = int(np.argmax(np.abs(g)))
        if abs(g[j]) <= 1.0 + _OPT_TOL:
            break
        if pivots >= max_pivots:
            return None
        sig = 1.0 if g[j] > 0 else -1.0
        d = binv @ a[:, j]
        rate = sig * s * d
        pos = rate > 1e-12 * max(1.0, float(np.abs(d).max()))
        if not pos.any():
            return None
        ratios = np.full(m, np.inf)
        ratios[pos] = np.abs(z[pos]) / rate[pos]
        k = int(np.argmin(ratios))
        t = ratios[k]
        z -= sig * t * d
        z[k] = sig * t
        s[k] = sig
        row = binv[k] / d[k]
        binv -= np.outer(d, row)
        binv[k] = row
        excluded[basis[k]] = False
        basis[k] = j
        excluded[j] = True
        pivots += 1
        if pivots % _REFACTOR == 0:
            try:
                binv = np.linalg.inv(a[:, basis])
            except np.linalg.LinAlgError:
                return None
            z = binv @ c
            s = np.where(z >= 0, 1.0, -1.0)
    b = a[:, basis]
    drift = 1.0
    if pivots % _REFACTOR:
        drift = 2.0          # binv carries rank-one updates: its norm enters the bound with a factor 2
    z = binv @ c
    for _ in range(2):                                       # iterative refinement of z and w on A_S
        z += binv @ (c - b @ z)
    s = np.where(z >= 0, 1.0, -1.0)
    w = s @ binv
    for _ in range(2):
        w += (s - w @ b) @ binv
    residual = float(np.linalg.norm(b @ z - c))
    out = _certify(a, at, i, w, z, residual, drift * float(np.linalg.norm(binv)) * np.sqrt(m))
    if out is None:
        return None
    return out[0], out[1], out[2], pivots


def _column_lp(a: np.ndarray, at: np.ndarray, i: int, max_pivots: int) -> tuple[np.ndarray, float, float]:
    """Fallback: the reference LP of ``coherence_weight`` (tight tolerances), crossed to an exact vertex
    when A_{-i} allows, else certified from the LP's dual multipliers."""
    from scipy.optimize import linprog

    m, n = a.shape
    others = np.delete(a, i, axis=1).T
    c = np.zeros(m + 1)
    c[-1] = 1.0
    ones = -np.ones((n - 1, 1))
    res = linprog(c, A_ub=np.vstack([np.hstack([others, ones]), np.hstack([-others, ones])]),
                  b_ub=np.zeros(2 * (n - 1)), A_eq=np.append(a[:, i], 0.0)[None, :], b_eq=[1.0],
                  bounds=[(None, None)] * m + [(0.0, None)], method="highs",
                  options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10})
    if res.status != 0 or res.x is None:
        raise RuntimeError(f"coherence_bounds: the LP of column {i} failed ({res.message})")
    w = res.x[:m]
    if n - 1 >= m:
        g = np.abs(at @ w)
        g[i] = -1.0
        vertex = _column_vertex(a, at, i, np.argsort(-g, kind="stable")[:m], max_pivots)
        if vertex is not None and vertex[1] - vertex[2] <= COHERENCE_RTOL * vertex[1]:
            return vertex[0], vertex[1], vertex[2]
    marg = np.asarray(res.ineqlin.marginals)
    z = marg[n - 1:] - marg[: n - 1]
    y = others.T @ z
    yy = float(y @ y)
    residual = float(np.linalg.norm(a[:, i]))
    if yy > 0:
        z = z * float(a[:, i] @ y) / yy
        residual = float(np.linalg.norm(others.T @ z - a[:, i]))
    sv = np.linalg.svd(others, compute_uv=False)
    sv = sv[sv > _rank_tolerance(sv, others.shape)]
    factor = np.sqrt(n - 1) / float(sv[-1]) if sv.size else np.inf
    out = _certify(a, at, i, w, z, residual, factor)
    if out is None:
        raise RuntimeError(f"coherence_bounds: the LP of column {i} returned a_i^T w <= 0")
    return out


def _solve_columns(a: np.ndarray, starts: np.ndarray | None, columns: np.ndarray, rtol: float,
                   max_pivots: int) -> list[tuple[int, np.ndarray, float, float, bool, int]]:
    """Crossover + certificate for ``columns`` (the fallback LP where not certified within ``rtol``)."""
    at = np.ascontiguousarray(a.T)
    out = []
    for i in columns:
        i = int(i)
        res = None if starts is None else _column_vertex(a, at, i, starts[i], max_pivots)
        if res is not None and (res[1] <= ZERO_COHERENCE or res[1] - res[2] <= rtol * res[1]):
            out.append((i, res[0], res[1], res[2], False, res[3]))
        else:
            wi, up, lo = _column_lp(a, at, i, max_pivots)
            out.append((i, wi, up, lo, True, 0 if res is None else res[3]))
    return out


def _matrix_key(a: np.ndarray) -> str:
    """SHA-256 of the shape and the float64 bytes (C order) of A."""
    h = hashlib.sha256(f"{a.shape[0]}x{a.shape[1]}:float64:".encode())
    h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()


def coherence_cache_dir(cache: Any = True) -> Path | None:
    """The cache folder: ``cache`` if it is a path, None if False, else $UNFOLDKIT_COHERENCE_CACHE or
    ~/.cache/unfoldkit/coherence."""
    if cache is False or cache is None:
        return None
    if cache is True:
        env = os.environ.get(COHERENCE_CACHE_ENV)
        return Path(env).expanduser() if env else Path.home() / ".cache" / "unfoldkit" / "coherence"
    if isinstance(cache, (str, os.PathLike)):
        return Path(cache).expanduser()
    raise ValueError(f"cache must be True, False or a folder path, got {cache!r}")


def _load_cached(path: Path, a: np.ndarray, rtol: float) -> CoherenceBounds | None:
    """The cached bounds at ``path`` if valid for ``a`` and ``rtol``; None (a warning if the file is corrupt)."""
    if not path.exists():
        return None
    m, n = a.shape
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: np.array(f[k]) for k in ("version", "weight", "upper", "lower", "fallback", "pivots",
                                                "seconds")}
        if int(data["version"]) != _CACHE_VERSION:
            raise ValueError(f"cache version {int(data['version'])} != {_CACHE_VERSION}")
        w = np.asarray(data["weight"], dtype=np.float64)
        upper, lower = np.asarray(data["upper"], dtype=np.float64), np.asarray(data["lower"], dtype=np.float64)
        if w.shape != (m, n) or upper.shape != (n,) or lower.shape != (n,) or data["fallback"].shape != (n,) \
                or data["pivots"].shape != (n,):
            raise ValueError("wrong shapes")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(upper)) and np.all(np.isfinite(lower))):
            raise ValueError("non-finite values")
        achieved = column_coherences(w, a)                   # raises ValueError if diag(W^T A) != 1
        if not np.allclose(achieved, upper, rtol=1e-9, atol=1e-15) or np.any(lower > upper * (1 + 1e-12)):
            raise ValueError("stored bounds do not match the stored weight")
    except Exception as exc:  # noqa: BLE001 - any unreadable or inconsistent file is recomputed
        warnings.warn(f"{path}: coherence cache file is corrupt ({type(exc).__name__}: {exc}); recomputing it "
                      f"and replacing the file", RuntimeWarning, stacklevel=3)
        return None
    bounds = CoherenceBounds(w, upper, lower, data["fallback"].astype(bool), data["pivots"].astype(int),
                             float(data["seconds"]), cached=True)
    return bounds if bounds.max_gap <= rtol else None


def _store(path: Path, b: CoherenceBounds) -> None:
    from unfoldkit.unrolled.io import atomic_write

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, version=_CACHE_VERSION, weight=b.weight, upper=b.upper, lower=b.lower,
                     fallback=b.fallback, pivots=b.pivots, seconds=b.seconds)

    try:
        atomic_write(path, write)
    except OSError as exc:
        warnings.warn(f"{path}: could not write the coherence cache ({exc})", RuntimeWarning, stacklevel=3)


def coherence_bounds(A: Any, rtol: float = COHERENCE_RTOL, cache: Any = True, n_jobs: int = 1,
                     admm_iterations: int = 400, rho: float | None = None,
                     max_pivots: int | None = None) -> CoherenceBounds:
    """The generalized-coherence minimiser (ALISTA eq. (8)) with certified per-column bounds, fast.

    ADMM over all columns, simplex crossover and a duality certificate per column (the "Fast path"
    comment above); a column whose relative gap exceeds ``rtol`` is re-solved by the LP. Cached by matrix
    (SHA-256 of shape and float64 bytes) in ``coherence_cache_dir(cache)`` (``cache=False``: no cache);
    a corrupt cache file is recomputed with a RuntimeWarning. ``n_jobs`` processes share the crossover
    (joblib, one BLAS thread each). Raises ValueError for a non-finite A, a zero column or bad options.
    """
    a = _matrix("A", A)
    _nonzero_columns(a)
    rtol = positive_real("rtol", rtol)
    n_jobs = positive_int("n_jobs", n_jobs)
    admm_iterations = int(admm_iterations)
    if admm_iterations < 0:
        raise ValueError(f"admm_iterations must be >= 0, got {admm_iterations}")
    if rho is not None:
        rho = positive_real("rho", rho)
    m = a.shape[0]
    max_pivots = 20 * m if max_pivots is None else positive_int("max_pivots", max_pivots)
    folder = coherence_cache_dir(cache)
    path = None if folder is None else folder / f"{_matrix_key(a)}.npz"
    if path is not None:
        hit = _load_cached(path, a, rtol)
        if hit is not None:
            return hit
    with _one_blas_thread():
        b = _compute_bounds(a, rtol, n_jobs, admm_iterations, rho, max_pivots)
    if path is not None and np.all(b.certified):
        _store(path, b)
    return b


def _compute_bounds(a: np.ndarray, rtol: float, n_jobs: int, admm_iterations: int, rho: float | None,
                    max_pivots: int) -> CoherenceBounds:
    m, n = a.shape
    t0 = time.perf_counter()
    if n == 1:
        w = a / float(a[:, 0] @ a[:, 0])
        b = CoherenceBounds(w, np.zeros(1), np.zeros(1), np.zeros(1, bool), np.zeros(1, int),
                            time.perf_counter() - t0)
    else:
        starts = None
        if n - 1 >= m:
            x = _admm_basis_pursuit(a, admm_iterations, rho) if admm_iterations else np.zeros((n, n))
            score = np.abs(x)
            if not admm_iterations:                          # no ADMM: rank by the Frobenius weight
                score = np.abs(frobenius_weight(a).T @ a).T
            score[np.diag_indices(n)] = -1.0
            starts = np.argsort(-score, axis=0, kind="stable")[:m].T.copy()     # (n, m)
        cols = np.arange(n)
        if n_jobs > 1:
            import joblib

            chunks = [c for c in np.array_split(cols, n_jobs) if c.size]
            parts = joblib.Parallel(n_jobs=n_jobs, backend="loky")(
                joblib.delayed(_solve_columns_single_thread)(a, starts, c, rtol, max_pivots) for c in chunks)
            rows = [r for p in parts for r in p]
        else:
            rows = _solve_columns(a, starts, cols, rtol, max_pivots)
        w = np.empty((m, n))
        upper, lower = np.empty(n), np.empty(n)
        fallback, pivots = np.zeros(n, dtype=bool), np.zeros(n, dtype=int)
        for i, wi, up, lo, fb, piv in rows:
            w[:, i], upper[i], lower[i], fallback[i], pivots[i] = wi, up, lo, fb, piv
        b = CoherenceBounds(w, upper, lower, fallback, pivots, time.perf_counter() - t0)
    return b


def _one_blas_thread() -> Any:
    """A context with one BLAS thread (threadpoolctl when installed): multi-threaded OpenBLAS on these
    small products is several times slower on a loaded 2-core machine (measured: ADMM 7x, inverse 15x)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional dependency
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _solve_columns_single_thread(*args: Any) -> list[tuple[int, np.ndarray, float, float, bool, int]]:
    with _one_blas_thread():
        return _solve_columns(*args)


def coherence_weight_fast(A: Any) -> np.ndarray:
    """``coherence_bounds(A).weight``, after checking every column's certificate (RuntimeError naming the
    first uncertified column otherwise): the exact minimiser of ALISTA eq. (8) to ``COHERENCE_RTOL``."""
    b = coherence_bounds(A)
    bad = np.flatnonzero(~b.certified)
    if bad.size:
        i = int(bad[0])
        raise RuntimeError(f"coherence_weight: column {i} is not certified (upper {b.upper[i]!r}, lower "
                           f"{b.lower[i]!r}, relative gap {b.gaps[i]:.2e} > {COHERENCE_RTOL:g})")
    return b.weight


#: analytic weights by name, used by the ALISTA model (``weight=...``; "coherence" is the certified fast path,
#: "coherence-lp" the reference LP path)
WEIGHTS = {
    "frobenius": frobenius_weight,
    "coherence": coherence_weight_fast,
    "coherence-lp": coherence_weight,
    "frobenius-na": na_alista_frobenius_weight,
    "dictionary": lambda A: np.array(_matrix("A", A), copy=True),
}
