"""Paradigm 1 (hyperparameters): classical iterations whose per-layer scalars are learned.

Each model iterates the step function of ``unrolled/steps.py`` that its classical algorithm iterates in
``unrolled/solvers.py``, with one learned value per layer in place of the fixed one:

- ``IstaLearnedStep``  ("ista-learned-step"): x+ = eta_{theta_k}(x - gamma_k grad f(x)), gamma_k and theta_k
  learned (Ablin, Moreau, Massias & Gramfort 2019, "Learning step sizes for unfolded sparse coding",
  SLISTA, where theta_k = lam gamma_k; Ito, Takabe & Wadayama 2019, TISTA, learned step per layer);
- ``FistaUnfolded``    ("fista-unfolded"): FISTA (Beck & Teboulle 2009, Sec. 4) with learned gamma_k, beta_k;
- ``AdmmUnfolded``     ("admm-unfolded"): scaled ADMM for the LASSO (Boyd et al. 2011, Sec. 6.4) with learned
  rho_k and thresholds theta_k;
- ``GdUnfolded``       ("gd-unfolded"): gradient descent with learned gamma_k, on any Problem.

``from_classical`` initialises each at the classical algorithm (same iterates as ``run_ista``,
``run_fista``, ``run_admm``, ``run_gd`` up to round-off).
"""
from __future__ import annotations

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
    require_lasso,
    to_numpy,
)
from unfoldkit.unrolled.operators import soft_threshold
from unfoldkit.unrolled.problems.base import Problem
from unfoldkit.unrolled.problems.sparse import SparseRecovery
from unfoldkit.unrolled.steps import (
    admm_lasso_step,
    fista_momentum,
    fista_step,
    gradient_step,
    proximal_gradient_step,
)

Tensor = torch.Tensor


def _per_layer(name: str, shape: tuple[int, ...], meaning: str) -> ParamInfo:
    return ParamInfo(name, shape, learned=True, tied=False, meaning=meaning)


class IstaLearnedStep(UnfoldedModel):
    """ISTA with a learned step gamma_k and threshold theta_k per layer (paradigm "hyperparameters").

        x^{k+1} = eta_{theta_k}(x^k - gamma_k grad f(x^k))       (``steps.proximal_gradient_step``)

    With ``learn_threshold=False`` the threshold follows the step, theta_k = lam gamma_k: SLISTA of
    Ablin et al. (NeurIPS 2019, Sec. 4; code tomMoral/adopty), i.e. ISTA with a learned step schedule.
    Needs a problem whose regularizer is lam ||x||_1 (SparseRecovery) or zero (eta_0 is the identity).
    Initial values: ``step`` (default 1/L) and ``threshold`` (default lam gamma_k), i.e. ISTA.
    """

    family = "ista-learned-step"
    paradigm = "hyperparameters"

    def __init__(self, problem: Problem, num_layers: int, step: Any = None, threshold: Any = None,
                 learn_threshold: bool = True, dtype: torch.dtype | str = torch.float32) -> None:
        super().__init__(problem, num_layers, dtype)
        self.lam = l1_weight(problem, self.family)
        if not isinstance(learn_threshold, bool):
            raise ValueError(f"learn_threshold must be a bool, got {learn_threshold!r}")
        if not learn_threshold and threshold is not None:
            raise ValueError("threshold is set by the step (theta_k = lam gamma_k) when learn_threshold=False")
        steps = default_step(problem, step, self.num_layers)
        self._args = {"step": json_schedule(step), "threshold": json_schedule(threshold),
                      "learn_threshold": learn_threshold}
        self.step = parameter(steps, self.model_dtype)
        if learn_threshold:
            thr = layer_values("threshold", self.lam * steps if threshold is None else threshold,
                               self.num_layers, nonnegative=True)
            self.threshold = parameter(thr, self.model_dtype)
        else:
            self.threshold = None

    @classmethod
    def from_classical(cls, problem: Problem, num_layers: int, step: Any = None, learn_threshold: bool = True,
                       dtype: torch.dtype | str = torch.float32) -> "IstaLearnedStep":
        """ISTA with step ``step`` (default 1/L) and threshold lam * step: the iterates of ``run_ista``."""
        return cls(problem, num_layers, step=step, learn_threshold=learn_threshold, dtype=dtype)

    def thresholds(self) -> Tensor:
        """theta_k for every layer, shape (K,) (lam gamma_k when the threshold is not learned)."""
        return self.threshold if self.threshold is not None else self.lam * self.step

    def _layer(self, k: int, state: Tensor, y: Tensor) -> Tensor:
        theta = self.thresholds()[k]
        grad_fn = lambda v: self.problem.grad(v, y)  # noqa: E731
        return proximal_gradient_step(state, grad_fn, self.step[k], lambda v: soft_threshold(v, theta))

    def config(self) -> dict[str, Any]:
        return {"num_layers": self.num_layers, **self._args, "dtype": self.dtype_name}

    def schedule(self) -> dict[str, np.ndarray]:
        return {"step": to_numpy(self.step), "threshold": to_numpy(self.thresholds())}

    def parameter_info(self) -> list[ParamInfo]:
        k = self.num_layers
        info = [_per_layer("step", (k,), "step size gamma_k of layer k")]
        if self.threshold is not None:
            info.append(_per_layer("threshold", (k,), "soft threshold theta_k of layer k"))
        return info


class FistaUnfolded(UnfoldedModel):
    """FISTA with a learned step gamma_k and momentum beta_k per layer (paradigm "hyperparameters").

        z = x^k + beta_k (x^k - x^{k-1}),   x^{k+1} = prox_{gamma_k g}(z - gamma_k grad f(z))

    (``steps.fista_step``), the threshold being lam gamma_k as in classical FISTA (Beck & Teboulle 2009, Sec. 4). At layer 0
    x^0 - x^{-1} = 0, so beta_0 has no effect: it is not a parameter (``schedule()["momentum"][0] = 0``).
    Works on any Problem (its own prox). Initial values: ``step`` (default 1/L) and ``momentum``
    (default Beck-Teboulle's, ``steps.fista_momentum``).
    """

    family = "fista-unfolded"
    paradigm = "hyperparameters"

    def __init__(self, problem: Problem, num_layers: int, step: Any = None, momentum: Any = None,
                 dtype: torch.dtype | str = torch.float32) -> None:
        super().__init__(problem, num_layers, dtype)
        steps = default_step(problem, step, self.num_layers)
        betas = fista_momentum(self.num_layers) if momentum is None else layer_values(
            "momentum", momentum, self.num_layers)
        self._args = {"step": json_schedule(step), "momentum": json_schedule(momentum)}
        self.step = parameter(steps, self.model_dtype)
        self.momentum = parameter(betas[1:], self.model_dtype) if self.num_layers > 1 else None

    @classmethod
    def from_classical(cls, problem: Problem, num_layers: int, step: Any = None,
                       dtype: torch.dtype | str = torch.float32) -> "FistaUnfolded":
        """FISTA with step ``step`` (default 1/L) and Beck-Teboulle momentum: the iterates of ``run_fista``."""
        return cls(problem, num_layers, step=step, dtype=dtype)

    def _init_state(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x0 = self.problem.initial_point(y)
        return x0, x0

    def _layer(self, k: int, state: tuple[Tensor, Tensor], y: Tensor) -> tuple[Tensor, Tensor]:
        x, x_prev = state
        gamma = self.step[k]
        beta = self.momentum[k - 1] if k > 0 else 0.0
        grad_fn = lambda v: self.problem.grad(v, y)  # noqa: E731
        x_new = fista_step(x, x_prev, grad_fn, gamma, beta, lambda v: self.problem.prox(v, gamma))
        return x_new, x

    def _readout(self, state: tuple[Tensor, Tensor]) -> Tensor:
        return state[0]

    def config(self) -> dict[str, Any]:
        return {"num_layers": self.num_layers, **self._args, "dtype": self.dtype_name}

    def schedule(self) -> dict[str, np.ndarray]:
        steps = to_numpy(self.step)
        betas = np.zeros(self.num_layers)
        if self.momentum is not None:
            betas[1:] = to_numpy(self.momentum)
        out = {"step": steps, "momentum": betas}
        if isinstance(self.problem, SparseRecovery):
            out["threshold"] = self.problem.lam * steps
        return out

    def parameter_info(self) -> list[ParamInfo]:
        k = self.num_layers
        info = [_per_layer("step", (k,), "step size gamma_k of layer k (threshold lam gamma_k)")]
        if self.momentum is not None:
            info.append(_per_layer("momentum", (k - 1,), "momentum beta_k of layers k = 1..K-1"))
        return info


class AdmmUnfolded(UnfoldedModel):
    """Scaled ADMM for the LASSO with a learned penalty rho_k and threshold theta_k per layer.

        x = (A^T A + rho_k I)^{-1}(A^T y + rho_k (z - u)),  z+ = eta_{theta_k}(x + u),  u+ = u + x - z+
                                                                        (``steps.admm_lasso_step``)

    (Boyd et al. 2011, Sec. 6.4; classically theta = lam / rho). rho_k = exp(log_rho_k) > 0 keeps every
    x-update a well-posed solve. The trajectory records z_k, as ``run_admm`` does. Needs a SparseRecovery.
    Initial values: ``rho`` (default L) and ``threshold`` (default lam / rho_k).
    """

    family = "admm-unfolded"
    paradigm = "hyperparameters"

    def __init__(self, problem: Problem, num_layers: int, rho: Any = None, threshold: Any = None,
                 dtype: torch.dtype | str = torch.float32) -> None:
        super().__init__(problem, num_layers, dtype)
        lasso = require_lasso(problem, self.family)
        rhos = layer_values("rho", lasso.L if rho is None else rho, self.num_layers, positive=True)
        thr = layer_values("threshold", lasso.lam / rhos if threshold is None else threshold,
                           self.num_layers, nonnegative=True)
        self._args = {"rho": json_schedule(rho), "threshold": json_schedule(threshold)}
        self.log_rho = parameter(np.log(rhos), self.model_dtype)
        self.threshold = parameter(thr, self.model_dtype)

    @classmethod
    def from_classical(cls, problem: Problem, num_layers: int, rho: Any = None,
                       dtype: torch.dtype | str = torch.float32) -> "AdmmUnfolded":
        """ADMM with penalty ``rho`` (default L) and threshold lam / rho: the iterates of ``run_admm``."""
        return cls(problem, num_layers, rho=rho, dtype=dtype)

    def rho(self) -> Tensor:
        """rho_k = exp(log_rho_k) for every layer, shape (K,)."""
        return torch.exp(self.log_rho)

    def _init_state(self, y: Tensor) -> tuple[Tensor, ...]:
        z = self.problem.initial_point(y)
        w, v = self.problem.gram_eigh
        w_t, v_t = self.problem.cached_tensor("gram_w", w, z), self.problem.cached_tensor("gram_v", v, z)
        return z, torch.zeros_like(z), y @ self.problem.matrix(z), w_t, v_t

    def _layer(self, k: int, state: tuple[Tensor, ...], y: Tensor) -> tuple[Tensor, ...]:
        z, u, aty, w, v = state
        _, z, u = admm_lasso_step(z, u, aty, w, v, torch.exp(self.log_rho[k]), self.threshold[k])
        return z, u, aty, w, v

    def _readout(self, state: tuple[Tensor, ...]) -> Tensor:
        return state[0]

    def config(self) -> dict[str, Any]:
        return {"num_layers": self.num_layers, **self._args, "dtype": self.dtype_name}

    def schedule(self) -> dict[str, np.ndarray]:
        return {"rho": to_numpy(self.rho()), "threshold": to_numpy(self.threshold)}

    def parameter_info(self) -> list[ParamInfo]:
        k = self.num_layers
        return [_per_layer("log_rho", (k,), "log of the ADMM penalty rho_k of layer k"),
                _per_layer("threshold", (k,), "soft threshold theta_k of the z-update of layer k")]


class GdUnfolded(UnfoldedModel):
    """Gradient descent with a learned step gamma_k per layer, on any Problem (its smooth part f).

        x^{k+1} = x^k - gamma_k grad f(x^k)        (``steps.gradient_step``)

    The schedule is what performance estimation analyses exactly (``schedule()["step"]``; build one from
    a given schedule with ``from_steps``). Initial value: ``step`` (default 1/L), i.e. ``run_gd``.
    """

    family = "gd-unfolded"
    paradigm = "hyperparameters"

    def __init__(self, problem: Problem, num_layers: int, step: Any = None,
                 dtype: torch.dtype | str = torch.float32) -> None:
        super().__init__(problem, num_layers, dtype)
        steps = default_step(problem, step, self.num_layers)
        self._args = {"step": json_schedule(step)}
        self.step = parameter(steps, self.model_dtype)

    @classmethod
    def from_classical(cls, problem: Problem, num_layers: int, step: Any = None,
                       dtype: torch.dtype | str = torch.float32) -> "GdUnfolded":
        """Gradient descent with step ``step`` (default 1/L): the iterates of ``run_gd``."""
        return cls(problem, num_layers, step=step, dtype=dtype)

    @classmethod
    def from_steps(cls, problem: Problem, steps: Any, dtype: torch.dtype | str = torch.float32) -> "GdUnfolded":
        """A model with one layer per entry of ``steps`` (a non-empty 1-D sequence of positive finite reals)."""
        arr = np.asarray(steps.detach().cpu().numpy() if isinstance(steps, torch.Tensor) else steps,
                         dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"steps must be a non-empty 1-D sequence, got shape {arr.shape}")
        arr = layer_values("steps", arr, arr.size, positive=True)
        return cls(problem, int(arr.size), step=arr.tolist(), dtype=dtype)

    def _layer(self, k: int, state: Tensor, y: Tensor) -> Tensor:
        return gradient_step(state, lambda v: self.problem.grad(v, y), self.step[k])

    def config(self) -> dict[str, Any]:
        return {"num_layers": self.num_layers, **self._args, "dtype": self.dtype_name}

    def schedule(self) -> dict[str, np.ndarray]:
        return {"step": to_numpy(self.step)}

    def parameter_info(self) -> list[ParamInfo]:
        return [_per_layer("step", (self.num_layers,), "step size gamma_k of layer k")]
