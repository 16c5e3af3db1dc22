"""Training schemes for unfolded models: what is minimised, over which parameters, in which stages.

Notation: a model with K layers maps an observation y to the trajectory x_0, x_1, ..., x_K (x_0 the
starting point); x is the ground truth. The per-layer loss is

    NMSE(x_k, x) = sum_b ||x_k^b - x^b||^2 / sum_b ||x^b||^2     (ratio of sums over the batch, as in
                                                                   the LISTA-CPSS code: l2_loss(x_k - x)
                                                                   / l2_loss(x))
    MSE(x_k, x)  = mean over batch and coordinates of (x_k - x)^2.

Schemes (the survey's training strategies):

- ``end-to-end``: minimise loss(x_K, x) over all learned parameters.
- ``multi-loss`` (deep supervision): minimise sum_k w_k loss(x_k, x), k = 1..K, default w_k = 1/K.
- ``layer-wise`` (greedy, stage-wise; Chen et al. 2018 "Theoretical linear convergence of unfolded ISTA",
  Liu et al. 2019 "ALISTA"; recipe read in VITA-Group/LISTA-CPSS ``utils/train.py``,
  ``setup_sc_training``, and ``config.py``): for k = 1..K, first train only the parameters new in layer k
  on loss(x_k, x) with learning rate lr, then fine-tune layers 1..k jointly on the same loss with
  lr * 0.2 and then lr * 0.02 (``--lr_decay 0.2,0.02``); after layer k, the learning rate of every
  parameter trained so far is multiplied by ``layer_decay`` (``--decay_rate 0.3``). A fresh Adam
  optimizer is used in every stage. See docs/training.md for how ``layer_decay`` is applied.
- ``unsupervised``: minimise the mean objective F(x_K; y) of the problem; no ground truth is used.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from unfoldkit.unrolled.metrics import mse, nmse, to_db  # noqa: F401  (re-exported)
from unfoldkit.unrolled.problems.base import Problem, ProblemBatch
from unfoldkit.unrolled.training.layers import layer_parameters, unassigned_parameters
from unfoldkit.unrolled.validation import finite_real

#: per-layer losses against the ground truth
LOSSES = ("nmse", "mse")


def _check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    return loss


@dataclass(frozen=True)
class ParamSpec:
    """A parameter trained in a stage: its learning rate is ``stage lr * lr_mult``, and, when
    ``row_mult`` is given, row j of the tensor moves with ``stage lr * row_mult[j]`` (0: frozen)."""

    name: str
    param: nn.Parameter
    lr_mult: float = 1.0
    row_mult: tuple[float, ...] | None = None


@dataclass
class Stage:
    """One phase of training: a loss on layer ``target_layer`` (1..K), a learning-rate factor relative
    to the base learning rate, and the parameters it trains."""

    name: str
    target_layer: int
    lr_factor: float
    params: list[ParamSpec] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        """JSON description: name, target layer, lr factor, and each trained tensor with its multipliers."""
        return {"name": self.name, "target_layer": self.target_layer, "lr_factor": self.lr_factor,
                "params": [{"name": p.name, "lr_mult": p.lr_mult,
                            "row_mult": None if p.row_mult is None else list(p.row_mult)} for p in self.params]}


def _all_learned(model: nn.Module) -> list[ParamSpec]:
    specs = [ParamSpec(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not specs:
        raise ValueError(f"{type(model).__name__} has no learned parameters (requires_grad=True): nothing to train")
    return specs


class Scheme(ABC):
    """A training scheme: ``stages(model)`` plans the training, ``loss(...)`` is minimised in a stage."""

    name: ClassVar[str] = "scheme"
    #: whether the loss needs the ground truth x of a ProblemBatch
    supervised: ClassVar[bool] = True

    def __init__(self, loss: str = "nmse") -> None:
        self.loss_name = _check_loss(loss)

    def layer_loss(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The per-layer loss (NMSE or MSE) of iterate ``x_hat`` against the ground truth ``x``."""
        return nmse(x_hat, x) if self.loss_name == "nmse" else mse(x_hat, x)

    @abstractmethod
    def stages(self, model: nn.Module) -> list[Stage]:
        """The stages of training for ``model`` (one for every scheme but layer-wise)."""

    @abstractmethod
    def loss(self, trajectory: torch.Tensor, batch: ProblemBatch, problem: Problem, stage: Stage) -> torch.Tensor:
        """The scalar loss of a batch; ``trajectory`` has shape (K+1, B, n), x_0 first."""

    def settings(self) -> dict[str, Any]:
        """JSON-serialisable options, stored in checkpoints (``make_scheme(name, **settings)`` rebuilds it)."""
        return {"loss": self.loss_name}

    def _truth(self, batch: ProblemBatch) -> torch.Tensor:
        if batch.x is None:
            raise ValueError(f"scheme {self.name!r} needs the ground truth x, but the batch has none "
                             f"(use the 'unsupervised' scheme)")
        return batch.x

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({args})"


class EndToEnd(Scheme):
    """Minimise loss(x_K, x) over all learned parameters at once."""

    name = "end-to-end"

    def stages(self, model: nn.Module) -> list[Stage]:
        """A single stage training every learned parameter on the last layer."""
        return [Stage("end-to-end", model.num_layers, 1.0, _all_learned(model))]

    def loss(self, trajectory: torch.Tensor, batch: ProblemBatch, problem: Problem, stage: Stage) -> torch.Tensor:
        """loss(x_K, x)."""
        return self.layer_loss(trajectory[-1], self._truth(batch))


class MultiLoss(Scheme):
    """Deep supervision: minimise sum_{k=1..K} w_k loss(x_k, x); default w_k = 1/K.

    ``weights``: K non-negative finite numbers, not all zero, used as given (not renormalised).
    """

    name = "multi-loss"

    def __init__(self, loss: str = "nmse", weights: Sequence[float] | None = None) -> None:
        super().__init__(loss)
        if weights is not None:
            w = [finite_real("weights[i]", v) for v in weights]
            if not w or any(v < 0 for v in w) or not any(v > 0 for v in w):
                raise ValueError(f"weights must be non-negative, not all zero, and non-empty, got {list(weights)!r}")
            self.weights: tuple[float, ...] | None = tuple(w)
        else:
            self.weights = None

    def layer_weights(self, num_layers: int) -> tuple[float, ...]:
        """The weights w_1..w_K for a model of ``num_layers`` layers (uniform 1/K by default)."""
        if self.weights is None:
            return tuple([1.0 / num_layers] * num_layers)
        if len(self.weights) != num_layers:
            raise ValueError(f"multi-loss weights must have one entry per layer ({num_layers}), "
                             f"got {len(self.weights)}")
        return self.weights

    def stages(self, model: nn.Module) -> list[Stage]:
        """A single stage training every learned parameter on the weighted sum over layers."""
        self.layer_weights(model.num_layers)
        return [Stage("multi-loss", model.num_layers, 1.0, _all_learned(model))]

    def loss(self, trajectory: torch.Tensor, batch: ProblemBatch, problem: Problem, stage: Stage) -> torch.Tensor:
        """sum_k w_k loss(x_k, x) over k = 1..K (layers with w_k = 0 are skipped)."""
        x = self._truth(batch)
        weights = self.layer_weights(trajectory.shape[0] - 1)
        terms = [w * self.layer_loss(trajectory[k + 1], x) for k, w in enumerate(weights) if w != 0]
        return torch.stack(terms).sum()

    def settings(self) -> dict[str, Any]:
        """Loss and layer weights (None: uniform)."""
        return {"loss": self.loss_name, "weights": None if self.weights is None else list(self.weights)}


class LayerWise(Scheme):
    """Greedy stage-wise training (LISTA-CPSS recipe, Chen et al. 2018; Liu et al. 2019).

    For layer k = 1..K: a stage training only the parameters new in layer k (rows of untied tensors,
    ModuleList entries, tied tensors the first time) on loss(x_k, x) with lr; then one stage per factor d
    in ``lr_decay`` fine-tuning layers 1..k on loss(x_k, x) with lr * d. In layer k's stages a parameter of
    layer j <= k moves with an extra factor ``layer_decay ** (k - j)`` (tied parameters: j = 1).
    Defaults are the authors': lr_decay = (0.2, 0.02), layer_decay = 0.3.
    """

    name = "layer-wise"

    def __init__(self, loss: str = "nmse", lr_decay: Sequence[float] = (0.2, 0.02),
                 layer_decay: float = 0.3) -> None:
        super().__init__(loss)
        decays = [finite_real("lr_decay[i]", d) for d in lr_decay]
        if any(d <= 0 for d in decays):
            raise ValueError(f"lr_decay factors must be > 0, got {list(lr_decay)!r}")
        self.lr_decay = tuple(decays)
        self.layer_decay = finite_real("layer_decay", layer_decay)
        if not 0 < self.layer_decay <= 1:
            raise ValueError(f"layer_decay must lie in (0, 1], got {layer_decay!r}")

    def stages(self, model: nn.Module) -> list[Stage]:
        """2 + len(lr_decay) stages per layer at most (a layer with no new parameters skips its first)."""
        num_layers = model.num_layers
        missing = unassigned_parameters(model)
        if missing:
            raise ValueError(f"layer-wise training: parameters {missing} belong to no layer "
                             f"(see docs/training.md, 'Which parameters belong to layer k')")
        per_layer = [layer_parameters(model, k) for k in range(num_layers)]
        seen: set[tuple[str, int | None]] = set()
        out: list[Stage] = []
        for k in range(num_layers):
            new = [e for e in per_layer[k] if (e.name, e.index) not in seen and (e.name, None) not in seen]
            if new:
                mults = {(e.name, e.index): 1.0 for e in new}
                out.append(Stage(f"layer {k + 1}/{num_layers}: new parameters", k + 1, 1.0,
                                 _specs(model, mults)))
            seen.update((e.name, e.index) for e in new)
            mults = {}
            for j in range(k + 1):
                for e in per_layer[j]:
                    if (e.name, e.index) in seen:
                        mults.setdefault((e.name, e.index), self.layer_decay ** (k - j))
            if not mults:
                continue
            for d in self.lr_decay:
                out.append(Stage(f"layer {k + 1}/{num_layers}: fine-tune layers 1..{k + 1}, lr x {d:g}", k + 1, d,
                                 _specs(model, mults)))
        if not out:
            raise ValueError(f"{type(model).__name__} has no learned parameters: nothing to train")
        return out

    def loss(self, trajectory: torch.Tensor, batch: ProblemBatch, problem: Problem, stage: Stage) -> torch.Tensor:
        """loss(x_k, x) for the stage's layer k."""
        return self.layer_loss(trajectory[stage.target_layer], self._truth(batch))

    def settings(self) -> dict[str, Any]:
        """Loss, fine-tuning learning-rate factors and per-layer decay."""
        return {"loss": self.loss_name, "lr_decay": list(self.lr_decay), "layer_decay": self.layer_decay}


def _specs(model: nn.Module, mults: dict[tuple[str, int | None], float]) -> list[ParamSpec]:
    """Group (name, row) -> multiplier into one ParamSpec per tensor (in named_parameters order)."""
    out = []
    for name, p in model.named_parameters():
        whole = mults.get((name, None))
        rows = {i: m for (n, i), m in mults.items() if n == name and i is not None}
        if whole is not None:
            out.append(ParamSpec(name, p, whole))
        elif rows:
            row_mult = tuple(rows.get(i, 0.0) for i in range(p.shape[0]))
            if len(set(row_mult)) == 1:
                out.append(ParamSpec(name, p, row_mult[0]))
            else:
                out.append(ParamSpec(name, p, 1.0, row_mult))
    return out


class Unsupervised(Scheme):
    """Minimise the mean objective (1/B) sum_b F(x_K^b; y^b) of the problem: no ground truth needed."""

    name = "unsupervised"
    supervised = False

    def __init__(self) -> None:
        super().__init__("nmse")   # the per-layer loss is unused; NMSE is still reported when x exists

    def stages(self, model: nn.Module) -> list[Stage]:
        """A single stage training every learned parameter on the objective at the last layer."""
        return [Stage("unsupervised", model.num_layers, 1.0, _all_learned(model))]

    def loss(self, trajectory: torch.Tensor, batch: ProblemBatch, problem: Problem, stage: Stage) -> torch.Tensor:
        """mean_b F(x_K^b; y^b)."""
        return problem.objective(trajectory[-1], batch.y.to(trajectory.dtype)).mean()

    def settings(self) -> dict[str, Any]:
        """No options: the loss is the problem's objective."""
        return {}


#: name -> scheme class
SCHEMES: dict[str, type[Scheme]] = {c.name: c for c in (EndToEnd, MultiLoss, LayerWise, Unsupervised)}


def make_scheme(name: str | Scheme, **options: Any) -> Scheme:
    """A scheme by name (see SCHEMES) with its options, or ``name`` itself if it is already a Scheme."""
    if isinstance(name, Scheme):
        if options:
            raise ValueError("scheme options cannot be given together with a Scheme instance")
        return name
    if name not in SCHEMES:
        raise ValueError(f"unknown training scheme {name!r}; known: {', '.join(SCHEMES)}")
    try:
        return SCHEMES[name](**options)
    except TypeError as err:
        raise ValueError(f"bad options for scheme {name!r}: {err}") from None
