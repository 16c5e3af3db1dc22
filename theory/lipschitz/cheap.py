"""Cheap certified upper bounds on the l2 Lipschitz constant of y -> x_k, for every layer, on a ``Chain``.

All three are compositional and valid for any slope-restricted activations (``structure.py``); they differ
in how much of the linear structure they keep:

- ``naive_bound``: the product/recursion of operator norms. For a stage v = P s + Q y, w = phi(v),
  s+ = R w + S s + T y with |slopes| <= h: Lip(s+) <= ||R|| h (||P|| Lip(s) + ||Q||) + ||S|| Lip(s) + ||T||.
  For LISTA this is Lip_{k+1} <= ||W2^k|| Lip_k + ||W1^k|| (digest 4.2; soft thresholding is 1-Lipschitz).
- ``liplt_bound``: the loop transformation of LipLT (Fazlyab, Entesari, Roy & Chellappa, NeurIPS 2023,
  arXiv 2310.00116): phi(v) = c v + psi(v) with c = (lo + hi)/2 and psi slope-restricted in [-r, r],
  r = (hi - lo)/2. Unrolled, s_t = A_t y + sum_{j<t} B_{t,j} psi(v_j) with A_t, B_{t,j} *exact* linear
  maps (skips, momentum and the c-part kept exactly), so with u_j = r (.) v_j (||psi(v_j)|| increments
  <= ||u_j|| increments):  Lip(u_t) <= ||r (P A_t + Q)|| + sum_{j<t} ||r P B_{t,j}|| Lip(u_j), and
  Lip(x_k) <= ||C A_t|| + sum_j ||C B_{t,j}|| Lip(u_j). Exact for a linear chain (r = 0).
- ``eclipse_fast_bound``: ECLipsE-Fast (Xu & Sivaranjani, NeurIPS 2024, arXiv 2404.04375; the closed form
  of the authors' package ``eclipse-nn``, ``ECLipsE_Fast``): for a feed-forward net z_{i+1} = phi(W_i z_i)
  with slopes in [0, 1], X_0 = I, l_i = 2 / lambda_max(W_i X_{i-1}^{-1} W_i^T),
  X_i = l_i I - (l_i^2 / 4) W_i X_{i-1}^{-1} W_i^T, Lip^2 <= lambda_max(W_out^T W_out X^{-1}). Each stage
  is the LipSDP-Neuron condition with Lambda_i = (l_i / 2) I eliminated by a Schur complement, so that
  ||dz_0||^2 >= dz_i^T X_i dz_i along the net. It does not apply natively to our skip structure: we apply
  it to the chain's feed-forward form z_t = (y, s_t), whose copies of y and of s are identity neurons
  relaxed to slope [0, 1] (valid: the identity is slope-restricted in [0, 1]; looser than the chain).

Operator norms are exact (LAPACK SVD in float64) times (1 + ``NORM_MARGIN``) for round-off.
"""
from __future__ import annotations

import numpy as np

from unfoldkit.theory.lipschitz.structure import Chain

Array = np.ndarray
#: relative margin on every computed spectral norm / eigenvalue (float64 SVD is backward stable to ~1e-15)
NORM_MARGIN = 1e-12


def spectral_norm(a: Array) -> float:
    """||a||_2 (largest singular value, LAPACK) times (1 + NORM_MARGIN); 0 for an empty matrix."""
    if a.size == 0:
        return 0.0
    return float(np.linalg.norm(a, 2)) * (1.0 + NORM_MARGIN)


def naive_bound(chain: Chain) -> Array:
    """Per-layer product/recursion bound (module docstring), shape (K,)."""
    lip_s, per_stage = 0.0, []
    for st in chain.stages:
        h = float(np.max(np.abs(np.concatenate([st.lo, st.hi])))) if st.num_neurons else 0.0
        lip_v = spectral_norm(st.P) * lip_s + spectral_norm(st.Q)
        lip_s = spectral_norm(st.R) * h * lip_v + spectral_norm(st.S) * lip_s + spectral_norm(st.T)
        per_stage.append(lip_s)
    return np.array([spectral_norm(c) * per_stage[t - 1] for t, c in zip(chain.readout_stage, chain.readouts)])


def liplt_bound(chain: Chain) -> Array:
    """Per-layer LipLT bound (loop transformation, exact linear paths; module docstring), shape (K,)."""
    m = chain.input_dim
    d0 = chain.stages[0].state_dim if chain.stages else 0
    a_t = np.zeros((d0, m))
    b_t: list[Array] = []  # B_{t,j}, j < t
    lip_u: list[float] = []
    out = {}
    readout = dict(zip(chain.readout_stage, chain.readouts))
    for t, st in enumerate(chain.stages):
        c = (st.lo + st.hi) / 2.0
        r = (st.hi - st.lo) / 2.0
        pa = st.P @ a_t + st.Q
        pb = [st.P @ b for b in b_t]
        lip_u.append(spectral_norm(r[:, None] * pa) + sum(spectral_norm(r[:, None] * x) * lu
                                                         for x, lu in zip(pb, lip_u)))
        rc = st.R * c
        a_t = rc @ pa + st.S @ a_t + st.T
        b_t = [rc @ x + st.S @ b for x, b in zip(pb, b_t)] + [st.R.copy()]
        if t + 1 in readout:
            cm = readout[t + 1]
            out[t + 1] = spectral_norm(cm @ a_t) + sum(spectral_norm(cm @ b) * lu for b, lu in zip(b_t, lip_u))
    return np.array([out[t] for t in chain.readout_stage])


def feedforward_form(chain: Chain) -> tuple[list[Array], list[tuple[int, Array]]]:
    """The chain as a feed-forward net z_{t+1} = phi(W_t z_t), z_0 = y, hidden layer t = (y, s_t?, w_t)
    (the copy of s_t only where S_t != 0), with identity copies relaxed to slope [0, 1]; and, per model
    layer, (index of the hidden layer it reads, readout matrix on that layer).

    Returns (weights W_0..W_{T-1}, readouts). Layer t's input z is (y, s_t) written through the previous
    layer's outputs: the linear map s+ = R w + S s + T y is folded into the next weight.
    """
    m = chain.input_dim
    weights, hidden_to_state = [], None  # hidden_to_state: z_t (hidden of stage t-1) -> (y, s_t)
    readouts = []
    readout = dict(zip(chain.readout_stage, chain.readouts))
    for t, st in enumerate(chain.stages):
        d, n = st.state_dim, st.num_neurons
        keep_s = bool(np.any(st.S))
        # hidden of this stage: (y, [s], w) as a function of (y, s)
        rows = [np.hstack([np.eye(m), np.zeros((m, d))])]
        if keep_s:
            rows.append(np.hstack([np.zeros((d, m)), np.eye(d)]))
        rows.append(np.hstack([st.Q, st.P]))
        w_ys = np.vstack(rows)
        weights.append(w_ys[:, :m] if hidden_to_state is None else w_ys @ hidden_to_state)
        # (y, s_{t+1}) from the hidden (y, [s], w)
        to_next = [np.eye(m)]
        if keep_s:
            to_next.append(np.zeros((m, d)))
        to_next.append(np.zeros((m, n)))
        sy = [st.T] + ([st.S] if keep_s else []) + [st.R]
        hidden_to_state = np.vstack([np.hstack(to_next), np.hstack(sy)])
        if t + 1 in readout:
            readouts.append((t, readout[t + 1] @ hidden_to_state[m:]))
    return weights, readouts


def eclipse_fast(chain: Chain) -> tuple[Array, Array]:
    """ECLipsE-Fast on the chain's feed-forward form: (per-layer bounds (K,), per-stage l_t (T,)).

    The LipSDP-Neuron multipliers of stage t are Lambda_t = (l_t / 2) I at the normalisation ||dy||^2, so
    rho_k l_t on the chain's neurons (our lambda = 2 Lambda) is a feasible multiplier set for layer k's certificate
    (``certificate.py``): the copies' constraint terms vanish on real increments."""
    weights, readouts = feedforward_form(chain)
    xs, ls = [], []
    x_inv = np.eye(chain.input_dim)
    for w in weights:
        mat = w @ x_inv @ w.T
        mat = (mat + mat.T) / 2.0
        lmax = float(np.linalg.eigvalsh(mat)[-1]) * (1.0 + NORM_MARGIN)
        l_i = 2.0 / lmax
        x = l_i * np.eye(w.shape[0]) - (l_i ** 2 / 4.0) * mat
        x_inv = np.linalg.inv(x)
        x_inv = (x_inv + x_inv.T) / 2.0
        xs.append(x_inv)
        ls.append(l_i)
    out = []
    for t, c in readouts:
        g = c @ xs[t] @ c.T
        out.append(np.sqrt(max(float(np.linalg.eigvalsh((g + g.T) / 2.0)[-1]), 0.0) * (1.0 + NORM_MARGIN)))
    return np.array(out), np.array(ls)


def eclipse_fast_bound(chain: Chain) -> Array:
    """Per-layer ECLipsE-Fast bound on the chain's feed-forward form (module docstring), shape (K,)."""
    return eclipse_fast(chain)[0]
