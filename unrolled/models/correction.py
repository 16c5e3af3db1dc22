"""Paradigm 3 (correction terms): a classical step followed by a small learned correction.

``IstaCorrection`` ("ista-correction"), layer k (state: the corrected iterate x^k and the previous ISTA
output z^{k-1}, with z^{-1} = x^0 = 0):

    v^k     = x^k - gamma_k grad f(x^k)                       (``steps.gradient_step``)
    z^k     = prox_{gamma_k g}(v^k)                            (together: the ISTA step)
    x^{k+1} = z^k + c_k(z^k, z^{k-1}, v^k).

Two correction networks (``correction=``), both "a residual MLP whose output layer starts at zero", so that
c_k = 0 and the model *is* ISTA at initialization (learning starts from the classical algorithm and its
guarantees, and the correction's size can be measured against them):

* ``"coordinate"`` (default): one small network per layer shared by all coordinates, applied to the
  coordinate-wise features u_i = (z_i, z^{k-1}_i, v_i):
      c_k(u)_i = a_k^T u_i + W_2^k relu(W_1^k u_i + b_1^k) + b_2^k,   W_1^k: hidden x 3,
  with the linear branch a_k and the output layer (W_2^k, b_2^k) zero at init. The linear branch holds
  FISTA's extrapolation exactly (a_k = (beta_k, -beta_k, 0) gives x^{k+1} = z^k + beta_k (z^k - z^{k-1}),
  Beck and Teboulle 2009), and the MLP a learned coordinate-wise nonlinearity on top (in the spirit of the
  learned shrinkage functions of LAMP/LISTA variants): 5 h + 4 parameters per layer, independent of n.
* ``"vector"``: c_k(z) = W_2^k relu(W_1^k z + b_1^k) + b_2^k on the whole n-vector z^k only (W_1^k: hidden x n).
  It sees neither z^{k-1} nor v^k, so it cannot express momentum; measured below FISTA in the benchmark
  (benchmarks/README.md), kept for comparison and for problems where a global correction is wanted.

Hidden layers are drawn like torch's nn.Linear default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from a seeded
generator (``seed``).
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
from unfoldkit.unrolled.steps import gradient_step
from unfoldkit.unrolled.validation import nonnegative_int, positive_int

Tensor = torch.Tensor

#: the correction networks ``IstaCorrection`` offers
CORRECTIONS = ("coordinate", "vector")
#: coordinate-wise features of the "coordinate" correction: z^k, z^{k-1}, v^k
NUM_FEATURES = 3


def _uniform_(tensor: Tensor, fan_in: int, generator: torch.Generator) -> None:
    """Fill ``tensor`` with U(-1/sqrt(fan_in), 1/sqrt(fan_in)) drawn in float64 from ``generator``."""
    bound = 1.0 / math.sqrt(fan_in)
    tensor.copy_((torch.rand(tensor.shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound)


def _hidden_and_zero_output(fan_in: int, hidden: int, fan_out: int,
                            generator: torch.Generator) -> tuple[nn.Linear, nn.Linear]:
    """Linear(fan_in, hidden) drawn from ``generator`` and Linear(hidden, fan_out) set to zero."""
    first, last = nn.Linear(fan_in, hidden), nn.Linear(hidden, fan_out)
    with torch.no_grad():
        _uniform_(first.weight, fan_in, generator)
        _uniform_(first.bias, fan_in, generator)
        last.weight.zero_()
        last.bias.zero_()
    return first, last


class CoordinateCorrection(nn.Module):
    """c(u)_i = a^T u_i + W_2 relu(W_1 u_i + b_1) + b_2 on features u of shape (..., n, 3); zero at init."""

    def __init__(self, hidden: int, generator: torch.Generator) -> None:
        super().__init__()
        self.linear = nn.Linear(NUM_FEATURES, 1, bias=False)
        nn.init.zeros_(self.linear.weight)
        self.first, self.last = _hidden_and_zero_output(NUM_FEATURES, hidden, 1, generator)

    def forward(self, features: Tensor) -> Tensor:
        out = self.linear(features) + self.last(torch.relu(self.first(features)))
        return out.squeeze(-1)


class VectorCorrection(nn.Module):
    """c(z) = W_2 relu(W_1 z + b_1) + b_2 on the n-vector z; zero at init."""

    def __init__(self, n: int, hidden: int, generator: torch.Generator) -> None:
        super().__init__()
        self.first, self.last = _hidden_and_zero_output(n, hidden, n, generator)

    def forward(self, z: Tensor) -> Tensor:
        return self.last(torch.relu(self.first(z)))


class IstaCorrection(UnfoldedModel):
    """ISTA (fixed steps gamma_k, default 1/L) plus a learned residual correction after every step.

    Works on any Problem (the ISTA step uses the problem's own gradient and prox). Learned: the correction
    network of each layer (untied); the steps are fixed. ``from_classical`` (and the constructor) give
    exactly ``run_ista``'s iterates, the correction being zero at initialization.
    """

    family = "ista-correction"
    paradigm = "correction"

    def __init__(self, problem: Problem, num_layers: int, hidden: int = 32, step: Any = None, seed: int = 0,
                 correction: str = "coordinate", dtype: torch.dtype | str = torch.float32) -> None:
        super().__init__(problem, num_layers, dtype)
        if correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
        self.hidden = positive_int("hidden", hidden)
        self.seed = nonnegative_int("seed", seed)
        self.correction = correction
        self._steps = default_step(problem, step, self.num_layers)
        self._args = {"hidden": self.hidden, "step": json_schedule(step), "seed": self.seed,
                      "correction": correction}
        gen = torch.Generator().manual_seed(self.seed)
        if correction == "coordinate":
            nets = [CoordinateCorrection(self.hidden, gen) for _ in range(self.num_layers)]
        else:
            nets = [VectorCorrection(problem.n, self.hidden, gen) for _ in range(self.num_layers)]
        self.corrections = nn.ModuleList(nets).to(self.model_dtype)

    @classmethod
    def from_classical(cls, problem: Problem, num_layers: int, hidden: int = 32, step: Any = None,
                       seed: int = 0, correction: str = "coordinate",
                       dtype: torch.dtype | str = torch.float32) -> "IstaCorrection":
        """ISTA with step ``step`` (default 1/L) and zero corrections: the iterates of ``run_ista``."""
        return cls(problem, num_layers, hidden=hidden, step=step, seed=seed, correction=correction, dtype=dtype)

    def _split_step(self, k: int, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The classical part of layer k as (v, z): v = x - gamma_k grad f(x), z = prox_{gamma_k g}(v)."""
        gamma = float(self._steps[k])
        v = gradient_step(x, lambda u: self.problem.grad(u, y), gamma)
        return v, self.problem.prox(v, gamma)

    def ista_step(self, k: int, x: Tensor, y: Tensor) -> Tensor:
        """The classical part of layer k: z = prox_{gamma_k g}(x - gamma_k grad f(x))."""
        return self._split_step(k, x, y)[1]

    def correction_term(self, k: int, z: Tensor, z_prev: Tensor, v: Tensor) -> Tensor:
        """c_k: the learned correction added to the ISTA output z of layer k."""
        if self.correction == "vector":
            return self.corrections[k](z)
        return self.corrections[k](torch.stack((z, z_prev, v), dim=-1))

    def _init_state(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x0 = super()._init_state(y)
        return x0, x0

    def _layer(self, k: int, state: tuple[Tensor, Tensor], y: Tensor) -> tuple[Tensor, Tensor]:
        x, z_prev = state
        v, z = self._split_step(k, x, y)
        return z + self.correction_term(k, z, z_prev, v), z

    def _readout(self, state: tuple[Tensor, Tensor]) -> Tensor:
        return state[0]

    def config(self) -> dict[str, Any]:
        return {"num_layers": self.num_layers, **self._args, "dtype": self.dtype_name}

    def schedule(self) -> dict[str, np.ndarray]:
        out = {"step": self._steps.copy()}
        if isinstance(self.problem, SparseRecovery):
            out["threshold"] = self.problem.lam * self._steps
        return out

    def parameter_info(self) -> list[ParamInfo]:
        roles = {"linear.weight": "linear branch a_k on (z, z_prev, v) (zero at init)",
                 "first.weight": "hidden weight W_1", "first.bias": "hidden bias b_1",
                 "last.weight": "output weight W_2 (zero at init)", "last.bias": "output bias b_2 (zero at init)"}
        info = []
        for name, p in self.named_parameters():
            _, k, role = name.split(".", 2)
            info.append(ParamInfo(name, tuple(p.shape), p.requires_grad, False,
                                  f"layer {k} {self.correction} correction: {roles.get(role, role)}"))
        return info
