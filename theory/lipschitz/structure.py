"""The unfolded model as a chain of slope-restricted stages, the form every Lipschitz method works on.

A chain with input y in R^m and state s_t (s_0 = 0, as x^0 = 0 in every model) is

    v_t     = P_t s_t + Q_t y                    (pre-activations: the N_t neurons of stage t)
    w_t     = phi_t(v_t)                         (elementwise; neuron i slope-restricted in [lo_i, hi_i])
    s_{t+1} = R_t w_t + S_t s_t + T_t y          (linear: skips, momentum, copies)

and model layer k reads its iterate as x_k = C_k s_{t_k}. "Slope-restricted in [lo, hi]" means
lo <= (phi(a) - phi(b)) / (a - b) <= hi for all a != b (Fazlyab et al. 2019, LipSDP, Sec. 2). Soft
thresholding eta_theta (theta > 0), its complement v - eta_theta(v) = clip(v, -theta, theta) and ReLU are
slope-restricted in [0, 1]; eta_0 is the identity: a neuron with lo = hi is linear and is folded into the
linear part (``Stage.folded``), so that a network whose thresholds are all 0 is exactly a linear map.
The input y feeds every stage (Q_t, T_t): the skip connection of LISTA-type layers.

``chain_of(model)`` builds the chain of every unfolded model of ``unrolled.models`` (float64, on CPU):

| family | state s | stage of layer k |
| --- | --- | --- |
| lista, lista-cp, alista, ista-learned-step, ista-weighted-l1 (ista) | x | v = W2 x + W1 y, x+ = eta(v) |
| fista-unfolded, ista-weighted-l1 (fista) | (x, x_prev) | v = W2((1+b)x - b x_prev) + g A^T y |
| admm-unfolded | (z, u) | v = rho M z + (I - rho M) u + M A^T y, z+ = eta(v), u+ = v - z+ |
| gd-unfolded | x | no neuron: x+ = (I - g A^T A) x + g A^T y |
| ista-correction | (x, z_prev) | two stages: z = eta(v); then the correction's ReLU layer |

Support selection (lista-cpss, alista with p > 0 or support counts) and negative thresholds make a layer
discontinuous: ``chain_of`` raises ``NoFiniteConstant`` with the reason (no finite global constant).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from unfoldkit.unrolled.models import (
    AdmmUnfolded,
    Alista,
    FistaUnfolded,
    GdUnfolded,
    IstaCorrection,
    IstaLearnedStep,
    IstaWeightedL1,
    Lista,
    ListaCP,
    ListaCPSS,
    UnfoldedModel,
)
from unfoldkit.unrolled.problems.linear import LinearInverseProblem
from unfoldkit.unrolled.problems.sparse import SparseRecovery

Array = np.ndarray


class NoFiniteConstant(ValueError):
    """The model has no finite global Lipschitz constant in y (a discontinuous layer); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotCovered(ValueError):
    """The model's structure is not one ``chain_of`` can write as a chain (e.g. a non-linear gradient)."""


@dataclass
class Stage:
    """One stage v = P s + Q y, w = phi(v), s+ = R w + S s + T y, neuron slopes in [lo, hi] (float64)."""

    P: Array  # (N, d)
    Q: Array  # (N, m)
    R: Array  # (d+, N)
    S: Array  # (d+, d)
    T: Array  # (d+, m)
    lo: Array  # (N,)
    hi: Array  # (N,)
    #: forward evaluation only (not used by the bounds): per-neuron soft threshold (phi = eta_theta), or,
    #: when None, phi(v) = relu(v + bias); ``offset`` is added to s+ (an output bias)
    theta: Array | None = None
    bias: Array | None = None
    offset: Array | None = None

    def __post_init__(self) -> None:
        n, d = self.P.shape
        dp = self.R.shape[0]
        m = self.Q.shape[1]
        shapes = {"Q": (n, m), "R": (dp, n), "S": (dp, d), "T": (dp, m), "lo": (n,), "hi": (n,)}
        for name, want in shapes.items():
            got = getattr(self, name).shape
            if got != want:
                raise ValueError(f"Stage: {name} has shape {got}, expected {want}")
        if np.any(self.lo > self.hi):
            raise ValueError("Stage: a neuron has lo > hi")

    @property
    def num_neurons(self) -> int:
        return self.P.shape[0]

    @property
    def state_dim(self) -> int:
        return self.P.shape[1]

    @property
    def next_dim(self) -> int:
        return self.R.shape[0]

    def folded(self) -> "Stage":
        """The same map with every linear neuron (lo == hi = c: w = c v) moved into S and T."""
        lin = self.lo == self.hi
        if not np.any(lin):
            return self
        c = self.lo[lin]
        rl = self.R[:, lin] * c
        keep = ~lin
        sub = (lambda a: None if a is None else a[keep])  # noqa: E731
        return Stage(self.P[keep], self.Q[keep], self.R[:, keep], self.S + rl @ self.P[lin],
                     self.T + rl @ self.Q[lin], self.lo[keep], self.hi[keep], sub(self.theta),
                     sub(self.bias), self.offset)

    def phi(self, v: Array) -> Array:
        """The stage's activation on pre-activations v (B, N) (soft threshold or ReLU with bias)."""
        if self.theta is not None:
            return np.sign(v) * np.maximum(np.abs(v) - self.theta, 0.0)
        return np.maximum(v + (0.0 if self.bias is None else self.bias), 0.0)


@dataclass
class Chain:
    """Stages and, for each model layer k = 1..K, the stage count t_k after which x_k = C_k s_{t_k}."""

    stages: list[Stage]
    readout_stage: list[int]  # t_k, one per layer
    readouts: list[Array]  # C_k, (n, d_{t_k})
    input_dim: int
    family: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def num_layers(self) -> int:
        return len(self.readouts)

    @property
    def num_neurons(self) -> int:
        return sum(s.num_neurons for s in self.stages)

    def truncated(self, k: int) -> "Chain":
        """The chain up to layer k (1-based), its output being x_k."""
        t = self.readout_stage[k - 1]
        return Chain(self.stages[:t], self.readout_stage[:k], self.readouts[:k], self.input_dim, self.family)


def _np(t: torch.Tensor) -> Array:
    return t.detach().to("cpu", torch.float64).numpy().copy()


def _thresholds(family: str, theta: Array, n: int) -> tuple[Array, Array]:
    """Slopes of eta_theta per coordinate: [0, 1] where theta > 0, [1, 1] (identity) where theta = 0."""
    theta = np.broadcast_to(np.asarray(theta, dtype=np.float64), (n,))
    if np.any(theta < 0) or not np.all(np.isfinite(theta)):
        raise NoFiniteConstant(f"{family}: a negative (or non-finite) soft threshold ({theta.min():.3g}) makes "
                               "eta_theta jump by 2|theta| at 0: the layer is discontinuous")
    lin = theta == 0
    return np.where(lin, 1.0, 0.0), np.ones(n)


def _soft_stage(w1: Array, w2: Array, theta: Array, family: str) -> Stage:
    n, m = w1.shape
    lo, hi = _thresholds(family, theta, n)
    return Stage(w2, w1, np.eye(n), np.zeros((n, n)), np.zeros((n, m)), lo, hi,
                 theta=np.broadcast_to(theta, (n,)).astype(np.float64)).folded()


def _check_support_selection(model: UnfoldedModel) -> None:
    if isinstance(model, Alista) and model.support_counts is not None and np.any(model.support_counts > 0):
        raise NoFiniteConstant("alista with count-based support selection: the top-count entries bypass the "
                               "threshold, so an entry entering the selected set jumps by theta (discontinuous)")
    percents = getattr(model, "percents", None)
    if isinstance(model, (ListaCPSS, Alista)) and percents is not None and np.any(np.asarray(percents) > 0):
        raise NoFiniteConstant(f"{model.family} with support selection (p up to {np.max(percents):g} %): an "
                               "entry entering the selected set jumps by theta^k, so the layer is discontinuous "
                               "(Chen et al. 2018, eta^ss); only a local estimate exists")


def _linear_problem(model: UnfoldedModel) -> LinearInverseProblem:
    p = model.problem
    if not isinstance(p, LinearInverseProblem):
        raise NotCovered(f"{model.family} on {type(p).__name__}: the Lipschitz chain needs a linear inverse "
                         "problem (gradient A^T (A x - y), prox soft thresholding or identity)")
    return p


def _lam(problem: LinearInverseProblem) -> float:
    return float(problem.lam) if isinstance(problem, SparseRecovery) else 0.0


def _one_stage_per_layer(stages: list[Stage], readout: Array, m: int, family: str) -> Chain:
    """A chain whose layer k is stage k, every layer read out by the same matrix."""
    return Chain(stages, list(range(1, len(stages) + 1)), [readout] * len(stages), m, family)


def _layered_chain(model: UnfoldedModel, layers: list[tuple[Array, Array, Array]]) -> Chain:
    stages = [_soft_stage(w1, w2, th, model.family) for w1, w2, th in layers]
    n, m = layers[0][0].shape
    return _one_stage_per_layer(stages, np.eye(n), m, model.family)


def _fista_chain(model: UnfoldedModel, steps: Array, betas: Array, theta: Array) -> Chain:
    p = _linear_problem(model)
    a = p.A
    n, m = p.n, p.m
    stages = []
    for k, (g, b) in enumerate(zip(steps, betas)):
        w2 = np.eye(n) - g * a.T @ a
        lo, hi = _thresholds(model.family, theta[k], n)
        zero = np.zeros((n, n))
        stages.append(Stage(np.hstack([(1 + b) * w2, -b * w2]), g * a.T, np.vstack([np.eye(n), zero]),
                            np.block([[zero, zero], [np.eye(n), zero]]), np.zeros((2 * n, m)), lo, hi,
                            theta=np.broadcast_to(theta[k], (n,)).astype(np.float64)).folded())
    return _one_stage_per_layer(stages, np.hstack([np.eye(n), np.zeros((n, n))]), m, model.family)


def _admm_chain(model: AdmmUnfolded) -> Chain:
    p = _linear_problem(model)
    a = p.A
    n, m = p.n, p.m
    gram = a.T @ a
    rhos = _np(model.rho())
    theta = _np(model.threshold)
    stages = []
    for rho, th in zip(rhos, theta):
        mk = np.linalg.inv(gram + rho * np.eye(n))
        pk = np.hstack([rho * mk, np.eye(n) - rho * mk])
        qk = mk @ a.T
        lo, hi = _thresholds(model.family, th, n)
        stages.append(Stage(pk, qk, np.vstack([np.eye(n), -np.eye(n)]), np.vstack([np.zeros((n, 2 * n)), pk]),
                            np.vstack([np.zeros((n, m)), qk]), lo, hi, theta=np.full(n, th)).folded())
    return _one_stage_per_layer(stages, np.hstack([np.eye(n), np.zeros((n, n))]), m, model.family)


def _gd_chain(model: GdUnfolded) -> Chain:
    p = _linear_problem(model)
    a = p.A
    n, m = p.n, p.m
    stages = [Stage(np.zeros((0, n)), np.zeros((0, m)), np.zeros((n, 0)), np.eye(n) - g * a.T @ a, g * a.T,
                    np.zeros(0), np.zeros(0)) for g in _np(model.step)]
    return _one_stage_per_layer(stages, np.eye(n), m, model.family)


def _correction_chain(model: IstaCorrection) -> Chain:
    """State (x, z_prev). Stage A: v = W2 x + g A^T y, z = eta(v); state (z, z_prev, v). Stage B: the
    correction's hidden ReLU neurons on (z, z_prev, v); x+ = z + linear branch + W_out relu(.), z_prev+ = z."""
    p = _linear_problem(model)
    a = p.A
    n, m = p.n, p.m
    lam = _lam(p)
    eye, zero = np.eye(n), np.zeros((n, n))
    stages = []
    for k, g in enumerate(model._steps):
        w2 = eye - g * a.T @ a
        lo, hi = _thresholds(model.family, lam * g, n)
        # stage A: state (x, zp) -> (z, zp, v)
        stages.append(Stage(np.hstack([w2, zero]), g * a.T, np.vstack([eye, zero, zero]),
                            np.block([[zero, zero], [zero, eye], [w2, zero]]),
                            np.vstack([np.zeros((2 * n, m)), g * a.T]), lo, hi,
                            theta=np.full(n, lam * g)).folded())
        net = model.corrections[k]
        if model.correction == "coordinate":
            w_in = _np(net.first.weight)  # (h, 3) on (z_i, zp_i, v_i)
            w_out = _np(net.last.weight)  # (1, h)
            lin = _np(net.linear.weight)[0]  # (3,)
            # features of coordinate i are (z_i, zp_i, v_i): state (z, zp, v) -> neuron (i, j)
            p_b = np.hstack([np.kron(eye, w_in[:, [f]]) for f in range(3)])  # (n h, 3 n)
            r_x = np.kron(eye, w_out)  # (n, n h)
            s_x = np.hstack([(1 + lin[0]) * eye, lin[1] * eye, lin[2] * eye])
            bias = np.tile(_np(net.first.bias), n)
            offset = np.concatenate([np.full(n, float(_np(net.last.bias)[0])), np.zeros(n)])
        else:
            w_in, w_out = _np(net.first.weight), _np(net.last.weight)  # (h, n), (n, h)
            p_b = np.hstack([w_in, np.zeros((w_in.shape[0], 2 * n))])
            r_x = w_out
            s_x = np.hstack([eye, zero, zero])
            bias = _np(net.first.bias)
            offset = np.concatenate([_np(net.last.bias), np.zeros(n)])
        nb = p_b.shape[0]
        stages.append(Stage(p_b, np.zeros((nb, m)), np.vstack([r_x, np.zeros((n, nb))]),
                            np.vstack([s_x, np.hstack([eye, zero, zero])]), np.zeros((2 * n, m)),
                            np.zeros(nb), np.ones(nb), bias=bias, offset=offset))
    c = np.hstack([eye, zero])
    return Chain(stages, list(range(2, len(stages) + 1, 2)), [c] * model.num_layers, m, model.family,
                 ["ista-correction: two stages per layer (soft threshold, then the correction's ReLU layer)"])


def chain_of(model: UnfoldedModel) -> Chain:
    """The model (in float64, on CPU) as a ``Chain``; ``NoFiniteConstant`` for a discontinuous model and
    ``NotCovered`` for a structure the chain cannot express (both with a one-line reason)."""
    if not isinstance(model, UnfoldedModel):
        raise NotCovered(f"chain_of needs an unfoldkit UnfoldedModel, got {type(model).__name__}")
    _check_support_selection(model)
    fam = model.family
    with torch.no_grad():
        if isinstance(model, (Lista, ListaCP, Alista)):  # ListaCPSS and Alista with p = 0 included
            layers = []
            for k in range(model.num_layers):
                w1, w2 = model.layer_weights(k)
                layers.append((_np(w1), _np(w2), _np(model.threshold[k])))
            return _layered_chain(model, layers)
        if isinstance(model, IstaLearnedStep):
            p = _linear_problem(model)
            steps, theta = _np(model.step), _np(model.thresholds())
            return _layered_chain(model, [(g * p.A.T, np.eye(p.n) - g * p.A.T @ p.A, th)
                                          for g, th in zip(steps, theta)])
        if isinstance(model, IstaWeightedL1):
            p = _linear_problem(model)
            g = model.gamma
            theta = g * model.weights()
            k = model.num_layers
            if model.solver == "fista":
                return _fista_chain(model, np.full(k, g), model._betas[:k], [theta] * k)
            return _layered_chain(model, [(g * p.A.T, np.eye(p.n) - g * p.A.T @ p.A, theta)] * k)
        if isinstance(model, FistaUnfolded):
            p = _linear_problem(model)
            sched = model.schedule()
            theta = _lam(p) * sched["step"]
            return _fista_chain(model, sched["step"], sched["momentum"], theta)
        if isinstance(model, AdmmUnfolded):
            return _admm_chain(model)
        if isinstance(model, GdUnfolded):
            return _gd_chain(model)
        if isinstance(model, IstaCorrection):
            return _correction_chain(model)
    raise NotCovered(f"{fam}: no Lipschitz chain for this family")


def chain_map(chain: Chain, y: Array) -> list[Array]:
    """Evaluate the chain on inputs y (B, m) with its own activations: x_k for every layer (a check that the
    chain is the model: tests compare it with ``model(y, trajectory=True)``)."""
    s = np.zeros((y.shape[0], chain.stages[0].state_dim if chain.stages else 0))
    outs, t_out = [], dict(zip(chain.readout_stage, chain.readouts))
    for t, st in enumerate(chain.stages):
        w = st.phi(s @ st.P.T + y @ st.Q.T)
        s = w @ st.R.T + s @ st.S.T + y @ st.T.T + (0.0 if st.offset is None else st.offset)
        if t + 1 in t_out:
            outs.append(s @ t_out[t + 1].T)
    return outs
