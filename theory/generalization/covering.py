"""Covering-number / Rademacher generalization bound for unfolded models (digest 3.1) [derived].

``covering_bound(model, train_y, train_x)`` bounds the true risk of ``model`` on the clipped loss
l(x_hat, x) = min(||x_hat - x||^2 / ||x||^2, c) of ``loss.py``: with probability >= 1 - delta over an i.i.d.
training sample of size m, L(model) <= ``value``. Everything is computed for the loss rescaled to [0, 1]
(g = l / c) and scaled back by c at the end.

Sources: what was read, and where
---------------------------------
[confirmed] Shalev-Shwartz & Ben-David, "Understanding Machine Learning" (2014), read at
issuhub.com/view/index/1331 (pageIndex = book page):

* (26.5), p. 376: R(A) = (1/m) E_sigma sup_{a in A} sum_i sigma_i a_i for A in R^m; R(F o S) for a class F.
* Lemma 26.2, p. 376 (proof p. 377): E_S[sup_f (L_D(f) - L_S(f))] <= 2 E_S R(F o S).
* Lemma 26.4 (McDiarmid), p. 378: if f changes by at most c' when one of m independent arguments changes,
  then with probability >= 1 - delta, |f - E f| <= c' sqrt(ln(2/delta) m / 2).
* Lemma 27.4 (chaining, "attributed to Dudley"), pp. 389-390: with c = min_abar max_{a in A} ||a - abar||,
  for every integer M > 0, R(A) <= c 2^-M / sqrt(m) + (6 c / m) sum_{k=1}^M 2^-k sqrt(log N(c 2^-k, A)),
  N(r, A) the Euclidean r-covering number of A in R^m. The proof uses c only through {abar} being a c-cover of
  A, so any c' >= max ||a - abar|| for some abar can stand in for c [derived].
* Rigollet, High-Dimensional Statistics, Lemma 1.18 (as formalised at rammalahmad.github.io/atlas, "Volume
  bound on eps-separated sets"): a maximal eps-separated subset of the unit ball is an eps-net inside the ball
  with |N| <= ((2 + eps)/eps)^d = (1 + 2/eps)^d. Scaled: a ball of radius R in R^d has an internal eps-net of at
  most (1 + 2R/eps)^d points (the volume argument holds for every eps > 0).

[recalled, not confirmed] Mohri, Rostamizadeh & Talwalkar, Foundations of ML (2nd ed.) Thm 3.3
(L <= L_S + 2 Rad_S + 3 sqrt(log(2/delta)/(2m)) for losses in [0, 1]): only the book's front matter and table of
contents were found (pages corpus), not the theorem. It is NOT used; the derived step 1 below replaces it and
costs ln(4/delta) in place of ln(2/delta). Bartlett, Foster & Telgarsky (2017) Lemma A.5 (Dudley with 4 alpha
and 12): not found; the integral form below is derived from SSBD Lemma 27.4 instead. Maurer's vector
contraction (arXiv 1605.00251, Cor. 1): only its abstract was found; it is not needed (the loss class is covered
directly through the Lipschitz composition, step 3).

Unfolding-specific theorems (Behboodi, Rauhut & Schnoor arXiv 2010.15658; Schnoor, Behboodi & Rauhut arXiv
2112.04364; Shultzman, Azar, Rodrigues & Eldar arXiv 2304.09802): searched in the pages corpus (ar5iv copies of
2112.04364 and 2304.09802, the ICLR 2023 text of the latter, abstract pages of all three); only the abstracts and
introductions came back, never a theorem statement with its constants. So no ``shultzman_bound`` or
``behboodi_bound`` is implemented: their statements could not be encoded without guessing constants. The generic
bound here follows the same route their abstracts describe (Rademacher complexity via Dudley's entropy integral
and a parameter-Lipschitz covering), with d = the number of distinct learned scalars (shared blocks counted once)
and the per-layer constants of ``theory.lipschitz.parameters`` (thresholds included), so its shape is theirs
(complexity ~ sqrt(d log(K_Theta ...) / m), K_Theta a product over layers, i.e. log-linear in depth).

Derivation [derived from the confirmed parts]
---------------------------------------------
1. Risk bound. For a class G with values in [0, 1]: sup_g (L_D(g) - L_S(g)) and R(G o S) each change by at most
   1/m when one sample changes. McDiarmid (delta/2 each) + Lemma 26.2 + union bound: with probability >= 1 -
   delta, for all g in G, L_D(g) <= L_S(g) + 2 R(G o S) + 3 sqrt(ln(4/delta) / (2m)).
2. Truncated loss (no support hypothesis on the data). For a data radius B_y and a signal floor x_0 > 0 put
   l'(x_hat; y, x) = l(x_hat, x) if ||y|| <= B_y and ||x|| >= x_0, and c otherwise. Since l <= c, l' >= l, so a
   bound on E l' bounds the risk; training samples outside the region count with loss c in the empirical term.
   No distribution needs to live in ||y|| <= B_y (y is Gaussian-noisy, hence unbounded, in this package).
3. Lipschitz constant of the loss [decision]. For fixed x with s = ||x|| > 0, u = ||x_hat - x|| is 1-Lipschitz in
   x_hat and phi(u) = min(u^2/s^2, c) has slope 2u/s^2 <= 2 sqrt(c)/s (zero beyond u = s sqrt(c)). So the clipped
   loss is (2 sqrt(c)/x_0)-Lipschitz in x_hat on ||x|| >= x_0 and g = l'/c is L_g = 2/(sqrt(c) x_0)-Lipschitz;
   D_out (the bound on ||x_hat||) is not needed, unlike the unclipped route 2 (D_out + ||x||)/||x||^2, which is
   larger for every c <= 1. Tiny ||x|| are handled by the truncation of step 2, not by conditioning.
4. Parameter class and its covering. Center theta^0 = the data-independent classical initialisation of the same
   architecture (``classical_center``). Theta = {theta : ||theta_b - theta^0_b|| <= R_g(b) for every block b,
   thresholds >= 0}. ``parameter_lipschitz(center, B_y, radius)`` gives, for all ||y|| <= B_y and theta, theta'
   in Theta, ||x_k(theta) - x_k(theta')|| <= sum_b kappa_b ||theta_b - theta'_b||. The threshold-like groups
   (threshold, weights, lam) enter that certificate only through its check that thresholds stay >= 0 on the
   ball (its docstring: the norms ||W'|| <= ||W|| + r involve the weight groups only; a threshold moves x by
   sqrt(n)|dtheta| for any two nonnegative thresholds); they are passed with radius 0 and Theta is intersected
   with {thresholds >= 0} instead: the Euclidean projection P onto that convex set fixes the center and is
   1-Lipschitz, so it maps an internal eps-net of the ball onto an internal eps-net of ball /\\ {theta >= 0}.
   Cover block b (a ball of radius R_b in R^{d_b}) internally at scale t R_b: at most (1 + 2/t)^{d_b} points;
   for theta, theta' paired this way, sup_i |g_theta(z_i) - g_theta'(z_i)| <= L_g t S with
   S = sum_b kappa_b R_b <= K_Theta R_Theta (Cauchy-Schwarz; K_Theta = ||kappa||_2 over the active blocks,
   R_Theta = (sum_b R_b^2)^(1/2)). Hence, in the normalised metric ||a||_S = ||a||_2 / sqrt(m),
   log N(u) <= d log(1 + 2 L_g S / u), d = the number of scalars in blocks with R_b > 0 and kappa_b > 0.
5. Rademacher term. SSBD Lemma 27.4 in the normalised metric (u = r / sqrt(m), cbar = c / sqrt(m)):
   Rad <= min_M [cbar 2^-M + (6 cbar / sqrt(m)) sum_{k=1}^M 2^-k sqrt(log N(cbar 2^-k))], with
   cbar = min(1/2, L_g S) (abar = 1/2 for values in [0, 1], or abar = the center's loss vector, every member
   being within L_g S of it in sup norm). Its integral form: as N is non-increasing,
   2^-k cbar sqrt(log N(cbar 2^-k)) <= 2 int_{cbar 2^-k-1}^{cbar 2^-k} sqrt(log N), so the M-th sum is at most
   2 alpha_M + (12/sqrt(m)) int_{alpha_M}^{cbar/2} sqrt(log N), alpha_M = cbar 2^-M-1; for alpha in
   (alpha_M / 2, alpha_M] that is <= 4 alpha + (12/sqrt(m)) int_alpha^{cbar/2}, hence
   Rad <= inf_{0 < alpha <= cbar/4} [4 alpha + (12/sqrt(m)) int_alpha^{cbar/2} sqrt(log N(u)) du]
   (``dudley_integral``: scipy quad in log u; alpha* by a 1-D root search on the derivative). The chaining
   sum is never larger than the integral form, so it is the term used; both are reported.
6. Data-chosen radii: a union bound over geometric grids. B_y = 2^i (smallest >= 1.5 max_train ||y||), x_0 = 2^i
   (minimised over the grid), R_g = 2^j (smallest >= the trained model's distance from the center in group g;
   or 0 when the model equals the center there) are chosen after seeing the data, so every class on the grid
   gets its share of delta: w(i) = 2 / (3 (|i| + 1)(|i| + 2)) over the integers i (sum 1), and for a radius
   1/4 for R_g = 0 and 3/4 w(j) for R_g = 2^j; delta' = delta w_B w_x prod_g w_g. All bounds of the grid hold
   at once with probability >= 1 - delta, so the smallest may be reported. A value passed explicitly
   (data_radius, signal_floor, param_radius) must not depend on the training data; it then has weight 1.

Result: L(model) <= L'_S + c (2 Rad + 3 sqrt(ln(4/delta') / (2m))), with L'_S the truncated training risk.
The bound is decreasing in m (for fixed class and empirical risk), increasing in d and in S (hence in K through
kappa). Status "derived" throughout; an assumption fails (value NaN, no claim) only when an explicit
``param_radius`` does not contain the model. The forward passes run in float64 on a copy of the model; the
certificate is for the exact-arithmetic map (round-off ~1e-15 relative, far below every term here).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from numbers import Real
from typing import Any

import numpy as np
import torch
from scipy import integrate, optimize

from unfoldkit.theory.bound import Assumption
from unfoldkit.theory.generalization.loss import clipped_nmse
from unfoldkit.theory.generalization.result import GeneralizationBound
from unfoldkit.theory.lipschitz.parameters import NOT_COVERED, group_radii, parameter_lipschitz
from unfoldkit.unrolled.models.alista import Alista
from unfoldkit.unrolled.models.learned_step import IstaLearnedStep
from unfoldkit.unrolled.models.lista import Lista, ListaCP, ListaCPSS
from unfoldkit.unrolled.models.objective import IstaWeightedL1
from unfoldkit.unrolled.training.threads import limit_threads

#: groups whose radius enters ``parameter_lipschitz`` only through its nonnegativity check (docstring, step 4)
THRESHOLD_GROUPS = ("threshold", "weights", "lam")
#: the data radius default aims at this multiple of the largest training ||y||, rounded up to the grid
DATA_RADIUS_FACTOR = 1.5
#: chaining levels M searched (2^-200 is far below any term)
MAX_LEVELS = 200
#: forward passes in chunks of this many samples (256 measured 3.5x faster than 8192 on 2 cores: cache)
CHUNK = 256

SOURCE = ("Shalev-Shwartz & Ben-David 2014, Lemmas 26.2, 26.4, 27.4 (issuhub.com/view/index/1331, pp. 376-390); "
          "volumetric ball covering (Rigollet Lemma 1.18); theory.lipschitz.parameters")
THEOREM = ("L <= L'_S + c (2 Rad + 3 sqrt(ln(4/delta')/(2m))), Rad by chaining over the parameter covering "
           "(1 + 2 L_g S / u)^d, truncated clipped loss, grid union bound")


# -- union-bound weights ------------------------------------------------------------------------------------
def grid_weight(i: int) -> float:
    """Share of delta for grid index i in Z: 2 / (3 (|i| + 1)(|i| + 2)); the weights over Z sum to 1."""
    a = abs(int(i))
    return 2.0 / (3.0 * (a + 1) * (a + 2))


def radius_weight(j: int | None) -> float:
    """Share of delta for a radius on the grid {0} u {2^j : j in Z}: 1/4 for radius 0 (j None), 3/4 w(j) else."""
    return 0.25 if j is None else 0.75 * grid_weight(j)


def _ceil_pow2(v: float) -> int:
    """The smallest integer j with 2^j >= v (v > 0)."""
    j = math.ceil(math.log2(v))
    while 2.0 ** j < v:
        j += 1
    while 2.0 ** (j - 1) >= v:
        j -= 1
    return j


# -- Rademacher complexity from a covering ---------------------------------------------------------------------
def parametric_log_covering(d: int, scale: float) -> Callable[[float], float]:
    """u -> d log(1 + scale / u): the log-covering number of a d-parameter class (module docstring, step 4)."""
    return lambda u: d * math.log1p(scale / u) if d > 0 and scale > 0 else 0.0


def _check_chain_args(m: int, radius: float) -> None:
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"m must be an integer >= 1, got {m!r}")
    if not (isinstance(radius, Real) and math.isfinite(radius) and radius >= 0):
        raise ValueError(f"radius must be a finite real >= 0, got {radius!r}")


def chaining_bound(log_covering: Callable[[float], float], m: int, radius: float,
                   max_levels: int = MAX_LEVELS) -> tuple[float, int]:
    """min over M = 1..max_levels of radius 2^-M + (6 radius / sqrt(m)) sum_{k<=M} 2^-k sqrt(log N(radius 2^-k))
    (SSBD Lemma 27.4, normalised metric; ``radius`` >= the class's normalised radius). Returns (value, M*)."""
    _check_chain_args(m, radius)
    if radius == 0:
        return 0.0, 1
    k = np.arange(1, max_levels + 1)
    scales = radius * np.exp2(-k.astype(float))
    ent = np.sqrt(np.maximum([log_covering(float(u)) for u in scales], 0.0))
    values = scales + (6.0 / math.sqrt(m)) * np.cumsum(scales * ent)
    best = int(np.argmin(values))
    return float(values[best]), best + 1


def entropy_integral(log_covering: Callable[[float], float], lower: float, upper: float) -> float:
    """int_lower^upper sqrt(log N(u)) du (0 when lower >= upper), by scipy quad in t = log u (the integrand
    sqrt(log N(e^t)) e^t is smooth and the range may span many decades)."""
    if not 0 < lower < upper:
        return 0.0
    f = lambda t: math.sqrt(max(log_covering(math.exp(t)), 0.0)) * math.exp(t)
    val, _ = integrate.quad(f, math.log(lower), math.log(upper), limit=500, epsabs=0.0, epsrel=1e-12)
    return float(val)


def dudley_integral(log_covering: Callable[[float], float], m: int, radius: float,
                    alpha: float | None = None) -> tuple[float, float]:
    """inf over 0 < alpha <= radius/4 of 4 alpha + (12 / sqrt(m)) int_alpha^{radius/2} sqrt(log N(u)) du (module
    docstring, step 5: derived from SSBD Lemma 27.4), at the given ``alpha`` or at its minimiser. The objective is
    convex in alpha (its derivative 4 - 12 sqrt(log N(alpha)) / sqrt(m) increases with alpha), so the minimiser is
    the root of that derivative, found by a 1-D search (brentq in log alpha), or radius/4 when the derivative is
    still <= 0 there. Returns (value, alpha)."""
    _check_chain_args(m, radius)
    if radius == 0:
        return 0.0, 0.0
    top = radius / 4.0

    def objective(a: float) -> float:
        return 4.0 * a + 12.0 / math.sqrt(m) * entropy_integral(log_covering, a, radius / 2.0)

    if alpha is not None:
        if isinstance(alpha, bool) or not (isinstance(alpha, Real) and 0 < alpha <= top):
            raise ValueError(f"alpha must be in (0, radius/4 = {top:.6g}], got {alpha!r}")
        return objective(float(alpha)), float(alpha)
    slope = lambda t: 4.0 - 12.0 * math.sqrt(max(log_covering(math.exp(t)), 0.0)) / math.sqrt(m)
    hi, lo = math.log(top), math.log(top) - 700.0
    if slope(hi) <= 0:
        a = top
    elif slope(lo) >= 0:
        a = math.exp(lo)
    else:
        a = math.exp(optimize.brentq(slope, lo, hi, xtol=1e-12, rtol=1e-12))
    return objective(a), a


def rademacher_terms(d: int, scale: float, m: int, radius: float) -> dict[str, float]:
    """Rademacher bound of a class with log N(u) <= d log(1 + scale/u) and normalised radius ``radius``:
    the chaining sum (used) and the Dudley integral form (reported), with M* and alpha*."""
    log_cov = parametric_log_covering(d, scale)
    chain, levels = chaining_bound(log_cov, m, radius)
    dudley, alpha = dudley_integral(log_cov, m, radius)
    return {"rademacher": min(chain, dudley), "chaining": chain, "levels": levels, "dudley": dudley,
            "alpha": alpha}


# -- the parameter class -------------------------------------------------------------------------------------
def classical_center(model: Any) -> Any:
    """The data-independent initialisation of ``model``'s architecture, in float64: ``from_classical`` (ISTA's
    weights, steps and thresholds) with the same tying / threshold learning; for ALISTA with an analytic W~ the
    constructor's defaults (gamma = 1, theta = lam/L) with the model's own fixed W~ (a function of A alone; the
    ISTA instance of ``Alista.from_classical`` has W = A, another architecture); for weighted-l1 ISTA the
    problem's lam with the model's fixed step. NotImplementedError for an uncovered family."""
    p, k, f64 = model.problem, model.num_layers, torch.float64
    if isinstance(model, ListaCPSS):
        return ListaCPSS.from_classical(p, k, tied=model.tied, dtype=f64)
    if isinstance(model, ListaCP):
        return ListaCP.from_classical(p, k, tied=model.tied, dtype=f64)
    if isinstance(model, Lista):
        return Lista.from_classical(p, k, tied=model.tied, dtype=f64)
    if isinstance(model, Alista):
        if model.weight == "dictionary":
            return Alista.from_classical(p, k, dtype=f64)
        center = Alista(p, k, weight=model.weight, percent=0.0, max_percent=0.0, dtype=f64)
        with torch.no_grad():
            center.weight_matrix.copy_(model.weight_matrix.detach().to(device="cpu", dtype=f64))
        return center
    if isinstance(model, IstaLearnedStep):
        return IstaLearnedStep.from_classical(p, k, learn_threshold=model.threshold is not None, dtype=f64)
    if isinstance(model, IstaWeightedL1):
        return IstaWeightedL1(p, k, learn=model.learn, solver=model.solver, step=model.gamma, dtype=f64)
    family = getattr(model, "family", type(model).__name__)
    raise NotImplementedError(f"{family}: {NOT_COVERED.get(family, 'not a LISTA-type model; not covered yet')}")


def block_values(model: Any, blocks: list[str]) -> dict[str, np.ndarray]:
    """The float64 values of the blocks named by ``parameter_lipschitz`` (weighted-l1: w itself, not log w)."""
    out = {}
    for blk in blocks:
        if isinstance(model, IstaWeightedL1):
            t = model.l1_weights()
        else:
            name, _, idx = blk.partition("[")
            t = getattr(model, name)
            if idx:
                k = int(idx[:-1])
                t = t[k - 1] if (isinstance(model, Lista) and name == "W2" and not model.tied) else t[k]
        out[blk] = t.detach().to(device="cpu", dtype=torch.float64).numpy().reshape(-1)
    return out


# -- input checks --------------------------------------------------------------------------------------------
def _as_batch(a: Any, name: str, width: int) -> torch.Tensor:
    try:
        t = torch.as_tensor(a.detach().cpu() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float64),
                            dtype=torch.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array of shape (m, {width}), got {type(a).__name__}") from None
    if t.ndim != 2 or t.shape[1] != width or t.shape[0] < 1:
        raise ValueError(f"{name} must have shape (m, {width}) with m >= 1, got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} has NaN or infinite entries")
    return t


def _positive(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite real > 0, got {v!r}")
    return float(v)


def _outputs(model: Any, y: torch.Tensor, layer: int) -> torch.Tensor:
    """x_layer for every row of y, in float64 on a CPU copy of the model, in chunks."""
    net = copy.deepcopy(model).to(device="cpu", dtype=torch.float64)
    outs = []
    with torch.no_grad(), limit_threads(1):
        for s in range(0, y.shape[0], CHUNK):
            yb = y[s:s + CHUNK]
            outs.append(net(yb) if layer == net.num_layers else net(yb, trajectory=True)[layer])
    return torch.cat(outs)


# -- the bound -----------------------------------------------------------------------------------------------
def covering_bound(model: Any, train_y: Any, train_x: Any, *, data_radius: float | None = None,
                   param_radius: float | dict[str, float] | None = None, signal_floor: float | None = None,
                   delta: float = 0.05, clip: float = 1.0, layer: int | None = None, center: Any = None,
                   check_y: Any = None) -> GeneralizationBound:
    """Covering-number risk bound on the clipped loss for ``model`` trained on (train_y, train_x) (module
    docstring): with probability >= 1 - delta over the i.i.d. training sample, L(model) <= ``value``.

    ``param_radius``: None (default) = the trained model's distance from ``center`` per parameter group, rounded
    up to a power of 2 (union bound over the grid); a float (every group) or a dict group -> radius fixed before
    seeing the data. ``data_radius``: None = 1.5 max ||y|| rounded up to a power of 2 (grid); ``signal_floor``
    x_0: None = the best power of 2 (grid). ``layer``: the layer k (1..K) whose iterate is the estimate (default
    K). ``center``: a data-independent model of the same architecture (default ``classical_center``).
    ``check_y``: held-out observations whose ||y|| is compared with the data radius (reported only).
    ValueError: bad shapes, NaN, delta outside (0, 1), clip <= 0, a bad layer or radius, support selection or a
    negative threshold (discontinuous in the parameters); NotImplementedError: an uncovered family.
    """
    if isinstance(delta, bool) or not isinstance(delta, Real) or not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    clip = _positive("clip", clip)
    family = getattr(model, "family", type(model).__name__)
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "problem"):
        raise ValueError(f"model must be an unfolded model, got {type(model).__name__}")
    # the model itself: covered, continuous (no support selection, thresholds >= 0); its blocks
    own = parameter_lipschitz(model, 1.0)
    blocks, n_layers = own.blocks, model.num_layers
    if layer is None:
        layer = n_layers
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 1 <= layer <= n_layers:
        raise ValueError(f"layer must be an integer in 1..{n_layers}, got {layer!r}")
    layer = int(layer)
    y = _as_batch(train_y, "train_y", model.problem.obs_dim)
    x = _as_batch(train_x, "train_x", model.problem.n)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"train_y and train_x must have the same number of rows, got {y.shape[0]} and {x.shape[0]}")
    m = int(y.shape[0])
    for name, v in (("data_radius", data_radius), ("signal_floor", signal_floor)):
        if v is not None:
            _positive(name, v)

    center = classical_center(model) if center is None else center
    if type(center) is not type(model) or center.num_layers != n_layers or center.problem is not model.problem:
        raise ValueError(f"center must be a {type(model).__name__} with {n_layers} layers on the same problem")
    if isinstance(model, Alista) and not torch.allclose(center.weight_matrix.double().cpu(),
                                                        model.weight_matrix.double().cpu()):
        raise ValueError("center and model must share the fixed weight W~ (the class fixes it)")
    groups = list(parameter_lipschitz(center, 1.0).radius)
    theta, theta0 = block_values(model, blocks), block_values(center, blocks)
    if any(theta[b].shape != theta0[b].shape for b in blocks):
        raise ValueError("center and model blocks differ in shape")
    group_of = {b: b.partition("[")[0] for b in blocks}
    dist = {b: float(np.linalg.norm(theta[b] - theta0[b])) for b in blocks}
    needed = {g: max([dist[b] for b in blocks if group_of[b] == g], default=0.0) for g in groups}

    # radii: grid (default) or fixed
    if param_radius is None:
        radius, r_index, r_weight = {}, {}, 1.0
        for g in groups:
            j = None if needed[g] == 0.0 else _ceil_pow2(needed[g])
            radius[g], r_index[g] = (0.0 if j is None else 2.0 ** j), j
            r_weight *= radius_weight(j)
    else:
        radius, r_index, r_weight = group_radii(param_radius, groups, "param_radius"), None, 1.0
    lip_radius = {g: (0.0 if g in THRESHOLD_GROUPS else radius[g]) for g in groups}

    # data: norms, outputs, losses
    ny, nx = torch.linalg.norm(y, dim=1).numpy(), torch.linalg.norm(x, dim=1).numpy()
    loss = clipped_nmse(_outputs(model, y, layer), x, clip).numpy()
    if data_radius is None:
        b_index = _ceil_pow2(DATA_RADIUS_FACTOR * float(ny.max())) if ny.max() > 0 else 0
        b_y, b_weight = 2.0 ** b_index, grid_weight(b_index)
    else:
        b_index, b_y, b_weight = None, float(data_radius), 1.0
    cert = parameter_lipschitz(center, b_y, lip_radius)
    kappa = cert.kappa[layer - 1]
    sizes = {b: theta[b].size for b in blocks}
    rad_b = np.array([radius[group_of[b]] for b in blocks])
    active = (rad_b > 0) & (kappa > 0)
    d = int(sum(sizes[b] for b, a in zip(blocks, active) if a))
    s_prod = float(np.dot(kappa[active], rad_b[active]))
    k_theta = float(np.linalg.norm(kappa[active]))
    r_theta = float(np.linalg.norm(rad_b[active]))

    # signal floor: fixed or the best point of the grid
    pos = nx[nx > 0]
    if signal_floor is not None:
        floors = [(None, float(signal_floor), 1.0)]
    elif pos.size:
        lo, hi = math.floor(math.log2(float(pos.min()))), math.ceil(math.log2(float(np.median(nx)) or 1.0))
        floors = [(i, 2.0 ** i, grid_weight(i)) for i in range(lo, max(lo, hi) + 1)]
    else:
        floors = [(0, 1.0, grid_weight(0))]
    in_y = ny <= b_y
    best: dict[str, Any] | None = None
    for x_index, x0, x_weight in floors:
        good = in_y & (nx >= x0)
        emp = float(np.where(good, loss, clip).mean())
        l_g = 2.0 / (math.sqrt(clip) * x0)
        cbar = min(0.5, l_g * s_prod)
        rad = rademacher_terms(d, 2.0 * l_g * s_prod, m, cbar)
        delta_eff = delta * b_weight * x_weight * r_weight
        conf = 3.0 * math.sqrt(math.log(4.0 / delta_eff) / (2.0 * m))
        value = emp + clip * (2.0 * rad["rademacher"] + conf)
        if best is None or value < best["value"]:
            best = {"value": value, "emp": emp, "x0": x0, "x_index": x_index, "l_g": l_g, "cbar": cbar,
                    "rad": rad, "delta_eff": delta_eff, "conf": conf, "frac": float(1.0 - good.mean())}
    assert best is not None

    ratio = max([needed[g] / radius[g] if radius[g] > 0 else (0.0 if needed[g] == 0 else math.inf)
                 for g in groups], default=0.0)
    inside = ratio <= 1.0 + 1e-12
    y_max = float(ny.max())
    details: dict[str, Any] = {
        "family": family, "layer": layer, "num_parameters": d, "num_parameters_total": own.num_parameters,
        "K_Theta": k_theta, "R_Theta": r_theta, "S": s_prod, "D_out": float(cert.output_radius[layer - 1]),
        "L_loss": 2.0 * math.sqrt(clip) / best["x0"], "L_loss_scaled": best["l_g"], "signal_floor": best["x0"],
        "data_radius": b_y, "param_radius": dict(radius), "distance": dict(needed),
        "grid_index": {"data_radius": b_index, "signal_floor": best["x_index"], "param_radius": r_index},
        "delta_effective": best["delta_eff"], "class_radius": best["cbar"],
        "rademacher": best["rad"]["rademacher"], "rademacher_method": "chaining (SSBD Lemma 27.4)",
        "chaining_levels": best["rad"]["levels"], "dudley_integral": best["rad"]["dudley"],
        "alpha_star": best["rad"]["alpha"], "complexity_term": 2.0 * clip * best["rad"]["rademacher"],
        "confidence_term": clip * best["conf"], "empirical_plain": float(loss.mean()),
        "fraction_truncated": best["frac"], "max_train_norm_y": y_max,
        "center": f"data-independent initialisation ({type(center).__name__})",
    }
    max_y = y_max
    if check_y is not None:
        cy = torch.linalg.norm(_as_batch(check_y, "check_y", model.problem.obs_dim), dim=1).numpy()
        details.update(max_check_norm_y=float(cy.max()), fraction_check_beyond=float((cy > b_y).mean()))
        max_y = max(max_y, float(cy.max()))
    assumptions = (
        Assumption("model inside the parameter class", inside, ratio,
                   "max_g distance_g / R_g <= 1 (||theta_b - center_b|| <= R_g for every block b)"),
        Assumption("data radius (truncated loss)", True, max_y,
                   f"none for validity: a sample with ||y|| > B_y = {b_y:.4g} or ||x|| < x_0 = {best['x0']:.4g} "
                   f"counts with loss c (l' >= l); beyond B_y: {float((~in_y).mean()):.3g} of the training samples"
                   + ("" if check_y is None else f", {details['fraction_check_beyond']:.3g} of check_y")),
    )
    value = best["value"] if inside else math.nan
    return GeneralizationBound("covering", float(value), best["emp"], float(delta), clip, m, THEOREM, SOURCE,
                               "derived", assumptions, details)
