"""The measured side of a generalization bound: a model's training risk, its risk on a large fresh test set
and their gap, with the uncertainty of each.

Everything is on the bounded loss the bounds of ``theory.generalization`` are stated for, the per-sample
clipped NMSE min(||x_hat - x||^2 / ||x||^2, c) (``clipped_nmse``), computed on a float64 copy of the model in
chunks (``batch_size`` samples at a time; small chunks are several times faster than large ones for the
correction networks of ``ista-correction``, whose (B, n, hidden) activations leave the cache).

- ``gap`` = test risk - train risk (the true gap L(h) - L_S(h), estimated by replacing L(h) with the test risk).
- ``gap_ci``: a percentile bootstrap interval of the gap, the training and the test losses resampled
  independently (each with replacement, its own size), ``bootstrap`` times (``bootstrap_ci``). It describes the
  sampling noise of both means *given* the trained model (the training set is not redrawn, so the model is
  not retrained); nominal level ``confidence``, asymptotic.
- ``test_interval``: Hoeffding's interval for the true risk, test risk -+ c sqrt(log(2/delta) / (2 m_test)),
  delta = 1 - confidence (exact, non-asymptotic: the test set is independent of the model), clipped to [0, c].
  ``test_bootstrap_ci`` is the (narrower, asymptotic) percentile bootstrap interval of the test risk.

Seeded: the bootstrap draws come from ``numpy.random.default_rng(seed)``; the resamples are drawn in batches
of at most ``BOOTSTRAP_CELLS`` indices, so memory stays bounded for any test-set size.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch

from unfoldkit.theory.generalization.loss import DEFAULT_CLIP, clipped_nmse
from unfoldkit.unrolled.training.threads import limit_threads

#: most resample indices held at once (bootstrap draws x sample size), about 32 MB of int64
BOOTSTRAP_CELLS = 4_000_000
#: samples per forward pass of ``losses``
BATCH_SIZE = 256


def _confidence(confidence: Any) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.floating)) \
            or not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}")
    return float(confidence)


def _clip(clip: Any) -> float:
    if isinstance(clip, bool) or not isinstance(clip, (int, float, np.floating)) or not math.isfinite(clip) \
            or clip <= 0:
        raise ValueError(f"clip must be a finite number > 0, got {clip!r}")
    return float(clip)


def _count(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _values(name: str, values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-D array of numbers, got {type(values).__name__}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def bootstrap_means(values: np.ndarray, bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """``bootstrap`` means of resamples of ``values`` (with replacement, same size), drawn in batches."""
    n = values.size
    per = max(1, BOOTSTRAP_CELLS // n)
    out = np.empty(bootstrap)
    for start in range(0, bootstrap, per):
        b = min(per, bootstrap - start)
        out[start:start + b] = values[rng.integers(0, n, size=(b, n))].mean(axis=1)
    return out


def bootstrap_ci(values: Any, baseline: Any = None, *, confidence: float = 0.95, bootstrap: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(values) - mean(baseline) (of mean(values) without a baseline):
    both samples resampled independently with replacement, ``bootstrap`` times; the interval between the
    (1 - confidence)/2 and (1 + confidence)/2 quantiles of the resampled statistic. Seeded."""
    confidence = _confidence(confidence)
    bootstrap = _count("bootstrap", bootstrap)
    seed = _count("seed", seed, 0)
    v = _values("values", values)
    rng = np.random.default_rng(seed)
    stat = bootstrap_means(v, bootstrap, rng)
    if baseline is not None:
        stat = stat - bootstrap_means(_values("baseline", baseline), bootstrap, rng)
    alpha = 1.0 - confidence
    lo, hi = np.quantile(stat, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def hoeffding_halfwidth(clip: float, num_samples: int, confidence: float = 0.95) -> float:
    """c sqrt(log(2/delta) / (2 m)), delta = 1 - confidence: the two-sided Hoeffding half-width for the mean
    of m i.i.d. values in [0, c]."""
    clip, confidence = _clip(clip), _confidence(confidence)
    num_samples = _count("num_samples", num_samples)
    return clip * math.sqrt(math.log(2.0 / (1.0 - confidence)) / (2.0 * num_samples))


def losses(model: torch.nn.Module, y: Any, x: Any, clip: float = DEFAULT_CLIP,
           batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Per-sample clipped NMSE of a float64 copy of ``model`` on (y, x), ``batch_size`` samples at a time,
    with one torch / BLAS thread; a NaN output counts as the maximal loss c."""
    clip = _clip(clip)
    batch_size = _count("batch_size", batch_size)
    y, x = torch.as_tensor(y, dtype=torch.float64), torch.as_tensor(x, dtype=torch.float64)
    if y.ndim != 2 or x.ndim != 2 or y.shape[0] != x.shape[0] or y.shape[0] == 0:
        raise ValueError(f"y and x must have shapes (N, m) and (N, n) with the same N >= 1, got "
                         f"{tuple(y.shape)} and {tuple(x.shape)}")
    net = copy.deepcopy(model).to(device="cpu", dtype=torch.float64)
    out = []
    with torch.no_grad(), limit_threads(1):
        for s in range(0, y.shape[0], batch_size):
            loss = clipped_nmse(net(y[s:s + batch_size]), x[s:s + batch_size], clip)
            out.append(torch.nan_to_num(loss, nan=clip))
    return torch.cat(out).numpy()


def gap_from_losses(train_losses: Any, test_losses: Any, clip: float = DEFAULT_CLIP, confidence: float = 0.95,
                    bootstrap: int = 2000, seed: int = 0) -> dict[str, Any]:
    """``measure_gap``'s numbers from per-sample losses (values in [0, clip])."""
    clip, confidence = _clip(clip), _confidence(confidence)
    bootstrap, seed = _count("bootstrap", bootstrap), _count("seed", seed, 0)
    tr, te = _values("train_losses", train_losses), _values("test_losses", test_losses)
    for name, v in (("train_losses", tr), ("test_losses", te)):
        if v.min() < 0.0 or v.max() > clip:
            raise ValueError(f"{name} must lie in [0, clip = {clip:g}], got values in [{v.min():.4g}, {v.max():.4g}]")
    train_risk, test_risk = float(tr.mean()), float(te.mean())
    half = hoeffding_halfwidth(clip, te.size, confidence)
    return {
        "train_risk": train_risk, "test_risk": test_risk, "gap": test_risk - train_risk,
        "gap_ci": list(bootstrap_ci(te, tr, confidence=confidence, bootstrap=bootstrap, seed=seed)),
        "test_interval": [max(0.0, test_risk - half), min(clip, test_risk + half)],
        "hoeffding_halfwidth": half,
        "test_bootstrap_ci": list(bootstrap_ci(te, confidence=confidence, bootstrap=bootstrap, seed=seed + 1)),
        "train_std": float(tr.std(ddof=1)) if tr.size > 1 else 0.0,
        "test_std": float(te.std(ddof=1)) if te.size > 1 else 0.0,
        "m_train": int(tr.size), "m_test": int(te.size), "clip": clip, "confidence": confidence,
        "bootstrap": bootstrap, "seed": seed,
        "method": "gap_ci: percentile bootstrap, train and test losses resampled independently; test_interval: "
                  "Hoeffding, c sqrt(log(2/delta)/(2 m_test))",
    }


def measure_gap(model: torch.nn.Module, train_y: Any, train_x: Any, test_y: Any, test_x: Any, clip: float = 1.0,
                confidence: float = 0.95, bootstrap: int = 2000, seed: int = 0,
                batch_size: int = BATCH_SIZE) -> dict[str, Any]:
    """Train risk, test risk (clipped NMSE), gap = test - train, its bootstrap interval ``gap_ci`` and
    Hoeffding's interval ``test_interval`` for the true risk (module docstring). The model is not modified.
    ValueError (one line) on bad shapes, NaN data, clip <= 0, confidence outside (0, 1) or bootstrap < 1."""
    clip, confidence = _clip(clip), _confidence(confidence)
    bootstrap, seed = _count("bootstrap", bootstrap), _count("seed", seed, 0)
    arrays = {}
    for name, v in (("train_y", train_y), ("train_x", train_x), ("test_y", test_y), ("test_x", test_x)):
        t = torch.as_tensor(v.detach().cpu() if isinstance(v, torch.Tensor) else np.asarray(v), dtype=torch.float64)
        if t.ndim != 2 or t.shape[0] == 0:
            raise ValueError(f"{name} must have shape (N, dim) with N >= 1, got {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or inf")
        arrays[name] = t
    tr = losses(model, arrays["train_y"], arrays["train_x"], clip, batch_size)
    te = losses(model, arrays["test_y"], arrays["test_x"], clip, batch_size)
    return gap_from_losses(tr, te, clip, confidence, bootstrap, seed)


__all__ = ["BATCH_SIZE", "bootstrap_ci", "bootstrap_means", "gap_from_losses", "hoeffding_halfwidth", "losses",
           "measure_gap"]
