"""Linear inverse problems y = A x + noise with the data term f(x; y) = 0.5 ||A x - y||^2.

Shared by LASSO / sparse recovery and least squares: A is fixed per problem (the LISTA setting: one
dictionary, many observations), held in float64, with its SVD cached so that L = sigma_max(A)^2 and
mu = sigma_min(A)^2 (0 when m < n) are exact.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from unfoldkit.unrolled.problems.base import Problem
from unfoldkit.unrolled.validation import finite_array, finite_real, positive_int

#: allowance for float64 round-off in certificates, relative to the magnitude of the objective
ROUNDOFF = 64 * np.finfo(np.float64).eps


def gaussian_unit_columns(m: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """A with i.i.d. N(0, 1/m) entries, each column then scaled to unit l2 norm (Chen et al. 2018 setup)."""
    a = rng.standard_normal((m, n)) / np.sqrt(m)
    return a / np.linalg.norm(a, axis=0, keepdims=True)


def add_noise(clean: np.ndarray, snr_db: float | None, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise with per-sample SNR = 10 log10(||A x||^2 / ||noise||^2) in dB (None: none)."""
    if snr_db is None:
        return clean
    m = clean.shape[1]
    power = np.sum(clean**2, axis=1, keepdims=True) / m
    sigma = np.sqrt(power * 10.0 ** (-snr_db / 10.0))
    return clean + sigma * rng.standard_normal(clean.shape)


class LinearInverseProblem(Problem):
    """Base of the families whose smooth part is 0.5 ||A x - y||^2 with a fixed matrix A (m x n)."""

    def __init__(self, matrix: np.ndarray) -> None:
        a = finite_array("matrix", matrix, ndim=2)
        if a.shape[0] < 1 or a.shape[1] < 1:
            raise ValueError(f"matrix must be non-empty, got shape {a.shape}")
        super().__init__(a.shape[1])
        self.A = a
        self.m = a.shape[0]

    @property
    def obs_dim(self) -> int:
        return self.m

    @cached_property
    def _svd(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.linalg.svd(self.A, full_matrices=False)

    @property
    def singular_values(self) -> np.ndarray:
        return self._svd[1]

    @property
    def L(self) -> float:
        """L = ||A||_2^2 = lambda_max(A^T A)."""
        return float(self.singular_values[0] ** 2)

    @property
    def mu(self) -> float:
        """mu = lambda_min(A^T A): sigma_min(A)^2 if m >= n, else 0."""
        if self.m < self.n:
            return 0.0
        return float(self.singular_values[-1] ** 2)

    @cached_property
    def coherence(self) -> float:
        """Mutual coherence mu(A) = max_{i != j} |<A_i, A_j>| / (||A_i|| ||A_j||)."""
        a = self.A / np.linalg.norm(self.A, axis=0, keepdims=True)
        g = np.abs(a.T @ a)
        np.fill_diagonal(g, 0.0)
        return float(g.max()) if self.n > 1 else 0.0

    @cached_property
    def gram_eigh(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigen-decomposition (w, V) of A^T A, used to solve (A^T A + rho I) x = r for any rho."""
        w, v = np.linalg.eigh(self.A.T @ self.A)
        return np.clip(w, 0.0, None), v

    def matrix(self, like: torch.Tensor) -> torch.Tensor:
        """A as a torch tensor in the dtype and device of ``like``."""
        return self.cached_tensor("A", self.A, like)

    def smooth(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r = x @ self.matrix(x).T - y
        return 0.5 * (r * r).sum(dim=-1)

    def grad(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a = self.matrix(x)
        return (x @ a.T - y) @ a

    def _data_term_gap(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Exact f(x) - min f for least squares: 0.5 ||P_range(A) (A x - y)||^2 (per row)."""
        u, s, _ = self._svd
        rank = int(np.sum(s > s[0] * max(self.m, self.n) * np.finfo(np.float64).eps))
        proj = (x @ self.A.T - y) @ u[:, :rank]
        return 0.5 * np.sum(proj**2, axis=1)


def validate_snr(snr_db: float | None) -> float | None:
    """SNR in dB: None (noiseless) or a finite real."""
    return None if snr_db is None else finite_real("snr_db", snr_db)


def validate_dims(m: int, n: int) -> tuple[int, int]:
    return positive_int("m", m), positive_int("n", n)
