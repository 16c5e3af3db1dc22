"""The worst-case function of gradient descent on F_{0,L} (Drori & Teboulle 2014).

For N steps of GD with step h/L (0 < h <= 1) from x0 with ||x0 - x*|| = R, Drori & Teboulle (Math. Prog.
145, 2014; arXiv 1206.3209) show f(x_N) - f* <= L R^2 / (4 N h + 2) and that the bound is attained by
the Huber-type function with threshold tau = R / (2 N h + 1):

    phi(x) = L tau ||x - y|| - L tau^2 / 2   if ||x - y|| >= tau,
             (L / 2) ||x - y||^2             otherwise,

which is convex and L-smooth with minimizer x* = y and f* = 0. GD started at x0 = 0 stays on the
segment towards y in the linear region and ends at f(x_N) = L R^2 / (4 N h + 2) exactly.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from unfoldkit.unrolled.problems.base import Problem, Reference
from unfoldkit.unrolled.validation import positive_int, positive_real


class WorstCaseHuber(Problem):
    """Drori-Teboulle worst case: the Huber function above, for a given horizon N and step factor h.

    An instance is its minimizer y, drawn uniformly on the sphere of radius R, so ``R = ||x0 - x*||``
    with x0 = 0. Parameters: ``n`` dimension, ``L`` > 0, ``R`` > 0, ``horizon`` N >= 1, ``step_factor``
    h > 0 (the theorem needs h <= 1; larger h still defines a valid function).
    """

    name = "huber-worst-case"

    def __init__(self, n: int = 1, L: float = 1.0, R: float = 1.0, horizon: int = 10,
                 step_factor: float = 1.0) -> None:
        super().__init__(n)
        self.L_value = positive_real("L", L)
        self.R = positive_real("R", R)
        self.horizon = positive_int("horizon", horizon)
        self.step_factor = positive_real("step_factor", step_factor)
        self.tau = self.R / (2 * self.horizon * self.step_factor + 1)

    def params(self) -> dict[str, Any]:
        return {"n": self.n, "L": self.L_value, "R": self.R, "horizon": self.horizon,
                "step_factor": self.step_factor}

    @property
    def obs_dim(self) -> int:
        return self.n

    @property
    def L(self) -> float:
        return self.L_value

    @property
    def mu(self) -> float:
        return 0.0

    def _sample(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        d = rng.standard_normal((batch_size, self.n))
        d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), np.finfo(np.float64).tiny)
        y = self.R * d
        return y, y.copy()

    def smooth(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r = (x - y).norm(dim=-1)
        lin = self.L * self.tau * r - 0.5 * self.L * self.tau**2
        return torch.where(r >= self.tau, lin, 0.5 * self.L * r * r)

    def grad(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        d = x - y
        r = d.norm(dim=-1, keepdim=True)
        scale = torch.where(r >= self.tau, self.L * self.tau / torch.clamp(r, min=self.tau),
                            torch.full_like(r, self.L))
        return scale * d

    def reference(self, y: torch.Tensor) -> Reference:
        """x* = y and F* = 0 exactly (gap 0)."""
        self.check_y(y)
        b = y.shape[0]
        return Reference(y.clone(), torch.zeros(b, dtype=y.dtype, device=y.device),
                         torch.zeros(b, dtype=torch.float64), "exact")
