"""Training an unfolded RPCA model on fresh samples of a ``RobustPCA`` problem.

Loss: the mean over the batch of ||L_K - L0||_F^2 / ||L0||_F^2 (the relative form of the loss
||L - L0||_F of LRPCA's and the survey co-author's code, dviravra/Unfolded_Approximated_Optimization,
``Robust_PCA/synthetic``, so that batches of different scale weigh the same). Two schedules:
- end to end: ``steps`` Adam steps on every parameter, loss at the last layer;
- layer-wise (``layerwise=(new, all)``), as in that code (500 steps on the new layer, then 1000 on all):
  for k = 1..K, ``new`` steps on layer k's parameters (``RpcaUnfolded.layer_masks``), then ``all`` steps on
  layers 1..k, each with the loss at layer k and a fresh Adam.
Every step draws a fresh batch from a seeded stream (so samples seen = steps x batch size); a fixed
validation batch from another seed gives the curve of the relative error of L at the last layer.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from unfoldkit.unrolled.metrics import amplitude_db
from unfoldkit.unrolled.problems.rpca import RobustPCA
from unfoldkit.unrolled.rpca import relative_error
from unfoldkit.unrolled.rpca_models.base import RpcaUnfolded
from unfoldkit.unrolled.validation import nonnegative_int, positive_int, positive_real


@dataclass
class RpcaTrainResult:
    """History of a run: ``loss`` per step, the validation ``curve`` [(samples seen, error of L at the last
    layer in dB)], wall ``seconds``, ``samples`` seen and the ``schedule`` used."""

    loss: list[float] = field(default_factory=list)
    curve: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    samples: int = 0
    schedule: dict[str, Any] = field(default_factory=dict)

    def samples_to_within(self, db: float = 1.0) -> int:
        """The samples seen when the validation error first came within ``db`` dB of its final value."""
        if not self.curve:
            return 0
        final = self.curve[-1][1]
        return next(s for s, v in self.curve if v <= final + db)

    def to_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "curve": [list(c) for c in self.curve], "seconds": self.seconds,
                "samples": self.samples, "schedule": self.schedule,
                "samples_to_within_1db": self.samples_to_within(1.0)}


def relative_sq_loss(L: torch.Tensor, L0: torch.Tensor) -> torch.Tensor:
    """mean_b ||L_b - L0_b||_F^2 / ||L0_b||_F^2."""
    return (relative_error(L, L0) ** 2).mean()


def error_db(model: RpcaUnfolded, M: torch.Tensor, L0: torch.Tensor, num_layers: int | None = None) -> float:
    """20 log10 of the mean relative Frobenius error of L at layer ``num_layers`` (default: the last)."""
    with torch.no_grad():
        L, _ = model(M, num_layers=num_layers)
        e = float(relative_error(L.double(), L0.to(device=L.device, dtype=torch.float64)).mean())
    return amplitude_db(e)


def train_rpca(
    model: RpcaUnfolded,
    problem: RobustPCA,
    steps: int = 200,
    batch_size: int = 8,
    lr: float = 1e-2,
    layerwise: tuple[int, int] | None = None,
    val_size: int = 16,
    eval_every: int = 10,
    clip: float = 10.0,
    seed: int = 0,
    callback: Callable[[int, float], None] | None = None,
) -> RpcaTrainResult:
    """Train ``model`` in place (Adam, learning rate ``lr``, gradient norm clipped at ``clip``) and return
    its history. ``layerwise`` = (new, all) selects the layer-wise schedule (``steps`` is then unused).
    A non-finite loss raises RuntimeError naming the step (the parameters keep their last finite values)."""
    steps = nonnegative_int("steps", steps)
    batch_size = positive_int("batch_size", batch_size)
    lr = positive_real("lr", lr)
    eval_every = positive_int("eval_every", eval_every)
    clip = positive_real("clip", clip)
    if layerwise is not None:
        if len(layerwise) != 2:
            raise ValueError(f"layerwise must be a pair (new, all) of step counts, got {layerwise!r}")
        layerwise = (nonnegative_int("layerwise[0]", layerwise[0]), nonnegative_int("layerwise[1]", layerwise[1]))
    p = next(model.parameters())
    dtype, device = p.dtype, p.device
    gen = np.random.default_rng(seed)
    val = problem.sample(positive_int("val_size", val_size), rng=seed + 1_000_003, dtype=dtype, device=device)
    result = RpcaTrainResult(schedule={"steps": steps, "batch_size": batch_size, "lr": lr,
                                       "layerwise": list(layerwise) if layerwise else None, "seed": seed})
    K = model.num_layers
    stages: list[tuple[int, int, dict[str, torch.Tensor] | None]]
    if layerwise is None:
        stages = [(K, steps, None)]
    else:
        stages = []
        for k in range(1, K + 1):
            stages.append((k, layerwise[0], model.layer_masks(k - 1)))
            stages.append((k, layerwise[1], None))
    named = dict(model.named_parameters())
    start = time.perf_counter()
    result.curve.append((0, error_db(model, val.M, val.L)))
    step_no = 0
    for depth, n_steps, masks in stages:
        if n_steps == 0:
            continue
        if masks is None and layerwise is not None:  # layers 1..depth
            masks = _union(model, depth)
        params = [named[n] for n in named if masks is None or bool(masks[n].any())]
        opt = torch.optim.Adam(params, lr=lr)
        for _ in range(n_steps):
            batch = problem.sample(batch_size, rng=gen, dtype=dtype, device=device)
            opt.zero_grad(set_to_none=True)
            L, _ = model(batch.M, num_layers=depth)
            loss = relative_sq_loss(L, batch.L)
            if not torch.isfinite(loss):
                raise RuntimeError(f"train_rpca: non-finite loss at step {step_no} (layer {depth}); "
                                   f"lower lr (now {lr:g})")
            loss.backward()
            if masks is not None:
                for n, t in named.items():
                    if t.grad is not None:
                        t.grad.mul_(masks[n])
            torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            step_no += 1
            result.samples += batch_size
            result.loss.append(float(loss.detach()))
            if callback is not None:
                callback(step_no, float(loss.detach()))
            if step_no % eval_every == 0:
                result.curve.append((result.samples, error_db(model, val.M, val.L)))
    if not result.curve or result.curve[-1][0] != result.samples:
        result.curve.append((result.samples, error_db(model, val.M, val.L)))
    result.seconds = time.perf_counter() - start
    return result


def _union(model: RpcaUnfolded, depth: int) -> dict[str, torch.Tensor]:
    """Masks of layers 0..depth-1 together."""
    out: dict[str, torch.Tensor] = {}
    for k in range(depth):
        for n, m in model.layer_masks(k).items():
            out[n] = out[n] | m if n in out else m.clone()
    return out
