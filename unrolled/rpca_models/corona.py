"""Paradigm 4 (DNN inductive bias / learned operators): CORONA (Solomon, Cohen, Zhang, Jiao, Tong, Mischi,
Eldar et al. 2019, "Deep unfolded robust PCA with application to clutter suppression in ultrasound",
IEEE TMI), ISTA on the relaxed PCP problem with the linear operators replaced by learned convolutions:

    L_k = SVT_{tau_L,k}(P5_k * L_{k-1} + P3_k * S_{k-1} + P1_k * M)
    S_k = soft_{tau_S,k}(P6_k * S_{k-1} + P4_k * L_{k-1} + P2_k * M)

with 2-D kernels of size ``kernel`` x ``kernel`` (zero padding, one conv2d per layer with input channels
(L, S, M) and output channels (L, S)) and learned thresholds. At ``from_classical`` every kernel is a
centred delta times ISTA's coefficient (P5 = P6 = 1 - step, P3 = P4 = -step, P1 = P2 = step) and
tau_L = step lam_L, tau_S = step lam_S: the model then equals ``run_rpca_ista``. The thresholds keep their
meaning as SVT / soft thresholds; the kernels replace the gradient step and have none.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from unfoldkit.unrolled.problems.rpca import RobustPCA
from unfoldkit.unrolled.rpca import svt_soft
from unfoldkit.unrolled.rpca_models.base import RpcaUnfolded, as_parameter
from unfoldkit.unrolled.validation import positive_int, positive_real


def ista_kernels(num_layers: int, kernel: int, step: float, dtype: torch.dtype) -> torch.Tensor:
    """The kernels (K, 2, 3, k, k) that make a CORONA layer an ISTA step: out channel L = (1 - step) L -
    step S + step M, out channel S = -step L + (1 - step) S + step M, as centred deltas."""
    w = torch.zeros(num_layers, 2, 3, kernel, kernel, dtype=dtype)
    c = kernel // 2
    coef = torch.tensor([[1 - step, -step, step], [-step, 1 - step, step]], dtype=dtype)
    w[:, :, :, c, c] = coef
    return w


def default_lam_L(problem: RobustPCA) -> float:
    """lam_L = 0.1 sigma_1(L0) / sqrt(max(n1, n2)) with sigma_1(L0) = sqrt(n1 n2 / r) (``RobustPCA``'s scale),
    the problem-level counterpart of ``unrolled.rpca.default_ista_weights``; lam_S = lam_L / sqrt(max(n1, n2))."""
    return 0.1 * math.sqrt(problem.n1 * problem.n2 / problem.rank) / math.sqrt(max(problem.n1, problem.n2))


class Corona(RpcaUnfolded):
    """CORONA with learned kernels ``kernels`` (K, 2, 3, k, k) and thresholds ``tau_L``, ``tau_S`` (K,)."""

    family = "corona"
    paradigm = "inductive-bias"
    classical = "rpca-ista"

    def __init__(self, num_layers: int, tau_L: Any, tau_S: Any, kernel: int = 3, step: float = 0.5,
                 dtype: torch.dtype | str = torch.float32) -> None:
        super().__init__(num_layers, dtype)
        self.kernel = positive_int("kernel", kernel)
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (a centred kernel), got {kernel!r}")
        self.step = positive_real("step", step)
        self.kernels = nn.Parameter(ista_kernels(self.num_layers, self.kernel, self.step, self.model_dtype))
        self.tau_L = as_parameter(tau_L, self.num_layers, "tau_L", self.model_dtype)
        self.tau_S = as_parameter(tau_S, self.num_layers, "tau_S", self.model_dtype)

    @classmethod
    def from_classical(cls, problem: RobustPCA, num_layers: int, lam_L: float | None = None,
                       lam_S: float | None = None, step: float = 0.5, kernel: int = 3,
                       dtype: torch.dtype | str = torch.float32) -> "Corona":
        """``run_rpca_ista(M, K, lam_L, lam_S, step)`` as a network (defaults: ``default_lam_L``)."""
        lam_L = default_lam_L(problem) if lam_L is None else positive_real("lam_L", lam_L)
        lam_S = lam_L / math.sqrt(max(problem.n1, problem.n2)) if lam_S is None else positive_real("lam_S", lam_S)
        step = positive_real("step", step)
        if step > 0.5:
            raise ValueError(f"step must lie in (0, 1/2], got {step!r}")
        return cls(num_layers, step * lam_L, step * lam_S, kernel, step, dtype)

    def _init_state(self, M: torch.Tensor) -> Any:
        z = torch.zeros_like(M)
        return z, z

    def _layer(self, k: int, state: Any, M: torch.Tensor) -> Any:
        L, S = state
        x = torch.stack([L, S, M], dim=1)                          # (B, 3, n1, n2)
        y = F.conv2d(x, self.kernels[k], padding=self.kernel // 2)  # (B, 2, n1, n2)
        return svt_soft(y[:, 0], y[:, 1], self.tau_L[k], self.tau_S[k])

    def _pair(self, state: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return state

    def schedule(self) -> dict[str, np.ndarray]:
        return {"tau_L": self.tau_L.detach().double().cpu().numpy(),
                "tau_S": self.tau_S.detach().double().cpu().numpy()}

    def _meanings(self) -> dict[str, str]:
        return {"tau_L": "SVT threshold (step lam_L of ISTA)", "tau_S": "soft threshold (step lam_S of ISTA)",
                "kernels": ""}

    def config(self) -> dict[str, Any]:
        return {"num_layers": self.num_layers, "tau_L": self.schedule()["tau_L"].tolist(),
                "tau_S": self.schedule()["tau_S"].tolist(), "kernel": self.kernel, "step": self.step,
                "dtype": self.dtype_name}
