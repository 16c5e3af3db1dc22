"""Figure `lista-theory`: the linear-convergence theory of LISTA-CP / ALISTA beside measured behaviour,
and how far the guarantee reaches.

(a) Theorem regime: ALISTA layers x^{k+1} = eta^ss(x^k - W^T(A x^k - y)) with each analytic weight
    (ALISTA's Frobenius weight, eq. (17), and the exact generalized-coherence minimiser, eq. (8)),
    gamma = 1 and the certified thresholds theta^k = mu e_k; for every admissible sparsity s < (1 + 1/mu)/2
    the worst error over samples of X(B, s) beside the bound s B ((2s - 1) mu)^k (Chen et al. 2018 Thm 2;
    ALISTA Thm 1).
(b) Practical regime: ALISTA and LISTA-CPSS trained on Bernoulli(0.1) signals (about n/10 non-zeros),
    their NMSE per layer beside ISTA and FISTA; the theorems' sparsity assumption fails there and no
    bound is drawn (the report says so with the numbers).
(c) Reach: the worst error at the last layer against s, for the certified analytic model (where the
    theorem applies, with its bound) and for the trained ALISTA (everywhere, with no guarantee beyond).
"""
from __future__ import annotations

import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unfoldkit.experiments.figures.output import reproduce_figure
from unfoldkit.proofs_check.lista_checks import check_lista_model
from unfoldkit.proofs_check.verdict import compare_to_bound
from unfoldkit.theory.lista import certified_thresholds, lista_cp_bound, sparsity_limit
from unfoldkit.unrolled.metrics import nmse_db_curve
from unfoldkit.unrolled.models import MODELS
from unfoldkit.unrolled.models.alista_weights import WEIGHTS, generalized_coherence
from unfoldkit.unrolled.problems import BoundedSparseRecovery, SparseRecovery
from unfoldkit.unrolled.solvers import run_fista, run_ista
from unfoldkit.unrolled.training.trainer import train

NAME = "lista-theory"
#: errors below this are exact recoveries (support selection reaches x* exactly) and are drawn at it
FLOOR = 1e-16
DESCRIPTION = "LISTA-CP / ALISTA: linear-convergence bound vs measured error, and where the theorem stops"


@dataclass(frozen=True)
class Config:
    m: int
    n: int
    num_layers: int
    samples: int
    amplitude: float
    train_epochs: int
    train_steps: int
    test_size: int
    max_s_reach: int
    lam: float


QUICK = Config(m=64, n=128, num_layers=10, samples=500, amplitude=1.0, train_epochs=10, train_steps=20,
               test_size=500, max_s_reach=8, lam=0.05)
FULL = Config(m=250, n=500, num_layers=16, samples=2000, amplitude=1.0, train_epochs=60, train_steps=50,
              test_size=1000, max_s_reach=20, lam=0.1)


def _cached_weight(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The weight cached at ``path`` if it is a finite float array of ``shape``; None (with a warning that
    names the file) if it is unreadable, pickled, of another shape or not finite: it is then recomputed."""
    try:
        w = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        problem = f"unreadable ({err})"
    else:
        if not isinstance(w, np.ndarray) or w.dtype.kind != "f":
            problem = "not an array of floats"
        elif w.shape != shape:
            problem = f"shape {w.shape}, expected {shape}"
        elif not np.all(np.isfinite(w)):
            problem = "non-finite values"
        else:
            return w
    warnings.warn(f"{path}: cached weight is corrupt ({problem}); recomputing it and replacing the file",
                  RuntimeWarning, stacklevel=3)
    return None


def _weight(name: str, problem: SparseRecovery, cache: Path | None) -> np.ndarray:
    """An analytic weight, cached on disk (the LP weight costs n linear programs); a corrupt cache file is
    recomputed with a warning."""
    f = None if cache is None else cache / f"weight-{name}-m{problem.m}-n{problem.n}-seed{problem.seed}.npy"
    if f is not None and f.exists():
        w = _cached_weight(f, tuple(problem.A.shape))
        if w is not None:
            return w
    w = WEIGHTS[name](problem.A)
    if f is not None:
        from unfoldkit.experiments.io import atomic_write

        def save(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a handle: np.save(path) would append ".npy" to the temporary name
                np.save(fh, w, allow_pickle=False)

        atomic_write(f, save)
    return w


def _certified_model(problem, weight: np.ndarray, name: str, mu: float, s: int, cfg: Config):
    model = MODELS["alista"](problem, cfg.num_layers, weight="dictionary", dtype=torch.float64)
    th = certified_thresholds(mu, s, cfg.amplitude, cfg.num_layers)
    with torch.no_grad():
        model.weight_matrix.copy_(torch.as_tensor(weight))
        model.threshold.copy_(torch.as_tensor(th))
        model.gamma.fill_(1.0)
    model.weight = name
    return model


def _theorem_regime(problem, weights: dict[str, np.ndarray], cfg: Config, seed: int) -> dict[str, Any]:
    out = {}
    for name, w in weights.items():
        mu = generalized_coherence(w, problem.A, atol=1e-6)
        limit = sparsity_limit(mu)
        rows = []
        for s in range(1, int(np.ceil(limit))):
            if s >= limit:
                break
            model = _certified_model(problem, w, name, mu, s, cfg)
            rep = check_lista_model(model, s=s, B=cfg.amplitude, num_samples=cfg.samples, rng=seed + s)
            bound = lista_cp_bound(mu, s, cfg.amplitude, cfg.num_layers, weight=name)
            verdict = compare_to_bound(rep.measured_max_error, bound, rel_tol=1e-6, label=f"{name} weight, s={s}")
            rows.append({"s": s, "measured": rep.measured_max_error, "bound": bound.values,
                         "bound_provenance": bound.to_dict(), "fitted_rate": rep.fitted_rate,
                         "theoretical_rate": (2 * s - 1) * mu, "holds": verdict.holds,
                         "verdict": verdict.to_dict(), "false_positives": int(rep.false_positives.sum())})
        out[name] = {"mu": mu, "sparsity_limit": limit, "rows": rows}
    return out


def _practical(cfg: Config, seed: int, progress: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    problem = SparseRecovery(m=cfg.m, n=cfg.n, sparsity=0.1, lam=cfg.lam, seed=seed)
    test = problem.sample(cfg.test_size, rng=seed + 1000)
    curves, models = {}, {}
    for alg, run in (("ISTA", run_ista), ("FISTA", run_fista)):
        curves[alg] = nmse_db_curve(run(problem, test.y, cfg.num_layers).iterates, test.x)
    for fam, lr in (("alista", 5e-3), ("lista-cpss", 1e-3)):
        model = MODELS[fam](problem, cfg.num_layers)
        train(model, problem, "multi-loss", epochs=cfg.train_epochs, steps_per_epoch=cfg.train_steps,
              batch_size=64, lr=lr, val_size=500, seed=seed, progress=progress)
        with torch.no_grad():
            curves[fam] = nmse_db_curve(model(test.y.float(), trajectory=True).double(), test.x)
        models[fam] = model
    s_typ = int(round(0.1 * cfg.n))
    checks = {}
    for fam, model in models.items():
        rep = check_lista_model(model, s=s_typ, B=float(test.x.abs().max()), num_samples=64, rng=seed)
        checks[fam] = rep.to_dict()
    return {"curves": curves, "checks": checks, "typical_s": s_typ}, models


def _reach(problem, weight: np.ndarray, mu: float, trained, cfg: Config, seed: int) -> dict[str, Any]:
    ss = np.arange(1, cfg.max_s_reach + 1)
    limit = sparsity_limit(mu)
    cert, bound, tr = [], [], []
    for s in ss:
        if s < limit:
            model = _certified_model(problem, weight, "coherence", mu, int(s), cfg)
            rep = check_lista_model(model, s=int(s), B=cfg.amplitude, num_samples=cfg.samples // 2, rng=seed)
            cert.append(float(rep.measured_max_error[-1]))
            bound.append(float(lista_cp_bound(mu, int(s), cfg.amplitude, cfg.num_layers).values[-1]))
        else:
            cert.append(float("nan"))
            bound.append(float("nan"))
        cls = BoundedSparseRecovery(m=problem.m, n=problem.n, support_size=int(s), amplitude=cfg.amplitude,
                                    seed=problem.seed)
        b = cls.sample(cfg.samples // 2, rng=seed + int(s))
        with torch.no_grad():
            x = trained(b.y.float()).double()
        tr.append(float((x - b.x).norm(dim=-1).max()))
    return {"s": ss, "certified_last_error": cert, "bound_last": bound, "trained_alista_last_error": tr,
            "sparsity_limit": limit}


def compute(cfg: Config, seed: int = 0, progress: bool = False, cache: Path | None = None) -> dict[str, Any]:
    """All numbers of the figure (see the module docstring)."""
    torch.manual_seed(seed)
    base = SparseRecovery(m=cfg.m, n=cfg.n, sparsity=0.1, lam=cfg.lam, seed=seed)
    weights = {name: _weight(name, base, cache) for name in ("frobenius", "coherence")}
    theorem = _theorem_regime(base, weights, cfg, seed)
    practical, models = _practical(cfg, seed, progress)
    mu_lp = theorem["coherence"]["mu"]
    reach = _reach(base, weights["coherence"], mu_lp, models["alista"], cfg, seed)
    all_hold = all(r["holds"] and r["false_positives"] == 0 for w in theorem.values() for r in w["rows"])
    verdicts = {r["verdict"]["name"]: r["verdict"] for w in theorem.values() for r in w["rows"]}
    return {"figure": NAME, "config": asdict(cfg), "seed": seed, "theorem_regime": theorem,
            "practical_regime": practical, "reach": reach, "all_hold": all_hold, "verdicts": verdicts,
            "weights_ratio_frobenius_over_exact": theorem["frobenius"]["mu"] / mu_lp}


#: how the figure names the curves of the practical regime (the JSON keeps the registry names)
DISPLAY = {"alista": "ALISTA", "lista-cpss": "LISTA-CPSS", "ISTA": "ISTA", "FISTA": "FISTA"}
#: the analytic weights in the legend of panel (a)
WEIGHT_LABELS = {"frobenius": (r"Frobenius $W$", "eq. 17"), "coherence": (r"LP $W$", r"exact $\tilde\mu$ minimiser, eq. 8")}
LEGEND = {"fontsize": 8, "loc": "upper center", "bbox_to_anchor": (0.5, -0.13), "frameon": False}


def plot(result: dict[str, Any]):
    import itertools

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    cfg = result["config"]
    K = cfg["num_layers"]
    k = np.arange(K + 1)
    fig, axes = plt.subplots(1, 3, figsize=(16, 6.4))
    ax = axes[0]
    colors = itertools.cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    handles = [Line2D([], [], color="0.3", lw=2, label=r"measured $\max\|x^k-x^*\|_2$"),
               Line2D([], [], color="0.3", ls="--", label=r"bound $sB((2s-1)\tilde\mu)^k$")]
    weights = []
    for name, w in result["theorem_regime"].items():
        short, source = WEIGHT_LABELS[name]
        weights.append(rf"{short} ({source}): $\tilde\mu={w['mu']:.3f}$")
        for row in w["rows"]:
            c = next(colors)
            ax.semilogy(k, np.maximum(row["measured"], FLOOR), "-", color=c, lw=2,
                        label=rf"{short}, $s={row['s']}$")
            ax.semilogy(k, row["bound"], "--", color=c)
    handles += ax.get_legend_handles_labels()[0]
    ax.set(title=rf"(a) theorem regime, ${cfg['m']}\times{cfg['n']}$: every $s<(1+1/\tilde\mu)/2$" "\n"
                 r"(exact recovery drawn at $10^{-16}$)",
           xlabel="layer $k$", ylabel=r"$\max\|x^k-x^*\|_2$ over $X(B,s)$")
    ax.legend(handles=handles, ncol=2, title="\n".join(weights), title_fontsize=8, **LEGEND)
    ax = axes[1]
    prac = result["practical_regime"]
    for name, curve in prac["curves"].items():
        ax.plot(k, curve, marker="o", ms=3, label=DISPLAY.get(name, name))
    s_typ = prac["typical_s"]
    msg = []
    for fam, rep in prac["checks"].items():
        fail = [a for a in rep["assumptions"] if a["holds"] is False and a["name"].startswith("sparsity")]
        if fail:
            limit = float(fail[0]["required"].split()[2])
            msg.append(rf"{DISPLAY.get(fam, fam)}: sparsity assumption fails, $s={s_typ}\geq{limit:.3g}$")
    ax.text(0.02, 0.02, "no bound drawn:\n" + "\n".join(msg), transform=ax.transAxes, fontsize=8, va="bottom")
    ax.set(title="(b) practical regime: Bernoulli(0.1) signals, trained", xlabel="layer $k$", ylabel="NMSE (dB)")
    ax.legend(ncol=2, **LEGEND)
    ax = axes[2]
    reach = result["reach"]
    ss = np.asarray(reach["s"])
    ax.semilogy(ss, reach["trained_alista_last_error"], "o-", label="trained ALISTA (no guarantee)")
    ax.semilogy(ss, np.maximum(reach["certified_last_error"], FLOOR), "s-",
                label=r"certified analytic ALISTA, measured (0 drawn at $10^{-16}$)")
    ax.semilogy(ss, reach["bound_last"], "k--", label="bound at the last layer")
    ax.axvspan(0.5, reach["sparsity_limit"], color="C2", alpha=0.12,
               label=r"theorem applies: $s<(1+1/\tilde\mu)/2$")
    ax.set(title=f"(c) reach of the guarantee at layer $K={K}$", xlabel="sparsity $s$",
           ylabel=r"$\max\|x^K-x^*\|_2$")
    ax.legend(ncol=1, **LEGEND)
    for a in axes:
        a.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def reproduce(out_dir: str | Path, quick: bool = True, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Compute, plot and write ``lista-theory.{png,pdf,json}`` into ``out_dir`` (weights cached in
    ``out_dir/.cache``)."""
    cache = Path(out_dir) / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    return reproduce_figure(sys.modules[__name__], out_dir, quick, seed, progress, cache=cache)
