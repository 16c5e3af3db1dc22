"""Paradigm 3 (correction terms): a classical step followed by a small learned correction.

``IstaCorrection`` ("ista-correction"):

    z^k     = prox_{gamma_k g}(x^k - gamma_k grad f(x^k))          (``steps.proximal_gradient_step``: ISTA)
    x^{k+1} = z^k + c_k(z^k),   c_k(z) = W_2^k relu(W_1^k z + b_1^k) + b_2^k,

one residual MLP per layer (untied), hidden width ``hidden``. The output layer (W_2^k, b_2^k) starts at
zero, so c_k = 0 and the model *is* ISTA at initialization: learning starts from the classical algorithm
and its guarantees, and the correction's size can be measured against them. The hidden layer is drawn
like torch's nn.Linear default, U(-1/sqrt(n), 1/sqrt(n)), from a seeded generator (``seed``).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from unfoldkit.unrolled.models.base import ParamInfo, UnfoldedModel
from unfoldkit.unrolled.models.common import default_step, json_schedule
from unfoldkit.unrolled.problems.base import Problem
from unfoldkit.unrolled.problems.sparse import SparseRecovery
from unfoldkit.unrolled.steps import proximal_gradient_step
from unfoldkit.unrolled.validation import nonnegative_int, positive_int

Tensor = torch.Tensor


def _correction_mlp(n: int, hidden: int, generator: torch.Generator, dtype: torch.dtype) -> nn.Sequential:
    """Linear(n, hidden) -> ReLU -> Linear(hidden, n), the last layer zero (so the correction is 0)."""
    first, last = nn.Linear(n, hidden), nn.Linear(hidden, n)
    bound = 1.0 / math.sqrt(n)
    with torch.no_grad():
        first.weight.copy_((torch.rand(hidden, n, generator=generator, dtype=torch.float64) * 2 - 1) * bound)
        first.bias.copy_((torch.rand(hidden, generator=generator, dtype=torch.float64) * 2 - 1) * bound)
        last.weight.zero_()
        last.bias.zero_()
    return nn.Sequential(first, nn.ReLU(), last).to(dtype)


class IstaCorrection(UnfoldedModel):
    """ISTA (fixed steps gamma_k, default 1/L) plus a learned residual MLP correction after every step.

    Works on any Problem (the ISTA step uses the problem's own gradient and prox). Learned: the MLP
    weights of each layer (untied); the steps are fixed. ``from_classical`` (and the constructor) give
    exactly ``run_ista``'s iterates, the correction being zero at initialization.
    """

    family = "ista-correction"
    paradigm = "correction"

    def __init__(self, problem: Problem, num_layers: int, hidden: int = 32, step: Any = None, seed: int = 0,
                 dtype: torch.dtype | str = torch.float32) -> None:
        super().__init__(problem, num_layers, dtype)
        self.hidden = positive_int("hidden", hidden)
        self.seed = nonnegative_int("seed", seed)
        self._steps = default_step(problem, step, self.num_layers)
        self._args = {"hidden": self.hidden, "step": json_schedule(step), "seed": self.seed}
        gen = torch.Generator().manual_seed(self.seed)
        self.corrections = nn.ModuleList(
            _correction_mlp(problem.n, self.hidden, gen, self.model_dtype) for _ in range(self.num_layers))

    @classmethod
    def from_classical(cls, problem: Problem, num_layers: int, hidden: int = 32, step: Any = None,
                       seed: int = 0, dtype: torch.dtype | str = torch.float32) -> "IstaCorrection":
        """ISTA with step ``step`` (default 1/L) and zero corrections: the iterates of ``run_ista``."""
        return cls(problem, num_layers, hidden=hidden, step=step, seed=seed, dtype=dtype)

    def ista_step(self, k: int, x: Tensor, y: Tensor) -> Tensor:
        """The classical part of layer k: z = prox_{gamma_k g}(x - gamma_k grad f(x))."""
        gamma = float(self._steps[k])
        grad_fn = lambda v: self.problem.grad(v, y)  # noqa: E731
        return proximal_gradient_step(x, grad_fn, gamma, lambda v: self.problem.prox(v, gamma))

    def _layer(self, k: int, state: Tensor, y: Tensor) -> Tensor:
        z = self.ista_step(k, state, y)
        return z + self.corrections[k](z)

    def config(self) -> dict[str, Any]:
        return {"num_layers": self.num_layers, **self._args, "dtype": self.dtype_name}

    def schedule(self) -> dict[str, np.ndarray]:
        out = {"step": self._steps.copy()}
        if isinstance(self.problem, SparseRecovery):
            out["threshold"] = self.problem.lam * self._steps
        return out

    def parameter_info(self) -> list[ParamInfo]:
        roles = {"0.weight": "hidden weight W_1", "0.bias": "hidden bias b_1",
                 "2.weight": "output weight W_2 (zero at init)", "2.bias": "output bias b_2 (zero at init)"}
        info = []
        for name, p in self.named_parameters():
            _, k, role = name.split(".", 2)
            info.append(ParamInfo(name, tuple(p.shape), p.requires_grad, False,
                                  f"layer {k} correction MLP: {roles.get(role, role)}"))
        return info
