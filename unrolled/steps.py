"""The one copy of each iteration: batched torch step functions.

Classical solvers (``solvers.py``) iterate these with fixed parameters; unfolded models iterate the very
same functions with learned per-layer parameters. Every step acts on a batch of iterates of shape (B, n);
a step size or threshold may be a float, a 0-d tensor (a learned parameter) or a tensor broadcastable
to (B, n) (per-coordinate or per-instance values).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from unfoldkit.unrolled.operators import soft_threshold

Tensor = torch.Tensor
GradFn = Callable[[Tensor], Tensor]
ProxFn = Callable[[Tensor], Tensor]
Scalar = float | Tensor
ShrinkFn = Callable[[Tensor, Scalar], Tensor]


def gradient_step(x: Tensor, grad_fn: GradFn, step: Scalar) -> Tensor:
    """Gradient descent: x+ = x - gamma grad f(x)."""
    return x - step * grad_fn(x)


def proximal_gradient_step(x: Tensor, grad_fn: GradFn, step: Scalar, prox: ProxFn) -> Tensor:
    """Proximal gradient (ISTA when prox is soft thresholding): x+ = prox(x - gamma grad f(x)).

    For F = f + g, the classical step uses prox = prox_{gamma g}; learned-step ISTA passes
    prox = soft_threshold(., theta_k) with its own per-layer threshold theta_k.
    """
    return prox(x - step * grad_fn(x))


def extrapolate(x: Tensor, x_prev: Tensor, momentum: Scalar) -> Tensor:
    """Momentum extrapolation z = x + beta (x - x_prev)."""
    return x + momentum * (x - x_prev)


def fista_step(x: Tensor, x_prev: Tensor, grad_fn: GradFn, step: Scalar, momentum: Scalar,
               prox: ProxFn) -> Tensor:
    """FISTA (Beck & Teboulle 2009, Sec. 4): x+ = prox(z - gamma grad f(z)), z = x + beta (x - x_prev)."""
    return proximal_gradient_step(extrapolate(x, x_prev, momentum), grad_fn, step, prox)


def fista_momentum(num_steps: int) -> np.ndarray:
    """Beck-Teboulle momentum: beta_j used to produce x_{j+1}, j = 0..K-1.

    With t_1 = 1, t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2 and y_{k+1} = x_k + ((t_k - 1) / t_{k+1})(x_k - x_{k-1}),
    the step producing x_1 uses y_1 = x_0 (beta_0 = 0) and the one producing x_{k+1} uses
    beta_k = (t_k - 1) / t_{k+1} for k >= 1.
    """
    t = fista_t(num_steps + 1)
    beta = np.zeros(num_steps)
    for j in range(1, num_steps):
        beta[j] = (t[j] - 1.0) / t[j + 1]
    return beta


def fista_t(count: int) -> np.ndarray:
    """The sequence t_0 = 0 (unused), t_1 = 1, t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2, for k up to ``count``."""
    t = np.zeros(count + 1)
    if count >= 1:
        t[1] = 1.0
    for k in range(1, count):
        t[k + 1] = (1.0 + np.sqrt(1.0 + 4.0 * t[k] ** 2)) / 2.0
    return t


def admm_lasso_step(z: Tensor, u: Tensor, aty: Tensor, gram_eigvals: Tensor, gram_eigvecs: Tensor,
                    rho: Scalar, threshold: Scalar) -> tuple[Tensor, Tensor, Tensor]:
    """Scaled-form ADMM for the LASSO (Boyd et al. 2011, Sec. 6.4), splitting x = z:

        x+ = (A^T A + rho I)^{-1} (A^T y + rho (z - u))
        z+ = eta_{theta}(x+ + u)            (classically theta = lam / rho)
        u+ = u + x+ - z+

    The solve uses the eigen-decomposition A^T A = V diag(w) V^T, so rho can change at every layer
    (and be learned) at the cost of two matrix products. Returns (x+, z+, u+).
    """
    rhs = aty + rho * (z - u)
    x = ((rhs @ gram_eigvecs) / (gram_eigvals + rho)) @ gram_eigvecs.T
    z_new = soft_threshold(x + u, threshold)
    return x, z_new, u + x - z_new


def lista_step(x: Tensor, y: Tensor, W1: Tensor, W2: Tensor | None, theta: Scalar,
               shrink: ShrinkFn = soft_threshold) -> Tensor:
    """LISTA layer (Gregor & LeCun 2010; as written in Chen et al. 2018, eq. (4), and Liu et al. 2019, eq. (4)):

        x+ = eta_theta(W1 y + W2 x),     W1 in R^{n x m}, W2 in R^{n x n},

    on rows: x+ = shrink(y W1^T + x W2^T, theta). ``W2 = None`` drops the W2 x term (the first layer
    from x0 = 0, Gregor & LeCun's Z(0) = h_theta(W_e X)). ISTA with step gamma on the LASSO is the
    special case W1 = gamma A^T, W2 = I - gamma A^T A, theta = gamma lam (Chen et al. 2018, text before
    eq. (4); Liu et al. 2019, text after eq. (4)).
    ``shrink(v, theta)`` is soft thresholding unless given (e.g. support selection).
    """
    pre = y @ W1.T
    if W2 is not None:
        pre = pre + x @ W2.T
    return shrink(pre, theta)


def lista_cp_step(x: Tensor, y: Tensor, A: Tensor, W: Tensor, theta: Scalar, step: Scalar = 1.0,
                  shrink: ShrinkFn = soft_threshold) -> Tensor:
    """Coupled LISTA layer (LISTA-CP, Chen et al. 2018; restated as eq. (6) of Liu et al. 2019):

        x+ = eta_theta(x - step W^T (A x - y)),     W in R^{m x n} (the paper's orientation),

    i.e. LISTA with W1 = step W^T and W2 = I - W1 A, the coupling of Chen et al.'s Theorem 1 holding by
    construction. It *is* the proximal-gradient step of this module with the preconditioned residual
    W^T (A x - y) in place of grad f, so ISTA (W = A, step 1/L, theta = lam/L), LISTA-CP (step 1,
    learned W^k), ALISTA (fixed analytic W, learned step gamma^k: Liu et al. 2019, eq. (16)) and their
    support-selection variants (``shrink = soft_threshold_ss``) all share this one update.
    """
    grad_fn = lambda v: (v @ A.T - y) @ W  # noqa: E731  (rows: W^T (A v - y))
    return proximal_gradient_step(x, grad_fn, step, lambda v: shrink(v, theta))
