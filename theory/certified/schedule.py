"""Certified step schedules: training that keeps a learned schedule inside a per-layer worst-case envelope.

A learned step schedule (paradigm 1, ``gd-unfolded``: x_{k+1} = x_k - gamma_k grad f(x_k)) can beat the
classical schedules on its training distribution and still be worse in the worst case over the function class
(``experiments/figures/pep_learned_steps.py``: 4x better on average, up to several times worse per layer). This
module keeps the schedule **certified**: at every layer k its exact worst case (performance estimation, PEP:
Drori & Teboulle 2014; Taylor, Hendrickx & Glineur 2017, interpolation Thm 4)

    W_k(gamma) = sup { f(x_k) - f* : f in F_{mu,L}, ||x_0 - x*|| <= R }        (or another PEP metric)

stays below an envelope E_k = factor x W_k(reference), the reference being a classical schedule.

* ``schedule_envelope``: the envelope E_0..E_K (default reference: the classical schedule of
  ``theory.pep.classical_schedules`` with the lowest worst case at the last layer);
* ``certify_schedule``: W_k(gamma) from scratch (``theory.pep.pep_bound``, every layer), compared with E_k,
  with the solver's evidence (status, duality gap, residuals, dual values) -> ``ScheduleCertificate``;
* ``project_schedule``: the largest certified point of the segment from a certified schedule to a candidate
  (bisection on t in [0, 1]);
* ``project_momentum_schedule``: the same for a momentum schedule (gamma, beta) of agd / fista, jointly
  (y_k = x_k + beta_k (x_k - x_{k-1}), x_{k+1} = prox_{gamma_k h}(y_k - gamma_k grad f(y_k)); W_k depends on
  gamma_0..gamma_{k-1}, beta_1..beta_{k-1} only, beta_0 multiplying x_0 - x_{-1} = 0);
* ``train_certified_schedule``: the unsupervised objective f(x_K) minimised by the trainer
  (``unrolled.training.train``, scheme ``unsupervised``) with a ``constraint`` hook that replaces the step
  parameters by their projection every ``project_every`` optimizer steps and at the end of every epoch.

Tolerance. The engine accepts a solve when the certificate recomputed from the data (relative duality gap,
primal and dual residuals) is below ``CERTIFICATE_TOL`` = 1e-6 (``theory.pep.gram``), so a computed worst case
is known to about 1e-6 relative. The comparison uses the candidate's dual value (an upper bound on W_k by weak
duality, up to the dual residual) against E_k, computed from the reference's primal value (a lower bound on
its W_k, up to the primal residual); ``rtol`` = CERTIFICATE_TOL absorbs those residuals. The reference itself
(factor 1) is therefore inside its own envelope: its dual value exceeds its primal value by at most the
accepted gap.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch

from unfoldkit.theory.bound import Metric
from unfoldkit.theory.pep.compare import classical_schedules
from unfoldkit.theory.pep.gram import CERTIFICATE_TOL, solve_gram
from unfoldkit.theory.pep.problem import MOMENTUM_METHODS, PepSpec, initial_worst_case, make_spec
from unfoldkit.theory.pep.worst_case import PEP_SOURCE, PEP_SOURCE_COMPOSITE, pep_bound
from unfoldkit.unrolled.io import jsonable
from unfoldkit.unrolled.problems.base import Problem
from unfoldkit.unrolled.training.trainer import train
from unfoldkit.unrolled.validation import finite_array, positive_int, positive_real

#: default relative tolerance of the comparison W_k <= E_k (1 + rtol): the engine's certificate tolerance
DEFAULT_RTOL = CERTIFICATE_TOL
#: default number of bisection steps of ``project_schedule`` (t known to 2^-8 = 0.004)
DEFAULT_BISECTION_STEPS = 8
#: solver statuses accepted as they are ('unbounded': W_k = +inf, which fails any finite E_k);
#: 'optimal_inaccurate' is accepted only with a recomputed certificate (gap and both residuals) below
#: CERTIFICATE_TOL, the engine's own acceptance rule (docs/pep.md)
ACCEPTED_STATUSES = ("optimal", "closed_form", "unbounded")
#: model family -> PEP method of its step schedule (paradigm 1 models whose schedule PEP analyses exactly;
#: fista-unfolded: x_{k+1} = prox_{gamma_k h}(y_k - gamma_k grad f(y_k)), y_k = x_k + beta_k (x_k - x_{k-1}),
#: the threshold lam gamma_k following the step, i.e. PEP "fista" with tau_k = gamma_k)
CERTIFIABLE_MODELS = {"gd-unfolded": "gd", "ista-learned-step": "pgm", "fista-unfolded": "fista"}
PROVENANCE = ("exact per-layer worst case by performance estimation (Gram-matrix SDP, theory.pep.pep_bound): "
              + PEP_SOURCE + "; compared with a classical schedule's exact worst case (envelope)")


def _scalar(name: str, value: Any, *, positive: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(v) or (positive and v <= 0):
        raise ValueError(f"{name} must be finite{' and > 0' if positive else ''}, got {value!r}")
    return v


def _steps(name: str, steps: Any, length: int | None = None, positive: bool = True) -> np.ndarray:
    """A float64 1-D schedule; NaN/inf always rejected, non-positive entries rejected when ``positive``."""
    try:
        arr = np.array(steps.detach().cpu() if isinstance(steps, torch.Tensor) else steps, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-D sequence of real numbers, got {steps!r}") from None
    finite_array(name, arr, ndim=1)  # one-line ValueError for a wrong shape or NaN / inf
    if arr.size == 0 or (length is not None and arr.size != length):
        raise ValueError(f"{name} must have one entry per layer ({length or 'at least one'}), got {arr.size}")
    if positive and np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0 at every layer, got min {arr.min()!r}")
    return arr


@dataclass(frozen=True)
class Envelope:
    """Per-layer worst cases allowed, E_k for k = 0..K (``values``, float64), and how they were obtained.

    ``reference``: the name of the classical schedule (or "user" for given values); ``reference_steps`` and
    ``reference_momentum`` its schedule (None for user values); ``reference_values`` its exact worst cases
    (before ``factor``). The PEP setting (L, mu, method, metric, initial, R) is the one every schedule is
    certified in.
    """

    values: np.ndarray
    num_layers: int
    L: float
    mu: float
    method: str
    metric: str
    initial: str
    R: float
    initial_gap: float
    factor: float
    reference: str
    reference_steps: np.ndarray | None
    reference_momentum: np.ndarray | None
    reference_values: np.ndarray

    def spec(self, steps: Any, momentum: Any = None) -> PepSpec:
        """The PEP spec of ``steps`` in this envelope's setting (``make_spec``; ValueError on bad steps)."""
        return make_spec(steps, L=self.L, mu=self.mu, method=self.method, momentum=momentum, metric=self.metric,
                         initial=self.initial, R=self.R, initial_gap=self.initial_gap)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description (inf as "inf")."""
        return jsonable({"values": self.values, "num_layers": self.num_layers, "L": self.L, "mu": self.mu,
                         "method": self.method, "metric": str(self.metric), "initial": self.initial, "R": self.R,
                         "initial_gap": self.initial_gap, "factor": self.factor, "reference": self.reference,
                         "reference_steps": self.reference_steps, "reference_momentum": self.reference_momentum,
                         "reference_values": self.reference_values})


def schedule_envelope(num_layers: int, L: float, mu: float = 0.0, method: str = "gd",
                      reference: str | Any | None = None, factor: float = 1.0,
                      metric: str = Metric.OBJECTIVE_GAP, initial: str = "distance", R: float = 1.0,
                      initial_gap: float = 1.0, solver: str | None = None) -> Envelope:
    """The per-layer worst case allowed to a certified schedule: E_k = factor x W_k(reference), k = 0..K.

    W_k is the exact PEP worst case (Drori & Teboulle 2014; Taylor, Hendrickx & Glineur 2017) of the metric
    after k layers over F_{mu,L} (with a closed convex h for "pgm"), from ||x_0 - x*|| <= R (or
    F(x_0) - F* <= initial_gap). ``reference``: None or "best" (the schedule of
    ``classical_schedules(num_layers, L, mu, method)`` with the lowest worst case at the last layer K: for
    GD constant 1/L, silver steps (mu = 0) or 2/(L + mu) (mu > 0), whichever is lowest at K), the name of one of
    those schedules, or an array of per-layer values (K + 1 values for layers 0..K, or K values for layers
    1..K, layer 0 then being the closed form W_0 shared by every schedule); ``factor`` > 0 multiplies them.
    With factor >= 1 the reference schedule is inside its own envelope (the initial point of training).
    Raises ValueError for a non-positive or non-finite factor, an unknown reference name, values of the wrong
    length, or invalid PEP settings.
    """
    K = positive_int("num_layers", num_layers)
    factor = _scalar("factor", factor, positive=True)
    probe = make_spec(np.full(K, 1.0 / positive_real("L", L)), L=L, mu=mu, method=method, metric=metric,
                      initial=initial, R=R, initial_gap=initial_gap)
    common = dict(L=probe.L, mu=probe.mu, method=probe.method, metric=probe.metric, initial=probe.initial,
                  R=float(R), initial_gap=float(initial_gap), factor=factor, num_layers=K)
    if reference is not None and not isinstance(reference, str):
        ref = np.array(reference, dtype=np.float64) if not isinstance(reference, torch.Tensor) else \
            reference.detach().cpu().numpy().astype(np.float64)
        if ref.ndim != 1 or ref.size not in (K, K + 1):
            raise ValueError(f"reference values must be K + 1 = {K + 1} (layers 0..K) or K = {K} (layers 1..K) "
                             f"numbers, got shape {ref.shape}")
        if np.any(np.isnan(ref)) or np.any(ref < 0):
            raise ValueError("reference values must be >= 0 (inf allowed), got NaN or a negative value")
        if ref.size == K:
            ref = np.concatenate([[initial_worst_case(probe.truncated(0))], ref])
        return Envelope(values=factor * ref, reference="user", reference_steps=None, reference_momentum=None,
                        reference_values=ref, **common)
    schedules = classical_schedules(K, probe.L, probe.mu, probe.method)
    schedules = {n: kw for n, kw in schedules.items() if kw["method"] == probe.method}
    if reference not in (None, "best") and reference not in schedules:
        raise ValueError(f"reference must be None, 'best', one of {sorted(schedules)} or an array of values, "
                         f"got {reference!r}")
    names = list(schedules) if reference in (None, "best") else [reference]
    bounds = {}
    for n in names:
        kw = schedules[n]
        spec = make_spec(kw["steps"], L=probe.L, mu=probe.mu, method=probe.method, momentum=kw.get("momentum"),
                         metric=probe.metric, initial=probe.initial, R=R, initial_gap=initial_gap)
        bounds[n] = pep_bound(spec, layers="all", solver=solver).values
    best = min(bounds, key=lambda n: (bounds[n][-1], names.index(n)))
    ref = np.asarray(bounds[best], dtype=np.float64)
    mom = schedules[best].get("momentum")
    return Envelope(values=factor * ref, reference=best,
                    reference_steps=np.asarray(schedules[best]["steps"], dtype=np.float64).copy(),
                    reference_momentum=None if mom is None else np.asarray(mom, dtype=np.float64).copy(),
                    reference_values=ref, **common)


@dataclass(frozen=True)
class ScheduleCertificate:
    """Exact per-layer PEP worst cases of a schedule compared with an envelope.

    Per layer k = 0..K (``layers``): ``values`` (the solver's primal value W_k), ``upper`` (the certified upper
    bound max(value, dual value): the dual value is the multiplier of the initial condition of a feasible dual
    solution, which bounds W_k from above by weak duality), ``envelope`` (E_k), ``margins`` = E_k - upper_k
    (>= 0 inside), ``ratios`` = upper_k / E_k, ``statuses``, ``duality_gaps``, ``primal_residuals``,
    ``dual_residuals``, ``accepted`` (status optimal / closed form / unbounded (+inf), or optimal_inaccurate
    with the recomputed certificate below CERTIFICATE_TOL). ``holds``: every layer accepted and
    upper_k <= E_k (1 + rtol).
    ``failing_layers``: the layers where it does not. ``multipliers`` (with ``keep_multipliers=True``): per
    layer the interpolation-pair multipliers of a full Gram solve, the proof of the bound (a nonnegative
    combination of the interpolation inequalities that yields it). ``complete``: False only for a check that
    stopped at its first failing layer (``project_schedule`` internally); every returned certificate that holds
    is complete.
    """

    steps: np.ndarray
    momentum: np.ndarray | None
    layers: tuple[int, ...]
    values: np.ndarray
    upper: np.ndarray
    envelope: np.ndarray
    margins: np.ndarray
    ratios: np.ndarray
    statuses: tuple[str, ...]
    duality_gaps: np.ndarray
    primal_residuals: np.ndarray
    dual_residuals: np.ndarray
    accepted: tuple[bool, ...]
    holds: bool
    failing_layers: tuple[int, ...]
    rtol: float
    method: str
    metric: str
    solve_time: float
    complete: bool = True
    provenance: str = PROVENANCE
    multipliers: tuple[Any, ...] | None = field(default=None, repr=False)

    def describe(self) -> str:
        """One line: holds or the failing layers with their ratio to the envelope."""
        if self.holds:
            return (f"certified: every layer within the envelope (max ratio {np.nanmax(self.ratios):.6g}, "
                    f"rtol {self.rtol:g})")
        parts = []
        for k in self.failing_layers:
            i = self.layers.index(k)
            why = "" if self.accepted[i] else f", status {self.statuses[i]}"
            parts.append(f"layer {k}: {self.ratios[i]:.4g} x envelope{why}")
        return "NOT certified: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (NaN -> null, inf -> "inf"), multipliers as lists."""
        return jsonable({"holds": self.holds, "failing_layers": list(self.failing_layers),
                         "steps": self.steps, "momentum": self.momentum, "layers": list(self.layers),
                         "values": self.values, "upper": self.upper, "envelope": self.envelope,
                         "margins": self.margins, "ratios": self.ratios, "statuses": list(self.statuses),
                         "duality_gaps": self.duality_gaps, "primal_residuals": self.primal_residuals,
                         "dual_residuals": self.dual_residuals, "accepted": list(self.accepted),
                         "rtol": self.rtol, "method": self.method, "metric": str(self.metric),
                         "solve_time": self.solve_time, "complete": self.complete, "provenance": self.provenance,
                         "multipliers": None if self.multipliers is None else
                         [None if m is None else np.asarray(m).tolist() for m in self.multipliers]})


def _accepted(status: str, gap: float, pres: float, dres: float) -> bool:
    if status in ACCEPTED_STATUSES:
        return True
    if status != "optimal_inaccurate":
        return False
    return all(np.isfinite(r) and r <= CERTIFICATE_TOL for r in (gap, pres, dres))


def _rtol(rtol: Any) -> float:
    v = _scalar("rtol", rtol)
    if v < 0:
        raise ValueError(f"rtol must be >= 0, got {rtol!r}")
    return v


def _check(steps: np.ndarray, envelope: Envelope, momentum: Any, rtol: float, solver: str | None,
           order: Iterable[int] | None, keep_multipliers: bool) -> ScheduleCertificate:
    """Solve the layers (all at once when ``order`` is None; else one by one in that order, stopping at the
    first failing layer) and compare them with the envelope."""
    t0 = time.perf_counter()
    spec = envelope.spec(steps, momentum)
    K = spec.num_layers
    records: dict[int, tuple[float, float, str, float, float, float]] = {}

    def take(bound: Any) -> None:
        ex = bound.extra
        for i, n in enumerate(np.asarray(bound.iterations)):
            records[int(n)] = (float(bound.values[i]), float(ex["dual_value"][i]), str(ex["solver_status"][i]),
                               float(ex["duality_gap"][i]), float(ex["primal_residual"][i]),
                               float(ex["dual_residual"][i]))

    def fails(n: int) -> bool:
        v, dv, st, gap, pres, dres = records[n]
        up = max(v, dv) if np.isfinite(dv) else v
        e = envelope.values[n]
        return not (_accepted(st, gap, pres, dres) and (np.isinf(e) or up <= e * (1.0 + rtol)))

    complete = True
    if order is None:
        take(pep_bound(spec, layers="all", solver=solver))
    else:
        seq = list(dict.fromkeys([int(n) for n in order if 0 <= int(n) <= K] + list(range(1, K + 1)) + [0]))
        for n in seq:
            take(pep_bound(spec, layers=[n], solver=solver))
            if fails(n):
                complete = len(records) == K + 1
                break
    layers = tuple(sorted(records))
    rec = [records[n] for n in layers]
    values = np.array([r[0] for r in rec], dtype=np.float64)
    duals = np.array([r[1] for r in rec], dtype=np.float64)
    upper = np.where(np.isfinite(duals), np.fmax(values, duals), values)
    env = np.asarray(envelope.values, dtype=np.float64)[list(layers)]
    with np.errstate(invalid="ignore", divide="ignore"):
        margins = env - upper
        ratios = np.where(np.isinf(env), 0.0, np.where(env > 0, upper / env, np.where(upper > 0, np.inf, 1.0)))
    accepted = tuple(_accepted(r[2], r[3], r[4], r[5]) for r in rec)
    failing = tuple(n for n in layers if fails(n))
    multipliers = None
    if keep_multipliers:
        multipliers = tuple(None if n == 0 else solve_gram(spec.truncated(n), solver=solver,
                                                           keep_solution=True).multipliers for n in layers)
    return ScheduleCertificate(
        steps=np.asarray(steps, dtype=np.float64).copy(), momentum=spec.momentum.copy() if spec.has_momentum else None,
        layers=layers, values=values, upper=upper, envelope=env, margins=margins, ratios=ratios,
        statuses=tuple(r[2] for r in rec), duality_gaps=np.array([r[3] for r in rec]),
        primal_residuals=np.array([r[4] for r in rec]), dual_residuals=np.array([r[5] for r in rec]),
        accepted=accepted, holds=bool(complete and not failing), failing_layers=failing, rtol=rtol,
        method=spec.method, metric=str(spec.metric), solve_time=time.perf_counter() - t0, complete=complete,
        provenance=PROVENANCE if not spec.composite else PROVENANCE.replace(PEP_SOURCE, PEP_SOURCE_COMPOSITE),
        multipliers=multipliers)


def certify_schedule(steps: Any, envelope: Envelope, *, momentum: Any = None, rtol: float = DEFAULT_RTOL,
                     solver: str | None = None, keep_multipliers: bool = False) -> ScheduleCertificate:
    """Certify ``steps`` against ``envelope``, from scratch: W_k(steps) <= E_k at every layer k = 0..K.

    W_k is the exact worst case of performance estimation (Drori & Teboulle 2014, Math. Program. 145;
    Taylor, Hendrickx & Glineur 2017, Math. Program. 161, Thm 4), computed for every layer by
    ``theory.pep.pep_bound(spec, layers="all")`` in the envelope's setting (method, L, mu, metric, initial
    condition; ``momentum`` for agd/fista). Per layer the certified value is upper_k = max(primal, dual): the
    dual value (multiplier of the initial condition) bounds W_k from above by weak duality whenever the dual
    solution is feasible, which the engine checks (dual residual <= CERTIFICATE_TOL). The layer holds when the
    solve is accepted (status 'optimal' or closed form; 'optimal_inaccurate' only with duality gap and both
    residuals <= CERTIFICATE_TOL = 1e-6) and upper_k <= E_k (1 + rtol); ``rtol`` defaults to CERTIFICATE_TOL,
    the accuracy to which the SDP values are certified (module docstring). ``keep_multipliers`` also stores the
    interpolation-pair multipliers of each layer (one extra full Gram solve per layer).
    Raises ValueError for steps that are NaN/inf, non-positive or of the wrong length, or a negative rtol.
    """
    if not isinstance(envelope, Envelope):
        raise ValueError(f"envelope must be an Envelope (schedule_envelope), got {type(envelope).__name__}")
    arr = _steps("steps", steps, envelope.num_layers)
    return _check(arr, envelope, momentum, _rtol(rtol), solver, None, bool(keep_multipliers))


def _layer_holds(point: np.ndarray, k: int, envelope: Envelope, momentum: Any, rtol: float,
                 solver: str | None) -> bool:
    """Whether layer k alone is certified for ``point``: W_k depends on the first k steps only (x_k is made
    by steps 0..k-1; with momentum, by steps and momenta 0..k-1: x_k = prox(y_{k-1} - gamma_{k-1} grad f(y_{k-1})),
    y_{k-1} = x_{k-1} + beta_{k-1} (x_{k-1} - x_{k-2})), so one SDP of Gram size about k decides it, with
    ``certify_schedule``'s acceptance rule."""
    if np.any(point[:k] <= 0):
        return False
    mom = None if momentum is None else np.array(momentum, dtype=np.float64)  # the spec freezes its arrays
    b = pep_bound(envelope.spec(point.copy(), mom), layers=[k], solver=solver)
    ex = b.extra
    v, dv = float(b.values[0]), float(ex["dual_value"][0])
    up = max(v, dv) if np.isfinite(dv) else v
    e = float(envelope.values[k])
    return _accepted(str(ex["solver_status"][0]), float(ex["duality_gap"][0]), float(ex["primal_residual"][0]),
                     float(ex["dual_residual"][0])) and (np.isinf(e) or up <= e * (1.0 + rtol))


def _split(vec: np.ndarray, K: int, fixed_momentum: Any) -> tuple[np.ndarray, Any]:
    """(steps, momentum) of a projection variable: the concatenation (gamma, beta) of length 2K when the
    momentum is projected jointly, else the steps alone with the fixed ``fixed_momentum``."""
    return (vec[:K], vec[K:]) if vec.size == 2 * K else (vec, fixed_momentum)


def _project_layerwise(cand: np.ndarray, base: np.ndarray, envelope: Envelope, momentum: Any, rtol: float,
                       nb: int, solver: str | None) -> tuple[np.ndarray, float] | None:
    """Layer by layer, k = 1..K: with the entries of layers < k already fixed, move the entries layer k newly
    depends on (step k-1; with a joint momentum variable ``cand`` = (gamma, beta) of length 2K, step k-1 and
    momentum k-1 together, one fraction for both) from ``base`` towards ``cand`` as far as layer k stays
    certified (all the way when it does; else bisection on that fraction). Each layer's worst case depends on
    the entries before it only, so the fixed layers stay certified and a layer that cannot use its slack no
    longer freezes the others (the segment projection's weakness). Returns (point, smallest fraction moved) or
    None when the base value of some entry no longer certifies its layer after the earlier entries moved (the
    caller then falls back to the segment)."""
    K = envelope.num_layers
    joint = cand.size == 2 * K
    point = base.copy()
    frac = 1.0
    for k in range(1, K + 1):
        idx = [k - 1, K + k - 1] if joint else [k - 1]
        trial = point.copy()
        trial[idx] = cand[idx]
        if _layer_ok(trial, k, envelope, momentum, rtol, solver):
            point = trial
            continue
        if not _layer_ok(point, k, envelope, momentum, rtol, solver):
            return None
        lo, hi = 0.0, 1.0
        for _ in range(nb):
            mid = 0.5 * (lo + hi)
            trial[idx] = base[idx] + mid * (cand[idx] - base[idx])
            if _layer_ok(trial, k, envelope, momentum, rtol, solver):
                lo = mid
            else:
                hi = mid
        point[idx] = base[idx] + lo * (cand[idx] - base[idx])
        frac = min(frac, lo)
    return point, frac


def _layer_ok(vec: np.ndarray, k: int, envelope: Envelope, momentum: Any, rtol: float,
              solver: str | None) -> bool:
    steps, mom = _split(vec, envelope.num_layers, momentum)
    return _layer_holds(steps, k, envelope, mom, rtol, solver)


def _project_blockwise(cand: np.ndarray, base: np.ndarray, c0: ScheduleCertificate, K: int, nb: int,
                       check: Callable[[np.ndarray], ScheduleCertificate | None]
                       ) -> tuple[np.ndarray, ScheduleCertificate, float, float]:
    """Block by block, k = 1..K: the block of layer k (gamma_{k-1}, beta_{k-1}) moves from ``base`` towards
    ``cand`` as far as the whole schedule stays certified (``check``: every layer, from scratch), the blocks
    < k at their moved values and the blocks > k at ``base``. Every accepted point is certified at every layer,
    so the result is (unlike ``_project_layerwise``, which checks layer k only and can leave a later layer
    without a certified base value) certified by construction. Returns (point, its certificate, the smallest
    fraction a block moved, the largest: 0 when no block could move)."""
    point, cert, moved, frac = base.copy(), c0, 0.0, 1.0
    for k in range(1, K + 1):
        idx = [k - 1, K + k - 1]
        trial = point.copy()
        trial[idx] = cand[idx]
        c = check(trial)
        if c is not None:
            point, cert, moved = trial, c, 1.0
            continue
        lo, hi, best = 0.0, 1.0, None
        for _ in range(nb):
            mid = 0.5 * (lo + hi)
            trial[idx] = base[idx] + mid * (cand[idx] - base[idx])
            c = check(trial)
            if c is None:
                hi = mid
            else:
                lo, best = mid, (trial.copy(), c)
        if best is not None:
            point, cert = best
            moved = max(moved, lo)
        frac = min(frac, lo)
    return point, cert, frac, moved


def _project(cand: np.ndarray, base: np.ndarray, envelope: Envelope, momentum: Any, rtol: float, nb: int,
             solver: str | None, mode: str) -> tuple[np.ndarray, ScheduleCertificate, float]:
    """The projection on a variable ``cand`` / ``base``: the steps (length K, ``momentum`` fixed) or the
    concatenation (gamma, beta) (length 2K, momentum projected jointly). Shared by ``project_schedule`` and
    ``project_momentum_schedule``; see their docstrings."""
    K = envelope.num_layers
    last_failing: list[int] = []

    def check(point: np.ndarray) -> ScheduleCertificate | None:
        if np.any(point[:K] <= 0):
            return None
        steps, mom = _split(point, K, momentum)
        cert = _check(steps, envelope, mom, rtol, solver, last_failing, False)
        if not cert.holds:
            last_failing[:] = list(cert.failing_layers) + [n for n in last_failing if n not in cert.failing_layers]
            return None
        return cert

    c = check(cand)
    if c is not None:
        return cand, c, 1.0
    c0 = check(base)
    if c0 is None:
        raise ValueError("certified schedule is not inside the envelope (re-checked at t = 0): "
                         f"failing layers {last_failing}")
    if mode == "layerwise":
        found = _project_layerwise(cand, base, envelope, momentum, rtol, nb, solver)
        if found is not None:
            cert = check(found[0])
            if cert is not None:
                return found[0], cert, found[1]
        if cand.size == 2 * K:  # joint (gamma, beta): the block-wise variant, certified by construction
            point, cert, frac, moved = _project_blockwise(cand, base, c0, K, nb, check)
            if moved > 0.0:
                return point, cert, frac
    lo, hi, best = 0.0, 1.0, (base, c0)
    for _ in range(nb):
        mid = 0.5 * (lo + hi)
        point = base + mid * (cand - base)
        cm = check(point)
        if cm is None:
            hi = mid
        else:
            lo, best = mid, (point, cm)
    return best[0], best[1], lo


def project_schedule(candidate: Any, certified: Any, envelope: Envelope, *, momentum: Any = None,
                     rtol: float = DEFAULT_RTOL, bisection_steps: int = DEFAULT_BISECTION_STEPS,
                     solver: str | None = None, mode: str = "segment") -> tuple[np.ndarray, ScheduleCertificate, float]:
    """The largest certified point of the segment gamma(t) = certified + t (candidate - certified), t in [0, 1].

    If ``candidate`` itself is certified (``certify_schedule``), it is returned with t = 1. Otherwise t = 0
    (``certified``, assumed certified) is re-checked, then ``bisection_steps`` bisection steps on [lo, hi]
    (lo certified, hi not) return gamma(lo): a point certified at every layer, within 2^-bisection_steps of
    the boundary along the segment (the set of certified schedules need not be convex, so this is the
    largest certified t found by bisection, not necessarily the largest overall). Points with a step <= 0
    are not certified (no finite worst case for GD over the class) and are not solved; the returned steps are
    always > 0. Each check stops at the first failing layer (the layers that failed in this projection first,
    then 1..K: the small SDPs first);
    a point that holds was solved at every layer, so its certificate is complete.
    ``mode="layerwise"``: instead of one segment, layer by layer (``_project_layerwise``): step k-1 moves
    towards the candidate as far as layer k stays certified, the earlier steps fixed; the result is certified
    from scratch at every layer (else, and when a layer cannot be kept, the segment result is returned), and t
    is the smallest fraction of its way any step moved (1: the candidate itself). ``momentum`` (agd/fista) is
    held fixed; ``project_momentum_schedule`` projects steps and momentum jointly.
    Returns (steps, certificate, t). Raises ValueError for NaN/inf input, wrong lengths, a non-positive
    ``certified`` schedule, a ``certified`` schedule that is not inside the envelope, or an unknown mode.
    """
    if mode not in ("segment", "layerwise"):
        raise ValueError(f"mode must be 'segment' or 'layerwise', got {mode!r}")
    if not isinstance(envelope, Envelope):
        raise ValueError(f"envelope must be an Envelope (schedule_envelope), got {type(envelope).__name__}")
    K = envelope.num_layers
    cand = _steps("candidate", candidate, K, positive=False)
    base = _steps("certified", certified, K)
    return _project(cand, base, envelope, momentum, _rtol(rtol), positive_int("bisection_steps", bisection_steps),
                    solver, mode)


def project_momentum_schedule(candidate_steps: Any, candidate_momentum: Any, certified_steps: Any,
                              certified_momentum: Any, envelope: Envelope, *, rtol: float = DEFAULT_RTOL,
                              bisection_steps: int = DEFAULT_BISECTION_STEPS, solver: str | None = None,
                              mode: str = "segment") -> tuple[np.ndarray, np.ndarray, ScheduleCertificate, float]:
    """Joint projection of a momentum schedule (gamma, beta) (method agd / fista) onto the certified set.

    The variable is the concatenation v = (gamma_0..gamma_{K-1}, beta_0..beta_{K-1}), beta_k being the momentum
    of the step that produces x_{k+1}: y_k = x_k + beta_k (x_k - x_{k-1}) (beta_0 multiplies x_0 - x_{-1} = 0
    and has no effect). ``mode="segment"``: the largest certified point found by bisection on
    v(t) = v_cert + t (v_cand - v_cert), t in [0, 1] (as ``project_schedule``). ``mode="layerwise"``: for
    k = 1..K, with the entries of layers < k fixed, the pair (gamma_{k-1}, beta_{k-1}) that layer k newly
    depends on (W_k depends on gamma_0..gamma_{k-1}, beta_0..beta_{k-1} only) moves along its own segment
    towards the candidate's pair, as far as layer k stays certified (bisection on one fraction); the result is
    certified from scratch at every layer, else the segment result is returned. The momentum may have any sign
    (``make_spec`` accepts any finite beta; so does ``fista-unfolded``); steps <= 0 are never certified, so the
    returned steps are > 0. Returns (steps, momentum, certificate, t), float64, t the smallest fraction moved
    (1: the candidate itself). Raises ValueError for an envelope without momentum (gd / pgm), NaN/inf input,
    wrong lengths, a non-positive certified step, a certified point outside the envelope, or an unknown mode.
    """
    if mode not in ("segment", "layerwise"):
        raise ValueError(f"mode must be 'segment' or 'layerwise', got {mode!r}")
    if not isinstance(envelope, Envelope):
        raise ValueError(f"envelope must be an Envelope (schedule_envelope), got {type(envelope).__name__}")
    if envelope.method not in MOMENTUM_METHODS:
        raise ValueError(f"a joint momentum projection needs a momentum method {MOMENTUM_METHODS}, "
                         f"the envelope's is {envelope.method!r}")
    K = envelope.num_layers
    cand = np.concatenate([_steps("candidate_steps", candidate_steps, K, positive=False),
                           _steps("candidate_momentum", candidate_momentum, K, positive=False)])
    base = np.concatenate([_steps("certified_steps", certified_steps, K),
                           _steps("certified_momentum", certified_momentum, K, positive=False)])
    point, cert, t = _project(cand, base, envelope, None, _rtol(rtol),
                              positive_int("bisection_steps", bisection_steps), solver, mode)
    return point[:K].copy(), point[K:].copy(), cert, t


@dataclass(frozen=True)
class CertifiedTrainResult:
    """The outcome of ``train_certified_schedule``: the final schedule, its certificate (recomputed from
    scratch on the trained model's ``schedule()["step"]``), the initial schedule and where it came from
    ("model" or "reference"), the per-epoch history (mean training objective, mean validation objective at
    the last layer, projections, whether any was needed, the smallest t found, time), the envelope, the
    trainer's ``TrainResult`` (``train``), and the wall time spent training and in projections. ``momentum`` and
    ``initial_momentum``: the same for the momentum beta_0..beta_{K-1} of a momentum model (``fista-unfolded``;
    beta_0 = 0), None otherwise."""

    steps: np.ndarray
    certificate: ScheduleCertificate
    initial_steps: np.ndarray
    start: str
    history: tuple[dict[str, Any], ...]
    envelope: Envelope
    train: Any
    train_time: float
    projection_time: float
    momentum: np.ndarray | None = None
    initial_momentum: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (the trainer's result as its per-epoch history)."""
        return jsonable({"steps": self.steps, "certificate": self.certificate.to_dict(),
                         "initial_steps": self.initial_steps, "start": self.start, "history": list(self.history),
                         "envelope": self.envelope.to_dict(), "train_history": self.train.history,
                         "train_time": self.train_time, "projection_time": self.projection_time,
                         "momentum": self.momentum, "initial_momentum": self.initial_momentum})


def _model_method(model: Any) -> str:
    family = getattr(model, "family", None)
    if family not in CERTIFIABLE_MODELS:
        raise ValueError(f"model must be one of {sorted(CERTIFIABLE_MODELS)} (a learned step schedule PEP "
                         f"analyses exactly), got {family!r}")
    if family == "ista-learned-step" and getattr(model, "threshold", None) is not None:
        raise ValueError("ista-learned-step needs learn_threshold=False (theta_k = lam gamma_k, i.e. tau_k = "
                         "gamma_k): with learned thresholds the worst case over all convex h is unbounded")
    return CERTIFIABLE_MODELS[family]


#: trainer settings ``train_certified_schedule`` sets itself or refuses (fresh batches, float64, one stage)
_FIXED_SETTINGS = ("epochs", "steps_per_epoch", "batch_size", "lr", "seed", "train_size", "dtype", "stop_after",
                   "resume")


def train_certified_schedule(model: Any, problem: Problem, envelope: Envelope, *, epochs: int,
                             steps_per_epoch: int, batch_size: int, lr: float, seed: int = 0,
                             project_every: int = 1, rtol: float = DEFAULT_RTOL,
                             bisection_steps: int = DEFAULT_BISECTION_STEPS, solver: str | None = None,
                             callback: Callable[[dict[str, Any]], None] | None = None,
                             projection: str = "layerwise", **train_settings: Any) -> CertifiedTrainResult:
    """Train a learned step schedule on its unsupervised objective while keeping it certified.

    The trainer (``unrolled.training.train`` with the ``unsupervised`` scheme (``Unsupervised.loss``): loss (1/B)
    sum_b F(x_K^b; y^b), Adam by default, fresh batches ``problem.sample(batch_size, rng)``, seeded as an
    unconstrained run with the same ``seed``, so both see the same data) runs with a ``constraint`` hook: before
    training the model's schedule is kept if ``certify_schedule`` holds, else replaced by the envelope's reference
    schedule; after every ``project_every`` optimizer steps, and after the last step of every epoch (so every
    validated, restored and returned state is certified), the steps gamma are replaced by ``project_schedule(gamma,
    gamma_certified, envelope)``, gamma_certified the last certified schedule. The final certificate is recomputed
    from scratch on ``model.schedule()["step"]``. Models: ``gd-unfolded`` (method "gd"), ``ista-learned-step``
    with ``learn_threshold=False`` (method "pgm", tau_k = gamma_k) and ``fista-unfolded`` (method "fista",
    tau_k = gamma_k: the variable is (gamma, beta), projected jointly by ``project_momentum_schedule``; beta_0 = 0
    is not a parameter and stays 0; the final certificate is on ``schedule()["step"]`` and
    ``schedule()["momentum"]``), in float64 (a rounded copy of a certified schedule need not be certified). ``train_settings``: further ``TrainConfig`` fields (val_size, default 256;
    lr_schedule, optimizer, grad_clip, restore_best, progress, default False, ...); train_size, dtype, stop_after
    and resume are refused. ``callback(entry)`` is called after every epoch with this function's history entry.
    Cost: one certificate of K = 8 takes about 0.1 s, a projection 0.1-0.5 s (docs/certified_schedules_section.md),
    so ``project_every=1`` dominates the training time; once per epoch (``project_every=steps_per_epoch``) is often
    enough. ``projection``: "layerwise" (default; step by step, so a binding layer does not freeze the others)
    or "segment" (``project_schedule``'s ``mode``). Raises ValueError for a model that is not certifiable, not float64, or whose method or size differs from
    the envelope's, and for invalid settings.
    """
    if not isinstance(envelope, Envelope):
        raise ValueError(f"envelope must be an Envelope (schedule_envelope), got {type(envelope).__name__}")
    method = _model_method(model)
    if method != envelope.method:
        raise ValueError(f"the envelope is for method {envelope.method!r}, the model {model.family!r} is {method!r}")
    if model.num_layers != envelope.num_layers:
        raise ValueError(f"the envelope has {envelope.num_layers} layers, the model {model.num_layers}")
    if model.step.dtype != torch.float64:
        raise ValueError(f"the model must be float64 (build it with dtype=torch.float64), got {model.step.dtype}")
    epochs = positive_int("epochs", epochs)
    steps_per_epoch = positive_int("steps_per_epoch", steps_per_epoch)
    project_every = positive_int("project_every", project_every)
    rtol = _rtol(rtol)
    refused = sorted(set(train_settings) & set(_FIXED_SETTINGS))
    if refused:
        raise ValueError(f"train_certified_schedule sets or refuses the training settings {', '.join(refused)}")
    settings = {"val_size": 256, "progress": False, **train_settings}
    state: dict[str, Any] = {"count": 0, "ts": [], "proj_time": 0.0, "certified": None, "start": None}

    K = envelope.num_layers
    joint = method in MOMENTUM_METHODS  # the variable is (gamma, beta), 2K entries (beta_0 = 0, not learned)

    def read(m: Any) -> np.ndarray:
        steps = m.step.detach().cpu().numpy().astype(np.float64)
        if not joint:
            return steps
        mom = np.zeros(K, dtype=np.float64)
        if m.momentum is not None:
            mom[1:] = m.momentum.detach().cpu().numpy().astype(np.float64)
        return np.concatenate([steps, mom])

    def write(vec: np.ndarray) -> None:
        vec = np.array(vec, dtype=np.float64)
        model.step.copy_(torch.tensor(vec[:K], dtype=model.step.dtype, device=model.step.device))
        if joint and model.momentum is not None:
            model.momentum.copy_(torch.tensor(vec[K + 1:], dtype=model.momentum.dtype, device=model.momentum.device))

    def holds(vec: np.ndarray) -> bool:
        if not (np.all(np.isfinite(vec)) and np.all(vec[:K] > 0)):
            return False
        return certify_schedule(vec[:K], envelope, momentum=vec[K:] if joint else None, rtol=rtol,
                                solver=solver).holds

    def constraint(m: Any) -> None:
        if m.step.dtype != torch.float64 or (joint and m.momentum is not None and m.momentum.dtype != torch.float64):
            raise ValueError(f"the model must stay float64 while training, got {m.step.dtype}")
        t0 = time.perf_counter()
        current = read(m)
        if state["certified"] is None:  # before training: the initial point
            ok = holds(current)
            if not ok:
                if envelope.reference_steps is None:
                    raise ValueError("the model's schedule is not certified and the envelope has no reference "
                                     "schedule to start from")
                current = envelope.reference_steps.copy()
                if joint:
                    ref_mom = np.zeros(K) if envelope.reference_momentum is None else \
                        envelope.reference_momentum.copy()
                    ref_mom[0] = 0.0  # beta_0 multiplies x_0 - x_{-1} = 0: no layer changes; not a model parameter
                    current = np.concatenate([current, ref_mom])
                write(current)
            state.update(certified=current.copy(), initial=current.copy(), start="model" if ok else "reference")
        else:
            state["count"] += 1
            if state["count"] % project_every == 0 or state["count"] % steps_per_epoch == 0:
                if not np.all(np.isfinite(current)):
                    raise RuntimeError(f"a step became NaN/inf after optimizer step {state['count']}: lower lr")
                if joint:
                    s_new, b_new, _, t = project_momentum_schedule(
                        current[:K], current[K:], state["certified"][:K], state["certified"][K:], envelope,
                        rtol=rtol, bisection_steps=bisection_steps, solver=solver, mode=projection)
                    new = np.concatenate([s_new, b_new])
                else:
                    new, _, t = project_schedule(current, state["certified"], envelope, rtol=rtol,
                                                 bisection_steps=bisection_steps, solver=solver, mode=projection)
                if t < 1.0 or not np.array_equal(new, current):
                    write(new)
                state["certified"] = np.asarray(new, dtype=np.float64).copy()
                state["ts"].append(float(t))
        state["proj_time"] += time.perf_counter() - t0

    history: list[dict[str, Any]] = []

    def on_epoch(entry: dict[str, Any]) -> None:
        ts = state["ts"]
        mine = {"epoch": entry["epoch"], "train_objective": float(entry["train_loss"]),
                "val_objective": float(entry["val_objective"][-1]), "projections": len(ts),
                "projection_needed": bool(any(t < 1.0 for t in ts)), "t_min": min(ts) if ts else None,
                "time_s": float(entry["time_s"])}
        state["ts"] = []
        history.append(mine)
        if callback is not None:
            callback(mine)

    t_start = time.perf_counter()
    result = train(model, problem, "unsupervised", epochs=epochs, steps_per_epoch=steps_per_epoch,
                   batch_size=batch_size, lr=lr, seed=seed, constraint=constraint, callback=on_epoch, **settings)
    sched = model.schedule()
    final = np.asarray(sched["step"], dtype=np.float64)
    final_mom = np.asarray(sched["momentum"], dtype=np.float64) if joint else None
    cert = certify_schedule(final, envelope, momentum=final_mom, rtol=rtol, solver=solver)
    return CertifiedTrainResult(steps=final, certificate=cert, initial_steps=state["initial"][:K].copy(),
                                start=state["start"], history=tuple(history), envelope=envelope, train=result,
                                train_time=time.perf_counter() - t_start, projection_time=state["proj_time"],
                                momentum=final_mom,
                                initial_momentum=state["initial"][K:].copy() if joint else None)
