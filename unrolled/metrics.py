"""Error metrics shared by training, figures and benchmarks: NMSE (torch, differentiable), dB, and the
per-layer NMSE curve of a trajectory. NMSE = sum_b ||x_hat_b - x_b||^2 / sum_b ||x_b||^2 (batch ratio, as
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


def nmse_db_curve(iterates: torch.Tensor, x: torch.Tensor) -> np.ndarray:
    """Per-layer NMSE in dB of a trajectory (K+1, B, n) against x (B, n), sums accumulated in float64."""
    err = ((iterates.double() - x.double().to(iterates.device)) ** 2).sum(dim=(1, 2)).cpu()
    norm = float((x.double() ** 2).sum())
    return np.array([to_db(float(e) / norm) for e in err])
