"""Proximal operators and projections, batched torch functions (differentiable where the math is).

Every operator acts on the last dimension of a (batch, n) tensor and broadcasts its parameter.
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np
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


def _check_percent(percent: float) -> float:
    """A support-selection percentage: a finite real in [0, 100] (a ValueError names it otherwise)."""
    if isinstance(percent, bool) or not isinstance(percent, Real):
        raise ValueError(f"support-selection percent must be a real number in [0, 100], got {percent!r}")
    p = float(percent)
    if not math.isfinite(p) or not 0.0 <= p <= 100.0:
        raise ValueError(f"support-selection percent must lie in [0, 100], got {percent!r}")
    return p


def top_percent_mask(v: torch.Tensor, percent: float) -> torch.Tensor:
    """Boolean mask of the entries of each row of ``v`` whose magnitude exceeds its (100 - p)-th percentile.

    The percentile is the nearest-rank one of the authors' ``shrink_ss`` (``tf.contrib.distributions.
    percentile(|v|, 100 - p)``, interpolation "nearest"): with the magnitudes of a row sorted in
    ascending order, the cut-off is the entry of index round(((100 - p)/100)(n - 1)) (half to even), and the
    entries strictly above it are selected, about p % of them (Chen et al. 2018, LISTA-CPSS; code
    VITA-Group/LISTA-CPSS ``utils/tf.py``). ``percent = 0`` selects nothing. The mask carries no gradient.
    """
    p = _check_percent(percent)
    n = v.shape[-1]
    mags = v.detach().abs()
    if p == 0.0 or n == 0:
        return torch.zeros_like(mags, dtype=torch.bool)
    index = int(np.rint((100.0 - p) / 100.0 * (n - 1)))  # tf / numpy "nearest": round half to even
    cutoff = torch.kthvalue(mags, index + 1, dim=-1, keepdim=True).values
    return mags > cutoff


def soft_threshold_ss(v: torch.Tensor, threshold: torch.Tensor | float, percent: float) -> torch.Tensor:
    """Soft thresholding with support selection eta^ss_{theta, p} (Chen et al. 2018, LISTA-CPSS).

    Entry i passes unchanged if |v_i| > theta **and** |v_i| is among the top p % magnitudes of its row
    (``top_percent_mask``); every other entry is soft-thresholded, eta_theta(v_i). This is the authors'
    ``shrink_ss`` (VITA-Group/LISTA-CPSS and VITA-Group/ALISTA, ``utils/tf.py``): the selection index is a
    constant for differentiation (their ``tf.stop_gradient``). ``percent = 0`` gives ``soft_threshold``.
    The operator is discontinuous where an entry enters the selected set.
    """
    if _check_percent(percent) == 0.0:
        return soft_threshold(v, threshold)
    keep = top_percent_mask(v, percent)
    thr = threshold.detach() if isinstance(threshold, torch.Tensor) else threshold
    keep = keep & (v.detach().abs() > thr)
    return torch.where(keep, v, soft_threshold(v, threshold))


def soft_threshold_top_count(v: torch.Tensor, threshold: torch.Tensor | float, count: int) -> torch.Tensor:
    """Soft thresholding with a count-based support selection (the NA-ALISTA authors' variant).

    Entry i passes unchanged if |v_i| is strictly larger than the ``count``-th largest magnitude of its row
    (so ``count - 1`` entries pass when there are no ties), whatever theta; every other entry is
    soft-thresholded. This is ``soft_threshold(x, theta, p)`` of Behrens, Sauder & Jung (ICLR 2021) code,
    ``utils/algorithms.py`` (``topk(|x|, p)``, then ``|x| > min(topk)``), used with the schedule
    p^k = linspace(1.2 s // K, 1.2 s, K) (``run.py``). It differs from ``soft_threshold_ss`` (the ALISTA /
    LISTA-CPSS TF code) in two ways: a count instead of a nearest-rank percentile, and no |v_i| > theta
    condition. ``count = 0`` gives ``soft_threshold``. The selection carries no gradient.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not 0 <= count <= v.shape[-1]:
        raise ValueError(f"support-selection count must be an integer in [0, {v.shape[-1]}], got {count!r}")
    if count == 0:
        return soft_threshold(v, threshold)
    mags = v.detach().abs()
    cutoff = torch.topk(mags, int(count), dim=-1).values[..., -1:]
    return torch.where(mags > cutoff, v, soft_threshold(v, threshold))
