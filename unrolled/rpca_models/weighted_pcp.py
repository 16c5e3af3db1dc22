"""Paradigm 2 (learned objective parameters): PCP by ADMM on a learned objective

    min_{L, S} sum_i w_i sigma_i(L) + lam ||S||_1   s.t.   L + S = M,

with learned per-singular-value weights w (``num_weights`` values; index i >= num_weights uses the last
one) and a learned outlier weight lam, shared by every layer (they define one objective, which the layers
minimise). Each layer is ``pcp_admm_step`` with the weighted SVT (the exact proximal operator of the
weighted nuclear norm for non-descending weights, Gu et al. 2017, Thm 1, recalled) and the classical
penalty mu = n1 n2 / (4 ||M||_1) per instance (``pcp_default_penalty``; Candes et al. 2011, Sec. 5).

At ``from_classical`` w = 1 and lam = 1 / sqrt(max(n1, n2)): the model then equals ``run_pcp``. The
learned parameters keep their meaning: they are the objective's weights, so the trained network is still
(an unrolling of) ADMM on a convex problem while the weights stay non-increasing, and on the weighted
nuclear-norm problem whose prox is exact while they stay non-descending (reported by ``weight_order``).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from unfoldkit.unrolled.problems.rpca import RobustPCA
from unfoldkit.unrolled.rpca import pcp_admm_step, pcp_default_penalty
from unfoldkit.unrolled.rpca_models.base import RpcaUnfolded, as_parameter
from unfoldkit.unrolled.validation import positive_int, positive_real


class PcpWeighted(RpcaUnfolded):
    """ADMM for weighted PCP with learned objective weights ``weights`` (num_weights,) and ``lam``."""

    family = "pcp-weighted"
    paradigm = "objective"
    classical = "pcp-admm"

    def __init__(self, num_layers: int, lam: float, weights: Any = 1.0, num_weights: int = 10,
                 dtype: torch.dtype | str = torch.float32) -> None:
        super().__init__(num_layers, dtype)
        self.num_weights = positive_int("num_weights", num_weights)
        self.weights = as_parameter(weights, self.num_weights, "weights", self.model_dtype)
        self.lam = nn.Parameter(torch.tensor(positive_real("lam", lam), dtype=self.model_dtype))

    @classmethod
    def from_classical(cls, problem: RobustPCA, num_layers: int, num_weights: int = 10,
                       dtype: torch.dtype | str = torch.float32) -> "PcpWeighted":
        """``run_pcp(M, K)`` (lam = 1 / sqrt(max(n1, n2)), mu per instance) as a network."""
        return cls(num_layers, 1.0 / math.sqrt(max(problem.n1, problem.n2)), 1.0, num_weights, dtype)

    def singular_weights(self, p: int) -> torch.Tensor:
        """w_1..w_p: the learned weights, the last one repeated beyond ``num_weights``."""
        w = self.weights
        if p <= w.shape[0]:
            return w[:p]
        return torch.cat([w, w[-1].expand(p - w.shape[0])])

    def _init_state(self, M: torch.Tensor) -> Any:
        z = torch.zeros_like(M)
        return z, z, z, pcp_default_penalty(M), self.singular_weights(min(M.shape[-2:]))

    def _layer(self, k: int, state: Any, M: torch.Tensor) -> Any:
        L, S, Y, mu, w = state
        L, S, Y = pcp_admm_step(L, S, Y, M, self.lam, mu, w)
        return L, S, Y, mu, w

    def _pair(self, state: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return state[0], state[1]

    def weight_order(self) -> str:
        """"non-increasing" (convex objective), "non-descending" (weighted SVT is the exact prox), "constant"
        or "mixed" (neither holds: the layers are then a heuristic)."""
        w = self.weights.detach().double().cpu().numpy()
        d = np.diff(w)
        if np.all(d == 0):
            return "constant"
        if np.all(d <= 0):
            return "non-increasing"
        if np.all(d >= 0):
            return "non-descending"
        return "mixed"

    def _trajectory_params(self) -> dict[str, Any]:
        return {"lam": float(self.lam.detach()), "weights": self.weights.detach().double().cpu().tolist(),
                "weight_order": self.weight_order()}

    def _meanings(self) -> dict[str, str]:
        return {"weights": "weights of the (weighted) nuclear norm in the objective",
                "lam": "PCP's outlier weight lambda in the objective"}

    def config(self) -> dict[str, Any]:
        return {"num_layers": self.num_layers, "lam": float(self.lam.detach()),
                "weights": self.weights.detach().double().cpu().tolist(), "num_weights": self.num_weights,
                "dtype": self.dtype_name}
