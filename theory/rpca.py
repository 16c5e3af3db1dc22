"""Recovery theory of robust PCA (M = L0 + S0) as ``Bound``s with checked assumptions.

Three theorems, each a function of measured numbers (numpy arrays; batch axis B) returning a ``Bound`` on
``Metric.LOWRANK_ERROR`` = ||L_k - L0||_F with every hypothesis an ``Assumption``; a failed one blanks the
values (NaN), one that cannot be checked has ``holds=None`` (the bound then does not apply either).

* ``lrpca_bound``: Cai, Liu & Yin, NeurIPS 2021 (arXiv 2110.05649), the recovery theorem of LRPCA
  (ScaledGD with soft thresholding, per-layer thresholds zeta_k and steps eta_k), **recalled**: if L0 is
  rank-r, mu-incoherent with condition number kappa, S0 is alpha-sparse (at most an alpha fraction of
  non-zeros in every row and column) with alpha <= c / (mu r^{3/2} kappa), the thresholds are
  zeta_0 = ||L0||_inf and zeta_{k+1} = ||L0 - L_k||_inf (the thresholding of M - L_k at layer k+1; an
  oracle schedule: it needs the unknown L0, which the learned thresholds stand in for) and the steps lie in
  [1/4, 8/9], then ||L_k - L0||_F <= 0.03 (1 - 0.6 eta)^k sigma_r(L0). The absolute constant c hidden in the
  paper's "alpha <~ 1/(mu r^{3/2} kappa)" was not confirmed; ``LRPCA_C_ALPHA`` = 1e-4 is recalled. With
  varying steps eta = min_k eta_k (the largest factor 1 - 0.6 eta, the conservative reading).
* ``altproj_bound``: Netrapalli, Niranjan, Sanghavi, Anandkumar & Jain, NeurIPS 2014, "Non-convex Robust
  PCA", Theorem 1, **recalled**: L0 rank-r, mu-incoherent; S0 alpha-sparse with alpha <= 1/(512 mu^2 r);
  AltProj (Alg. 1) with beta = 4 mu^2 r / sqrt(n1 n2) outputs ||L - L0||_F <= eps after
  T = 10 log(n beta ||M||_2 / eps) iterations per rank stage (n = max(n1, n2)). The per-iteration values
  eps_t = n beta sigma_1(M) 2^{-t/10} invert T (log base 2: implied by either reading of "log"); +inf at
  t = 0 (L_0 = 0 is the initialisation, not an output). beta, T and the threshold schedule are corroborated by
  a third-party implementation, not by the paper's text.
* ``pcp_bound``: Candes, Li, Ma & Wright, J. ACM 2011, "Robust principal component analysis?",
  Theorem 1.1, **recalled** (a secondary source corroborates the conditions): if L0 is mu-incoherent with
  rank(L0) <= rho_r n_(2) mu^{-1} (log n_(1))^{-2} and the support of S0 is uniform (or Bernoulli) of size
  m <= rho_s n_(1) n_(2), PCP with lam = 1/sqrt(n_(1)) recovers L0 and S0 exactly with probability
  >= 1 - c n_(1)^{-10}. rho_r, rho_s, c are unspecified numerical constants: the rank and sparsity
  conditions cannot be checked (holds=None). It bounds the PCP minimizer, not an algorithm's iterates.

Sources and statuses: docs/theory_sources.md, section "Robust PCA".
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from unfoldkit.theory.bound import Assumption, Bound, Metric

LRPCA_SOURCE = ("Cai, Liu & Yin, NeurIPS 2021, \"Learned Robust PCA: A Scalable Deep Unfolding Approach for "
                "High-Dimensional Outlier Detection\" (arXiv 2110.05649)")
LRPCA_THEOREM = "LRPCA recovery guarantee (Theorem 1, recalled)"
ALTPROJ_SOURCE = ("Netrapalli, Niranjan, Sanghavi, Anandkumar & Jain, NeurIPS 2014, \"Non-convex Robust PCA\" "
                  "(arXiv 1410.7660)")
ALTPROJ_THEOREM = "AltProj exact recovery (Theorem 1, recalled)"
PCP_SOURCE = "Candes, Li, Ma & Wright, J. ACM 58(3), 2011, \"Robust principal component analysis?\""
PCP_THEOREM = "PCP exact recovery (Theorem 1.1, recalled)"

#: the absolute constant c of LRPCA's alpha <= c / (mu r^{3/2} kappa) (recalled, not confirmed)
LRPCA_C_ALPHA = 1e-4
#: LRPCA's step-size range [1/4, 8/9], contraction 1 - 0.6 eta and initial radius 0.03 sigma_r (recalled)
LRPCA_ETA_RANGE = (0.25, 8.0 / 9.0)
LRPCA_RATE = 0.6
LRPCA_RADIUS = 0.03
#: AltProj's alpha <= 1 / (ALTPROJ_C_ALPHA mu^2 r) and beta = 4 mu^2 r / sqrt(n1 n2) (recalled)
ALTPROJ_C_ALPHA = 512.0
ALTPROJ_C_BETA = 4.0
#: AltProj's iteration count T = 10 log(n beta ||M||_2 / eps) per stage (recalled)
ALTPROJ_T_FACTOR = 10.0


def _arr(x: Any, shape_b: int | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if shape_b is not None and a.ndim == 0:
        a = np.full(shape_b, float(a))
    return a


def _noise_check(noise: Any, tol: Any) -> Assumption:
    noise, tol = _arr(noise), _arr(tol)
    worst = float(np.max(noise)) if noise.size else 0.0
    ok = bool(np.all(noise <= tol))
    return Assumption("no dense noise: M = L0 + S0 exactly (max |M - L0 - S0|)", ok, worst,
                      f"<= round-off {float(np.max(tol)) if tol.size else 0.0:.3g}")


def _thresholds(zeta: Any, num_steps: int, b: int) -> np.ndarray:
    """zeta as (K+1, B): one threshold per layer (the initial one first), shared or per instance."""
    z = _arr(zeta)
    if z.ndim == 1:
        z = np.broadcast_to(z[:, None], (z.shape[0], b))
    if z.shape != (num_steps + 1, b):
        raise ValueError(f"zeta must have K+1 = {num_steps + 1} entries (each a float or B = {b} values), "
                         f"got shape {z.shape}")
    return z


def lrpca_bound(*, rank: Any, model_rank: int, incoherence: Any, condition: Any, sparsity_max: Any,
                sigma_r: Any, zeta: Any, eta: Any, l0_inf: Any, error_inf: Any, noise: Any,
                noise_tol: Any = 0.0, c_alpha: float = LRPCA_C_ALPHA, threshold_rtol: float = 1e-6,
                threshold_atol: Any = 0.0, name: str = "lrpca-thm1") -> Bound:
    """LRPCA's recovery bound ||L_k - L0||_F <= 0.03 (1 - 0.6 eta)^k sigma_r(L0), k = 0..K, per instance
    (values (K+1, B)), with its assumptions checked on measured numbers (see the module docstring).

    Per instance b (arrays (B,)): ``rank`` of L0, ``incoherence`` mu, ``condition`` kappa, ``sparsity_max``
    alpha (largest row/column fraction of S0's support), ``sigma_r`` = sigma_r(L0), ``l0_inf`` = ||L0||_inf,
    ``noise`` = max |M - L0 - S0| (``noise_tol`` its round-off allowance). ``model_rank``: the rank r of the
    factorisation. Schedule: ``zeta`` K+1 thresholds (the initial one first; floats or (B,) each) and ``eta``
    K steps. ``error_inf`` (K+1, B): ||L_k - L0||_inf of the run (uses the ground truth L0). The threshold
    conditions zeta_0 = ||L0||_inf and zeta_{k+1} = ||L_k - L0||_inf are checked to ``threshold_rtol``
    relative plus ``threshold_atol`` absolute (round-off), one assumption per layer.
    """
    err = _arr(error_inf)
    if err.ndim != 2:
        raise ValueError(f"error_inf must have shape (K+1, B), got {err.shape}")
    k1, b = err.shape
    K = k1 - 1
    etas = _arr(eta).reshape(-1)
    if etas.shape[0] != K:
        raise ValueError(f"eta must have K = {K} entries, got {etas.shape[0]}")
    z = _thresholds(zeta, K, b)
    r, mu, kappa, alpha = (_arr(v, b) for v in (rank, incoherence, condition, sparsity_max))
    sig, l0i = _arr(sigma_r, b), _arr(l0_inf, b)
    atol = np.broadcast_to(_arr(threshold_atol), (b,)) if np.ndim(threshold_atol) <= 1 else _arr(threshold_atol)

    checks = [_noise_check(noise, noise_tol)]
    checks.append(Assumption("model rank r equals rank(L0)", bool(np.all(r == model_rank)),
                             float(np.max(np.abs(r - model_rank))), f"rank(L0) = {model_rank} for every instance"))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = alpha * mu * r ** 1.5 * kappa
    worst = float(np.max(ratio))
    checks.append(Assumption("outliers alpha-sparse with alpha <= c / (mu r^{3/2} kappa) (c recalled)",
                             bool(np.all(ratio <= c_alpha)), worst, f"alpha mu r^1.5 kappa <= c = {c_alpha:g}"))
    lo, hi = LRPCA_ETA_RANGE
    in_range = bool(etas.size == 0 or (etas.min() >= lo and etas.max() <= hi))
    meas = float(etas.min() if etas.size and etas.min() < lo else (etas.max() if etas.size else lo))
    checks.append(Assumption("steps eta_k in [1/4, 8/9]", in_range, meas, f"{lo:g} <= eta_k <= {hi:.6g}"))
    # the threshold schedule, layer by layer, against the (ground-truth) error it must equal
    target = np.vstack([l0i[None, :], err[:-1]])  # zeta_0 ~ ||L0||_inf, zeta_{k+1} ~ ||L_k - L0||_inf
    gaps = np.abs(z - target)
    allowed = threshold_rtol * np.abs(target) + atol[None, :]
    for k in range(k1):
        rel = float(np.max(gaps[k] / np.maximum(np.abs(target[k]), np.finfo(float).tiny)))
        what = "||L0||_inf" if k == 0 else f"||L_{k - 1} - L0||_inf"
        checks.append(Assumption(f"threshold zeta_{k} = {what} (uses the ground truth L0)",
                                 bool(np.all(gaps[k] <= allowed[k])), rel,
                                 f"relative gap <= {threshold_rtol:g} (+ round-off)"))
    eta_min = float(etas.min()) if etas.size else lo
    factor = max(1.0 - LRPCA_RATE * eta_min, 0.0)
    values = LRPCA_RADIUS * factor ** np.arange(k1, dtype=np.float64)[:, None] * sig[None, :]
    return Bound.build(
        name, np.arange(k1), values, metric=Metric.LOWRANK_ERROR, theorem=LRPCA_THEOREM, source=LRPCA_SOURCE,
        status="recalled", assumptions=tuple(checks),
        notes=("||L_k - L0||_F <= 0.03 (1 - 0.6 eta)^k sigma_r(L0), eta = min_k eta_k; recalled: the statement "
               "could not be read in a stored copy of the paper (only its abstract), and the constant c of "
               "alpha <= c/(mu r^1.5 kappa) is a recalled value; the threshold conditions use the ground truth"),
        extra={"threshold_ratio": (z / np.maximum(target, np.finfo(float).tiny)).tolist(), "c_alpha": c_alpha,
               "eta_min": eta_min})


def altproj_beta_incoherence(beta: float, rank: int, n1: int, n2: int) -> float:
    """The incoherence mu that AltProj's beta = 4 mu^2 r / sqrt(n1 n2) encodes."""
    return math.sqrt(beta * math.sqrt(n1 * n2) / (ALTPROJ_C_BETA * rank))


def altproj_bound(*, n1: int, n2: int, rank: Any, model_rank: int, incoherence: Any, sparsity_max: Any,
                  beta: float, sigma1_M: Any, num_steps: int, noise: Any, noise_tol: Any = 0.0,
                  name: str = "altproj-thm1") -> Bound:
    """AltProj's Theorem 1 as a per-iteration bound eps_t = n beta sigma_1(M) 2^{-t/10} on ||L_t - L0||_F
    (t = 1..K; +inf at t = 0), values (K+1, B), for ``run_altproj`` (the final rank stage from the start).

    The beta used defines the incoherence parameter mu_beta = sqrt(beta sqrt(n1 n2) / (4 r)); the theorem
    applies with mu = mu_beta when L0 is mu_beta-incoherent (mu_beta >= the measured ``incoherence``: an
    incoherence parameter is an upper bound) and alpha <= 1 / (512 mu_beta^2 r). Algorithm 1 runs rank
    stages k = 1..r; a single final stage is Algorithm 1 exactly when r = 1 (checked).
    """
    b = int(np.size(_arr(sigma1_M)))
    r, mu, alpha, s1 = (_arr(v, b) for v in (rank, incoherence, sparsity_max, sigma1_M))
    mu_beta = altproj_beta_incoherence(beta, model_rank, n1, n2)
    checks = [_noise_check(noise, noise_tol)]
    checks.append(Assumption("model rank r equals rank(L0)", bool(np.all(r == model_rank)),
                             float(np.max(np.abs(r - model_rank))), f"rank(L0) = {model_rank} for every instance"))
    checks.append(Assumption("L0 mu-incoherent with the mu of beta = 4 mu^2 r / sqrt(n1 n2)",
                             bool(np.all(mu <= mu_beta * (1 + 1e-12))), float(np.max(mu)),
                             f"measured mu <= mu_beta = {mu_beta:.6g}"))
    bound_alpha = 1.0 / (ALTPROJ_C_ALPHA * mu_beta ** 2 * model_rank)
    checks.append(Assumption("outliers alpha-sparse with alpha <= 1/(512 mu^2 r)", bool(np.all(alpha <= bound_alpha)),
                             float(np.max(alpha)), f"<= {bound_alpha:.6g}"))
    checks.append(Assumption("rank stages: a single final stage is Algorithm 1 only when r = 1", model_rank == 1,
                             float(model_rank), "r = 1 (run_altproj starts at stage k = r)"))
    n = max(n1, n2)
    t = np.arange(num_steps + 1, dtype=np.float64)
    values = n * beta * s1[None, :] * 2.0 ** (-t[:, None] / ALTPROJ_T_FACTOR)
    values[0] = np.inf
    return Bound.build(
        name, np.arange(num_steps + 1), values, metric=Metric.LOWRANK_ERROR, theorem=ALTPROJ_THEOREM,
        source=ALTPROJ_SOURCE, status="recalled", assumptions=tuple(checks),
        notes=("eps_t = n beta sigma_1(M) 2^(-t/10) inverts Algorithm 1's T = 10 log(n beta ||M||_2 / eps); "
               "recalled: only the abstract (O(log(1/eps)) iterations) was seen in a stored copy; beta, T and the "
               "threshold schedule are corroborated by a third-party implementation (docs/theory_sources.md, 9)"),
        extra={"mu_beta": mu_beta, "alpha_max_allowed": bound_alpha})


def pcp_bound(*, n1: int, n2: int, rank: Any, incoherence: Any, sparsity: Any, lam: float, noise: Any,
              noise_tol: Any = 0.0, name: str = "pcp-thm1.1") -> Bound:
    """Candes et al. 2011, Theorem 1.1 for the PCP minimizer: ||L_hat - L0||_F = 0 (exact recovery) with
    probability >= 1 - c n_(1)^{-10}. One value per instance at iteration 0 standing for the minimizer (not an
    iterate). The rank and sparsity conditions involve unspecified numerical constants rho_r, rho_s: they are
    reported with their measured left-hand sides and holds=None (unchecked); lam = 1/sqrt(n_(1)) and the
    absence of dense noise are checked."""
    b = int(np.size(_arr(incoherence)))
    r, mu, alpha = (_arr(v, b) for v in (rank, incoherence, sparsity))
    big, small = max(n1, n2), min(n1, n2)
    lam0 = 1.0 / math.sqrt(big)
    rank_lhs = r * mu * math.log(big) ** 2 / small
    checks = [
        _noise_check(noise, noise_tol),
        Assumption("lam = 1/sqrt(max(n1, n2))", abs(lam - lam0) <= 1e-12 * lam0, float(lam), f"= {lam0:.6g}"),
        Assumption("rank(L0) <= rho_r n_(2) / (mu (log n_(1))^2), incoherence (1.2)-(1.3)", None,
                   float(np.max(rank_lhs)), "rank mu (log n_(1))^2 / n_(2) <= rho_r: an unspecified numerical "
                   "constant, so this cannot be checked (nor the joint condition ||U V^T||_inf, not measured)"),
        Assumption("uniform support of S0 with m <= rho_s n1 n2 entries", None, float(np.max(alpha)),
                   "fraction m / (n1 n2) <= rho_s: an unspecified numerical constant, so this cannot be checked"),
    ]
    return Bound.build(
        name, np.array([0]), np.zeros((1, b)), metric=Metric.LOWRANK_ERROR, theorem=PCP_THEOREM, source=PCP_SOURCE,
        status="recalled", assumptions=tuple(checks),
        notes=("bounds the PCP minimizer (the reference), not iterates: exact recovery with probability >= "
               "1 - c n_(1)^-10; rho_r, rho_s, c are unspecified numerical constants"))


#: why no recovery theorem covers each RPCA family without one (one sentence each)
RPCA_NOT_COVERED = {
    "rpca-ista": ("no bound is encoded: ISTA's O(1/k) objective rate (Beck & Teboulle 2009, Thm 3.1, step <= 1/2) "
                  "applies to the relaxed objective 1/2||M-L-S||_F^2 + lam_L||L||_* + lam_S||S||_1, but no reference "
                  "computes that objective's minimizer here, and no recovery theorem ties it to L0"),
    "pcp-weighted": ("the learned weights change the PCP objective: Theorem 1.1 of Candes et al. 2011 covers only "
                     "the unweighted objective with lam = 1/sqrt(n_(1)), and no theorem covers the learned objective's "
                     "minimizer or ADMM's iterates on it"),
    "scaledgd-correction": ("a learned correction network is added to each ScaledGD step: LRPCA's contraction "
                            "argument (Cai, Liu & Yin 2021) does not cover an arbitrary learned correction"),
    "corona": ("learned convolutions replace the proximal-gradient operators (CORONA, Solomon et al. 2019): no "
               "recovery or convergence theorem covers them"),
}
