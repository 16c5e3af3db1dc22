"""A learned schedule beside classical ones, by exact per-layer worst cases (PEP), with growth flags.

Learned step sizes can beat classical ones on the training distribution and still be worse, or divergent,
in the worst case over the function class. ``compare_schedules`` computes the per-layer PEP worst case of
the learned schedule and of classical references (constant 1/L; 2/(L + mu) when mu > 0; silver steps of
Altschuler & Parrilo 2023 for GD on F_{0,L}; Beck-Teboulle / Nesterov momentum for momentum methods) and
``growth_report`` flags a worst case that grows with the layer index:

* ``non_monotone_layers``: layers k with worst(k) > worst(k-1) (1 + rtol). Not a defect by itself: silver
  steps, which beat every constant step at n = 2^m - 1, are non-monotone too (their long steps raise the
  worst case for a layer before the next ones bring it down);
* ``final_above_initial``: worst(K) > worst(0) (1 + rtol): after all layers the guarantee is worse than
  doing nothing, the worst case diverges;
* ``unbounded_layers``: layers with no finite worst case (+inf).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from unfoldkit.theory.bound import Bound, Metric
from unfoldkit.theory.pep.problem import COMPOSITE_METHODS, MOMENTUM_METHODS, make_spec
from unfoldkit.theory.pep.worst_case import pep_bound
from unfoldkit.unrolled.steps import fista_momentum
from unfoldkit.unrolled.validation import positive_int, positive_real

SILVER_RATIO = 1.0 + math.sqrt(2.0)
ALTSCHULER_PARRILO = "Altschuler & Parrilo 2023, arXiv 2309.16530, Thm 1.1"


def silver_steps(num_steps: int, L: float) -> np.ndarray:
    """Silver step sizes (Altschuler & Parrilo 2023, arXiv 2309.16530): gamma_i = h_i / L, i = 1..n, with
    h_i = 1 + rho^(nu(i) - 1), rho = 1 + sqrt 2 and nu(i) the 2-adic valuation of i
    (sqrt 2, 2, sqrt 2, 2 + sqrt 2, sqrt 2, 2, sqrt 2, 1 + rho^2, ...). Defined for every n; the rate of
    ``silver_rate`` holds at n = 2^k - 1. Assumes f in F_{0,L} (the strongly convex schedule differs)."""
    n = positive_int("num_steps", num_steps)
    L = positive_real("L", L)
    nu = np.array([(i & -i).bit_length() - 1 for i in range(1, n + 1)], dtype=np.float64)
    return (1.0 + SILVER_RATIO ** (nu - 1.0)) / L


def silver_rate(num_steps: int, L: float, R: float = 1.0) -> float:
    """Altschuler & Parrilo 2023, Thm 1.1: after n = 2^k - 1 silver steps on f in F_{0,L},
    f(x_n) - f* <= L R^2 / (1 + sqrt(4 rho^(2k) - 3)), rho = 1 + sqrt 2 (~ n^(-log2 rho) = n^(-1.27)).
    Raises ValueError unless n + 1 is a power of two."""
    n = positive_int("num_steps", num_steps)
    if (n + 1) & n:
        raise ValueError(f"the silver rate holds at n = 2^k - 1, got n = {n}")
    k = (n + 1).bit_length() - 1
    return positive_real("L", L) * positive_real("R", R) ** 2 / (1.0 + math.sqrt(4.0 * SILVER_RATIO ** (2 * k) - 3.0))


def classical_schedules(num_layers: int, L: float, mu: float = 0.0, method: str = "gd") -> dict[str, dict[str, Any]]:
    """Classical references for a learned schedule of ``num_layers`` layers: name -> keyword arguments of
    ``make_spec`` (method, steps, momentum).

    gd/pgm: constant 1/L; constant 2/(L + mu) when mu > 0 (the optimal constant step, contraction
    (kappa - 1)/(kappa + 1)); silver steps for gd when mu = 0. agd/fista: constant 1/L with the
    Beck-Teboulle momentum (``unrolled.steps.fista_momentum``); with mu > 0 also Nesterov's constant
    momentum (sqrt L - sqrt mu)/(sqrt L + sqrt mu); and the same method without momentum (gd or pgm).
    """
    K = positive_int("num_layers", num_layers)
    L = positive_real("L", L)
    out: dict[str, dict[str, Any]] = {}
    if method in MOMENTUM_METHODS:
        plain = "pgm" if method in COMPOSITE_METHODS else "gd"
        out["1/L, Beck-Teboulle momentum"] = dict(method=method, steps=np.full(K, 1.0 / L), momentum=fista_momentum(K))
        if mu > 0:
            b = (math.sqrt(L) - math.sqrt(mu)) / (math.sqrt(L) + math.sqrt(mu))
            out["1/L, momentum (sqrt L - sqrt mu)/(sqrt L + sqrt mu)"] = dict(
                method=method, steps=np.full(K, 1.0 / L), momentum=np.full(K, b))
        out[f"1/L, no momentum ({plain})"] = dict(method=plain, steps=np.full(K, 1.0 / L))
        return out
    out["constant 1/L"] = dict(method=method, steps=np.full(K, 1.0 / L))
    if mu > 0:
        out["constant 2/(L+mu)"] = dict(method=method, steps=np.full(K, 2.0 / (L + mu)))
    elif method == "gd":
        out["silver"] = dict(method=method, steps=silver_steps(K, L))
    return out


@dataclass(frozen=True)
class GrowthReport:
    """Whether a per-layer worst case grows with the layer index (see the module docstring)."""

    name: str
    non_monotone_layers: tuple[int, ...]
    final_above_initial: bool | None
    unbounded_layers: tuple[int, ...]
    max_increase: float
    final_over_initial: float

    @property
    def grows(self) -> bool:
        """True when any growth flag is raised."""
        return bool(self.non_monotone_layers or self.final_above_initial or self.unbounded_layers)

    @property
    def diverges(self) -> bool:
        """True when the final worst case exceeds the initial one or some layer has none."""
        return bool(self.final_above_initial or self.unbounded_layers)

    def describe(self) -> str:
        """One line naming every raised flag."""
        if not self.grows:
            return f"{self.name}: worst case non-increasing over the layers"
        parts = []
        if self.unbounded_layers:
            parts.append(f"unbounded (no finite worst case) at layers {list(self.unbounded_layers)}")
        if self.final_above_initial:
            parts.append(f"final worst case {self.final_over_initial:.3g} x the initial one (diverges)")
        if self.non_monotone_layers:
            parts.append(f"grows at layers {list(self.non_monotone_layers)} (max x{self.max_increase:.3g} in one layer)")
        return f"{self.name}: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly flags."""
        return {"name": self.name, "grows": self.grows, "diverges": self.diverges,
                "non_monotone_layers": list(self.non_monotone_layers),
                "final_above_initial": self.final_above_initial, "unbounded_layers": list(self.unbounded_layers),
                "max_increase": self.max_increase, "final_over_initial": self.final_over_initial}


def growth_report(bound: Bound, rtol: float = 1e-6) -> GrowthReport:
    """Growth flags of a per-layer Bound (scalar values): layers where the worst case increases by more than
    ``rtol`` relative, whether the last value exceeds the value at layer 0 (None when layer 0 is not in the
    bound or its value is +inf, e.g. the objective gap of a composite method), and +inf layers."""
    rtol = float(rtol)
    if not rtol >= 0 or not math.isfinite(rtol):
        raise ValueError(f"rtol must be finite and >= 0, got {rtol!r}")
    v = np.asarray(bound.values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError("growth_report needs one value per layer (a scalar R), got shape " + str(v.shape))
    k = np.asarray(bound.iterations)
    up, ratios = [], [1.0]
    for i in range(1, v.size):
        a, b = v[i - 1], v[i]
        if np.isfinite(b) and np.isfinite(a):
            if b > a * (1.0 + rtol) + 1e-300:
                up.append(int(k[i]))
                ratios.append(b / a if a > 0 else math.inf)
        elif np.isinf(b) and np.isfinite(a):
            up.append(int(k[i]))
            ratios.append(math.inf)
    unbounded = tuple(int(k[i]) for i in range(v.size) if np.isinf(v[i]) and k[i] > 0)
    final_above, final_ratio = None, math.nan
    if k.size and k[0] == 0 and np.isfinite(v[0]) and k[-1] > 0:
        final_above = bool(v[-1] > v[0] * (1.0 + rtol))
        final_ratio = float(v[-1] / v[0]) if v[0] > 0 else math.inf
    return GrowthReport(bound.name, tuple(up), final_above, unbounded, float(max(ratios)), final_ratio)


@dataclass(frozen=True)
class ScheduleComparison:
    """Per-layer worst cases of a learned schedule and of classical ones, with growth flags."""

    learned: str
    bounds: dict[str, Bound]
    growth: dict[str, GrowthReport]
    metric: str
    notes: tuple[str, ...] = field(default=())

    @property
    def iterations(self) -> np.ndarray:
        """The layer counts every bound is evaluated at."""
        return self.bounds[self.learned].iterations

    def best_classical(self) -> tuple[np.ndarray, list[str]]:
        """Per layer, the smallest classical worst case and the name of the schedule that attains it."""
        names = [n for n in self.bounds if n != self.learned]
        if not names:
            raise ValueError("no classical schedule to compare with")
        table = np.vstack([self.bounds[n].values for n in names])
        idx = np.argmin(np.where(np.isnan(table), np.inf, table), axis=0)
        return table[idx, np.arange(table.shape[1])], [names[i] for i in idx]

    def ratio_to_best_classical(self) -> np.ndarray:
        """Learned worst case / best classical worst case, per layer (> 1: the learned schedule is worse)."""
        best, _ = self.best_classical()
        learned = self.bounds[self.learned].values
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(best > 0, learned / best, np.where(learned > 0, np.inf, 1.0))

    def flagged(self) -> list[str]:
        """Names of the schedules whose worst case grows with the layer index."""
        return [n for n, g in self.growth.items() if g.grows]

    def rows(self) -> list[dict[str, Any]]:
        """One row per layer: the worst case of every schedule (JSON friendly)."""
        out = []
        for i, k in enumerate(self.iterations):
            row: dict[str, Any] = {"layer": int(k)}
            for n, b in self.bounds.items():
                row[n] = float(b.values[i])
            out.append(row)
        return out

    def summary(self) -> str:
        """A few lines: worst case at the last layer of every schedule, and every growth flag."""
        K = int(self.iterations[-1])
        lines = [f"worst case of {self.metric} at layer {K}:"]
        for n, b in self.bounds.items():
            lines.append(f"  {n}: {b.values[-1]:.6g}" + ("  (learned)" if n == self.learned else ""))
        ratio = self.ratio_to_best_classical()[-1]
        lines.append(f"learned / best classical at layer {K}: {ratio:.4g}")
        for g in self.growth.values():
            lines.append("  " + g.describe())
        return "\n".join(lines + list(self.notes))


def compare_schedules(learned_steps: Any, *, L: float, mu: float = 0.0, method: str = "gd",
                      learned_momentum: Any = None, learned_prox_steps: Any = None,
                      metric: str = Metric.OBJECTIVE_GAP, initial: str = "distance", R: float = 1.0,
                      initial_gap: float = 1.0, layers: str | Iterable[int] = "all", engine: str = "gram",
                      solver: str | None = None, classical: dict[str, dict[str, Any]] | None = None,
                      learned_name: str = "learned", rtol: float = 1e-6) -> ScheduleComparison:
    """Per-layer exact worst cases (PEP) of a learned schedule and of classical ones, with growth flags.

    The learned schedule is ``learned_steps`` (and ``learned_momentum`` / ``learned_prox_steps``) for
    ``method``; the classical ones are ``classical`` (name -> ``make_spec`` keywords) or, by default,
    ``classical_schedules(K, L, mu, method)``. All share L, mu, metric and initial condition. Every worst case
    is ``pep_bound`` (engine "gram" or "pepit"); ``growth_report`` flags a worst case that grows with the layer
    index. Raises ValueError for invalid input.
    """
    learned_spec = make_spec(learned_steps, L=L, mu=mu, method=method, momentum=learned_momentum,
                             prox_steps=learned_prox_steps, metric=metric, initial=initial, R=R,
                             initial_gap=initial_gap)
    K = learned_spec.num_layers
    refs = classical_schedules(K, L, mu, learned_spec.method) if classical is None else dict(classical)
    if learned_name in refs:
        raise ValueError(f"learned_name {learned_name!r} clashes with a classical schedule name")
    common = dict(L=L, mu=mu, metric=metric, initial=initial, R=R, initial_gap=initial_gap)
    specs = {learned_name: learned_spec}
    for name, kw in refs.items():
        kw = dict(kw)
        specs[name] = make_spec(kw.pop("steps"), method=kw.pop("method", learned_spec.method), **kw, **common)
        if specs[name].num_layers != K:
            raise ValueError(f"classical schedule {name!r} has {specs[name].num_layers} layers, learned has {K}")
    bounds = {n: pep_bound(s, layers=layers, engine=engine, solver=solver, name=n) for n, s in specs.items()}
    growth = {n: growth_report(b, rtol=rtol) for n, b in bounds.items()}
    notes = []
    if "silver" in bounds:
        notes.append("silver steps are non-monotone by design; the flag that matters is final_above_initial "
                     f"(and the rate {ALTSCHULER_PARRILO} at n = 2^k - 1)")
    return ScheduleComparison(learned_name, bounds, growth, metric, tuple(notes))
