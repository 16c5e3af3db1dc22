"""Exact worst cases at long horizons: the Gram-matrix SDP of ``pep.gram`` solved by constraint generation.

Why. The full program (``pep.gram.build_gram_program``) keeps every ordered interpolation pair: for GD on
F_{0,L} with the objective gap that is (N + 2)(N + 1) rows over the d(d + 1)/2 entries of G (d = N + 2), i.e.
40 000 dense rows of 20 000 entries at N = 200 (6 GB), and an interior-point KKT system dense in d(d + 1)/2.

What. Solve the SDP with a subset S of the pairs (a relaxation: its value is >= the exact worst case), evaluate
EVERY pair inequality at the relaxation's primal solution (G, F), add the violated ones to S, repeat until
none is violated (above ``GENERATION_TOL`` relative to max(1, max G_ii)). Then:

* the primal solution is feasible for the full program (up to that tolerance): its value is a lower bound on
  the exact worst case;
* the relaxation's dual solution, padded with zero multipliers on the dropped pairs, is a dual solution of the
  full program (the dropped pairs do not enter the dual slack matrix or the stationarity in F): its value
  lam0 is an upper bound on the exact worst case;
* so primal = dual = the exact worst case, up to the certificate, which is recomputed from the data of the
  FULL program exactly as ``pep.gram._certificate`` does (primal residual over all pairs, dual residual with
  the multipliers padded by zeros), and accepted with ``pep.gram.CERTIFICATE_TOL`` as in ``solve_gram``.

Unbounded relaxations. An unbounded relaxation says nothing by itself about the full program (fewer
constraints). SCS's certificate of unboundedness is a ray (dG, dF) of the relaxation with objective gain > 0;
it is checked from the data against every pair (homogeneous part), the initial condition and the PSD cone,
per unit of objective gain: if every violation is below CERTIFICATE_TOL, the full program is unbounded too
(+inf); violated pairs are added and the loop goes on; a ray violating only the initial condition or the
cone is not a proof (the solver fails; another solver is tried).

Start set (``start_pairs``): pairs that carry the multipliers of the known dual solutions of fixed-step
methods (Drori & Teboulle 2014; Taylor, Hendrickx & Glineur 2017): consecutive points (i, i+1) and (i+1, i)
and every point with the optimum, (i, *) and (*, i), for f and for h; measured in docs/pep.md.

All pairs are evaluated without the dense row matrix: with P (points), Q (gradients) the coefficient matrices
of the points in the basis, the n x n matrices P G Q^T, Q G Q^T, P G P^T give every pair's inequality at once
(O(n d^2) work, O(n^2) memory). The rows of the subset are built as sparse matrices directly.

Coefficient bookkeeping. ``point_layout`` re-derives, for every method in step-matrix form (``pep.methods``;
the four templates through ``PepSpec.as_linear``), the points, (sub)gradients,
function values, initial condition and metric in the basis of ``pep.gram.build_gram_program`` (without
preconditioning), which stays the source of truth: tests/test_pep_generation.py checks that the rows built
here equal that builder's rows, pair by pair, on small K.

Solvers: SCS (first order; its cost per iteration is one d x d eigendecomposition, so it scales to d ~ 200
where Clarabel's dense d(d+1)/2 KKT block does not fit), called directly (sparse data, warm start across
rounds); or Clarabel through cvxpy on the (dense, unpreconditioned) sub-program, for moderate d, accepted
only with status 'optimal'.

Where it pays (measured, docs/pep.md): GD and proximal gradient with steps in (0, 2/L) need only the start
set (one round); accelerated methods (agd, fista) need 4-5 rounds and about two thirds of the pairs, and SCS
is slow to certify them, so ``formulation="auto"`` keeps the full program for them up to a larger Gram size.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from unfoldkit.theory.bound import Metric
from unfoldkit.theory.pep.gram import (
    CERTIFICATE_TOL,
    SOLVER_OPTIONS,
    GramProgram,
    _certified,
    _cvxpy_problem,
    trace_method,
)
from unfoldkit.theory.pep.problem import PepSolution, PepSpec

#: a pair is added when its inequality is violated by more than this, relative to max(1, max G_ii) (the
#: scale of ``_certificate``'s primal residual): 100 x below CERTIFICATE_TOL, so the final full-program
#: primal residual is far inside the acceptance threshold
GENERATION_TOL = CERTIFICATE_TOL / 100.0
#: solvers of the generation loop
GENERATION_SOLVERS = ("SCS", "CLARABEL")
#: solver=None/"auto": Clarabel (dense KKT in d(d+1)/2) is the fallback only up to this Gram size
CLARABEL_MAX_GRAM_SIZE = 60
#: SCS's iteration limit per round when Clarabel follows as fallback (small Gram sizes)
SCS_MAX_ITERS_WITH_FALLBACK = 10_000
#: at most this many rounds (each adds at least one pair, so the loop ends anyway at the full set)
MAX_ROUNDS = 60
#: SCS settings (tight, as ``pep.gram.SOLVER_OPTIONS``)
SCS_SETTINGS = {"eps_abs": SOLVER_OPTIONS["SCS"]["eps_abs"], "eps_rel": SOLVER_OPTIONS["SCS"]["eps_rel"],
                "max_iters": SOLVER_OPTIONS["SCS"]["max_iters"], "verbose": False}
#: SCS's status codes (scs.h) -> the names used here
_SCS_STATUS = {1: "solved", 2: "solved_inaccurate", -1: "unbounded", -6: "unbounded_inaccurate",
               -2: "infeasible", -7: "infeasible_inaccurate", -3: "indeterminate", -4: "failed", 0: "unfinished"}
_SQRT2 = float(np.sqrt(2.0))
_CHUNK = 64  # pairs whose d x d coefficient matrices are formed at once


@dataclass(frozen=True)
class PointLayout:
    """Points, (sub)gradients and values of the (normalized, unpreconditioned) PEP in the Gram basis.

    f-points: rows of ``fx`` (point), ``fg`` (gradient), ``fv`` (value index, -1 at the optimum where it is
    0), in the order of ``build_gram_program`` (the optimum first); h-points likewise (``hx``, ``hs``, ``hv``).
    Pair rows are ordered as that builder orders them: all ordered f-pairs (i, j), i != j, row-major, then
    the h-pairs.
    """

    gram_size: int
    num_values: int
    mu: float
    fx: np.ndarray
    fg: np.ndarray
    fv: np.ndarray
    hx: np.ndarray
    hs: np.ndarray
    hv: np.ndarray
    init_vec: np.ndarray | None
    init_lin: tuple[int, ...]
    init_weight: float
    obj_vec: np.ndarray | None
    obj_lin: tuple[int, ...]

    @property
    def num_f_points(self) -> int:
        return int(self.fx.shape[0])

    @property
    def num_h_points(self) -> int:
        return int(self.hx.shape[0])

    @property
    def num_pairs(self) -> int:
        """All ordered interpolation pairs of the full program."""
        nf, nh = self.num_f_points, self.num_h_points
        return nf * (nf - 1) + (nh * (nh - 1) if nh > 1 else 0)

    def pair_index(self, kind: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Row index in the full program of the ordered pairs (kind 0: f, 1: h; i != j)."""
        nf, nh = self.num_f_points, self.num_h_points
        n = np.where(kind == 0, nf, nh)
        local = i * (n - 1) + j - (j > i)
        return np.where(kind == 0, local, nf * (nf - 1) + local)

    def pair_of(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(kind, i, j) of full-program row indices (inverse of ``pair_index``)."""
        index = np.asarray(index, dtype=np.int64)
        nf, nh = self.num_f_points, self.num_h_points
        kind = (index >= nf * (nf - 1)).astype(np.int64)
        local = np.where(kind == 0, index, index - nf * (nf - 1))
        n = np.where(kind == 0, nf, max(nh, 2))
        i = local // (n - 1)
        r = local % (n - 1)
        j = r + (r >= i)
        return kind, i, j


def point_layout(spec: PepSpec) -> PointLayout:
    """The coefficient bookkeeping of ``pep.gram.build_gram_program`` (precondition=False) for ``spec``, read
    from the one copy ``pep.gram.trace_method``: the same basis, point sharing and value order, as arrays."""
    tr = trace_method(spec)
    pts = tr.pts
    d = pts.nbasis

    def stack(plist: list, col: int) -> np.ndarray:
        return np.array([p[col][:d] for p in plist]).reshape(len(plist), d)

    f, h = pts.f, pts.h
    return PointLayout(d, pts.nvalues, float(tr.spec.mu), stack(f, 0), stack(f, 1),
                       np.array([p[2] for p in f], dtype=np.int64), stack(h, 0), stack(h, 1),
                       np.array([p[2] for p in h], dtype=np.int64),
                       None if tr.init_vec is None else tr.init_vec[:d], tuple(tr.init_lin), tr.init_weight,
                       None if tr.obj_vec is None else tr.obj_vec[:d], tuple(tr.obj_lin))


# --------------------------------------------------------------------------------------------- pair rows
def _coefficients(lay: PointLayout) -> tuple[float, float, float]:
    q = lay.mu
    return 0.5 / (1.0 - q), 0.5 * q / (1.0 - q), q / (1.0 - q)


def _pair_matrices(lay: PointLayout, kind: np.ndarray, i: np.ndarray, j: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric coefficient matrices (P, d, d) and value rows (P, nv) of the pairs: <M, G> + b^T F <= 0."""
    c1, c2, c3 = _coefficients(lay)
    P, d, nv = kind.size, lay.gram_size, lay.num_values
    M = np.zeros((P, d, d))
    B = np.zeros((P, nv))

    def sym(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        o = np.einsum("pa,pb->pab", u, v)
        return 0.5 * (o + o.transpose(0, 2, 1))

    for k, (X, Gr, V, smooth) in enumerate(((lay.fx, lay.fg, lay.fv, True), (lay.hx, lay.hs, lay.hv, False))):
        sel = np.flatnonzero(kind == k)
        if sel.size == 0:
            continue
        a, b = i[sel], j[sel]
        dx, gj = X[a] - X[b], Gr[b]
        blk = sym(gj, dx)
        if smooth:
            dg = Gr[a] - Gr[b]
            blk += c1 * sym(dg, dg)
            if lay.mu > 0:
                blk += c2 * sym(dx, dx) - c3 * sym(dx, dg)
        M[sel] = blk
        for col, (va, vb) in enumerate(zip(V[a], V[b])):
            if vb >= 0:
                B[sel[col], vb] += 1.0
            if va >= 0:
                B[sel[col], va] -= 1.0
    return M, B


def gram_order_rows(lay: PointLayout, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense rows (pair_q, pair_b) of full-program pair ``index`` in ``build_gram_program``'s layout (diagonal
    of G first, then the strict upper triangle row-major), unpreconditioned."""
    d = lay.gram_size
    diag = np.arange(d)
    up_r, up_c = np.triu_indices(d, 1)
    rows, cols = np.concatenate([diag, up_r]), np.concatenate([diag, up_c])
    kind, i, j = lay.pair_of(index)
    qs, bs = [], []
    for lo in range(0, kind.size, _CHUNK):
        M, B = _pair_matrices(lay, kind[lo:lo + _CHUNK], i[lo:lo + _CHUNK], j[lo:lo + _CHUNK])
        qs.append(M[:, rows, cols])
        bs.append(B)
    T = rows.size
    return (np.vstack(qs) if qs else np.zeros((0, T))), (np.vstack(bs) if bs else np.zeros((0, lay.num_values)))


def _scs_order(d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SCS's PSD vectorization: lower triangle column-major (= upper triangle row-major, (r, c) with r <= c),
    off-diagonal entries scaled by sqrt(2). Returns (r, c, scale)."""
    r, c = np.triu_indices(d)
    return r, c, np.where(r == c, 1.0, _SQRT2)


def _scs_rows(lay: PointLayout, index: np.ndarray) -> sp.csr_matrix:
    """Sparse rows [G part in SCS order | F part] of the pairs ``index``: <M, G> = sum_t a_t x_t."""
    d, nv = lay.gram_size, lay.num_values
    r, c, scale = _scs_order(d)
    kind, i, j = lay.pair_of(index)
    blocks = []
    for lo in range(0, kind.size, _CHUNK):
        M, B = _pair_matrices(lay, kind[lo:lo + _CHUNK], i[lo:lo + _CHUNK], j[lo:lo + _CHUNK])
        dense = np.hstack([M[:, r, c] * scale, B])
        dense[np.abs(dense) < 1e-300] = 0.0
        blocks.append(sp.csr_matrix(dense))
    return sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, r.size + nv))


def _vec_row(lay: PointLayout, vec: np.ndarray | None, lin: tuple[int, ...], weight: float = 1.0) -> np.ndarray:
    """[G part in SCS order | F part] of weight <vec vec^T, G> + sum_{i in lin} F_i."""
    d, nv = lay.gram_size, lay.num_values
    r, c, scale = _scs_order(d)
    out = np.zeros(r.size + nv)
    if vec is not None:
        out[:r.size] = weight * vec[r] * vec[c] * scale
    for k in lin:
        out[r.size + k] += 1.0
    return out


def _to_matrix(d: int, v: np.ndarray) -> np.ndarray:
    """The symmetric matrix of a vector in SCS order (the inverse of the scaled vectorization)."""
    r, c, scale = _scs_order(d)
    m = np.zeros((d, d))
    m[r, c] = v / scale
    m[c, r] = v / scale
    return m


# ------------------------------------------------------------------------------------ all pairs at once
def all_pair_values(lay: PointLayout, G: np.ndarray, F: np.ndarray) -> np.ndarray:
    """<A_p, G> + b_p^T F for every pair of the full program (ordered as its rows), from the n x n matrices
    of inner products of the points and gradients, without forming the rows (O(n d^2) work)."""
    c1, c2, c3 = _coefficients(lay)
    out = []
    for X, Gr, V, smooth in ((lay.fx, lay.fg, lay.fv, True), (lay.hx, lay.hs, lay.hv, False)):
        n = X.shape[0]
        if n < 2:
            continue
        XG, QG = X @ G, Gr @ G
        xg = XG @ Gr.T  # <x_a, g_b>
        val = np.where(V >= 0, F[np.maximum(V, 0)] if F.size else 0.0, 0.0)
        dxg = np.diag(xg)
        # <g_j, x_i - x_j> + h_j - h_i   (row i, column j)
        m = xg - dxg[None, :] + val[None, :] - val[:, None]
        if smooth:
            gg = QG @ Gr.T
            dgg = np.diag(gg)
            m = m + c1 * (dgg[:, None] + dgg[None, :] - 2.0 * gg)
            if lay.mu > 0:
                xx = XG @ X.T
                dxx = np.diag(xx)
                m = m + c2 * (dxx[:, None] + dxx[None, :] - 2.0 * xx)
                # <x_i - x_j, g_i - g_j>
                m = m - c3 * (dxg[:, None] - xg - xg.T + dxg[None, :])
        out.append(m[~np.eye(n, dtype=bool)])
    return np.concatenate(out) if out else np.zeros(0)


def start_pairs(lay: PointLayout) -> np.ndarray:
    """Full-program row indices of the start set: consecutive points (i, i+1), (i+1, i) and every point with
    the optimum (index 0), for f and for h (points in the order the method creates them)."""
    idx = []
    for k, n in ((0, lay.num_f_points), (1, lay.num_h_points)):
        if n < 2:
            continue
        a = np.arange(1, n)
        pairs = [(a, np.zeros_like(a)), (np.zeros_like(a), a)]
        if n > 2:
            b = np.arange(1, n - 1)
            pairs += [(b, b + 1), (b + 1, b)]
        for i, j in pairs:
            idx.append(lay.pair_index(np.full(i.size, k), i, j))
    return np.unique(np.concatenate(idx)) if idx else np.zeros(0, dtype=np.int64)


# ----------------------------------------------------------------------------------------------- solving
@dataclass
class GenerationInfo:
    """How a constraint-generation solve went: rounds, pairs used out of all, solver statuses per round."""

    rounds: int = 0
    pairs_used: int = 0
    pairs_total: int = 0
    added: list[int] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    active_pairs: np.ndarray | None = None

    def summary(self) -> dict:
        return {"formulation": "generation", "rounds": self.rounds, "pairs_used": self.pairs_used,
                "pairs_total": self.pairs_total, "added_per_round": list(self.added)}


def _certificate_full(lay: PointLayout, A: sp.csr_matrix, init_row: np.ndarray, obj_row: np.ndarray,
                      G: np.ndarray, F: np.ndarray, lam: np.ndarray, lam0: float) -> tuple[float, float]:
    """``pep.gram._certificate`` of the FULL program at (G, F) with the multipliers ``lam`` of the subset rows
    ``A`` and zeros on every other pair (they add nothing to the dual slack matrix or the stationarity)."""
    d = lay.gram_size
    T = d * (d + 1) // 2
    r, c, scale = _scs_order(d)
    x = np.concatenate([G[r, c] * scale, F])
    viol = [-float(np.linalg.eigvalsh(G).min())]
    vals = all_pair_values(lay, G, F)
    if vals.size:
        viol.append(float(vals.max()))
    viol.append(float(init_row @ x - 1.0))
    y = A.T @ lam + lam0 * init_row - obj_row
    S = _to_matrix(d, y[:T])
    stat = y[T:]
    dual = [-float(np.linalg.eigvalsh(S).min()), float(np.max(np.abs(stat))) if stat.size else 0.0,
            -float(min(lam.min() if lam.size else 0.0, lam0))]
    g_size = max(1.0, float(np.max(np.abs(np.diag(G)))))
    l_size = max(1.0, abs(lam0), float(np.max(np.abs(lam))) if lam.size else 0.0)
    return max(0.0, *viol) / g_size, max(0.0, *dual) / l_size


def _scs_solve(lay: PointLayout, A_pairs: sp.csr_matrix, init_row: np.ndarray, obj_row: np.ndarray,
               warm: dict | None, settings: dict) -> dict:
    import scs

    d, nv = lay.gram_size, lay.num_values
    T = d * (d + 1) // 2
    m = A_pairs.shape[0]
    A = sp.vstack([A_pairs, sp.csr_matrix(init_row[None, :]),
                   sp.hstack([-sp.identity(T, format="csr"), sp.csr_matrix((T, nv))])], format="csc")
    b = np.concatenate([np.zeros(m), [1.0], np.zeros(T)])
    solver = scs.SCS({"A": A, "b": b, "c": -obj_row}, {"l": m + 1, "s": [d]}, **settings)
    if warm is not None:
        y = np.concatenate([warm["lam"], np.zeros(m - warm["lam"].size), [warm["lam0"]], warm["ypsd"]])
        s = np.concatenate([np.zeros(m + 1), warm["x"][:T]])
        s[:m + 1] = b[:m + 1] - A[:m + 1] @ warm["x"]
        s[:m + 1] = np.maximum(s[:m + 1], 0.0)
        sol = solver.solve(warm_start=True, x=warm["x"], y=y, s=s)
    else:
        sol = solver.solve()
    info = sol["info"]
    status = _SCS_STATUS.get(int(info["status_val"]), str(info["status"]))
    out = {"status": status, "solver_time": (info.get("setup_time", 0.0) + info.get("solve_time", 0.0)) / 1e3,
           "iters": int(info.get("iter", 0))}
    x, y = np.asarray(sol["x"], dtype=float), np.asarray(sol["y"], dtype=float)
    out["x"] = x
    if status in ("solved", "solved_inaccurate"):
        out.update(lam=y[:m], lam0=float(y[m]), ypsd=y[m + 1:])
    return out


def _clarabel_solve(lay: PointLayout, index: np.ndarray, init_row: np.ndarray, obj_row: np.ndarray) -> dict:
    """Clarabel via cvxpy on the dense sub-program (``GramProgram`` with the subset's rows)."""
    d, nv = lay.gram_size, lay.num_values
    q, bq = gram_order_rows(lay, index)
    diag = np.arange(d)
    up_r, up_c = np.triu_indices(d, 1)
    rows, cols = np.concatenate([diag, up_r]), np.concatenate([diag, up_c])
    weights = np.concatenate([np.ones(d), 2.0 * np.ones(up_r.size)])
    r, c, scale = _scs_order(d)
    T = r.size

    def gram_row(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # SCS-order row -> gram-order entries M_t
        M = _to_matrix(d, v[:T])
        return M[rows, cols], v[T:]

    iq, ib = gram_row(init_row)
    oq, ob = gram_row(obj_row)
    prog = GramProgram(d, nv, rows, cols, weights, q, bq, iq, ib, oq, ob, lay.num_f_points, lay.num_h_points,
                       np.ones(d), 1.0)
    problem, Gv, Fv, pair, init = _cvxpy_problem(prog)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            problem.solve(solver="CLARABEL", **SOLVER_OPTIONS.get("CLARABEL", {}))
    except (cp.error.SolverError, ValueError, ArithmeticError) as err:
        return {"status": f"solver_error ({type(err).__name__}: {err})", "solver_time": float("nan")}
    stats = problem.solver_stats
    status = {"optimal": "solved", "optimal_inaccurate": "solved_inaccurate"}.get(problem.status, problem.status)
    out = {"status": status, "iters": 0,
           "solver_time": float(stats.solve_time) if stats is not None and stats.solve_time is not None
           else float("nan")}
    if status in ("solved", "solved_inaccurate") and Gv.value is not None:
        G = np.asarray(Gv.value, dtype=float)
        F = np.zeros(nv) if Fv is None else np.asarray(Fv.value, dtype=float)
        lam = np.asarray(pair.dual_value, dtype=float).ravel() if pair is not None else np.zeros(0)
        lam0 = float(np.asarray(init.dual_value, dtype=float).ravel()[0])
        out.update(x=np.concatenate([G[r, c] * scale, F]), lam=lam, lam0=lam0)
    return out


def _generate(lay: PointLayout, name: str, start: np.ndarray, scs_settings: dict | None = None) -> dict:
    """The generation loop with one solver. Returns a dict: ``kind`` "optimal" (with G, F, x, lam, lam0, the
    subset's rows A and the final solver status), "unbounded" (a ray that satisfies every pair), or "failed";
    always ``active``, ``info``, ``solver_time``."""
    d = lay.gram_size
    T = d * (d + 1) // 2
    init_row = _vec_row(lay, lay.init_vec, lay.init_lin, lay.init_weight)
    obj_row = _vec_row(lay, lay.obj_vec, lay.obj_lin)
    active = start.copy()
    info = GenerationInfo(pairs_total=lay.num_pairs)
    A = _scs_rows(lay, active)
    warm = None
    solver_time = 0.0
    out: dict = {"kind": "failed"}
    while True:
        info.rounds += 1
        if name == "SCS":
            res = _scs_solve(lay, A, init_row, obj_row, warm, scs_settings or SCS_SETTINGS)
        else:
            res = _clarabel_solve(lay, active, init_row, obj_row)
        solver_time += res["solver_time"] if np.isfinite(res["solver_time"]) else 0.0
        st = res["status"]
        info.statuses.append(st)
        if st in ("solved", "solved_inaccurate") and "lam" in res:
            x = res["x"]
            G, F = _to_matrix(d, x[:T]), x[T:]
            vals = all_pair_values(lay, G, F)
            tol = GENERATION_TOL * max(1.0, float(np.max(np.abs(np.diag(G)))))
            new = np.setdiff1d(np.flatnonzero(vals > tol), active)
            if new.size == 0 or info.rounds >= MAX_ROUNDS:
                out = {"kind": "optimal", "G": G, "F": F, "x": x, "lam": res["lam"], "lam0": float(res["lam0"]),
                       "status": st, "A": A, "init_row": init_row, "obj_row": obj_row}
                break
            warm = {"x": x, "lam": res["lam"], "lam0": res["lam0"], "ypsd": res.get("ypsd", np.zeros(T))}
        elif st in ("unbounded", "unbounded_inaccurate") and name == "SCS":
            # SCS's certificate of dual infeasibility: a ray (dG, dF) of the relaxation with obj > 0, checked
            # from the data on EVERY pair, the initial condition and the PSD cone, per unit of objective gain
            ray = res["x"]
            Gr, Fr = _to_matrix(d, ray[:T]), ray[T:]
            gain = float(obj_row @ ray)
            vals = all_pair_values(lay, Gr, Fr) / max(gain, 1e-300)
            new = np.setdiff1d(np.flatnonzero(vals > CERTIFICATE_TOL), active) if gain > 0 else np.zeros(0, int)
            if new.size == 0:
                other = max(float(init_row @ ray), -float(np.linalg.eigvalsh(Gr).min())) / max(gain, 1e-300)
                worst = max(other, float(vals.max()) if vals.size else 0.0)
                if gain > 0 and worst <= CERTIFICATE_TOL:
                    out = {"kind": "unbounded", "status": st, "ray_violation": worst}
                else:
                    out = {"kind": "failed", "status": f"{st} (ray not verified: violation {worst:.1e} per unit "
                                                         "of objective)"}
                break
            if info.rounds >= MAX_ROUNDS:
                out = {"kind": "failed", "status": f"{st} after {MAX_ROUNDS} rounds"}
                break
            warm = None
        else:
            out = {"kind": "failed", "status": st}
            break
        info.added.append(int(new.size))
        active = np.concatenate([active, new])
        A = sp.vstack([A, _scs_rows(lay, new)], format="csr")
    info.pairs_used = int(active.size)
    info.active_pairs = np.sort(active)
    out.update(active=active, info=info, solver_time=solver_time)
    return out


def solve_generation(spec: PepSpec, solver: str | None = None, start: np.ndarray | None = None,
                     keep_solution: bool = False) -> tuple[PepSolution, GenerationInfo]:
    """Exact worst case of ``spec`` at its last layer by constraint generation (module docstring).

    ``solver``: "SCS" or "CLARABEL"; None or "auto": SCS, then Clarabel when SCS does not reach a certified
    result and the Gram size is at most ``CLARABEL_MAX_GRAM_SIZE`` (its KKT system is dense in d(d+1)/2).
    ``start``: full-program row indices to start from (default ``start_pairs``). Returns the ``PepSolution``
    (certificate recomputed on the full program, accepted as in ``solve_gram``) and a ``GenerationInfo``
    (rounds, pairs used). +inf when the full program is unbounded (a ray of the relaxation verified on every
    pair, the initial condition and the cone, whatever the solver's status said). Raises
    RuntimeError naming every solver and status when none is accepted.
    """
    t0 = time.perf_counter()
    lay = point_layout(spec)
    d = lay.gram_size
    if solver is None or solver.upper() == "AUTO":
        names = tuple(n for n in GENERATION_SOLVERS if n != "CLARABEL" or d <= CLARABEL_MAX_GRAM_SIZE)
    else:
        names = (solver.upper(),)
        if names[0] not in GENERATION_SOLVERS:
            raise ValueError(f"solver for formulation='generation' must be one of {GENERATION_SOLVERS} or 'auto', "
                             f"got {solver!r}")
    start_idx = np.asarray(start_pairs(lay) if start is None else np.unique(start), dtype=np.int64)
    attempts: list[str] = []
    chosen = None
    total_solver_time = 0.0
    for name in names:
        settings = SCS_SETTINGS
        if name == "SCS" and "CLARABEL" in names[names.index("SCS") + 1:]:
            # small programs with Clarabel as fallback: do not let SCS crawl (its slow cases are the
            # geometrically decaying ones, where Clarabel is fast at this size)
            settings = {**SCS_SETTINGS, "max_iters": SCS_MAX_ITERS_WITH_FALLBACK}
        run = _generate(lay, name, start_idx, settings)
        total_solver_time += run["solver_time"]
        info = run["info"]
        note = f"constraint generation: {info.rounds} round(s), {info.pairs_used} of {info.pairs_total} pairs" + (
            f", added {info.added}" if info.added else "")
        if run["kind"] == "optimal":
            primal = float(run["obj_row"] @ run["x"])
            lam0 = run["lam0"]
            p_res, d_res = _certificate_full(lay, run["A"], run["init_row"], run["obj_row"], run["G"], run["F"],
                                             run["lam"], lam0)
            gap = abs(primal - lam0) / max(abs(primal), 1e-300)
            run.update(primal=primal, gap=gap, primal_residual=p_res, dual_residual=d_res)
            status = "optimal" if run["status"] == "solved" else "optimal_inaccurate"
            attempts.append(f"{name}: {status} (gap {gap:.1e}, residuals {p_res:.1e}/{d_res:.1e} on all pairs; "
                            f"{note})")
            # Clarabel runs here on the unpreconditioned program: its 'optimal_inaccurate' is not trusted even
            # with a certificate below CERTIFICATE_TOL (measured: FISTA, K = 20, value 1.4e-4 too high with gap
            # 1.0e-6 and residuals 6e-7)
            if _certified(run) and (name != "CLARABEL" or status == "optimal"):
                chosen = dict(run, name=name, status=status)
                break
        elif run["kind"] == "unbounded":
            attempts.append(f"{name}: {run['status']} ({note}; its ray verified on every pair, violation "
                            f"{run['ray_violation']:.1e} per unit of objective)")
            chosen = dict(run, name=name, status="unbounded")
            break
        else:
            # a relaxation reported unbounded without a ray checked on every pair says nothing about the full
            # program: a failure of this solver
            attempts.append(f"{name}: {run['status']}" + (" (relaxation, no checked ray)"
                                                          if str(run["status"]).startswith("unbounded") and "ray" not in str(run["status"])
                                                          else "")
                            + f" ({note})")
    if chosen is None:
        raise RuntimeError(f"PEP SDP (constraint generation) failed for {spec.describe()}: no solver reached an "
                           "accepted status; " + "; ".join(attempts))
    info = chosen["info"]
    common = dict(num_layers=spec.num_layers, engine="gram", solver=chosen["name"], solver_time=total_solver_time,
                  gram_size=d, num_constraints=int(chosen["active"].size) + 1, attempts=tuple(attempts))
    if chosen["status"].startswith("unbounded"):
        return PepSolution(value=float("inf"), status=chosen["status"], solve_time=time.perf_counter() - t0,
                           dual_value=float("inf"), duality_gap=float("nan"), primal_residual=float("nan"),
                           dual_residual=float("nan"), **common), info
    primal, lam0, gap = chosen["primal"], chosen["lam0"], chosen["gap"]
    value_n = primal if gap <= CERTIFICATE_TOL else max(primal, lam0)
    value, dual_value = max(value_n, 0.0) * spec.scale, max(lam0, 0.0) * spec.scale
    if spec.metric == Metric.DISTANCE:
        value, dual_value = float(np.sqrt(value)), float(np.sqrt(dual_value))
    sol = PepSolution(value=value, status=chosen["status"], solve_time=time.perf_counter() - t0,
                      dual_value=dual_value, duality_gap=gap, primal_residual=chosen["primal_residual"],
                      dual_residual=chosen["dual_residual"], gram=chosen["G"].copy() if keep_solution else None,
                      multipliers=_padded(lay, chosen["active"], chosen["lam"]) if keep_solution else None, **common)
    return sol, info


def _padded(lay: PointLayout, active: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Multipliers of every pair of the full program (zero on the pairs left out)."""
    out = np.zeros(lay.num_pairs)
    out[active] = lam
    return out


def pair_classes(lay: PointLayout, index: np.ndarray) -> dict[str, int]:
    """How many of the full-program pairs ``index`` are with the optimum ((i, *) or (*, i)), between
    consecutive points ((i, i+1) or (i+1, i), in creation order), or other; by function (f, h)."""
    kind, i, j = lay.pair_of(np.asarray(index, dtype=np.int64))
    star = (i == 0) | (j == 0)
    consecutive = ~star & (np.abs(i - j) == 1)
    out = {}
    for k, fn in ((0, "f"), (1, "h")):
        sel = kind == k
        out[f"{fn}: with optimum"] = int(np.sum(sel & star))
        out[f"{fn}: consecutive"] = int(np.sum(sel & consecutive))
        out[f"{fn}: other"] = int(np.sum(sel & ~star & ~consecutive))
    return out


def active_pairs(spec: PepSpec, solver: str = "CLARABEL", rel: float = 1e-6) -> dict[str, Any]:
    """Which pairs carry non-zero multipliers in the FULL formulation's dual solution (``pep.gram.solve_gram``
    with ``keep_solution``): counts by class (``pair_classes``) of the multipliers above ``rel`` times the
    largest, and whether the start set (``start_pairs``) contains them all. An interior-point solver (Clarabel)
    returns a maximally complementary dual solution (every pair that is non-zero in SOME dual solution);
    constraint generation only needs the support of one."""
    from unfoldkit.theory.pep.gram import build_gram_program, solve_gram

    lay = point_layout(spec)
    sol = solve_gram(spec, solver=solver, keep_solution=True)
    lam = np.asarray(sol.multipliers, dtype=float)
    prog = build_gram_program(spec, precondition=solver.upper() == "CLARABEL")
    if prog.pair_q.shape[0] != lay.num_pairs:
        raise RuntimeError("pair layout differs from build_gram_program's")
    support = np.flatnonzero(lam > rel * max(float(lam.max()), 1e-300)) if lam.size else np.zeros(0, int)
    start = start_pairs(lay)
    return {"num_pairs": lay.num_pairs, "num_active": int(support.size), "classes": pair_classes(lay, support),
            "active_outside_start": int(np.setdiff1d(support, start).size), "start_size": int(start.size)}
