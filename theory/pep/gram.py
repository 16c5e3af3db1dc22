"""Our own PEP engine: the Gram-matrix SDP of a ``PepSpec``, written with cvxpy, solved by Clarabel (SCS fallback).

Formulation (Drori & Teboulle 2014; Taylor, Hendrickx & Glineur 2017, Math. Program. 161, Thm 4 for the
F_{mu,L} interpolation conditions; THG 2017, SIAM J. Optim. 27, for the composite case), on the normalized
spec (L = 1, unit initial quantity; see ``PepSpec.scale``):

1. x* = 0, f(x*) = h(x*) = 0; g* = grad f(x*) is a basis vector when h is present (then s* = -g* in dh(x*)),
   else g* = 0.
2. Basis: e_0 = x_0 - x*, [g*], one gradient g(y) per point where f is queried, one subgradient s_{k+1} per
   prox output. Every iterate is a fixed linear combination of the basis (``y_k = x_k + beta_k (x_k -
   x_{k-1})``, ``x_{k+1} = y_k - gamma_k g(y_k) - tau_k s_{k+1}``), so every inner product is linear in the
   Gram matrix G = P^T P (G PSD, d x d) and every function value is a scalar variable.
3. Interpolation: for every ordered pair (i, j), i != j, of points where f is known (x* included),
   f_i >= f_j + <g_j, x_i - x_j> + ||g_i - g_j||^2 / (2L(1-q)) + mu ||x_i - x_j||^2 / (2(1-q))
          - (mu / (L(1-q))) <x_i - x_j, g_i - g_j>,   q = mu / L,
   and for every ordered pair of points where h is known, h_i >= h_j + <s_j, x_i - x_j>.
4. Initial condition <= 1 (||x_0 - x*||^2 or F(x_0) - F*), maximize the metric at x_N.

Lean but exact: only the points the method and the metric need are created (no f-point at x_N for the
distance metric of GD, no h-point at x_0 unless the initial condition needs F(x_0)), identical points are
shared (y_0 = x_0), and all interpolation pairs among those points are kept (needed in general for
exactness). The pair constraints are assembled as one dense matrix over the d(d+1)/2 entries of the upper
triangle of G, so cvxpy compiles one vector inequality instead of O(N^2) scalar expressions (PEPit's cost
beyond the solver).

Preconditioning (Clarabel only; an exactly equivalent SDP): worst cases that decay or grow geometrically
(strongly convex classes, long or divergent schedules) give Gram entries and function values spanning many
orders of magnitude, and an interior-point solver's uniform tolerances then lose the small ones. The method
is run on 1-D quadratics (``_QuadraticProbe``) to estimate the magnitude of every gradient, subgradient and
function value; the basis and the value variables are rescaled by these, every interpolation row is scaled
to unit max-norm and the objective is divided by the quadratic lower bound. SCS equilibrates on its own and
converges faster on the plain program.

Solver policy (``solve_gram``): Clarabel, then SCS; an 'optimal' or 'optimal_inaccurate' result is accepted
only if its certificate recomputed from the data (duality gap, primal and dual residuals) is below
``CERTIFICATE_TOL``;
RuntimeError (naming every solver and status) otherwise. The interior-point cost grows like d^6 (the PSD
block of the KKT system is dense in the d(d+1)/2 entries of G), so for long schedules (K >~ 30) SCS is often
much faster: pass ``solver="SCS"`` (see docs/pep.md for measured times).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from unfoldkit.theory.bound import Metric
from unfoldkit.theory.pep.problem import PepSolution, PepSpec

#: solvers tried in order when none is named; the first that reaches an accepted status is used
DEFAULT_SOLVERS = ("CLARABEL", "SCS")
#: solver options (Clarabel's default tolerances are 1e-8; SCS is pushed to 1e-9 to reach them)
SOLVER_OPTIONS = {
    "CLARABEL": {"max_iter": 500},
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000},
}
_SOLVED = (cp.OPTIMAL, cp.UNBOUNDED)
_INACCURATE = (cp.OPTIMAL_INACCURATE, cp.UNBOUNDED_INACCURATE)
#: solvers that get the preconditioned program (interior point: uniform accuracy across rows matters);
#: SCS does its own equilibration and converges faster on the plain program
PRECONDITIONED_SOLVERS = ("CLARABEL",)
#: solver="auto": above this Gram size SCS goes first (with a time limit), Clarabel second (measured in
#: benchmarks/pep_scaling.py: the interior-point cost grows like d^6, SCS's much slower on most schedules)
AUTO_SCS_GRAM_SIZE = 24
AUTO_SCS_TIME_LIMIT = 30.0
#: an 'optimal_inaccurate' solve is accepted when its recomputed certificate is below this (scaled units)
CERTIFICATE_TOL = 1e-6
_CHUNK = 512  # interpolation pairs assembled per block (bounds the temporaries to _CHUNK x d(d+1)/2)


@dataclass(frozen=True)
class GramProgram:
    """maximize <C, G> + c^T F  s.t.  <A_p, G> + b_p^T F <= 0 (every interpolation pair p),
    <A_0, G> + b_0^T F <= 1 (initial condition), G PSD.

    Symmetric coefficient matrices are stored by their entries at ``(rows, cols)``: the diagonal first, then
    the strict upper triangle in row-major order (cvxpy's ``upper_tri`` order). <M, G> = sum w_t M_t G_t with
    w_t = 1 on the diagonal and 2 off it (``weights``). Preconditioning: the basis vector b is e_b / scales[b]
    (so the Gram matrix of the original basis is diag(scales) G diag(scales)), function values are in units of
    their own magnitude estimates, every pair row has unit max-norm and the objective is divided by
    ``obj_scale`` (so the worst case is obj_scale times the optimal value); without it all scales are 1.
    """

    gram_size: int
    num_values: int
    rows: np.ndarray
    cols: np.ndarray
    weights: np.ndarray
    pair_q: np.ndarray
    pair_b: np.ndarray
    init_q: np.ndarray
    init_b: np.ndarray
    obj_q: np.ndarray
    obj_b: np.ndarray
    num_f_points: int
    num_h_points: int
    scales: np.ndarray
    obj_scale: float

    @property
    def num_constraints(self) -> int:
        """Scalar linear inequalities (interpolation pairs + the initial condition); the PSD cone aside."""
        return int(self.pair_q.shape[0]) + 1

    def matrix(self, entries: np.ndarray) -> np.ndarray:
        """The symmetric d x d matrix whose entries at (rows, cols) are ``entries``."""
        m = np.zeros((self.gram_size, self.gram_size))
        m[self.rows, self.cols] = entries
        m[self.cols, self.rows] = entries
        return m


class _Points:
    """Coefficient vectors of points, (sub)gradients and function values in the basis being built.

    Each basis vector carries a magnitude estimate (``scales``) used to precondition the SDP (see
    ``_QuadraticProbe``); the coefficients stored here are in the unscaled basis.
    """

    def __init__(self, dmax: int, composite: bool) -> None:
        self.dmax = dmax
        self.scales = np.ones(dmax)
        self.value_scales: list[float] = []
        self.nbasis = 1  # e_0 = x_0 - x*
        self.nvalues = 0
        zero = np.zeros(dmax)
        gstar = self.new_basis(1.0) if composite else zero
        # (x, g, value index or -1 for the optimum where the value is 0)
        self.f: list[tuple[np.ndarray, np.ndarray, int]] = [(zero, gstar, -1)]
        self.h: list[tuple[np.ndarray, np.ndarray, int]] = [(zero, -gstar, -1)] if composite else []

    def new_basis(self, scale: float) -> np.ndarray:
        v = np.zeros(self.dmax)
        v[self.nbasis] = 1.0
        self.scales[self.nbasis] = scale
        self.nbasis += 1
        return v

    def new_value(self, scale: float) -> int:
        self.value_scales.append(scale)
        self.nvalues += 1
        return self.nvalues - 1

    def f_at(self, x: np.ndarray, scale: tuple[float, float]) -> tuple[np.ndarray, int]:
        """Gradient and value index of f at x (a point already queried is reused)."""
        for xp, gp, vp in self.f:
            if np.array_equal(xp, x):
                return gp, vp
        g, v = self.new_basis(scale[0]), self.new_value(scale[1])
        self.f.append((x, g, v))
        return g, v

    def h_at(self, x: np.ndarray, scale: tuple[float, float]) -> tuple[np.ndarray, int]:
        """Subgradient and value index of h at x (a point already known is reused)."""
        for xp, sp, vp in self.h:
            if np.array_equal(xp, x):
                return sp, vp
        s, v = self.new_basis(scale[0]), self.new_value(scale[1])
        self.h.append((x, s, v))
        return s, v

    def prox(self, z: np.ndarray, tau: float, scale: tuple[float, float]) -> np.ndarray:
        """x+ = prox_{tau h}(z), encoded as x+ = z - tau s+ with s+ in dh(x+) a new basis vector."""
        s, v = self.new_basis(scale[0]), self.new_value(scale[1])
        x = z - tau * s
        self.h.append((x, s, v))
        return x


class _QuadraticProbe:
    """The method run (with h = 0) on the 1-D quadratics f(x) = lam x^2 / 2, lam on a grid of [mu, L = 1].

    Only a preconditioner: the magnitude max_lam |grad f(y_k)| sets the scale of the basis vector g(y_k), so
    that every entry of the scaled Gram matrix is of order one even when the worst case decays (strongly
    convex, many layers) or grows (steps above 2/L). The SDP stays exactly equivalent (a diagonal change of
    basis). The probe also gives a lower bound on the worst case (quadratics belong to F_{mu,L}), used to
    scale the objective. It runs the method's step-matrix form (``pep.methods``), so it serves every method.
    """

    def __init__(self, mu: float, initial: str) -> None:
        grid = np.geomspace(max(mu, 1e-3), 1.0, 48)
        self.lam = np.unique(np.concatenate([[mu, 1.0], grid])) if mu > 0 else np.concatenate([[0.0], grid])
        amp = np.ones_like(self.lam)
        if initial in ("function", "lyapunov"):  # lam x0^2 / 2 = 1
            amp = np.sqrt(2.0 / np.maximum(self.lam, 1e-3))
        self.x0 = amp
        self.grads: list[np.ndarray] = []     # grad f(y_k) per lam
        self.points: list[np.ndarray] = [amp]  # p_0 = x_0, then the prox outputs (composite form)
        self.x = amp

    @staticmethod
    def magnitude(v: np.ndarray) -> float:
        m = float(np.max(np.abs(v)))
        return m if np.isfinite(m) and m > 1e-150 else 1e-150 if np.isfinite(m) else 1e150

    def query(self, y: np.ndarray) -> tuple[float, float]:
        """Record the gradient at y (per lam); return the magnitudes of the gradient and of f there."""
        g = self.lam * y
        self.grads.append(g)
        return self.magnitude(g), self.magnitude(0.5 * self.lam * y**2)

    def smooth_point(self, row: np.ndarray) -> np.ndarray:
        """x_0 - sum_i row[i] g_i over the gradients recorded so far."""
        y = self.x0.copy()
        for i, c in enumerate(row[:len(self.grads)]):
            if c != 0:
                y = y - c * self.grads[i]
        return y

    def at(self, x: np.ndarray) -> tuple[float, float]:
        """Magnitudes of the gradient and of f at x; x becomes the output point."""
        self.x = x
        return self.magnitude(self.lam * x), self.magnitude(0.5 * self.lam * x**2)

    def metric(self, metric: str) -> float:
        if metric == Metric.OBJECTIVE_GAP:
            return self.magnitude(0.5 * self.lam * self.x**2)
        if metric == Metric.SQ_GRAD_NORM:
            return self.magnitude((self.lam * self.x) ** 2)
        return self.magnitude(self.x**2)


def _sym_entries(u: np.ndarray, v: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Entries of sym(u v^T) = (u v^T + v u^T)/2 at (rows, cols), row-wise for stacked u, v of shape (P, d)."""
    return 0.5 * (u[:, rows] * v[:, cols] + u[:, cols] * v[:, rows])


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    mask = i != j
    return i[mask], j[mask]


@dataclass
class MethodTrace:
    """The points of a normalized spec in the Gram basis (the one copy of the coefficient bookkeeping: the SDP
    builder and ``pep.constraint_generation`` both read it): ``pts`` holds every f- and h-point with its
    (sub)gradient and value index and the probe's magnitudes; the metric is ``obj_vec`` (a vector whose
    squared norm is taken) and/or the values ``obj_lin``; the initial condition ``init_weight`` times the
    squared norm of ``init_vec`` plus the values ``init_lin``."""

    spec: PepSpec
    pts: "_Points"
    probe: "_QuadraticProbe"
    obj_lin: list[int]
    obj_vec: np.ndarray | None
    init_lin: list[int]
    init_vec: np.ndarray | None
    init_weight: float


def trace_method(spec: PepSpec) -> MethodTrace:
    """Run the method of ``spec.normalized()`` on coefficient vectors (see the module docstring, item 2)."""
    s = spec.normalized()
    N = s.num_layers
    method = s.as_linear()  # every method, templates included, in step-matrix form (pep.methods)
    probe = _QuadraticProbe(s.mu, s.initial)
    pts = _Points(dmax=4 + 2 * N + 2, composite=s.composite)
    x0 = np.zeros(pts.dmax)
    x0[0] = 1.0
    pts.scales[0] = _QuadraticProbe.magnitude(probe.x0)
    if method.composite:  # y_k = sum_j C[k, j] p_j, p_{k+1} = y_k - gamma_k g(y_k) - tau_k s_{k+1}
        prox_points, probe_points = [x0], [probe.x0]
        for k in range(N):
            row = method.C[k]
            y = sum(row[j] * prox_points[j] for j in range(k + 1) if row[j] != 0)
            y_probe = sum(row[j] * probe_points[j] for j in range(k + 1) if row[j] != 0)
            mag = probe.query(y_probe)
            g, _ = pts.f_at(y, mag)
            prox_points.append(pts.prox(y - method.gammas[k] * g, method.taus[k], mag))
            probe_points.append(y_probe - method.gammas[k] * probe.grads[-1])
        xN, mag_N = prox_points[N], probe.at(probe_points[N])
    else:  # y_k = x_0 - sum_{i<k} H[k, i] g_i, x_N = x_0 - sum_i O[N, i] g_i
        grads: list[np.ndarray] = []
        for k in range(N):
            y = x0.copy()
            for i in range(k):
                if method.H[k, i] != 0:
                    y = y - method.H[k, i] * grads[i]
            g, _ = pts.f_at(y, probe.query(probe.smooth_point(method.H[k])))
            grads.append(g)
        xN = x0.copy()
        for i in range(N):
            if method.O[N, i] != 0:
                xN = xN - method.O[N, i] * grads[i]
        mag_N = probe.at(probe.smooth_point(method.O[N]) if N else probe.x0)

    # performance metric at x_N: quadratic part (vectors whose product is taken) and linear part (values)
    obj_lin: list[int] = []
    obj_vec = None
    if s.metric == Metric.OBJECTIVE_GAP:
        obj_lin.append(pts.f_at(xN, mag_N)[1])
        if s.composite:
            obj_lin.append(pts.h_at(xN, mag_N)[1])
    elif s.metric == Metric.SQ_GRAD_NORM:
        obj_vec = pts.f_at(xN, mag_N)[0]
    else:  # squared distance (the distance is its square root)
        obj_vec = xN
    # initial condition
    init_lin: list[int] = []
    init_vec = None
    init_weight = 1.0
    if s.initial == "distance":
        init_vec = x0
    else:  # F(x_0) - F* [+ mu/2 ||x_0 - x*||^2 for "lyapunov"]
        init_lin.append(pts.f_at(x0, (1.0, 1.0))[1])
        if s.composite:
            init_lin.append(pts.h_at(x0, (1.0, 1.0))[1])
        if s.initial == "lyapunov" and s.mu > 0:
            init_vec, init_weight = x0, 0.5 * s.mu

    return MethodTrace(s, pts, probe, obj_lin, obj_vec, init_lin, init_vec, init_weight)


def build_gram_program(spec: PepSpec, precondition: bool = True) -> GramProgram:
    """The Gram-matrix SDP (see the module docstring) of ``spec.normalized()``.

    With ``precondition`` the basis vectors are rescaled by the magnitudes of ``_QuadraticProbe`` and the
    objective by its quadratic lower bound (an exactly equivalent SDP, better conditioned); ``GramProgram``
    records both so values and Gram matrices are reported in the original units.
    """
    tr = trace_method(spec)
    s, pts, probe = tr.spec, tr.pts, tr.probe
    obj_lin, obj_vec, init_lin, init_vec, init_weight = tr.obj_lin, tr.obj_vec, tr.init_lin, tr.init_vec, tr.init_weight
    d, nv = pts.nbasis, pts.nvalues
    scales = pts.scales[:d] if precondition else np.ones(d)
    vscales = np.asarray(pts.value_scales) if precondition else np.ones(nv)
    obj_scale = probe.metric(s.metric) if precondition else 1.0
    diag = np.arange(d)
    up_r, up_c = np.triu_indices(d, 1)
    rows, cols = np.concatenate([diag, up_r]), np.concatenate([diag, up_c])
    weights = np.concatenate([np.ones(d), 2.0 * np.ones(up_r.size)])
    T = rows.size

    def coords(vec: np.ndarray) -> np.ndarray:
        """Coefficients in the scaled basis e_b / scale_b."""
        return vec[..., :d] * scales

    def values_row(idx: list[int]) -> np.ndarray:
        b = np.zeros(nv)
        for i in idx:
            b[i] += vscales[i]
        return b

    def quad_row(vec: np.ndarray | None) -> np.ndarray:
        if vec is None:
            return np.zeros(T)
        v = coords(vec)[None, :]
        return _sym_entries(v, v, rows, cols)[0]

    blocks_q, blocks_b = [], []
    q = s.mu  # mu / L with L = 1
    c1, c2, c3 = 0.5 / (1.0 - q), 0.5 * s.mu / (1.0 - q), s.mu / (1.0 - q)
    for plist, smooth in ((pts.f, True), (pts.h, False)):
        n = len(plist)
        if n < 2:
            continue
        X = coords(np.array([p[0] for p in plist]))
        Gv = coords(np.array([p[1] for p in plist]))
        V = np.zeros((n, nv))
        for r, p in enumerate(plist):
            if p[2] >= 0:
                V[r, p[2]] = vscales[p[2]]
        I, J = _pairs(n)
        qm = np.empty((I.size, T))
        for lo in range(0, I.size, _CHUNK):
            i, j = I[lo:lo + _CHUNK], J[lo:lo + _CHUNK]
            dx, gj = X[i] - X[j], Gv[j]
            block = _sym_entries(gj, dx, rows, cols)
            if smooth:
                dg = Gv[i] - Gv[j]
                block += c1 * _sym_entries(dg, dg, rows, cols)
                if s.mu > 0:
                    block += c2 * _sym_entries(dx, dx, rows, cols) - c3 * _sym_entries(dx, dg, rows, cols)
            qm[lo:lo + _CHUNK] = block
        blocks_q.append(qm)
        blocks_b.append(V[J] - V[I])
    pair_q = np.vstack(blocks_q) if blocks_q else np.zeros((0, T))
    pair_b = np.vstack(blocks_b) if blocks_b else np.zeros((0, nv))
    if precondition and pair_q.shape[0]:  # every interpolation row to unit max-norm (same feasible set)
        norm = np.maximum(np.abs(pair_q).max(axis=1) * 2.0, np.abs(pair_b).max(axis=1) if nv else 0.0)
        norm[norm == 0] = 1.0
        pair_q /= norm[:, None]
        pair_b /= norm[:, None]
    return GramProgram(d, nv, rows, cols, weights, pair_q, pair_b, init_weight * quad_row(init_vec),
                       values_row(init_lin),
                       quad_row(obj_vec) / obj_scale, values_row(obj_lin) / obj_scale, len(pts.f), len(pts.h),
                       scales, obj_scale)


def _cvxpy_problem(prog: GramProgram) -> tuple[cp.Problem, cp.Variable, cp.Variable | None, cp.Constraint | None,
                                               cp.Constraint]:
    d, nv, w = prog.gram_size, prog.num_values, prog.weights
    G = cp.Variable((d, d), PSD=True)
    svec = cp.hstack([cp.diag(G), cp.vec(cp.upper_tri(G), order="F")]) if d > 1 else cp.diag(G)
    F = cp.Variable(nv) if nv > 0 else None

    wsvec = cp.multiply(w, svec)  # <M, G> = sum_t w_t M_t G_t

    def lin(q: np.ndarray, b: np.ndarray) -> cp.Expression:
        expr = q @ wsvec
        return expr + (b @ F) if F is not None else expr

    pair = None
    cons = []
    if prog.pair_q.shape[0] > 0:
        expr = prog.pair_q @ wsvec
        if F is not None:
            expr = expr + prog.pair_b @ F
        pair = expr <= 0
        cons.append(pair)
    init = lin(prog.init_q, prog.init_b) <= 1.0
    cons.append(init)
    return cp.Problem(cp.Maximize(lin(prog.obj_q, prog.obj_b)), cons), G, F, pair, init


def _certificate(prog: GramProgram, Gv: np.ndarray, Fv: np.ndarray | None, lam: np.ndarray,
                 lam0: float) -> tuple[float, float]:
    """(primal residual, dual residual) of a solution, recomputed from the data (solver independent), relative
    to max(1, max_i G_ii) and max(1, largest multiplier)."""
    svec = Gv[prog.rows, prog.cols] * prog.weights
    Fv = np.zeros(prog.num_values) if Fv is None else Fv
    viol = [float(np.linalg.eigvalsh(Gv).min()) * -1.0]
    if prog.pair_q.shape[0]:
        viol.append(float(np.max(prog.pair_q @ svec + prog.pair_b @ Fv)))
    viol.append(float(prog.init_q @ svec + prog.init_b @ Fv - 1.0))
    S = prog.matrix(prog.pair_q.T @ lam + lam0 * prog.init_q - prog.obj_q)
    stat = prog.pair_b.T @ lam + lam0 * prog.init_b - prog.obj_b
    dual = [-float(np.linalg.eigvalsh(S).min()), float(np.max(np.abs(stat))) if stat.size else 0.0,
            -float(min(lam.min() if lam.size else 0.0, lam0))]
    g_size = max(1.0, float(np.max(np.abs(np.diag(Gv)))))
    l_size = max(1.0, abs(lam0), float(np.max(np.abs(lam))) if lam.size else 0.0)
    return max(0.0, *viol) / g_size, max(0.0, *dual) / l_size


def _solve_with(prog: GramProgram, name: str, extra_options: dict | None = None) -> dict:
    """Solve ``prog`` with one cvxpy solver; a dict with the status and, when solved, the certificate."""
    problem, G, F, pair, init = _cvxpy_problem(prog)
    opts = {**SOLVER_OPTIONS.get(name, {}), **(extra_options or {})}
    try:
        with warnings.catch_warnings():  # "solution may be inaccurate": the status says it, and is reported
            warnings.simplefilter("ignore")
            problem.solve(solver=name, **opts)
    except (cp.error.SolverError, ValueError, ArithmeticError) as err:
        return {"name": name, "status": "solver_error", "note": f"{type(err).__name__}: {err}"}
    stats = problem.solver_stats
    out = {"name": name, "status": problem.status,
           "solver_time": float(stats.solve_time) if stats is not None and stats.solve_time is not None
           else float("nan")}
    if problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) and G.value is not None:
        lam = np.asarray(pair.dual_value, dtype=float).ravel() if pair is not None else np.zeros(0)
        lam0 = float(np.asarray(init.dual_value, dtype=float).ravel()[0])
        Gv = np.asarray(G.value, dtype=float)
        Fv = None if F is None else np.asarray(F.value, dtype=float)
        primal = float(problem.value)
        p_res, d_res = _certificate(prog, Gv, Fv, lam, lam0)
        out.update(primal=primal, dual=lam0, gap=abs(primal - lam0) / max(abs(primal), 1e-300),
                   primal_residual=p_res, dual_residual=d_res, G=Gv, lam=lam)
    return out


def _certified(res: dict) -> bool:
    """Residuals below CERTIFICATE_TOL and a duality gap below it, relative to the value or, for worst cases
    far below their initial value (near-degenerate classes, mu close to L), absolute in the program's
    normalized units (then the larger of primal and dual is reported: still an upper bound)."""
    if "gap" not in res or res["primal_residual"] > CERTIFICATE_TOL or res["dual_residual"] > CERTIFICATE_TOL:
        return False
    return res["gap"] <= CERTIFICATE_TOL or res["gap"] * max(abs(res["primal"]), 1e-300) <= CERTIFICATE_TOL


def solve_gram(spec: PepSpec, solver: str | None = None, keep_solution: bool = False,
               precondition: bool = True) -> PepSolution:
    """Exact worst case of ``spec`` at its last layer by our Gram-matrix SDP (module docstring).

    Solvers: ``solver`` if given ("CLARABEL" or "SCS"), else Clarabel then SCS (``DEFAULT_SOLVERS``);
    "auto" puts SCS first (time limit ``AUTO_SCS_TIME_LIMIT`` s) when the Gram size exceeds
    ``AUTO_SCS_GRAM_SIZE``, for long schedules. A
    result is accepted when the solver reports unbounded, or reports 'optimal' or 'optimal_inaccurate' and the
    certificate recomputed from the data (relative duality gap, primal and dual residuals, see
    ``PepSolution``) is below ``CERTIFICATE_TOL``; otherwise the next solver is tried. An unbounded SDP means
    no finite worst case: ``value`` is +inf; 'unbounded_inaccurate' is accepted only when no solver found an
    optimum (+inf is a valid upper bound in any case). Raises RuntimeError naming every solver tried and its status
    when none is accepted. ``keep_solution`` stores the worst-case Gram matrix (normalized units, original
    basis) and the multipliers of the interpolation pairs (the proof) in the result.
    """
    t0 = time.perf_counter()
    programs: dict[bool, GramProgram] = {}
    options: dict[str, dict] = {}
    if solver is not None and solver.upper() == "AUTO":
        programs[False] = build_gram_program(spec, precondition=False)
        if programs[False].gram_size > AUTO_SCS_GRAM_SIZE:
            names: tuple[str, ...] = ("SCS", "CLARABEL")
            options["SCS"] = {"time_limit_secs": AUTO_SCS_TIME_LIMIT}
        else:
            names = DEFAULT_SOLVERS
    else:
        names = (solver.upper(),) if solver else DEFAULT_SOLVERS
    attempts: list[str] = []
    chosen = None
    unbounded = None
    prog = None
    for name in names:
        if name not in cp.installed_solvers():
            attempts.append(f"{name}: not installed")
            continue
        pre = bool(precondition and name in PRECONDITIONED_SOLVERS)
        if pre not in programs:
            programs[pre] = build_gram_program(spec, precondition=pre)
        prog = programs[pre]
        res = _solve_with(prog, name, options.get(name))
        note = res.get("note", "")
        if "gap" in res:
            note = f"gap {res['gap']:.1e}, residuals {res['primal_residual']:.1e}/{res['dual_residual']:.1e}"
        attempts.append(f"{name}: {res['status']}" + (f" ({note})" if note else ""))
        # an 'optimal' status is trusted only with its certificate recomputed from the data: interior-point
        # solvers report 'optimal' on near-degenerate classes (mu close to L) with primal residuals of 1e-2
        optimal = res["status"] in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
        if (optimal and _certified(res)) or (res["status"] in _SOLVED and not optimal):
            chosen = res
            break
        if res["status"] == cp.UNBOUNDED_INACCURATE and unbounded is None:
            unbounded = res
    if chosen is None and unbounded is not None:
        # +inf is always a valid (trivial) upper bound, so an approximate certificate of unboundedness is
        # accepted when no solver found an optimum; its status is reported as is.
        chosen = unbounded
    if chosen is None or prog is None:
        raise RuntimeError(f"PEP SDP failed for {spec.describe()}: no solver reached an accepted status; "
                           + "; ".join(attempts))
    prog = programs[bool(precondition and chosen["name"] in PRECONDITIONED_SOLVERS)]
    common = dict(num_layers=spec.num_layers, engine="gram", solver=chosen["name"], status=chosen["status"],
                  solver_time=chosen["solver_time"], gram_size=prog.gram_size,
                  num_constraints=prog.num_constraints, attempts=tuple(attempts))
    if chosen["status"] in (cp.UNBOUNDED, cp.UNBOUNDED_INACCURATE):
        return PepSolution(value=float("inf"), solve_time=time.perf_counter() - t0, dual_value=float("inf"),
                           duality_gap=float("nan"), primal_residual=float("nan"), dual_residual=float("nan"),
                           **common)
    scale = spec.scale * prog.obj_scale
    primal = chosen["primal"] if chosen["gap"] <= CERTIFICATE_TOL else max(chosen["primal"], chosen["dual"])
    value, dual_value = max(primal, 0.0) * scale, max(chosen["dual"], 0.0) * scale
    if spec.metric == Metric.DISTANCE:
        value, dual_value = float(np.sqrt(value)), float(np.sqrt(dual_value))
    gram = None
    if keep_solution:
        gram = chosen["G"] * np.outer(prog.scales, prog.scales)
    return PepSolution(value=value, solve_time=time.perf_counter() - t0, dual_value=dual_value,
                       duality_gap=chosen["gap"], primal_residual=chosen["primal_residual"],
                       dual_residual=chosen["dual_residual"], gram=gram,
                       multipliers=chosen["lam"] if keep_solution else None, **common)
