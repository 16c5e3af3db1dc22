"""Error metrics shared by training, figures and benchmarks: NMSE (torch, differentiable), dB, and the
per-layer NMSE of a trajectory. NMSE = sum_b ||x_hat_b - x_b||^2 / sum_b ||x_b||^2 (batch ratio, as
in Chen et al. 2018 and the ALISTA code)."""
from __future__ import annotations

import math

import numpy as np
import torch


def nmse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Batch NMSE sum_b ||x_hat_b - x_b||^2 / sum_b ||x_b||^2 (a 0-d tensor; x = 0 gives inf or nan)."""
    return ((x_hat - x) ** 2).sum() / (x**2).sum()


def mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error over batch and coordinates (a 0-d tensor)."""
    return ((x_hat - x) ** 2).mean()


def to_db(value: float) -> float:
    """10 log10(value): -inf for 0, nan for a negative or nan value."""
    value = float(value)
    if not value >= 0:
        return float("nan")
    return float("-inf") if value == 0 else float(10.0 * math.log10(value))


def amplitude_db(value: float) -> float:
    """20 log10(value) for an amplitude ratio (a relative Frobenius error), floored at 1e-300 so that exact
    recovery stays a finite number in JSON (-6000 dB)."""
    return 20.0 * math.log10(max(float(value), 1e-300))


class LayerNMSE:
    """Per-layer NMSE of trajectories, accumulated over batches (the chunks of one set, or an epoch's batches).

    ``add(iterates, x)`` takes a trajectory (K+1, B, n) and its ground truth (B, n) and adds
    ``err[k] = sum_b ||x_k^b - x^b||^2`` and ``norm = sum_b ||x^b||^2``, computed in float64 (no gradient).
    """

    def __init__(self) -> None:
        self.err: torch.Tensor | None = None
        self.norm = 0.0

    def add(self, iterates: torch.Tensor, x: torch.Tensor) -> LayerNMSE:
        x = x.detach().to(iterates.device, torch.float64)
        err = ((iterates.detach().double() - x) ** 2).sum(dim=(1, 2))
        self.err = err if self.err is None else self.err + err
        self.norm += float((x**2).sum())
        return self

    def nmse(self) -> list[float] | None:
        """err[k] / norm for k = 0..K (nan when norm is 0), or None before the first ``add``."""
        if self.err is None:
            return None
        return (self.err / self.norm).tolist() if self.norm > 0 else [float("nan")] * len(self.err)

    def nmse_db(self) -> list[float] | None:
        """``nmse()`` in dB (``to_db``)."""
        values = self.nmse()
        return None if values is None else [to_db(v) for v in values]


def nmse_db_curve(iterates: torch.Tensor, x: torch.Tensor) -> np.ndarray:
    """Per-layer NMSE in dB of a trajectory (K+1, B, n) against x (B, n), sums accumulated in float64."""
    return np.array(LayerNMSE().add(iterates, x).nmse_db())
