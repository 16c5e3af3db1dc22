"""Base class of the unfolded robust-PCA models: K layers iterating a step of ``unrolled/rpca.py``.

Contract (the RPCA analogue of ``unrolled.models.base.UnfoldedModel``, which is tied to vector problems):
- ``forward(M, num_layers=None)``: M of shape (B, n1, n2) -> (L_K, S_K), each (B, n1, n2); ``num_layers``
  truncates the network (layer-wise training, per-layer evaluation).
- ``trajectory(M)``: every layer's pair as an ``RPCATrajectory`` (K+1, B, n1, n2), ``kind`` "model", the
  same record the classical solvers return, so whatever measures a solver measures a model.
- ``config()``: JSON-serialisable constructor arguments; ``RPCA_MODELS[family](**config)`` rebuilds it.
- ``from_classical(problem, num_layers, ...)``: a model whose initial parameters reproduce its classical
  solver exactly (same iterates up to float round-off; tests/test_rpca_models.py).
- ``parameter_info()``: name, shape, learned, tied and the classical meaning of every parameter tensor;
  ``schedule()``: the per-layer scalar parameters in float64; ``layer_parameters(k)``: those of layer k.
Models are float32 by default; pass ``dtype=torch.float64`` (or "float64") for theory-grade runs. A model
runs on the dtype and device of its parameters; the input is cast to them.
"""
from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from unfoldkit.unrolled.dtypes import as_dtype
from unfoldkit.unrolled.models.base import ParamInfo, TracksDtype
from unfoldkit.unrolled.models.common import layer_values, parameter
from unfoldkit.unrolled.rpca import RPCATrajectory, check_batch
from unfoldkit.unrolled.validation import positive_int

Tensor = torch.Tensor


class RpcaUnfolded(TracksDtype, metaclass=ABCMeta):
    """Abstract unfolded RPCA network; subclasses implement ``_init_state``, ``_layer``, ``_pair`` and
    ``config``. The state is whatever the classical solver carries (e.g. (U, V, S) for ScaledGD)."""

    #: registry name (``unrolled.rpca_models.RPCA_MODELS``)
    family: ClassVar[str] = "rpca-unfolded"
    #: survey paradigm: "hyperparameters", "objective", "correction" or "inductive-bias"
    paradigm: ClassVar[str] = ""
    #: the classical solver the model equals at ``from_classical`` (its ``RPCATrajectory.algorithm``)
    classical: ClassVar[str] = ""

    def __init__(self, num_layers: int, dtype: torch.dtype | str = torch.float32) -> None:
        super().__init__()
        self.num_layers = positive_int("num_layers", num_layers)
        self.model_dtype = as_dtype(dtype)

    # -- to implement ---------------------------------------------------------------------------
    @abstractmethod
    def _init_state(self, M: Tensor) -> Any:
        """The state before layer 1."""

    @abstractmethod
    def _layer(self, k: int, state: Any, M: Tensor) -> Any:
        """Layer k (0-based): the next state."""

    @abstractmethod
    def _pair(self, state: Any) -> tuple[Tensor, Tensor]:
        """The estimate (L_k, S_k) held by a state."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments."""

    def schedule(self) -> dict[str, np.ndarray]:
        """Per-layer scalar parameters in float64 (empty for a model without any)."""
        return {}

    def layer_masks(self, k: int) -> dict[str, Tensor]:
        """For layer-wise training: parameter name -> boolean mask of its entries that belong to layer k
        (0-based). A tensor with a leading dimension K gives row k; one with K + 1 (an initial value, then
        one per layer) rows k + 1 and, for k = 0, row 0; a module list ``name.j.*`` belongs to layer j; a
        tied tensor (shared by every layer) belongs to every layer."""
        K = self.num_layers
        masks = {}
        for name, p in self.named_parameters():
            parts = name.split(".")
            mask = torch.zeros_like(p, dtype=torch.bool)
            if len(parts) > 2 and parts[1].isdigit():
                mask[...] = int(parts[1]) == k
            elif p.ndim >= 1 and p.shape[0] == K + 1:
                mask[k + 1] = True
                mask[0] = k == 0
            elif p.ndim >= 1 and p.shape[0] == K and K > 1:
                mask[k] = True
            else:
                mask[...] = True
            masks[name] = mask
        return masks

    # -- shared -------------------------------------------------------------------------------
    def _check_input(self, M: Tensor) -> Tensor:
        try:
            M = check_batch("M", M)
        except ValueError as err:
            raise ValueError(f"{self.family}: {err}") from None
        p = next(self.parameters(), None)
        device = p.device if p is not None else M.device
        return M.to(device=device, dtype=self.model_dtype)

    def _depth(self, num_layers: int | None) -> int:
        if num_layers is None:
            return self.num_layers
        k = int(num_layers)
        if isinstance(num_layers, bool) or not 0 <= k <= self.num_layers:
            raise ValueError(f"{self.family}: num_layers must be an integer in [0, {self.num_layers}], "
                             f"got {num_layers!r}")
        return k

    def forward(self, M: Tensor, num_layers: int | None = None) -> tuple[Tensor, Tensor]:
        M = self._check_input(M)
        state = self._init_state(M)
        for k in range(self._depth(num_layers)):
            state = self._layer(k, state, M)
        return self._pair(state)

    def trajectory(self, M: Tensor, *, grad: bool = False, num_layers: int | None = None) -> RPCATrajectory:
        """Every layer's (L_k, S_k) on M (B, n1, n2) as an ``RPCATrajectory`` (K+1, B, n1, n2) with
        ``algorithm`` = the family, ``kind`` = "model" and the schedule as ``params``; without ``grad`` it
        runs under ``torch.no_grad()``."""
        M = self._check_input(M)
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            state = self._init_state(M)
            Ls, Ss = map(list, zip(self._pair(state)))
            for k in range(self._depth(num_layers)):
                state = self._layer(k, state, M)
                L, S = self._pair(state)
                Ls.append(L)
                Ss.append(S)
            L, S = torch.stack(Ls), torch.stack(Ss)
        params = {k: np.asarray(v, dtype=np.float64).tolist() for k, v in self.schedule().items()}
        params.update(self._trajectory_params())
        if not grad:
            L, S = L.detach(), S.detach()
        return RPCATrajectory(L, S, self.family, params, kind="model")

    def _trajectory_params(self) -> dict[str, Any]:
        """Extra constants recorded in a trajectory's params (e.g. the rank)."""
        return {}

    def parameter_info(self) -> list[ParamInfo]:
        """Default: every nn.Parameter is learned; a leading dimension of num_layers means untied."""
        meanings = self._meanings()
        info = []
        for name, p in self.named_parameters():
            untied = p.ndim >= 1 and p.shape[0] == self.num_layers and self.num_layers > 1
            info.append(ParamInfo(name, tuple(p.shape), p.requires_grad, not untied,
                                  meanings.get(name.split(".")[0], "")))
        return info

    def _meanings(self) -> dict[str, str]:
        """Parameter (top-level name) -> the classical quantity it keeps its meaning as ("" if none)."""
        return {}

    def num_learned(self) -> int:
        """The number of learned scalars."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def extra_repr(self) -> str:
        return f"family={self.family}, layers={self.num_layers}, learned={self.num_learned()}"


def as_parameter(values: Any, length: int, name: str, dtype: torch.dtype) -> nn.Parameter:
    """A learned per-layer vector (length,) from a scalar or a sequence, checked finite
    (``models.common.layer_values`` and ``parameter``, as the sparse models do)."""
    return parameter(layer_values(name, values, length), dtype)
