"""Figure `pep-learned-steps`: a learned step schedule's exact worst case beside the classical schedules'
and beside its average-case error.

A `gd-unfolded` model (gradient descent with one learned step per layer) is trained on least-squares
problems with condition number kappa (unsupervised: the objective at the last layer as loss). Its
schedule h_k = gamma_k L then goes through performance estimation (``theory.pep.compare_schedules``): the
exact worst case of f(x_k) - f* over the whole class F_{mu,L} with ||x0 - x*|| <= R, per layer, beside
the classical constant steps 1/L and 2/(L + mu). The same schedules run on the training distribution
give the average case. A learned schedule can win on average and lose in the worst case (steps above 2/L
are common in learned schedules, as in Chebyshev / silver-type schedules); growth of the worst case is
flagged. All values are normalized by L R^2.
"""
from __future__ import annotations

import sys

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unfoldkit.experiments.figures.output import reproduce_figure
from unfoldkit.proofs_check.verdict import compare_to_bound, verdicts_dict
from unfoldkit.theory.bound import Metric
from unfoldkit.theory.pep import classical_schedules, compare_schedules
from unfoldkit.unrolled.models import MODELS
from unfoldkit.unrolled.problems import LeastSquares
from unfoldkit.unrolled.solvers import run_gd
from unfoldkit.unrolled.training.trainer import train

NAME = "pep-learned-steps"
DESCRIPTION = "learned GD step schedule: exact (PEP) worst case vs classical schedules vs its average case"


@dataclass(frozen=True)
class Config:
    m: int
    n: int
    kappa: float
    num_layers: int
    train_epochs: int
    train_steps: int
    lr: float
    test_size: int


QUICK = Config(m=40, n=30, kappa=20.0, num_layers=8, train_epochs=30, train_steps=20, lr=0.05, test_size=500)
FULL = Config(m=120, n=100, kappa=100.0, num_layers=20, train_epochs=100, train_steps=50, lr=0.05,
              test_size=2000)


def learn_schedule(problem: LeastSquares, cfg: Config, seed: int, progress: bool) -> np.ndarray:
    """The steps gamma_k of a float64 ``gd-unfolded`` model trained without constraint (unsupervised scheme:
    the objective at the last layer) with ``cfg``'s budget; also the unconstrained row of certified-training."""
    model = MODELS["gd-unfolded"](problem, cfg.num_layers, dtype=torch.float64)
    train(model, problem, "unsupervised", epochs=cfg.train_epochs, steps_per_epoch=cfg.train_steps,
          batch_size=64, lr=cfg.lr, val_size=256, seed=seed, progress=progress)
    return np.asarray(model.schedule()["step"], dtype=np.float64)


def normalized_gaps(problem: LeastSquares, steps: np.ndarray, test_y: torch.Tensor, ref) -> np.ndarray:
    """(f(x_k) - f*) / (L R_b^2) per layer k and test instance b, shape (K+1, B) (exact reference)."""
    traj = run_gd(problem, test_y, len(steps), step=steps)
    gap = traj.objective_gap(problem, test_y, ref).double().numpy()
    r2 = ((traj.iterates[0] - ref.x) ** 2).sum(dim=-1).double().numpy()
    return gap / (problem.L * r2[None, :])


def compute(cfg: Config, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    problem = LeastSquares(m=cfg.m, n=cfg.n, kappa=cfg.kappa, L=1.0, seed=seed)
    learned = learn_schedule(problem, cfg, seed, progress)
    L, mu = problem.L, problem.mu
    out: dict[str, Any] = {"figure": NAME, "config": asdict(cfg), "seed": seed, "L": L, "mu": mu,
                           "learned_steps_h": (learned * L).tolist()}
    test = problem.sample(cfg.test_size, rng=seed + 7)
    ref = problem.reference(test.y)
    schedules = {"learned": learned}
    schedules.update({name: np.asarray(kw["steps"], dtype=np.float64)
                      for name, kw in classical_schedules(cfg.num_layers, L, mu, "gd").items()})
    gaps = {name: normalized_gaps(problem, st, test.y, ref) for name, st in schedules.items()}
    out["average_case"] = {name: g.mean(axis=1) for name, g in gaps.items()}
    out["verdicts"] = {}
    if np.any(learned <= 0):
        out["worst_case"] = None
        out["flags"] = {"learned": "a learned step is <= 0: no finite worst case (the class contains f with "
                                   "ascent directions), PEP not run"}
        out["all_hold"] = False
        return out
    comp = compare_schedules(learned, L=L, mu=mu, method="gd", metric=Metric.OBJECTIVE_GAP, R=1.0)
    out["worst_case"] = {name: b.values for name, b in comp.bounds.items()}
    out["worst_case_provenance"] = {name: b.to_dict() for name, b in comp.bounds.items()}
    out["flags"] = {name: g.to_dict() for name, g in comp.growth.items()}
    out["ratio_learned_to_best_classical"] = comp.ratio_to_best_classical()
    out["summary"] = comp.summary()
    # the worst case over the class is never below the error of any of its own instances, nor their average;
    # 1e-6 relative covers the SDP tolerance (certified duality gaps below 1e-7)
    verdicts = []
    for name in schedules:
        verdicts.append(compare_to_bound(gaps[name], comp.bounds[name], rel_tol=1e-6, abs_tol=1e-12,
                                         label=f"{name}: every instance <= PEP worst case"))
        verdicts.append(compare_to_bound(out["average_case"][name], comp.bounds[name], rel_tol=1e-6,
                                         abs_tol=1e-12, label=f"{name}: average <= PEP worst case"))
    out["verdicts"] = verdicts_dict(verdicts)
    out["average_below_worst"] = {name: out["verdicts"][f"{name}: average <= PEP worst case"]["holds"]
                                  for name in schedules}
    out["all_hold"] = all(v.holds for v in verdicts)
    return out


#: how the figure names the schedules (the JSON keeps the names of ``classical_schedules``)
DISPLAY = {"learned": "learned", "constant 1/L": r"constant $1/L$", "constant 2/(L+mu)": r"constant $2/(L+\mu)$"}


def plot(result: dict[str, Any]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    K = result["config"]["num_layers"]
    k = np.arange(K + 1)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    colors = {"learned": "C3"}
    ax = axes[0]
    if result["worst_case"] is not None:
        for i, (name, vals) in enumerate(result["worst_case"].items()):
            c = colors.get(name, f"C{i}")
            flag = result["flags"][name]
            lab = DISPLAY.get(name, name) + (" (worst case GROWS)" if flag["grows"] else "")
            ax.semilogy(k, np.asarray(vals, dtype=float), "-o", ms=3, color=c, label=lab)
    ax.set(title=r"exact worst case over $F_{\mu,L}$ (PEP)", xlabel="layer $k$",
           ylabel=r"$\sup\,(f(x_k)-f^*)/(LR^2)$")
    ax.legend(fontsize=8, loc="best")
    ax = axes[1]
    for i, (name, vals) in enumerate(result["average_case"].items()):
        ax.semilogy(k, np.maximum(vals, 1e-300), "-o", ms=3, color=colors.get(name, f"C{i}"),
                    label=DISPLAY.get(name, name))
    kap = result["config"]["kappa"]
    ax.set(title=rf"average case on the training distribution ($\kappa={kap:g}$)", xlabel="layer $k$",
           ylabel=r"mean $(f(x_k)-f^*)/(LR^2)$")
    ax.legend(fontsize=8, loc="best")
    ax = axes[2]
    h = np.asarray(result["learned_steps_h"], dtype=float)
    ax.bar(np.arange(1, K + 1), h, color="C3", label=r"learned $h_k=\gamma_k L$")
    ax.axhline(1.0, color="k", ls=":", label=r"1 (step $1/L$)")
    ax.axhline(2.0, color="k", ls="--", label=r"2 (step $2/L$)")
    top = max(2.0, float(np.max(h, initial=0.0)))
    ax.set_ylim(min(0.0, float(np.min(h, initial=0.0)) * 1.1), top * 1.3)  # room for the legend above the bars
    ax.set(title="learned schedule", xlabel="layer $k$", ylabel=r"$h_k$")
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    for a in axes:
        a.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def reproduce(out_dir: str | Path, quick: bool = True, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Compute, plot and write ``pep-learned-steps.{png,pdf,json}`` into ``out_dir``."""
    return reproduce_figure(sys.modules[__name__], out_dir, quick, seed, progress)
