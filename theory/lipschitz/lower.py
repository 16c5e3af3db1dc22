"""Attained lower bounds on the l2 -> l2 Lipschitz constant of y -> x_k, for every layer k.

The lower side of the upper/lower sandwich of issue 12: the certified upper bounds of this package are
checked against values that some input actually attains. For f_k: y -> x_k (R^m -> R^n), Lipschitz:

    Lip(f_k) >= ||J_k(y)||_2 at every y where f_k is differentiable (almost every y, Rademacher's theorem),
    Lip(f_k) >= ||f_k(y) - f_k(y')|| / ||y - y'|| for every pair y != y'.

Both are attained values, so the true constant lies above the best of them. The unfolded models are
piecewise linear (soft thresholding), so J_k is piecewise constant and ||J_k(y)|| has no useful gradient in y.
The search therefore (1) evaluates ||J_k|| at multi-scale random points y = s * u (||u|| = 1, s geometric
over the range of the thresholds) and at problem samples, then (2) from each layer's best points runs Adam
on the finite-difference ratio ||f_k(y + d) - f_k(y)|| / ||d|| jointly in (y, d), d starting along the top
right-singular vector of J_k(y), which does have gradients; the Jacobian norm is evaluated at every iterate
y and every pair's ratio is kept, for all layers at once (one forward pass gives every layer's iterate);
(3) for a model that ``chain_of`` writes as a chain, an ascent on a smoothed activation pattern
(steer.py: the 0/1 slopes replaced by sigmoids whose temperature decreases to 0, so ||J_k|| gets a gradient
in y) from starts at the scales where the data lives, the model's exact Jacobian evaluated at each row's
best iterate; (4) close pairs around each layer's best point add finite-difference ratios. ||J_k(y)||_2 is exact up to
round-off ("exact-svd": the m columns by forward-mode AD, the top singular value from the Gram matrix) when
n m <= 10^6, else power iteration on J^T J by jvp/vjp, whose ||J v|| (||v|| = 1) is attained as well.
A discontinuous map (support selection) has no finite constant; the values stay valid lower bounds.
"""
from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD

from unfoldkit.theory.lipschitz.steer import rank_starts, steer
from unfoldkit.theory.lipschitz.structure import Chain, NoFiniteConstant, NotCovered, chain_of
from unfoldkit.unrolled.models.base import UnfoldedModel
from unfoldkit.unrolled.validation import as_generator, finite_array, nonnegative_int, positive_int

Tensor = torch.Tensor
#: exact Jacobian (m forward-mode columns, top singular value) when n * m is at most this, else power iteration
EXACT_MAX_SIZE = 1_000_000
#: ulps of ||f(y)|| + ||f(y')|| taken off a finite difference for round-off (a difference at step 1e-7 was
#: measured 1.4e-9 relative above the exact constant of a linear layer without it)
FD_ROUNDOFF = 1000.0
#: power iterations on J^T J when the Jacobian is too large to form
POWER_ITERS = 100
#: largest number of tensor entries (Jacobians, replicated trajectories) held per chunk
CHUNK_ENTRIES = 1 << 22
#: default scales of the random starts, relative to a typical ||y||
DEFAULT_SCALES = np.geomspace(1e-3, 1e2, 11)
#: Adam's step in units of ||y|| (spread over the m coordinates)
ASCENT_LR = 0.05
#: scales of the steering starts relative to a typical ||y|| (measured on the trained LISTA of the Lipschitz
#: benchmark: 64 starts in 0.1-3 x typical reached 7.0-7.2 at layer 16, 64-256 best-ranked starts of
#: 1e-2..1e2 6.5-6.8 with the same steps: large inputs are nearly all-active, the smoothing flat)
STEER_BAND = (0.1, 3.0)


@dataclass
class LowerBound:
    """Attained lower bounds on Lip(y -> x_k), k = 1..K (index k-1), float64."""

    jacobian: np.ndarray            # (K,) best ||J_k(y)||_2 found
    finite_difference: np.ndarray   # (K,) best ||x_k(y) - x_k(y')|| / ||y - y'|| found
    best: np.ndarray                # (K,) elementwise max of the two
    argmax: np.ndarray              # (K, m) the y attaining `jacobian`
    evaluations: int                # input points at which the map (and its Jacobian) was evaluated
    jacobian_method: str            # "exact-svd" or "power-iteration(<iters>)"
    seconds: float
    pairs: np.ndarray | None = None  # (K, 2, m) the pair (y, y') attaining `finite_difference`
    steered: int = 0                # points visited by the chain-guided smoothed-pattern ascent (steer.py)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy (arrays as lists)."""
        return {"jacobian": self.jacobian.tolist(), "finite_difference": self.finite_difference.tolist(),
                "best": self.best.tolist(), "argmax": self.argmax.tolist(), "evaluations": self.evaluations,
                "jacobian_method": self.jacobian_method, "seconds": self.seconds,
                "pairs": None if self.pairs is None else self.pairs.tolist(), "steered": self.steered}


def _as_map(obj: Any, input_dim: int | None, dtype: torch.dtype,
            device: Any) -> tuple[Callable[[Tensor], Tensor], int, torch.device, Any]:
    """(f: (B, m) -> (K, B, n) checked, m, device, problem or None) for a model or a plain callable."""
    if isinstance(obj, UnfoldedModel):
        m = obj.problem.obs_dim
        if input_dim is not None and input_dim != m:
            raise ValueError(f"input_dim = {input_dim} but the model's problem has obs_dim m = {m}")
        dev = next(obj.parameters(), torch.empty(0, device=device)).device
        model = copy.deepcopy(obj).to(dtype=dtype, device=dev).requires_grad_(False)
        raw: Callable[[Tensor], Tensor] = lambda y: model(y, trajectory=True)[1:]  # noqa: E731
    elif callable(obj):
        if input_dim is None:
            raise ValueError("input_dim is required when model_or_fn is a plain callable")
        m = positive_int("input_dim", input_dim)
        params = obj.parameters() if isinstance(obj, torch.nn.Module) else iter(())
        dev = next(params, torch.empty(0, device=device)).device
        raw = obj
    else:
        raise ValueError(f"model_or_fn must be an UnfoldedModel or a callable, got {type(obj).__name__}")

    def f(y: Tensor) -> Tensor:
        out = raw(y)
        if not isinstance(out, Tensor) or out.ndim not in (2, 3) or out.shape[-2] != y.shape[0]:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"the map must return (K, B, n) or (B, n) for y of shape {tuple(y.shape)}, got {got}")
        if not torch.isfinite(fwAD.unpack_dual(out).primal).all():
            raise ValueError(f"the map returned NaN or inf for y of shape {tuple(y.shape)}")
        return out if out.ndim == 3 else out[None]

    return f, m, dev, getattr(obj, "problem", None)


def _chain(obj: Any) -> Chain | None:
    """The model's chain when it has one with a finite constant (the steering needs it), else None."""
    if not isinstance(obj, UnfoldedModel):
        return None
    try:
        return chain_of(obj)
    except (NoFiniteConstant, NotCovered):
        return None


def _jvp(f: Callable[[Tensor], Tensor], y: Tensor, v: Tensor) -> Tensor:
    """J(y) v row by row (forward mode; reverse-over-reverse where forward AD is missing): (K, B, n)."""
    try:
        with warnings.catch_warnings(), fwAD.dual_level():
            # torch's forward AD scripts its decompositions on first use: a torch-internal deprecation notice
            warnings.filterwarnings("ignore", message=".*torch.jit.script", category=DeprecationWarning)
            tangent = fwAD.unpack_dual(f(fwAD.make_dual(y, v))).tangent
        if tangent is not None:
            return tangent
    except NotImplementedError:
        pass
    with torch.enable_grad():
        yr = y.detach().requires_grad_(True)
        out = f(yr)
        u = torch.zeros_like(out, requires_grad=True)
        (g,) = torch.autograd.grad(out, yr, u, create_graph=True, allow_unused=True)
        if g is None or not g.requires_grad:
            return torch.zeros_like(out)
        return torch.autograd.grad(g, u, v)[0]


def _jacobian_norms(f: Callable[[Tensor], Tensor], y: Tensor, K: int, n: int, exact: bool,
                    rng: np.random.Generator, vectors: bool = True) -> tuple[Tensor, Tensor | None]:
    """(||J_k(y_b)||_2, top right-singular vector) for every layer and row: shapes (K, B) and (K, B, m).

    Exact: J_k from m forward-mode columns, ||J_k||_2^2 the top eigenvalue of the Gram matrix (symmetric
    eigensolver, relative round-off ~1e-16); the vectors only when asked. Otherwise power iteration."""
    B, m = y.shape
    sig, vec = [], []
    per = K * n * (m if exact else K)
    for c in torch.split(y, max(1, CHUNK_ENTRIES // per)):
        b = c.shape[0]
        if exact:  # column j of J_k(c_i) is the tangent of x_k along e_j: replicate each row m times
            eye = torch.eye(m, dtype=y.dtype, device=y.device)
            jac = _jvp(f, c.repeat_interleave(m, 0), eye.repeat(b, 1)).reshape(K, b, m, n).transpose(-1, -2)
            gram = jac.mT @ jac if m <= n else jac @ jac.mT                       # top eigenvalue = ||J||^2
            if not vectors:
                sig.append(torch.linalg.eigvalsh(gram)[..., -1].clamp_min(0).sqrt())
                continue
            e, q = torch.linalg.eigh(gram)
            sig.append(e[..., -1].clamp_min(0).sqrt())
            v = q[..., -1] if m <= n else (jac.mT @ q[..., -1:])[..., 0]
            vec.append(v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(torch.finfo(y.dtype).tiny))
            continue
        # power iteration on J_k^T J_k, one copy of the batch per layer; ||J v|| (||v|| = 1) is attained
        ar = torch.arange(K, device=y.device)
        v = torch.as_tensor(rng.standard_normal((K, b, m)), dtype=y.dtype, device=y.device)
        with torch.enable_grad():
            yr = c.repeat(K, 1).requires_grad_(True)
            out = f(yr).reshape(K, K, b, n)
            for _ in range(POWER_ITERS):
                v = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(torch.finfo(y.dtype).tiny)
                jv = _jvp(f, yr.detach(), v.reshape(K * b, m)).reshape(K, K, b, n)[ar, ar]
                cot = torch.zeros_like(out)
                cot[ar, ar] = jv
                v = torch.autograd.grad(out, yr, cot, retain_graph=True)[0].reshape(K, b, m)
        v = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(torch.finfo(y.dtype).tiny)
        jv = _jvp(f, c.repeat(K, 1), v.reshape(K * b, m)).reshape(K, K, b, n)[ar, ar]
        sig.append(torch.linalg.vector_norm(jv, dim=-1))
        vec.append(v)
    return torch.cat(sig, 1), torch.cat(vec, 1) if vec else None


def lipschitz_lower_bound(model_or_fn: Any, *, input_dim: int | None = None, num_layers: int | None = None,
                          starts: int = 16, ascent_steps: int = 50, scales: Any = None,
                          steer_steps: int = 50, steer_starts: int | None = None,
                          seed: int | np.random.Generator = 0, dtype: torch.dtype = torch.float64,
                          device: Any = None) -> LowerBound:
    """Attained lower bounds on Lip(y -> x_k) for k = 1..K (see the module docstring for the method).

    ``model_or_fn``: an UnfoldedModel (run on a float copy in ``dtype``, on its parameters' device) or a
    callable y (B, m) -> (K, B, n) or (B, n) (one layer), with ``input_dim`` = m. ``starts``: random
    directions per scale, problem samples, and ascent starts per layer (ceil(starts / 8) of each layer's
    best points); ``ascent_steps``: Adam steps on the finite-difference ratio; ``steer_steps``: Adam steps per
    temperature of the chain-guided smoothed-pattern ascent (steer.py; 0 turns it off; it runs only for an
    UnfoldedModel that ``chain_of`` covers), from each layer's ``steer_starts`` (default ceil(starts / 8))
    best of 4 K steer_starts random points at STEER_BAND x typical ||y|| (ranked on the chain);
    ``scales``: norms of the random starts relative to a typical ||y|| (the median over problem samples,
    else 1), default 10^-3 .. 10^2. Every random draw comes from ``seed``. ValueError (one line) for bad
    arguments or outputs.
    """
    t0 = time.perf_counter()
    starts = positive_int("starts", starts)
    ascent_steps = nonnegative_int("ascent_steps", ascent_steps)
    steer_steps = nonnegative_int("steer_steps", steer_steps)
    if steer_starts is not None:
        steer_starts = positive_int("steer_starts", steer_starts)
    scales = DEFAULT_SCALES if scales is None else finite_array("scales", scales, ndim=1)
    if scales.size == 0 or np.any(scales <= 0):
        raise ValueError(f"scales must be a non-empty list of positive numbers, got {scales.tolist()}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    if input_dim is not None:
        input_dim = positive_int("input_dim", input_dim)
    rng = as_generator(seed)
    f, m, dev, problem = _as_map(model_or_fn, input_dim, dtype, device)
    tensor = lambda a: torch.as_tensor(a, dtype=dtype, device=dev)  # noqa: E731

    # multi-scale random starts (and problem samples); their shape fixes K and n
    ys = [np.empty((0, m))]
    if callable(getattr(problem, "sample", None)) and getattr(problem, "obs_dim", None) == m:
        ys.append(problem.sample(starts, rng).y.detach().cpu().double().numpy())
    typical = float(np.median(np.linalg.norm(ys[-1], axis=1))) if len(ys) > 1 else 1.0
    typical = typical if typical > 0 else 1.0
    u = rng.standard_normal((scales.size * starts, m))
    u *= (np.repeat(scales, starts) * typical / np.linalg.norm(u, axis=1))[:, None]
    y = tensor(np.concatenate([u, *ys]))
    with torch.no_grad():
        K, _, n = f(y[:1]).shape
    if num_layers is not None and positive_int("num_layers", num_layers) != K:
        raise ValueError(f"num_layers = {num_layers} but the map returns {K} layer(s)")
    exact = n * m <= EXACT_MAX_SIZE
    jac = np.full(K, -1.0)   # below any norm: the first visit sets the argmax
    argmax = np.zeros((K, m))
    fd = np.full(K, -1.0)
    pairs = np.zeros((K, 2, m))

    def visit_jacobian(pts: Tensor, vectors: bool = False) -> tuple[Tensor, Tensor | None]:
        with torch.no_grad():
            s, v = _jacobian_norms(f, pts.detach(), K, n, exact, rng, vectors)
        best = s.max(1)
        better = (best.values > tensor(jac)).cpu().numpy()
        jac[better] = best.values.cpu().numpy()[better]
        argmax[better] = pts.detach()[best.indices].cpu().numpy()[better]
        return s, v

    def visit_pairs(a: Tensor, b: Tensor, fa: Tensor, fb: Tensor) -> None:
        # round-off: each computed iterate carries an error of a few ulps of its size, so the difference is
        # shrunk by FD_ROUNDOFF ulps of ||f(a)|| + ||f(b)|| before dividing (the ratio stays attained)
        dist = torch.linalg.vector_norm(a - b, dim=-1)
        slack = FD_ROUNDOFF * torch.finfo(dtype).eps * (torch.linalg.vector_norm(fa, dim=-1)
                                                         + torch.linalg.vector_norm(fb, dim=-1))
        num = (torch.linalg.vector_norm(fa - fb, dim=-1) - slack).clamp_min(0.0)
        ratio = num / dist.clamp_min(torch.finfo(dtype).tiny)
        best = torch.where(dist > 0, ratio, torch.zeros_like(ratio)).detach().max(1)
        better = (best.values > tensor(fd)).cpu().numpy()
        fd[better] = best.values.cpu().numpy()[better]
        idx = best.indices
        pairs[better] = torch.stack([a[idx], b[idx]], 1).detach().cpu().numpy()[better]

    sig, vec = visit_jacobian(y, vectors=True)
    evaluations = y.shape[0]

    # joint ascent in (y, d) on the layer's own ratio from its best points, d along the top singular vector
    S = min(-(-starts // 8), y.shape[0])
    idx = sig.topk(S, dim=1).indices                                           # (K, S)
    y0 = y[idx.reshape(-1)]
    v0 = vec[torch.arange(K, device=dev).repeat_interleave(S), idx.reshape(-1)]
    layer = torch.arange(K, device=dev).repeat_interleave(S)
    r = torch.linalg.vector_norm(y0, dim=-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
    rho = tensor(np.tile(np.geomspace(1e-3, 0.3, S) if S > 1 else [0.03], K))[:, None]
    z = (y0 / r).requires_grad_(True)
    w = v0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z, w], lr=ASCENT_LR / np.sqrt(m))
    for step in range(ascent_steps + 1):
        with torch.enable_grad():
            a, d = r * z, r * rho * w
            out = f(torch.cat([a, a + d]))
            visit_pairs(a, a + d, out[:, : K * S], out[:, K * S:])
            visit_jacobian(a)
            evaluations += 2 * K * S
            if step == ascent_steps:
                break
            diff = out[:, : K * S] - out[:, K * S:]
            own = diff[layer, torch.arange(K * S, device=dev)]
            num = ((own**2).sum(-1) + torch.finfo(dtype).tiny).sqrt()
            loss = -torch.log(num / torch.linalg.vector_norm(d, dim=-1).clamp_min(torch.finfo(dtype).tiny)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()

    # chain-guided ascent on the smoothed activation pattern (steer.py) from fresh starts in the band of
    # scales where the data lives (STEER_BAND x typical ||y||: there the pattern is mixed and the smoothing
    # has a gradient; far larger y are nearly all-active), each layer from its best S2 of a pool of 4 S2 K
    # such points (ranked by power iteration on the chain), along their power iterates; the model's own
    # exact Jacobian is evaluated at the rows' best iterates
    steered = 0
    chain = _chain(model_or_fn) if steer_steps > 0 else None
    if chain is not None:
        S2 = S if steer_starts is None else steer_starts
        u = rng.standard_normal((4 * S2 * K, m))
        u *= (np.geomspace(*STEER_BAND, 4 * S2 * K) * typical / np.linalg.norm(u, axis=1))[:, None]
        starts_, dirs, targets = rank_starts(chain, torch.as_tensor(u), S2, seed=int(rng.integers(2**31)))
        steered = steer(chain, starts_, dirs, targets, steer_steps, lambda p: visit_jacobian(tensor(p.numpy())))
        evaluations += steered

    # random close pairs at each layer's best point: along its top singular vector and random directions
    best_y, ar = tensor(argmax), torch.arange(K, device=dev)
    with torch.no_grad():
        _, bv = _jacobian_norms(f, best_y, K, n, exact, rng)
    dirs = torch.cat([bv[ar, ar][:, None], tensor(rng.standard_normal((K, starts, m)))], 1)
    dirs = dirs / torch.linalg.vector_norm(dirs, dim=-1, keepdim=True)
    steps = tensor(np.geomspace(1e-4, 1e-1, 7))
    scale = torch.linalg.vector_norm(best_y, dim=-1).clamp_min(1e-3 * typical)
    a = best_y[:, None, None].expand(-1, starts + 1, steps.numel(), -1).reshape(-1, m)
    b = a + (scale[:, None, None, None] * steps[None, None, :, None] * dirs[:, :, None]).reshape(-1, m)
    with torch.no_grad():
        out = f(torch.cat([a, b]))
        visit_pairs(a, b, out[:, : a.shape[0]], out[:, a.shape[0]:])
    evaluations += b.shape[0]
    return LowerBound(jacobian=jac, finite_difference=fd, best=np.maximum(jac, fd), argmax=argmax,
                      evaluations=evaluations,
                      jacobian_method="exact-svd" if exact else f"power-iteration({POWER_ITERS})",
                      seconds=time.perf_counter() - t0, pairs=pairs, steered=steered)
