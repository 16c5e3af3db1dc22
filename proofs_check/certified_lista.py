"""Certified LISTA-CP / LISTA-CPSS / ALISTA training (issue 18, mechanism 3): keep the learned thresholds and
steps inside the region where the linear-convergence certificate holds for a declared signal class X(B, s).

The certificate is the per-layer recursion of the proofs of Chen et al. 2018 Thm 2 and Liu et al. 2019
(ALISTA) Thm 1 (``theory.lista.layer_recursion``, derived; for ALISTA also the theorem's own bound): for
x* in X(B, s) = {||x*||_0 <= s, |x*_i| <= B}, ||eps||_1 <= sigma and x^0 = 0, if every layer's threshold
satisfies theta^k >= mu_k e_k + c_k sigma (no false positives) and the coupling W_2^k = I - W_1^k A holds
(exact by construction in LISTA-CP, LISTA-CPSS and ALISTA), then ||x^k - x*||_1 <= e_k at every layer.
ALISTA Thm 1 adds gamma^k in (0, 2/(2 mu s - mu + 1)) and s < (1 + 1/mu)/2 for its closed form.

``ListaRegion`` is the projection onto that region, applied by the trainer after every optimizer step
(``train(..., constraint=region)``): steps clamped into the theorem's range (ALISTA), then thresholds raised,
layer by layer, to the smallest certified value (``theory.lista.project_thresholds``). Weights are left to
training: the recursion certifies any weight, through its measured constants (mu_k, delta_k, c_k). After
training, ``certify_lista`` recomputes everything from scratch (``check_lista_model``: the constants from the
weights, the bounds of the guarantee registry, the measured errors on samples of X(B, s)).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from unfoldkit.proofs_check.lista_bounds import layer_constants
from unfoldkit.proofs_check.lista_checks import ListaReport, check_lista_model
from unfoldkit.theory.lista import alista_step_range, project_thresholds, sparsity_limit
from unfoldkit.unrolled.validation import nonnegative_real, positive_int, positive_real

#: families the mechanism covers: their W_2 is I - W_1 A by construction (LISTA's is free: no certificate)
FAMILIES = ("lista-cp", "lista-cpss", "alista")


@dataclass(frozen=True)
class ListaRegion:
    """The certified region of a LISTA-CP-type model for X(B, s), as a projection (callable: model -> None).

    ``s``, ``B``: the declared class; ``sigma``: the noise bound ||eps||_1 <= sigma; ``step_margin``: ALISTA's
    steps are kept in [step_margin gamma_max, (1 - step_margin) gamma_max], gamma_max = 2/(2 mu s - mu + 1)
    (Thm 1's open interval, with a margin that float32 storage cannot cross); ``slack``: relative slack of
    the threshold rule (absorbs the rounding of float32 storage, 1e-5 >> 6e-8, and the recursion's 1e-9).
    """

    s: int
    B: float
    sigma: float = 0.0
    step_margin: float = 1e-3
    slack: float = 1e-5

    def __post_init__(self) -> None:
        positive_int("s", self.s)
        positive_real("B", self.B)
        nonnegative_real("sigma", self.sigma)
        if not 0.0 < float(self.step_margin) < 0.5:
            raise ValueError(f"step_margin must be in (0, 0.5), got {self.step_margin!r}")
        nonnegative_real("slack", self.slack)

    def check_model(self, model: Any) -> None:
        """ValueError (one line) when the model cannot be certified on X(B, s): a family without the coupling,
        or (ALISTA) a class outside Thm 1 for its weight, s >= (1 + 1/mu~)/2."""
        family = getattr(model, "family", type(model).__name__)
        if family not in FAMILIES:
            raise ValueError(f"--certify lista covers {', '.join(FAMILIES)}, not {family!r}: its W_2 is not "
                             "tied to W_1 (the theorems need W_2 = I - W_1 A)")
        if family == "alista":
            mu = float(model.coherence())
            if not self.s < sparsity_limit(mu):
                raise ValueError(f"X(B, s = {self.s}) is outside ALISTA Thm 1 for this weight: it needs "
                                 f"s < (1 + 1/mu)/2 = {sparsity_limit(mu):.4g} (mu = {mu:.4g}); declare a smaller s")

    def step_range(self, model: Any) -> tuple[float, float]:
        """The ALISTA step interval kept by the projection (Thm 1: (0, 2/(2 mu s - mu + 1)), with the margin)."""
        hi = alista_step_range(float(model.coherence()), self.s)
        return self.step_margin * hi, (1.0 - self.step_margin) * hi

    @torch.no_grad()
    def __call__(self, model: Any) -> None:
        """Project ``model`` in place: steps into the range (ALISTA), then thresholds up to the certified ones."""
        self.check_model(model)
        dtype = model.threshold.dtype

        def cast(v: float, up: bool = True) -> float:  # v as stored, rounded outward so storage never loses it
            t = torch.tensor(v, dtype=dtype)
            if (float(t) < v) if up else (float(t) > v):
                t = torch.nextafter(t, torch.tensor(float("inf") if up else -float("inf"), dtype=dtype))
            return float(t)

        if model.family == "alista":
            lo, hi = self.step_range(model)
            model.gamma.clamp_(cast(lo), cast(hi, up=False))
        const = alista_constants(model) if model.family == "alista" else layer_constants(model)

        th = project_thresholds(const["mu"], const["delta"], const["threshold"], self.s, self.B, self.sigma,
                                const["c_w"], self.slack, cast)
        model.threshold.copy_(torch.as_tensor(th, dtype=dtype, device=model.threshold.device))

    def to_dict(self) -> dict[str, Any]:
        return {"s": self.s, "B": self.B, "sigma": self.sigma, "step_margin": self.step_margin, "slack": self.slack}


def alista_constants(model: Any) -> dict[str, np.ndarray]:
    """Per-layer (mu_k, delta_k, c_k, theta_k) of an ALISTA model from ONE product W~^T A: its layer k has the
    weight gamma_k W~, so mu_k = gamma_k max_{i != j} |W~_i^T A_j|, delta_k = max_i |1 - gamma_k W~_i^T A_i|,
    c_k = gamma_k max |W~_ij| (exactly ``weight_constants(gamma_k W~, A)``, K times cheaper than
    ``layer_constants``; the float32 rounding of gamma_k W~ that the check sees, about 6e-8 relative, is covered
    by the region's slack)."""
    w = model.weight_matrix.detach().cpu().double().numpy()
    g = w.T @ np.asarray(model.problem.A, dtype=np.float64)
    diag = np.diag(g).copy()
    np.fill_diagonal(g, 0.0)
    off = float(np.abs(g).max()) if g.shape[0] > 1 else 0.0
    gammas = model.gamma.detach().cpu().double().numpy()
    return {"mu": gammas * off, "delta": np.array([float(np.max(np.abs(1.0 - gk * diag))) for gk in gammas]),
            "c_w": gammas * float(np.abs(w).max()),
            "threshold": model.threshold.detach().cpu().double().numpy()}


def certify_lista(model: Any, region: ListaRegion, num_samples: int = 512,
                  rng: np.random.Generator | int | None = 0) -> ListaReport:
    """The certificate recomputed from scratch for a (trained) model on ``region``'s class: ``check_lista_model``
    (constants from the weights in float64, the registry's bounds with every assumption checked, the
    measured max error per layer on ``num_samples`` samples of X(B, s)). ``report.guarantee`` is True when a
    bound applies and holds at every layer."""
    region.check_model(model)
    return check_lista_model(model, region.s, region.B, region.sigma, positive_int("num_samples", num_samples), rng)
