"""Paradigm 1 (learned hyperparameters): LRPCA, ScaledGD with thresholding and learned per-layer
thresholds zeta_k and step sizes eta_k (Cai, Liu & Yin, NeurIPS 2021, "Learned Robust PCA: A Scalable Deep
Unfolding Approach for High-Dimensional Outlier Detection", Alg. 1 unfolded; the authors' code
``caesarcai/LRPCA`` learns the same two scalars per layer):

    S_0 = T_{zeta_0}(M),  (U_0, V_0) = top-r SVD of M - S_0 (balanced factors)
    S_k = T_{zeta_k}(M - U_{k-1} V_{k-1}^T)
    (U_k, V_k) = ``scaledgd_step`` with step eta_k,   L_k = U_k V_k^T.

Layer k (1-based) owns zeta_k and eta_k; layer 1 also owns zeta_0. At ``from_classical`` the thresholds are
the geometric zeta_k = zeta_0 decay^k and the steps constant: the model then equals ``run_scaledgd``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from unfoldkit.unrolled.problems.rpca import RobustPCA
from unfoldkit.unrolled.rpca import scaledgd_init, scaledgd_step
from unfoldkit.unrolled.rpca_models.base import RpcaUnfolded, as_parameter
from unfoldkit.unrolled.validation import positive_int, positive_real


def default_zeta0(n1: int, n2: int) -> float:
    """The initial threshold used when none is given: sqrt(2 log(n1 n2)), the typical largest |entry| of a
    matrix of n1 n2 entries of unit root mean square (``RobustPCA`` scales L0 so), i.e. an estimate of
    ||L0||_inf, the first threshold of LRPCA's recovery theorem (Cai, Liu & Yin 2021)."""
    return math.sqrt(2.0 * math.log(max(n1 * n2, 2)))


def geometric_thresholds(zeta0: float, decay: float, num_layers: int) -> np.ndarray:
    """zeta_k = zeta0 decay^k, k = 0..K (length K + 1)."""
    zeta0 = positive_real("zeta0", zeta0)
    decay = positive_real("decay", decay)
    if decay >= 1:
        raise ValueError(f"decay must lie in (0, 1), got {decay!r}")
    return zeta0 * decay ** np.arange(num_layers + 1)


class Lrpca(RpcaUnfolded):
    """LRPCA: ``rank`` r, ``num_layers`` K, thresholds ``zeta`` (K + 1 values: zeta_0 for the
    initialisation, then one per layer) and steps ``eta`` (K values), each a scalar or a sequence."""

    family = "lrpca"
    paradigm = "hyperparameters"
    classical = "scaledgd"

    def __init__(self, rank: int, num_layers: int, zeta: Any = 1.0, eta: Any = 0.5,
                 dtype: torch.dtype | str = torch.float32) -> None:
        super().__init__(num_layers, dtype)
        self.rank = positive_int("rank", rank)
        self.zeta = as_parameter(zeta, self.num_layers + 1, "zeta", self.model_dtype)
        self.eta = as_parameter(eta, self.num_layers, "eta", self.model_dtype)

    @classmethod
    def from_classical(cls, problem: RobustPCA, num_layers: int, zeta0: float | None = None,
                       decay: float = 0.7, eta: float = 0.5, dtype: torch.dtype | str = torch.float32) -> "Lrpca":
        """``run_scaledgd(M, rank, K, zeta0, decay, eta)`` as a network (zeta0 defaults to ``default_zeta0``)."""
        num_layers = positive_int("num_layers", num_layers)
        zeta0 = default_zeta0(problem.n1, problem.n2) if zeta0 is None else zeta0
        return cls(problem.rank, num_layers, geometric_thresholds(zeta0, decay, num_layers),
                   positive_real("eta", eta), dtype)

    def _check_input(self, M: torch.Tensor) -> torch.Tensor:
        M = super()._check_input(M)
        if self.rank > min(M.shape[-2:]):
            raise ValueError(f"{self.family}: rank {self.rank} exceeds min(n1, n2) = {min(M.shape[-2:])}")
        return M

    def _init_state(self, M: torch.Tensor) -> Any:
        return scaledgd_init(M, self.rank, self.zeta[0])

    def _layer(self, k: int, state: Any, M: torch.Tensor) -> Any:
        U, V, _ = state
        return scaledgd_step(U, V, M, self.zeta[k + 1], self.eta[k])

    def _pair(self, state: Any) -> tuple[torch.Tensor, torch.Tensor]:
        U, V, S = state
        return U @ V.mT, S

    def schedule(self) -> dict[str, np.ndarray]:
        return {"zeta": self.zeta.detach().double().cpu().numpy(), "eta": self.eta.detach().double().cpu().numpy()}

    def _trajectory_params(self) -> dict[str, Any]:
        return {"rank": self.rank}

    def _meanings(self) -> dict[str, str]:
        return {"zeta": "ScaledGD's sparse threshold (an estimate of ||L0 - L_k||_inf in the recovery theorem)",
                "eta": "ScaledGD's step size"}

    def config(self) -> dict[str, Any]:
        return {"rank": self.rank, "num_layers": self.num_layers, "zeta": self.schedule()["zeta"].tolist(),
                "eta": self.schedule()["eta"].tolist(), "dtype": self.dtype_name}
