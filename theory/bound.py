"""A bound is data: per-iteration values with their provenance and the assumptions they rest on."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np


class Metric:
    """Names of the quantities a bound can bound (at iteration k, x* a minimizer, F* the optimal value)."""

    OBJECTIVE_GAP = "objective_gap"  # F(x_k) - F*
    DISTANCE = "distance"  # ||x_k - x*||
    SQ_DISTANCE = "sq_distance"  # ||x_k - x*||^2
    SQ_GRAD_NORM = "sq_grad_norm"  # ||grad f(x_k)||^2
    LOWRANK_ERROR = "lowrank_error"  # robust PCA: ||L_k - L0||_F, L0 the true low-rank component
    FIXED_POINT_RESIDUAL = "fixed_point_residual"  # ||x_k - T(x_k)||, T the classical operator (safeguard)
    ALL = (OBJECTIVE_GAP, DISTANCE, SQ_DISTANCE, SQ_GRAD_NORM, LOWRANK_ERROR, FIXED_POINT_RESIDUAL)


STATUSES = ("confirmed", "derived", "recalled")


@dataclass(frozen=True)
class Assumption:
    """One hypothesis of a theorem, checked: (name, holds, measured, required).

    ``holds`` is None when it could not be checked; ``measured`` is the number that decided it and
    ``required`` states the condition in words and numbers (e.g. "gamma L <= 1").
    """

    name: str
    holds: bool | None
    measured: float | None
    required: str

    def __iter__(self) -> Iterator[Any]:
        return iter((self.name, self.holds, self.measured, self.required))

    def to_dict(self) -> dict[str, Any]:
        m = None if self.measured is None or not math.isfinite(self.measured) else float(self.measured)
        return {"name": self.name, "holds": self.holds, "measured": m, "required": self.required}

    def __str__(self) -> str:
        verdict = {True: "holds", False: "FAILS", None: "unchecked"}[self.holds]
        meas = "" if self.measured is None else f": measured {self.measured:.6g}"
        return f"{self.name} {verdict}{meas} (required {self.required})"


@dataclass(frozen=True)
class Bound:
    """Per-iteration bound values ``values[i]`` at iteration ``iterations[i]`` on ``metric``.

    ``values`` has shape (len(iterations),) or (len(iterations), B) for per-instance constants; it is NaN
    everywhere when an assumption fails (a bound is never reported where it cannot be backed) and +inf
    where the theorem makes no claim (e.g. k = 0 for a 1/k rate). ``status`` says whether the statement
    was confirmed in its source, derived here, or recalled (see ``theorem`` and ``source``).
    """

    name: str
    iterations: np.ndarray
    values: np.ndarray
    metric: str
    theorem: str
    source: str
    status: str
    assumptions: tuple[Assumption, ...] = ()
    tight: bool = False
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.metric not in Metric.ALL:
            raise ValueError(f"metric must be one of {Metric.ALL}, got {self.metric!r}")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.values.shape[0] != self.iterations.shape[0]:
            raise ValueError("values and iterations must have the same length")

    @classmethod
    def build(cls, name: str, iterations: np.ndarray, values: np.ndarray, *, metric: str, theorem: str,
              source: str, status: str, assumptions: tuple[Assumption, ...] = (), tight: bool = False,
              notes: str = "", extra: dict[str, Any] | None = None) -> "Bound":
        """Make a bound, blanking its values (NaN) when any assumption is known to fail."""
        vals = np.asarray(values, dtype=np.float64)
        if any(a.holds is False for a in assumptions):
            vals = np.full_like(vals, np.nan)
        return cls(name, np.asarray(iterations, dtype=np.int64), vals, metric, theorem, source, status,
                   tuple(assumptions), tight, notes, dict(extra or {}))

    def select(self, iterations: np.ndarray) -> "Bound":
        """This bound restricted to the given iterations (each must be covered), in that order."""
        idx = [int(np.nonzero(self.iterations == k)[0][0]) if np.any(self.iterations == k) else -1
               for k in np.asarray(iterations).ravel()]
        if min(idx, default=0) < 0:
            raise KeyError(f"bound {self.name!r} does not cover every iteration of {list(iterations)}")
        return Bound(self.name, self.iterations[idx], self.values[idx], self.metric, self.theorem, self.source,
                     self.status, self.assumptions, self.tight, self.notes, dict(self.extra))

    def with_assumptions(self, *more: Assumption, values: np.ndarray | None = None) -> "Bound":
        """This bound with more checked assumptions and optionally new values (e.g. rescaled per instance,
        shape (len(iterations), B)); the values are blanked (NaN) when any assumption fails."""
        return Bound.build(self.name, self.iterations, self.values if values is None else values,
                           metric=self.metric, theorem=self.theorem, source=self.source, status=self.status,
                           assumptions=self.assumptions + tuple(more), tight=self.tight, notes=self.notes,
                           extra=self.extra)

    @property
    def assumptions_hold(self) -> bool:
        """True when every assumption was checked and holds (the bound then applies; whether a measurement
        stays under it is a ``proofs_check`` verdict)."""
        return all(a.holds is True for a in self.assumptions)

    @property
    def failed(self) -> tuple[Assumption, ...]:
        return tuple(a for a in self.assumptions if a.holds is False)

    def at(self, k: int) -> np.ndarray | float:
        """The bound at iteration k."""
        idx = np.nonzero(self.iterations == k)[0]
        if idx.size == 0:
            raise KeyError(f"iteration {k} not covered by bound {self.name!r}")
        v = self.values[idx[0]]
        return float(v) if np.ndim(v) == 0 else v

    def summary(self) -> str:
        """One line: name, theorem and source, and the state of its assumptions."""
        if self.assumptions_hold:
            state = "all assumptions hold"
        elif self.failed:
            state = "assumption fails: " + "; ".join(str(a) for a in self.failed)
        else:
            state = "some assumptions unchecked"
        return f"{self.name} [{self.metric}] {self.theorem}, {self.source} ({self.status}): {state}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (NaN and inf become None and the strings 'inf')."""
        def clean(v: Any) -> Any:
            if isinstance(v, (list, tuple)):
                return [clean(u) for u in v]
            if isinstance(v, float) and math.isnan(v):
                return None
            if isinstance(v, float) and math.isinf(v):
                return "inf" if v > 0 else "-inf"
            return v

        return {
            "name": self.name, "metric": self.metric, "theorem": self.theorem, "source": self.source,
            "status": self.status, "tight": self.tight, "notes": self.notes,
            "assumptions_hold": self.assumptions_hold,
            "assumptions": [a.to_dict() for a in self.assumptions],
            "iterations": self.iterations.tolist(), "values": clean(self.values.tolist()),
        }
