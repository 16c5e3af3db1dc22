"""A thin SVD whose backward pass stays finite where the gradient reaching it is zero.

torch's SVD backward multiplies the matrix U^T dU - dU^T U (and its V analogue) by F_ij = 1 / (s_j^2 - s_i^2).
In robust PCA only some singular triplets carry a gradient: singular value thresholding zeroes the others,
LRPCA's initialisation keeps the top r. For a pair (i, j) of such inactive triplets the product is 0 x F_ij,
which is NaN when the two singular values coincide in floating point (F_ij = inf): it happened while training
LRPCA in float32 (a NaN gradient after 13 steps on 40 x 40 matrices). ``svd`` below computes the same
forward pass (``torch.linalg.svd``, full_matrices=False) and the same gradient formula (Townsend 2016,
"Differentiating the singular value decomposition", eq. for the thin SVD; Ionescu, Vantzos & Sminchisescu
2015), except that an entry whose numerator is exactly zero contributes exactly zero, whatever F_ij.
Where every pair is distinct it equals torch's gradient (tests/test_rpca_models.py, gradcheck in float64).
"""
from __future__ import annotations

from typing import Any

import torch

Tensor = torch.Tensor


def _divide(num: Tensor, den: Tensor) -> Tensor:
    """num / den with 0 wherever num == 0 (so 0 / 0 and 0 x inf give 0, not NaN)."""
    zero = num == 0
    return torch.where(zero, torch.zeros_like(num), num / torch.where(zero, torch.ones_like(den), den))


class _SafeSVD(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, X: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        U, s, Vh = torch.linalg.svd(X, full_matrices=False)
        ctx.save_for_backward(U, s, Vh)
        return U, s, Vh

    @staticmethod
    def backward(ctx: Any, gU: Tensor | None, gs: Tensor | None, gVh: Tensor | None) -> Tensor:
        U, s, Vh = ctx.saved_tensors
        V = Vh.mT
        gU = torch.zeros_like(U) if gU is None else gU
        gs = torch.zeros_like(s) if gs is None else gs
        gV = torch.zeros_like(V) if gVh is None else gVh.mT
        s2 = s * s
        E = s2.unsqueeze(-2) - s2.unsqueeze(-1)              # E_ij = s_j^2 - s_i^2
        J = _divide(U.mT @ gU - gU.mT @ U, E)                # F o (U^T dU - dU^T U), diagonal 0 / 0 -> 0
        K = _divide(V.mT @ gV - gV.mT @ V, E)
        inner = J * s.unsqueeze(-2) + s.unsqueeze(-1) * K + torch.diag_embed(gs)
        gX = U @ inner @ Vh
        m, n, p = U.shape[-2], V.shape[-2], s.shape[-1]
        if m > p:  # (I - U U^T) dU S^{-1} V^T
            gUs = _divide(gU, s.unsqueeze(-2).expand_as(gU))
            gX = gX + (gUs - U @ (U.mT @ gUs)) @ Vh
        if n > p:  # U S^{-1} dV^T (I - V V^T)
            gVs = _divide(gV, s.unsqueeze(-2).expand_as(gV))
            gX = gX + U @ (gVs.mT - (gVs.mT @ V) @ Vh)
        return gX


def svd(X: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Thin SVD X = U diag(s) Vh (``torch.linalg.svd(X, full_matrices=False)``), batched, with the NaN-safe
    backward described in the module docstring; without autograd it is torch's call."""
    if not (torch.is_grad_enabled() and X.requires_grad):
        return torch.linalg.svd(X, full_matrices=False)
    return _SafeSVD.apply(X)
