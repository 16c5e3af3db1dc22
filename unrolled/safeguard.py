"""Safeguarded unfolding (issue 18, mechanism 2): a learned layer is kept only when it provably helps.

Framework: Heaton, Chen, Wang & Yin, "Safeguarded learned convex optimization" (AAAI 2023, arXiv
2003.01880), "Safe-L2O". Provenance: the paper's full text could not be read here; the abstract and a
review confirm that an L2O update is wrapped by a safeguard that falls back to a conventional algorithm's
update when the L2O update is "bad", with adaptive safeguard schemes named "Geometric Sequence", "Recent
Term" and "Exponential Moving Average". The formulas below are RECALLED, not checked against the paper;
the guarantees stated here are proved in this module's docstrings from the construction alone (plus the
averagedness of ISTA), so they do not depend on the recollection. docs/certified.md has the write-up.

Scheme, per sample of a batch, independently. T is the classical operator, ISTA on the problem,
T(x) = prox_{g/L}(x - (1/L) grad f(x)) (for the LASSO soft_threshold(x - A^T(Ax - y)/L, lam/L)), built from
the one proximal-gradient step of ``steps.py`` exactly as ``solvers.run_ista`` builds it. Its fixed-point
residual is r(x) = ||x - T(x)||_2. State: x^0 = the model's initial iterate (zeros), mu_0 = r(x^0). Layer k:

    z = layer_k(x^k)                                        (the learned proposal)
    SC: r(z) <= (1 - delta) mu_k                            (safeguard condition)
    SC holds:  x^{k+1} = z,        mu_{k+1} = rule(mu_k, r(x^{k+1}))
    otherwise: x^{k+1} = T(x^k),   mu_{k+1} = mu_k          (the classical step; the safeguard "fires")

    rules: "geometric"  mu_{k+1} = (1 - delta) mu_k
           "recent"     mu_{k+1} = r(x^{k+1})
           "ema"        mu_{k+1} = theta r(x^{k+1}) + (1 - theta) mu_k,   theta in (0, 1]
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import torch
from torch import nn

from unfoldkit.unrolled.metrics import nmse_db_curve
from unfoldkit.unrolled.models.base import UnfoldedModel
from unfoldkit.unrolled.problems.base import Problem
from unfoldkit.unrolled.steps import proximal_gradient_step
from unfoldkit.unrolled.trajectory import Trajectory

Tensor = torch.Tensor

#: the adaptive safeguard schemes (recalled names: Geometric Sequence, Recent Term, Exponential Moving Average)
RULES = ("geometric", "recent", "ema")
#: defaults: EMA (the review's "most practical" scheme), delta = 0.01, theta = 0.5 (docs/certified.md: measured)
DEFAULT_RULE = "ema"
DEFAULT_DELTA = 0.01
DEFAULT_THETA = 0.5
#: tolerance of the fallback inequality r(T x) <= r(x), relative to r(x^0), by dtype: it holds exactly in real
#: arithmetic and up to the round-off of evaluating r in floating point (the accepted case holds exactly)
BOUND_RTOL = {torch.float64: 1e-9, torch.float32: 1e-4}


def _real_in(name: str, value: Any, low: float, high: float, closed_high: bool) -> float:
    """A real in (low, high) or (low, high]; ValueError naming the argument otherwise."""
    interval = f"({low:g}, {high:g}{']' if closed_high else ')'}"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a real number in {interval}, got {value!r}")
    v = float(value)
    if not (low < v < high or (closed_high and v == high)):
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return v


def ista_operator(problem: Problem, x: Tensor, y: Tensor) -> Tensor:
    """T(x) = prox_{(1/L) g}(x - (1/L) grad f(x; y)): one ISTA step at the classical step 1/L, per row.

    The same call of ``steps.proximal_gradient_step`` that ``solvers.run_ista`` makes (step 1/L, the
    problem's ``grad`` and ``prox``), so iterating it reproduces ``run_ista`` bit for bit. For the LASSO,
    T(x) = soft_threshold(x - A^T (A x - y)/L, lam/L). With f convex and L-smooth and g convex, T is
    averaged (the 1/L gradient step is 1/2-averaged, the prox firmly nonexpansive, Bauschke & Combettes 2017,
    Props. 4.39, 12.28 and 4.44), hence nonexpansive."""
    step = 1.0 / problem.L
    return proximal_gradient_step(x, lambda v: problem.grad(v, y), step, lambda v: problem.prox(v, step))


def fixed_point_residual(problem: Problem, x: Tensor, y: Tensor) -> Tensor:
    """r(x) = ||x - T(x)||_2 per row, shape (B,): zero exactly at the minimizers of F = f + g."""
    return (x - ista_operator(problem, x, y)).norm(dim=-1)


@dataclass(frozen=True)
class SafeguardTrace:
    """One safeguarded run on a batch (K layers, B samples, n unknowns).

    ``iterates`` (K+1, B, n): x^0..x^K; ``residuals`` (K+1, B): r(x^k); ``mu`` (K+1, B): the safeguard level
    mu_k; ``accepted`` (K, B) bool: whether layer k's proposal was kept (False: the safeguard fired and
    x^{k+1} = T(x^k)); ``bound`` (K, B): the certified bound max(r(x^k), (1 - delta) mu_k) on r(x^{k+1});
    ``rule``, ``delta``, ``theta``: the safeguard's settings."""

    iterates: Tensor
    residuals: Tensor
    mu: Tensor
    accepted: Tensor
    bound: Tensor
    rule: str
    delta: float
    theta: float

    @property
    def fire_rate(self) -> np.ndarray:
        """Per layer k, the fraction of samples where the safeguard fired (fell back to ISTA), shape (K,)."""
        return (~self.accepted).double().mean(dim=1).cpu().numpy()

    @property
    def overall_fire_rate(self) -> float:
        """Fraction of all (layer, sample) pairs where the safeguard fired."""
        return float((~self.accepted).double().mean()) if self.accepted.numel() else 0.0

    def bound_violation(self) -> Tensor:
        """(r(x^{k+1}) - bound_k) / r(x^0) per layer and sample, (K, B) (0 where r(x^0) = 0 and r stays 0):
        <= 0 up to round-off by the theorem of ``SafeguardedModel``."""
        res = self.residuals.detach()
        excess = res[1:] - self.bound
        scale = res[0].expand_as(excess)
        return torch.where(scale > 0, excess / torch.where(scale > 0, scale, torch.ones_like(scale)), excess)

    def bound_holds(self, rtol: float | None = None) -> bool:
        """Whether r(x^{k+1}) <= bound_k + rtol r(x^0) for every layer and sample (rtol default:
        ``BOUND_RTOL`` of the dtype: 1e-9 in float64, 1e-4 in float32)."""
        tol = BOUND_RTOL.get(self.residuals.dtype, 1e-4) if rtol is None else float(rtol)
        return bool((self.bound_violation() <= tol).all())


class SafeguardedModel(nn.Module):
    """An unfolded model whose every layer is checked against ISTA's fixed-point residual (Safe-L2O, recalled).

    Wraps ``model`` (an ``UnfoldedModel`` whose state is the iterate x^k itself: "ista-learned-step",
    "gd-unfolded", "lista", "lista-cp", "lista-cpss", "alista", "ista-weighted-l1" with solver "ista";
    models carrying momentum or auxiliary variables are refused, since a fallback step cannot set them).
    The safeguard's operator T is ISTA (``ista_operator``) on ``problem`` (default ``model.problem``; pass
    another one of the same sizes to deploy the model on a mismatched problem: the safeguard then checks
    the layers against the true problem). ``rule`` in ``RULES``, ``delta`` in (0, 1), ``theta`` in (0, 1]
    (EMA weight; ignored by the other rules). The scheme is in the module docstring.

    Theorem (proved here, for any weights of the model; T averaged since f is convex L-smooth, g convex):
    for every sample and layer k,

        (a) r(x^{k+1}) <= max(r(x^k), (1 - delta) mu_k)           (the per-layer certified bound),
        (b) mu_{k+1} <= mu_k <= mu_0 = r(x^0),
        (c) r(x^k) <= r(x^0) for every k,
        (d) with rule "recent": r(x^k) <= mu_k, so r(x^{k+1}) <= mu_k and mu is a non-increasing envelope,
        (e) if every layer falls back, x^k are exactly ISTA's iterates from x^0 (``run_ista``).

    Proof. (a) Accepted: x^{k+1} = z and SC is r(z) <= (1 - delta) mu_k. Fallback: x^{k+1} = T x^k, and an
    averaged (so nonexpansive) T gives r(T x) = ||T x - T(T x)|| <= ||x - T x|| = r(x). (b) Fallback keeps
    mu. Accepted: geometric gives (1 - delta) mu_k; recent gives r(x^{k+1}) <= (1 - delta) mu_k; EMA gives
    theta r(x^{k+1}) + (1 - theta) mu_k <= (theta (1 - delta) + 1 - theta) mu_k = (1 - theta delta) mu_k.
    (c) By induction: r(x^0) = mu_0, and if r(x^k) <= mu_0 then by (a), (b) r(x^{k+1}) <= max(mu_0,
    mu_0). (d) Induction: r(x^0) = mu_0; accepted, mu_{k+1} = r(x^{k+1}); fallback, r(x^{k+1}) <= r(x^k)
    <= mu_k = mu_{k+1}. (e) The fallback is T, the step ``run_ista`` iterates, from the same x^0. QED.
    Not claimed: r non-increasing layer by layer under "recent" (after a fallback mu_k may exceed r(x^k),
    and an accepted z may then have r(x^k) < r(z) <= (1 - delta) mu_k). In floating point the accepted
    case holds exactly (SC and the bound use the same computed numbers) and the fallback case up to the
    round-off of evaluating r (``BOUND_RTOL``). Each accepted layer shrinks mu by at least the factor
    (1 - delta) (geometric, recent) or (1 - theta delta) (EMA), so along accepted layers mu -> 0 geometrically.
    """

    def __init__(self, model: UnfoldedModel, rule: str = DEFAULT_RULE, delta: float = DEFAULT_DELTA,
                 theta: float = DEFAULT_THETA, problem: Problem | None = None) -> None:
        super().__init__()
        if not isinstance(model, UnfoldedModel):
            raise ValueError(f"model must be an unfoldkit UnfoldedModel, got {type(model).__name__}")
        if rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
        self.delta = _real_in("delta", delta, 0.0, 1.0, closed_high=False)
        self.theta = _real_in("theta", theta, 0.0, 1.0, closed_high=True)
        self.rule = rule
        problem = model.problem if problem is None else problem
        if not isinstance(problem, Problem):
            raise ValueError(f"problem must be a unfoldkit Problem, got {type(problem).__name__}")
        if problem.n != model.problem.n or problem.obs_dim != model.problem.obs_dim:
            raise ValueError(f"problem must have the model's sizes (n = {model.problem.n}, m = "
                             f"{model.problem.obs_dim}), got n = {problem.n}, m = {problem.obs_dim}")
        probe = model._init_state(torch.zeros(1, problem.obs_dim, dtype=model.model_dtype))
        if not isinstance(probe, Tensor) or model._readout(probe) is not probe:
            raise ValueError(f"safeguard: model {model.family!r} carries a state besides the iterate x_k "
                             "(momentum or auxiliary variables) that a fallback ISTA step cannot set; wrap a "
                             "model whose state is x_k (ista-learned-step, gd-unfolded, lista, lista-cp, "
                             "lista-cpss, alista, ista-weighted-l1 with solver ista)")
        self.model = model
        self.problem = problem

    @property
    def num_layers(self) -> int:
        return self.model.num_layers

    @property
    def model_dtype(self) -> torch.dtype:
        return self.model.model_dtype

    def config(self) -> dict[str, Any]:
        """The safeguard's settings and the wrapped model's family (JSON-serialisable)."""
        return {"family": self.model.family, "rule": self.rule, "delta": self.delta, "theta": self.theta}

    def _check_input(self, y: Tensor) -> Tensor:
        try:
            y = self.problem.check_y(y)
        except ValueError as err:
            raise ValueError(f"safeguarded {self.model.family} on {self.problem!r}: {err}") from None
        return y.to(self.model_dtype)

    def run(self, y: Tensor) -> SafeguardTrace:
        """Run the safeguarded network on y (B, m); returns every layer's iterate, residual, level, decision
        and certified bound (``SafeguardTrace``). Differentiable through the accepted layers (the fallback
        and the decisions carry no gradient to the model's weights); works under ``torch.no_grad()``."""
        y = self._check_input(y)
        x = self.model._init_state(y)
        tx = ista_operator(self.problem, x, y)
        r = (x - tx).norm(dim=-1)
        mu = r.detach().clone()
        iterates, residuals, mus, accepted, bounds = [x], [r], [mu], [], []
        one_minus_delta = 1.0 - self.delta
        for k in range(self.num_layers):
            z = self.model._layer(k, x, y)
            tz = ista_operator(self.problem, z, y)
            rz = (z - tz).norm(dim=-1)
            cap = one_minus_delta * mu
            ok = (rz.detach() <= cap) & torch.isfinite(rz.detach())   # NaN compares False: it falls back
            bounds.append(torch.maximum(r.detach(), cap))
            ttx = ista_operator(self.problem, tx, y)       # T(T x^k): the next T-value where the step falls back
            r_fall = (tx - ttx).norm(dim=-1)
            col = ok[:, None]
            x = torch.where(col, z, tx)
            tx = torch.where(col, tz, ttx)
            r = torch.where(ok, rz, r_fall)
            rd = r.detach()
            if self.rule == "geometric":
                new_mu = cap
            elif self.rule == "recent":
                new_mu = rd
            else:
                new_mu = self.theta * rd + (1.0 - self.theta) * mu
            mu = torch.where(ok, new_mu, mu)
            iterates.append(x)
            residuals.append(r)
            mus.append(mu)
            accepted.append(ok)
        b = y.shape[0]
        empty = torch.zeros(0, b, dtype=y.dtype, device=y.device)
        return SafeguardTrace(
            iterates=torch.stack(iterates), residuals=torch.stack(residuals), mu=torch.stack(mus),
            accepted=torch.stack(accepted) if accepted else empty.bool(),
            bound=torch.stack(bounds) if bounds else empty, rule=self.rule, delta=self.delta, theta=self.theta)

    def forward(self, y: Tensor, trajectory: bool = False) -> Tensor:
        """x^K of the safeguarded network (B, n), or with ``trajectory=True`` every x^k (K+1, B, n)."""
        iterates = self.run(y).iterates
        return iterates if trajectory else iterates[-1]

    def trajectory(self, y: Tensor, *, grad: bool = False) -> Trajectory:
        """The safeguarded iterates as a ``Trajectory`` (algorithm "safeguarded-<family>", kind "model")."""
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            iterates = self(y, trajectory=True)
        return Trajectory(iterates if grad else iterates.detach(), f"safeguarded-{self.model.family}",
                          {}, kind="model")

    def extra_repr(self) -> str:
        return f"rule={self.rule}, delta={self.delta:g}, theta={self.theta:g}, problem={self.problem.name}"


def safeguard_report(model: UnfoldedModel, problem: Problem | None, y: Tensor, x_true: Tensor | None = None,
                     **safeguard: Any) -> dict[str, Any]:
    """Raw vs safeguarded ``model`` on ``y`` (B, m) with the safeguard's T on ``problem`` (None: the model's).

    ``safeguard``: ``rule``, ``delta``, ``theta`` of ``SafeguardedModel``. Runs without gradients. Returns a
    JSON-friendly dict: ``nmse_db_raw`` and ``nmse_db_safeguarded`` (per layer k = 0..K, NMSE in dB from
    ``metrics.nmse_db_curve``; None without ``x_true``), ``fire_rate`` (per layer) and
    ``overall_fire_rate``, ``residual_mean`` / ``residual_max`` (r(x^k) of the safeguarded run per layer)
    and ``residual_raw_mean`` / ``residual_raw_max`` (of the raw model), ``bound_holds`` (the theorem of
    ``SafeguardedModel`` on every layer and sample, tolerance ``BOUND_RTOL``; it must be True),
    ``max_bound_violation`` (max (r(x^{k+1}) - bound_k) / r(x^0)) and the settings."""
    guarded = SafeguardedModel(model, problem=problem, **safeguard)
    with torch.no_grad():
        trace = guarded.run(y)
        y_in = guarded._check_input(y)
        raw = model(y_in, trajectory=True)
        k1, b, n = raw.shape
        r_raw = fixed_point_residual(guarded.problem, raw.reshape(k1 * b, n), y_in.repeat(k1, 1)).reshape(k1, b)
    res = trace.residuals.double()
    out: dict[str, Any] = {
        **guarded.config(),
        "num_layers": guarded.num_layers,
        "batch_size": int(b),
        "nmse_db_raw": None,
        "nmse_db_safeguarded": None,
        "fire_rate": trace.fire_rate.tolist(),
        "overall_fire_rate": trace.overall_fire_rate,
        "residual_mean": res.mean(dim=1).tolist(),
        "residual_max": res.max(dim=1).values.tolist(),
        "residual_raw_mean": r_raw.double().mean(dim=1).tolist(),
        "residual_raw_max": r_raw.double().max(dim=1).values.tolist(),
        "bound_holds": trace.bound_holds(),
        "max_bound_violation": float(trace.bound_violation().max()) if trace.bound.numel() else 0.0,
    }
    if x_true is not None:
        guarded.problem.check_x(x_true, "x_true")
        out["nmse_db_raw"] = nmse_db_curve(raw, x_true).tolist()
        out["nmse_db_safeguarded"] = nmse_db_curve(trace.iterates, x_true).tolist()
    return out
