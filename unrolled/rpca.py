"""Robust PCA, M = L0 + S0: the classical solvers' steps (the one copy) and the solvers that iterate them.

Every function acts on batches of matrices, shape (B, n1, n2) (torch tensors), so it does not depend on
the problem class; a threshold, step or penalty may be a float, a 0-d tensor (a learned parameter) or a
tensor broadcastable to (B, 1, 1) (per-instance values). Unfolded models iterate these very steps with
learned per-layer parameters. The solvers return an ``RPCATrajectory`` holding every pair (L_k, S_k):
``trajectory.Trajectory`` holds one iterate of shape (K+1, B, n), not a pair of matrices.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from unfoldkit.unrolled.operators import soft_threshold
from unfoldkit.unrolled.svd import svd
from unfoldkit.unrolled.validation import nonnegative_int, positive_real, step_schedule

Tensor = torch.Tensor
Scalar = float | Tensor


# --------------------------------------------------------------------------------------------- checks
def check_batch(name: str, M: Any) -> Tensor:
    """``M`` if it is a finite floating torch tensor of shape (B, n1, n2), else a one-line ValueError."""
    if not isinstance(M, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor of shape (B, n1, n2), got {type(M).__name__}")
    if M.dim() != 3 or min(M.shape) < 1:
        raise ValueError(f"{name} must have shape (B, n1, n2), got {tuple(M.shape)}")
    if not M.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor, got {M.dtype}")
    if not bool(torch.isfinite(M).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return M


def check_rank(rank: Any, M: Tensor) -> int:
    """``rank`` as int if 1 <= rank <= min(n1, n2), else a one-line ValueError."""
    top = min(M.shape[-2], M.shape[-1])
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 1 <= rank <= top:
        raise ValueError(f"rank must be an integer in [1, {top}], got {rank!r}")
    return int(rank)


# --------------------------------------------------------------------------------------------- operators
def svt(X: Tensor, tau: Scalar) -> Tensor:
    """Singular value thresholding D_tau(X) = U soft_tau(Sigma) V^T, batched over the leading dimension.

    It is prox_{tau ||.||_*}(X), the proximal operator of the nuclear norm (Cai, Candes & Shen 2010,
    Theorem 2.1). ``tau`` broadcasts against the singular values, shape (B, min(n1, n2)). The SVD is
    ``unrolled.svd.svd`` (torch's, with a backward pass that stays finite for the thresholded triplets).
    """
    U, s, Vh = svd(X)
    if isinstance(tau, torch.Tensor) and tau.dim() == 3:  # (B, 1, 1) per-instance -> (B, 1)
        tau = tau.squeeze(-1)
    return (U * soft_threshold(s, tau).unsqueeze(-2)) @ Vh


def soft(X: Tensor, t: Scalar) -> Tensor:
    """Entrywise soft thresholding sign(X) max(|X| - t, 0) = prox_{t ||.||_1}(X) (``operators.soft_threshold``)."""
    return soft_threshold(X, t)


def hard_threshold(X: Tensor, t: Scalar) -> Tensor:
    """Entrywise hard thresholding HT_t(X)_ij = X_ij if |X_ij| > t, else 0 (Netrapalli et al. 2014, H_zeta)."""
    return X * (X.abs() > t)


def rank_projection(X: Tensor, rank: int) -> Tensor:
    """P_r(X): the best rank-r approximation in Frobenius norm (Eckart-Young), by a batched SVD."""
    U, s, Vh = torch.linalg.svd(X, full_matrices=False)
    return (U[..., :rank] * s[..., None, :rank]) @ Vh[..., :rank, :]


def pcp_objective(L: Tensor, S: Tensor, lam: Scalar) -> Tensor:
    """||L||_* + lam ||S||_1 per batch row, shape (B,): the objective of principal component pursuit."""
    return torch.linalg.svdvals(L).sum(-1) + lam * S.abs().sum((-2, -1))


def relative_error(X: Tensor, X0: Tensor) -> Tensor:
    """||X - X0||_F / ||X0||_F over the last two dimensions (any leading shape)."""
    return (X - X0).norm(dim=(-2, -1)) / X0.norm(dim=(-2, -1))


# --------------------------------------------------------------------------------------------- steps
def nuclear_thresholds(weights: Scalar, mu: Scalar) -> Scalar:
    """The SVT thresholds w / mu, shaped to broadcast against singular values (B, p): ``weights`` a float,
    a 0-d tensor or a (p,) vector of per-singular-value weights; ``mu`` a float, 0-d or (B, 1, 1)."""
    if isinstance(mu, torch.Tensor) and mu.dim() == 3:
        mu = mu.squeeze(-1)  # (B, 1)
    return weights / mu


def pcp_admm_step(L: Tensor, S: Tensor, Y: Tensor, M: Tensor, lam: Scalar,
                  mu: Scalar, weights: Scalar = 1.0) -> tuple[Tensor, Tensor, Tensor]:
    """One inexact-ALM / ADMM iteration of principal component pursuit

        min ||L||_* + lam ||S||_1   s.t.   L + S = M,

    with augmented Lagrangian ||L||_* + lam ||S||_1 + <Y, M - L - S> + (mu/2) ||M - L - S||_F^2
    (Lin, Chen & Ma 2010, Alg. 5, inexact ALM with one sweep; Candes, Li, Ma & Wright 2011, Alg. 1):

        L+ = SVT_{1/mu}(M - S + Y/mu)
        S+ = soft_{lam/mu}(M - L+ + Y/mu)
        Y+ = Y + mu (M - L+ - S+).

    ``weights`` (a (p,) vector, p = min(n1, n2)) replaces ||L||_* by the weighted nuclear norm
    sum_i w_i sigma_i(L), whose proximal operator is the weighted SVT U diag((sigma_i - w_i/mu)_+) V^T when
    0 <= w_1 <= w_2 <= ... (Gu, Xie, Meng, Zuo, Feng & Zhang 2017, IJCV, "Weighted nuclear norm minimization
    and its applications to low level vision", Thm 1; recalled); w = 1 is PCP. Returns (L+, S+, Y+).
    """
    L_new = svt(M - S + Y / mu, nuclear_thresholds(weights, mu))
    S_new = soft(M - L_new + Y / mu, lam / mu)
    return L_new, S_new, Y + mu * (M - L_new - S_new)


def altproj_step(L: Tensor, M: Tensor, rank: int, zeta: Scalar) -> tuple[Tensor, Tensor]:
    """One inner iteration of AltProj at its final stage k = r (Netrapalli, Niranjan, Sanghavi, Anandkumar &
    Jain, NeurIPS 2014, Alg. 1):

        S+ = HT_zeta(M - L)          (hard thresholding)
        L+ = P_r(M - S+)             (best rank-r approximation by SVD).

    Returns (L+, S+). The threshold schedule is ``altproj_threshold``.
    """
    S_new = hard_threshold(M - L, zeta)
    return rank_projection(M - S_new, rank), S_new


def altproj_threshold(M: Tensor, S: Tensor, rank: int, t: int, beta: float) -> Tensor:
    """zeta_{t+1} = beta (sigma_{r+1}(M - S_t) + (1/2)^t sigma_r(M - S_t)), shape (B, 1, 1).

    The schedule of AltProj (Netrapalli et al. 2014, Alg. 1, inner loop at stage k = r; initial threshold
    zeta_0 = beta sigma_1(M), and beta = 4 mu^2 r / sqrt(n1 n2) in their Theorem 1 with mu the incoherence).
    Recalled, not confirmed against the paper's text with the search tool. sigma_{r+1} is 0 when r = min(n1, n2).
    """
    s = torch.linalg.svdvals(M - S)
    nxt = s[:, rank] if rank < s.shape[-1] else torch.zeros_like(s[:, 0])
    return (beta * (nxt + 0.5 ** t * s[:, rank - 1]))[:, None, None]


def scaledgd_step(U: Tensor, V: Tensor, M: Tensor, zeta: Scalar, eta: Scalar,
                  threshold=soft) -> tuple[Tensor, Tensor, Tensor]:
    """One iteration of ScaledGD with thresholding, as in LRPCA (Cai, Liu & Yin, NeurIPS 2021, "Learned Robust
    PCA: A Scalable Deep Unfolding Approach for High-Dimensional Outlier Detection", Alg. 1):

        S  = T_zeta(M - U V^T)
        U+ = U - eta (U V^T + S - M) V (V^T V)^{-1}
        V+ = V - eta (U V^T + S - M)^T U (U^T U)^{-1}

    with U (B, n1, r), V (B, n2, r). T is soft thresholding (LRPCA's unfolded version, as in the authors'
    code ``caesarcai/LRPCA``); Tong, Ma & Chi's ScaledGD for RPCA uses a sparsification operator instead, pass
    ``threshold`` to change it. Returns (U+, V+, S). The (r x r) inverses are applied by solves.
    """
    S = threshold(M - U @ V.mT, zeta)
    R = U @ V.mT + S - M
    U_new = U - eta * torch.linalg.solve(V.mT @ V, (R @ V).mT).mT
    V_new = V - eta * torch.linalg.solve(U.mT @ U, (R.mT @ U).mT).mT
    return U_new, V_new, S


def scaledgd_init(M: Tensor, rank: int, zeta0: Scalar, threshold=soft) -> tuple[Tensor, Tensor, Tensor]:
    """LRPCA's initialisation (Cai, Liu & Yin 2021, Alg. 1): S_0 = T_{zeta0}(M), and the truncated SVD
    M - S_0 ~ A Sigma B^T (rank r) gives U_0 = A Sigma^{1/2}, V_0 = B Sigma^{1/2}. Returns (U_0, V_0, S_0)."""
    S0 = threshold(M, zeta0)
    A, s, Bh = svd(M - S0)
    root = s[..., None, :rank].sqrt()
    return A[..., :rank] * root, Bh[..., :rank, :].mT * root, S0


def svt_soft(XL: Tensor, XS: Tensor, tau_L: Scalar, tau_S: Scalar) -> tuple[Tensor, Tensor]:
    """(SVT_{tau_L}(XL), soft_{tau_S}(XS)): the proximal operator of tau_L ||L||_* + tau_S ||S||_1 at (XL, XS).

    The non-linear half of every proximal-gradient RPCA layer: ``rpca_ista_step`` feeds it gradient steps,
    CORONA (Solomon et al. 2019) feeds it learned convolutions of (L, S, M)."""
    return svt(XL, tau_L), soft(XS, tau_S)


def rpca_ista_step(L: Tensor, S: Tensor, M: Tensor, lam_L: Scalar, lam_S: Scalar,
                   step: Scalar = 0.5) -> tuple[Tensor, Tensor]:
    """One proximal-gradient (ISTA) step on the relaxed PCP problem

        min_{L, S} (1/2) ||M - L - S||_F^2 + lam_L ||L||_* + lam_S ||S||_1,

    whose smooth part has gradient (R, R), R = L + S - M, with Lipschitz constant 2 (so step <= 1/2):

        L+ = SVT_{step lam_L}(L - step R),   S+ = soft_{step lam_S}(S - step R)

    (Solomon, Cohen, Zhang, Eldar et al. 2019, "Deep unfolded robust PCA with application to clutter
    suppression in ultrasound", Sec. III, with H1 = H2 = I: the iteration CORONA unfolds). Returns (L+, S+).
    """
    R = L + S - M
    return svt_soft(L - step * R, S - step * R, step * lam_L, step * lam_S)


# --------------------------------------------------------------------------------------------- solvers
@dataclass
class RPCATrajectory:
    """Iterates of a robust-PCA run: ``L`` and ``S`` of shape (K+1, B, n1, n2), index k the pair (L_k, S_k).

    The pair analogue of ``trajectory.Trajectory`` (which holds a single iterate of shape (K+1, B, n)).
    ``params`` holds the per-step parameters (thresholds, steps, penalties)."""

    L: Tensor
    S: Tensor
    algorithm: str
    params: dict[str, Any] = field(default_factory=dict)
    kind: str = "classical"

    @property
    def num_steps(self) -> int:
        return self.L.shape[0] - 1

    @property
    def final(self) -> tuple[Tensor, Tensor]:
        return self.L[-1], self.S[-1]

    def error_L(self, L0: Tensor) -> Tensor:
        """||L_k - L0||_F / ||L0||_F, shape (K+1, B)."""
        return relative_error(self.L, L0.to(self.L.dtype))

    def error_S(self, S0: Tensor) -> Tensor:
        """||S_k - S0||_F / ||S0||_F, shape (K+1, B)."""
        return relative_error(self.S, S0.to(self.S.dtype))

    def objective(self, lam: Scalar) -> Tensor:
        """||L_k||_* + lam ||S_k||_1, shape (K+1, B)."""
        k1, b, n1, n2 = self.L.shape
        return pcp_objective(self.L.reshape(k1 * b, n1, n2), self.S.reshape(k1 * b, n1, n2), lam).reshape(k1, b)


def _schedule(name: str, value: Any, num_steps: int) -> np.ndarray:
    return step_schedule(name, value, max(num_steps, 1))[:num_steps]


def pcp_default_penalty(M: Tensor) -> Tensor:
    """The ADMM penalty mu = n1 n2 / (4 ||M||_1) of Candes, Li, Ma & Wright (2011), Sec. 5, per instance,
    shape (B, 1, 1) (so a batch never changes an instance's iterates)."""
    n1, n2 = M.shape[-2:]
    return n1 * n2 / (4.0 * M.abs().sum((-2, -1), keepdim=True).clamp_min(torch.finfo(M.dtype).tiny))


def run_pcp(M: Tensor, num_steps: int, lam: float | None = None, mu: Any = None) -> RPCATrajectory:
    """Principal component pursuit by ADMM (``pcp_admm_step``) from L_0 = S_0 = Y_0 = 0, recording (L_k, S_k).

    Defaults: lam = 1/sqrt(max(n1, n2)) (Candes et al. 2011, Theorem 1.1) and the fixed per-instance penalty
    ``pcp_default_penalty``; ``mu`` may also be a float or a length-K schedule shared by the batch.
    """
    M = check_batch("M", M)
    num_steps = nonnegative_int("num_steps", num_steps)
    n1, n2 = M.shape[-2:]
    lam = 1.0 / math.sqrt(max(n1, n2)) if lam is None else positive_real("lam", lam)
    if mu is None:
        per_instance = pcp_default_penalty(M)
        mus: list[Any] = [per_instance] * num_steps
        recorded: Any = per_instance.reshape(-1).tolist()
    else:
        schedule = _schedule("mu", mu, num_steps)
        mus, recorded = list(map(float, schedule)), schedule.tolist()
    L, S, Y = torch.zeros_like(M), torch.zeros_like(M), torch.zeros_like(M)
    Ls, Ss = [L], [S]
    for m in mus:
        L, S, Y = pcp_admm_step(L, S, Y, M, lam, m)
        Ls.append(L)
        Ss.append(S)
    return RPCATrajectory(torch.stack(Ls), torch.stack(Ss), "pcp-admm", {"lam": lam, "mu": recorded})


def run_altproj(M: Tensor, rank: int, num_steps: int, beta: float | None = None) -> RPCATrajectory:
    """AltProj at its final stage (rank r from the start): L_0 = 0, then ``altproj_step`` with the
    thresholds zeta_0 = beta sigma_1(M) and zeta_{t} = ``altproj_threshold`` (Netrapalli et al. 2014, Alg. 1).

    Default beta = 4 r / sqrt(n1 n2), Theorem 1's 4 mu^2 r / sqrt(n1 n2) with mu = 1 (the incoherence is
    unknown to the solver; pass beta to use it). Records (L_k, S_k); S_0 = 0.
    """
    M = check_batch("M", M)
    rank = check_rank(rank, M)
    num_steps = nonnegative_int("num_steps", num_steps)
    n1, n2 = M.shape[-2:]
    beta = 4.0 * rank / math.sqrt(n1 * n2) if beta is None else positive_real("beta", beta)
    L, S = torch.zeros_like(M), torch.zeros_like(M)
    Ls, Ss, zetas = [L], [S], []
    for t in range(num_steps):
        if t == 0:
            zeta = beta * torch.linalg.matrix_norm(M, ord=2)[:, None, None]
        else:
            zeta = altproj_threshold(M, S, rank, t - 1, beta)
        L, S = altproj_step(L, M, rank, zeta)
        Ls.append(L)
        Ss.append(S)
        zetas.append(zeta.reshape(-1).tolist())
    return RPCATrajectory(torch.stack(Ls), torch.stack(Ss), "altproj",
                          {"rank": rank, "beta": beta, "zeta": zetas})


def run_scaledgd(M: Tensor, rank: int, num_steps: int, zeta0: float, decay: float = 0.7,
                 eta: Any = 0.5) -> RPCATrajectory:
    """ScaledGD with soft thresholding as in LRPCA (Cai, Liu & Yin 2021, Alg. 1) with the classical
    geometric thresholds zeta_k = zeta0 decay^k (k = 0 for the initialisation ``scaledgd_init``) and step
    ``eta`` (a float or a length-K schedule). Records L_k = U_k V_k^T and S_k (S_0 from the initialisation,
    S_{k+1} the sparse estimate computed in step k)."""
    M = check_batch("M", M)
    rank = check_rank(rank, M)
    num_steps = nonnegative_int("num_steps", num_steps)
    zeta0 = positive_real("zeta0", zeta0)
    decay = positive_real("decay", decay)
    if decay >= 1.0:
        raise ValueError(f"decay must lie in (0, 1), got {decay!r}")
    etas = _schedule("eta", eta, num_steps)
    U, V, S = scaledgd_init(M, rank, zeta0)
    Ls, Ss = [U @ V.mT], [S]
    zetas = [zeta0 * decay ** (k + 1) for k in range(num_steps)]
    for z, e in zip(zetas, map(float, etas)):
        U, V, S = scaledgd_step(U, V, M, z, e)
        Ls.append(U @ V.mT)
        Ss.append(S)
    return RPCATrajectory(torch.stack(Ls), torch.stack(Ss), "scaledgd",
                          {"rank": rank, "zeta": [zeta0] + zetas, "eta": etas.tolist()})


def default_ista_weights(M: Tensor, lam_L: float | None = None, lam_S: float | None = None) -> tuple[float, float]:
    """Default weights of the relaxed PCP problem: lam_L = 0.1 max_b ||M_b||_2 / sqrt(max(n1, n2)) and
    lam_S = lam_L / sqrt(max(n1, n2)) (the PCP ratio lam = 1 / sqrt(max(n1, n2)) of Candes et al. 2011)."""
    n = max(M.shape[-2:])
    if lam_L is None:
        lam_L = 0.1 * float(torch.linalg.matrix_norm(M, ord=2).max()) / math.sqrt(n)
    lam_L = positive_real("lam_L", lam_L)
    lam_S = lam_L / math.sqrt(n) if lam_S is None else positive_real("lam_S", lam_S)
    return lam_L, lam_S


def run_rpca_ista(M: Tensor, num_steps: int, lam_L: float | None = None, lam_S: float | None = None,
                  step: Any = 0.5) -> RPCATrajectory:
    """ISTA on the relaxed PCP problem (``rpca_ista_step``) from L_0 = S_0 = 0: the classical solver that
    CORONA unfolds. Weights default to ``default_ista_weights``; ``step`` in (0, 1/2] (a float or a
    length-K schedule)."""
    M = check_batch("M", M)
    num_steps = nonnegative_int("num_steps", num_steps)
    lam_L, lam_S = default_ista_weights(M, lam_L, lam_S)
    steps = _schedule("step", step, num_steps)
    if np.any(steps > 0.5):
        raise ValueError(f"step must lie in (0, 1/2] (the gradient's Lipschitz constant is 2), got max {steps.max()!r}")
    L, S = torch.zeros_like(M), torch.zeros_like(M)
    Ls, Ss = [L], [S]
    for t in map(float, steps):
        L, S = rpca_ista_step(L, S, M, lam_L, lam_S, t)
        Ls.append(L)
        Ss.append(S)
    return RPCATrajectory(torch.stack(Ls), torch.stack(Ss), "rpca-ista",
                          {"lam_L": lam_L, "lam_S": lam_S, "step": steps.tolist()})
