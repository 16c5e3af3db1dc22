"""Certified Lipschitz constants of an unfolded model with respect to its parameters, per layer [derived].

Feeds the covering-number bound of digest 3.1 (Dudley: N(H, eps) <= (1 + 2 K_Theta R_Theta / eps)^d needs
||x_k(theta; y) - x_k(theta'; y)|| <= K_Theta ||theta - theta'|| for all ||y|| <= B_y and theta, theta' in
Theta); the recursion is digest section 4.6 (/work/shared/reference/theory_formulas.md).

[derived] LISTA-type layer x_{k+1} = eta_{theta_k}(W2^k x_k + W1^k y), x_0 = 0, with eta_t the soft
thresholding at t >= 0. Facts: ||eta_t(z)|| <= ||z||; eta_t is 1-Lipschitz in z; per coordinate
|eta_t(z)_i - eta_t'(z)_i| <= |t_i - t'_i|, so in l2 the threshold moves x by <= sqrt(n) |dt| for a scalar
threshold and by <= ||dt||_2 for a per-coordinate one. ||dW||_2 <= ||dW||_F.

Parameter set: Theta = {theta' : ||theta'_b - theta_b|| <= r_b for every block b} (Frobenius / l2 / absolute
value) around the model's current parameters theta, with a radius r_g >= 0 per parameter group g (a group is
the name of a block without its layer index: W1, W2, W, gamma, step, threshold, weights, lam). On Theta the
spectral norms are at most the current ones plus the radius, ||W'|| <= ||W|| + r (learned steps:
||gamma' M|| <= (|gamma| + r) ||M||). Then, for every ||y|| <= B_y and theta, theta' in Theta:

    a_0 = 0,  a_{k+1} = (||W1^k|| + r_W1) B_y + (||W2^k|| + r_W2) a_k        (sup of ||x_k||),
    Delta_0 = 0,
    Delta_{k+1} <= ||dW1^k|| B_y + ||dW2^k|| a_k + (||W2^k|| + r_W2) Delta_k + sqrt(n) |dtheta_k|,

from x_{k+1} - x'_{k+1} = [eta_t(z) - eta_t(z')] + [eta_t(z') - eta_t'(z')] and
z - z' = dW1 y + dW2 x_k + W2' (x_k - x'_k). The thresholds must stay >= 0 on Theta (a negative threshold
makes eta discontinuous): ValueError otherwise. Unrolled, Delta_k <= sum_b kappa[k, b] ||theta_b - theta'_b||
with kappa[k+1, :] = (||W2^k|| + r_W2) kappa[k, :] + (forcing of layer k), linear in the block sizes; a block
shared by several layers (tied weights) collects the sum of its per-layer coefficients. By Cauchy-Schwarz,
K_Theta(k) = ||kappa[k, :]||_2 w.r.t. the Euclidean norm of the concatenated parameter vector.

At radius 0 (the default) Theta = {theta}: the constants are then local, i.e. they bound the parameter
derivative at theta (limsup_{theta' -> theta} ||x_k(theta') - x_k(theta)|| / ||theta' - theta||), being the
limit of the radius-r constants, each valid on its Theta, as r -> 0.

Parametrizations (how each layer's dW1, dW2, dtheta depend on the learned blocks):

- "lista" (``Lista``): blocks W1[k], W2[k] (k >= 1; W2^0 is immaterial since x_0 = 0), threshold[k];
  tied: one W1 and one W2.
- "lista-cp", "lista-cpss" (support selection off): W[k] (m x n), W1 = W^T, W2 = I - W^T A, so
  ||dW1|| = ||dW||, ||dW2|| <= ||A|| ||dW||, and ||W2'|| <= ||W2|| + ||A|| r_W.
- "alista" (support selection off): gamma[k], threshold[k], W~ fixed: ||dW1|| = |dgamma| ||W~||,
  ||dW2|| = |dgamma| ||W~^T A||.
- "ista-learned-step": step[k] (W1 = gamma A^T, W2 = I - gamma A^T A: ||dW1|| = |dgamma| ||A||,
  ||dW2|| = |dgamma| ||A||^2) and threshold[k] if learned; otherwise theta_k = lam gamma_k, and step[k]
  gains lam sqrt(n).
- "ista-weighted-l1" (solver "ista"): per-coordinate thresholds theta = gamma w, shared by every layer, W1
  and W2 fixed. The model learns log w; the constant is stated w.r.t. w itself (block "weights", or "lam"
  for ``learn="lambda"``, where theta = gamma lam 1 gains sqrt(n)).

Support selection and momentum/ADMM/correction models are not covered (ValueError: discontinuous, or
NotImplementedError). Matrices are read in float64; the constants are those of the exact-arithmetic map with
the model's stored parameters; spectral norms (LAPACK SVD) carry a 1e-12 relative margin for round-off.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import numpy as np
import torch

from unfoldkit.unrolled.models.alista import Alista
from unfoldkit.unrolled.models.learned_step import IstaLearnedStep
from unfoldkit.unrolled.models.lista import Lista, ListaCP, ListaCPSS
from unfoldkit.unrolled.models.objective import IstaWeightedL1
from unfoldkit.unrolled.problems.linear import LinearInverseProblem

#: relative margin on every spectral norm (float64 SVD is backward stable to ~1e-15)
NORM_MARGIN = 1e-12

#: families that are not covered, with the reason
NOT_COVERED = {
    "fista-unfolded": "momentum couples two iterates; not covered yet",
    "admm-unfolded": "rho enters through (A^T A + rho I)^{-1} and a dual state; not covered yet",
    "gd-unfolded": "the gradient of a general problem is not a fixed linear map; not covered yet",
    "ista-correction": "the learned correction MLPs are not a LISTA-type layer; not covered yet",
}


@dataclass
class ParameterLipschitz:
    """Per-layer parameter-Lipschitz certificate (module docstring): for every ||y|| <= data_radius and every
    theta, theta' in Theta, ||x_k(theta) - x_k(theta')|| <= sum_b kappa[k-1, b] ||theta_b - theta'_b||_F
    <= euclidean[k-1] ||theta - theta'||_2 and ||x_k|| <= output_radius[k-1], k = 1..K."""

    family: str
    data_radius: float
    radius: dict[str, float]
    blocks: list[str]
    kappa: np.ndarray
    euclidean: np.ndarray
    output_radius: np.ndarray
    num_parameters: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (arrays as nested lists)."""
        return {"family": self.family, "data_radius": self.data_radius, "radius": dict(self.radius),
                "blocks": list(self.blocks), "kappa": self.kappa.tolist(), "euclidean": self.euclidean.tolist(),
                "output_radius": self.output_radius.tolist(), "num_parameters": self.num_parameters}


@dataclass
class _Layer:
    """Layer k: w1, w2 bound ||W1'||, ||W2'|| on Theta (w2 = 0 at layer 0); terms (block, c_B, c_a, c_t) make the
    forcing sum_b (c_B B_y + c_a a_k + c_t) ||dtheta_b||."""

    w1: float
    w2: float
    terms: list[tuple[str, float, float, float]] = field(default_factory=list)


def _np(t: Any) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(t, dtype=np.float64)


def _norm(a: Any) -> float:
    a = _np(a)
    return 0.0 if a.size == 0 else float(np.linalg.norm(a, 2)) * (1.0 + NORM_MARGIN)


def group_radii(radius: float | dict[str, float], groups: list[str], label: str = "radius") -> dict[str, float]:
    """One radius per parameter group from a number (every group) or a dict (missing groups: 0); ValueError
    naming ``label`` for an unknown group or a radius that is not a finite real >= 0."""
    if isinstance(radius, dict):
        unknown = sorted(set(radius) - set(groups))
        if unknown:
            raise ValueError(f"{label}: unknown group(s) {unknown}; the groups are {groups}")
        out = {g: radius.get(g, 0.0) for g in groups}
    else:
        out = {g: radius for g in groups}
    for g, r in out.items():
        if isinstance(r, bool) or not isinstance(r, Real) or not math.isfinite(r) or r < 0:
            raise ValueError(f"{label}[{g!r}] must be a finite real >= 0, got {r!r}")
    return {g: float(r) for g, r in out.items()}


def _check_thresholds(values: np.ndarray, r: float, name: str) -> None:
    bad = np.flatnonzero(values - r < 0)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}[{i}] = {values[i]:.6g} minus radius {r:.6g} is < 0: a negative threshold makes "
                         f"soft thresholding discontinuous; take a smaller threshold radius")


def _no_support_selection(model: Any) -> None:
    counts = getattr(model, "support_counts", None)
    if counts is not None or np.any(np.asarray(model.percents) != 0):
        raise ValueError(f"{model.family} with support selection is discontinuous in its parameters: no finite "
                         f"constant (use percent = max_percent = 0 and no support_counts)")


def _lista(model: Lista, rad: dict[str, float]) -> list[_Layer]:
    n, layers = model.problem.n, []
    thr = _np(model.threshold)
    _check_thresholds(thr, rad["threshold"], "threshold")
    for k in range(model.num_layers):
        w1, w2 = model.layer_weights(k)
        lay = _Layer(_norm(w1) + rad["W1"], _norm(w2) + rad["W2"] if k > 0 else 0.0)
        lay.terms.append(("W1" if model.tied else f"W1[{k}]", 1.0, 0.0, 0.0))
        if k > 0:
            lay.terms.append(("W2" if model.tied else f"W2[{k}]", 0.0, 1.0, 0.0))
        lay.terms.append((f"threshold[{k}]", 0.0, 0.0, math.sqrt(n)))
        layers.append(lay)
    return layers


def _lista_cp(model: ListaCP, rad: dict[str, float]) -> list[_Layer]:
    if isinstance(model, ListaCPSS):
        _no_support_selection(model)
    n, norm_a, layers = model.problem.n, _norm(model.problem.A), []
    _check_thresholds(_np(model.threshold), rad["threshold"], "threshold")
    for k in range(model.num_layers):
        w1, w2 = model.layer_weights(k)
        lay = _Layer(_norm(w1) + rad["W"], _norm(w2) + norm_a * rad["W"] if k > 0 else 0.0)
        lay.terms += [("W" if model.tied else f"W[{k}]", 1.0, norm_a, 0.0),
                      (f"threshold[{k}]", 0.0, 0.0, math.sqrt(n))]
        layers.append(lay)
    return layers


def _alista(model: Alista, rad: dict[str, float]) -> list[_Layer]:
    _no_support_selection(model)
    w_t = _np(model.weight_matrix)
    n, nw, nwa, layers = model.problem.n, _norm(w_t), _norm(w_t.T @ model.problem.A), []
    gam = _np(model.gamma)
    _check_thresholds(_np(model.threshold), rad["threshold"], "threshold")
    for k in range(model.num_layers):
        _, w2 = model.layer_weights(k)
        lay = _Layer((abs(gam[k]) + rad["gamma"]) * nw, _norm(w2) + rad["gamma"] * nwa if k > 0 else 0.0)
        lay.terms += [(f"gamma[{k}]", nw, nwa, 0.0), (f"threshold[{k}]", 0.0, 0.0, math.sqrt(n))]
        layers.append(lay)
    return layers


def _linear_problem(model: Any) -> LinearInverseProblem:
    if not isinstance(model.problem, LinearInverseProblem):
        raise NotImplementedError(f"{model.family}: only covered on a linear inverse problem (a fixed A); "
                                  f"got {model.problem!r}")
    return model.problem


def _ista_learned_step(model: IstaLearnedStep, rad: dict[str, float]) -> list[_Layer]:
    prob = _linear_problem(model)
    a, n, lam = prob.A, prob.n, float(model.lam)
    norm_a, gram, eye = _norm(a), a.T @ a, np.eye(prob.n)
    steps = _np(model.step)
    learned = model.threshold is not None
    if learned:
        _check_thresholds(_np(model.threshold), rad["threshold"], "threshold")
    elif lam > 0:
        _check_thresholds(lam * steps, lam * rad["step"], "threshold = lam step")
    layers = []
    for k in range(model.num_layers):
        g = float(steps[k])
        lay = _Layer((abs(g) + rad["step"]) * norm_a,
                     _norm(eye - g * gram) + rad["step"] * norm_a ** 2 if k > 0 else 0.0)
        lay.terms.append((f"step[{k}]", norm_a, norm_a ** 2, 0.0 if learned else lam * math.sqrt(n)))
        if learned:
            lay.terms.append((f"threshold[{k}]", 0.0, 0.0, math.sqrt(n)))
        layers.append(lay)
    return layers


def _ista_weighted_l1(model: IstaWeightedL1, rad: dict[str, float]) -> list[_Layer]:
    if model.solver != "ista":
        raise NotImplementedError(f"ista-weighted-l1 (solver={model.solver!r}): momentum couples two iterates; "
                                  f"not covered yet")
    prob = _linear_problem(model)
    gamma, a, n = float(model.gamma), prob.A, prob.n
    w1, w2 = abs(gamma) * _norm(a), _norm(np.eye(n) - gamma * (a.T @ a))
    if model.learn == "weights":
        _check_thresholds(model.weights(), rad["weights"], "weights")
        term = ("weights", 0.0, 0.0, abs(gamma))
    else:
        _check_thresholds(np.atleast_1d(_np(model.l1_weights())), rad["lam"], "lam")
        term = ("lam", 0.0, 0.0, abs(gamma) * math.sqrt(n))
    return [_Layer(w1, w2 if k > 0 else 0.0, [term]) for k in range(model.num_layers)]


def _groups_and_sizes(model: Any) -> tuple[list[str], dict[str, int]]:
    """Radius groups of the model and the number of scalars of each block (distinct blocks)."""
    k, n, m = model.num_layers, model.problem.n, model.problem.m
    if isinstance(model, Lista):
        groups = ["W1", "W2", "threshold"] if k > 1 else ["W1", "threshold"]
        sizes = {"W1": n * m} if model.tied else {f"W1[{j}]": n * m for j in range(k)}
        if k > 1:
            sizes.update({"W2": n * n} if model.tied else {f"W2[{j}]": n * n for j in range(1, k)})
        return groups, {**sizes, **{f"threshold[{j}]": 1 for j in range(k)}}
    if isinstance(model, ListaCP):
        sizes = {"W": m * n} if model.tied else {f"W[{j}]": m * n for j in range(k)}
        return ["W", "threshold"], {**sizes, **{f"threshold[{j}]": 1 for j in range(k)}}
    if isinstance(model, Alista):
        return ["gamma", "threshold"], {**{f"gamma[{j}]": 1 for j in range(k)},
                                        **{f"threshold[{j}]": 1 for j in range(k)}}
    if isinstance(model, IstaLearnedStep):
        sizes = {f"step[{j}]": 1 for j in range(k)}
        if model.threshold is None:
            return ["step"], sizes
        return ["step", "threshold"], {**sizes, **{f"threshold[{j}]": 1 for j in range(k)}}
    if isinstance(model, IstaWeightedL1):
        return ([["weights"], {"weights": n}] if model.learn == "weights" else [["lam"], {"lam": 1}])
    family = getattr(model, "family", type(model).__name__)
    reason = NOT_COVERED.get(family, "not a LISTA-type model; not covered yet")
    raise NotImplementedError(f"{family}: {reason}")


def parameter_lipschitz(model: Any, data_radius: float,
                        radius: float | dict[str, float] = 0.0) -> ParameterLipschitz:
    """Per-layer parameter-Lipschitz coefficients kappa[k-1, b] and output bounds a_k of ``model`` on
    ||y|| <= ``data_radius`` and Theta = {||theta'_b - theta_b|| <= radius[group of b]} (module docstring).

    ``radius``: one value for every group, or a dict group -> radius (groups left out: 0). Radius 0 gives the
    local constant (a bound on the parameter derivative at the current theta). ValueError: data_radius not a
    finite real > 0, a negative radius or unknown group, a threshold that can turn negative on Theta, support
    selection (discontinuous). NotImplementedError: a family that is not covered (FISTA, ADMM, GD, correction).
    """
    if isinstance(data_radius, bool) or not isinstance(data_radius, Real) or not math.isfinite(data_radius) \
            or data_radius <= 0:
        raise ValueError(f"data_radius must be a finite real > 0, got {data_radius!r}")
    b_y = float(data_radius)
    groups, sizes = _groups_and_sizes(model)
    rad = group_radii(radius, groups, f"{model.family}: radius")
    with torch.no_grad():
        if isinstance(model, Lista):
            layers = _lista(model, {"W2": 0.0, **rad})
        elif isinstance(model, ListaCP):
            layers = _lista_cp(model, rad)
        elif isinstance(model, Alista):
            layers = _alista(model, rad)
        elif isinstance(model, IstaLearnedStep):
            layers = _ista_learned_step(model, rad)
        else:
            layers = _ista_weighted_l1(model, rad)
    blocks = list(sizes)
    index = {b: i for i, b in enumerate(blocks)}
    num_layers = len(layers)
    kappa = np.zeros((num_layers, len(blocks)))
    out = np.zeros(num_layers)
    a_k, row = 0.0, np.zeros(len(blocks))
    for k, lay in enumerate(layers):
        force = np.zeros(len(blocks))
        for blk, c_b, c_a, c_t in lay.terms:
            force[index[blk]] += c_b * b_y + c_a * a_k + c_t
        row = lay.w2 * row + force          # Delta_{k+1} coefficients
        a_k = lay.w1 * b_y + lay.w2 * a_k   # a_{k+1}
        kappa[k], out[k] = row, a_k
    return ParameterLipschitz(family=model.family, data_radius=b_y, radius=rad, blocks=blocks, kappa=kappa,
                              euclidean=np.linalg.norm(kappa, axis=1), output_radius=out,
                              num_parameters=int(sum(sizes.values())))
