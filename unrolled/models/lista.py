"""Paradigm 4 (DNN inductive bias): LISTA, LISTA-CP and LISTA-CPSS, layers whose matrices are learned.

Notation: A in R^{m x n} (the papers' A, or D in ALISTA), observation y (their b), iterate x; batches are
rows, so A x is ``x @ A.T``. The three models and their sources:

- ``Lista`` ("lista"), Gregor & LeCun (ICML 2010), as written in Chen, Liu, Wang & Yin (NeurIPS 2018),
  eq. (4), and Liu et al. (ICLR 2019), eq. (4):  x^{k+1} = eta_{theta^k}(W_1^k y + W_2^k x^k);
  ISTA is W_1 = A^T/L, W_2 = I - A^T A/L, theta = lam/L (Chen et al., eq. (3) and the text before (4);
  Liu et al., the text after (4)).
- ``ListaCP`` ("lista-cp"), Chen et al. 2018, restated as eq. (6) of Liu et al. 2019:
  x^{k+1} = eta_{theta^k}(x^k + (W^k)^T (y - A x^k)), W^k in R^{m x n}: W_1 = (W^k)^T, W_2 = I - W_1 A
  holds by construction: the weight coupling Chen et al. prove necessary for convergence (their Thm 1).
- ``ListaCPSS`` ("lista-cpss"), Chen et al. 2018: LISTA-CP whose shrinkage is eta^ss (support selection,
  ``operators.soft_threshold_ss``): the p^k % largest-magnitude entries above theta^k bypass the threshold,
  p^k = min(p (k+1), p_max), authors' defaults p = 1.2 %, p_max = 13 % (the LISTA-CPSS command of the
  VITA-Group/ALISTA README, ``--net LISTA_cpss -T 16 -p 1.2 -maxp 13``; the schedule in
  VITA-Group/LISTA-CPSS ``models/LISTA_cpss.py``; the operator in its ``utils/tf.py::shrink_ss``).

All three iterate ``steps.lista_step`` / ``steps.lista_cp_step``, the latter being the proximal-gradient
step of ISTA with the residual W^T (A x - y) in place of A^T (A x - y).
"""
from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch

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
from unfoldkit.unrolled.operators import soft_threshold, soft_threshold_ss
from unfoldkit.unrolled.problems.base import Problem
from unfoldkit.unrolled.steps import lista_cp_step, lista_step
from unfoldkit.unrolled.validation import positive_int

Tensor = torch.Tensor

#: the authors' support-selection defaults, in percent (``-p 1.2 -maxp 13`` in the VITA-Group/ALISTA README)
SS_PERCENT = 1.2
SS_MAX_PERCENT = 13.0


class LinearLayersMixin:
    """Shared by the LISTA family: each layer is eta(W_1^k y + W_2^k x) for some (W_1^k, W_2^k).

    Subclasses define ``layer_weights(k) -> (W_1^k, W_2^k)`` (shapes (n, m) and (n, n)).
    """

    num_layers: int
    problem: Any

    def _init_schedules(self, problem: Problem, tied: Any, step: Any, threshold: Any,
                        shared: str) -> tuple[Any, np.ndarray, np.ndarray]:
        """Validate the constructor arguments shared by LISTA and LISTA-CP; set ``tied`` and ``_args``.

        Returns the linear problem, the initial per-layer steps (default 1/L) and thresholds (default
        lam * step, the ISTA values)."""
        lin = require_linear(problem, self.family)
        lam = l1_weight(problem, self.family)
        if not isinstance(tied, bool):
            raise ValueError(f"tied must be a bool, got {tied!r}")
        steps = default_step(problem, step, self.num_layers)
        if tied and np.any(steps != steps[0]):
            raise ValueError(f"a tied {self.family.upper()} shares one {shared}: its initial step must be one value")
        thr = layer_values("threshold", lam * steps if threshold is None else threshold, self.num_layers,
                           nonnegative=True)
        self.tied = tied
        self._args = {"tied": tied, "step": json_schedule(step), "threshold": json_schedule(threshold)}
        return lin, steps, thr

    def _layer_index(self, k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < self.num_layers:
            raise ValueError(f"layer index must be an integer in [0, {self.num_layers - 1}], got {k!r}")
        return k

    def coupling_residuals(self) -> np.ndarray:
        """r_k = ||W_2^k - (I - W_1^k A)||_F / ||W_2^k||_F per layer (Chen et al. 2018, Thm 1: -> 0 is necessary).

        Computed in the model's dtype, the way the layers compute I - W_1 A, so that it is exactly 0 for the
        coupled models (LISTA-CP, LISTA-CPSS, ALISTA), whose W_2 *is* that expression.
        """
        out = np.empty(self.num_layers)
        with torch.no_grad():
            for k in range(self.num_layers):
                w1, w2 = self.layer_weights(k)
                a = self.problem.matrix(w1)
                eye = torch.eye(self.problem.n, dtype=w1.dtype, device=w1.device)
                num = float(torch.linalg.norm(w2 - (eye - w1 @ a)))
                out[k] = num / max(float(torch.linalg.norm(w2)), float(np.finfo(np.float64).tiny))
        return out


def analytic_init(problem: Problem, num_layers: int, weight: str, step: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """(W~ (m x n), gamma_k (K,), theta) for initialising a LISTA-family model at ALISTA's analytic weight
    (Liu et al. 2019, eqs. (16)-(17)): W~ = ``alista_weights.WEIGHTS[weight](A)``, gamma_k = ``step``
    (default 1, ALISTA's), theta^k = lam / L (ALISTA's initial threshold). The model then starts as the
    untrained ALISTA with the same weight (tests/test_models_lista.py)."""
    from unfoldkit.unrolled.models.alista_weights import WEIGHTS

    lin = require_linear(problem, "analytic initialisation")
    if weight not in WEIGHTS:
        raise ValueError(f"weight must be one of {sorted(WEIGHTS)}, got {weight!r}")
    gammas = default_step(problem, 1.0 if step is None else step, positive_int("num_layers", num_layers))
    return WEIGHTS[weight](lin.A), gammas, l1_weight(problem, "analytic initialisation") / lin.L


class Lista(LinearLayersMixin, UnfoldedModel):
    """LISTA (Gregor & LeCun 2010): x^{k+1} = eta_{theta^k}(W_1^k y + W_2^k x^k), W_1^k, W_2^k, theta^k learned.

    Untied by default (one W_1^k in R^{n x m} and W_2^k in R^{n x n} per layer); ``tied=True`` shares one
    (W_1, W_2) across layers (thresholds stay per layer, as in the authors' code). Since x^0 = 0, the first
    layer is eta(W_1^0 y) (Gregor & LeCun's Z(0) = h(W_e X)) and W_2 exists for layers 1..K-1 only; for
    reports, W_2^0 is taken equal to I - W_1^0 A (any value gives the same network). Initial values:
    ISTA with step gamma_k (default 1/L): W_1 = gamma A^T, W_2 = I - gamma A^T A, theta = gamma lam.
    Needs a SparseRecovery (or a LeastSquares, where lam = 0).
    """

    family = "lista"
    paradigm = "inductive-bias"

    def __init__(self, problem: Problem, num_layers: int, tied: bool = False, step: Any = None,
                 threshold: Any = None, dtype: torch.dtype | str = torch.float32) -> None:
        super().__init__(problem, num_layers, dtype)
        lin, steps, thr = self._init_schedules(problem, tied, step, threshold, "(W_1, W_2)")
        a, eye = lin.A, np.eye(lin.n)
        w1 = [g * a.T for g in steps]
        w2 = [eye - g * (a.T @ a) for g in steps]
        k = self.num_layers
        self.W1 = parameter(w1[0] if tied else np.stack(w1), self.model_dtype)
        if tied:
            self.W2 = parameter(w2[0], self.model_dtype) if k > 1 else None
        else:
            self.W2 = parameter(np.stack(w2[1:]), self.model_dtype) if k > 1 else None
        self.threshold = parameter(thr, self.model_dtype)

    @classmethod
    def from_classical(cls, problem: Problem, num_layers: int, tied: bool = False, step: Any = None,
                       dtype: torch.dtype | str = torch.float32) -> "Lista":
        """ISTA weights (W_1 = gamma A^T, W_2 = I - gamma A^T A, theta = gamma lam; gamma = 1/L by default)."""
        return cls(problem, num_layers, tied=tied, step=step, dtype=dtype)

    @classmethod
    def from_analytic(cls, problem: Problem, num_layers: int, weight: str = "frobenius", step: Any = None,
                      dtype: torch.dtype | str = torch.float32) -> "Lista":
        """Initialised at ALISTA's analytic weight (``analytic_init``): W_1^k = gamma_k W~^T,
        W_2^k = I - gamma_k W~^T A, theta^k = lam / L: the untrained ALISTA's iterates (without support
        selection). The architecture and training are LISTA's; only the starting point changes."""
        w, gammas, theta = analytic_init(problem, num_layers, weight, step)
        model = cls(problem, num_layers, threshold=theta, dtype=dtype)
        a = require_linear(problem, cls.family).A
        with torch.no_grad():
            model.W1.copy_(torch.as_tensor(np.stack([g * w.T for g in gammas])))
            if model.W2 is not None:
                eye = np.eye(a.shape[1])
                model.W2.copy_(torch.as_tensor(np.stack([eye - g * (w.T @ a) for g in gammas[1:]])))
        return model

    def _w1(self, k: int) -> Tensor:
        return self.W1 if self.tied else self.W1[k]

    def _w2(self, k: int) -> Tensor | None:
        if k == 0 or self.W2 is None:
            return None
        return self.W2 if self.tied else self.W2[k - 1]

    def layer_weights(self, k: int) -> tuple[Tensor, Tensor]:
        """(W_1^k, W_2^k), shapes (n, m) and (n, n); at k = 0, W_2^0 := I - W_1^0 A (immaterial, x^0 = 0)."""
        k = self._layer_index(k)
        w1 = self._w1(k)
        w2 = self._w2(k)
        if w2 is None:  # layer 0 sees x^0 = 0: W_2^0 is immaterial, report the coupled value
            a = self.problem.matrix(w1)
            w2 = torch.eye(self.problem.n, dtype=w1.dtype, device=w1.device) - w1 @ a
        return w1, w2

    def _layer(self, k: int, state: Tensor, y: Tensor) -> Tensor:
        return lista_step(state, y, self._w1(k), self._w2(k), self.threshold[k])

    def config(self) -> dict[str, Any]:
        return {"num_layers": self.num_layers, **self._args, "dtype": self.dtype_name}

    def schedule(self) -> dict[str, np.ndarray]:
        return {"threshold": to_numpy(self.threshold)}

    def parameter_info(self) -> list[ParamInfo]:
        k = self.num_layers
        info = [ParamInfo("W1", tuple(self.W1.shape), True, self.tied,
                          "W_1 (n x m), " + ("shared by all layers" if self.tied else "one per layer"))]
        if self.W2 is not None:
            info.append(ParamInfo("W2", tuple(self.W2.shape), True, self.tied,
                                  "W_2 (n x n), " + ("shared by layers 1..K-1" if self.tied
                                                     else "one per layer k = 1..K-1 (x^0 = 0)")))
        info.append(ParamInfo("threshold", (k,), True, False, "soft threshold theta^k of layer k"))
        return info


class ListaCP(LinearLayersMixin, UnfoldedModel):
    """LISTA-CP (Chen et al. 2018): x^{k+1} = eta_{theta^k}(x^k + (W^k)^T (y - A x^k)), W^k in R^{m x n}.

    The coupled form of LISTA: W_1^k = (W^k)^T and W_2^k = I - W_1^k A hold by construction (Liu et al.
    2019, eq. (6)). Untied by default; ``tied=True`` shares one W. Initial values: ISTA with step gamma_k
    (default 1/L): W^k = gamma_k A, theta^k = gamma_k lam (the authors initialise W = A^T/(1.001 L) in
    their (n, m) orientation). Needs a SparseRecovery (or a LeastSquares, where lam = 0).
    """

    family = "lista-cp"
    paradigm = "inductive-bias"

    def __init__(self, problem: Problem, num_layers: int, tied: bool = False, step: Any = None,
                 threshold: Any = None, dtype: torch.dtype | str = torch.float32) -> None:
        super().__init__(problem, num_layers, dtype)
        lin, steps, thr = self._init_schedules(problem, tied, step, threshold, "W")
        w = steps[0] * lin.A if tied else np.stack([g * lin.A for g in steps])
        self.W = parameter(w, self.model_dtype)
        self.threshold = parameter(thr, self.model_dtype)

    @classmethod
    def from_classical(cls, problem: Problem, num_layers: int, tied: bool = False, step: Any = None,
                       dtype: torch.dtype | str = torch.float32) -> "ListaCP":
        """ISTA weights (W^k = gamma A, theta^k = gamma lam; gamma = 1/L by default): ``run_ista``'s iterates."""
        return cls(problem, num_layers, tied=tied, step=step, dtype=dtype)

    @classmethod
    def from_analytic(cls, problem: Problem, num_layers: int, weight: str = "frobenius", step: Any = None,
                      dtype: torch.dtype | str = torch.float32, **kwargs: Any) -> "ListaCP":
        """Initialised at ALISTA's analytic weight (``analytic_init``; Liu et al. 2019 propose this coupling of
        LISTA-CP and ALISTA, eq. (16)): W^k = gamma_k W~ and theta^k = lam / L, so W_2^k = I - W_1^k A stays
        exact. At initialisation the iterates are the untrained ALISTA's with the same weight and support
        selection (``kwargs``: ``percent``, ``max_percent`` for LISTA-CPSS)."""
        w, gammas, theta = analytic_init(problem, num_layers, weight, step)
        model = cls(problem, num_layers, threshold=theta, dtype=dtype, **kwargs)
        with torch.no_grad():
            model.W.copy_(torch.as_tensor(np.stack([g * w for g in gammas])))
        return model

    def _wk(self, k: int) -> Tensor:
        return self.W if self.tied else self.W[k]

    def layer_weights(self, k: int) -> tuple[Tensor, Tensor]:
        """(W_1^k, W_2^k) = ((W^k)^T, I - (W^k)^T A): the LISTA form of the coupled layer k."""
        k = self._layer_index(k)
        w1 = self._wk(k).T
        a = self.problem.matrix(w1)
        return w1, torch.eye(self.problem.n, dtype=w1.dtype, device=w1.device) - w1 @ a

    def _shrink(self, k: int) -> Any:
        return soft_threshold

    def _layer(self, k: int, state: Tensor, y: Tensor) -> Tensor:
        a = self.problem.matrix(state)
        return lista_cp_step(state, y, a, self._wk(k), self.threshold[k], shrink=self._shrink(k))

    def config(self) -> dict[str, Any]:
        return {"num_layers": self.num_layers, **self._args, "dtype": self.dtype_name}

    def schedule(self) -> dict[str, np.ndarray]:
        return {"threshold": to_numpy(self.threshold)}

    def parameter_info(self) -> list[ParamInfo]:
        return [ParamInfo("W", tuple(self.W.shape), True, self.tied,
                          "W (m x n) of x + W^T (y - A x), " + ("shared by all layers" if self.tied
                                                                 else "one per layer")),
                ParamInfo("threshold", (self.num_layers,), True, False, "soft threshold theta^k of layer k")]


class ListaCPSS(ListaCP):
    """LISTA-CPSS (Chen et al. 2018): LISTA-CP with support selection eta^ss_{theta^k, p^k}.

        x^{k+1} = eta^ss_{theta^k, p^k}(x^k + (W^k)^T (y - A x^k)),   p^k = min(p (k + 1), p_max),

    where eta^ss keeps the entries above theta^k that are among the p^k % largest magnitudes and
    soft-thresholds the rest (``operators.soft_threshold_ss``, the authors' ``shrink_ss``). ``percent`` p and
    ``max_percent`` p_max are in percent, in [0, 100] (defaults 1.2 and 13, the authors' commands). They are fixed,
    not learned. ``from_classical`` switches support selection off (p = 0) so that the iterates are ISTA's;
    pass ``percent=`` / ``max_percent=`` to it to keep it on.
    """

    family = "lista-cpss"
    paradigm = "inductive-bias"

    def __init__(self, problem: Problem, num_layers: int, percent: float = SS_PERCENT,
                 max_percent: float = SS_MAX_PERCENT, tied: bool = False, step: Any = None,
                 threshold: Any = None, dtype: torch.dtype | str = torch.float32) -> None:
        super().__init__(problem, num_layers, tied=tied, step=step, threshold=threshold, dtype=dtype)
        self.percent = percent_arg("percent", percent)
        self.max_percent = percent_arg("max_percent", max_percent)
        self.percents = support_schedule(self.percent, self.max_percent, self.num_layers)
        self._args = {"percent": self.percent, "max_percent": self.max_percent, **self._args}

    @classmethod
    def from_classical(cls, problem: Problem, num_layers: int, tied: bool = False, step: Any = None,
                       dtype: torch.dtype | str = torch.float32, percent: float = 0.0,
                       max_percent: float = 0.0) -> "ListaCPSS":
        """ISTA weights and no support selection (p = 0): ``run_ista``'s iterates."""
        return cls(problem, num_layers, percent=percent, max_percent=max_percent, tied=tied, step=step,
                   dtype=dtype)

    def _shrink(self, k: int) -> Any:
        return partial(soft_threshold_ss, percent=float(self.percents[k]))

    def schedule(self) -> dict[str, np.ndarray]:
        return {"threshold": to_numpy(self.threshold), "percent": self.percents.copy()}
