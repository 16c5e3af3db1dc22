"""Exact worst cases of (learned) step schedules by performance estimation, as Bounds with provenance.

Entry point: ``pep_worst_case(steps, L=..., ...)``: a schedule (numpy array, sequence or torch tensor,
one step per layer) goes in; a ``Bound`` comes out whose ``values[i]`` is the exact worst case after
``iterations[i]`` layers (every N = 0..K by default), over the whole function class:

    sup { metric(x_N) : f in F_{mu,L} [, h closed convex], x_0 with ||x_0 - x*|| <= R }   (or F(x_0) - F* <= D)

Two engines compute the same number: ``"gram"`` (our cvxpy Gram-matrix SDP, ``pep.gram``) and ``"pepit"``
(PEPit, the reference, ``pep.pepit``). Methods, classes, metrics and the meaning of tau_k != gamma_k are in
``pep.problem``; comparison with classical schedules and growth flags in ``pep.compare``.
"""
from __future__ import annotations

import dataclasses

from typing import Any, Iterable

import numpy as np

from unfoldkit.theory.bound import Assumption, Bound, Metric
from unfoldkit.theory.conditions import positive_constant
from unfoldkit.theory.pep.constraint_generation import point_layout, solve_generation
from unfoldkit.theory.pep.gram import CERTIFICATE_TOL, solve_gram
from unfoldkit.theory.pep.pepit import solve_pepit
from unfoldkit.theory.pep.problem import PepSolution, PepSpec, initial_worst_case, make_spec

ENGINES = ("gram", "pepit")
FORMULATIONS = ("auto", "full", "generation")
#: formulation="auto": constraint generation above this Gram size (measured, benchmarks/pep_scaling.py and
#: docs/pep.md: at d = 32 the full program takes 1.2 s with Clarabel, generation 0.08 s with SCS; below ~40 the
#: full program is fast and its preconditioned Clarabel solve is the most accurate)
AUTO_GENERATION_GRAM_SIZE = 40  # gd and pgm; momentum and general methods: above AUTO_FULL_MAX_GRAM_SIZE
#: (FISTA at K = 20, d = 43: generation needs 5 rounds and 600 of 882 pairs, SCS 6 minutes to certify them,
#: against 3.5-6 s for the full program with Clarabel)
#: formulation="auto": when generation fails, the full program is tried up to this Gram size (dense rows:
#: about 1.8 GB at d = 102)
AUTO_FULL_MAX_GRAM_SIZE = 100
PEP_THEOREM = "exact worst case by performance estimation (Gram-matrix SDP), per layer"
PEP_SOURCE = ("performance estimation, Drori & Teboulle 2014, Math. Program. 145:451-482; Taylor, Hendrickx & "
              "Glineur 2017 interpolation, Thm 4 in Math. Prog. 161:307-345")
PEP_SOURCE_COMPOSITE = PEP_SOURCE + ("; composite f + h: Taylor, Hendrickx & Glineur 2017, SIAM J. Optim. "
                                     "27(3):1283-1313")


def _formulation(formulation: str) -> str:
    if not isinstance(formulation, str) or formulation not in FORMULATIONS:
        raise ValueError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")
    return formulation


def _use_generation(spec: PepSpec, solver: str | None, formulation: str) -> bool:
    """formulation "auto": constraint generation when the Gram matrix is larger than
    ``AUTO_GENERATION_GRAM_SIZE`` and the solver is SCS or not forced (Clarabel forced: the full program)."""
    if formulation != "auto":
        return formulation == "generation"
    if solver is not None and solver.upper() not in ("AUTO", "SCS"):
        return False
    d = point_layout(spec).gram_size
    if spec.method in ("gd", "pgm"):
        return d > AUTO_GENERATION_GRAM_SIZE
    return d > AUTO_FULL_MAX_GRAM_SIZE  # momentum and general methods: generation pays only at long horizons


def _solve_detailed(spec: PepSpec, engine: str, solver: str | None, formulation: str
                    ) -> tuple[PepSolution, dict[str, Any]]:
    """``solve_pep`` plus how it was solved: {"formulation", and for generation "rounds", "pairs_used",
    "pairs_total"}."""
    formulation = _formulation(formulation)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "pepit" and formulation == "generation":
        raise ValueError("formulation='generation' is for engine='gram' (PEPit builds its own full program)")
    if spec.num_layers == 0:
        v = initial_worst_case(spec)
        return PepSolution(value=v, num_layers=0, engine=engine, solver="closed form", status="closed_form",
                           solve_time=0.0, solver_time=0.0, dual_value=v, duality_gap=0.0, primal_residual=0.0,
                           dual_residual=0.0, gram_size=0, num_constraints=0,
                           attempts=("N = 0: closed form",)), {"formulation": "closed form"}
    if engine == "pepit":
        return solve_pepit(spec, solver=solver), {"formulation": "full (PEPit)"}
    if not _use_generation(spec, solver, formulation):
        return solve_gram(spec, solver=solver), {"formulation": "full"}
    try:
        sol, info = solve_generation(spec, solver=solver)
        return sol, info.summary()
    except RuntimeError as err:
        if formulation == "generation" or point_layout(spec).gram_size > AUTO_FULL_MAX_GRAM_SIZE:
            raise
        failure = str(err)
    # auto: the full program (preconditioned Clarabel, then SCS) where it still fits
    sol = solve_gram(spec, solver=solver)
    return (dataclasses.replace(sol, attempts=(f"generation failed: {failure[-300:]}",) + sol.attempts),
            {"formulation": "full (generation failed)"})


def solve_pep(spec: PepSpec, engine: str = "gram", solver: str | None = None,
              formulation: str = "auto") -> PepSolution:
    """Worst case of ``spec`` at its last layer with one engine ("gram" or "pepit").

    N = 0 (no layer) is answered in closed form by ``initial_worst_case`` for both engines (its SDP is
    degenerate: often unbounded or unattained).

    ``solver``: a cvxpy solver name ("CLARABEL", "SCS"), None for Clarabel with SCS as fallback, or "auto"
    (gram engine: SCS first for large Gram matrices, see ``pep.gram.solve_gram``).
    ``formulation`` (gram engine): "full" (every interpolation pair, ``pep.gram.solve_gram``), "generation"
    (constraint generation, ``pep.constraint_generation``: the same exact value, certified on the full
    program, for long horizons) or "auto" (generation when the Gram matrix is larger than
    ``AUTO_GENERATION_GRAM_SIZE`` for gd and pgm, ``AUTO_FULL_MAX_GRAM_SIZE`` for momentum and general methods,
    and the solver is not forced to Clarabel; if generation fails, the full program while its Gram size is at
    most ``AUTO_FULL_MAX_GRAM_SIZE``).
    Raises ValueError for an unknown engine or formulation and RuntimeError (naming the solvers) when the SDP
    fails.
    """
    return _solve_detailed(spec, engine, solver, formulation)[0]


def _layers(spec: PepSpec, layers: str | Iterable[int]) -> list[int]:
    K = spec.num_layers
    if isinstance(layers, str):
        if layers == "all":
            return list(range(K + 1))
        if layers == "final":
            return [K]
        raise ValueError(f"layers must be 'all', 'final' or a sequence of layer counts, got {layers!r}")
    try:
        out = sorted({int(n) for n in layers})
    except (TypeError, ValueError):
        raise ValueError(f"layers must be 'all', 'final' or a sequence of integers, got {layers!r}") from None
    if not out or out[0] < 0 or out[-1] > K:
        raise ValueError(f"layers must be a non-empty set of layer counts in [0, {K}], got {layers!r}")
    return out


def _solved(sol: PepSolution) -> bool:
    if sol.status in ("optimal", "unbounded", "closed_form"):
        return True
    gap_ok = np.isfinite(sol.duality_gap) and sol.duality_gap <= CERTIFICATE_TOL
    res = [r for r in (sol.primal_residual, sol.dual_residual) if np.isfinite(r)]
    return bool(gap_ok and res and max(res) <= CERTIFICATE_TOL)


def pep_bound(spec: PepSpec, layers: str | Iterable[int] = "all", engine: str = "gram",
              solver: str | None = None, name: str | None = None, formulation: str = "auto") -> Bound:
    """Per-layer exact worst cases of a validated ``spec`` as a Bound (see ``pep_worst_case``)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    _formulation(formulation)
    ns = _layers(spec, layers)
    detailed = [_solve_detailed(spec.truncated(n), engine, solver, formulation) for n in ns]
    sols = [d[0] for d in detailed]
    how = [d[1] for d in detailed]
    values = np.array([s.value for s in sols], dtype=np.float64)
    all_solved = all(_solved(s) for s in sols)
    gaps = [s.duality_gap for s in sols if np.isfinite(s.duality_gap)]
    solved = Assumption("SDP solved at every layer", True if all_solved else None,
                        float(max(gaps)) if gaps else float("nan"),
                        f"status optimal/unbounded, or relative gap and residuals <= {CERTIFICATE_TOL:g}")
    mu_ok = Assumption("0 <= mu < L", bool(0 <= spec.mu < spec.L), spec.mu / spec.L, "0 <= mu/L < 1")
    notes = [spec.describe()]
    if spec.tau_differs:
        notes.append("tau_k != gamma_k: a fixed point of such a layer minimizes f + (tau/gamma) h, not F = f + h; "
                     "the metric is measured against x* = argmin F")
    if np.any(np.isinf(values)):
        notes.append("+inf: the SDP is unbounded, no finite worst-case bound exists at that layer")
    extra: dict[str, Any] = {
        "engine": engine, "method": spec.method, "function_class": "F_{mu,L}" + (" + h" if spec.composite else ""),
        "L": spec.L, "mu": spec.mu, "initial": spec.initial, "initial_value": spec.initial_value,
        "steps": spec.steps.tolist(), "momentum": spec.momentum.tolist() if spec.has_momentum else None,
        "prox_steps": spec.prox_steps.tolist() if spec.composite else None,
        "solver": [s.solver for s in sols], "solver_status": [s.status for s in sols],
        "solve_time": [s.solve_time for s in sols], "solver_time": [s.solver_time for s in sols],
        "duality_gap": [s.duality_gap for s in sols], "dual_value": [s.dual_value for s in sols],
        "primal_residual": [s.primal_residual for s in sols], "dual_residual": [s.dual_residual for s in sols],
        "gram_size": [s.gram_size for s in sols], "num_constraints": [s.num_constraints for s in sols],
        "attempts": [list(s.attempts) for s in sols],
        "formulation": [h["formulation"] for h in how],
        "generation_pairs": [h.get("pairs_used") for h in how],
        "generation_pairs_total": [h.get("pairs_total") for h in how],
        "generation_rounds": [h.get("rounds") for h in how],
    }
    return Bound.build(name or f"pep-{spec.method}", np.asarray(ns), values, metric=spec.metric,
                       theorem=PEP_THEOREM, source=PEP_SOURCE_COMPOSITE if spec.composite else PEP_SOURCE,
                       status="confirmed", assumptions=(positive_constant("L", spec.L), mu_ok, solved),
                       tight=True, notes="; ".join(notes), extra=extra)


def pep_worst_case(steps: Any, *, L: float, mu: float = 0.0, method: str = "gd", momentum: Any = None,
                   prox_steps: Any = None, metric: str = Metric.OBJECTIVE_GAP, initial: str = "distance",
                   R: float = 1.0, initial_gap: float = 1.0, layers: str | Iterable[int] = "all",
                   engine: str = "gram", solver: str | None = None, name: str | None = None,
                   formulation: str = "auto") -> Bound:
    """Exact worst case of a step schedule, layer by layer, by performance estimation.

    For N in ``layers`` ("all": 0..K, "final": K only, or a set of layer counts), the value is
        sup metric(x_N)  over f in F_{mu,L} (h closed convex for "pgm"/"fista") and x_0 with
        ||x_0 - x*||^2 <= R^2 (initial="distance") or F(x_0) - F* <= initial_gap (initial="function"),
    for the method (see ``pep.problem``): "gd" x+ = x - gamma_k grad f(x); "pgm" (ISTA) x+ = prox_{tau_k h}(x -
    gamma_k grad f(x)); "agd"/"fista" the same from y_k = x_k + beta_k (x_k - x_{k-1}). Metrics
    ``Metric.OBJECTIVE_GAP``, ``SQ_DISTANCE`` (or ``DISTANCE``, its square root), ``SQ_GRAD_NORM`` (smooth only).
    +inf where the worst case is unbounded. Exact (tight) over the class: Drori & Teboulle 2014; Taylor,
    Hendrickx & Glineur 2017 (interpolation, Math. Program. 161, Thm 4; composite, SIAM J. Optim. 27).
    ``engine``: "gram" (ours) or "pepit" (reference); ``solver``: None (Clarabel, SCS as fallback), "CLARABEL",
    "SCS" or "auto" (SCS first when the Gram matrix is large: much faster for long schedules). ``formulation``:
    "auto" (default: constraint generation for Gram sizes above ``AUTO_GENERATION_GRAM_SIZE``, the full
    program below), "full" or "generation" (see ``solve_pep`` and ``pep.constraint_generation``; both exact,
    certified on the full program). Returns a Bound with status "confirmed" and, in ``extra``, the per-layer
    solver, status, solve time, duality gap, residuals, formulation, and for generation the pairs used (of all)
    and the rounds.
    When no solver certifies the SDP on F_{mu,L} (near-degenerate classes, mu close to L), the class is
    relaxed to mu' = 0.9 mu, 0.5 mu, then 0 (a larger class: still an upper bound, marked ``tight=False``
    with ``extra["relaxed_mu"]``). Raises ValueError for invalid input (non-positive L, mu > L, empty or NaN
    schedule, ...), RuntimeError when the SDP solvers fail even then.
    """
    spec = make_spec(steps, L=L, mu=mu, method=method, momentum=momentum, prox_steps=prox_steps, metric=metric,
                     initial=initial, R=R, initial_gap=initial_gap)
    try:
        return pep_bound(spec, layers=layers, engine=engine, solver=solver, name=name, formulation=formulation)
    except RuntimeError as err:
        if not spec.mu > 0:
            raise
        failure = err
    # Near-degenerate classes (mu close to L) defeat the SDP solvers' certificates; F_{mu',L} with mu' < mu
    # contains F_{mu,L}, so its worst case is a valid upper bound (no longer exact): relax until one solves.
    for factor in (0.9, 0.5, 0.0):
        relaxed = make_spec(steps, L=L, mu=factor * spec.mu, method=method, momentum=momentum,
                            prox_steps=prox_steps, metric=metric, initial=initial, R=R, initial_gap=initial_gap)
        try:
            b = pep_bound(relaxed, layers=layers, engine=engine, solver=solver, name=name, formulation=formulation)
        except RuntimeError:
            continue
        note = (f"relaxed to mu' = {factor * spec.mu:.6g} < mu = {spec.mu:.6g} (the SDP on F_{{mu,L}} had no "
                f"certified solution): an upper bound over a larger class, not the exact worst case")
        return dataclasses.replace(b, tight=False, notes=f"{b.notes}; {note}",
                                   extra={**b.extra, "mu": spec.mu, "relaxed_mu": factor * spec.mu})
    raise failure
