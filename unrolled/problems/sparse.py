"""Sparse recovery / LASSO: y = A x + noise, x Bernoulli(p) x N(0, 1), F(x) = 0.5||Ax - y||^2 + lam ||x||_1.

The setting of Chen, Liu, Wang & Yin (NeurIPS 2018) and Liu, Chen, Wang & Yin (ICLR 2019): A Gaussian with
unit-norm columns, typically m = 250, n = 500, p = 0.1.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from unfoldkit.unrolled.operators import soft_threshold
from unfoldkit.unrolled.problems.base import Reference
from unfoldkit.unrolled.problems.linear import (
    ROUNDOFF,
    LinearInverseProblem,
    add_noise,
    gaussian_unit_columns,
    validate_dims,
    validate_snr,
)
from unfoldkit.unrolled.validation import as_generator, fraction, nonnegative_int, positive_real

#: problems with n at most this size get their reference from cvxpy, larger ones from celer
CVXPY_MAX_N = 64


def lasso_duality_gap(a: np.ndarray, y: np.ndarray, x: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Primal values P(x) and certified duality gaps P(x) - D(theta) >= P(x) - P*, per row (float64).

    Dual of the LASSO: D(theta) = 0.5||y||^2 - 0.5||y - theta||^2 subject to ||A^T theta||_inf <= lam,
    evaluated at the feasible rescaled residual theta = r min(1, lam / ||A^T r||_inf), r = y - A x
    (e.g. Massias, Gramfort & Salmon 2018, "Celer", Sec. 2). A round-off allowance is added.
    """
    r = y - x @ a.T
    primal = 0.5 * np.sum(r**2, axis=1) + lam * np.abs(x).sum(axis=1)
    corr = np.abs(r @ a).max(axis=1)
    scale = np.minimum(1.0, lam / np.maximum(corr, np.finfo(np.float64).tiny))
    theta = r * scale[:, None]
    dual = 0.5 * np.sum(y**2, axis=1) - 0.5 * np.sum((y - theta) ** 2, axis=1)
    gap = np.maximum(primal - dual, 0.0) + ROUNDOFF * (np.abs(primal) + np.abs(dual))
    return primal, gap


class SparseRecovery(LinearInverseProblem):
    """LASSO with a fixed Gaussian dictionary A (m x n, unit-norm columns) and Bernoulli-Gaussian signals.

    Parameters: ``m``, ``n`` sizes; ``sparsity`` p in (0, 1] (probability that a coordinate is non-zero);
    ``snr_db`` noise level (None: noiseless); ``lam`` > 0 the l1 weight; ``seed`` draws A.
    """

    name = "sparse"

    def __init__(
        self,
        m: int = 250,
        n: int = 500,
        sparsity: float = 0.1,
        snr_db: float | None = None,
        lam: float = 0.1,
        seed: int = 0,
    ) -> None:
        m, n = validate_dims(m, n)
        self.sparsity = fraction("sparsity", sparsity)
        self.snr_db = validate_snr(snr_db)
        self.lam = positive_real("lam", lam)
        self.seed = nonnegative_int("seed", seed)
        super().__init__(gaussian_unit_columns(m, n, as_generator(self.seed)))

    def params(self) -> dict[str, Any]:
        return {"m": self.m, "n": self.n, "sparsity": self.sparsity, "snr_db": self.snr_db,
                "lam": self.lam, "seed": self.seed}

    def _sample(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        support = rng.random((batch_size, self.n)) < self.sparsity
        x = support * rng.standard_normal((batch_size, self.n))
        y = add_noise(x @ self.A.T, self.snr_db, rng)
        return y, x

    def regularizer(self, x: torch.Tensor) -> torch.Tensor:
        return self.lam * x.abs().sum(dim=-1)

    def prox(self, v: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """prox_{t lam ||.||_1}(v) = soft_threshold(v, t lam)."""
        return soft_threshold(v, t * self.lam)

    def reference(self, y: torch.Tensor, method: str = "auto", tol: float = 1e-14) -> Reference:
        """LASSO minimizers with a certified duality gap.

        ``method``: "cvxpy" (Clarabel interior point, for small n), "celer" (working-set coordinate
        descent with dual extrapolation, Massias et al. 2018, for large n), or "auto" (cvxpy when
        n <= CVXPY_MAX_N). Raises RuntimeError naming the solver if it fails.
        """
        self.check_y(y)
        yn = y.detach().cpu().double().numpy()
        if method == "auto":
            method = "cvxpy" if self.n <= CVXPY_MAX_N else "celer"
        if method == "cvxpy":
            x = np.stack([self._solve_cvxpy(row) for row in yn])
        elif method == "celer":
            x = np.stack([self._solve_celer(row, tol) for row in yn])
        else:
            raise ValueError(f"method must be 'auto', 'cvxpy' or 'celer', got {method!r}")
        primal, gap = lasso_duality_gap(self.A, yn, x, self.lam)
        as_t = lambda v: torch.as_tensor(v, dtype=y.dtype, device=y.device)  # noqa: E731
        return Reference(as_t(x), as_t(primal), torch.as_tensor(gap, dtype=torch.float64), method)

    def _solve_cvxpy(self, y: np.ndarray) -> np.ndarray:
        import cvxpy as cp

        x = cp.Variable(self.n)
        prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(self.A @ x - y) + self.lam * cp.norm1(x)))
        try:
            prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
        except cp.error.SolverError as err:
            raise RuntimeError(f"reference solver cvxpy/Clarabel failed: {err}") from err
        if prob.status not in ("optimal", "optimal_inaccurate") or x.value is None:
            raise RuntimeError(f"reference solver cvxpy/Clarabel failed with status {prob.status!r}")
        return np.asarray(x.value, dtype=np.float64)

    def _solve_celer(self, y: np.ndarray, tol: float) -> np.ndarray:
        from celer import Lasso

        # celer minimises ||y - A x||^2 / (2 m) + alpha ||x||_1, i.e. ours divided by m.
        est = Lasso(alpha=self.lam / self.m, fit_intercept=False, tol=tol, max_iter=200, max_epochs=200_000)
        try:
            est.fit(self.A, y)
        except Exception as err:  # celer raises plain exceptions from its Cython core
            raise RuntimeError(f"reference solver celer failed: {err}") from err
        return np.asarray(est.coef_, dtype=np.float64)


class BoundedSparseRecovery(SparseRecovery):
    """Sparse recovery with signals in X(B, s) = {|x_i| <= B, ||x||_0 <= s}: the class of the LISTA-CP and
    ALISTA theorems (Chen et al. 2018; Liu et al. 2019, Assumptions 1-2). Each signal has a uniformly
    random support of exactly ``support_size`` entries with values uniform in [-B, B] (ALISTA Assumption 2).
    Same dictionary A (and objective, for a given ``lam``) as SparseRecovery with the same seed.
    """

    name = "sparse-bounded"

    def __init__(self, m: int = 250, n: int = 500, support_size: int = 2, amplitude: float = 1.0,
                 snr_db: float | None = None, lam: float = 0.1, seed: int = 0) -> None:
        from unfoldkit.unrolled.validation import positive_int

        s = positive_int("support_size", support_size)
        if s > n:
            raise ValueError(f"support_size must be <= n = {n}, got {s}")
        self.support_size = s
        self.amplitude = positive_real("amplitude", amplitude)
        super().__init__(m=m, n=n, sparsity=s / n, snr_db=snr_db, lam=lam, seed=seed)

    def params(self) -> dict[str, Any]:
        return {"m": self.m, "n": self.n, "support_size": self.support_size, "amplitude": self.amplitude,
                "snr_db": self.snr_db, "lam": self.lam, "seed": self.seed}

    def _sample(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        keys = rng.random((batch_size, self.n))
        support = np.argsort(keys, axis=1)[:, : self.support_size]
        x = np.zeros((batch_size, self.n))
        vals = rng.uniform(-self.amplitude, self.amplitude, (batch_size, self.support_size))
        np.put_along_axis(x, support, vals, axis=1)
        return add_noise(x @ self.A.T, self.snr_db, rng), x


def perturbed_dictionary(problem: SparseRecovery, eps: float, seed: int) -> SparseRecovery:
    """A model mismatch: ``problem``'s family and parameters with A replaced by the unit-column normalisation
    of A + eps G / sqrt(m), G a standard Gaussian matrix drawn from ``seed`` (eps = 0: the same A). Data drawn
    from the result come from A', while a model trained on ``problem`` still assumes A."""
    import math

    from unfoldkit.unrolled.validation import nonnegative_real

    eps = nonnegative_real("eps", eps)
    out = type(problem)(**problem.params())
    a = problem.A + eps * np.random.default_rng(seed).standard_normal(problem.A.shape) / math.sqrt(problem.m)
    out.A = a / np.linalg.norm(a, axis=0, keepdims=True)
    return out
