"""Worst and average case of step schedules on quadratics, via residual polynomials.

Setting. f(x) = 0.5 x^T M x - b^T x (least squares: M = A^T A, b = A^T y) with M symmetric and its spectrum
in [mu, L], 0 < mu <= L; x* = M^{-1} b. A method whose iterates satisfy

    e_k = x_k - x* = p_k(M) e_0,   p_k a polynomial of degree <= k with p_k(0) = 1,

has ``p_k`` as its *residual polynomial*. Gradient descent with steps gamma_j has p_k(lam) = prod_{j<k} (1 -
gamma_j lam) (``gd_residual``); FISTA / Nesterov-type momentum has a three-term recurrence (``fista_residual``).
Diagonalising M = V diag(lam_i) V^T turns every statement about iterates into one about p_k at the eigenvalues:

* worst case over the class {M symmetric, spectrum in [mu, L]}: sup ||e_k|| / ||e_0|| = max_{lam in [mu, L]}
  |p_k(lam)|, attained by an eigenvector (``sup_abs_residual`` exactly for GD, ``quadratic_worst_case`` as a
  ``Bound``). The smallest possible value over all degree-K p with p(0) = 1 is 1/T_K((L+mu)/(L-mu))
  (``minimax_value``), reached by Chebyshev steps (``chebyshev_steps``; Young 1953, Golub & Varga 1961, both
  recalled: only Golub & Varga's bibliographic record was seen);
  that no schedule does better follows from de la Vallee Poussin's alternation argument at the K + 1
  Chebyshev extrema (``chebyshev_extrema``, ``spectrum_grid``, ``exact_abs_residual``);
* average case for a spectral measure: with x ~ N(0, I) and white noise, the expected NMSE is a weighted
  mean of p_k(lam_i)^2 and (1 - p_k(lam_i))^2 (``expected_nmse``, ``noise_variance``), and the polynomial
  minimising it is the average-case optimal method (Pedregosa & Scieur, ICML 2020: framework confirmed in
  their abstract and introduction, theorem statements recalled) for the empirical spectrum
  (``avg_case_optimal_polynomial``).

Every statement is about quadratics only. Over the larger class F_{mu,L} of (non-quadratic) mu-strongly convex
L-smooth functions the worst case of a schedule can be larger; performance estimation (``theory.pep_worst_case``)
is the reference there. The status of each source claim (confirmed / recalled / derived) is in
docs/theory_sources.md, section 8.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from unfoldkit.theory.bound import Assumption, Bound, Metric
from unfoldkit.theory.conditions import ordered_constants, positive_constant

YOUNG_1953 = ("Young 1953, On Richardson's method for solving linear systems with positive definite matrices, "
              "J. Math. Phys. 32:243-255 (details recalled)")
GOLUB_VARGA_1961 = ("Golub & Varga 1961, Chebyshev semi-iterative methods, successive overrelaxation iterative "
                    "methods, and second order Richardson iterative methods, Part I, Numer. Math. 3:147-156")
QUADRATIC_WORST_CASE_THEOREM = ("e_k = p_k(M) e_0 with M symmetric, spectrum in [mu, L]: "
                                "sup ||e_k|| / ||e_0|| = max_{[mu, L]} |p_k| (attained by an eigenvector)")

#: grid chunk (points) for the momentum worst case, to keep the (K+1) x chunk residual array small
_CHUNK = 4096


# ---- Chebyshev: the minimax schedule and its value ----------------------------------------------------


def chebyshev_steps(num_layers: int, mu: float, L: float) -> np.ndarray:
    """Young's (1953) Chebyshev steps 1/lam_i, lam_i = (L+mu)/2 + (L-mu)/2 cos((2i-1) pi/(2K)), i = 1..K.

    The lam_i are the K roots of T_K((L+mu-2 lam)/(L-mu)) (T_K the Chebyshev polynomial of the first kind), so
    prod_i (1 - lam/lam_i) = T_K((L+mu-2 lam)/(L-mu)) / T_K((L+mu)/(L-mu)): the residual polynomial of K GD steps
    with these step sizes is the minimax polynomial on [mu, L] with p(0) = 1 (see ``minimax_value``; Young 1953,
    Golub & Varga 1961). Natural order: i = 1 is the largest lam_i (smallest step). The order does not change
    p_K (a product), only the intermediate layers and the round-off (large steps early amplify it).

    Assumes K >= 1 and 0 < mu <= L (ValueError otherwise); at mu = L every step is 1/L.
    Sources: Young 1953 (recalled: not seen), Golub & Varga 1961 (bibliographic record seen, content recalled).
    """
    k = int(num_layers)
    if k < 1 or not 0 < mu <= L:
        raise ValueError(f"need K >= 1 and 0 < mu <= L, got K={num_layers}, mu={mu}, L={L}")
    i = np.arange(1, k + 1)
    lam = (L + mu) / 2 + (L - mu) / 2 * np.cos((2 * i - 1) * np.pi / (2 * k))
    return 1.0 / lam


def minimax_value(num_layers: int, mu: float, L: float) -> float:
    """min over degree-K p with p(0) = 1 of max_{[mu, L]} |p| = 1 / T_K((L+mu)/(L-mu)) (0 when mu = L).

    T_K(x) = cosh(K arccosh x) for x >= 1; the minimiser is the shifted, scaled Chebyshev polynomial of
    ``chebyshev_steps``. Lower bound: any admissible p with max |p| < 1/T_K would differ from the Chebyshev
    polynomial by a nonzero degree-K polynomial with K + 1 roots (one in each gap between the K + 1 alternation
    points ``chebyshev_extrema``, plus lam = 0), a contradiction (de la Vallee Poussin's argument). So no
    schedule of K gradient steps, and no other method whose p_K has degree K (FISTA, heavy ball, ...), has a
    worst case on quadratics with spectrum in [mu, L] below this value. In closed form it is
    2 rho^K / (1 + rho^(2K)) with rho = (sqrt(kappa) - 1)/(sqrt(kappa) + 1), kappa = L/mu.

    Assumes 0 < mu <= L (ValueError otherwise). Sources: Golub & Varga 1961 (content recalled); the alternation
    argument is derived here (de la Vallee Poussin attribution recalled).
    """
    if not 0 < mu <= L:
        raise ValueError(f"need 0 < mu <= L, got mu={mu}, L={L}")
    if mu == L:
        return 0.0
    return float(1.0 / math.cosh(num_layers * math.acosh((L + mu) / (L - mu))))


def chebyshev_extrema(num_layers: int, mu: float, L: float) -> np.ndarray:
    """The K + 1 points of [mu, L] where |T_K((L+mu-2 lam)/(L-mu))| = 1, alternating in sign, endpoints exact.

    lam_j = (L+mu)/2 - (L-mu)/2 cos(j pi / K), j = 0..K (ascending; lam_0 = mu, lam_K = L set exactly). These
    are the alternation points of de la Vallee Poussin's argument (``minimax_value``): any degree-K p with
    p(0) = 1 has max_j |p(lam_j)| >= 1/T_K((L+mu)/(L-mu)). Assumes K >= 1 and mu <= L.
    """
    j = np.arange(num_layers + 1)
    pts = (L + mu) / 2 - (L - mu) / 2 * np.cos(j * np.pi / num_layers)
    pts[0], pts[-1] = mu, L
    return pts


def spectrum_grid(mu: float, L: float, num_layers: int, points: int = 20001) -> np.ndarray:
    """Sorted union of ``points`` uniform points of [mu, L] (endpoints included) and the Chebyshev extrema.

    Holding the K + 1 extrema makes the grid maximum of any degree-K p with p(0) = 1 at least the minimax
    value (de la Vallee Poussin: if |p| < |p_cheb| at all K + 1 alternation points, p_cheb - p has K + 1
    roots counting 0, hence vanishes). A grid maximum is a lower estimate of max_{[mu, L]} |p|; for step
    schedules ``sup_abs_residual`` gives the exact value."""
    return np.unique(np.concatenate([np.linspace(mu, L, max(int(points), 2)),
                                     chebyshev_extrema(num_layers, mu, L)]))


# ---- residual polynomials --------------------------------------------------------------------------------


def gd_residual(steps: Sequence[float], lam: Any) -> np.ndarray:
    """p_k(lam) = prod_{j<k} (1 - gamma_j lam) for k = 0..K, shape (K+1, len(lam)) (or (K+1,) for scalar lam).

    Derivation: GD x_{k+1} = x_k - gamma_k (M x_k - b) gives e_{k+1} = (I - gamma_k M) e_k, hence
    e_k = p_k(M) e_0 for any start x_0 (with x_0 = 0 and x* = x_ls: x_k - x_ls = -p_k(M) x_ls).
    """
    lam = np.asarray(lam, dtype=np.float64)
    out = [np.ones_like(lam)]
    for g in np.asarray(steps, dtype=np.float64):
        out.append(out[-1] * (1.0 - g * lam))
    return np.stack(out)


def fista_residual(steps: Sequence[float], momentum: Sequence[float], lam: Any) -> np.ndarray:
    """Residual polynomials of FISTA / Nesterov-type momentum on a quadratic, shape (K+1, len(lam)).

    The method: z_k = x_k + beta_k (x_k - x_{k-1}), x_{k+1} = z_k - gamma_k (M z_k - b), with x_{-1} = x_0
    (the prox of a least-squares problem with no regulariser is the identity, so FISTA is this iteration).
    With e_k = x_k - x*: e_{k+1} = (I - gamma_k M)((1 + beta_k) e_k - beta_k e_{k-1}), hence
    p_{k+1} = (1 - gamma_k lam)((1 + beta_k) p_k - beta_k p_{k-1}), p_0 = p_{-1} = 1. Derived (the
    FISTA iteration itself: Beck & Teboulle 2009, Sec. 4; the Beck-Teboulle momentum is
    ``unrolled.steps.fista_momentum``). Heavy ball (gradient taken at x_k, not z_k) has another recurrence,
    p_{k+1} = (1 + beta_k - gamma_k lam) p_k - beta_k p_{k-1}, and is not covered by this function.
    """
    lam = np.asarray(lam, dtype=np.float64)
    prev = cur = np.ones_like(lam)
    out = [cur]
    for g, b in zip(np.asarray(steps, dtype=np.float64), np.asarray(momentum, dtype=np.float64)):
        cur, prev = (1.0 - g * lam) * ((1.0 + b) * cur - b * prev), cur
        out.append(cur)
    return np.stack(out)


# ---- the exact worst case of a step schedule -------------------------------------------------------------


def sup_abs_residual(steps: Sequence[float], mu: float, L: float, iterations: int = 200) -> tuple[float, float]:
    """(sup_{lam in [mu, L]} |prod_k (1 - gamma_k lam)|, an argmax), exactly up to round-off.

    The roots 1/gamma_k (gamma_k != 0) inside (mu, L) cut [mu, L] into intervals on which log|p| =
    sum_k log|1 - gamma_k lam| is strictly concave (each term has second derivative -gamma_k^2/(1 - gamma_k lam)^2
    < 0), with derivative g(lam) = sum_k gamma_k / (gamma_k lam - 1), strictly decreasing there. The maximum on
    an interval is at an end where g has the sign pointing out, else at the unique zero of g (bisection to
    machine precision, all intervals at once). Derived; valid for any real steps (zero and negative ones
    included). Cost O(K^2) per bisection step (about 60 steps). An empty schedule gives (1.0, mu).
    """
    gam = np.asarray(steps, dtype=np.float64)
    gam = gam[gam != 0]
    if gam.size == 0:
        return 1.0, mu
    roots = np.sort(1.0 / gam)
    inner = [float(r) for r in roots if mu < r < L]
    cuts = np.array([mu, *inner, L], dtype=np.float64)
    at_root = np.array([False, *([True] * len(inner)), False])

    def g(lam: np.ndarray) -> np.ndarray:  # one value per point; NaN/inf at roots are masked by the caller
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sum(gam / (gam * lam[:, None] - 1.0), axis=1)

    def p(lam: np.ndarray) -> np.ndarray:  # +inf when |p| overflows float64 (an upper bound, still)
        with np.errstate(over="ignore"):
            return np.abs(np.prod(1.0 - gam * lam[:, None], axis=1))

    # g -> +inf just right of a root and -inf just left of one: use these limits at ends that are roots up to
    # round-off (|1 - gamma_k e| <= 1e-12; 1/gamma_k is rounded, so g there may have either sign)
    near_root = at_root | (np.min(np.abs(1.0 - gam * cuts[:, None]), axis=1) <= 1e-12)
    g_cuts = g(cuts)
    a, b = cuts[:-1], cuts[1:]
    ga = np.where(near_root[:-1], math.inf, g_cuts[:-1])
    gb = np.where(near_root[1:], -math.inf, g_cuts[1:])
    # elsewhere g is monotone on the interval: the maximum is at an end (mu, L, or a root where p = 0)
    inside = (b > a) & (ga > 0) & (gb < 0)
    lo, hi = a[inside].copy(), b[inside].copy()
    active = np.ones(lo.size, dtype=bool)
    for _ in range(iterations):  # bisection on every interval at once, each stopping at machine precision
        mid = 0.5 * (lo + hi)
        active &= (mid > lo) & (mid < hi)
        if not active.any():
            break
        idx = np.nonzero(active)[0]
        up = g(mid[idx]) > 0
        lo[idx[up]] = mid[idx[up]]
        hi[idx[~up]] = mid[idx[~up]]
    candidates = np.concatenate([[mu, L], np.column_stack([lo, hi]).ravel()])
    values = p(candidates)
    best = int(np.argmax(values))
    return float(values[best]), float(candidates[best])


def exact_abs_residual(steps: Sequence[float], points: Sequence[float]) -> list[Fraction]:
    """|prod_k (1 - gamma_k lam)| at each point, in exact rational arithmetic of the given floats.

    For round-off-free checks of the alternation inequality max_j |p(lam_j)| >= ``minimax_value`` at the
    float64 ``chebyshev_extrema``."""
    gam = [Fraction(float(g)) for g in steps]
    out = []
    for lam in points:
        q = Fraction(float(lam))
        val = Fraction(1)
        for g in gam:
            val *= 1 - g * q
        out.append(abs(val))
    return out


# ---- the average case ------------------------------------------------------------------------------------


def noise_variance(eigenvalues: np.ndarray, m: int, snr_db: float | None) -> float:
    """Expected per-entry noise variance s^2 = E||A x||^2 / m * 10^(-SNR/10) = tr(M) / m * 10^(-SNR/10).

    The noise model of ``unrolled.problems`` (per-sample SNR: sigma(x)^2 = ||A x||^2 / m * 10^(-SNR/10)) with
    x ~ N(0, I_n), so E||A x||^2 = tr(A^T A) = sum of the eigenvalues of M. Since the noise is white given x,
    ``expected_nmse`` holds exactly with s^2 = E sigma(x)^2 (derived). ``snr_db`` None: no noise, 0.0.
    """
    if snr_db is None:
        return 0.0
    return float(np.sum(eigenvalues) / m * 10.0 ** (-snr_db / 10.0))


def expected_nmse(residuals: np.ndarray, eigenvalues: np.ndarray, s2: float) -> np.ndarray:
    """E||x_k - x||^2 / E||x||^2 = mean_i [p_k(lam_i)^2 + s2 (1 - p_k(lam_i))^2 / lam_i] for every row k.

    Setting: y = A x + w, x ~ N(0, I_n), w white with E[w w^T | x] = sigma(x)^2 I and E sigma^2 = s2, M = A^T A
    with eigenvalues lam_i > 0, x_0 = 0, and a linear method with residual polynomials p_k (``residuals``: rows
    p_k evaluated at the eigenvalues, e.g. ``gd_residual(steps, eigenvalues)``). Then x_k = (I - p_k(M)) x_ls,
    x_ls = x + M^{-1} A^T w, so x_k - x = -p_k(M) x + (I - p_k(M)) M^{-1} A^T w; the cross term has mean 0 and
    the two squares give the formula (derived). This is the average-case criterion of Pedregosa & Scieur 2020
    (expected error as an integral of p_k^2 against the spectral measure; their form recalled) for the empirical
    spectral measure, with a noise term.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    return np.mean(residuals**2 + s2 * (1.0 - residuals) ** 2 / lam, axis=-1)


def avg_case_optimal_polynomial(eigenvalues: np.ndarray, s2: float, num_layers: int, mu: float,
                                L: float) -> dict[str, Any]:
    """The degree-K polynomial with p(0) = 1 minimising sum_i [p(lam_i)^2 + s2 (1 - p(lam_i))^2 / lam_i].

    That is, the minimiser of ``expected_nmse`` at layer K over all linear methods whose p_K has degree <= K:
    a lower bound for every K-step GD schedule (learned or not) in expectation over the data. Written in the
    Chebyshev basis of [mu, L] (well conditioned), the objective is c^T H c - 2 g^T c + const with one linear
    constraint a^T c = 1 (a_j = T_j(t(0))); it is convex, so its KKT system gives the global minimiser; the
    system is solved by least squares (the minimum-norm solution when H is singular, n <= K). Returns
    {"steps": 1/roots sorted ascending, or None when a root is not real and positive (then no GD schedule
    attains it), "roots", "expected_nmse", "realizable"}.

    Average-case optimality for a spectral measure: Pedregosa & Scieur (ICML 2020; framework confirmed in the
    paper's abstract and introduction, their theorem statements recalled); here for the empirical measure of
    ``eigenvalues`` and with the noise term, derived. Assumes eigenvalues > 0 and mu <= L (the basis interval).
    """
    from numpy.polynomial import chebyshev as C

    lam = np.asarray(eigenvalues, dtype=np.float64)
    scale = (L - mu) if L > mu else 1.0

    def t(v: np.ndarray) -> np.ndarray:
        return (2.0 * v - (L + mu)) / scale

    V = C.chebvander(t(lam), num_layers)
    a = C.chebvander(t(np.array([0.0])), num_layers)[0]
    v = s2 / lam
    H = V.T @ ((1.0 + v)[:, None] * V)
    g = V.T @ v
    kkt = np.block([[H, a[:, None]], [a[None, :], np.zeros((1, 1))]])
    sol = np.linalg.lstsq(kkt, np.concatenate([g, [1.0]]), rcond=None)[0]
    c = sol[:-1]
    vals = V @ c
    expected = float(np.mean(vals**2 + v * (1.0 - vals) ** 2))
    roots = (C.chebroots(c) * scale + (L + mu)) / 2.0
    real = bool(roots.size == num_layers and np.all(np.abs(roots.imag) <= 1e-8 * np.max(np.abs(roots)))
                and np.all(roots.real > 0))
    steps = np.sort(1.0 / roots.real) if real else None
    return {"steps": steps, "roots": [complex(r) for r in roots], "expected_nmse": expected, "realizable": real}


# ---- the worst case as a Bound ---------------------------------------------------------------------------


def _as_array(name: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, possibly a trained parameter
        value = value.detach().cpu().numpy()
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence (one value per layer), got shape {arr.shape}")
    return arr


def _finite(name: str, arr: np.ndarray) -> Assumption:
    ok = bool(np.all(np.isfinite(arr)))
    measured = float(np.max(np.abs(arr))) if ok and arr.size else (0.0 if ok else float("nan"))
    return Assumption(f"{name} finite", ok, measured, f"every entry of {name} finite (measured: max |entry|)")


def _momentum_grid(mu: float, L: float, num_layers: int, points: int) -> np.ndarray:
    """``spectrum_grid`` plus the Chebyshev extrema of every degree 1..K (so layer k's grid value is
    >= ``minimax_value(k)``)."""
    parts = [spectrum_grid(mu, L, max(num_layers, 1), points)]
    parts += [chebyshev_extrema(k, mu, L) for k in range(1, num_layers)]
    return np.unique(np.concatenate(parts))


def quadratic_worst_case(steps: Any, mu: float, L: float, momentum: Any = None, *,
                         grid_points: int = 20001) -> Bound:
    """Exact worst case, per layer k = 0..K, of ||x_k - x*|| / ||x_0 - x*|| over quadratics (least squares)
    whose Hessian spectrum lies in [mu, L], for GD with the given steps (or FISTA-type momentum).

    Class: f(x) = 0.5 x^T M x - b^T x with M symmetric, spectrum in [mu, L], any b and any x_0 != x*. Method:
    x_{k+1} = x_k - gamma_k grad f(x_k) (``momentum`` None), or x_{k+1} = z_k - gamma_k grad f(z_k) with
    z_k = x_k + beta_k (x_k - x_{k-1}), x_{-1} = x_0 (``momentum`` = the beta_k, e.g.
    ``unrolled.steps.fista_momentum(K)``; this is FISTA / Nesterov's form, not heavy ball). Steps may be any
    real numbers (learned schedules with large or negative steps included).

    Value (derived): e_k = x_k - x* = p_k(M) e_0 with p_k the residual polynomial (``gd_residual`` /
    ``fista_residual``). With M = V diag(lam_i) V^T, ||e_k||^2 = sum_i p_k(lam_i)^2 (v_i^T e_0)^2 <=
    max_i p_k(lam_i)^2 ||e_0||^2, with equality for e_0 an eigenvector of the maximising eigenvalue. Hence

        values[k] = sup over the class of ||x_k - x*|| / ||x_0 - x*|| = max_{lam in [mu, L]} |p_k(lam)|,

    attained (tight) by M having lam* = argmax in its spectrum and x_0 - x* along its eigenvector. The bound is
    relative (R = ||x_0 - x*|| = 1): multiply by R. Every layer is computed from its own prefix of the
    schedule, so ``values`` is the per-layer worst case, not a contraction rate to the power k.

    * GD (``momentum`` None): exact up to round-off, by ``sup_abs_residual`` (critical points of log|p_k| by
      bisection; +inf if |p_k| overflows float64); ``extra["argmax_lambda"]`` holds a maximiser per layer;
      ``tight`` is True.
    * momentum: the maximum over a grid (``grid_points`` uniform points plus the Chebyshev extrema of every
      degree 1..K), a grid value, NOT exact: a lower estimate of the true worst case (attained at a grid
      eigenvalue), so ``tight`` is False and the theorem string says so. ``extra["markov_upper"]`` gives a
      rigorous upper bound from Markov's inequality max|p'| <= 2 k^2 / (L - mu) max|p| on [mu, L] (A. A. Markov,
      recalled): max|p_k| <= grid max / (1 - h k^2 / (L - mu)), h the largest grid gap (inf when h k^2 >= L - mu).

    Both: ``extra["minimax_value"][k]`` = 1/T_k((L+mu)/(L-mu)), the lower limit for any method whose p_k has
    degree <= k (``minimax_value``). Assumptions checked: mu > 0 and L > 0 finite, 0 < mu <= L, finite steps and
    momentum; values are NaN when one fails. Raises ValueError when ``steps`` / ``momentum`` is not 1-D or their
    lengths differ (a scalar momentum is broadcast).

    Quadratics only: over the larger class F_{mu,L} of non-quadratic mu-strongly convex L-smooth functions
    the worst case of the same schedule can be larger (for a constant step 0 < gamma < 2/L the two coincide,
    max(|1 - gamma mu|, |1 - gamma L|)^k: Taylor, Hendrickx & Glineur 2018, Thm 3.1, ``rates.gd_strongly_convex``).
    The reference there is performance estimation,
    ``theory.pep_worst_case(steps, L=L, mu=mu, metric=Metric.DISTANCE)``, which is exact but slow past about
    50 steps; this one takes about 0.1 s at K = 100 (cost grows like K^3: about 0.4 s at K = 200).
    """
    gam = _as_array("steps", steps)
    K = gam.size
    mu, L = float(mu), float(L)
    beta = None
    if momentum is not None:
        b = momentum.detach().cpu().numpy() if hasattr(momentum, "detach") else momentum
        b = np.asarray(b, dtype=np.float64)
        if b.ndim == 0:
            b = np.full(K, float(b))
        beta = _as_array("momentum", b)
        if beta.size != K:
            raise ValueError(f"momentum must have one value per step ({K}), got {beta.size}")
    assumptions = [positive_constant("mu", mu), positive_constant("L", L), ordered_constants(mu, L),
                   _finite("steps", gam)]
    if beta is not None:
        assumptions.append(_finite("momentum", beta))
    ok = all(a.holds for a in assumptions)
    k = np.arange(K + 1)
    values = np.full(K + 1, np.nan)
    extra: dict[str, Any] = {"mu": mu, "L": L, "steps": gam.tolist(),
                             "momentum": None if beta is None else beta.tolist(),
                             "method": "gd" if beta is None else "momentum",
                             "function_class": "quadratics with Hessian spectrum in [mu, L]",
                             "relative": True}
    if ok:
        extra["minimax_value"] = [minimax_value(int(j), mu, L) if j > 0 else 1.0 for j in k]
    if beta is None:
        theorem = QUADRATIC_WORST_CASE_THEOREM + "; exact sup of |p_k| (critical points of log|p_k|)"
        if ok:
            sups = [sup_abs_residual(gam[:j], mu, L) for j in k]
            values = np.array([s for s, _ in sups])
            extra["argmax_lambda"] = [a for _, a in sups]
        extra["exact"] = True
        tight = True
        notes = ("exact worst case on quadratics, attained by an eigenvector of eigenvalue argmax_lambda[k]; "
                 "over non-quadratic F_{mu,L} it can be larger (see theory.pep_worst_case)")
    else:
        theorem = QUADRATIC_WORST_CASE_THEOREM + "; GRID value of max |p_k| (not exact: a lower estimate)"
        if ok:
            grid = _momentum_grid(mu, L, K, grid_points)
            best = np.full(K + 1, -np.inf)
            arg = np.full(K + 1, mu)
            for start in range(0, grid.size, _CHUNK):
                chunk = grid[start:start + _CHUNK]
                res = np.abs(fista_residual(gam, beta, chunk))
                idx = np.argmax(res, axis=1)
                val = res[np.arange(K + 1), idx]
                better = val > best
                best = np.where(better, val, best)
                arg = np.where(better, chunk[idx], arg)
            values = best
            h = float(np.max(np.diff(grid))) if grid.size > 1 else 0.0
            width = L - mu
            with np.errstate(divide="ignore", invalid="ignore"):
                shrink = 1.0 - h * k.astype(np.float64) ** 2 / width if width > 0 else np.ones(K + 1)
                upper = np.where(shrink > 0, values / np.where(shrink > 0, shrink, 1.0), np.inf)
            extra.update({"argmax_lambda": arg.tolist(), "grid_size": int(grid.size), "grid_max_gap": h,
                          "markov_upper": upper.tolist()})
        extra["exact"] = False
        tight = False
        notes = ("grid value (not exact): max of |p_k| over the grid, a lower estimate of the worst case on "
                 "quadratics; extra['markov_upper'] is a rigorous upper bound (Markov's inequality)")
    name = "quadratic-worst-case-" + ("gd" if beta is None else "momentum")
    source = (f"derived (spectral theorem); residual polynomials: {YOUNG_1953}; {GOLUB_VARGA_1961}")
    return Bound.build(name, k, values, metric=Metric.DISTANCE, theorem=theorem, source=source,
                       status="derived", assumptions=tuple(assumptions), tight=tight, notes=notes, extra=extra)


def quadratic_objective_worst_case(steps: Any, mu: float, L: float, R: float = 1.0) -> tuple[float, float]:
    """Exact worst case of f(x_K) - f* after GD with ``steps`` over quadratics f = 0.5 x^T M x - b^T x with
    spectrum in [mu, L] and ||x_0 - x*|| <= R, and a maximising eigenvalue: (value, lam*).

    Derived: f(x_K) - f* = 0.5 e_K^T M e_K = 0.5 sum_i lam_i p_K(lam_i)^2 (v_i^T e_0)^2 <= R^2 max_{lam in
    [mu, L]} q(lam), q(lam) = lam p_K(lam)^2 / 2, with equality for e_0 = R v along the maximising eigenvector
    (the class PEPit's ``SmoothStronglyConvexQuadraticFunction`` describes). q is a polynomial of degree 2K + 1,
    so its maximum on [mu, L] is at an endpoint or at a real root of q' (numpy's companion-matrix roots,
    each refined by one Newton step; degree <= 2K, accurate for the K <~ 40 this is used with).
    """
    gam = _as_array("steps", steps)
    mu, L = float(mu), float(L)
    if not 0 <= mu < L:
        raise ValueError(f"need 0 <= mu < L, got mu={mu!r}, L={L!r}")
    p = np.polynomial.Polynomial([1.0])
    for g in gam:
        p = p * np.polynomial.Polynomial([1.0, -g])
    q = 0.5 * np.polynomial.Polynomial([0.0, 1.0]) * p * p
    dq, d2q = q.deriv(), q.deriv(2)
    cands = [mu, L]
    for r in dq.roots():
        if abs(r.imag) <= 1e-9 * max(1.0, abs(r.real)):
            x = float(r.real)
            if d2q(x) != 0:
                x -= dq(x) / d2q(x)
            if mu <= x <= L:
                cands.append(x)
    vals = [float(q(x)) for x in cands]
    i = int(np.argmax(vals))
    return R * R * vals[i], cands[i]
