"""The Problem protocol: a family of composite problems F(x; y) = f(x; y) + g(x) with a seeded sampler.

A problem instance is an observation ``y`` (one row of a batch); the decision variable is ``x``
(``s`` in the survey's notation, see docs/notation.md). Each family knows its objective, the constants
theory needs (smoothness ``L`` of f, strong convexity ``mu``), and a reference minimizer together with
a certified bound on its optimality gap.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from unfoldkit.unrolled.validation import as_generator, batch_tensor, positive_int


@dataclass(frozen=True)
class ProblemBatch:
    """A batch of sampled instances: observations ``y`` (B, m) and, when known, the signal ``x`` (B, n)."""

    y: torch.Tensor
    x: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> "ProblemBatch":
        """The same batch cast to ``dtype`` and moved to ``device``."""
        x = None if self.x is None else self.x.to(dtype=dtype, device=device)
        return ProblemBatch(self.y.to(dtype=dtype, device=device), x)


@dataclass(frozen=True)
class Reference:
    """Reference minimizers of F(.; y) for a batch, with a certificate.

    ``gap[b]`` is a certified upper bound on F(x[b]) - F* (a duality gap, or an exact formula), so that
    F* lies in [objective - gap, objective]. ``method`` names the solver that produced it.
    """

    x: torch.Tensor
    objective: torch.Tensor
    gap: torch.Tensor
    method: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def max_gap(self) -> float:
        return float(self.gap.max())


class Problem(ABC):
    """A problem family: min_x F(x; y) = f(x; y) + g(x), f convex and L-smooth, g convex and proximable.

    Subclasses hold their fixed operator (e.g. the matrix A) in float64 and hand torch copies in any
    dtype and device on request; every method is batched over the first dimension.
    """

    #: registry name, used in checkpoints and on the command line
    name: str = "problem"

    def __init__(self, n: int) -> None:
        self.n = positive_int("n", n)
        self._cache: dict[tuple, torch.Tensor] = {}

    # ---- description -------------------------------------------------------------------------
    @abstractmethod
    def params(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments: ``make_problem(name, **params)`` rebuilds it."""

    @property
    @abstractmethod
    def obs_dim(self) -> int:
        """Dimension m of an observation y."""

    @property
    @abstractmethod
    def L(self) -> float:
        """Lipschitz constant of grad f (exact, float64)."""

    @property
    @abstractmethod
    def mu(self) -> float:
        """Strong convexity constant of f (0 when f is only convex)."""

    @property
    def kappa(self) -> float:
        """Condition number L / mu (inf when mu = 0)."""
        return self.L / self.mu if self.mu > 0 else float("inf")

    # ---- sampling ---------------------------------------------------------------------------
    @abstractmethod
    def _sample(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        """Return float64 arrays (y, x) of shapes (B, m) and (B, n) (x may be None)."""

    def sample(
        self,
        batch_size: int,
        rng: np.random.Generator | int | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> ProblemBatch:
        """Draw ``batch_size`` instances with a seed or numpy Generator (reproducible on any device)."""
        batch_size = positive_int("batch_size", batch_size)
        y, x = self._sample(batch_size, as_generator(rng))
        y_t = torch.as_tensor(y, dtype=dtype, device=device)
        x_t = None if x is None else torch.as_tensor(x, dtype=dtype, device=device)
        return ProblemBatch(y_t, x_t)

    # ---- objective ----------------------------------------------------------------------------
    @abstractmethod
    def smooth(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """f(x; y) for each row, shape (B,)."""

    @abstractmethod
    def grad(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """grad_x f(x; y), shape (B, n)."""

    def regularizer(self, x: torch.Tensor) -> torch.Tensor:
        """g(x) for each row, shape (B,); zero unless the family is composite."""
        return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)

    def prox(self, v: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """prox_{t g}(v) = argmin_u g(u) + ||u - v||^2 / (2t); the identity unless composite."""
        return v

    def objective(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """F(x; y) = f(x; y) + g(x), shape (B,)."""
        return self.smooth(x, y) + self.regularizer(x)

    def initial_point(self, y: torch.Tensor) -> torch.Tensor:
        """The standard starting point x0 = 0 of every solver and unfolded model."""
        return torch.zeros(y.shape[0], self.n, dtype=y.dtype, device=y.device)

    # ---- reference solution -----------------------------------------------------------------
    @abstractmethod
    def reference(self, y: torch.Tensor) -> Reference:
        """Reference minimizers of F(.; y) with a certified optimality gap."""

    # ---- helpers ----------------------------------------------------------------------------
    def check_x(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        return batch_tensor(name, x, self.n)

    def check_y(self, y: torch.Tensor, name: str = "y") -> torch.Tensor:
        return batch_tensor(name, y, self.obs_dim)

    def cached_tensor(self, key: str, array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        """A cached torch copy of a float64 array in the dtype and device of ``like``."""
        k = (key, like.dtype, str(like.device))
        if k not in self._cache:
            self._cache[k] = torch.as_tensor(array, dtype=like.dtype, device=like.device)
        return self._cache[k]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
