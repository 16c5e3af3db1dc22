"""Paradigm 3 (learned correction terms): ScaledGD with thresholding whose sparse update is corrected by a
small learned network,

    S_k = T_{zeta_k}(X) + zeta_k c_k(X / zeta_k),   X = M - U_{k-1} V_{k-1}^T,

then (U_k, V_k) from ``scaledgd_step`` with the classical step eta. The correction c_k is an entrywise MLP
(1 -> ``hidden`` -> 1, tanh) whose output layer starts at zero, so the model starts as the classical solver
(``run_scaledgd``, thresholds zeta_k = zeta_0 decay^k and step eta kept fixed: only corrections are
learned). Acting entrywise on X / zeta_k, it is independent of the matrix size and scale, and
T + correction is a learned scalar shrinkage function per layer (plot it with ``shrinkage``). The step
itself is the one copy ``scaledgd_step`` with this corrected thresholding operator.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from unfoldkit.unrolled.models.common import layer_values
from unfoldkit.unrolled.problems.rpca import RobustPCA
from unfoldkit.unrolled.rpca import scaledgd_init, scaledgd_step, soft
from unfoldkit.unrolled.rpca_models.base import RpcaUnfolded
from unfoldkit.unrolled.rpca_models.lrpca import default_zeta0, geometric_thresholds
from unfoldkit.unrolled.validation import positive_int, positive_real


class EntrywiseCorrection(nn.Module):
    """c(x) = w2^T tanh(w1 x + b1) + b2 applied to every entry; zero output at initialisation."""

    def __init__(self, hidden: int, dtype: torch.dtype, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w1 = nn.Parameter(torch.randn(hidden, generator=g, dtype=torch.float64).to(dtype))
        self.b1 = nn.Parameter(torch.randn(hidden, generator=g, dtype=torch.float64).to(dtype))
        self.w2 = nn.Parameter(torch.zeros(hidden, dtype=dtype))
        self.b2 = nn.Parameter(torch.zeros((), dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x.unsqueeze(-1) * self.w1 + self.b1) @ self.w2 + self.b2


class ScaledGdCorrection(RpcaUnfolded):
    """ScaledGD (fixed classical ``zeta`` (K + 1) and ``eta``) plus a learned correction per layer."""

    family = "scaledgd-correction"
    paradigm = "correction"
    classical = "scaledgd"

    def __init__(self, rank: int, num_layers: int, zeta: Any, eta: float = 0.5, hidden: int = 16,
                 seed: int = 0, dtype: torch.dtype | str = torch.float32) -> None:
        super().__init__(num_layers, dtype)
        self.rank = positive_int("rank", rank)
        self.hidden = positive_int("hidden", hidden)
        self.seed = int(seed)
        z = layer_values("zeta", zeta, self.num_layers + 1, positive=True)
        self.register_buffer("zeta", torch.as_tensor(z, dtype=self.model_dtype))
        self.eta = positive_real("eta", eta)
        self.corrections = nn.ModuleList(EntrywiseCorrection(self.hidden, self.model_dtype, self.seed + k)
                                         for k in range(self.num_layers))

    @classmethod
    def from_classical(cls, problem: RobustPCA, num_layers: int, zeta0: float | None = None,
                       decay: float = 0.7, eta: float = 0.5, hidden: int = 16, seed: int = 0,
                       dtype: torch.dtype | str = torch.float32) -> "ScaledGdCorrection":
        """``run_scaledgd(M, rank, K, zeta0, decay, eta)`` plus zero corrections."""
        num_layers = positive_int("num_layers", num_layers)
        zeta0 = default_zeta0(problem.n1, problem.n2) if zeta0 is None else zeta0
        return cls(problem.rank, num_layers, geometric_thresholds(zeta0, decay, num_layers), eta, hidden,
                   seed, dtype)

    def shrinkage(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Layer k's corrected thresholding T_{zeta}(x) + zeta c_k(x / zeta), x any shape."""
        z = self.zeta[k + 1]
        return soft(x, z) + z * self.corrections[k](x / z)

    def _init_state(self, M: torch.Tensor) -> Any:
        return scaledgd_init(M, self.rank, self.zeta[0])

    def _layer(self, k: int, state: Any, M: torch.Tensor) -> Any:
        U, V, _ = state
        return scaledgd_step(U, V, M, self.zeta[k + 1], self.eta, threshold=lambda X, z: self.shrinkage(k, X))

    def _pair(self, state: Any) -> tuple[torch.Tensor, torch.Tensor]:
        U, V, S = state
        return U @ V.mT, S

    def schedule(self) -> dict[str, np.ndarray]:
        return {"zeta": self.zeta.double().cpu().numpy(), "eta": np.full(self.num_layers, self.eta)}

    def _trajectory_params(self) -> dict[str, Any]:
        return {"rank": self.rank}

    def _meanings(self) -> dict[str, str]:
        return {"corrections": ""}

    def config(self) -> dict[str, Any]:
        return {"rank": self.rank, "num_layers": self.num_layers, "zeta": self.zeta.double().cpu().tolist(),
                "eta": self.eta, "hidden": self.hidden, "seed": self.seed, "dtype": self.dtype_name}
