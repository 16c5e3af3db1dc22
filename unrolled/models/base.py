"""Base class of every unfolded model: K layers iterating a step of ``unrolled/steps.py``.

Contract (used by training, checkpoints, theory checks and reports):
- ``forward(y, trajectory=False)``: y of shape (B, m) -> x_K of shape (B, n); with ``trajectory=True``
  the whole trajectory (K+1, B, n), x_0 first (theory speaks per layer).
- ``trajectory(y)``: the same iterates as a ``Trajectory``, the record the classical solvers return.
- ``config()``: JSON-serialisable constructor arguments (without the problem), so that
  ``MODELS[family](problem, **config)`` rebuilds the same architecture.
- ``parameter_info()``: one ParamInfo per parameter tensor: its name, shape, whether it is learned, and
  whether it is tied (one value shared by all layers) or untied (one per layer).
- ``from_classical(problem, num_layers, ...)``: a model whose initial parameters reproduce the classical
  algorithm exactly (same iterates up to float round-off).
- ``schedule()``: the per-layer scalar hyperparameters (step, threshold, momentum, rho, percent) in float64.
Models are float32 by default; pass ``dtype=torch.float64`` (or "float64") for theory-grade runs. They run
on CPU or CUDA: the problem's matrices are fetched in the dtype and device of the input.
"""
from __future__ import annotations

from abc import ABCMeta, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from unfoldkit.unrolled.problems.base import Problem
from unfoldkit.unrolled.trajectory import Trajectory
from unfoldkit.unrolled.dtypes import DTYPE_NAMES, as_dtype
from unfoldkit.unrolled.validation import positive_int


@dataclass(frozen=True)
class ParamInfo:
    """Description of one parameter tensor of an unfolded model."""

    name: str
    shape: tuple[int, ...]
    learned: bool
    tied: bool
    meaning: str = ""


class TracksDtype(nn.Module):
    """A module with a ``model_dtype`` (float32 or float64) that follows its parameters: nn.Module's ``to`` /
    ``double`` / ``float`` / ``cuda`` hook keeps it in step, so ``model.to(torch.float64)`` also casts the
    inputs to float64. Shared by the sparse-recovery and the robust-PCA models."""

    model_dtype: torch.dtype

    @property
    def dtype_name(self) -> str:
        """The model dtype as a JSON-friendly string ("float32" or "float64")."""
        return DTYPE_NAMES[self.model_dtype]

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "TracksDtype":
        out = super()._apply(fn, *args, **kwargs)
        for t in (*self.parameters(), *self.buffers()):
            if t.dtype in DTYPE_NAMES:
                self.model_dtype = t.dtype
                break
        return out


class UnfoldedModel(TracksDtype, metaclass=ABCMeta):
    """Abstract unfolded network over a Problem; subclasses implement ``_layer`` and ``config``."""

    #: registry name (``unrolled.models.MODELS``), stored in checkpoints
    family: ClassVar[str] = "unfolded"
    #: survey paradigm: "hyperparameters", "objective", "correction" or "inductive-bias"
    paradigm: ClassVar[str] = ""

    def __init__(self, problem: Problem, num_layers: int, dtype: torch.dtype | str = torch.float32) -> None:
        super().__init__()
        dtype = as_dtype(dtype)
        if not isinstance(problem, Problem):
            raise ValueError(f"{self.family}: problem must be a unfoldkit Problem, got {type(problem).__name__}")
        self.problem = problem
        self.num_layers = positive_int("num_layers", num_layers)
        self.model_dtype = dtype

    # -- to implement ---------------------------------------------------------------------------
    def _init_state(self, y: torch.Tensor) -> Any:
        """State before layer 0; default: x_0 = 0 (a tensor)."""
        return self.problem.initial_point(y)

    @abstractmethod
    def _layer(self, k: int, state: Any, y: torch.Tensor) -> Any:
        """Layer k: the next state from ``state`` and the observations ``y``."""

    def _readout(self, state: Any) -> torch.Tensor:
        """The iterate x_k held by a state; default: the state is x_k."""
        return state

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments (without the problem)."""

    # -- shared -------------------------------------------------------------------------------
    def forward(self, y: torch.Tensor, trajectory: bool = False) -> torch.Tensor:
        y = self._check_input(y)
        state = self._init_state(y)
        out = [self._readout(state)] if trajectory else None
        for k in range(self.num_layers):
            state = self._layer(k, state, y)
            if out is not None:
                out.append(self._readout(state))
        return torch.stack(out) if out is not None else self._readout(state)

    def trajectory(self, y: torch.Tensor, *, grad: bool = False) -> Trajectory:
        """Run the model on ``y`` (B, m) and return every layer's iterate as a ``Trajectory`` (K+1, B, n),
        the type the classical solvers return, with ``algorithm`` = the family, ``kind`` = "model" and the
        per-layer schedule as ``params``. Without ``grad`` it runs under ``torch.no_grad()``."""
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            iterates = self(y, trajectory=True)
        params = {k: np.asarray(v, dtype=np.float64).tolist() for k, v in self.schedule().items()}
        return Trajectory(iterates if grad else iterates.detach(), self.family, params, kind="model")

    def _check_input(self, y: torch.Tensor) -> torch.Tensor:
        """Validate y (shape (B, m), finite) and cast it to the model dtype; errors name model and problem."""
        try:
            y = self.problem.check_y(y)
        except ValueError as err:
            raise ValueError(f"{self.family} on {self.problem!r}: {err}") from None
        return y.to(self.model_dtype)

    def schedule(self) -> dict[str, np.ndarray]:
        """Per-layer scalar hyperparameters in float64 (keys among "step", "threshold", "momentum", "rho",
        "percent"), each of shape (num_layers,); empty for a model without any."""
        return {}

    def parameter_info(self) -> list[ParamInfo]:
        """Default: every nn.Parameter is learned; a leading dimension of num_layers means untied."""
        info = []
        for name, p in self.named_parameters():
            untied = p.ndim >= 1 and p.shape[0] == self.num_layers and self.num_layers > 1
            info.append(ParamInfo(name, tuple(p.shape), p.requires_grad, not untied))
        return info

    def extra_repr(self) -> str:
        return f"family={self.family}, layers={self.num_layers}, problem={self.problem.name}"
