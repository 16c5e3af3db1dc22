"""LipSDP-Neuron for a ``Chain`` (skips from y into every stage), solved along the layer chain.

LipSDP (Fazlyab, Robey, Hassani, Morari & Pappas, NeurIPS 2019, arXiv 1906.04893; the multi-layer theorem,
recalled as Thm 2, with the neuron-wise multipliers T = diag(lambda); the formulation is confirmed in the
authors' code, digest 4.3) for our chain: each neuron w_i = phi(v_i) slope-restricted in
[a_i, b_i] satisfies, for any two inputs, (dw_i - a_i dv_i)(b_i dv_i - dw_i) >= 0. With multipliers
lambda >= 0 (one per neuron), if for every increment

    rho ||dy||^2 - ||C ds_T||^2 - sum_t sum_i lambda_{t,i} (dw_i - a_i dv_i)(b_i dv_i - dw_i) >= 0      (*)

then Lip(y -> C s_T) <= sqrt(rho) (S-procedure: on real increments the sum is >= 0).

**Chain elimination [derived].** (*) is one LMI of size m + sum_t N_t (about 8,000 for n = 500, K = 16).
Its sparsity is that of the chain (y feeds every stage, stage t talks to t - 1 only through s_t), so it is
decided exactly by a backward recursion on quadratic forms in (dy, ds_t) of size m + d only:

    V_T = diag(0, C^T C);  with z = (y, s), s+ = E z + F w (E = [[I, 0], [T, S]], F = [0; R]), v = G z,
    H_ww = F^T V_{t+1} F - Lambda,   H_zw = E^T V_{t+1} F + G^T diag((a+b)/2) Lambda,
    H_zz = E^T V_{t+1} E - G^T diag(a b) Lambda G,
    V_t = H_zz - H_zw H_ww^{-1} H_zw^T   (requires H_ww negative definite: checked by a Cholesky factor),

and rho*(Lambda) = lambda_max of V_0 on the y block (s_0 = 0). V_t(z) is the largest value of the
remaining terms of (*) over the later neurons, so (*) holds with rho iff rho >= rho*(Lambda) and every
H_ww < 0: the elimination *is* the certificate check, done from the data in float64 in O(T (m + d + N)^3)
(``certificate_value``). rho*(Lambda) is convex in Lambda (a partial minimisation of the convex LipSDP), so
the multipliers are found by minimising it (``optimize_multipliers``, first order, torch autograd through
the same elimination), or taken from cvxpy (``cvxpy_multipliers``: the monolithic LMI, Clarabel/SCS, for
small chains, used as the reference). Whatever produced Lambda, the bound reported is the one recomputed
here from the data, with a relative margin; a failed solve never yields a number.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from unfoldkit.theory.lipschitz.structure import Chain

Array = np.ndarray
#: relative margin on the certified rho (round-off of the float64 elimination)
RHO_MARGIN = 1e-9


class CertificateError(RuntimeError):
    """The multipliers do not certify (an H_ww is not negative definite) or the solver failed."""


@dataclass
class Certificate:
    """A certified bound sqrt(rho) on Lip(y -> x_k) with its multipliers and evidence."""

    bound: float
    rho: float
    multipliers: list[Array]
    method: str
    evidence: dict[str, Any] = field(default_factory=dict)


def _blocks(chain: Chain, t: int) -> tuple[Array, Array, Array, Array, Array]:
    st = chain.stages[t]
    m, d, dn = chain.input_dim, st.state_dim, st.next_dim
    e = np.block([[np.eye(m), np.zeros((m, d))], [st.T, st.S]])
    f = np.vstack([np.zeros((m, st.num_neurons)), st.R])
    g = np.hstack([st.Q, st.P])
    assert e.shape == (m + dn, m + d)
    return e, f, g, st.lo, st.hi


def _eliminate(chain: Chain, readout: Array, lambdas: list[Any], xp: Any) -> tuple[Any, list[float]]:
    """Backward elimination (module docstring) in numpy (xp = np) or torch (xp = torch; differentiable).

    Returns (V_0 on the y block, per-stage margins -lambda_max(H_ww) (>0 means certified there)).
    Raises CertificateError where an H_ww is not negative definite."""
    m = chain.input_dim
    last = chain.stages[-1]
    as_t = (lambda a: torch.as_tensor(a, dtype=torch.float64)) if xp is torch else (lambda a: a)  # noqa: E731
    c = as_t(readout)
    v = xp.zeros((m + last.next_dim, m + last.next_dim), dtype=xp.float64)
    v[m:, m:] = c.T @ c
    margins = []
    for t in range(len(chain.stages) - 1, -1, -1):
        e, f, g, lo, hi = (as_t(x) for x in _blocks(chain, t))
        lam = lambdas[t]
        if f.shape[1] == 0:
            v = e.T @ v @ e
            margins.append(float("inf"))
            continue
        vf = v @ f
        hww = f.T @ vf - xp.diag(lam)
        hzw = e.T @ vf + (g.T * ((lo + hi) / 2.0 * lam))
        hzz = e.T @ v @ e - (g.T * (lo * hi * lam)) @ g
        neg = -(hww + hww.T) / 2.0
        if xp is torch:
            chol, info = torch.linalg.cholesky_ex(neg)
            if int(info) != 0:
                raise CertificateError(f"stage {t}: H_ww is not negative definite")
            sol = torch.cholesky_solve(hzw.T, chol)
        else:
            try:
                chol = np.linalg.cholesky(neg)
            except np.linalg.LinAlgError:
                raise CertificateError(f"stage {t}: H_ww is not negative definite") from None
            sol = np.linalg.solve(chol.T, np.linalg.solve(chol, hzw.T))
            margins.append(float(np.min(np.diag(chol)) ** 2))
        v = hzz + hzw @ sol  # H_zz - H_zw H_ww^{-1} H_zw^T with H_ww = -neg
        v = (v + v.T) / 2.0
    return v[:m, :m], margins[::-1]


def certificate_value(chain: Chain, readout: Array, lambdas: list[Array]) -> tuple[float, dict[str, Any]]:
    """rho*(Lambda) recomputed from the data in float64, times (1 + RHO_MARGIN); CertificateError if the
    multipliers do not certify. Evidence: per-stage Cholesky pivots (a lower bound on -lambda_max(H_ww)
    up to a factor: the smallest squared diagonal of the Cholesky factor) and the y-block spectrum."""
    lams = [np.asarray(x, dtype=np.float64) for x in lambdas]
    if any(np.any(x < 0) or not np.all(np.isfinite(x)) for x in lams):
        raise CertificateError("multipliers must be finite and >= 0")
    v0, margins = _eliminate(chain, readout, lams, np)
    eig = np.linalg.eigvalsh(v0)
    rho = max(float(eig[-1]), 0.0) * (1.0 + RHO_MARGIN)
    return rho, {"min_cholesky_pivot": float(np.min(margins)) if margins else None,
                 "rho_unrounded": float(eig[-1])}


def initial_multipliers(chain: Chain, readout: Array, scale: float = 2.0) -> list[Array]:
    """A feasible Lambda by a greedy backward pass: lambda_i = scale * (Gershgorin row sum of F^T V F),
    which makes H_ww = F^T V F - Lambda strictly diagonally dominant and negative (plus a floor)."""
    m = chain.input_dim
    last = chain.stages[-1]
    v = np.zeros((m + last.next_dim, m + last.next_dim))
    v[m:, m:] = readout.T @ readout
    lams: list[Array] = [np.zeros(0)] * len(chain.stages)
    for t in range(len(chain.stages) - 1, -1, -1):
        e, f, g, lo, hi = _blocks(chain, t)
        if f.shape[1] == 0:
            v = e.T @ v @ e
            continue
        ff = f.T @ v @ f
        lam = scale * np.abs(ff).sum(axis=1) + 1e-3 * max(float(np.abs(ff).max()), 1.0)
        lams[t] = lam
        hww = ff - np.diag(lam)
        hzw = e.T @ v @ f + g.T * ((lo + hi) / 2.0 * lam)
        hzz = e.T @ v @ e - (g.T * (lo * hi * lam)) @ g
        v = hzz - hzw @ np.linalg.solve(hww, hzw.T)
        v = (v + v.T) / 2.0
    return lams


def eclipse_multipliers(chain: Chain, layer: int) -> list[Array]:
    """Feasible multipliers for layer ``layer``'s certificate from ECLipsE-Fast: rho_k l_t on every neuron of
    stage t (``cheap.eclipse_fast``; LipSDP's T = l_t / 2 I enters as 2 v^T T w - 2 w^T T w, our lambda is
    2 T, scaled by rho_k), so that rho*(Lambda) <= the ECLipsE-Fast bound squared."""
    from unfoldkit.theory.lipschitz.cheap import eclipse_fast

    bounds, ls = eclipse_fast(chain)
    rho = float(bounds[layer - 1]) ** 2
    t_k = chain.readout_stage[layer - 1]
    return [np.full(st.num_neurons, rho * ls[t]) for t, st in enumerate(chain.stages[:t_k])]


#: smoothing schedule of ``optimize_multipliers``: tau / rho for the soft maximum, then the exact lambda_max
SMOOTHING = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 0.0)


def naive_multipliers(chain: Chain, layer: int) -> list[Array] | None:
    """Uniform multipliers per stage whose certificate is at most the naive bound (``cheap.naive_bound``).

    [derived] Keep a diagonal majorant diag(p I_y, q I_s) of the storage form V_{t+1}. With the naive terms
    a1 = ||R|| ||P|| L_t, a2 = ||R|| ||Q||, a3 = ||S|| L_t, a4 = ||T|| (L_t the naive constant of s_t,
    A = sum a_i) and the weighted Cauchy-Schwarz split (sum x_i)^2 <= sum x_i^2 / w_i, w_i = a_i / A (equality
    on the naive recursion's aligned case), the multiplier lambda_t = 2 q ||R||^2 / w_R (w_R = w_1 + w_2)
    gives, for neurons slope-restricted in [0, 1], H_ww <= -(q ||R||^2 / w_R) I < 0 and
    q_t = q (||R P||^2 / (w_R beta) + ||S||^2 / w_3), p_t = p + q (||R Q||^2 / (w_R (1 - beta)) + ||T||^2 / w_4)
    with beta = a1 / (a1 + a2) (norms as products of norms), ending at p_0 = naive^2. The exact elimination
    with these multipliers is then <= naive^2. None when a stage has slopes other than [0, 1]."""
    from unfoldkit.theory.lipschitz.cheap import spectral_norm

    t_k = chain.readout_stage[layer - 1]
    stages = chain.stages[:t_k]
    if any(st.num_neurons and (np.any(st.lo != 0) or np.any(st.hi != 1)) for st in stages):
        return None
    norms, lips, lip = [], [], 0.0
    for st in stages:  # forward: the naive constants L_t of s_t and the four terms
        nr, np_, nq, ns, nt = (spectral_norm(x) for x in (st.R, st.P, st.Q, st.S, st.T))
        if not st.num_neurons:
            nr = np_ = nq = 0.0
        terms = np.array([nr * np_ * lip, nr * nq, ns * lip, nt])
        norms.append((nr, np_, nq, ns, nt, terms))
        lips.append(lip)
        lip = float(terms.sum())
    q = spectral_norm(chain.readouts[layer - 1]) ** 2
    lams: list[Array] = [np.zeros(0)] * len(stages)
    for t in range(len(stages) - 1, -1, -1):
        nr, np_, nq, ns, nt, a = norms[t]
        total = float(a.sum())
        if total <= 0.0:
            return None
        w = a / total
        w_r = w[0] + w[1]
        q_new = 0.0
        if stages[t].num_neurons:
            if w_r <= 0.0:
                return None
            lams[t] = np.full(stages[t].num_neurons, 2.0 * q * nr ** 2 / w_r)
            beta = a[0] / (a[0] + a[1])
            if a[0] > 0:
                q_new += q * (nr * np_) ** 2 / (w_r * beta)
        if a[2] > 0:
            q_new += q * ns ** 2 / w[2]
        q = q_new
    return lams


def _objective(chain: Chain, readout: Array, thetas: list[torch.Tensor], tau: float) -> tuple[Any, float]:
    """(tau log sum exp(eig(V_0) / tau) (or lambda_max when tau = 0), lambda_max) at Lambda = exp(theta)."""
    v0, _ = _eliminate(chain, readout, [torch.exp(t) for t in thetas], torch)
    eig = torch.linalg.eigvalsh(v0)
    top = float(eig[-1].detach())
    if tau <= 0:
        return eig[-1], top
    return tau * torch.logsumexp(eig / tau, 0), top


def optimize_multipliers(chain: Chain, readout: Array, *, iters: int = 300, init: list[Array] | None = None,
                         time_limit: float | None = None) -> tuple[list[Array], dict]:
    """Minimise rho*(Lambda) over Lambda = exp(theta) > 0 by normalised gradient descent with Armijo
    backtracking (torch autograd through the elimination).

    lambda_max is not smooth where eigenvalues of V_0 meet, so the descent runs on the soft maximum
    tau log sum exp(eig / tau) >= lambda_max with tau / rho decreasing along ``SMOOTHING`` (``iters`` split
    evenly), the last phase on lambda_max itself. A trial step that leaves the certified region (an H_ww
    not negative definite) or does not decrease enough is halved; every accepted point is certified, so the
    best one is returned. Convex in Lambda, not in theta: the result is an upper bound on the LipSDP
    optimum, never below it (tests compare it with cvxpy's)."""
    lam0 = init if init is not None else initial_multipliers(chain, readout)
    theta = [torch.tensor(np.log(np.maximum(x, 1e-300)), dtype=torch.float64) for x in lam0]
    start = time.perf_counter()
    with torch.no_grad():
        best_rho = _objective(chain, readout, theta, 0.0)[1]
    best = [x.copy() for x in lam0]
    done = rejected = 0
    per_phase = max(iters // len(SMOOTHING), 1)
    for ratio in SMOOTHING:
        step = 0.5
        for _ in range(per_phase):
            if time_limit is not None and time.perf_counter() - start > time_limit:
                break
            trial = [t.clone().requires_grad_(True) for t in theta]
            tau = ratio * best_rho
            value, top = _objective(chain, readout, trial, tau)
            value.backward()
            grads = [t.grad for t in trial]
            gnorm = float(torch.sqrt(sum((g * g).sum() for g in grads)))
            done += 1
            if gnorm == 0.0:
                break
            current, moved = float(value.detach()), False
            while step > 1e-10:
                cand = [t - step * g / gnorm for t, g in zip(theta, grads)]
                try:
                    with torch.no_grad():
                        new_value, new_top = _objective(chain, readout, cand, tau)
                except CertificateError:
                    rejected += 1
                    step *= 0.5
                    continue
                if float(new_value) < current - 1e-4 * step * gnorm:
                    theta, moved = cand, True
                    step *= 1.5
                    if new_top < best_rho:
                        best_rho, best = new_top, [np.exp(t.numpy()) for t in theta]
                    break
                step *= 0.5
            if not moved:
                break
    return best, {"iterations": done, "rejected_steps": rejected, "optimizer_rho": best_rho,
                  "seconds": time.perf_counter() - start}


def monolithic_size(chain: Chain) -> int:
    """Size of the monolithic LipSDP LMI: m + number of neurons."""
    return chain.input_dim + chain.num_neurons


def _run_monolithic(chain: Chain, visit: Any) -> tuple[Array, Array]:
    """Walk the monolithic LipSDP variables xi = (dy, dw_0, ..., dw_{T-1}): call ``visit(t, stage, vmap,
    wsel)`` with v_t as a map of xi and the selector of w_t; return (the y selector, s_T as a map of xi)."""
    m = chain.input_dim
    sizes = [st.num_neurons for st in chain.stages]
    offs = np.concatenate([[m], m + np.cumsum(sizes)]).astype(int)
    dim = int(offs[-1])
    y_sel = np.zeros((m, dim))
    y_sel[:, :m] = np.eye(m)
    s_map = np.zeros((chain.stages[0].state_dim, dim))  # s_t as a map of xi
    for t, st in enumerate(chain.stages):
        vmap = st.P @ s_map + st.Q @ y_sel
        wsel = np.zeros((st.num_neurons, dim))
        wsel[:, offs[t]:offs[t + 1]] = np.eye(st.num_neurons)
        visit(t, st, vmap, wsel)
        s_map = st.R @ wsel + st.S @ s_map + st.T @ y_sel
    return y_sel, s_map


def cvxpy_multipliers(chain: Chain, readout: Array, solver: str = "CLARABEL",
                      **solver_options: Any) -> tuple[list[Array], dict]:
    """Solve the monolithic LipSDP-Neuron LMI (*) with cvxpy: minimise rho over (rho, lambda >= 0).

    xi = (dy, dw_0, ..., dw_{T-1}); s_t = A_t dy + sum_j B_{t,j} dw_j is built exactly. Returns the
    multipliers and the solver evidence (status, solver rho, seconds); CertificateError on a failed solve."""
    import cvxpy as cp
    import scipy.sparse as sp

    sizes = [st.num_neurons for st in chain.stages]
    dim = chain.input_dim + sum(sizes)
    cols = []  # column i: vec of sym(l_i r_i^T), the term of neuron i (affine map lambda -> LMI)

    def visit(t: int, st: Any, vmap: Array, wsel: Array) -> None:
        left = wsel - st.lo[:, None] * vmap
        right = st.hi[:, None] * vmap - wsel
        for li, ri in zip(left, right):
            l_s, r_s = sp.csr_matrix(li), sp.csr_matrix(ri)
            g = (l_s.T @ r_s + r_s.T @ l_s) / 2.0
            cols.append(sp.csr_matrix(g).reshape((dim * dim, 1)))

    y_sel, s_map = _run_monolithic(chain, visit)
    if not cols:  # a linear chain: nothing to solve, rho* is the y-block eigenvalue
        return [np.zeros(0)] * len(sizes), {"solver": solver, "status": "linear chain (no multiplier)",
                                            "lmi_size": dim}
    out = readout @ s_map
    lam_all = cp.Variable(len(cols), nonneg=True)
    rho = cp.Variable()
    terms = sp.hstack(cols).tocsr()
    lin = rho * (y_sel.T @ y_sel) - out.T @ out - cp.reshape(terms @ lam_all, (dim, dim), order="C")
    prob = cp.Problem(cp.Minimize(rho), [lin >> 0])
    start = time.perf_counter()
    try:
        prob.solve(solver=solver, **solver_options)
    except Exception as err:  # cvxpy.SolverError and solver crashes
        raise CertificateError(f"cvxpy/{solver} failed: {type(err).__name__}: {err}") from None
    seconds = time.perf_counter() - start
    if prob.status not in ("optimal", "optimal_inaccurate") or rho.value is None:
        raise CertificateError(f"cvxpy/{solver} returned status {prob.status}")
    lam_val = np.maximum(np.asarray(lam_all.value, dtype=np.float64), 0.0)
    mult = list(np.split(lam_val, np.cumsum(sizes)[:-1]))
    return mult, {"solver": solver, "status": prob.status, "solver_rho": float(rho.value), "seconds": seconds,
                  "lmi_size": dim}


def lmi_min_eigenvalue(chain: Chain, readout: Array, lambdas: list[Array], rho: float) -> float:
    """The smallest eigenvalue of the monolithic LMI matrix of (*) at (rho, Lambda), recomputed from the data
    (>= 0 certifies); for small chains only (it forms the (m + N) x (m + N) matrix)."""
    dim = chain.input_dim + chain.num_neurons
    g = np.zeros((dim, dim))

    def visit(t: int, st: Any, vmap: Array, wsel: Array) -> None:
        if st.num_neurons:
            g[:] += (wsel - st.lo[:, None] * vmap).T @ (lambdas[t][:, None] * (st.hi[:, None] * vmap - wsel))

    y_sel, s_map = _run_monolithic(chain, visit)
    out = readout @ s_map
    g = out.T @ out + g
    lmi = rho * (y_sel.T @ y_sel) - (g + g.T) / 2.0
    return float(np.linalg.eigvalsh(lmi)[0])
