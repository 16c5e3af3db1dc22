"""Per-layer metrics of a model on a batch: NMSE (``metrics.LayerNMSE``), NMSE in dB and the objective."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unfoldkit.unrolled.metrics import LayerNMSE
from unfoldkit.unrolled.problems.base import Problem, ProblemBatch
from unfoldkit.unrolled.validation import positive_int


@torch.no_grad()
def evaluate(model: nn.Module, problem: Problem, batch: ProblemBatch, batch_size: int = 1000) -> dict[str, Any]:
    """Per-layer metrics of ``model`` on ``batch`` (evaluated in chunks of ``batch_size``, in eval mode).

    Returns ``nmse`` and ``nmse_db``: lists over k = 0..K of sum_b ||x_k - x||^2 / sum_b ||x||^2 (None when
    the batch has no ground truth), and ``objective``: the mean F(x_k; y) over the batch, k = 0..K.
    Sums are accumulated in float64.
    """
    batch_size = positive_int("batch_size", batch_size)
    was_training = model.training
    model.eval()
    errors = LayerNMSE()
    obj = None
    count = 0
    try:
        for start in range(0, len(batch), batch_size):
            y = batch.y[start:start + batch_size]
            traj = model(y, trajectory=True)
            k1, b, n = traj.shape
            f = problem.objective(traj.reshape(k1 * b, n), y.to(traj.dtype).repeat(k1, 1)).reshape(k1, b)
            f = f.double().sum(dim=1)
            obj = f if obj is None else obj + f
            count += b
            if batch.x is not None:
                errors.add(traj, batch.x[start:start + batch_size])
    finally:
        model.train(was_training)
    return {"nmse": errors.nmse(), "nmse_db": errors.nmse_db(), "objective": (obj / count).tolist()}
