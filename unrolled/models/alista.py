"""Paradigm 4 (DNN inductive bias): ALISTA, analytic weights with learned step sizes and thresholds.

Liu, Chen, Wang & Yin (ICLR 2019), "ALISTA: Analytic Weights Are As Good As Learned Weights in LISTA",
eq. (16), with the support selection of the authors' implementation (VITA-Group/ALISTA
``utils/models/ALISTA.py``: ``shrink_ss(x + alpha W^T (y - A x), theta, p^k)``):

    x^{k+1} = eta^ss_{theta^k, p^k}(x^k - gamma^k W~^T (A x^k - y)),    p^k = min(p (k + 1), p_max),

where W~ is computed once from A (Stage 1, eq. (17): ``alista_weights.frobenius_weight``; or the exact
generalized-coherence minimiser of eq. (8), ``alista_weights.coherence_weight_fast``, certified per column,
with the LP reference ``coherence_weight``) and stays fixed; only the
2K scalars gamma^k and theta^k are learned (Stage 2). Theorem 1 of the paper (eqs. (10)-(11)) gives linear
convergence for gamma^k in (0, 2/(2 mu~ s - mu~ + 1)) and theta^k = gamma^k mu~ sup ||x^k - x*||_1.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch

from unfoldkit.unrolled.models.alista_weights import WEIGHTS, generalized_coherence
from unfoldkit.unrolled.models.base import ParamInfo, UnfoldedModel
from unfoldkit.unrolled.models.common import (
    default_step,
    json_schedule,
    l1_weight,
    layer_values,
    parameter,
    percent_arg,
    require_linear,
    support_schedule,
    to_numpy,
)
from unfoldkit.unrolled.models.lista import SS_MAX_PERCENT, SS_PERCENT, LinearLayersMixin
from unfoldkit.unrolled.operators import soft_threshold_ss, soft_threshold_top_count
from unfoldkit.unrolled.problems.base import Problem
from unfoldkit.unrolled.steps import lista_cp_step
from unfoldkit.unrolled.validation import positive_int

Tensor = torch.Tensor


def support_count_schedule(counts: Any, num_layers: int, n: int) -> np.ndarray:
    """Per-layer support-selection counts: ``num_layers`` integers in [0, n] (ValueError otherwise)."""
    try:
        arr = np.asarray(counts, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.shape != (num_layers,) or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        raise ValueError(f"support_counts must be {num_layers} integers (one per layer), got {counts!r}")
    if arr.min() < 0 or arr.max() > n:
        raise ValueError(f"support_counts must lie in [0, n = {n}], got {arr.astype(np.int64).tolist()}")
    return arr.astype(np.int64)


def na_alista_counts(expected_sparsity: float, num_layers: int) -> np.ndarray:
    """The NA-ALISTA support-selection counts p^k = int(linspace((1.2 s) // K, 1.2 s, K)), s = E||x||_0.

    Behrens, Sauder & Jung (ICLR 2021) code, ``run.py``: ``np.linspace((s * 1.2) // k, s * 1.2, k).astype(int)``;
    for s = 50, K = 16: [3, 6, 10, 14, 18, 22, 25, 29, 33, 37, 41, 44, 48, 52, 56, 60].
    """
    s12 = 1.2 * float(expected_sparsity)
    num_layers = positive_int("num_layers", num_layers)
    return np.linspace(s12 // num_layers, s12, num_layers).astype(np.int64)


class Alista(LinearLayersMixin, UnfoldedModel):
    """ALISTA: x^{k+1} = eta^ss_{theta^k, p^k}(x^k - gamma^k W^T (A x^k - y)) with W fixed and analytic.

    ``weight`` names W: "frobenius" (eq. (17), the default, as in the paper's experiments), "coherence"
    (the exact minimiser of the generalized coherence, eq. (8), by the certified fast path: seconds for
    250 x 500, cached by matrix hash; "coherence-lp" is the n-LP reference), "frobenius-na" (the
    NA-ALISTA authors' truncated projected-gradient approximation of eq. (17),
    ``alista_weights.na_alista_frobenius_weight``: to reproduce their logs) or "dictionary"
    (W = A: then gamma = 1/L, theta = lam/L, p = 0 is ISTA). W is a buffer (saved in the state dict), not
    a parameter. Learned: gamma^k and theta^k, one per layer. Support selection ``percent`` /
    ``max_percent`` as in LISTA-CPSS (defaults 1.2 % and 13 %, the authors' ``-p 1.2 -maxp 13``).
    Initial values: gamma^k = ``step`` (default 1, the authors' ``alpha`` init) and theta^k = ``threshold``
    (default lam/L, the authors' ``lam / (1.001 ||A||^2)`` without the 1.001). Needs a SparseRecovery (or a
    LeastSquares, lam = 0). ``from_classical`` returns the ISTA instance (W = A, gamma = 1/L, p = 0).

    ``support_counts`` (one integer per layer) switches to the NA-ALISTA authors' count-based selection
    (``operators.soft_threshold_top_count``: entries above the count-th largest magnitude pass, count - 1
    of them, no |v| > theta condition) and replaces ``percent`` / ``max_percent``; ``na_alista_counts``
    gives their schedule linspace(1.2 s // K, 1.2 s, K).
    """

    family = "alista"
    paradigm = "inductive-bias"

    def __init__(self, problem: Problem, num_layers: int, weight: str = "frobenius", step: Any = 1.0,
                 threshold: Any = None, percent: float = SS_PERCENT, max_percent: float = SS_MAX_PERCENT,
                 support_counts: Any = None, dtype: torch.dtype | str = torch.float32) -> None:
        super().__init__(problem, num_layers, dtype)
        lin = require_linear(problem, self.family)
        lam = l1_weight(problem, self.family)
        if weight not in WEIGHTS:
            raise ValueError(f"weight must be one of {sorted(WEIGHTS)}, got {weight!r}")
        self.weight = weight
        gammas = default_step(problem, step, self.num_layers)
        thr = layer_values("threshold", lam / lin.L if threshold is None else threshold, self.num_layers,
                           nonnegative=True)
        self.percent = percent_arg("percent", percent)
        self.max_percent = percent_arg("max_percent", max_percent)
        self.percents = support_schedule(self.percent, self.max_percent, self.num_layers)
        self.support_counts = None if support_counts is None else support_count_schedule(
            support_counts, self.num_layers, problem.n)
        self._args = {"weight": weight, "step": json_schedule(step), "threshold": json_schedule(threshold),
                      "percent": self.percent, "max_percent": self.max_percent,
                      "support_counts": None if self.support_counts is None else self.support_counts.tolist()}
        w = WEIGHTS[weight](lin.A)
        self.register_buffer("weight_matrix", torch.as_tensor(w, dtype=self.model_dtype).clone())
        self.gamma = parameter(gammas, self.model_dtype)
        self.threshold = parameter(thr, self.model_dtype)

    @classmethod
    def from_classical(cls, problem: Problem, num_layers: int, step: Any = None,
                       dtype: torch.dtype | str = torch.float32) -> "Alista":
        """ISTA as an ALISTA: W = A, gamma^k = step (default 1/L), theta^k = lam gamma^k, no support selection.

        (ISTA's weight is A, not an analytic one: build ``Alista(problem, K)`` for the analytic W~.)
        """
        steps = default_step(problem, step, positive_int("num_layers", num_layers))
        lam = l1_weight(problem, cls.family)
        if np.all(steps == steps[0]):
            gamma, theta = float(steps[0]), lam * float(steps[0])
        else:
            gamma, theta = steps.tolist(), (lam * steps).tolist()
        return cls(problem, num_layers, weight="dictionary", step=gamma, threshold=theta, percent=0.0,
                   max_percent=0.0, dtype=dtype)

    def coherence(self) -> float:
        """Generalized coherence mu(W, A) = max_{i != j} |w_i^T a_j| of the fixed weight (eq. (9)).

        ValueError if diag(W^T A) != 1 (e.g. ``weight="dictionary"`` on a matrix without unit columns).
        """
        return generalized_coherence(to_numpy(self.weight_matrix), self.problem.A, atol=1e-5)

    def layer_weights(self, k: int) -> tuple[Tensor, Tensor]:
        """(W_1^k, W_2^k) = (gamma^k W^T, I - gamma^k W^T A): the LISTA form of layer k (coupled)."""
        k = self._layer_index(k)
        w1 = self.gamma[k] * self.weight_matrix.T
        a = self.problem.matrix(w1)
        return w1, torch.eye(self.problem.n, dtype=w1.dtype, device=w1.device) - w1 @ a

    def _layer(self, k: int, state: Tensor, y: Tensor) -> Tensor:
        a = self.problem.matrix(state)
        if self.support_counts is not None:
            shrink = partial(soft_threshold_top_count, count=int(self.support_counts[k]))
        else:
            shrink = partial(soft_threshold_ss, percent=float(self.percents[k]))
        return lista_cp_step(state, y, a, self.weight_matrix, self.threshold[k], step=self.gamma[k],
                             shrink=shrink)

    def config(self) -> dict[str, Any]:
        return {"num_layers": self.num_layers, **self._args, "dtype": self.dtype_name}

    def schedule(self) -> dict[str, np.ndarray]:
        if self.support_counts is not None:
            return {"step": to_numpy(self.gamma), "threshold": to_numpy(self.threshold),
                    "support_count": self.support_counts.astype(np.float64)}
        return {"step": to_numpy(self.gamma), "threshold": to_numpy(self.threshold),
                "percent": self.percents.copy()}

    def parameter_info(self) -> list[ParamInfo]:
        k = self.num_layers
        return [ParamInfo("gamma", (k,), True, False, "step size gamma^k of layer k"),
                ParamInfo("threshold", (k,), True, False, "soft threshold theta^k of layer k"),
                ParamInfo("weight_matrix", tuple(self.weight_matrix.shape), False, True,
                          f"analytic weight W~ (m x n, '{self.weight}'), fixed, shared by all layers")]
