"""The bounded loss every generalization bound here is stated for.

loss(x_hat, x) = min(||x_hat - x||^2 / ||x||^2, c): the per-sample NMSE clipped at c (default 1, the NMSE of
the zero estimate). The theorems need a loss with values in [0, c]; everything (bounds, measured risks, gaps)
is reported on this loss. A sample with x = 0 has loss min(||x_hat||^2 / tiny, c), i.e. c unless x_hat = 0.
"""
from __future__ import annotations

import math

import torch

#: default clip level c: the NMSE of the estimate x_hat = 0
DEFAULT_CLIP = 1.0


def clipped_nmse(x_hat: torch.Tensor, x: torch.Tensor, clip: float = DEFAULT_CLIP) -> torch.Tensor:
    """Per-sample min(||x_hat - x||^2 / ||x||^2, clip) for batches (B, n) -> (B,), in the inputs' dtype."""
    if not (isinstance(clip, (int, float)) and math.isfinite(clip) and clip > 0):
        raise ValueError(f"clip must be a finite number > 0, got {clip!r}")
    if x_hat.shape != x.shape or x.ndim != 2:
        raise ValueError(f"x_hat and x must both have shape (B, n), got {tuple(x_hat.shape)} and {tuple(x.shape)}")
    err = ((x_hat - x) ** 2).sum(dim=-1)
    ref = (x ** 2).sum(dim=-1).clamp_min(torch.finfo(x.dtype).tiny)
    return torch.clamp(err / ref, max=float(clip))
