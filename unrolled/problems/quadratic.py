"""Least squares / strongly convex quadratics: F(x; y) = 0.5 ||A x - y||^2 with chosen conditioning.

With ``kappa`` given, A = U diag(sigma) V^T (U, V random orthonormal, m >= n) has sigma_i^2 geometrically
spaced from L / kappa to L, endpoints exact: f is L-smooth and mu = L / kappa strongly convex
(the class F_{mu,L}). With ``kappa=None``, A is Gaussian with unit-norm columns, so f is convex
(mu = 0 when m < n): the class F_{0,L}.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from unfoldkit.unrolled.problems.base import Reference
from unfoldkit.unrolled.problems.linear import (
    ROUNDOFF,
    LinearInverseProblem,
    add_noise,
    gaussian_unit_columns,
    validate_dims,
    validate_snr,
)
from unfoldkit.unrolled.validation import as_generator, finite_real, nonnegative_int, positive_real


def conditioned_matrix(m: int, n: int, kappa: float, L: float, rng: np.random.Generator) -> np.ndarray:
    """An m x n matrix (m >= n) whose A^T A has eigenvalues geometric in [L/kappa, L], endpoints exact."""
    u, _ = np.linalg.qr(rng.standard_normal((m, n)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eig = L * kappa ** (-np.linspace(1.0, 0.0, n)) if n > 1 else np.array([L])
    return (u * np.sqrt(eig)) @ v.T


class LeastSquares(LinearInverseProblem):
    """Least squares with Gaussian signals x ~ N(0, I) and y = A x + noise.

    Parameters: ``m``, ``n`` sizes; ``kappa`` >= 1 the condition number (needs m >= n; None: Gaussian A,
    merely convex when m < n); ``L`` > 0 the smoothness constant when kappa is given; ``snr_db``;
    ``seed`` draws A.
    """

    name = "least-squares"

    def __init__(
        self,
        m: int = 60,
        n: int = 40,
        kappa: float | None = 10.0,
        L: float = 1.0,
        snr_db: float | None = None,
        seed: int = 0,
    ) -> None:
        m, n = validate_dims(m, n)
        self.snr_db = validate_snr(snr_db)
        self.seed = nonnegative_int("seed", seed)
        rng = as_generator(self.seed)
        if kappa is None:
            self.kappa_param = None
            self.L_param = None
            matrix = gaussian_unit_columns(m, n, rng)
        else:
            k = finite_real("kappa", kappa)
            if k < 1:
                raise ValueError(f"kappa must be >= 1, got {kappa!r}")
            if m < n:
                raise ValueError(f"a finite kappa needs m >= n (a strongly convex f), got m={m}, n={n}")
            self.kappa_param = k
            self.L_param = positive_real("L", L)
            matrix = conditioned_matrix(m, n, k, self.L_param, rng)
        super().__init__(matrix)

    def params(self) -> dict[str, Any]:
        return {"m": self.m, "n": self.n, "kappa": self.kappa_param,
                "L": 1.0 if self.L_param is None else self.L_param, "snr_db": self.snr_db, "seed": self.seed}

    @property
    def L(self) -> float:
        if self.L_param is not None:
            return self.L_param
        return super().L

    @property
    def mu(self) -> float:
        if self.kappa_param is not None:
            return self.L_param / self.kappa_param
        return super().mu

    def _sample(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = rng.standard_normal((batch_size, self.n))
        return add_noise(x @ self.A.T, self.snr_db, rng), x

    def reference(self, y: torch.Tensor) -> Reference:
        """Minimum-norm minimizers A^+ y (the minimizer closest to x0 = 0) by SVD, with the exact gap
        f(x) - f* = 0.5 ||P_range(A)(A x - y)||^2 plus a float64 round-off allowance."""
        self.check_y(y)
        yn = y.detach().cpu().double().numpy()
        u, s, vt = self._svd
        keep = s > s[0] * max(self.m, self.n) * np.finfo(np.float64).eps
        x = ((yn @ u[:, keep]) / s[keep]) @ vt[keep]
        r = x @ self.A.T - yn
        obj = 0.5 * np.sum(r**2, axis=1)
        gap = self._data_term_gap(x, yn) + ROUNDOFF * np.abs(obj)
        return Reference(
            torch.as_tensor(x, dtype=y.dtype, device=y.device),
            torch.as_tensor(obj, dtype=y.dtype, device=y.device),
            torch.as_tensor(gap, dtype=torch.float64),
            "svd",
        )
