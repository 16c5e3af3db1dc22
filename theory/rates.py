"""Classical convergence rates of GD, ISTA (proximal gradient) and FISTA, with their exact constants.

Notation: L smoothness of f, mu strong convexity, R = ||x0 - x*||, gamma the step, h = gamma L.
Every function returns a Bound over iterations k = 0..K (values per k; +inf where no claim is made).
``R`` may be an array of per-instance distances: values then have shape (K+1, len(R)).
The status of each statement (confirmed in its source, derived, recalled) is in docs/theory_sources.md.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from unfoldkit.theory.bound import Assumption, Bound, Metric
from unfoldkit.theory.conditions import ordered_constants, positive_constant, step_factor_at_most
from unfoldkit.unrolled.steps import fista_t
from unfoldkit.unrolled.validation import nonnegative_int, positive_real

BECK_TEBOULLE = "Beck & Teboulle 2009, SIAM J. Imaging Sci. 2(1):183-202"
DRORI_TEBOULLE = "Drori & Teboulle 2014, Math. Program. 145:451-482 (arXiv 1206.3209)"
THG_PGM = "Taylor, Hendrickx & Glineur 2018, J. Optim. Theory Appl. 178:455-476 (arXiv 1705.04398)"


def _setup(L: float, R: float | np.ndarray, num_steps: int, step: float | None):
    L = positive_real("L", L)
    num_steps = nonnegative_int("num_steps", num_steps)
    r = np.asarray(R, dtype=np.float64)
    if r.ndim > 1 or not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError(f"R must be a finite non-negative scalar or 1-D array, got {R!r}")
    gamma = 1.0 / L if step is None else positive_real("step", step)
    k = np.arange(num_steps + 1)
    return L, r, k, gamma


def _scale(coef: np.ndarray, r: np.ndarray) -> np.ndarray:
    """coef[k] * R^2, broadcast over per-instance R; an infinite coefficient (no claim) stays +inf
    even when R = 0."""
    c = coef if r.ndim == 0 else coef[:, None]
    r2 = r**2 if r.ndim == 0 else (r**2)[None, :]
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(c), np.inf, c * r2)


def _inv(k: np.ndarray, denom: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(denom > 0, 1.0 / np.where(denom > 0, denom, 1.0), np.inf)


def gd_convex(L: float, R: float | np.ndarray, num_steps: int, step: float | None = None) -> Bound:
    """GD on convex L-smooth f, constant step gamma <= 1/L: f(x_k) - f* <= R^2 / (2 gamma k).

    Beck & Teboulle 2009, Thm 3.1 with g = 0 (their L(f) may be any upper bound on L, here 1/gamma);
    at gamma = 1/L it is the textbook L R^2 / (2k).
    """
    L, r, k, gamma = _setup(L, R, num_steps, step)
    coef = _inv(k, 2.0 * gamma * k)
    return Bound.build("gd-convex", k, _scale(coef, r), metric=Metric.OBJECTIVE_GAP,
                       theorem="Thm 3.1 (g = 0)", source=BECK_TEBOULLE, status="recalled",
                       assumptions=(positive_constant("L", L), step_factor_at_most(L, gamma, 1.0)),
                       extra={"step": gamma})


def gd_convex_tight(L: float, R: float | np.ndarray, num_steps: int, step: float | None = None) -> Bound:
    """GD on convex L-smooth f, step gamma = h/L with 0 < h <= 1: f(x_N) - f* <= L R^2 / (4 N h + 2).

    Drori & Teboulle 2014, Thm 3.1; tight for every N: attained by a Huber-type function (their Sec. 3,
    theorem number recalled as 3.2; ``unrolled.problems.WorstCaseHuber``). At N = 0 it reads L R^2 / 2, the smoothness bound.
    """
    L, r, k, gamma = _setup(L, R, num_steps, step)
    h = gamma * L
    coef = L / (4.0 * k * h + 2.0)
    return Bound.build("gd-convex-tight", k, _scale(coef, r), metric=Metric.OBJECTIVE_GAP,
                       theorem="Thm 3.1 (tight on a Huber function)", source=DRORI_TEBOULLE, status="confirmed",
                       assumptions=(positive_constant("L", L), step_factor_at_most(L, gamma, 1.0)),
                       tight=True, extra={"step": gamma})


def _contraction(L: float, mu: float, gamma: float) -> float:
    return max(abs(1.0 - gamma * mu), abs(1.0 - gamma * L))


def gd_strongly_convex(L: float, mu: float, R: float | np.ndarray, num_steps: int,
                       step: float | None = None) -> Bound:
    """GD (or proximal gradient) on mu-strongly convex L-smooth f, 0 < gamma < 2/L:

        ||x_k - x*|| <= q^k R,  q = max(|1 - gamma mu|, |1 - gamma L|),

    q = 1 - mu/L at gamma = 1/L and (kappa - 1)/(kappa + 1) at gamma = 2/(L + mu). Tight (attained on a
    quadratic along an extreme eigenvector). Taylor, Hendrickx & Glineur 2018, Thm 3.1 (proximal
    gradient, hence GD with g = 0); the gamma = 2/(L + mu) case is also Nesterov 2004, Thm 2.1.15
    (number recalled).
    """
    L, r, k, gamma = _setup(L, R, num_steps, step)
    mu_v = float(mu)
    q = _contraction(L, mu_v, gamma)
    coef = q ** k.astype(np.float64)
    values = coef * r if r.ndim == 0 else coef[:, None] * r[None, :]
    return Bound.build("gd-strongly-convex", k, values, metric=Metric.DISTANCE,
                       theorem="Thm 3.1", source=THG_PGM, status="confirmed",
                       assumptions=(ordered_constants(mu_v, L),
                                    step_factor_at_most(L, gamma, 2.0, strict=True)),
                       tight=True, extra={"step": gamma, "rate": q})


def gd_strongly_convex_objective(L: float, mu: float, R: float | np.ndarray, num_steps: int,
                                 step: float | None = None) -> Bound:
    """f(x_k) - f* <= (L/2) q^{2k} R^2: the distance rate above combined with L-smoothness
    (f(x) - f* <= (L/2)||x - x*||^2 since grad f(x*) = 0). Derived; valid for GD (g = 0) only."""
    d = gd_strongly_convex(L, mu, R, num_steps, step)
    return Bound.build("gd-strongly-convex-objective", d.iterations, 0.5 * float(L) * d.values**2,
                       metric=Metric.OBJECTIVE_GAP, theorem="Thm 3.1 + L-smoothness", source=THG_PGM,
                       status="derived", assumptions=d.assumptions, extra=d.extra)


def ista_convex(L: float, R: float | np.ndarray, num_steps: int, step: float | None = None) -> Bound:
    """ISTA / proximal gradient on F = f + g, constant step gamma <= 1/L:
    F(x_k) - F* <= R^2 / (2 gamma k) (L R^2 / (2k) at gamma = 1/L). Beck & Teboulle 2009, Thm 3.1."""
    L, r, k, gamma = _setup(L, R, num_steps, step)
    coef = _inv(k, 2.0 * gamma * k)
    return Bound.build("ista-convex", k, _scale(coef, r), metric=Metric.OBJECTIVE_GAP,
                       theorem="Thm 3.1", source=BECK_TEBOULLE, status="recalled",
                       assumptions=(positive_constant("L", L), step_factor_at_most(L, gamma, 1.0)),
                       extra={"step": gamma})


def ista_convex_tight(L: float, R: float | np.ndarray, num_steps: int, step: float | None = None) -> Bound:
    """Tight worst case of proximal gradient, step gamma = h/L, 0 < h <= 1: F(x_N) - F* <= R^2 / (4 gamma N)
    (L R^2 / (4N) at gamma = 1/L, not GD's 4N + 2).

    Conjectured tight by Taylor, Hendrickx & Glineur 2018 (JOTA, final section on mixed performance
    measures; their repository verifies it numerically); no proof is published, so the status is
    "recalled". unfoldkit checks the value against PEPit in the PEP tests (tests/test_pep*.py).
    """
    L, r, k, gamma = _setup(L, R, num_steps, step)
    coef = _inv(k, 4.0 * gamma * k)
    return Bound.build("ista-convex-tight", k, _scale(coef, r), metric=Metric.OBJECTIVE_GAP,
                       theorem="conjecture (final section), PEP-verified", source=THG_PGM, status="recalled",
                       assumptions=(positive_constant("L", L), step_factor_at_most(L, gamma, 1.0)),
                       tight=True, notes="conjectured tight; value checked numerically against PEPit",
                       extra={"step": gamma})


def fista_convex(L: float, R: float | np.ndarray, num_steps: int, step: float | None = None) -> Bound:
    """FISTA, constant step gamma <= 1/L: F(x_k) - F* <= 2 R^2 / (gamma (k + 1)^2)
    (2 L R^2 / (k+1)^2 at gamma = 1/L). Beck & Teboulle 2009, Thm 4.4. Valid, not tight."""
    L, r, k, gamma = _setup(L, R, num_steps, step)
    coef = np.where(k > 0, _inv(k, gamma * (k + 1.0) ** 2 / 2.0), np.inf)
    return Bound.build("fista-convex", k, _scale(coef, r), metric=Metric.OBJECTIVE_GAP,
                       theorem="Thm 4.4", source=BECK_TEBOULLE, status="confirmed",
                       assumptions=(positive_constant("L", L), step_factor_at_most(L, gamma, 1.0)),
                       extra={"step": gamma})


def fista_convex_t(L: float, R: float | np.ndarray, num_steps: int, step: float | None = None) -> Bound:
    """The sharper form inside the proof of Beck & Teboulle 2009, Thm 4.4 (PEPit's reference value for it):
    F(x_k) - F* <= R^2 / (2 gamma t_k^2) with t_1 = 1, t_{k+1} = (1 + sqrt(1 + 4 t_k^2))/2 and
    t_k >= (k+1)/2, so it is below ``fista_convex``."""
    L, r, k, gamma = _setup(L, R, num_steps, step)
    t = fista_t(int(k[-1]) if k.size else 0)
    coef = np.where(k > 0, _inv(k, 2.0 * gamma * t[k] ** 2), np.inf)
    return Bound.build("fista-convex-t", k, _scale(coef, r), metric=Metric.OBJECTIVE_GAP,
                       theorem="Thm 4.4 (proof, before t_k >= (k+1)/2)", source=BECK_TEBOULLE,
                       status="confirmed",
                       assumptions=(positive_constant("L", L), step_factor_at_most(L, gamma, 1.0)),
                       extra={"step": gamma})


#: every classical rate by name: (function, algorithm it governs, needs mu)
CLASSICAL_RATES: dict[str, tuple[Callable[..., Bound], str, bool]] = {
    "gd-convex": (gd_convex, "gd", False),
    "gd-convex-tight": (gd_convex_tight, "gd", False),
    "gd-strongly-convex": (gd_strongly_convex, "gd", True),
    "gd-strongly-convex-objective": (gd_strongly_convex_objective, "gd", True),
    "ista-convex": (ista_convex, "ista", False),
    "ista-convex-tight": (ista_convex_tight, "ista", False),
    "fista-convex": (fista_convex, "fista", False),
    "fista-convex-t": (fista_convex_t, "fista", False),
}


# ---- published rates of the fixed-step methods PEP analyses (theory.pep.methods), at the final layer N -------
# Each is a Bound at iterations [N] only (OGM's and OGM-G's coefficients depend on N). Status "recalled": the
# statements were read in the docstrings of PEPit 0.5.1's examples, which cite these theorems, not in the papers;
# tests/test_pep_methods.py checks each against the exact PEP worst case (an upper bound, or equal where tight).
KIM_FESSLER_2016 = "Kim & Fessler 2016, Math. Program. 159:81-107 (OGM)"
KIM_FESSLER_2021 = "Kim & Fessler 2021, J. Optim. Theory Appl. 188:192-219 (OGM-G)"
GHADIMI_2015 = "Ghadimi, Feyzmahdavian & Johansson 2015, European Control Conference (arXiv 1412.7457)"
VAN_SCOY_2018 = "Van Scoy, Freeman & Lynch 2018, IEEE Control Syst. Lett. 2(1):49-54"
DASPREMONT_2021 = "d'Aspremont, Scieur & Taylor 2021, Acceleration Methods, Found. Trends Optim. 5"
ALTSCHULER_PARRILO = "Altschuler & Parrilo 2024, Acceleration by stepsize hedging I, J. ACM (arXiv 2309.07879)"


def _final(name: str, N: int, value: float, metric: str, theorem: str, source: str, tight: bool,
           assumptions: tuple = (), notes: str = "") -> Bound:
    return Bound.build(name, np.array([N]), np.array([value]), metric=metric, theorem=theorem, source=source,
                       status="recalled", assumptions=assumptions, tight=tight, notes=notes)


def ogm_rate(L: float, R: float, N: int) -> Bound:
    """OGM: f(y_N) - f* <= L R^2 / (2 theta_N^2), theta from ``pep.methods.ogm_thetas`` (Kim & Fessler 2016,
    Thm 2; tight, Drori 2017)."""
    from unfoldkit.theory.pep.methods import ogm_thetas

    L, R, N = positive_real("L", L), positive_real("R", R), nonnegative_int("N", N)
    th = ogm_thetas(max(N, 1))[-1] if N else 1.0
    value = L * R * R / (2.0 * th * th) if N else 0.5 * L * R * R
    return _final("ogm", N, value, Metric.OBJECTIVE_GAP, "Thm 2 (tight)", KIM_FESSLER_2016, True)


def ogm_g_rate(L: float, D: float, N: int) -> Bound:
    """OGM-G: ||grad f(x_N)||^2 <= 2 L (f(x_0) - f*) / theta~_0^2 (Kim & Fessler 2021, Thm 6.1; tight on Huber
    functions, their Sec. 6.4), theta~_0 = ``ogm_thetas(N)[-1]``."""
    from unfoldkit.theory.pep.methods import ogm_thetas

    L, D, N = positive_real("L", L), positive_real("D", D), nonnegative_int("N", N)
    th0 = ogm_thetas(max(N, 1))[-1] if N else 1.0
    return _final("ogm-g", N, 2.0 * L * D / (th0 * th0), Metric.SQ_GRAD_NORM, "Thm 6.1 (tight)", KIM_FESSLER_2021,
                  True)


def heavy_ball_rate(L: float, mu: float, alpha: float, beta: float, D: float, N: int) -> Bound:
    """Heavy ball with alpha in (0, 1/L] and beta = sqrt((1 - alpha mu)(1 - alpha L)):
    f(x_N) - f* <= (1 - alpha mu)^N (f(x_0) - f*) (Ghadimi et al. 2015, Thm 4). The two conditions are
    checked (beta within 1e-12 relative)."""
    L, mu, alpha, D = positive_real("L", L), positive_real("mu", mu), positive_real("alpha", alpha), positive_real("D", D)
    N = nonnegative_int("N", N)
    want = float(np.sqrt(max((1 - alpha * mu) * (1 - alpha * L), 0.0)))
    a1 = step_factor_at_most(L, alpha, 1.0)
    a2 = Assumption("beta = sqrt((1 - alpha mu)(1 - alpha L))", abs(beta - want) <= 1e-12 * max(1.0, want),
                    float(beta), f"beta = {want:.12g}")
    return _final("heavy-ball", N, (1 - alpha * mu) ** N * D, Metric.OBJECTIVE_GAP, "Thm 4", GHADIMI_2015, False,
                  (a1, a2))


def triple_momentum_rate(L: float, mu: float, R: float, N: int) -> Bound:
    """Triple momentum: f(x_N) - f* <= rho^{2N} L kappa R^2 / 2, rho = 1 - 1/sqrt(kappa), kappa = L/mu
    (Van Scoy et al. 2018, Thm 1; empirically tight). PEPit's docstring writes rho^{2(N+1)}, its code
    rho^{2N}; the exact PEP worst case equals rho^{2N} L kappa R^2/2 (tests), so rho^{2(N+1)} could not be a
    valid bound: the code's form is used."""
    L, mu, R, N = positive_real("L", L), positive_real("mu", mu), positive_real("R", R), nonnegative_int("N", N)
    kappa = L / mu
    rho = 1 - 1 / np.sqrt(kappa)
    return _final("triple-momentum", N, rho ** (2 * N) * L * kappa * R * R / 2, Metric.OBJECTIVE_GAP,
                  "Thm 1", VAN_SCOY_2018, True)


def agd_strongly_convex_rate(L: float, mu: float, D: float, N: int) -> Bound:
    """Nesterov's AGD for mu-strongly convex f: f(x_N) - f* <= (1 - sqrt(mu/L))^N (f(x_0) - f* + mu/2 ||x_0 -
    x*||^2) (d'Aspremont, Scieur & Taylor 2021, Cor. 4.15); D bounds the Lyapunov initial quantity."""
    L, mu, D, N = positive_real("L", L), positive_real("mu", mu), positive_real("D", D), nonnegative_int("N", N)
    return _final("agd-strongly-convex", N, (1 - np.sqrt(mu / L)) ** N * D, Metric.OBJECTIVE_GAP, "Cor. 4.15",
                  DASPREMONT_2021, False)


def silver_strongly_convex_rate(L: float, mu: float, R: float, N: int) -> Bound:
    """GD with the strongly convex silver schedule (``pep.methods.silver_strongly_convex_steps``):
    ||x_N - x*||^2 <= prod over the powers of two 2^m in N's binary expansion of ((1 - z_m)/(1 + z_m))^2 R^2
    (Altschuler & Parrilo 2024: their recursive rate for n = 2^m; for other N the concatenation's product)."""
    from unfoldkit.theory.pep.methods import silver_strongly_convex_steps

    L, mu, R, N = positive_real("L", L), positive_real("mu", mu), positive_real("R", R), nonnegative_int("N", N)
    rate = silver_strongly_convex_steps(N, mu, L)[1] if N else 1.0
    return _final("silver-strongly-convex", N, rate * R * R, Metric.SQ_DISTANCE, "silver rate (n = 2^m)",
                  ALTSCHULER_PARRILO, False)


#: the published rates of the PEP example methods: name -> function
METHOD_RATES: dict[str, Callable[..., Bound]] = {
    "ogm": ogm_rate, "ogm-g": ogm_g_rate, "heavy-ball": heavy_ball_rate, "triple-momentum": triple_momentum_rate,
    "agd-strongly-convex": agd_strongly_convex_rate, "silver-strongly-convex": silver_strongly_convex_rate,
}
