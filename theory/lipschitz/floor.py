"""The neuron-wise floor: how far down any certificate that treats each neuron on its own could go.

[derived] Fix slopes d_i in [lo_i, hi_i], one per neuron of the chain (structure.py), and replace every
activation by the linear map phi_i(v) = d_i v. That network is itself slope-restricted in [lo_i, hi_i]
neuron by neuron, so every bound valid for *all* such networks (the naive recursion, LipLT, ECLipsE-Fast,
LipSDP-Neuron at any multipliers, its optimum included) is at least its Lipschitz constant,

    ||J^{(k)}(d)||_2,   J_{t+1} = R diag(d_t) (P J_t + Q) + S J_t + T,   J^{(k)} = C_k J_{t_k}.

(For LipSDP directly: the increments dw_i = d_i dv_i make every multiplier term d_i (1 - d_i) dv_i^2 >= 0
in (*), so rho >= ||J(d)||^2.) The largest value found over d is therefore a floor under every neuron-wise
certificate: when it sits above the attained lower bound, part of the gap is out of reach of any such
certificate unless inputs realise those slope patterns (the true constant is the largest ||J(d)|| over the
patterns that inputs do realise). It is neither an upper nor a lower bound on the constant itself.

Search: Adam on d = lo + (hi - lo) sigmoid(z) from ``starts`` random z, then each start's 0/1 rounding
(||J(d)|| is convex in each d_i, so vertices are as good as any point), then one-neuron flips of the best
vertex while they increase the value. Every value kept is ||J(d)|| recomputed at an explicit d.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unfoldkit.theory.lipschitz.steer import TorchChain
from unfoldkit.theory.lipschitz.structure import Chain
from unfoldkit.unrolled.validation import nonnegative_int, positive_int

Tensor = torch.Tensor


@dataclass
class NeuronwiseFloor:
    """max ||J^{(k)}(d)||_2 found over per-neuron slopes d (float64), with the slopes that attain it."""

    value: float
    slopes: list[np.ndarray]   # d_t per stage up to layer k's readout
    relaxed: float             # best value before rounding and flips (a valid floor as well)
    flips: int                 # accepted one-neuron flips


def pattern_norm(tc: TorchChain, layer: int, slopes: list[Tensor]) -> Tensor:
    """||C_k J_{t_k}(d)||_2 for slopes d_t of shape (B, N_t) per stage (a batch of B patterns): shape (B,)."""
    t_k = tc.chain.readout_stage[layer - 1]
    b = slopes[0].shape[0] if slopes else 1
    m = tc.chain.input_dim
    d0 = tc.chain.stages[0].state_dim if tc.chain.stages else 0
    jac = torch.zeros((b, d0, m), dtype=torch.float64)
    for (p, q, r, s_mat, t_mat, *_), d in zip(tc.stages[:t_k], slopes):
        nxt = d[..., None] * (p @ jac + q)
        if r is not None:
            nxt = r @ nxt
        if s_mat is not None:
            nxt = nxt + s_mat @ jac
        if t_mat is not None:
            nxt = nxt + t_mat
        jac = nxt
    return torch.linalg.matrix_norm(tc.readouts[layer - 1] @ jac, ord=2)


def neuronwise_floor(chain: Chain, layer: int, *, starts: int = 8, steps: int = 300, flip_rounds: int = 3,
                     seed: int = 0) -> NeuronwiseFloor:
    """The neuron-wise floor of layer ``layer`` (1-based; module docstring): Adam (``steps``) from ``starts``
    random slope patterns, rounding, then up to ``flip_rounds`` passes of accepted one-neuron flips."""
    layer = positive_int("layer", layer)
    if layer > chain.num_layers:
        raise ValueError(f"layer = {layer} but the chain has {chain.num_layers} layer(s)")
    starts, steps = positive_int("starts", starts), nonnegative_int("steps", steps)
    flip_rounds = nonnegative_int("flip_rounds", flip_rounds)
    tc = TorchChain(chain)
    stages = tc.stages[:chain.readout_stage[layer - 1]]
    gen = torch.Generator().manual_seed(seed)
    z = [torch.randn((starts, st[0].shape[0]), dtype=torch.float64, generator=gen).requires_grad_(True)
         for st in stages]
    lo = [st[5] for st in stages]
    hi = [st[6] for st in stages]
    opt = torch.optim.Adam(z, lr=0.1)
    for _ in range(steps):
        with torch.enable_grad():
            value = pattern_norm(tc, layer, [a + (b - a) * torch.sigmoid(3.0 * x) for a, b, x in zip(lo, hi, z)])
            opt.zero_grad()
            (-value.sum()).backward()
        opt.step()
    with torch.no_grad():
        soft = [a + (b - a) * torch.sigmoid(3.0 * x) for a, b, x in zip(lo, hi, z)]
        relaxed = float(pattern_norm(tc, layer, soft).max())
        vertex = [torch.where(x > 0, b, a).expand_as(x).clone() for a, b, x in zip(lo, hi, z)]
        values = pattern_norm(tc, layer, vertex)
        i = int(values.argmax())
        best = [v[i:i + 1].clone() for v in vertex]
        val = float(values[i])
        flips = 0
        for _ in range(flip_rounds):
            changed = False
            for t, (a, b) in enumerate(zip(lo, hi)):
                for j in range(best[t].shape[1]):
                    if a[j] == b[j]:
                        continue
                    old = best[t][0, j].clone()
                    best[t][0, j] = b[j] if old == a[j] else a[j]
                    new = float(pattern_norm(tc, layer, best)[0])
                    if new > val * (1.0 + 1e-12):
                        val, changed, flips = new, True, flips + 1
                    else:
                        best[t][0, j] = old
            if not changed:
                break
    if relaxed > val:  # the relaxed point is a valid pattern too; report the better of the two
        val, best = relaxed, [s[int(pattern_norm(tc, layer, soft).argmax())][None] for s in soft]
    return NeuronwiseFloor(val, [d[0].numpy().copy() for d in best], relaxed, flips)
