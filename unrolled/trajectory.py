"""The trajectory of a run: every iterate x_0, ..., x_K of a batch, with the metrics theory speaks of."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from unfoldkit.unrolled.problems.base import Problem, Reference


@dataclass
class Trajectory:
    """Iterates of shape (K+1, B, n): index k holds x_k for the whole batch (x_0 first).

    The one record of a run: the classical solvers (``run_gd``, ``run_ista``, ...) and the unfolded models
    (``UnfoldedModel.trajectory``) both return it, so whatever measures a solver measures a model.
    ``algorithm`` is the solver's name or the model's family; ``params`` its per-step parameters."""

    iterates: torch.Tensor
    algorithm: str
    params: dict[str, Any] = field(default_factory=dict)
    #: "classical" for a solver of ``solvers.py``, "model" for an unfolded network
    kind: str = "classical"

    @property
    def num_steps(self) -> int:
        return self.iterates.shape[0] - 1

    @property
    def final(self) -> torch.Tensor:
        return self.iterates[-1]

    def objective(self, problem: Problem, y: torch.Tensor) -> torch.Tensor:
        """F(x_k; y) for every k and batch row, shape (K+1, B)."""
        k1, b, n = self.iterates.shape
        flat = self.iterates.reshape(k1 * b, n)
        return problem.objective(flat, y.repeat(k1, 1)).reshape(k1, b)

    def objective_gap(self, problem: Problem, y: torch.Tensor, reference: Reference) -> torch.Tensor:
        """F(x_k) - F(x_ref), shape (K+1, B): a lower bound on F(x_k) - F*, off by at most reference.gap."""
        return self.objective(problem, y) - reference.objective.to(self.iterates.dtype)

    def distance(self, x_star: torch.Tensor) -> torch.Tensor:
        """||x_k - x*||_2, shape (K+1, B)."""
        return (self.iterates - x_star.to(self.iterates.dtype)).norm(dim=-1)

