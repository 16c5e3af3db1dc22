"""Helpers shared by the unfolded models: problem compatibility, per-layer schedules, parameters."""
from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
import torch
from torch import nn

from unfoldkit.unrolled.problems.base import Problem
from unfoldkit.unrolled.problems.linear import LinearInverseProblem
from unfoldkit.unrolled.problems.sparse import SparseRecovery
from unfoldkit.unrolled.validation import finite_real, positive_int

ScheduleArg = float | list[float] | tuple[float, ...] | np.ndarray | None


def l1_weight(problem: Problem, family: str) -> float:
    """lam when g = lam ||x||_1 (SparseRecovery), 0 when g = 0; ValueError for any other regularizer.

    Soft-thresholding models need g to be an l1 norm (or zero, where eta_0 is the identity). A problem
    that keeps the base class's ``prox`` and ``regularizer`` has g = 0.
    """
    if isinstance(problem, SparseRecovery):
        return float(problem.lam)
    cls = type(problem)
    if cls.prox is Problem.prox and cls.regularizer is Problem.regularizer:
        return 0.0
    raise ValueError(f"{family} needs a problem whose regularizer is lam ||x||_1 (SparseRecovery) or zero; "
                     f"got {problem!r}")


def require_linear(problem: Problem, family: str) -> LinearInverseProblem:
    """The problem as a linear inverse problem y = A x + noise (ValueError naming it otherwise)."""
    if not isinstance(problem, LinearInverseProblem):
        raise ValueError(f"{family} needs a linear inverse problem with a matrix A (SparseRecovery or "
                         f"LeastSquares); got {problem!r}")
    l1_weight(problem, family)
    return problem


def require_lasso(problem: Problem, family: str) -> SparseRecovery:
    """The problem as a LASSO (SparseRecovery), ValueError naming it otherwise."""
    if not isinstance(problem, SparseRecovery):
        raise ValueError(f"{family} needs a LASSO problem (SparseRecovery, F = 0.5||Ax - y||^2 + lam ||x||_1); "
                         f"got {problem!r}")
    return problem


def layer_values(name: str, value: Any, num_layers: int, *, positive: bool = False,
                 nonnegative: bool = False) -> np.ndarray:
    """Expand a scalar or a length-``num_layers`` sequence to a float64 array of per-layer values.

    Every value must be finite, and > 0 (``positive``) or >= 0 (``nonnegative``) when asked.
    """
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number or a sequence of {num_layers} reals, "
                         f"got {value!r}") from None
    if arr.ndim == 0:
        arr = np.full(num_layers, float(arr))
    if arr.ndim != 1 or arr.shape[0] != num_layers:
        raise ValueError(f"{name} must be a scalar or a sequence of length {num_layers} (one per layer), "
                         f"got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    if positive and np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0 at every layer, got min {arr.min()!r}")
    if nonnegative and np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0 at every layer, got min {arr.min()!r}")
    return arr


def json_schedule(value: Any) -> float | list[float] | None:
    """A schedule argument as JSON: None, a float, or a list of floats."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value, dtype=np.float64)
    return float(arr) if arr.ndim == 0 else [float(v) for v in arr.ravel()]


def real_arg(name: str, value: Any) -> float:
    """A finite real constructor argument (ValueError naming it otherwise)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return finite_real(name, value)


def percent_arg(name: str, value: Any) -> float:
    """A support-selection percentage in [0, 100] (ValueError naming it otherwise)."""
    v = real_arg(name, value)
    if not 0.0 <= v <= 100.0:
        raise ValueError(f"{name} must be a percentage in [0, 100], got {value!r}")
    return v


def support_schedule(percent: float, max_percent: float, num_layers: int) -> np.ndarray:
    """LISTA-CPSS / ALISTA support-selection schedule p^k = min(p (k + 1), p_max), k = 0..K-1, in percent.

    As in the authors' code (``self._ps = clip([(t+1) * p for t in range(T)], 0, maxp)`` in
    VITA-Group/LISTA-CPSS ``models/LISTA_cpss.py`` and VITA-Group/ALISTA ``utils/models/ALISTA.py``).
    """
    p = percent_arg("percent", percent)
    pmax = percent_arg("max_percent", max_percent)
    num_layers = positive_int("num_layers", num_layers)
    return np.minimum(p * np.arange(1, num_layers + 1), pmax)


def parameter(values: Any, dtype: torch.dtype) -> nn.Parameter:
    """A learned parameter initialised from float64 values (cast once to the model dtype)."""
    return nn.Parameter(torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=dtype).clone())


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A float64 numpy copy of a tensor (detached, on CPU)."""
    return t.detach().to(device="cpu", dtype=torch.float64).numpy().copy()


def default_step(problem: Problem, step: Any, num_layers: int) -> np.ndarray:
    """Per-layer steps: ``step`` expanded, or the classical 1/L when None (each > 0)."""
    return layer_values("step", 1.0 / problem.L if step is None else step, num_layers, positive=True)
