"""Classical solvers: the step functions of ``steps.py`` iterated with fixed (or scheduled) parameters.

Each ``run_*`` returns a ``Trajectory`` (``trajectory.py``, the type unfolded models return too) holding
every iterate x_0, ..., x_K, because theory speaks per iteration. ``step`` is a float or a length-K schedule (one value per iteration, e.g. a learned one).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from unfoldkit.unrolled.problems.base import Problem
from unfoldkit.unrolled.problems.linear import LinearInverseProblem
from unfoldkit.unrolled.problems.sparse import SparseRecovery
from unfoldkit.unrolled.steps import (
    admm_lasso_step,
    fista_momentum,
    fista_step,
    gradient_step,
    proximal_gradient_step,
)
from unfoldkit.unrolled.trajectory import Trajectory
from unfoldkit.unrolled.validation import batch_tensor, nonnegative_int, positive_real, step_schedule


def _start(problem: Problem, y: torch.Tensor, x0: torch.Tensor | None) -> torch.Tensor:
    problem.check_y(y)
    if x0 is None:
        return problem.initial_point(y)
    batch_tensor("x0", x0, problem.n)
    if x0.shape[0] != y.shape[0]:
        raise ValueError(f"x0 has batch size {x0.shape[0]} but y has {y.shape[0]}")
    return x0.to(dtype=y.dtype, device=y.device)


def _schedule(problem: Problem, step: Any, num_steps: int) -> np.ndarray:
    """gamma_0..gamma_{K-1}: ``step`` expanded (a float or a length-K schedule), 1/L when None."""
    num_steps = nonnegative_int("num_steps", num_steps)
    return step_schedule("step", 1.0 / problem.L if step is None else step, max(num_steps, 1))[:num_steps]


def run_gd(problem: Problem, y: torch.Tensor, num_steps: int, step: Any = None,
           x0: torch.Tensor | None = None) -> Trajectory:
    """Gradient descent x_{k+1} = x_k - gamma_k grad f(x_k) on the smooth part f (default gamma = 1/L)."""
    gammas = _schedule(problem, step, num_steps)
    out = [_start(problem, y, x0)]
    for g in gammas:
        out.append(gradient_step(out[-1], lambda v: problem.grad(v, y), float(g)))
    return Trajectory(torch.stack(out), "gd", {"step": gammas.tolist()})


def run_ista(problem: Problem, y: torch.Tensor, num_steps: int, step: Any = None,
             x0: torch.Tensor | None = None) -> Trajectory:
    """ISTA / proximal gradient x_{k+1} = prox_{gamma_k g}(x_k - gamma_k grad f(x_k)) (default gamma = 1/L)."""
    gammas = _schedule(problem, step, num_steps)
    out = [_start(problem, y, x0)]
    for g in map(float, gammas):
        prox = lambda v, g=g: problem.prox(v, g)  # noqa: E731
        out.append(proximal_gradient_step(out[-1], lambda v: problem.grad(v, y), g, prox))
    return Trajectory(torch.stack(out), "ista", {"step": gammas.tolist()})


def run_fista(problem: Problem, y: torch.Tensor, num_steps: int, step: Any = None,
              momentum: Any = None, x0: torch.Tensor | None = None) -> Trajectory:
    """FISTA (Beck & Teboulle 2009): per-step gamma_k (default 1/L) and momentum beta_k (default theirs)."""
    gammas = _schedule(problem, step, num_steps)
    if momentum is None:
        betas = fista_momentum(len(gammas))
    else:
        betas = np.broadcast_to(np.asarray(momentum, dtype=np.float64), gammas.shape).copy()
        if not np.all(np.isfinite(betas)):
            raise ValueError("momentum contains NaN or inf")
    out = [_start(problem, y, x0)]
    x_prev = out[0]
    for g, b in zip(map(float, gammas), betas):
        prox = lambda v, g=g: problem.prox(v, g)  # noqa: E731
        x = fista_step(out[-1], x_prev, lambda v: problem.grad(v, y), g, float(b), prox)
        x_prev = out[-1]
        out.append(x)
    return Trajectory(torch.stack(out), "fista", {"step": gammas.tolist(), "momentum": betas.tolist()})


def run_admm(problem: SparseRecovery, y: torch.Tensor, num_steps: int, rho: Any = None,
             x0: torch.Tensor | None = None) -> Trajectory:
    """ADMM for the LASSO (scaled form, split x = z), recording z_k; rho > 0 (default L, i.e. ||A||^2).

    The iterates z_k are sparse and feasible for F; the default rho = L is a common heuristic, not tuned.
    """
    if not isinstance(problem, LinearInverseProblem) or not hasattr(problem, "lam"):
        raise ValueError("run_admm needs a LASSO problem (SparseRecovery)")
    num_steps = nonnegative_int("num_steps", num_steps)
    rhos = step_schedule("rho", problem.L if rho is None else rho, max(num_steps, 1))[:num_steps]
    z = _start(problem, y, x0)
    u = torch.zeros_like(z)
    w, v = problem.gram_eigh
    w_t, v_t = problem.cached_tensor("gram_w", w, z), problem.cached_tensor("gram_v", v, z)
    aty = y @ problem.matrix(z)
    out = [z]
    for r in rhos:
        rf = positive_real("rho", float(r))
        _, z, u = admm_lasso_step(z, u, aty, w_t, v_t, rf, problem.lam / rf)
        out.append(z)
    return Trajectory(torch.stack(out), "admm", {"rho": rhos.tolist()})
