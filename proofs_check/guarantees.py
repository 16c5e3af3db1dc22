"""The guarantee registry: for each classical algorithm and each unfolded-model family, the bounds that can
apply and the checks that decide whether they do. The one place that knows which theorem governs which
target; nothing else dispatches on algorithm or family names.

A ``Guarantee`` builds a ``Bound`` for a ``Setting`` (target, problem, batch, trajectory, reference), with
every hypothesis checked as an ``Assumption`` on the measured numbers (step sizes, schedules, coupling,
sparsity, ...): a bound whose assumption fails is blank, and its verdict "not applicable".
A family no theorem covers has a ``Coverage`` with no guarantees and the reason.

Sources: classical rates (``theory.rates``: Beck & Teboulle 2009 Thm 3.1/4.4; Drori & Teboulle 2014 Thm 3.1;
Taylor, Hendrickx & Glineur 2018 Thm 3.1), exact PEP worst cases of a step schedule (``theory.pep``:
Taylor, Hendrickx & Glineur 2017), exact worst cases on quadratics (``theory.quadratic_schedules``), the
LISTA-CP / ALISTA linear-convergence bounds (``theory.lista``: Chen et al. 2018 Thm 2, Liu et al. 2019 Thm 1).

Robust PCA (matrix pairs (L_k, S_k), not a ``Problem``) has its own setting and registry in
``proofs_check.rpca_guarantees`` (``RPCA_REGISTRY``, entries with ``setting="rpca"``); ``coverage(name)``
answers for both, ``REGISTRY`` holds the sparse-recovery entries only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import numpy as np
import torch
from unfoldkit.proofs_check.lista_bounds import (
    alista_theorem_bound,
    layer_constants,
    recursion_bound,
)
from unfoldkit.proofs_check.measure import reference_distance_slack
from unfoldkit.proofs_check.targets import Target
from unfoldkit.theory.bound import Assumption, Bound, Metric
from unfoldkit.theory.pep import PEP_SOURCE, pep_worst_case
from unfoldkit.theory.quadratic_schedules import quadratic_worst_case
from unfoldkit.theory.rates import CLASSICAL_RATES
from unfoldkit.unrolled.problems.base import Problem, Reference
from unfoldkit.unrolled.problems.quadratic import LeastSquares
from unfoldkit.unrolled.steps import fista_momentum
from unfoldkit.unrolled.trajectory import Trajectory

#: what x* a guarantee's metric is measured against
MINIMIZER, SIGNAL = "minimizer", "signal"

#: relative accuracy of a PEP value from the SDP solvers (docs/pep.md), added to the PEP guarantee
PEP_RTOL = 1e-5

#: relative agreement below which two float64 schedule values count as equal (float32 models: round-off ~6e-8)
SCHEDULE_RTOL = 1e-6


@dataclass
class Setting:
    """Everything a guarantee reads: the target and its run, the problem and batch, the reference minimizer
    (computed on first use), the ground-truth signal ``x`` when known, and options (s, B, sigma)."""

    target: Target
    problem: Problem
    y: torch.Tensor
    trajectory: Trajectory
    x: torch.Tensor | None = None
    given_reference: Reference | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def reference(self) -> Reference:
        return self.problem.reference(self.y) if self.given_reference is None else self.given_reference

    @cached_property
    def schedule(self) -> dict[str, np.ndarray]:
        return self.target.schedule(self.problem)

    @cached_property
    def radius(self) -> np.ndarray:
        """Certified upper end of R_b = ||x_0 - x*|| per instance: ||x_0 - x_ref|| + ||x_ref - x*|| bound."""
        x0 = self.trajectory.iterates[0]
        r = (x0 - self.reference.x.to(device=x0.device, dtype=x0.dtype)).norm(dim=-1).double().cpu().numpy()
        return r + reference_distance_slack(self.problem, self.reference)


@dataclass(frozen=True)
class Guarantee:
    """A bound that can govern a target: its name, metric, against which x* it is measured, the theorem in
    one line, and ``build(setting) -> Bound`` (assumptions checked on the setting's numbers)."""

    name: str
    metric: str
    against: str
    theorem: str
    build: Callable[[Setting], Bound]


@dataclass(frozen=True)
class Coverage:
    """The guarantees of one algorithm or model family; ``reason`` says why none applies when empty."""

    target: str
    guarantees: tuple[Guarantee, ...]
    reason: str = ""
    #: names run only when asked for by name (an SDP per layer: slow for long classical runs)
    on_request: tuple[str, ...] = ()
    #: the kind of setting its guarantees' ``build`` reads: "sparse" (``Setting``: a ``Problem`` with vector
    #: iterates) or "rpca" (``rpca_guarantees.RpcaSetting``: matrix pairs (L_k, S_k)); consumers that build
    #: a sparse ``Setting`` must skip "rpca" entries (they live in ``RPCA_REGISTRY``, not in ``REGISTRY``)
    setting: str = "sparse"

    @property
    def covered(self) -> bool:
        return bool(self.guarantees)

    @property
    def default(self) -> tuple[Guarantee, ...]:
        """The guarantees ``verify`` checks when no bound is named."""
        return tuple(g for g in self.guarantees if g.name not in self.on_request)

    def names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.guarantees)

    def get(self, name: str) -> Guarantee:
        for g in self.guarantees:
            if g.name == name:
                return g
        raise ValueError(f"bound {name!r} does not govern {self.target}; its bounds: "
                         f"{', '.join(self.names()) or 'none (' + self.reason + ')'}")


# ---- checks on a target's schedule --------------------------------------------------------------------


def _close(a: np.ndarray, b: np.ndarray) -> tuple[bool, float]:
    """Whether a == b within SCHEDULE_RTOL relative (max over entries), and the measured max relative gap."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return True, 0.0
    gap = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), np.finfo(float).tiny)))
    return gap <= SCHEDULE_RTOL, gap


def _constant_step(steps: np.ndarray) -> Assumption:
    ok, gap = _close(steps, np.full_like(steps, steps[0] if steps.size else 0.0))
    return Assumption("constant step gamma_k = gamma_0", ok, gap, f"max_k |gamma_k - gamma_0| / gamma_0 <= {SCHEDULE_RTOL:g}")


def _prox_thresholds(st: Setting) -> list[Assumption]:
    """A thresholding model is a proximal-gradient method on F = f + lam ||x||_1 only when theta_k = gamma_k lam."""
    sched = st.schedule
    if "threshold" not in sched:
        return []
    lam = float(getattr(st.problem, "lam", 0.0))
    ok, gap = _close(sched["threshold"], sched["step"] * lam)
    return [Assumption("threshold theta_k = gamma_k lam (layers are prox-gradient steps on F)", ok, gap,
                       f"max_k relative gap <= {SCHEDULE_RTOL:g}")]


def _model_checks(st: Setting, algorithm: str) -> list[Assumption]:
    """What makes an unfolded model with learned hyperparameters the classical algorithm with constant
    parameters (so that the classical rate applies): constant step, thresholds gamma_k lam, FISTA momentum."""
    if st.target.kind != "model" and np.ndim(st.target.step) == 0:
        return []
    sched = st.schedule
    checks = [_constant_step(sched["step"])]
    if st.target.kind == "model":
        checks += _prox_thresholds(st)
        if algorithm == "fista":
            ok, gap = _close(sched["momentum"], fista_momentum(len(sched["step"])))
            checks.append(Assumption("momentum beta_k = Beck-Teboulle's", ok, gap,
                                     f"max_k relative gap <= {SCHEDULE_RTOL:g}"))
    return checks


def _rate(name: str) -> Guarantee:
    fn, algorithm, needs_mu = CLASSICAL_RATES[name]

    def build(st: Setting) -> Bound:
        steps = st.schedule["step"]
        gamma = float(steps[0]) if steps.size else 1.0 / st.problem.L
        args = (st.problem.L, st.problem.mu) if needs_mu else (st.problem.L,)
        bound = fn(*args, st.radius, st.target.num_steps, step=gamma)
        checks = _model_checks(st, algorithm)
        return bound.with_assumptions(*checks) if checks else bound

    sample = fn(*((1.0, 0.5) if needs_mu else (1.0,)), 1.0, 1)
    return Guarantee(name, sample.metric, MINIMIZER, f"{sample.theorem}, {sample.source}", build)


def _positive_steps(steps: np.ndarray) -> Assumption:
    low = float(steps.min()) if steps.size else 0.0
    return Assumption("every step gamma_k > 0", bool(steps.size and low > 0), low, "min_k gamma_k > 0")


def _pep(method: str) -> Guarantee:
    """The exact worst case of f(x_k) - f* (F for prox methods) over the class F_{mu,L} (+ closed convex h)
    for the target's own schedule, with ||x_0 - x*|| <= R per instance (the PEP value scales as R^2)."""

    def build(st: Setting) -> Bound:
        sched, p = st.schedule, st.problem
        steps = sched["step"]
        pos = _positive_steps(steps)
        kwargs: dict[str, Any] = {}
        if method in ("pgm", "fista") and "threshold" in sched and float(getattr(p, "lam", 0.0)) > 0:
            kwargs["prox_steps"] = sched["threshold"] / float(p.lam)
        if method == "fista":
            kwargs["momentum"] = sched["momentum"]
        safe = steps if pos.holds else np.ones_like(steps) / p.L
        # F_{mu,L} is empty of interior at mu = L (PEP degenerates); F_{mu',L} with mu' < mu contains f, so
        # the worst case over it is still a valid (marginally looser) bound
        mu = min(p.mu, p.L * (1 - 1e-3))
        try:
            b = pep_worst_case(safe, L=p.L, mu=mu, method=method, metric=Metric.OBJECTIVE_GAP, R=1.0,
                               name=f"pep-{method}-schedule", **kwargs)
        except RuntimeError as err:  # no solver returned a certified solution: no claim is made
            solved = Assumption("PEP SDP solved with a certificate", False, None, str(err).split(": ", 1)[-1])
            return Bound.build(f"pep-{method}-schedule", np.arange(len(steps) + 1),
                               np.full((len(steps) + 1, len(st.radius)), np.nan), metric=Metric.OBJECTIVE_GAP,
                               theorem="exact worst case by performance estimation", source=PEP_SOURCE,
                               status="confirmed", assumptions=(pos, solved))
        # the SDP's accuracy: the larger of primal and dual value, plus 1e-5 relative (the accuracy documented
        # in docs/pep.md for worst cases far below their initial value; found by `unfoldkit stress pep-schedule`)
        dual = np.nan_to_num(np.asarray(b.extra.get("dual_value", b.values), dtype=np.float64), nan=0.0)
        value = np.maximum(b.values, dual) * (1 + PEP_RTOL)
        with np.errstate(invalid="ignore"):  # inf * 0 (R = 0) in the branch np.where discards
            scaled = np.where(np.isinf(b.values)[:, None], np.inf, value[:, None] * st.radius[None, :] ** 2)
        return b.with_assumptions(pos, values=scaled)  # +inf (no claim) stays +inf even where R = 0

    return Guarantee(f"pep-{method}-schedule", Metric.OBJECTIVE_GAP, MINIMIZER,
                     "exact PEP worst case of the schedule, Taylor, Hendrickx & Glineur 2017", build)


def _quadratic() -> Guarantee:
    """Exact worst case of ||x_k - x*|| over quadratics with Hessian spectrum in [mu, L] for the target's
    GD schedule (max over the spectrum of |p_k|), per instance times R."""

    def build(st: Setting) -> Bound:
        p = st.problem
        quad = Assumption("f is a quadratic (least squares) with Hessian spectrum in [mu, L]",
                          isinstance(p, LeastSquares), None, "a LeastSquares problem")
        b = quadratic_worst_case(st.schedule["step"], p.mu, p.L)
        return b.with_assumptions(quad, values=b.values[:, None] * st.radius[None, :])

    return Guarantee("quadratic-worst-case-gd", Metric.DISTANCE, MINIMIZER,
                     "max over [mu, L] of the residual polynomial |p_k|, exact on quadratics", build)


def _signal_class(st: Setting) -> tuple[int, float, float, list[Assumption]]:
    """(s, B, sigma) of the class X(B, s) with noise ||eps||_1 <= sigma, from the options or the batch, and
    the checks that the batch's signals lie in it."""
    if st.x is None:
        raise ValueError(f"the bounds of {st.target.name} speak of the true signal: pass x (the ground truth)")
    x = st.x.double().cpu()
    nnz = int((x != 0).sum(dim=-1).max())
    amp = float(x.abs().max())
    a = torch.as_tensor(np.asarray(st.problem.A, dtype=np.float64))
    noise = float((st.y.double().cpu() - x @ a.T).abs().sum(dim=-1).max())
    s = int(st.options.get("s") or max(nnz, 1))
    B = float(st.options.get("B") or max(amp, np.finfo(float).tiny))
    sigma = float(st.options.get("sigma", noise) if st.options.get("sigma") is not None else noise)
    checks = [Assumption("signals s-sparse: max ||x||_0 <= s", nnz <= s, float(nnz), f"<= {s}"),
              Assumption("signals bounded: max |x_i| <= B", amp <= B, amp, f"<= {B:g}"),
              Assumption("noise ||y - A x||_1 <= sigma", noise <= sigma * (1 + 1e-9) + 1e-12, noise, f"<= {sigma:g}")]
    return s, B, sigma, checks


def _lista(kind: str, family: str = "") -> Guarantee:
    def build(st: Setting) -> Bound:
        s, B, sigma, checks = _signal_class(st)
        model = st.target.model
        const = layer_constants(model)
        make = recursion_bound if kind == "recursion" else alista_theorem_bound
        return make(model, const, s, B, sigma).with_assumptions(*checks)

    theorem = ("certified per-layer recursion (derived from Chen et al. 2018 Thm 2 / Liu et al. 2019 Thm 1)"
               if kind == "recursion" else "ALISTA Thm 1, Liu et al. 2019")
    return Guarantee(f"{family}-recursion" if kind == "recursion" else "alista-thm1", Metric.DISTANCE, SIGNAL,
                     theorem, build)


def _rates_of(algorithm: str) -> tuple[Guarantee, ...]:
    return tuple(_rate(n) for n, (_, alg, _) in CLASSICAL_RATES.items() if alg == algorithm)


REGISTRY: dict[str, Coverage] = {c.target: c for c in (
    Coverage("gd", _rates_of("gd") + (_pep("gd"), _quadratic()), on_request=("pep-gd-schedule",)),
    Coverage("ista", _rates_of("ista") + (_pep("pgm"),), on_request=("pep-pgm-schedule",)),
    Coverage("fista", _rates_of("fista") + (_pep("fista"),), on_request=("pep-fista-schedule",)),
    Coverage("admm", (), "no rate for ADMM's iterates is encoded (its O(1/k) rates bound ergodic averages)"),
    Coverage("gd-unfolded", _rates_of("gd") + (_pep("gd"), _quadratic())),
    Coverage("ista-learned-step", _rates_of("ista") + (_pep("pgm"),)),
    Coverage("fista-unfolded", _rates_of("fista") + (_pep("fista"),)),
    Coverage("admm-unfolded", (), "no rate for ADMM's iterates is encoded (its O(1/k) rates bound ergodic "
                                  "averages); learned penalties rho_k are outside the classical analysis"),
    Coverage("ista-weighted-l1", (), "the learned per-coordinate weights change the objective: the model "
                                     "minimizes another F, whose minimizer no reference here computes"),
    Coverage("ista-correction", (), "a learned correction network is added to each step: no convergence "
                                    "theorem covers a general correction"),
    Coverage("lista", (_lista("recursion", "lista"),)),
    Coverage("lista-cp", (_lista("recursion", "lista-cp"),)),
    Coverage("lista-cpss", (_lista("recursion", "lista-cpss"),)),
    Coverage("alista", (_lista("recursion", "alista"), _lista("alista"))),
)}


def rpca_registry() -> dict[str, Coverage]:
    """The robust-PCA entries (``Coverage.setting == "rpca"``), from ``proofs_check.rpca_guarantees``:
    kept out of ``REGISTRY``, whose consumers build sparse-recovery ``Setting``s."""
    from unfoldkit.proofs_check.rpca_guarantees import RPCA_REGISTRY

    return RPCA_REGISTRY


def coverage(target: Target | str) -> Coverage:
    """The registry entry of a target (or of an algorithm / family name, sparse recovery or robust PCA); an
    uncovered entry with the reason for an unknown one."""
    name = target.name if isinstance(target, Target) else str(target)
    if name in REGISTRY:
        return REGISTRY[name]
    rpca = rpca_registry()
    if name in rpca:
        return rpca[name]
    return Coverage(name, (), f"{name!r} is not a target unfoldkit knows a theorem for")
