"""Chain-guided search for large attained Jacobian norms: annealed ascent on a smoothed activation pattern.

[derived] For a model written as a ``Chain`` (structure.py: v_t = P s_t + Q y, w_t = phi(v_t),
s_{t+1} = R w_t + S s_t + T y, x_k = C_k s_{t_k}) the Jacobian of y -> x_k is

    J_{t+1}(y) = R D_t(y) (P J_t + Q) + S J_t + T,   J_0 = 0,   J^{(k)}(y) = C_k J_{t_k}(y),

with D_t = diag(phi'(v_t)) the activation pattern (soft thresholding: 1 where |v_i| > theta_i, else 0).
The pattern is piecewise constant in y, so ||J^{(k)}(y)||_2 has zero gradient almost everywhere and plain
ascent on it cannot move. Here D_t is replaced by the smooth pattern

    D_t^tau = lo + (hi - lo) sigmoid((|v_i| - theta_i) / (tau theta_i))      (soft threshold)
    D_t^tau = lo + (hi - lo) sigmoid((v_i + b_i) / (tau s_i))                  (ReLU with bias b,
                                                                                 s_i the batch median |v_i + b_i|)

whose Jacobian norm is differentiable in y through v_t(y). Adam ascends log ||J^{(k), tau}(y) v|| / ||v|| in
y (forward tangents through the chain, O(B N) per stage), with a power step on v after each step, while tau
decreases along ``TAUS`` (D^tau -> D as tau -> 0), each start for its own layer k (``steer``); the starts
are ranked by power iteration on the exact-pattern J^T J (``rank_starts``).

Nothing here is a bound by itself: the smoothed norm only steers the search. Each row's best iterate (by
the exact pattern) is handed to ``visit`` (lower.py), which evaluates the *model's own* exact Jacobian
there, so the values kept are attained. On the trained LISTA of the Lipschitz benchmark (n = 100, K = 16)
this moved the attained constant at layer 16 from 6.29 (random multi-scale starts + finite-difference
ascent) to 7.06 (16 starts per layer, 100 steps per temperature; benchmarks/README.md, docs/lipschitz.md).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from unfoldkit.theory.lipschitz.structure import Chain

Tensor = torch.Tensor
#: smoothing temperatures, relative to each neuron's threshold (or ReLU scale), one ascent phase each
TAUS = (1.0, 0.3, 0.1, 0.03)
#: Adam's step in units of ||y|| spread over the m coordinates, at tau >= 1 (times tau^0.6 below 1)
STEER_LR = 0.3
#: rows x (state + neurons summed over the stages) per pass of ``rank_starts`` (about 16 MiB per stored
#: tensor of the autograd graph; the passes are independent)
RANK_CHUNK_ENTRIES = 1 << 21


class TorchChain:
    """The chain's matrices as float64 tensors (built once per search); R = I, S = 0 and T = 0 are stored as
    None and skipped (LISTA-type stages have all three: the products would be most of the work)."""

    def __init__(self, chain: Chain) -> None:
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
        opt = lambda a: None if a is None else t(a)  # noqa: E731
        self.chain = chain
        self.stages = []
        for s in chain.stages:
            ident = s.R.shape[0] == s.R.shape[1] and np.array_equal(s.R, np.eye(s.R.shape[0]))
            self.stages.append((t(s.P), t(s.Q), None if ident else t(s.R), None if not np.any(s.S) else t(s.S),
                                None if not np.any(s.T) else t(s.T), t(s.lo), t(s.hi), opt(s.theta), opt(s.bias),
                                opt(s.offset)))
        self.readouts = [t(c) for c in chain.readouts]


def _readout_plan(tc: TorchChain, layers: Tensor) -> dict[int, list[tuple[Tensor, Tensor]]]:
    """For each stage t after which some row is read out: [(the rows of layer k, C_k)] per such layer k
    (each readout matrix shared by its rows, never copied per row)."""
    plan: dict[int, list[tuple[Tensor, Tensor]]] = {}
    for k in torch.unique(layers).tolist():
        rows = torch.nonzero(layers == k)[:, 0]
        plan.setdefault(tc.chain.readout_stage[k - 1], []).append((rows, tc.readouts[k - 1]))
    return plan


def smoothed_jvp_norms(tc: TorchChain, y: Tensor, v: Tensor, layers: Tensor, tau: float,
                       plan: dict[int, list[tuple[Tensor, Tensor]]] | None = None) -> Tensor:
    """||C_k J^tau_{t_k}(y_b) v_b||_2 / ||v_b|| for every row b of y, v (B, m), k = layers[b] (1-based): (B,).

    Forward mode by hand: the tangent j_t = J_t v follows j_{t+1} = R D_t^tau (P j_t + Q v) + S j_t + T v,
    O(B N) per stage instead of O(B N m) for the whole Jacobian. tau = 0 gives the exact pattern; tau > 0
    the smooth pattern of the module docstring, differentiable in (y, v)."""
    chain = tc.chain
    b = y.shape[0]
    d0 = chain.stages[0].state_dim if chain.stages else 0
    s = y.new_zeros((b, d0))
    tan = y.new_zeros((b, d0))
    out = y.new_zeros((b, tc.readouts[0].shape[0]))
    plan = _readout_plan(tc, layers) if plan is None else plan
    tiny = torch.finfo(y.dtype).tiny
    yv = torch.cat([y, v])                                                  # state and tangent share P, Q
    for t, (p, q, r, s_mat, t_mat, lo, hi, theta, bias, offset) in enumerate(tc.stages):
        both = torch.cat([s, tan])
        pre_all = both @ p.T + yv @ q.T
        pre, dpre = pre_all[:b], pre_all[b:]
        if theta is not None:
            w = torch.sign(pre) * torch.clamp(pre.abs() - theta, min=0.0)
            margin, scale = pre.abs() - theta, theta.clamp_min(tiny)
        else:
            u = pre + (0.0 if bias is None else bias)
            w = torch.clamp(u, min=0.0)
            margin = u
            scale = u.detach().abs().median(0).values.clamp_min(tiny)
        if tau > 0:
            slope = lo + (hi - lo) * torch.sigmoid(margin / (tau * scale))
        else:
            slope = lo + (hi - lo) * (margin > 0).to(y.dtype)
        nxt = torch.cat([w, slope * dpre])
        if r is not None:
            nxt = nxt @ r.T
        if s_mat is not None:
            nxt = nxt + both @ s_mat.T
        if t_mat is not None:
            nxt = nxt + yv @ t_mat.T
        s, tan = nxt[:b], nxt[b:]
        if offset is not None:
            s = s + offset
        for rows, read in plan.get(t + 1, ()):
            out = out.index_put((rows,), tan[rows] @ read.T)
    return torch.linalg.vector_norm(out, dim=-1) / torch.linalg.vector_norm(v, dim=-1).clamp_min(tiny)


def steer(chain: Chain, starts: Tensor, directions: Tensor, layers: Tensor, steps: int,
          visit: Callable[[Tensor], None], taus: tuple[float, ...] = TAUS) -> int:
    """Ascend the smoothed ||J^tau(y) v|| / ||v|| jointly in (y, v) from ``starts`` and ``directions``
    (B, m), row b for layer ``layers[b]`` (1-based), ``steps`` Adam steps per temperature in ``taus``.

    Each row keeps its best iterate by the exact-pattern value ||J(y) v|| / ||v|| (tau = 0, the chain's
    own Jacobian, cheap; it never decreases); at the end the rows' best iterates go to ``visit``, which
    evaluates the model's own exact Jacobian there. Returns the number of points visited. float64, CPU."""
    tc = TorchChain(chain)
    tiny = torch.finfo(torch.float64).tiny
    y0 = starts.detach().to(device="cpu", dtype=torch.float64)
    m = y0.shape[1]
    r = torch.linalg.vector_norm(y0, dim=-1, keepdim=True).clamp_min(tiny)
    z = (y0 / r).clone().requires_grad_(True)
    v = directions.detach().to(device="cpu", dtype=torch.float64).clone().requires_grad_(True)
    layers = layers.to("cpu")
    plan = _readout_plan(tc, layers)
    best_y = y0.clone()
    with torch.no_grad():
        best_val = smoothed_jvp_norms(tc, y0, v, layers, 0.0, plan)
    for tau in taus:
        opt = torch.optim.Adam([z], lr=STEER_LR * min(1.0, tau) ** 0.6 / np.sqrt(m))
        for _ in range(steps):
            with torch.enable_grad():
                norms = smoothed_jvp_norms(tc, r * z, v, layers, tau, plan)
                loss = -torch.log(norms.clamp_min(tiny)).sum()
                opt.zero_grad()
                v.grad = None
                loss.backward()
            opt.step()
            with torch.no_grad():  # a power step: with ||v|| = 1, v - grad_v = J^T J v / ||J v||^2
                v.copy_(v - v.grad)
                v /= torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(tiny)
                exact = smoothed_jvp_norms(tc, r * z, v, layers, 0.0, plan)
                better = exact > best_val
                best_val = torch.where(better, exact, best_val)
                best_y[better] = (r * z)[better]
    visit(best_y.clone())
    return best_y.shape[0]


def rank_starts(chain: Chain, pool: Tensor, per_layer: int, iters: int = 10,
                seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Each layer's ``per_layer`` best points of ``pool`` (P, m) by ||J_k(y)|| estimated with ``iters`` power
    iterations on the chain's exact-pattern J_k^T J_k (forward tangent, reverse for the transpose): cheap
    next to the model's exact Jacobian (m forward columns per point), and only a ranking.

    Returns (starts, directions, layers), K * per_layer rows, layer-major; directions are the power
    iterates (approximate top right-singular vectors). float64, CPU."""
    tc = TorchChain(chain)
    tiny = torch.finfo(torch.float64).tiny
    pool = pool.detach().to(device="cpu", dtype=torch.float64)
    n_pool, m = pool.shape
    k_layers = chain.num_layers
    layers = torch.arange(1, k_layers + 1).repeat_interleave(n_pool)
    y = pool.repeat(k_layers, 1)
    gen = torch.Generator().manual_seed(seed)
    v0 = torch.randn(y.shape, dtype=torch.float64, generator=gen)
    width = max(sum(st.state_dim + st.num_neurons for st in chain.stages), 1)
    chunk = max(1, RANK_CHUNK_ENTRIES // width)       # rows per pass: bounds the autograd graph's memory
    est, vs = [], []
    for rows in torch.split(torch.arange(y.shape[0]), chunk):
        yc, lc, v = y[rows], layers[rows], v0[rows]
        plan = _readout_plan(tc, lc)
        for _ in range(iters):
            v = (v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(tiny)).requires_grad_(True)
            with torch.enable_grad():
                norms = smoothed_jvp_norms(tc, yc, v, lc, 0.0, plan)
                (grad,) = torch.autograd.grad((norms ** 2).sum() / 2.0, v)
            # with ||v|| = 1: grad of ||J v||^2 / (2 ||v||^2) is J^T J v - ||J v||^2 v, so this is J^T J v
            v = grad.detach() + v.detach() * norms.detach()[:, None] ** 2
        v = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(tiny)
        with torch.no_grad():
            est.append(smoothed_jvp_norms(tc, yc, v, lc, 0.0, plan))
        vs.append(v)
    est_all = torch.cat(est).reshape(k_layers, n_pool)
    v = torch.cat(vs)
    top = est_all.topk(min(per_layer, n_pool), dim=1).indices                   # (K, S)
    rows = (torch.arange(k_layers)[:, None] * n_pool + top).reshape(-1)
    return y[rows], v[rows], layers[rows]
