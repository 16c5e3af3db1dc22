"""A generalization bound is a value with its provenance: a high-probability upper bound on the true risk.

Every bound here is on a *bounded* loss with values in [0, c] (the clipped loss of ``loss.py``): with
probability at least 1 - delta over the training sample (and any Monte Carlo draw the bound uses), the true
risk L(h) = E loss(h(y), x) is at most ``value``. ``trivial_bound`` is c itself (the loss's range); any bound
at or above it is *vacuous* and is reported as such (``vacuous``), never as a certificate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from unfoldkit.theory.bound import STATUSES, Assumption
from unfoldkit.unrolled.io import jsonable


@dataclass(frozen=True)
class GeneralizationBound:
    """value >= L(h) with probability >= 1 - delta; ``empirical`` is the training risk it starts from.

    ``gap`` = value - empirical is the bound on the generalization gap. ``status`` is confirmed / derived /
    recalled (theory.bound.STATUSES); ``assumptions`` are checked (name, holds, measured, required); when one
    fails the value is NaN (no claim). ``details`` holds the terms (complexity, confidence, KL, grid...).
    """

    name: str
    value: float
    empirical: float
    delta: float
    loss_range: float
    num_samples: int
    theorem: str
    source: str
    status: str
    assumptions: tuple[Assumption, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if not 0.0 < self.delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {self.delta!r}")
        if not (self.loss_range > 0 and math.isfinite(self.loss_range)):
            raise ValueError(f"loss_range must be finite and > 0, got {self.loss_range!r}")

    @property
    def assumptions_hold(self) -> bool:
        return all(a.holds is True for a in self.assumptions)

    @property
    def gap(self) -> float:
        return self.value - self.empirical

    @property
    def vacuous(self) -> bool:
        """True when the bound says nothing: at or above the loss's range c (or NaN: no claim)."""
        return not math.isfinite(self.value) or self.value >= self.loss_range

    def to_dict(self) -> dict[str, Any]:
        def num(v: float) -> Any:
            return jsonable(float(v))
        return {"name": self.name, "value": num(self.value), "empirical": num(self.empirical),
                "gap": num(self.gap), "delta": self.delta, "loss_range": self.loss_range,
                "num_samples": self.num_samples, "vacuous": self.vacuous, "theorem": self.theorem,
                "source": self.source, "status": self.status,
                "assumptions": [a.to_dict() for a in self.assumptions], "details": self.details}

    def summary(self) -> str:
        state = "VACUOUS" if self.vacuous else "non-vacuous"
        return (f"{self.name}: risk <= {self.value:.4g} (empirical {self.empirical:.4g}, range {self.loss_range:g}, "
                f"delta {self.delta:g}, m = {self.num_samples}; {state}) [{self.theorem}, {self.source}, {self.status}]")


def trivial_bound(loss_range: float, empirical: float, num_samples: int, delta: float = 0.05) -> GeneralizationBound:
    """The loss's range c: L(h) <= c always (delta is irrelevant; kept for a uniform table). Vacuous by definition."""
    return GeneralizationBound("trivial", float(loss_range), float(empirical), delta, float(loss_range),
                               int(num_samples), "loss in [0, c]", "definition", "confirmed")
