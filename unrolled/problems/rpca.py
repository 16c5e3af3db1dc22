"""Robust PCA: M = L0 + S0 (+ N), L0 of rank r, S0 sparse outliers, N optional dense Gaussian noise.

Sampler: L0 = U diag(sigma) V^T with U (n1 x r), V (n2 x r) Haar-random orthonormal (QR of a Gaussian
matrix with the signs of diag(R) fixed, Mezzadri 2007), so L0 is incoherent with high probability (the
random orthogonal model of Candes, Li, Ma & Wright 2011, Sec. 1.3); the realised incoherence is reported
per sample. The singular values are geometric from sigma_1 = sqrt(n1 n2 / r) down to sigma_1 / condition,
endpoints exact, so that with condition = 1 the entries of L0 have unit root mean square. S0 has a
Bernoulli(alpha) support (Candes et al. 2011, Thm 1.1), random signs, and magnitudes uniform in
[lo, hi] * mean|L0| (``magnitude=(lo, hi)``, default (1, 10)). LRPCA's synthetic code (Cai, Liu & Yin,
NeurIPS 2021) draws outliers uniform in [-c E, c E] with E the mean |entry| of L0; we keep that scale
E but bound the magnitudes away from zero so the support is identifiable and the realised sparsity is the
support's (an outlier of size 1e-6 would be indistinguishable from noise). N has i.i.d. N(0, noise_std^2)
entries (absolute scale; compare with the unit RMS entry of L0).

Constants theory needs, per sample (see ``rpca_constants``): the incoherence
mu = max(n1/r max_i ||U^T e_i||^2, n2/r max_j ||V^T e_j||^2) in [1, max(n1, n2)/r], the rank r, the
sparsity as the AltProj / ScaledGD theorems use it (the largest fraction of non-zeros in any row or
column of S0; Netrapalli et al. 2014, Yi et al. 2016, Tong, Ma & Chi 2021) and the overall fraction
(the Bernoulli model of Candes et al.), and the condition number sigma_1 / sigma_r of L0.

Reference: principal component pursuit, min ||L||_* + lam ||S||_1 s.t. L + S = M, lam = 1/sqrt(max(n1, n2))
by default (Candes et al. 2011, Thm 1.1), solved by the inexact augmented Lagrangian method (Lin, Chen &
Ma 2010, Algorithm 5; ADMM with a residual-balanced penalty) with singular value thresholding, and
certified by a duality gap (``pcp_duality_gap``).

RobustPCA is deliberately NOT a ``Problem``: that protocol is a vector composite problem
min_x f(x; y) + g(x) with one decision vector per row, while PCP has matrix observations, two matrix
variables tied by an equality constraint and a non-smooth objective with no smooth part f (no L, mu).
It follows the same conventions instead: float64, seeded batched ``sample``, ``params()``, a reference
with a certified gap, and one-line ValueErrors naming the argument.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from unfoldkit.unrolled.problems.linear import ROUNDOFF
from unfoldkit.unrolled.validation import (
    as_generator,
    finite_real,
    nonnegative_int,
    nonnegative_real,
    positive_int,
    positive_real,
)


@dataclass(frozen=True)
class RpcaBatch:
    """A batch of sampled instances: observations M = L + S (+ noise), each (B, n1, n2).

    ``constants`` maps "incoherence", "rank", "sparsity_max" (largest row/column fraction of non-zeros of
    S), "sparsity" (overall fraction) and "condition" (sigma_1 / sigma_r of L) to float64 tensors (B,).
    """

    M: torch.Tensor
    L: torch.Tensor
    S: torch.Tensor
    constants: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return int(self.M.shape[0])


@dataclass(frozen=True)
class RpcaReference:
    """PCP minimizers (L, S = M - L exactly) for a batch, with a certificate.

    ``gap[b]`` is a certified upper bound on P(L[b], S[b]) - P*, P(L, S) = ||L||_* + lam ||S||_1, so P*
    lies in [objective - gap, objective]. ``iterations[b]`` counts inexact-ALM iterations.
    """

    L: torch.Tensor
    S: torch.Tensor
    objective: torch.Tensor
    gap: torch.Tensor
    lam: float
    iterations: torch.Tensor
    method: str = "inexact-alm"

    @property
    def max_gap(self) -> float:
        return float(self.gap.max())


def default_lam(n1: int, n2: int) -> float:
    """The PCP weight lam = 1 / sqrt(max(n1, n2)) of Candes, Li, Ma & Wright (2011), Thm 1.1."""
    return 1.0 / float(np.sqrt(max(n1, n2)))


def haar_orthonormal(n: int, r: int, rng: np.random.Generator) -> np.ndarray:
    """An n x r matrix with orthonormal columns, Haar-distributed (QR with sign fix, Mezzadri 2007)."""
    q, rr = np.linalg.qr(rng.standard_normal((n, r)))
    signs = np.sign(np.diag(rr))
    signs[signs == 0] = 1.0
    return q * signs


def singular_values(rank: int, condition: float, top: float) -> np.ndarray:
    """Geometric singular values from ``top`` down to ``top / condition``, endpoints exact."""
    if rank == 1:
        return np.array([top])
    s = top * condition ** (-np.arange(rank) / (rank - 1))
    s[-1] = top / condition
    return s


def rpca_constants(L: Any, S: Any, rank: int) -> dict[str, np.ndarray]:
    """Per-sample constants of a batch (B, n1, n2) of low-rank L and sparse S, as float64 arrays (B,).

    incoherence: max(n1/r max_i ||U^T e_i||^2, n2/r max_j ||V^T e_j||^2) with U, V the top-r singular
    vectors of L; condition: sigma_1 / sigma_r; sparsity_max: max over rows and columns of the fraction of
    non-zeros of S; sparsity: the overall fraction; rank: r (as float).
    """
    L = _as_batch("L", L)
    S = _as_batch("S", S)
    if S.shape != L.shape:
        raise ValueError(f"S must have the shape of L {L.shape}, got {S.shape}")
    b, n1, n2 = L.shape
    rank = positive_int("rank", rank)
    if rank > min(n1, n2):
        raise ValueError(f"rank must be <= min(n1, n2) = {min(n1, n2)}, got {rank}")
    u, s, vt = np.linalg.svd(L, full_matrices=False)
    u, s, v = u[:, :, :rank], s[:, :rank], np.swapaxes(vt[:, :rank, :], 1, 2)
    mu_u = n1 / rank * np.max(np.sum(u**2, axis=2), axis=1)
    mu_v = n2 / rank * np.max(np.sum(v**2, axis=2), axis=1)
    with np.errstate(divide="ignore"):
        cond = np.where(s[:, -1] > 0, s[:, 0] / np.maximum(s[:, -1], np.finfo(np.float64).tiny), np.inf)
    nz = S != 0
    row = nz.sum(axis=2).max(axis=1) / n2
    col = nz.sum(axis=1).max(axis=1) / n1
    return {
        "incoherence": np.maximum(mu_u, mu_v),
        "rank": np.full(b, float(rank)),
        "sparsity_max": np.maximum(row, col),
        "sparsity": nz.sum(axis=(1, 2)) / (n1 * n2),
        "condition": cond,
    }


def pcp_duality_gap(M: np.ndarray, L: np.ndarray, Y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Primal values P(L, M - L) and certified duality gaps >= P - P*, per sample (float64, shapes (B,)).

    The dual of PCP, min ||L||_* + lam ||S||_1 s.t. L + S = M, is max <Y, M> s.t. ||Y||_2 <= 1 and
    ||Y||_inf <= lam (the dual norms; Candes et al. 2011, Sec. 2). Any multiplier Y is scaled to
    feasibility, Y' = Y / max(1, ||Y||_2, ||Y||_inf / lam), and the gap is P(L, M - L) - <Y', M>,
    plus a round-off allowance. Arrays are (B, n1, n2).
    """
    S = M - L
    primal = np.linalg.svd(L, compute_uv=False).sum(axis=1) + lam * np.abs(S).sum(axis=(1, 2))
    spec = np.linalg.svd(Y, compute_uv=False)[:, 0]
    scale = np.maximum(1.0, np.maximum(spec, np.abs(Y).max(axis=(1, 2)) / lam))
    dual = np.sum(Y * M, axis=(1, 2)) / scale
    n = max(M.shape[1], M.shape[2])
    gap = np.maximum(primal - dual, 0.0) + n * ROUNDOFF * (np.abs(primal) + np.abs(dual))
    return primal, gap


def pcp_inexact_alm(
    M: np.ndarray, lam: float, tol: float = 1e-9, max_iter: int = 5000,
) -> tuple[np.ndarray, np.ndarray, int]:
    """One PCP instance (n1, n2) by inexact ALM / ADMM: returns (L, Y, iterations).

    Each iteration is ``unrolled.rpca.pcp_admm_step`` (Lin, Chen & Ma 2010, Algorithm 5: L = SVT(M - S +
    Y/mu, 1/mu), S = shrink(M - L + Y/mu, lam/mu), Y += mu (M - L - S)), the one copy the solver ``run_pcp``
    and the unfolded models iterate, in float64, from Y0 = M / max(||M||_2, ||M||_inf / lam) and
    mu0 = 1.25 / ||M||_2. Instead of their geometric growth of mu (which stalls the dual on noisy M and
    amplifies round-off into Y once mu is huge) mu follows residual balancing (Boyd et al. 2011,
    Sec. 3.4.1): doubled when the primal residual ||M - L - S||_F exceeds 10x the dual residual
    mu ||S - S_prev||_F, halved in the opposite case. Stops when the certified relative gap of
    (L, M - L, Y) (``pcp_duality_gap``) is below ``tol``, checked every 10 iterations, or at max_iter.
    """
    from unfoldkit.unrolled.rpca import pcp_admm_step

    spec = float(np.linalg.norm(M, 2))
    if spec == 0.0:
        return np.zeros_like(M), np.zeros_like(M), 0
    Mt = torch.as_tensor(M, dtype=torch.float64)[None]
    Y = Mt / max(spec, float(np.abs(M).max()) / lam)
    mu = 1.25 / spec
    L = torch.zeros_like(Mt)
    S = torch.zeros_like(Mt)
    it = 0
    for it in range(1, max_iter + 1):
        S_prev = S
        L, S, Y = pcp_admm_step(L, S, Y, Mt, lam, mu)
        primal_res = float(torch.linalg.norm(Mt - L - S))
        dual_res = mu * float(torch.linalg.norm(S - S_prev))
        if primal_res > 10 * dual_res:
            mu *= 2.0
        elif dual_res > 10 * primal_res:
            mu /= 2.0
        if it % 10 == 0:
            primal, gap = pcp_duality_gap(M[None], L.numpy(), Y.numpy(), lam)
            if gap[0] <= tol * max(abs(primal[0]), 1e-300):
                break
    return L[0].numpy(), Y[0].numpy(), it


def _as_batch(name: str, value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 3 or min(arr.shape) < 1:
        raise ValueError(f"{name} must have shape (batch, n1, n2), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


class RobustPCA:
    """Robust PCA instances M = L0 + S0 + N of size n1 x n2 (see the module docstring for the model).

    Parameters: ``n1``, ``n2`` sizes; ``rank`` r in [1, min(n1, n2)]; ``alpha`` in [0, 1) the Bernoulli
    probability of an outlier; ``noise_std`` >= 0 the dense Gaussian noise level; ``seed`` seeds the stream
    used by ``sample`` when no rng is given; ``condition`` >= 1 the condition number of L0 (must be 1 when
    r = 1); ``magnitude`` = (lo, hi), 0 <= lo <= hi, hi > 0: outlier magnitudes uniform in
    [lo, hi] * mean|L0| per sample.
    """

    name = "rpca"

    def __init__(
        self,
        n1: int,
        n2: int,
        rank: int,
        alpha: float,
        noise_std: float = 0.0,
        seed: int = 0,
        condition: float = 1.0,
        magnitude: tuple[float, float] = (1.0, 10.0),
    ) -> None:
        self.n1 = positive_int("n1", n1)
        self.n2 = positive_int("n2", n2)
        self.rank = positive_int("rank", rank)
        if self.rank > min(self.n1, self.n2):
            raise ValueError(f"rank must be <= min(n1, n2) = {min(self.n1, self.n2)}, got {rank!r}")
        a = finite_real("alpha", alpha)
        if not 0 <= a < 1:
            raise ValueError(f"alpha must lie in [0, 1), got {alpha!r}")
        self.alpha = a
        self.noise_std = nonnegative_real("noise_std", noise_std)
        self.seed = nonnegative_int("seed", seed)
        c = finite_real("condition", condition)
        if c < 1:
            raise ValueError(f"condition must be >= 1, got {condition!r}")
        if self.rank == 1 and c != 1:
            raise ValueError(f"condition must be 1 when rank is 1, got {condition!r}")
        self.condition = c
        if not isinstance(magnitude, (tuple, list)) or len(magnitude) != 2:
            raise ValueError(f"magnitude must be a pair (lo, hi), got {magnitude!r}")
        lo = nonnegative_real("magnitude[0]", magnitude[0])
        hi = positive_real("magnitude[1]", magnitude[1])
        if lo > hi:
            raise ValueError(f"magnitude must satisfy lo <= hi, got {magnitude!r}")
        self.magnitude = (lo, hi)
        self._rng = as_generator(self.seed)

    def params(self) -> dict[str, Any]:
        return {"n1": self.n1, "n2": self.n2, "rank": self.rank, "alpha": self.alpha,
                "noise_std": self.noise_std, "seed": self.seed, "condition": self.condition,
                "magnitude": list(self.magnitude)}

    @property
    def lam(self) -> float:
        """The default PCP weight 1 / sqrt(max(n1, n2))."""
        return default_lam(self.n1, self.n2)

    def sample(
        self,
        batch_size: int,
        rng: np.random.Generator | int | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> RpcaBatch:
        """Draw ``batch_size`` instances with a seed or numpy Generator (None: this object's seeded stream)."""
        batch_size = positive_int("batch_size", batch_size)
        gen = self._rng if rng is None else as_generator(rng)
        n1, n2, r = self.n1, self.n2, self.rank
        sigma = singular_values(r, self.condition, float(np.sqrt(n1 * n2 / r)))
        L = np.empty((batch_size, n1, n2))
        for b in range(batch_size):
            u = haar_orthonormal(n1, r, gen)
            v = haar_orthonormal(n2, r, gen)
            L[b] = (u * sigma) @ v.T
        support = gen.random((batch_size, n1, n2)) < self.alpha
        signs = np.where(gen.random((batch_size, n1, n2)) < 0.5, -1.0, 1.0)
        lo, hi = self.magnitude
        scale = np.abs(L).mean(axis=(1, 2), keepdims=True)
        S = support * signs * gen.uniform(lo, hi, (batch_size, n1, n2)) * scale
        M = L + S
        if self.noise_std > 0:
            M = M + self.noise_std * gen.standard_normal((batch_size, n1, n2))
        consts = rpca_constants(L, support.astype(np.float64), r)
        as_t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
        return RpcaBatch(as_t(M), as_t(L), as_t(S),
                         {k: torch.as_tensor(v, dtype=torch.float64) for k, v in consts.items()})

    def objective(self, L: torch.Tensor, S: torch.Tensor, lam: float | None = None) -> torch.Tensor:
        """PCP objective ||L||_* + lam ||S||_1 per sample, shape (B,) (lam defaults to ``self.lam``)."""
        lam = self.lam if lam is None else positive_real("lam", lam)
        return torch.linalg.matrix_norm(L, ord="nuc") + lam * S.abs().sum(dim=(-2, -1))

    def check_M(self, M: Any, name: str = "M") -> torch.Tensor:
        """Check that ``M`` is a finite torch tensor of shape (B, n1, n2) with B >= 1."""
        if not isinstance(M, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor of shape (batch, {self.n1}, {self.n2}), "
                             f"got {type(M).__name__}")
        if M.ndim != 3 or tuple(M.shape[1:]) != (self.n1, self.n2) or M.shape[0] < 1:
            raise ValueError(f"{name} must have shape (batch, {self.n1}, {self.n2}), got {tuple(M.shape)}")
        if not torch.isfinite(M).all():
            raise ValueError(f"{name} contains NaN or inf")
        return M

    def reference(self, M: torch.Tensor, lam: float | None = None, tol: float = 1e-9,
                  max_iter: int = 5000) -> RpcaReference:
        """PCP minimizers of each M[b] by inexact ALM with a certified duality gap (``pcp_duality_gap``).

        ``tol``: target relative gap gap / objective. Raises RuntimeError if it is not reached in
        ``max_iter`` iterations.
        """
        self.check_M(M)
        lam = self.lam if lam is None else positive_real("lam", lam)
        tol = positive_real("tol", tol)
        max_iter = positive_int("max_iter", max_iter)
        Mn = M.detach().cpu().double().numpy()
        Ls, Ys, its = [], [], []
        for m in Mn:
            L, Y, it = pcp_inexact_alm(m, lam, tol=tol, max_iter=max_iter)
            Ls.append(L), Ys.append(Y), its.append(it)
        L, Y = np.stack(Ls), np.stack(Ys)
        primal, gap = pcp_duality_gap(Mn, L, Y, lam)
        bad = gap > tol * np.maximum(np.abs(primal), 1e-300)
        if np.any(bad):
            raise RuntimeError(f"reference solver inexact-alm reached relative gap "
                               f"{float(np.max(gap / np.maximum(primal, 1e-300))):.3g} > tol {tol:g} "
                               f"in {max_iter} iterations")
        as_t = lambda a: torch.as_tensor(a, dtype=M.dtype, device=M.device)  # noqa: E731
        return RpcaReference(as_t(L), as_t(Mn - L), as_t(primal), torch.as_tensor(gap, dtype=torch.float64),
                             lam, torch.as_tensor(its))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
