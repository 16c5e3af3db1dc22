"""Argument checks shared by every layer: each failure is a ValueError that names the argument."""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch


def positive_int(name: str, value: Any) -> int:
    """Return ``value`` as int if it is an integer >= 1, else raise ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def nonnegative_int(name: str, value: Any) -> int:
    """Return ``value`` as int if it is an integer >= 0, else raise ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def finite_real(name: str, value: Any) -> float:
    """Return ``value`` as float if it is a finite real number, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


def positive_real(name: str, value: Any) -> float:
    """Return ``value`` as float if it is finite and > 0, else raise ValueError."""
    v = finite_real(name, value)
    if v <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return v


def nonnegative_real(name: str, value: Any) -> float:
    """Return ``value`` as float if it is finite and >= 0, else raise ValueError."""
    v = finite_real(name, value)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def fraction(name: str, value: Any) -> float:
    """Return ``value`` as float if it lies in (0, 1], else raise ValueError."""
    v = finite_real(name, value)
    if not 0 < v <= 1:
        raise ValueError(f"{name} must lie in (0, 1], got {value!r}")
    return v


def finite_array(name: str, value: Any, ndim: int | None = None) -> np.ndarray:
    """Return ``value`` as a float64 numpy array; reject NaN/inf and a wrong number of dimensions."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value, dtype=np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def batch_tensor(name: str, value: Any, dim: int) -> torch.Tensor:
    """Check that ``value`` is a finite torch tensor of shape (B, dim) with B >= 1."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (batch, {dim}), got {type(value).__name__}")
    if value.ndim != 2 or value.shape[1] != dim or value.shape[0] < 1:
        raise ValueError(f"{name} must have shape (batch, {dim}), got {tuple(value.shape)}")
    if not torch.isfinite(value).all():
        raise ValueError(f"{name} contains NaN or inf")
    return value


def step_schedule(name: str, value: Any, length: int) -> np.ndarray:
    """Expand a scalar or a length-``length`` sequence of step sizes; each must be finite and > 0."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(length, float(arr))
    if arr.ndim != 1 or arr.shape[0] != length:
        raise ValueError(f"{name} must be a scalar or a sequence of length {length}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0 at every step, got min {arr.min()!r}")
    return arr


def as_generator(rng: Any) -> np.random.Generator:
    """A numpy Generator from a seed (int), an existing Generator, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, Integral) and not isinstance(rng, bool) and rng >= 0):
        return np.random.default_rng(rng)
    raise ValueError(f"rng must be a non-negative int seed, a numpy Generator or None, got {rng!r}")
