"""Linear convergence of unfolded ISTA: LISTA-CP / LISTA-CPSS (Chen, Liu, Wang & Yin, NeurIPS 2018) and
ALISTA (Liu, Chen, Wang & Yin, ICLR 2019), with every constant computed.

Setting. y = A x* + eps, A with unit-norm columns, x* in X(B, s) = {|x*_i| <= B, ||x*||_0 <= s},
||eps||_1 <= sigma, x^0 = 0, layers x^{k+1} = eta_{theta^k}(x^k + (W^k)^T (y - A x^k)) (LISTA-CP; ALISTA is
W^k = gamma^k W). For a weight W (n columns W_i) define

    mu(W, A)    = max_{i != j} |W_i^T A_j|        (generalized coherence of W; Chen et al. 2018 Def. 1,
                                                    ALISTA Def. 1 eq. (9): mu~(A) = min over W with
                                                    W_i^T A_i = 1 of mu(W, A))
    delta(W, A) = max_i |1 - W_i^T A_i|           (0 for the "good" weights of the theorems)
    c_W         = max_{i, j} |W_ij|               (noise gain: |W_i^T eps| <= c_W ||eps||_1)

Statements encoded (status in docs/theory_sources.md):
- ALISTA Thm 1 (confirmed in the paper text, review version, eqs (10)-(11)): with W in W(A) (so
  delta = 0, mu = mu~), gamma^k in (0, 2/(2 mu~ s - mu~ + 1)), theta^k = gamma^k mu~ sup ||x^k - x*||_1 and
  s < (1 + 1/mu~)/2: supp(x^k) in S and ||x^k - x*||_2 <= s B exp(-sum_{t<k} c^t),
  c^t = -log((2 mu~ s - mu~) gamma^t + |1 - gamma^t|). gamma = 1 gives the LISTA-CP theorem of Chen et al.
  2018 (their Thm 2, number recalled): s B exp(-c k), c = -log((2s - 1) mu~).
- The per-sample recursion behind both proofs (derived, see ``layer_recursion``): it certifies any
  weights and thresholds, trained ones included, and reduces to the theorems above.
The sup over X(B, s) in the threshold rule is intractable; the certified schedule theta^k = mu e_k with
e_k the recursion's own l1 bound satisfies the hypothesis (it is >= the sup), and sampling the sup
instead is anti-conservative (reported as such, never used to certify).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from unfoldkit.theory.bound import Assumption, Bound, Metric
from unfoldkit.unrolled.validation import finite_array, nonnegative_real, positive_int, positive_real

CHEN_2018 = ("Chen, Liu, Wang & Yin 2018, Theoretical linear convergence of unfolded ISTA and its "
             "practical weights and thresholds, NeurIPS (arXiv 1808.10038)")
ALISTA_2019 = ("Liu, Chen, Wang & Yin 2019, ALISTA: analytic weights are as good as learned weights in "
               "LISTA, ICLR (OpenReview B1lnzn0ctQ)")

#: relative slack for comparisons of computed constants (float64 round-off in W^T A)
REL = 1e-9


@dataclass(frozen=True)
class WeightConstants:
    """Constants of a weight matrix W (m x n) against A (m x n) that the LISTA theorems use."""

    mu: float  # max_{i != j} |W_i^T A_j|
    delta: float  # max_i |1 - W_i^T A_i|
    c_w: float  # max_{i,j} |W_ij|
    mu_normalized: float  # max_i max_{j != i} |W_i^T A_j| / |W_i^T A_i|: mu of W with unit diagonal

    def to_dict(self) -> dict[str, float]:
        return {"mu": self.mu, "delta": self.delta, "c_w": self.c_w, "mu_normalized": self.mu_normalized}


def weight_constants(W: np.ndarray, A: np.ndarray) -> WeightConstants:
    """mu(W, A), delta(W, A), c_W and the diagonal-normalized coherence of one weight matrix (m x n).

    ``mu_normalized`` is the generalized coherence of W rescaled column-wise to unit diagonal (what the
    theorems' mu~ measures for the direction of W; scale-free, so gamma W~ gives mu(W~, A)); inf when a
    column has W_i^T A_i = 0."""
    w = finite_array("W", W, ndim=2)
    a = finite_array("A", A, ndim=2)
    if w.shape != a.shape:
        raise ValueError(f"W must have the shape of A {a.shape}, got {w.shape}")
    g = w.T @ a
    diag = np.diag(g).copy()
    off = np.abs(g)
    np.fill_diagonal(off, 0.0)
    mu = float(off.max()) if a.shape[1] > 1 else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        per_col = off.max(axis=1) / np.abs(diag)
    mu_n = float(np.max(np.where(np.abs(diag) > 0, per_col, np.inf))) if a.shape[1] > 1 else 0.0
    return WeightConstants(mu=mu, delta=float(np.max(np.abs(1.0 - diag))), c_w=float(np.abs(w).max()),
                           mu_normalized=mu_n)


def sparsity_limit(mu: float) -> float:
    """The largest admissible sparsity: the theorems need s < (1 + 1/mu) / 2."""
    mu = positive_real("mu", mu)
    return 0.5 * (1.0 + 1.0 / mu)


def sparsity_assumption(s: int, mu: float, what: str = "mu(W, A)") -> Assumption:
    """s < (1 + 1/mu)/2 (Chen et al. 2018 Thm 2; ALISTA Thm 1). E.g. mu = 0.2 allows s <= 2."""
    limit = sparsity_limit(mu)
    return Assumption("sparsity s < (1 + 1/mu)/2", bool(s < limit), float(s),
                      f"s < {limit:.4g} (with {what} = {mu:.4g})")


def alista_step_range(mu: float, s: int) -> float:
    """Upper end of ALISTA Thm 1's step range: gamma in (0, 2 / (2 mu s - mu + 1))."""
    return 2.0 / (2.0 * mu * s - mu + 1.0)


def layer_recursion(mus: np.ndarray, deltas: np.ndarray, thetas: np.ndarray, s: int, B: float,
                    sigma: float = 0.0, c_ws: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Certified l1-error recursion of LISTA-CP-type layers (derived; the proof of Chen et al. 2018
    Thm 2 / ALISTA Thm 1 written per layer for arbitrary weights and thresholds).

    For x* in X(B, s), ||eps||_1 <= sigma, x^0 = 0 and layer k with constants (mu_k, delta_k, c_k) and
    threshold theta_k: if theta_k >= mu_k e_k + c_k sigma ("no false positives"), then supp(x^{k+1}) in S and

        e_{k+1} = (delta_k + (s - 1) mu_k) e_k + s theta_k + s c_k sigma,   e_0 = s B,

    bounds ||x^{k+1} - x*||_1 (hence the l2 error). Proof: off S, |z_i| <= mu_k e_k + c_k sigma <= theta_k
    so eta gives 0; on S, |eta(z_i) - x*_i| <= |z_i - x*_i| + theta_k with
    z_i - x*_i = (1 - W_i^T A_i)(x^k_i - x*_i) + sum_{j in S, j != i} W_i^T A_j (x*_j - x^k_j) + W_i^T eps.
    Support selection (entries with |z_i| > theta_k kept unshrunk) only removes threshold terms on S and
    selects nothing off S, so the same bound holds for LISTA-CPSS and ALISTA with support selection.

    Returns (e, no_false_positive) with e of length K+1 and a boolean per layer telling whether the
    threshold condition held (where it fails, e is NaN from that layer on: no certificate).
    """
    mus = np.asarray(mus, dtype=np.float64)
    K = mus.shape[0]
    deltas = np.broadcast_to(np.asarray(deltas, dtype=np.float64), (K,))
    thetas = np.broadcast_to(np.asarray(thetas, dtype=np.float64), (K,))
    cs = np.zeros(K) if c_ws is None else np.broadcast_to(np.asarray(c_ws, dtype=np.float64), (K,))
    positive_int("s", s)
    B = positive_real("B", B)
    sigma = nonnegative_real("sigma", sigma)
    e = np.full(K + 1, np.nan)
    ok = np.zeros(K, dtype=bool)
    e[0] = s * B
    for k in range(K):
        need = mus[k] * e[k] + cs[k] * sigma
        ok[k] = bool(thetas[k] >= need * (1 - REL))
        if not ok[k]:
            break
        e[k + 1] = (deltas[k] + (s - 1) * mus[k]) * e[k] + s * thetas[k] + s * cs[k] * sigma
    return e, ok


def project_thresholds(mus: np.ndarray, deltas: np.ndarray, thetas: np.ndarray, s: int, B: float,
                       sigma: float = 0.0, c_ws: np.ndarray | None = None, slack: float = 1e-5,
                       cast: Callable[[float], float] | None = None) -> np.ndarray:
    """The smallest change of ``thetas`` that makes ``layer_recursion`` certify every layer: per layer, in
    order, theta_k <- max(theta_k, (1 + slack)(mu_k e_k + c_k sigma)) with e_k the recursion's l1 bound for the
    thresholds already fixed (a larger theta_k raises e_{k+1}, hence the later requirements: the projection is
    sequential). ``cast`` rounds a value to the model's storage precision (e.g. float32) before it enters the
    recursion, so the stored thresholds are the certified ones; ``slack`` (>= 0) absorbs that rounding and the
    recursion's own relative slack REL. Derived from the proof of Chen et al. 2018 Thm 2 / ALISTA Thm 1 (see
    ``layer_recursion``). Returns the new thresholds (float64)."""
    mus = finite_array("mus", mus, ndim=1)
    K = mus.shape[0]
    deltas = np.broadcast_to(np.asarray(deltas, dtype=np.float64), (K,))
    out = np.array(np.broadcast_to(finite_array("thetas", thetas), (K,)), dtype=np.float64)
    cs = np.zeros(K) if c_ws is None else np.broadcast_to(np.asarray(c_ws, dtype=np.float64), (K,))
    s = positive_int("s", s)
    e = s * positive_real("B", B)
    sigma = nonnegative_real("sigma", sigma)
    slack = nonnegative_real("slack", slack)
    for k in range(K):
        need = (mus[k] * e + cs[k] * sigma) * (1.0 + slack)
        if out[k] < need:
            out[k] = need if cast is None else cast(need)
        e = (deltas[k] + (s - 1) * mus[k]) * e + s * out[k] + s * cs[k] * sigma
    return out


def certified_thresholds(mu: float, s: int, B: float, num_layers: int, gammas: np.ndarray | None = None,
                         sigma: float = 0.0, c_w: float = 0.0) -> np.ndarray:
    """The computable threshold schedule theta^k = gamma^k (mu e_k + c_W sigma), with e_k from the
    recursion itself (delta = |1 - gamma^k|, mu_k = gamma^k mu): the smallest thresholds the certificate
    accepts. It dominates the theorems' theta^k = gamma^k mu sup ||x^k - x*||_1, so their hypothesis holds."""
    K = positive_int("num_layers", num_layers)
    g = np.ones(K) if gammas is None else np.broadcast_to(np.asarray(gammas, dtype=np.float64), (K,))
    e = s * positive_real("B", B)
    out = np.empty(K)
    for k in range(K):
        out[k] = g[k] * (mu * e + c_w * sigma)
        e = (abs(1 - g[k]) + g[k] * (s - 1) * mu) * e + s * out[k] + s * g[k] * c_w * sigma
    return out


def alista_bound(mu: float, s: int, B: float, gammas: np.ndarray, *, weight: str = "W",
                 thresholds: np.ndarray | None = None, delta: float = 0.0, sigma: float = 0.0,
                 c_w: float = 0.0) -> Bound:
    """ALISTA Thm 1 (Liu et al. 2019, eqs (10)-(11)): ||x^k - x*||_2 <= s B exp(-sum_{t<k} c^t),
    c^t = -log((2 mu s - mu) gamma^t + |1 - gamma^t|), for layers x^{k+1} = eta(x^k - gamma^k W^T(A x^k - y)).

    ``mu`` is the coherence of the weight in use (``weight`` names it: the theorem states mu~ with the
    exact minimiser; any W with unit diagonal works with mu(W, A), by the derived recursion). Assumptions
    checked: s < (1 + 1/mu)/2, gamma^t in (0, 2/(2 mu s - mu + 1)), unit diagonal (delta = 0 within 1e-9),
    and, when ``thresholds`` are given, theta^t >= gamma^t (mu e_t + c_W sigma) (the certified form of
    theta^t = gamma^t mu sup ||x^t - x*||_1). Noise (sigma > 0) adds the derived terms of ``layer_recursion``.
    Values: per layer, the recursion's l1 bound (<= the theorem's closed form when sigma = 0).
    """
    g = finite_array("gammas", gammas, ndim=1)
    K = g.shape[0]
    mu = positive_real("mu", mu)
    s = positive_int("s", s)
    hi = alista_step_range(mu, s)
    gmin, gmax = (float(g.min()), float(g.max())) if K else (1.0, 1.0)
    assumptions = [
        sparsity_assumption(s, mu, f"mu({weight}, A)"),
        Assumption("step gamma^k in (0, 2/(2 mu s - mu + 1))", bool(gmin > 0 and gmax < hi), gmax,
                   f"0 < gamma^k < {hi:.4g}"),
        Assumption("unit diagonal W_i^T A_i = 1", bool(delta <= 1e-9), float(delta), "max_i |1 - W_i^T A_i| <= 1e-9"),
    ]
    need = certified_thresholds(mu, s, B, K, g, sigma, c_w) if K else np.zeros(0)
    if thresholds is not None:
        th = finite_array("thresholds", thresholds, ndim=1)
        if th.shape[0] != K:
            raise ValueError(f"thresholds must have one value per layer ({K}), got {th.shape[0]}")
        ratio = float(np.min(th / np.maximum(need, np.finfo(float).tiny))) if K else 1.0
        assumptions.append(Assumption("threshold theta^k >= gamma^k (mu e_k + c_W sigma)", bool(ratio >= 1 - REL),
                                      ratio, "min_k theta^k / required >= 1"))
        th_used = th
    else:
        th_used = need
    e, ok = layer_recursion(g * mu, np.abs(1 - g), th_used, s, B, sigma, g * c_w)
    closed = s * B * np.exp(-np.concatenate([[0.0], np.cumsum(-np.log((2 * mu * s - mu) * g + np.abs(1 - g)))]))
    values = e if sigma > 0 or thresholds is not None else np.minimum(e, closed)
    return Bound.build("alista-thm1", np.arange(K + 1), values, metric=Metric.DISTANCE,
                       theorem="Thm 1 (eqs (10)-(11)); noise and given thresholds: derived recursion",
                       source=ALISTA_2019, status="confirmed" if sigma == 0 and thresholds is None else "derived",
                       assumptions=tuple(assumptions),
                       extra={"mu": mu, "weight": weight, "gammas": g.tolist(), "closed_form": closed.tolist(),
                              "rates": (-np.log((2 * mu * s - mu) * g + np.abs(1 - g))).tolist(),
                              "thresholds": th_used.tolist()})


def lista_cp_bound(mu: float, s: int, B: float, num_layers: int, *, weight: str = "W",
                   thresholds: np.ndarray | None = None, delta: float = 0.0, sigma: float = 0.0,
                   c_w: float = 0.0) -> Bound:
    """LISTA-CP linear convergence (Chen et al. 2018, Thm 2, number recalled; constants confirmed through
    ALISTA's restatement with gamma = 1): ||x^k - x*||_2 <= s B exp(-c k), c = -log((2s - 1) mu), under
    s < (1 + 1/mu)/2, unit diagonal, theta^k = mu sup ||x^k - x*||_1 (certified: theta^k >= mu e_k).
    With noise ||eps||_1 <= sigma: + derived terms (the paper's constant C is not confirmed; ours is
    from ``layer_recursion``: C = 2 s c_W / (1 - (2s - 1) mu) in the limit)."""
    b = alista_bound(mu, s, B, np.ones(positive_int("num_layers", num_layers)), weight=weight,
                     thresholds=thresholds, delta=delta, sigma=sigma, c_w=c_w)
    status = "confirmed" if sigma == 0 and thresholds is None else "derived"
    return Bound.build("lista-cp-thm2", b.iterations, b.values, metric=Metric.DISTANCE,
                       theorem="Thm 2 (number recalled; stated in ALISTA Thm 1 with gamma = 1)", source=CHEN_2018,
                       status=status, assumptions=b.assumptions[:1] + b.assumptions[2:], extra=b.extra)


def model_recursion_bound(mus: np.ndarray, deltas: np.ndarray, thetas: np.ndarray, s: int, B: float,
                          sigma: float = 0.0, c_ws: np.ndarray | None = None, name: str = "lista-recursion") -> Bound:
    """Certificate for a trained LISTA-CP / CPSS / ALISTA model with per-layer constants (derived, see
    ``layer_recursion``). Assumption: the learned thresholds never fall below mu_k e_k + c_k sigma. Unlike
    the theorems it needs no sparsity condition for validity; the sparsity condition is what makes
    the per-layer factor delta_k + (2s - 1) mu_k < 1 (linear convergence), reported in extra."""
    e, ok = layer_recursion(mus, deltas, thetas, s, B, sigma, c_ws)
    mus = np.asarray(mus, dtype=np.float64)
    deltas = np.broadcast_to(np.asarray(deltas, dtype=np.float64), mus.shape)
    factors = deltas + (2 * s - 1) * mus
    first_bad = None if ok.all() else float(np.argmin(ok))  # the measured number only where one layer fails
    th = Assumption("learned thresholds theta^k >= mu_k e_k + c_k sigma at every layer (no false positives)",
                    bool(ok.all()), first_bad, "no failing layer; measured = the first k with "
                    "theta^k < mu_k e_k + c_k sigma, theta^k making x^{k+1}")
    contraction = Assumption("per-layer factor delta_k + (2s-1) mu_k < 1", bool(np.all(factors < 1)),
                             float(np.max(factors)) if factors.size else 0.0, "max_k factor < 1")
    return Bound.build(name, np.arange(len(e)), e, metric=Metric.DISTANCE,
                       theorem="per-layer recursion of the proof of Thm 2 (Chen 2018) / Thm 1 (ALISTA)",
                       source=CHEN_2018, status="derived", assumptions=(th,),
                       extra={"factors": factors.tolist(), "contraction": contraction.to_dict(),
                              "no_false_positive": ok.tolist()})


def fit_decay_rate(errors: np.ndarray, skip: int = 0) -> tuple[float, float]:
    """Least-squares fit log(err_k) ~ a + k log(rho) over layers k >= skip with err_k > 0.

    Returns (rho, c) with c = -log(rho): the measured per-layer contraction, to compare with the
    theoretical exp(-c). NaN when fewer than two usable layers."""
    err = np.asarray(errors, dtype=np.float64)
    k = np.arange(err.shape[0])
    use = (k >= skip) & np.isfinite(err) & (err > 0)
    if use.sum() < 2:
        return math.nan, math.nan
    slope = np.polyfit(k[use], np.log(err[use]), 1)[0]
    return float(np.exp(slope)), float(-slope)
