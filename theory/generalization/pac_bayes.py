"""PAC-Bayes risk certificates for unfolded models on the clipped loss.

The posterior Q = N(theta, sigma^2 I) is a Gaussian around the trained *learned* parameters (flattened,
in the order of ``model.parameter_info()``); the prior P = N(theta_0, sigma^2 I) sits at parameters fixed
before the data are seen. With probability >= 1 - delta - delta' over the training sample S (n i.i.d.
samples) and the Monte Carlo draws, the risk L(Q) = E_{h ~ Q} E_z loss(h, z) of the randomised model is at
most the certificate. Everything is stated for a loss in [0, 1]: the clipped NMSE in [0, c] is divided by c
before the bounds and the bound is multiplied by c afterwards (L <= c B  <=>  L / c <= B).

The statements (loss in [0, 1], n samples, KL = KL(Q || P), prior independent of S):

- PAC-Bayes-kl (Maurer 2004, the [0, 1]-valued extension of Langford & Seeger's bound):
  kl(L_hat(Q) || L(Q)) <= (KL + log(2 sqrt(n) / delta)) / n, so L(Q) <= kl^-1_upper(L_hat(Q), that).
  ``pac_bayes_bound(form="kl")``.
- "classic" (McAllester form, the kl bound relaxed by Pinsker's kl(q||p) >= 2 (p - q)^2):
  L(Q) <= L_hat(Q) + sqrt((KL + log(2 sqrt(n) / delta)) / (2n)).  ``form="classic"``.
- "quad" (Perez-Ortiz, Rivasplata, Shawe-Taylor & Szepesvari 2021, f_quad; the kl bound relaxed by
  kl(q||p) >= (p - q)^2 / (2p)): with r = (KL + log(2 sqrt(n) / delta)) / (2n),
  L(Q) <= (sqrt(L_hat(Q) + r) + sqrt(r))^2.  ``form="quad"``. No Catoni form is implemented: no exact
  statement of Catoni's bound could be read here (see "What was checked"), so "quad" stands in for it.
- Monte Carlo (Langford & Caruana 2001, as used by Perez-Ortiz et al.): L_hat(Q) is not computable; with M
  i.i.d. [0, 1]-valued estimates X_j of it (X_j = L_hat(h_j), h_j ~ Q), the Chernoff bound gives
  L_hat(Q) <= kl^-1_upper(mean X_j, log(2 / delta') / M) with probability >= 1 - delta' over the draws.
- Grid of noise scales sigma_1..sigma_G (derived, union bound): the PAC-Bayes statement is used with
  delta / G and the Monte Carlo one with delta' / G for every sigma, so all 2G events hold together with
  probability >= 1 - delta - delta', and the smallest certificate over the grid is valid (the grid must be
  fixed before the data). Defaults: delta = 0.025, delta' = 0.01 (Perez-Ortiz et al.'s values), total 0.035.

``mc_batch`` (derived): with an integer b, the j-th draw is evaluated on b training samples drawn uniformly
without replacement (independently for each draw) instead of all n. X_j is then still in [0, 1], the X_j are
i.i.d. and E X_j = L_hat(Q) exactly, so the same Chernoff statement applies; it costs b/n of a full draw, so
many more draws (a smaller log(2/delta')/M term) fit in the same time.

Prior. ``prior="init"`` (default): theta_0 = the learned parameters of ``type(model).from_classical(problem,
K, ...)`` with the model's architecture arguments (``config()`` minus the initial values step / rho /
threshold / momentum, so at the classical algorithm's own 1/L step). This prior is data-independent: our
initialisation is the classical algorithm (ISTA, FISTA, ADMM, ...), a function of the problem only
(IstaCorrection's random hidden weights come from its fixed ``seed``). ``prior="constructor"``: the model
rebuilt from its ``config()`` (its own initialisation, e.g. ALISTA's analytic W~ with gamma = 1), valid as
long as those constructor arguments were chosen before the data. ``prior=<another model>`` of the same
family and learned-parameter shapes: a data-dependent prior learned on a held-out prior set; the caller is
responsible for the split: the certificate is computed only on (train_y, train_x), which must be the
remaining samples, disjoint from (and independent of) the prior's data; n is their number.

Posterior. Only the learned parameters are perturbed (``parameter_info()``'s ``learned``); fixed weights
(ALISTA's W~, IstaCorrection's steps, buffers) stay as they are. Parameters that a model reparametrises
(AdmmUnfolded's log rho, IstaWeightedL1's log w) are perturbed in their stored parametrisation, i.e.
N(log rho, sigma^2), not N(rho, sigma^2). A perturbed model that diverges (NaN or inf output) has the
maximal loss c on that sample (the clipped loss of an infinite error).

What was checked (status "recalled"): the paper texts themselves (Maurer 2004; Langford & Seeger 2001;
Langford & Caruana 2001; Perez-Ortiz et al. 2021, JMLR 22) could not be read from this machine. Checked
were: the abstract of Maurer's "A note on the PAC Bayesian theorem" (arXiv cs/0411099: exponential moment
inequalities for averages of [0, 1]-valued i.i.d. variables, the logarithmic dependence on n halved); the
authors' reference code of Perez-Ortiz et al. (github mperezortiz/PBB, ``pbb/bounds.py``: ``PBBobj.bound``
has fquad = (sqrt(emp + r) + sqrt(r))^2 and fclassic = emp + sqrt(r) with r = (KL + log(2 sqrt(n)/delta)) /
(2n); ``compute_final_stats_risk`` certifies with inv_kl(emp, (KL + log(2 sqrt(n)/delta)) / n) after the
Monte Carlo step inv_kl(mc, log(2/delta_test) / mc_samples); defaults delta = 0.025, delta_test = 0.01); and
a third implementation of Maurer's bound with a union over a sigma^2 grid (github YiShanAngWu/Split-KL-R,
``PACBayes-kl.R``: log(2 G sqrt(n) / delta)). Maurer's theorem is recalled to need n >= 8 (checked as an
assumption; the value is NaN below it).
"""
from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.func import functional_call

from unfoldkit.theory.bound import Assumption
from unfoldkit.theory.generalization.loss import DEFAULT_CLIP, clipped_nmse
from unfoldkit.theory.generalization.result import GeneralizationBound
from unfoldkit.unrolled.models.base import UnfoldedModel

#: the bound forms: PAC-Bayes-kl (Maurer), classic (McAllester form), quad (Perez-Ortiz et al.'s f_quad)
FORMS = ("kl", "classic", "quad")
#: other accepted names of the forms
_ALIASES = {"mcallester": "classic", "maurer": "kl", "seeger": "kl"}
#: the default grid of posterior / prior noise scales sigma (union bound over it)
DEFAULT_SIGMAS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1)
#: constructor arguments that are initial values, not architecture: left out of the classical prior
_INITIAL_VALUES = ("step", "rho", "threshold", "momentum")
#: Maurer's theorem is stated for n >= 8 (recalled)
MIN_SAMPLES = 8
_THEOREMS = {
    "kl": "PAC-Bayes-kl (Maurer 2004): kl(L_hat || L) <= (KL + log(2 sqrt(n)/delta)) / n",
    "classic": "PAC-Bayes classic (McAllester form): L <= L_hat + sqrt((KL + log(2 sqrt(n)/delta)) / (2n))",
    "quad": "PAC-Bayes quad (f_quad): L <= (sqrt(L_hat + r) + sqrt(r))^2, r = (KL + log(2 sqrt(n)/delta)) / (2n)",
}
_SOURCE = ("Maurer 2004 (A note on the PAC-Bayesian theorem); Langford & Caruana 2001 (Monte Carlo step); "
           "Perez-Ortiz, Rivasplata, Shawe-Taylor & Szepesvari 2021, JMLR 22 (forms, deltas); "
           "cross-checked against mperezortiz/PBB pbb/bounds.py")


# --------------------------------------------------------------------------------------------------
# validation helpers


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if math.isnan(v):
        raise ValueError(f"{name} must not be NaN")
    return v


def _unit(name: str, value: Any) -> float:
    v = _real(name, value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {v!r}")
    return v


def _open_unit(name: str, value: Any) -> float:
    v = _real(name, value)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {v!r}")
    return v


def _count(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _kl_value(value: Any) -> float:
    v = _real("kl", value)
    if v < 0.0:
        raise ValueError(f"kl must be >= 0, got {v!r}")
    return v


# --------------------------------------------------------------------------------------------------
# pure math (float64)


def kl_bernoulli(q: float, p: float) -> float:
    """kl(q || p) = q log(q/p) + (1 - q) log((1 - q)/(1 - p)) for q, p in [0, 1] (0 log 0 = 0; +inf when
    p = 0 < q or q < 1 = p)."""
    q, p = _unit("q", q), _unit("p", p)
    out = 0.0
    if q > 0.0:
        if p == 0.0:
            return math.inf
        out += q * math.log(q / p)
    if q < 1.0:
        if p == 1.0:
            return math.inf
        out += (1.0 - q) * (math.log1p(-q) - math.log1p(-p))
    return max(out, 0.0)


def kl_inverse_upper(q: float, c: float) -> float:
    """sup{p in [q, 1] : kl(q || p) <= c} for q in [0, 1], c >= 0 (c = inf allowed, giving 1).

    kl(q || .) is continuous and strictly increasing on [q, 1) from 0 to +inf, so the sup is the root of
    kl(q || p) = c; bisection down to 1e-15 (or one ulp) returns the upper end of the final bracket, so the
    result is never below the exact sup (a valid upper bound) and above it by at most 1e-15. Closed forms:
    q = 1 -> 1; c = 0 -> q; q = 0 -> 1 - exp(-c).
    """
    q = _unit("q", q)
    c = _real("c", c)
    if c < 0.0:
        raise ValueError(f"c must be >= 0, got {c!r}")
    if q == 1.0 or math.isinf(c):
        return 1.0
    if c == 0.0:
        return q
    if q == 0.0:
        return float(min(1.0, -math.expm1(-c)))
    lo, hi = q, 1.0
    for _ in range(2200):  # halving down to one ulp: <= ~1100 steps even for subnormal brackets
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if kl_bernoulli(q, mid) > c:
            hi = mid
        else:
            lo = mid
    return hi


def kl_gaussians(mu_q: Any, sigma_q: Any, mu_p: Any, sigma_p: Any) -> float:
    """KL(N(mu_q, diag sigma_q^2) || N(mu_p, diag sigma_p^2)) in closed form:

        sum_i [ log(sigma_p,i / sigma_q,i) + (sigma_q,i^2 + (mu_q,i - mu_p,i)^2) / (2 sigma_p,i^2) - 1/2 ],

    written as sum_i [ (expm1(t_i) - t_i) + ((mu_q,i - mu_p,i)/sigma_p,i)^2 ] / 2 with t_i = 2 log(sigma_q,i /
    sigma_p,i) (no cancellation when the variances agree). Means: arrays (or tensors) of one shape; sigmas:
    positive scalars (isotropic) or arrays of that shape. Equal sigmas give ||mu_q - mu_p||^2 / (2 sigma^2).
    """
    def arr(name: str, v: Any) -> np.ndarray:
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().double().numpy()
        a = np.asarray(v, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be finite")
        return a

    mq, mp = arr("mu_q", mu_q), arr("mu_p", mu_p)
    if mq.shape != mp.shape:
        raise ValueError(f"mu_q and mu_p must have the same shape, got {mq.shape} and {mp.shape}")
    sq, sp = arr("sigma_q", sigma_q), arr("sigma_p", sigma_p)
    for name, s in (("sigma_q", sq), ("sigma_p", sp)):
        if np.any(s <= 0):
            raise ValueError(f"{name} must be > 0")
        try:
            np.broadcast_to(s, mq.shape)
        except ValueError:
            raise ValueError(f"{name} must be a scalar or of the means' shape {mq.shape}, got {s.shape}") from None
    sq, sp = np.broadcast_to(sq, mq.shape), np.broadcast_to(sp, mq.shape)
    t = 2.0 * (np.log(sq) - np.log(sp))
    terms = (np.expm1(t) - t) + ((mq - mp) / sp) ** 2
    return float(0.5 * np.sum(terms))


def _complexity(kl: float, n: int, delta: float) -> float:
    """(KL + log(2 sqrt(n) / delta)) / n, the right-hand side of the PAC-Bayes-kl inequality."""
    return (kl + math.log(2.0 * math.sqrt(n) / delta)) / n


def pac_bayes_bound(empirical: float, kl: float, n: int, delta: float, form: str = "kl") -> float:
    """Upper bound on L(Q) for a loss in [0, 1] from L_hat(Q) = ``empirical``, KL(Q || P) = ``kl``, n samples
    and confidence delta; ``form`` "kl" (Maurer), "classic" (McAllester form) or "quad" (f_quad). See the
    module docstring for the statements. The "kl" value is <= 1; the others can exceed 1 (vacuous).
    "mcallester" is accepted for "classic", "maurer" / "seeger" for "kl"."""
    form = _ALIASES.get(form, form) if isinstance(form, str) else form
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    empirical = _unit("empirical", empirical)
    kl = _kl_value(kl)
    n = _count("n", n)
    delta = _open_unit("delta", delta)
    c = _complexity(kl, n, delta)
    if form == "kl":
        return kl_inverse_upper(empirical, c)
    if form == "classic":
        return empirical + math.sqrt(c / 2.0)
    r = c / 2.0
    return (math.sqrt(empirical + r) + math.sqrt(r)) ** 2


def pac_bayes_kl_bound(empirical: float, kl: float, n: int, delta: float) -> float:
    """kl^-1_upper(L_hat, (KL + log(2 sqrt(n)/delta)) / n): Maurer's PAC-Bayes-kl bound inverted."""
    return pac_bayes_bound(empirical, kl, n, delta, "kl")


def mcallester_bound(empirical: float, kl: float, n: int, delta: float) -> float:
    """L_hat + sqrt((KL + log(2 sqrt(n)/delta)) / (2n)): the classic (McAllester-form) bound."""
    return pac_bayes_bound(empirical, kl, n, delta, "classic")


def quad_bound(empirical: float, kl: float, n: int, delta: float) -> float:
    """(sqrt(L_hat + r) + sqrt(r))^2, r = (KL + log(2 sqrt(n)/delta)) / (2n): Perez-Ortiz et al.'s f_quad."""
    return pac_bayes_bound(empirical, kl, n, delta, "quad")


def mc_risk_upper(mc_risk: float, num_draws: int, delta_mc: float) -> float:
    """kl^-1_upper(mean of M i.i.d. [0, 1] estimates, log(2 / delta') / M): an upper bound on their
    expectation L_hat(Q) with probability >= 1 - delta' over the draws (Langford & Caruana 2001)."""
    mc_risk = _unit("mc_risk", mc_risk)
    num_draws = _count("num_draws", num_draws)
    delta_mc = _open_unit("delta_mc", delta_mc)
    return kl_inverse_upper(mc_risk, math.log(2.0 / delta_mc) / num_draws)


def certificate_value(mc_risk: float, kl: float, n: int, num_draws: int, delta: float, delta_mc: float,
                      form: str = "kl") -> float:
    """The full certificate for a loss in [0, 1]: ``pac_bayes_bound`` applied to ``mc_risk_upper``; it holds
    with probability >= 1 - delta - delta' (every form is increasing in the empirical risk)."""
    return pac_bayes_bound(mc_risk_upper(mc_risk, num_draws, delta_mc), kl, n, delta, form)


# --------------------------------------------------------------------------------------------------
# models


def learned_parameters(model: UnfoldedModel) -> dict[str, torch.Tensor]:
    """The learned parameter tensors of ``model`` by name, in ``parameter_info()`` order (fixed weights and
    buffers excluded). ValueError if a listed learned name is not a parameter of the model."""
    named = dict(model.named_parameters())
    out: dict[str, torch.Tensor] = {}
    for info in model.parameter_info():
        if not info.learned:
            continue
        if info.name not in named:
            raise ValueError(f"{model.family}: learned parameter {info.name!r} is not among the model's parameters")
        out[info.name] = named[info.name]
    return out


def _flat(params: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.detach().to(device="cpu", dtype=torch.float64).reshape(-1) for p in params.values()])


def _unflat(theta: torch.Tensor, shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    out, start = {}, 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        out[name] = theta[start:start + size].reshape(shape)
        start += size
    return out


def classical_prior(model: UnfoldedModel) -> UnfoldedModel:
    """The data-independent initialisation of ``model``'s architecture in float64: ``covering.classical_center``
    where it covers the family (the one place that knows, e.g., that an analytic-W ALISTA starts at its
    constructor's gamma = 1 with its own W~, not at the ISTA instance W = A), otherwise
    ``type(model).from_classical(problem, K, ...)`` with the model's architecture arguments (its ``config()``
    entries that ``from_classical`` takes, without the initial values step / rho / threshold / momentum):
    the classical algorithm, a function of the problem only."""
    from unfoldkit.theory.generalization.covering import classical_center

    try:
        return classical_center(model)
    except NotImplementedError:
        pass
    cls = type(model)
    accepted = inspect.signature(cls.from_classical).parameters
    kwargs = {k: v for k, v in model.config().items()
              if k in accepted and k not in ("problem", "num_layers", "dtype", *_INITIAL_VALUES)}
    return cls.from_classical(model.problem, model.num_layers, dtype=torch.float64, **kwargs)


def _prior_model(model: UnfoldedModel, prior: Any) -> tuple[UnfoldedModel, str]:
    if isinstance(prior, str):
        if prior == "init":
            return classical_prior(model), "init (classical algorithm, data-independent)"
        if prior == "constructor":
            return (type(model)(model.problem, **model.config()),
                    "constructor (the model's own initialisation from config(), data-independent)")
        raise ValueError(f"prior must be 'init', 'constructor' or a model, got {prior!r}")
    if isinstance(prior, UnfoldedModel):
        if type(prior) is not type(model):
            raise ValueError(f"prior model must be a {type(model).__name__}, got {type(prior).__name__}")
        return prior, "model (data-dependent: learned on a held-out prior set; caller's responsibility)"
    raise ValueError(f"prior must be 'init', 'constructor' or a model, got {type(prior).__name__}")


def _as_data(name: str, value: Any) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a tensor or array, got {type(value).__name__}")
    if value.ndim != 2 or value.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, dim) with N >= 1, got {tuple(value.shape)}")
    value = value.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return value


def _check_data(model: UnfoldedModel, y: Any, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
    y, x = _as_data("train_y", y), _as_data("train_x", x)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"train_y and train_x must have as many rows, got {y.shape[0]} and {x.shape[0]}")
    m, n = model.problem.obs_dim, getattr(model.problem, "n", x.shape[1])
    if y.shape[1] != m or x.shape[1] != n:
        raise ValueError(f"train_y, train_x must have shapes (N, {m}), (N, {n}) for {model.problem!r}, got "
                         f"{tuple(y.shape)}, {tuple(x.shape)}")
    return y, x


class _Evaluator:
    """Risks (clipped loss / c, in [0, 1]) of parameter vectors of a float64 copy of the model."""

    def __init__(self, model: UnfoldedModel, clip: float, chunk: int = 256) -> None:
        self.model = copy.deepcopy(model).to(torch.float64)
        self.params = learned_parameters(self.model)
        self.shapes = {k: v.shape for k, v in self.params.items()}
        self.theta = _flat(self.params)
        self.clip = clip
        self.chunk = chunk

    def losses(self, theta: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-sample loss / c in [0, 1] of the model with learned parameters ``theta``; NaN counts as c."""
        params = _unflat(theta, self.shapes)
        out = []
        with torch.no_grad():
            for start in range(0, y.shape[0], self.chunk):
                x_hat = functional_call(self.model, params, (y[start:start + self.chunk],))
                loss = clipped_nmse(x_hat, x[start:start + self.chunk], self.clip)
                out.append(torch.nan_to_num(loss, nan=self.clip) / self.clip)
        return torch.cat(out)

    def risk(self, theta: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> float:
        return float(self.losses(theta, y, x).mean())


def _generator(seed: int, stream: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, stream]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)


def _mc_risk(ev: _Evaluator, sigma: float, y: torch.Tensor, x: torch.Tensor, draws: int, batch: int | None,
             gen: torch.Generator) -> float:
    """Mean over ``draws`` posterior draws theta + sigma eps of the risk on all samples (batch None) or on
    ``batch`` samples drawn without replacement per draw."""
    total = 0.0
    n = y.shape[0]
    for _ in range(draws):
        eps = torch.randn(ev.theta.shape, generator=gen, dtype=torch.float64)
        theta = ev.theta + sigma * eps
        if batch is None or batch >= n:
            total += ev.risk(theta, y, x)
        else:
            idx = torch.randperm(n, generator=gen)[:batch]
            total += ev.risk(theta, y[idx], x[idx])
    return min(max(total / draws, 0.0), 1.0)


def posterior_risk(model: UnfoldedModel, y: Any, x: Any, sigma: float, *, draws: int = 1,
                   clip: float = DEFAULT_CLIP, seed: int = 0) -> np.ndarray:
    """Risks (clipped loss, in [0, clip]) of ``draws`` models drawn from N(theta, sigma^2 I) over the learned
    parameters, each on all of (y, x): e.g. the posterior's test risk on fresh data (mean over draws)."""
    clip = _real("clip", clip)
    if not (math.isfinite(clip) and clip > 0):
        raise ValueError(f"clip must be a finite number > 0, got {clip!r}")
    sigma = _real("sigma", sigma)
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    draws = _count("draws", draws)
    seed = _count("seed", seed, 0)
    y, x = _check_data(model, y, x)
    ev = _Evaluator(model, clip)
    gen = _generator(seed, 1_000_003)
    out = []
    for _ in range(draws):
        eps = torch.randn(ev.theta.shape, generator=gen, dtype=torch.float64)
        out.append(clip * ev.risk(ev.theta + sigma * eps, y, x))
    return np.asarray(out)


def pac_bayes_certificate(model: UnfoldedModel, train_y: Any, train_x: Any, *, prior: Any = "init",
                          sigmas: Sequence[float] = DEFAULT_SIGMAS, mc_samples: int = 200,
                          mc_batch: int | None = None, delta: float = 0.025, delta_mc: float = 0.01,
                          clip: float = DEFAULT_CLIP, seed: int = 0, form: str = "kl") -> GeneralizationBound:
    """A PAC-Bayes risk certificate for the Gaussian posterior N(theta_trained, sigma^2 I) of ``model``.

    For each sigma of the grid: KL(Q || P) = ||theta - theta_0||^2 / (2 sigma^2) (``kl_gaussians``), the
    Monte Carlo estimate of the posterior's training risk from ``mc_samples`` draws (each on the whole
    training set, or on ``mc_batch`` samples of it), its upper value kl^-1_upper(., log(2G/delta')/M) and the
    certificate ``pac_bayes_bound(that, KL, n, delta/G, form)``; the smallest certificate over the grid is
    returned (times the clip level c). It holds with probability >= 1 - delta - delta' (module docstring).
    Sigmas are visited from the smallest KL up; one whose certificate could not beat the best so far even
    with a zero Monte Carlo risk is skipped (its draws are not run; the union bound still counts it).

    ``prior``: "init" (classical algorithm), "constructor" (the model's own initialisation) or a model
    (data-dependent prior learned on held-out data: (train_y, train_x) must then be the remaining samples).
    Everything is float64, on CPU, seeded by ``seed``; the model is not modified. ``details`` holds the
    grid (sigma, kl, mc_risk, mc_upper, certificate per sigma; risks in loss units), d, M, the deltas, the
    best sigma and the deterministic model's own training risk.
    """
    if not isinstance(model, UnfoldedModel):
        raise ValueError(f"model must be an UnfoldedModel, got {type(model).__name__}")
    form = _ALIASES.get(form, form) if isinstance(form, str) else form
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    delta = _open_unit("delta", delta)
    delta_mc = _open_unit("delta_mc", delta_mc)
    if delta + delta_mc >= 1.0:
        raise ValueError(f"delta + delta_mc must be < 1, got {delta + delta_mc!r}")
    clip = _real("clip", clip)
    if not (math.isfinite(clip) and clip > 0):
        raise ValueError(f"clip must be a finite number > 0, got {clip!r}")
    if isinstance(sigmas, (str, bytes)) or not isinstance(sigmas, (Sequence, np.ndarray)):
        raise ValueError(f"sigmas must be a sequence of positive numbers, got {sigmas!r}")
    grid = [_real("sigma", s) for s in sigmas]
    if not grid:
        raise ValueError("sigmas must not be empty")
    if any(not (math.isfinite(s) and s > 0) for s in grid):
        raise ValueError(f"every sigma must be a finite number > 0, got {list(sigmas)!r}")
    mc_samples = _count("mc_samples", mc_samples)
    seed = _count("seed", seed, 0)
    y, x = _check_data(model, train_y, train_x)
    n = int(y.shape[0])
    if mc_batch is not None:
        mc_batch = _count("mc_batch", mc_batch)
        if mc_batch > n:
            raise ValueError(f"mc_batch must be <= the number of samples {n}, got {mc_batch}")
    if not learned_parameters(model):
        raise ValueError(f"{model.family} has no learned parameters: nothing to certify")
    prior_model, prior_kind = _prior_model(model, prior)
    prior_params = learned_parameters(prior_model)
    post_params = learned_parameters(model)
    if [(k, tuple(v.shape)) for k, v in prior_params.items()] != [(k, tuple(v.shape)) for k, v in post_params.items()]:
        raise ValueError("prior and model must have the same learned parameters (names and shapes)")

    ev = _Evaluator(model, clip)
    theta0 = _flat(prior_params)
    d = int(ev.theta.numel())
    dist = float(torch.linalg.vector_norm(ev.theta - theta0))
    g = len(grid)
    delta_s, delta_mc_s = delta / g, delta_mc / g
    deterministic = ev.risk(ev.theta, y, x)

    kls = [kl_gaussians(ev.theta.numpy(), s, theta0.numpy(), s) for s in grid]
    floor_mc = mc_risk_upper(0.0, mc_samples, delta_mc_s)
    rows: list[dict[str, Any]] = [{"sigma": s, "kl": k, "mc_risk": None, "mc_upper": None, "certificate": None,
                                   "evaluated": False} for s, k in zip(grid, kls)]
    best, best_i = math.inf, -1
    for i in sorted(range(g), key=lambda j: (kls[j], j)):
        floor = pac_bayes_bound(floor_mc, kls[i], n, delta_s, form)
        if floor >= best:
            continue
        q = _mc_risk(ev, grid[i], y, x, mc_samples, mc_batch, _generator(seed, i))
        upper = mc_risk_upper(q, mc_samples, delta_mc_s)
        cert = pac_bayes_bound(upper, kls[i], n, delta_s, form)
        rows[i].update(mc_risk=clip * q, mc_upper=clip * upper, certificate=clip * cert, evaluated=True)
        if cert < best:
            best, best_i = cert, i
    row = rows[best_i]
    enough = Assumption("n >= 8 (Maurer's theorem)", n >= MIN_SAMPLES, float(n), f"n >= {MIN_SAMPLES}")
    bounded = Assumption("loss in [0, c]", True, clip, f"clipped NMSE, c = {clip:g}, divided by c for the bound")
    prior_free = Assumption("prior independent of the training sample", True if isinstance(prior, str) else None,
                            None, "prior fixed before the data (held-out data for a model prior)")
    value = clip * best if enough.holds else math.nan
    details = {
        "form": form, "prior": prior_kind, "parameters": list(post_params), "d": d, "num_draws": mc_samples,
        "mc_batch": n if mc_batch is None else mc_batch, "delta": delta, "delta_mc": delta_mc,
        "delta_per_sigma": delta_s, "delta_mc_per_sigma": delta_mc_s, "grid": rows,
        "best_sigma": row["sigma"], "kl": row["kl"], "complexity": _complexity(row["kl"], n, delta_s),
        "mc_upper": row["mc_upper"], "prior_distance": dist, "deterministic_train_risk": clip * deterministic,
        "loss_scale": clip,
    }
    return GeneralizationBound(
        name=f"pac-bayes-{form}", value=value, empirical=float(row["mc_risk"]), delta=delta + delta_mc,
        loss_range=clip, num_samples=n,
        theorem=_THEOREMS[form] + "; Monte Carlo kl^-1(L_hat_MC, log(2/delta')/M); union over the sigma grid",
        source=_SOURCE, status="recalled", assumptions=(bounded, enough, prior_free), details=details)


__all__ = [
    "DEFAULT_SIGMAS",
    "FORMS",
    "certificate_value",
    "classical_prior",
    "kl_bernoulli",
    "kl_gaussians",
    "kl_inverse_upper",
    "learned_parameters",
    "mc_risk_upper",
    "mcallester_bound",
    "pac_bayes_bound",
    "pac_bayes_certificate",
    "pac_bayes_kl_bound",
    "posterior_risk",
    "quad_bound",
]
