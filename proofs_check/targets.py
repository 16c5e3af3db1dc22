"""What the verifier runs: a classical algorithm with its parameters, or an unfolded model.

Both produce a ``Trajectory``; a target also exposes its per-step schedule (step gamma_k, threshold,
momentum, ...) in float64, which is what the guarantees read to decide whether a theorem applies.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from unfoldkit.unrolled.models.base import UnfoldedModel
from unfoldkit.unrolled.problems.base import Problem
from unfoldkit.unrolled.solvers import run_admm, run_fista, run_gd, run_ista
from unfoldkit.unrolled.steps import fista_momentum
from unfoldkit.unrolled.trajectory import Trajectory
from unfoldkit.unrolled.validation import nonnegative_int, step_schedule

#: classical algorithm name -> its runner in ``unrolled.solvers``
RUNNERS: dict[str, Callable[..., Trajectory]] = {"gd": run_gd, "ista": run_ista, "fista": run_fista,
                                                 "admm": run_admm}


@dataclass(frozen=True)
class Target:
    """A classical algorithm (``kind`` "classical", ``name`` in RUNNERS, ``num_steps``, ``step`` None for 1/L,
    a float or a schedule) or an unfolded model (``kind`` "model", ``name`` its family, ``model``).

    ``float64``: run a model in float64 (a theory-grade evaluation; the model's dtype is restored after)."""

    name: str
    kind: str
    num_steps: int
    step: Any = None
    model: UnfoldedModel | None = None
    float64: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def run(self, problem: Problem, y: torch.Tensor) -> Trajectory:
        """The trajectory x_0..x_K of this target on the batch ``y`` (B, m)."""
        if self.kind == "classical":
            kwargs = {"rho": self.step} if self.name == "admm" else {"step": self.step}
            return RUNNERS[self.name](problem, y, self.num_steps, x0=self.options.get("x0"), **kwargs)
        model = self.model
        assert model is not None
        dtype = model.model_dtype
        cast = self.float64 and dtype != torch.float64
        if cast:
            model.to(torch.float64)
        try:
            device = next((t.device for t in model.parameters()), y.device)
            traj = model.trajectory(y.to(device))
        finally:
            if cast:
                model.to(dtype)
        return traj

    def schedule(self, problem: Problem) -> dict[str, np.ndarray]:
        """Per-step parameters in float64, each of shape (num_steps,): "step" (gamma_k), and, where they
        exist, "threshold", "momentum", "rho", "percent". Classical ISTA/FISTA threshold at gamma_k lam."""
        if self.kind == "model":
            assert self.model is not None
            return {k: np.asarray(v, dtype=np.float64) for k, v in self.model.schedule().items()}
        k = max(self.num_steps, 1)
        if self.name == "admm":
            return {"rho": step_schedule("rho", problem.L if self.step is None else self.step, k)[:self.num_steps]}
        out = {"step": step_schedule("step", 1.0 / problem.L if self.step is None else self.step, k)[:self.num_steps]}
        if self.name == "fista":
            out["momentum"] = fista_momentum(self.num_steps)
        return out

    def describe(self) -> str:
        return f"{self.name} ({'classical, ' if self.kind == 'classical' else 'unfolded, '}{self.num_steps} steps)"


def classical(algorithm: str, num_steps: int, step: Any = None, x0: torch.Tensor | None = None) -> Target:
    """A classical target: ``algorithm`` in RUNNERS run for ``num_steps`` with ``step`` (None: 1/L; ADMM: rho)
    from ``x0`` (B, n) (None: the problem's initial point, 0)."""
    if algorithm not in RUNNERS:
        raise ValueError(f"algorithm must be one of {sorted(RUNNERS)}, got {algorithm!r}")
    return Target(algorithm, "classical", nonnegative_int("num_steps", num_steps), step,
                  options={} if x0 is None else {"x0": x0})


def as_target(obj: Any, num_steps: int | None = None, step: Any = None, float64: bool = True) -> Target:
    """A Target from a Target, an ``UnfoldedModel`` or an algorithm name (then ``num_steps`` is required)."""
    if isinstance(obj, Target):
        return obj
    if isinstance(obj, UnfoldedModel):
        return Target(obj.family, "model", obj.num_layers, model=obj, float64=float64)
    if isinstance(obj, str):
        if num_steps is None:
            raise ValueError(f"num_steps is required to run the classical algorithm {obj!r}")
        return classical(obj, num_steps, step)
    raise ValueError(f"target must be an algorithm name, an UnfoldedModel or a Target, got {type(obj).__name__}")
