"""Figure `lipschitz`: the Lipschitz constant of y -> x_k per layer k of LISTA and ALISTA, certified upper
bounds beside the attained lower bound, at the classical initialisation and after training.

Models on one ``SparseRecovery(m, n)`` problem, K layers: LISTA initialised with ISTA's weights
(``Lista.from_classical``: W_1 = A^T / L, W_2 = I - A^T A / L, theta = lam / L) and ALISTA with its analytic
Frobenius weight and no support selection (``Alista(problem, K, percent=0, max_percent=0)``: gamma = 1,
theta = lam / L), each at its initialisation and after end-to-end training (NMSE at the last layer, Adam;
the validation NMSE before and after is reported beside the relative change of the parameters).

For each model, every layer k, in the l2 norm (``theory.lipschitz.lipschitz_bounds``, float64 copy):
the certified upper bounds of the naive recursion, LipLT, ECLipsE-Fast and the LipSDP-Neuron certificate
(structured solver, every layer; multipliers optimised at the layers of ``sdp_optimize``, elsewhere the
API's initial multipliers, still a certificate recomputed from the data), and the attained lower bound (the largest
Jacobian norm / finite-difference ratio found). The true constant lies between the lower bound and the
best upper bound; their ratio at the last layer is the figure's headline. A verdict per model checks that
every certified upper bound stays above the attained lower bound at every layer (a violation is a bug).
Trained ALISTA without support selection can learn a negative threshold, which makes the map discontinuous:
then there is no finite constant and only the (local) lower-bound search is drawn, with the reason.
"""
from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unfoldkit.experiments.figures.output import reproduce_figure
from unfoldkit.theory.lipschitz import METHODS, lipschitz_bounds
from unfoldkit.unrolled.metrics import nmse_db_curve
from unfoldkit.unrolled.models import Alista, Lista
from unfoldkit.unrolled.problems.sparse import SparseRecovery
from unfoldkit.unrolled.training.threads import limit_threads
from unfoldkit.unrolled.training.trainer import train

NAME = "lipschitz"
DESCRIPTION = "LISTA/ALISTA Lipschitz per layer: naive, LipLT, ECLipsE-Fast, SDP bounds vs attained lower, init vs trained"

#: the models, in panel order: JSON key -> panel label
FAMILIES = {"lista": "LISTA", "alista": "ALISTA (Frobenius W, no support selection)"}
STATES = {"init": "initialisation", "trained": "trained"}
#: how the figure names the methods of ``lipschitz_bounds``
DISPLAY = {"naive": "naive recursion", "liplt": "LipLT", "eclipse-fast": "ECLipsE-Fast",
           "sdp": "SDP (LipSDP-Neuron)"}
SHORT = {"naive": "naive", "liplt": "LipLT", "eclipse-fast": "ECLipsE-Fast", "sdp": "SDP"}
#: torch and BLAS threads while computing: the matrices are small (n <= 100), and on a small shared machine
#: more threads than one slow the SDP and the lower-bound search down several times (benchmarks/lipschitz.py)
THREADS = 1
#: relative slack of the sandwich verdict (the certificates are recomputed in float64)
REL_TOL = 1e-6


@dataclass(frozen=True)
class Config:
    m: int
    n: int
    num_layers: int
    train_epochs: int
    train_steps: int
    batch_size: int
    lr_lista: float
    lr_alista: float
    sdp_optimize: str        # "last" or "all": layers whose SDP multipliers are optimised
    sdp_iters: int
    lower_starts: int
    lower_ascent_steps: int
    test_size: int


#: about 1-2 minutes on 2 shared cores
QUICK = Config(m=20, n=40, num_layers=8, train_epochs=10, train_steps=20, batch_size=64, lr_lista=1e-3,
               lr_alista=5e-3, sdp_optimize="all", sdp_iters=300, lower_starts=8, lower_ascent_steps=20,
               test_size=500)
#: the issue's tightness setting (m = 50, n = 100, K = 16); 100 descent steps per layer keep the 4 x 16 SDPs
#: to about 6 of the 8 minutes the full figure took on 2 shared cores (300, the API's default, about 3x that)
FULL = Config(m=50, n=100, num_layers=16, train_epochs=40, train_steps=50, batch_size=64, lr_lista=1e-3,
              lr_alista=5e-3, sdp_optimize="all", sdp_iters=100, lower_starts=16, lower_ascent_steps=50,
              test_size=2000)


def initial_model(family: str, problem: SparseRecovery, num_layers: int) -> torch.nn.Module:
    """LISTA with ISTA's weights, or ALISTA (Frobenius weight) without support selection, in float32."""
    if family == "lista":
        return Lista.from_classical(problem, num_layers)
    if family == "alista":
        return Alista(problem, num_layers, percent=0.0, max_percent=0.0)
    raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")


def _parameters(model: torch.nn.Module) -> np.ndarray:
    return np.concatenate([p.detach().double().flatten().numpy() for p in model.parameters()])


def _test_nmse_db(model: torch.nn.Module, test) -> list[float]:
    with torch.no_grad():
        traj = model(test.y.to(model.model_dtype), trajectory=True)
    return nmse_db_curve(traj.double(), test.x).tolist()


def bounds(model: torch.nn.Module, cfg: Config, seed: int) -> dict[str, Any]:
    """``lipschitz_bounds`` of a float64 copy of ``model`` (every method, SDP at every layer), as a dict with
    the wall time of the call."""
    exact = copy.deepcopy(model).to(torch.float64)
    start = time.perf_counter()
    r = lipschitz_bounds(exact, methods=METHODS, sdp_solver="structured", sdp_layers="all",
                         sdp_optimize=cfg.sdp_optimize, sdp_iters=cfg.sdp_iters, lower=True,
                         lower_options={"starts": cfg.lower_starts, "ascent_steps": cfg.lower_ascent_steps},
                         seed=seed)
    out = r.to_dict()
    out["wall_s"] = time.perf_counter() - start
    return out


def _sandwich_verdict(res: dict[str, Any]) -> dict[str, Any]:
    """The verdict "every certified upper bound >= the attained lower bound at every layer", printed by the
    CLI: ``tightness`` is the best upper / lower ratio at the last layer."""
    lower = np.array([np.nan if v is None else float(v) for v in res["lower"]])
    if not res["finite"]:
        return {"state": "not applicable", "holds": True, "tightness": None,
                "reason": f"no finite constant: {res['reason']}"}
    below = {}
    for method, vals in res["upper"].items():
        up = np.array([np.nan if v is None else float(v) for v in vals])
        bad = np.isfinite(up) & (up * (1 + REL_TOL) < lower)
        if bad.any():
            below[method] = (np.flatnonzero(bad) + 1).tolist()
    last = res["ratio"][-1]
    return {"state": "holds" if not below else "violated", "holds": not below,
            "tightness": None if last in (None, "inf") else float(last), "below_lower_at_layers": below}


def compute(cfg: Config, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Bounds of both models before and after training, with one torch and BLAS thread (``THREADS``)."""
    with limit_threads(THREADS):
        return _compute(cfg, seed, progress)


def _compute(cfg: Config, seed: int, progress: bool) -> dict[str, Any]:
    problem = SparseRecovery(m=cfg.m, n=cfg.n, seed=seed)
    test = problem.sample(cfg.test_size, rng=seed + 1000)
    out: dict[str, Any] = {"figure": NAME, "config": asdict(cfg), "seed": seed,
                           "problem": {"m": cfg.m, "n": cfg.n, "sparsity": problem.sparsity, "lam": problem.lam,
                                       "L": float(problem.L)},
                           "threads": THREADS, "models": {}, "timings_s": {}, "verdicts": {}}
    for fam in FAMILIES:
        model = initial_model(fam, problem, cfg.num_layers)
        theta0 = _parameters(model)
        entry: dict[str, Any] = {"init": bounds(model, cfg, seed)}
        entry["init"]["test_nmse_db"] = _test_nmse_db(model, test)
        lr = cfg.lr_lista if fam == "lista" else cfg.lr_alista
        start = time.perf_counter()
        result = train(model, problem, "end-to-end", epochs=cfg.train_epochs, steps_per_epoch=cfg.train_steps,
                       batch_size=cfg.batch_size, lr=lr, val_size=500, seed=seed, progress=progress)
        train_s = time.perf_counter() - start
        theta = _parameters(model)
        entry["trained"] = bounds(model, cfg, seed)
        entry["trained"]["test_nmse_db"] = _test_nmse_db(model, test)
        entry["training"] = {"scheme": "end-to-end", "lr": lr, "epochs_run": result.epochs_run,
                             "wall_s": train_s, "val_nmse_db_before": result.history[0]["val_nmse_db"],
                             "val_nmse_db_after": result.final_val_nmse_db,
                             "relative_parameter_change": float(np.linalg.norm(theta - theta0)
                                                                / max(np.linalg.norm(theta0), 1e-300))}
        out["models"][fam] = entry
        out["timings_s"][fam] = {"train": train_s, "init": entry["init"]["seconds"], "trained":
                                 entry["trained"]["seconds"]}
        for state in STATES:
            out["verdicts"][f"{fam} {state}: certified upper >= attained lower"] = _sandwich_verdict(entry[state])
    out["all_hold"] = all(v["holds"] for v in out["verdicts"].values())
    return out


def _values(vals: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else (math.inf if v == "inf" else float(v)) for v in vals])


def plot(result: dict[str, Any]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = result["config"]
    K = cfg["num_layers"]
    k = np.arange(1, K + 1)
    fig, axes = plt.subplots(len(FAMILIES), len(STATES), figsize=(13, 9.5), sharey="row", squeeze=False)
    markers = {"naive": "s", "liplt": "^", "eclipse-fast": "v", "sdp": "o"}
    for i, (fam, fam_label) in enumerate(FAMILIES.items()):
        for j, (state, state_label) in enumerate(STATES.items()):
            ax = axes[i, j]
            res = result["models"][fam][state]
            for c, method in enumerate(METHODS):
                if method in res["upper"]:
                    vals = _values(res["upper"][method])
                    ax.semilogy(k, vals, "-", marker=markers[method], ms=4, color=f"C{c}", label=DISPLAY[method])
            ax.semilogy(k, _values(res["lower"]), "k--", lw=2, label="attained lower bound")
            ratio = _values(res["ratio"])[-1]
            nmse = res["test_nmse_db"][-1]
            if res["finite"]:
                best = res["best_method"][-1]
                head = f"layer {K}: best upper / lower = {ratio:.3g} (best: {SHORT.get(best, best)})"
            else:
                head = "no finite constant (lower bound is local only)"
                ax.text(0.5, 0.5, res["reason"], transform=ax.transAxes, ha="center", fontsize=8, wrap=True)
            ax.set_title(f"{fam_label}, {state_label} (test NMSE {nmse:.1f} dB)\n{head}", fontsize=10)
            ax.set_xlabel("layer $k$")
            if j == 0:
                ax.set_ylabel(r"Lipschitz constant of $y \mapsto x_k$")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Lipschitz bounds per layer, m={cfg['m']}, n={cfg['n']}, K={K} (SDP multipliers optimised at "
                 f"layers: {cfg['sdp_optimize']})", fontsize=12)
    fig.tight_layout()
    return fig


def reproduce(out_dir: str | Path, quick: bool = False, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Compute, plot and write ``lipschitz.{png,pdf,json}`` into ``out_dir``."""
    return reproduce_figure(sys.modules[__name__], out_dir, quick, seed, progress)
