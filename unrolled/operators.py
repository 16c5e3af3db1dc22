"""Proximal operators and projections, batched torch functions (differentiable where the math is).

Every operator acts on the last dimension of a (batch, n) tensor and broadcasts its parameter.
"""
from __future__ import annotations

import torch


def soft_threshold(v: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """Soft thresholding eta_theta(v) = sign(v) max(|v| - theta, 0).

    It is prox_{theta ||.||_1}(v) for theta >= 0 (a scalar, or a tensor broadcastable to ``v``,
    e.g. per-coordinate weights of a weighted l1 norm). As a proximal operator of a convex function it
    is firmly nonexpansive (Bauschke & Combettes 2017, Prop. 12.28).
    """
    return torch.sign(v) * torch.clamp(v.abs() - threshold, min=0.0)


def identity_prox(v: torch.Tensor, threshold: torch.Tensor | float = 0.0) -> torch.Tensor:
    """prox of the zero function: the identity (so proximal gradient reduces to gradient descent)."""
    return v


def project_l2_ball(v: torch.Tensor, radius: float) -> torch.Tensor:
    """Euclidean projection of each row of ``v`` onto the l2 ball of the given radius."""
    norms = v.norm(dim=-1, keepdim=True)
    scale = torch.clamp(radius / torch.clamp(norms, min=torch.finfo(v.dtype).tiny), max=1.0)
    return v * scale


def project_box(v: torch.Tensor, lower: float, upper: float) -> torch.Tensor:
    """Euclidean projection onto the box [lower, upper]^n (the prox of its indicator)."""
    return torch.clamp(v, min=lower, max=upper)
