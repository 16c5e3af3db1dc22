"""A verdict: one measurement held against one bound, in the one shape every figure, report and the CLI use.

Words mean one thing: a *bound's assumptions hold* (``Bound.assumptions_hold``: the theorem applies), and a
*verdict holds* (the measurement stays under an applicable bound). A verdict's ``state`` is one of
``holds``, ``violated`` (the assumptions hold and the measurement exceeds the bound: a counterexample) and
``not applicable`` (an assumption fails: no claim was made, nothing is violated).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from unfoldkit.theory.bound import Bound
from unfoldkit.unrolled.io import jsonable

HOLDS, VIOLATED, NOT_APPLICABLE = "holds", "violated", "not applicable"


@dataclass(frozen=True)
class Verdict:
    """Outcome of comparing measured values (K+1, B) with a bound.

    ``worst_margin`` = min over k, b of (bound - measured - tolerance), negative on a violation; ``worst``
    locates it as (k, b); ``tightness`` = min over k >= 1 and b of bound / measured (1 means the bound is
    attained, large means loose; k = 0 is skipped as trivially tight for rates that start at their initial
    value); ``holds`` is False also when the bound's assumptions fail (then ``state`` is "not applicable").
    ``label`` names the verdict when the bound's name is not enough (one bound held against several
    measurements, or one bound family at several parameters).
    """

    bound: Bound
    holds: bool
    worst_margin: float
    worst: tuple[int, int]
    tightness: float
    measured_max: np.ndarray
    details: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def name(self) -> str:
        """The label when there is one, else the bound's name."""
        return self.label or self.bound.name

    @property
    def state(self) -> str:
        """"holds", "violated" (assumptions hold, bound exceeded) or "not applicable" (an assumption fails,
        or the bound has no values to compare with)."""
        if self.holds:
            return HOLDS
        return VIOLATED if self.bound.assumptions_hold and not math.isnan(self.worst_margin) else NOT_APPLICABLE

    def summary(self) -> str:
        state = {HOLDS: "holds", VIOLATED: "VIOLATED", NOT_APPLICABLE: "not applicable"}[self.state]
        if self.state == NOT_APPLICABLE:
            return f"{self.name}: {state} ({self.details.get('reason', '')})"
        return (f"{self.name}: {state}; worst margin {self.worst_margin:.3e} at k={self.worst[0]}, "
                f"tightness {self.tightness:.3g}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: state, holds, assumptions_hold, margins, the bound's provenance and assumptions."""
        b = self.bound
        return jsonable({
            "name": self.name, "state": self.state, "holds": self.holds,
            "assumptions_hold": b.assumptions_hold, "bound": b.name, "label": self.label,
            "metric": b.metric, "theorem": b.theorem, "source": b.source, "status": b.status,
            "assumptions": [a.to_dict() for a in b.assumptions],
            "worst_margin": self.worst_margin, "worst_iteration": self.worst[0], "worst_instance": self.worst[1],
            "tightness": self.tightness, "measured_max": self.measured_max, **self.details,
        })


def verdicts_dict(verdicts: Iterable[Verdict]) -> dict[str, dict[str, Any]]:
    """{verdict name: verdict.to_dict()} (names must be unique)."""
    out: dict[str, dict[str, Any]] = {}
    for v in verdicts:
        if v.name in out:
            raise ValueError(f"two verdicts are named {v.name!r}: give them labels")
        out[v.name] = v.to_dict()
    return out


def compare_to_bound(measured: np.ndarray, bound: Bound, rel_tol: float = 0.0, abs_tol: float | np.ndarray = 0.0,
                     label: str = "") -> Verdict:
    """Check measured[k, b] <= bound.values[k(, b)] * (1 + rel_tol) + abs_tol for every k, b (``abs_tol`` a
    number or an array broadcastable to (K+1, B), e.g. a round-off floor per entry).

    ``measured`` (len(bound.iterations),) or (len, B) must already be the side of what is known that the
    caller wants judged (e.g. measured gap + reference gap, the upper end). Iterations where the bound is
    +inf are skipped (no claim); a bound whose assumptions fail (values NaN) gives a "not applicable" verdict.
    """
    meas = np.asarray(measured, dtype=np.float64)
    if meas.ndim == 1:
        meas = meas[:, None]
    vals = np.asarray(bound.values, dtype=np.float64)
    if vals.ndim == 1:
        vals = np.broadcast_to(vals[:, None], meas.shape)
    if vals.shape != meas.shape:
        raise ValueError(f"measured has shape {meas.shape} but bound values broadcast to {vals.shape}")
    mmax = meas.max(axis=1)
    if not bound.assumptions_hold or np.isnan(vals).any():
        failed = "; ".join(str(a) for a in bound.failed) or ("some assumptions unchecked" if not
                                                             bound.assumptions_hold else "the bound has NaN values")
        return Verdict(bound, False, float("nan"), (0, 0), float("nan"), mmax,
                       {"reason": "bound not applicable: " + failed}, label)
    finite = np.isfinite(vals)
    tol = np.asarray(abs_tol, dtype=np.float64)
    tol = np.broadcast_to(tol[:, None] if tol.ndim == 1 else tol, meas.shape)
    margin = np.where(finite, vals * (1 + rel_tol) + tol - meas, np.inf)
    idx = np.unravel_index(np.argmin(margin), margin.shape)
    worst_margin = float(margin[idx])
    usable = finite & (meas > 0)
    at_zero = np.asarray(bound.iterations) == 0
    if usable[~at_zero].any():  # iteration 0 is trivially tight for rates that start at their initial value
        usable[at_zero] = False
    tightness = float(np.min(vals[usable] / meas[usable])) if usable.any() else math.inf
    return Verdict(bound, worst_margin >= 0, worst_margin, (int(idx[0]), int(idx[1])), tightness, mmax, {}, label)
