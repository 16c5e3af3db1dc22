"""The linear-convergence bounds of a LISTA-family model, built from its own per-layer weights.

A model with ``layer_weights(k)`` and ``coupling_residuals()`` (LISTA, LISTA-CP, LISTA-CPSS, ALISTA) has per
layer an effective weight W^k; its constants (``theory.lista.weight_constants``) feed the certified per-layer
recursion (``theory.lista.model_recursion_bound``, derived from the proofs of Chen et al. 2018 Thm 2 and
Liu et al. 2019 Thm 1) and, for the analytic ALISTA weight, the theorem's own bound. The bounds speak of
||x_k - x*|| with x* the s-sparse signal of the class X(B, s) (noise ||eps||_1 <= sigma), not a minimizer.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from unfoldkit.theory.bound import Assumption, Bound
from unfoldkit.theory.lista import alista_bound, model_recursion_bound, sparsity_assumption, weight_constants

#: relative coupling residual below which W_2 = I - W_1 A counts as exact (float32 models: ~1e-7 round-off)
COUPLING_TOL = 1e-5


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


def coupling_assumption(const: dict[str, np.ndarray]) -> Assumption:
    """W_2^k = I - W_1^k A at every layer (Chen et al. 2018, Thm 1: necessary for convergence)."""
    r = float(np.max(const["coupling_residual"]))
    return Assumption("coupling W_2^k = I - W_1^k A", bool(r <= COUPLING_TOL), r,
                      f"max_k relative residual <= {COUPLING_TOL:g}")


def model_sparsity_assumption(const: dict[str, np.ndarray], s: int) -> Assumption:
    """s < (1 + 1/mu)/2 with mu the largest generalized coherence of the layers' weights at unit diagonal."""
    return sparsity_assumption(s, float(np.max(const["mu_normalized"])), "max_k mu of W^k at unit diagonal")


def recursion_bound(model: Any, const: dict[str, np.ndarray], s: int, B: float, sigma: float) -> Bound:
    """The certified per-layer recursion for the model's own weights and thresholds, with the coupling as
    an assumption (blank when the coupling fails: the recursion's derivation needs it)."""
    rec = model_recursion_bound(const["mu"], const["delta"], const["threshold"], s, B, sigma, const["c_w"],
                                name=f"{model.family}-recursion")
    return rec.with_assumptions(coupling_assumption(const))


def alista_theorem_bound(model: Any, const: dict[str, np.ndarray], s: int, B: float, sigma: float) -> Bound:
    """ALISTA Thm 1 (Liu et al. 2019) for the model's analytic weight, steps and thresholds, with the
    coupling (W_2 = I - gamma W~^T A, true by construction for ALISTA) as an assumption."""
    b = alista_bound(model.coherence(), s, B, const["step"], weight=getattr(model, "weight", "W"),
                     thresholds=const["threshold"], delta=0.0, sigma=sigma,
                     c_w=float(np.abs(model.weight_matrix.detach().cpu().double().numpy()).max()))
    return b.with_assumptions(coupling_assumption(const))


def roundoff_gain(model: Any) -> float:
    """1 + max_k ||W_1^k||_2 ||A||_2: how much a layer x+ = eta(W_2 x + W_1 y) can amplify float64 round-off
    of its input (a weight close to A^{-T} on an ill-conditioned square A makes it large)."""
    a = np.linalg.norm(np.asarray(model.problem.A, dtype=np.float64), 2)
    with torch.no_grad():
        w = max(float(torch.linalg.matrix_norm(model.layer_weights(k)[0].double().cpu(), ord=2))
                for k in range(model.num_layers))
    return 1.0 + w * a
