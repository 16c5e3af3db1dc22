"""``lemma:NAME`` stress targets: each inequality of ``proofs_check.lemmas`` on random data it should hold for.

Params are seeds and sizes; the data (vectors, thresholds, problems) are rebuilt from them, in float64.
Tolerances are those of the lemma functions (absolute, round-off of float64 on values of order <= 1e3).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from hypothesis import strategies as st

from unfoldkit.proofs_check import lemmas
from unfoldkit.proofs_check.stress_targets import Params, StressTarget, _floats, _ints, _seed
from unfoldkit.unrolled.models.alista_weights import frobenius_weight
from unfoldkit.unrolled.problems import LeastSquares, SparseRecovery

ROWS = 8

_vectors = st.fixed_dictionaries({"n": _ints(1, 20), "scale": _floats(1e-3, 1e2), "threshold": _floats(0.0, 10.0),
                                  "seed": _seed})
_problems = st.fixed_dictionaries({"m": _ints(1, 12), "n": _ints(1, 12), "kappa": st.one_of(st.none(), _floats(1.0, 1e3)),
                                   "scale": _floats(1e-2, 10.0), "step_factor": _floats(1e-3, 1.0), "seed": _seed})
_lista = st.fixed_dictionaries({"m": _ints(4, 14), "extra": _ints(0, 8), "s": _ints(1, 3), "B": _floats(0.1, 10.0),
                                "slack": _floats(1e-6, 2.0), "seed": _seed})


def _vtol(p: Params) -> float:
    """64 ulps of the largest term of the vector inequalities: ||u||^2 ~ scale^2 n and theta ||u||_1 ~ theta scale n."""
    return 64 * float(np.finfo(np.float64).eps) * (1 + p["n"] * p["scale"] * (p["scale"] + p["threshold"]))


def _gen(p: Params) -> np.random.Generator:
    return np.random.default_rng(p["seed"])


def _pair(p: Params) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(p)
    u = torch.as_tensor(p["scale"] * g.standard_normal((ROWS, p["n"])))
    return u, torch.as_tensor(p["scale"] * g.standard_normal((ROWS, p["n"])))


def _problem(p: Params) -> Any:
    if p["kappa"] is not None:
        n = p["n"]
        return LeastSquares(m=max(p["m"], n), n=n, kappa=p["kappa"], seed=p["seed"])
    return SparseRecovery(m=p["m"], n=max(p["n"], 2), seed=p["seed"])


def _points(p: Params, problem: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = _gen(p)
    x = torch.as_tensor(p["scale"] * g.standard_normal((ROWS, problem.n)))
    z = torch.as_tensor(p["scale"] * g.standard_normal((ROWS, problem.n)))
    return x, z, problem.sample(ROWS, rng=p["seed"]).y


def _on_problem(check: Callable) -> Callable[[Params], list]:
    def evaluate(p: Params) -> list:
        problem = _problem(p)
        return [check(problem, *_points(p, problem))]

    return evaluate


def _interpolation(p: Params) -> list:
    problem = _problem(p)
    if not problem.mu < problem.L:  # the inequality is stated for mu < L
        return []
    return [lemmas.interpolation_inequality(problem, *_points(p, problem))]


def _prox_grad(p: Params) -> list:
    problem = _problem(p)
    x, _, y = _points(p, problem)
    return [lemmas.proximal_gradient_decrease(problem, x, y, p["step_factor"] / problem.L)]


def _lista_step(p: Params) -> list:
    """Random x* in X(B, s), x with supp(x) in supp(x*), theta = mu ||x - x*||_1 (1 + slack)."""
    g = _gen(p)
    m, n = p["m"], p["m"] + p["extra"]
    a = g.standard_normal((m, n))
    a /= np.linalg.norm(a, axis=0, keepdims=True)
    w = torch.as_tensor(frobenius_weight(a))
    a_t = torch.as_tensor(a)
    gram = w.T @ a_t
    mu = float((gram - torch.diag(torch.diagonal(gram))).abs().max())
    s = min(p["s"], n)
    x_star = torch.zeros(ROWS, n, dtype=torch.float64)
    x = torch.zeros_like(x_star)
    for r in range(ROWS):
        support = g.choice(n, size=s, replace=False)
        x_star[r, support] = torch.as_tensor(g.uniform(-p["B"], p["B"], size=s))
        x[r, support] = torch.as_tensor(g.uniform(-p["B"], p["B"], size=s))
    theta = mu * (x - x_star).abs().sum(-1) * (1 + p["slack"]) + 1e-12
    return [lemmas.lista_cp_layer_step(w, a_t, x, x_star, theta)]


def _dims(p: Params) -> dict[str, int]:
    return {k: int(p[k]) for k in ("m", "n", "s") if k in p}


LEMMA_TARGETS: dict[str, StressTarget] = {t.name: t for t in (
    StressTarget("lemma:soft-threshold-firm", "firm nonexpansiveness of soft thresholding (Bauschke-Combettes "
                 "Prop. 12.28)", _vectors, lambda p: [lemmas.soft_threshold_firmly_nonexpansive(*_pair(p), p["threshold"], _vtol(p))],
                 _dims),
    StressTarget("lemma:soft-threshold-nonexpansive", "nonexpansiveness of soft thresholding", _vectors,
                 lambda p: [lemmas.soft_threshold_nonexpansive(*_pair(p), p["threshold"], _vtol(p))], _dims),
    StressTarget("lemma:prox-optimality", "Fermat's rule for the l1 prox", _vectors,
                 lambda p: [lemmas.prox_optimality_l1(_pair(p)[0], p["threshold"], _vtol(p))], _dims),
    StressTarget("lemma:prox-three-point", "three-point property of the l1 prox (Chen-Teboulle 1993)", _vectors,
                 lambda p: [lemmas.prox_three_point(*_pair(p), p["threshold"], _vtol(p))], _dims),
    StressTarget("lemma:descent", "descent lemma for L-smooth f (Nesterov 2004, Lemma 1.2.3)", _problems,
                 _on_problem(lemmas.descent_lemma), _dims),
    StressTarget("lemma:convexity", "first-order (mu-strong) convexity inequality", _problems,
                 _on_problem(lemmas.convexity_gradient_inequality), _dims),
    StressTarget("lemma:interpolation", "F_{mu,L} interpolation inequality (Taylor-Hendrickx-Glineur 2017, Thm 4)",
                 _problems, _interpolation, _dims),
    StressTarget("lemma:prox-grad-decrease", "sufficient decrease of a prox-gradient step, gamma <= 1/L "
                 "(Beck-Teboulle 2009, Lemma 2.3)", _problems, _prox_grad, _dims),
    StressTarget("lemma:lista-cp-step", "one LISTA-CP layer: no false positive and the l1 error recursion "
                 "(Chen et al. 2018, proof of Thm 2)", _lista, _lista_step, _dims),
)}
