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
  program per column, so that ``generalized_coherence(coherence_weight(A), A) = mu~(A)``.

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


def coherence_weight(A: Any) -> np.ndarray:
    """Exact generalized-coherence minimiser (ALISTA Def. 1, eq. (8)), one linear program per column.

    Column i solves  min_{w, t} t  s.t.  -t <= w^T a_j <= t (j != i),  w^T a_i = 1,  with scipy's HiGHS;
    the optimal values are the per-column coherences, and their maximum is mu~(A) (eq. (9)). Each column
    is finally rescaled so that w_i^T a_i = 1 holds to round-off. Cost: n LPs with m + 1 variables and
    2(n - 1) inequalities (about a second each for 250 x 500). Raises RuntimeError naming the column if
    an LP fails, ValueError for a non-finite A or a zero column.
    """
    from scipy.optimize import linprog

    a = _matrix("A", A)
    _nonzero_columns(a)
    m, n = a.shape
    w = np.empty((m, n))
    c = np.zeros(m + 1)
    c[-1] = 1.0
    bounds = [(None, None)] * m + [(0.0, None)]
    for i in range(n):
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
        w[:, i] = col / float(col @ a[:, i])
    return w


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


#: analytic weights by name, used by the ALISTA model (``weight=...``)
WEIGHTS = {
    "frobenius": frobenius_weight,
    "coherence": coherence_weight,
    "frobenius-na": na_alista_frobenius_weight,
    "dictionary": lambda A: np.array(_matrix("A", A), copy=True),
}
