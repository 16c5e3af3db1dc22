"""Reference PEP engine: the same ``PepSpec`` written with PEPit (Goujaud, Moucer, Glineur, Hendrickx,
Taylor & Dieuleveut, PEPit: computer-assisted worst-case analyses of first-order optimization methods in
Python, Math. Program. Comput. 2024).

PEPit builds the Gram-matrix SDP from the algorithm written as ordinary code (points, gradients,
``proximal_step``) and returns the dual objective, i.e. the certified worst case. It is independent of
``pep.gram`` (its own interpolation code, its own model construction), which is what makes it a reference.
Solved by cvxpy with Clarabel unless told otherwise (PEPit's own default without MOSEK is SCS).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import replace

import numpy as np

from unfoldkit.theory.bound import Metric
from unfoldkit.theory.pep.problem import PepSolution, PepSpec

_ACCEPTED = ("optimal", "optimal_inaccurate", "unbounded", "unbounded_inaccurate")


#: solvers tried in order when none is named (Clarabel fails outright on some unbounded PEPs; SCS then
#: certifies the unboundedness)
DEFAULT_SOLVERS = ("CLARABEL", "SCS")


def solve_pepit(spec: PepSpec, solver: str | None = None) -> PepSolution:
    """Exact worst case of ``spec`` at its last layer, computed by PEPit (cvxpy wrapper).

    ``solver``: a cvxpy solver name, or None (or "auto") for Clarabel then SCS (``DEFAULT_SOLVERS``) when
    Clarabel fails. Raises RuntimeError naming every solver tried when none succeeds.
    """
    names = (solver.upper(),) if solver and solver.upper() != "AUTO" else DEFAULT_SOLVERS
    errors: list[str] = []
    failed: list[str] = []
    for name in names:
        try:
            sol = _solve_pepit_once(spec, name)
        except RuntimeError as err:
            errors.append(str(err))
            failed.append(f"{name}: failed")
            continue
        return replace(sol, attempts=tuple(failed) + sol.attempts)
    raise RuntimeError("; ".join(errors))


def _run_linear(method, x0, f, h, proximal_step):  # noqa: ANN001, ANN202 - PEPit objects
    """The output after N layers of a step-matrix method (``pep.methods``) written with PEPit points."""
    N = method.num_layers
    if method.composite:
        ps = [x0]
        for k in range(N):
            y = None
            for j in range(k + 1):
                c = float(method.C[k, j])
                if c != 0.0:
                    y = c * ps[j] if y is None else y + c * ps[j]
            z = y - float(method.gammas[k]) * f.gradient(y)
            ps.append(proximal_step(z, h, float(method.taus[k]))[0])
        return ps[N]
    grads = []
    for k in range(N):
        y = x0
        for i in range(k):
            if method.H[k, i] != 0.0:
                y = y - float(method.H[k, i]) * grads[i]
        grads.append(f.gradient(y))
    x = x0
    for i in range(N):
        if method.O[N, i] != 0.0:
            x = x - float(method.O[N, i]) * grads[i]
    return x


def _solve_pepit_once(spec: PepSpec, solver: str) -> PepSolution:
    """One PEPit solve with the cvxpy solver ``solver``.

    Same methods, classes, metrics and initial conditions as ``pep.gram.solve_gram`` (see
    ``pep.problem``), written with PEPit's SmoothConvexFunction / SmoothStronglyConvexFunction (F_{mu,L}),
    ConvexFunction (h) and ``proximal_step``; the constants are used as given (no normalization).
    ``value`` is PEPit's dual (certified) value; ``duality_gap`` compares it with the primal value.
    Raises RuntimeError naming the solver when the SDP fails (solver error, infeasible, no value).
    """
    from PEPit import PEP
    from PEPit.functions import ConvexFunction, SmoothConvexFunction, SmoothStronglyConvexFunction
    from PEPit.primitive_steps import proximal_step

    t0 = time.perf_counter()
    problem = PEP()
    if spec.mu > 0:
        f = problem.declare_function(SmoothStronglyConvexFunction, mu=spec.mu, L=spec.L)
    else:
        f = problem.declare_function(SmoothConvexFunction, L=spec.L)
    h = problem.declare_function(ConvexFunction) if spec.composite else None
    F = f + h if h is not None else f
    xs = F.stationary_point()
    Fs = F(xs)
    x0 = problem.set_initial_point()
    if spec.initial == "distance":
        problem.set_initial_condition((x0 - xs) ** 2 <= spec.initial_value)
    elif spec.initial == "function":
        problem.set_initial_condition(F(x0) - Fs <= spec.initial_value)
    else:  # lyapunov
        problem.set_initial_condition(F(x0) - Fs + spec.mu / 2 * (x0 - xs) ** 2 <= spec.initial_value)
    if spec.linear is not None:
        x = _run_linear(spec.linear, x0, f, h, proximal_step)
    else:
        x_prev = x = x0
        for k in range(spec.num_layers):
            beta = float(spec.momentum[k])
            y = x + beta * (x - x_prev) if (spec.has_momentum and k > 0 and beta != 0.0) else x
            z = y - float(spec.steps[k]) * f.gradient(y)
            x_new = proximal_step(z, h, float(spec.prox_steps[k]))[0] if h is not None else z
            x_prev, x = x, x_new
    if spec.metric == Metric.OBJECTIVE_GAP:
        problem.set_performance_metric(F(x) - Fs)
    elif spec.metric == Metric.SQ_GRAD_NORM:
        problem.set_performance_metric(f.gradient(x) ** 2)
    else:
        problem.set_performance_metric((x - xs) ** 2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dual = problem.solve(wrapper="cvxpy", solver=solver, verbose=0)
    except Exception as err:  # cvxpy SolverError, or PEPit's own checks on a failed solve
        raise RuntimeError(f"PEPit ({solver} via cvxpy) failed for {spec.describe()}: "
                           f"{type(err).__name__}: {err}") from err
    prob = problem.wrapper.prob
    status = str(prob.status)
    name = str(problem.wrapper.solver_name or solver)
    stats = prob.solver_stats
    solver_time = float(stats.solve_time) if stats is not None and stats.solve_time is not None else float("nan")
    n_cons = len(getattr(problem, "_list_of_prepared_constraints", ()))
    if status not in _ACCEPTED:
        raise RuntimeError(f"PEPit ({name} via cvxpy) failed for {spec.describe()}: status {status}")
    if dual is None or status.startswith("unbounded"):
        return PepSolution(value=float("inf"), num_layers=spec.num_layers, engine="pepit", solver=name,
                           status=status, solve_time=time.perf_counter() - t0, solver_time=solver_time,
                           dual_value=float("inf"), duality_gap=float("nan"), primal_residual=float("nan"),
                           dual_residual=float("nan"), gram_size=0, num_constraints=n_cons,
                           attempts=(f"{name}: {status}",))
    primal = float(prob.value)
    G = np.asarray(problem.G_value, dtype=float)
    p_res = max(0.0, -float(np.linalg.eigvalsh(G).min())) / max(1.0, float(np.max(np.abs(np.diag(G)))))
    gap = abs(float(dual) - primal) / max(abs(primal), 1e-300)
    value, dual_value = max(float(dual), 0.0), max(float(dual), 0.0)
    primal_v = max(primal, 0.0)
    if spec.metric == Metric.DISTANCE:
        value, dual_value, primal_v = float(np.sqrt(value)), float(np.sqrt(dual_value)), float(np.sqrt(primal_v))
    return PepSolution(value=value, num_layers=spec.num_layers, engine="pepit", solver=name, status=status,
                       solve_time=time.perf_counter() - t0, solver_time=solver_time, dual_value=dual_value,
                       duality_gap=gap, primal_residual=p_res, dual_residual=float("nan"),
                       gram_size=int(G.shape[0]), num_constraints=n_cons, attempts=(f"{name}: {status}",))
