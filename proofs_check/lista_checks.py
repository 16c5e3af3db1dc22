"""Does a (trained) LISTA-CP / LISTA-CPSS / ALISTA model still carry the linear-convergence guarantee?

``check_lista_model`` reads the model's per-layer weights and thresholds, checks every hypothesis of the
theorems (coupling W_2 = I - W_1 A, sparsity s < (1 + 1/mu)/2, no-false-positive thresholds, the ALISTA
step range), builds the certified per-layer bound (``theory.lista.model_recursion_bound``; for ALISTA also
the theorem's own bound), measures the model on the class X(B, s), fits the measured per-layer decay rate
and reports it beside the theoretical c. A bound is reported only where its assumptions hold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from unfoldkit.theory.bound import Assumption, Bound
from unfoldkit.theory.lista import (
    alista_bound,
    fit_decay_rate,
    model_recursion_bound,
    sparsity_assumption,
    weight_constants,
)
from unfoldkit.unrolled.problems import BoundedSparseRecovery
from unfoldkit.unrolled.problems.linear import LinearInverseProblem
from unfoldkit.unrolled.validation import as_generator, nonnegative_real, positive_int, positive_real

#: relative coupling residual below which W_2 = I - W_1 A counts as exact (float32 models: ~1e-7 round-off)
COUPLING_TOL = 1e-5


@dataclass
class ListaReport:
    """Everything `check_lista_model` found, per layer where it applies."""

    family: str
    s: int
    B: float
    sigma: float
    assumptions: list[Assumption]
    constants: dict[str, list[float]]
    bounds: list[Bound]
    measured_max_error: np.ndarray
    false_positives: np.ndarray
    fitted_rate: float
    theoretical_rate: float | None
    verdicts: dict[str, Any] = field(default_factory=dict)

    @property
    def guarantee(self) -> bool:
        """True when some bound applies (all its assumptions hold) and every layer meets it."""
        return any(v.get("holds") for v in self.verdicts.values())

    def summary(self) -> str:
        lines = [f"{self.family}: s = {self.s}, B = {self.B:g}, sigma = {self.sigma:g}"]
        lines += [f"  {a}" for a in self.assumptions]
        for b in self.bounds:
            lines.append(f"  {b.summary()}")
        rate = "n/a" if self.theoretical_rate is None else f"{self.theoretical_rate:.4g}"
        lines.append(f"  measured decay per layer {self.fitted_rate:.4g} vs theoretical {rate}")
        lines.append("  guarantee: " + ("yes" if self.guarantee else "none (see failed assumptions)"))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "s": self.s, "B": self.B, "sigma": self.sigma,
                "assumptions": [a.to_dict() for a in self.assumptions], "constants": self.constants,
                "bounds": [b.to_dict() for b in self.bounds],
                "measured_max_error": self.measured_max_error.tolist(),
                "false_positives": self.false_positives.tolist(), "fitted_rate": self.fitted_rate,
                "theoretical_rate": self.theoretical_rate, "verdicts": self.verdicts,
                "guarantee": self.guarantee}


def layer_constants(model: Any) -> dict[str, np.ndarray]:
    """Per-layer (mu_k, delta_k, c_k, theta_k, coupling residual r_k) of a LISTA-family model.

    The effective weight of layer k is W^k = (W_1^k)^T (m x n) from ``model.layer_weights(k)``; for ALISTA
    W^k = gamma^k W~. Constants come from ``theory.lista.weight_constants`` in float64."""
    if not hasattr(model, "layer_weights") or not hasattr(model, "coupling_residuals"):
        raise ValueError(f"{type(model).__name__} is not a LISTA-family model (no layer_weights)")
    a = np.asarray(model.problem.A, dtype=np.float64)
    mus, deltas, cs, mun = [], [], [], []
    with torch.no_grad():
        for k in range(model.num_layers):
            w1, _ = model.layer_weights(k)
            c = weight_constants(w1.detach().cpu().double().numpy().T, a)
            mus.append(c.mu)
            deltas.append(c.delta)
            cs.append(c.c_w)
            mun.append(c.mu_normalized)
    sched = model.schedule()
    return {"mu": np.array(mus), "delta": np.array(deltas), "c_w": np.array(cs), "mu_normalized": np.array(mun),
            "threshold": np.asarray(sched["threshold"], dtype=np.float64),
            "coupling_residual": np.asarray(model.coupling_residuals(), dtype=np.float64),
            "step": np.asarray(sched.get("step", np.ones(model.num_layers)), dtype=np.float64)}


def measure_on_class(model: Any, s: int, B: float, num_samples: int = 512,
                     rng: np.random.Generator | int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """Max l2 error per layer and the number of false positives per layer (entries outside supp(x*)
    above a round-off floor of 64 ulps of s B),
    over ``num_samples`` noiseless samples of X(B, s) with the model's own dictionary, in float64."""
    p = model.problem
    if not isinstance(p, LinearInverseProblem):
        raise ValueError("the LISTA theorems need a linear inverse problem (SparseRecovery)")
    cls = BoundedSparseRecovery(m=p.m, n=p.n, support_size=s, amplitude=B, seed=0)
    cls.A = p.A  # same dictionary as the model's problem (any seed or custom matrix)
    batch = cls.sample(num_samples, rng=as_generator(rng))
    dtype = model.model_dtype
    model64 = model.to(torch.float64) if dtype != torch.float64 else model
    try:
        with torch.no_grad():
            device = next((t.device for t in model.parameters()), torch.device("cpu"))
            traj = model64(batch.y.to(device), trajectory=True).cpu()
    finally:
        if dtype != torch.float64:
            model.to(dtype)
    err = (traj - batch.x).norm(dim=-1).max(dim=1).values.numpy()
    # entries below 64 ulps of s B are round-off where the theorem is tight (|z_i| -> theta^k), not supports
    floor = 64 * torch.finfo(torch.float64).eps * s * B
    fp = ((traj.abs() > floor) & (batch.x == 0)[None]).sum(dim=(1, 2)).numpy()
    return err, fp


def check_lista_model(model: Any, s: int, B: float = 1.0, sigma: float = 0.0, num_samples: int = 512,
                      rng: np.random.Generator | int | None = 0) -> ListaReport:
    """Check a LISTA-CP / LISTA-CPSS / ALISTA (or LISTA) model against the linear-convergence theory.

    ``s`` and ``B`` define the signal class X(B, s); ``sigma`` bounds ||eps||_1 (the noisy variant).
    Assumptions reported (name, holds, measured, required): coupling W_2^k = I - W_1^k A (max relative
    residual, Chen et al. 2018 Thm 1), sparsity s < (1 + 1/mu)/2 with mu the largest generalized coherence
    of the layers' weights rescaled to unit diagonal (``WeightConstants.mu_normalized``), and the threshold rule (inside the recursion bound). The measured max error
    per layer is compared with each applicable bound; ``fitted_rate`` is the measured per-layer contraction
    and ``theoretical_rate`` the theorem's (2s - 1) mu (None when the sparsity assumption fails).
    """
    s = positive_int("s", s)
    B = positive_real("B", B)
    sigma = nonnegative_real("sigma", sigma)
    const = layer_constants(model)
    mu_unit = float(np.max(const["mu_normalized"]))
    coupling = Assumption("coupling W_2^k = I - W_1^k A", bool(np.max(const["coupling_residual"]) <= COUPLING_TOL),
                          float(np.max(const["coupling_residual"])), f"max_k relative residual <= {COUPLING_TOL:g}")
    sparsity = sparsity_assumption(s, mu_unit, "max_k mu of W^k at unit diagonal")
    assumptions = [coupling, sparsity]
    bounds = []
    if coupling.holds:
        rec = model_recursion_bound(const["mu"], const["delta"], const["threshold"], s, B, sigma, const["c_w"],
                                    name=f"{model.family}-recursion")
        bounds.append(rec)
        assumptions.extend(rec.assumptions)
    if model.family == "alista" and coupling.holds:
        mu_w = model.coherence()
        bounds.append(alista_bound(mu_w, s, B, const["step"], weight=getattr(model, "weight", "W"),
                                   thresholds=const["threshold"], delta=0.0, sigma=sigma,
                                   c_w=float(np.abs(model.weight_matrix.detach().cpu().double().numpy()).max())))
    err, fp = measure_on_class(model, s, B, num_samples, rng)
    rho, _ = fit_decay_rate(err)
    theo = (2 * s - 1) * mu_unit if sparsity.holds else None
    verdicts = {}
    for b in bounds:
        if not b.holds:
            verdicts[b.name] = {"holds": False, "reason": "; ".join(str(a) for a in b.failed)}
            continue
        vals = np.asarray(b.values, dtype=np.float64)
        ok = bool(np.all(err <= vals * (1 + 1e-6) + 1e-12))  # float64 model evaluation, see tests
        margin = float(np.min(vals - err))
        tight = float(np.min(vals[1:] / np.maximum(err[1:], 1e-300))) if len(vals) > 1 else math.inf
        verdicts[b.name] = {"holds": ok, "worst_margin": margin, "tightness": tight}
    return ListaReport(model.family, s, B, sigma, assumptions,
                       {k: v.tolist() for k, v in const.items()}, bounds, err, fp, rho, theo, verdicts)
