"""Paradigm 2 (objective parameters): ISTA (or FISTA) on a learned objective.

``IstaWeightedL1`` ("ista-weighted-l1") runs the *classical* ISTA, step 1/L, of the learned objective

    F_w(x; y) = 0.5 ||A x - y||^2 + sum_i w_i |x_i|,      w_i >= 0,

so what is learned is the objective (its regularization weights), not the algorithm: each layer is an exact
ISTA step on F_w (``steps.proximal_gradient_step``; the prox of the separable gamma sum_i w_i |x_i| acts
coordinatewise and is soft thresholding at gamma w_i). With w = lam 1 it is ISTA on the LASSO (Beck &
Teboulle 2009; Chen et al. 2018, eq. (3)). With ``solver="fista"`` the classical solver of F_w is FISTA
(``steps.fista_step`` with the Beck-Teboulle momentum), still with nothing but the objective learned.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from unfoldkit.unrolled.models.base import ParamInfo, UnfoldedModel
from unfoldkit.unrolled.models.common import parameter, real_arg, require_lasso, to_numpy
from unfoldkit.unrolled.operators import soft_threshold
from unfoldkit.unrolled.problems.base import Problem
from unfoldkit.unrolled.steps import fista_momentum, fista_step, proximal_gradient_step
from unfoldkit.unrolled.validation import finite_array, positive_real

Tensor = torch.Tensor

#: what ``IstaWeightedL1`` learns: one weight per coordinate, or a single lambda
LEARN_MODES = ("weights", "lambda")
#: the classical solver of the learned objective that the layers iterate
SOLVERS = ("ista", "fista")


class IstaWeightedL1(UnfoldedModel):
    """K steps of ISTA (step 1/L) on 0.5||Ax - y||^2 + sum_i w_i |x_i| with learned weights w >= 0.

    ``learn="weights"``: w in R^n, parametrized as w = exp(log_w) so that it stays positive;
    ``learn="lambda"``: a single weight lam = exp(log_lam) shared by every coordinate (w = lam 1).
    The objective is one for all layers (the parameter is tied). ``weights`` gives the initial w (a
    positive scalar or a length-n sequence; default the problem's lam); ``step`` the fixed step (default
    1/L, the classical ISTA of F_w, whose smooth part is the problem's f); ``solver`` "ista" (default) or
    "fista" (Beck-Teboulle momentum). Needs a SparseRecovery.
    """

    family = "ista-weighted-l1"
    paradigm = "objective"

    def __init__(self, problem: Problem, num_layers: int, learn: str = "weights", weights: Any = None,
                 step: float | None = None, solver: str = "ista",
                 dtype: torch.dtype | str = torch.float32) -> None:
        super().__init__(problem, num_layers, dtype)
        lasso = require_lasso(problem, self.family)
        if learn not in LEARN_MODES:
            raise ValueError(f"learn must be one of {LEARN_MODES}, got {learn!r}")
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
        self.learn = learn
        self.solver = solver
        self._betas = fista_momentum(self.num_layers)
        self.gamma = 1.0 / lasso.L if step is None else positive_real("step", real_arg("step", step))
        n = lasso.n
        if weights is None:
            init = np.full(1 if learn == "lambda" else n, lasso.lam)
        else:
            init = np.atleast_1d(finite_array("weights", weights)).astype(np.float64)
            if init.ndim != 1 or init.size not in ((1,) if learn == "lambda" else (1, n)):
                want = "a positive scalar" if learn == "lambda" else f"a positive scalar or {n} positive values"
                raise ValueError(f"weights must be {want}, got shape {np.shape(weights)}")
            if np.any(init <= 0):
                raise ValueError(f"weights must be > 0 (they are learned as exp(log w)), got min {init.min()!r}")
            if learn == "weights" and init.size == 1:
                init = np.full(n, float(init[0]))
        self._args = {"learn": learn, "weights": None if weights is None else init.tolist(),
                      "step": None if step is None else self.gamma, "solver": solver}
        if learn == "weights":
            self.log_weights = parameter(np.log(init), self.model_dtype)
        else:
            self.log_lam = parameter(np.log(init[0]), self.model_dtype)

    @classmethod
    def from_classical(cls, problem: Problem, num_layers: int, learn: str = "weights", solver: str = "ista",
                       dtype: torch.dtype | str = torch.float32) -> "IstaWeightedL1":
        """w = lam 1 and step 1/L: the iterates of ``run_ista`` (``run_fista`` with solver="fista") on the LASSO."""
        return cls(problem, num_layers, learn=learn, solver=solver, dtype=dtype)

    def l1_weights(self) -> Tensor:
        """The current weights w (shape (n,) when learned per coordinate, () for a single lambda)."""
        return torch.exp(self.log_weights if self.learn == "weights" else self.log_lam)

    def weights(self) -> np.ndarray:
        """The current weights w as a float64 array of shape (n,)."""
        w = to_numpy(self.l1_weights())
        return np.full(self.problem.n, float(w)) if w.ndim == 0 else w

    def _init_state(self, y: Tensor) -> Any:
        x0 = self.problem.initial_point(y)
        return (x0, x0) if self.solver == "fista" else x0

    def _readout(self, state: Any) -> Tensor:
        return state[0] if self.solver == "fista" else state

    def _layer(self, k: int, state: Any, y: Tensor) -> Any:
        thr = self.gamma * self.l1_weights()
        grad_fn = lambda v: self.problem.grad(v, y)  # noqa: E731
        prox = lambda v: soft_threshold(v, thr)  # noqa: E731
        if self.solver == "fista":
            x, x_prev = state
            return fista_step(x, x_prev, grad_fn, self.gamma, float(self._betas[k]), prox), x
        return proximal_gradient_step(state, grad_fn, self.gamma, prox)

    def objective(self, x: Tensor, y: Tensor) -> Tensor:
        """The learned objective F_w(x; y) = f(x; y) + sum_i w_i |x_i| for each row, shape (B,)."""
        w = self.l1_weights().to(dtype=x.dtype, device=x.device)
        return self.problem.smooth(x, y) + (w * x.abs()).sum(dim=-1)

    def config(self) -> dict[str, Any]:
        return {"num_layers": self.num_layers, **self._args, "dtype": self.dtype_name}

    def schedule(self) -> dict[str, np.ndarray]:
        out = {"step": np.full(self.num_layers, self.gamma)}
        if self.learn == "lambda":
            out["threshold"] = np.full(self.num_layers, self.gamma * float(to_numpy(self.l1_weights())))
        return out

    def parameter_info(self) -> list[ParamInfo]:
        if self.learn == "weights":
            return [ParamInfo("log_weights", (self.problem.n,), True, True,
                              "log of the per-coordinate l1 weights w_i of the objective (w = exp(log_w))")]
        return [ParamInfo("log_lam", (), True, True, "log of the single l1 weight lam of the objective")]
