"""Figure `certified-training`: unfolded models whose guarantee survives training (issue 18), one column per
mechanism, each with the classical algorithm, the model trained without constraint and the model trained
with the mechanism; average case per layer on top, the guaranteed (worst-case) quantity per layer below.

1. **Certified schedules** (``theory.certified``): a ``gd-unfolded`` step schedule on least squares, trained
   with projections onto {schedules whose exact PEP worst case stays below the best classical schedule's at
   every layer}. Top: mean (f(x_k) - f*) / (L R^2) on fresh test data; bottom: the exact worst case over
   F_{mu,L} (PEP, certified upper value) beside the envelope.
2. **Safeguarded unfolding** (``unrolled.safeguard``, Safe-L2O, scheme recalled): a trained LISTA-CP run in
   distribution and under a dictionary mismatch (A' = normalised A + eps G / sqrt(m)), raw and safeguarded.
   Top: NMSE per layer (dB) under mismatch; bottom: the largest fixed-point residual r(x^k) = ||x^k - T x^k||
   over the test set (T the ISTA operator of the true problem), which the safeguard keeps <= r(x^0).
3. **Certified LISTA-CP / ALISTA** (``proofs_check.certified_lista``): ALISTA and LISTA-CP trained on a declared
   class X(B, s) with the thresholds and steps projected into the region where the linear-convergence
   certificate holds. Top: NMSE per layer (dB) on X(B, s); bottom: the largest measured error
   ||x^k - x*||_2 per layer beside the certified bound (a bound is drawn only where its assumptions hold).

Every certificate is recomputed from scratch after training and judged; the unconstrained models are checked
by the same code (the figure shows whether they leave the certified set). Quick mode: a few minutes on 2 CPU
cores.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unfoldkit.experiments.figures.output import reproduce_figure
from unfoldkit.experiments.figures.pep_learned_steps import normalized_gaps
from unfoldkit.proofs_check.certified_lista import ListaRegion, certify_lista
from unfoldkit.proofs_check.lista_checks import measure_on_class
from unfoldkit.theory.certified import certify_schedule, schedule_envelope, train_certified_schedule
from unfoldkit.unrolled.metrics import nmse_db_curve
from unfoldkit.unrolled.models import MODELS
from unfoldkit.unrolled.problems import BoundedSparseRecovery, LeastSquares, SparseRecovery, perturbed_dictionary
from unfoldkit.unrolled.safeguard import fixed_point_residual, safeguard_report
from unfoldkit.unrolled.solvers import run_ista
from unfoldkit.unrolled.training import train
from unfoldkit.unrolled.training.threads import limit_threads

NAME = "certified-training"
DESCRIPTION = ("training that keeps its guarantee: certified PEP schedules, safeguarded unfolding, certified "
               "LISTA-CP / ALISTA, each vs unconstrained training and the classical algorithm")


@dataclass(frozen=True)
class Config:
    # 1. certified schedules (the pep-learned-steps setting)
    ls_m: int
    ls_n: int
    kappa: float
    ls_layers: int
    ls_epochs: int
    ls_steps: int
    ls_lr: float
    envelope_factor: float
    # 2. safeguard
    sg_m: int
    sg_n: int
    sg_layers: int
    sg_epochs: int
    sg_steps: int
    sg_lr: float
    mismatch_eps: float
    # 3. certified LISTA-CP / ALISTA on X(B, s)
    cl_m: int
    cl_n: int
    cl_s: int
    cl_B: float
    cl_layers: int
    cl_epochs: int
    cl_steps: int
    cl_lr: float
    test_size: int


QUICK = Config(ls_m=40, ls_n=30, kappa=20.0, ls_layers=8, ls_epochs=30, ls_steps=20, ls_lr=0.05, envelope_factor=1.0,
               sg_m=50, sg_n=100, sg_layers=10, sg_epochs=16, sg_steps=50, sg_lr=3e-3, mismatch_eps=0.3,
               cl_m=64, cl_n=128, cl_s=1, cl_B=1.0, cl_layers=8, cl_epochs=10, cl_steps=20, cl_lr=1e-3,
               test_size=500)
FULL = Config(ls_m=120, ls_n=100, kappa=100.0, ls_layers=12, ls_epochs=60, ls_steps=50, ls_lr=0.05,
              envelope_factor=1.0, sg_m=250, sg_n=500, sg_layers=16, sg_epochs=40, sg_steps=50, sg_lr=1e-3,
              mismatch_eps=0.3, cl_m=250, cl_n=500, cl_s=2, cl_B=1.0, cl_layers=16, cl_epochs=40, cl_steps=50,
              cl_lr=1e-3, test_size=1000)


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"[{NAME}] {msg}", file=sys.stderr, flush=True)


# ---- 1. certified schedules ------------------------------------------------------------------------------


def _schedules(cfg: Config, seed: int, progress: bool) -> dict[str, Any]:
    problem = LeastSquares(m=cfg.ls_m, n=cfg.ls_n, kappa=cfg.kappa, L=1.0, seed=seed)
    L, mu, K = problem.L, problem.mu, cfg.ls_layers
    envelope = schedule_envelope(K, L, mu, "gd", factor=cfg.envelope_factor)
    budget = dict(epochs=cfg.ls_epochs, steps_per_epoch=cfg.ls_steps, batch_size=64, lr=cfg.ls_lr, seed=seed)
    _say(progress, f"schedules: envelope = {cfg.envelope_factor:g} x '{envelope.reference}'; training free")
    t0 = time.perf_counter()
    free_model = MODELS["gd-unfolded"](problem, K, dtype=torch.float64)
    train(free_model, problem, "unsupervised", val_size=256, progress=False, **budget)
    free_time = time.perf_counter() - t0
    _say(progress, "schedules: training with projections")
    cert_model = MODELS["gd-unfolded"](problem, K, dtype=torch.float64)
    res = train_certified_schedule(cert_model, problem, envelope, project_every=cfg.ls_steps, **budget)
    steps = {"classical": np.asarray(envelope.reference_steps, dtype=np.float64),
             "unconstrained": np.asarray(free_model.schedule()["step"], dtype=np.float64),
             "certified": np.asarray(cert_model.schedule()["step"], dtype=np.float64)}
    test = problem.sample(cfg.test_size, rng=seed + 7)
    ref = problem.reference(test.y)
    average = {k: normalized_gaps(problem, v, test.y, ref).mean(axis=1) for k, v in steps.items()}
    certs = {k: (certify_schedule(v, envelope) if np.all(v > 0) else None) for k, v in steps.items()}
    worst = {k: (None if c is None else c.upper) for k, c in certs.items()}
    return {"L": L, "mu": mu, "reference": envelope.reference, "envelope": envelope.values,
            "steps_h": {k: v * L for k, v in steps.items()}, "average_case": average, "worst_case": worst,
            "certificates": {k: (None if c is None else c.to_dict()) for k, c in certs.items()},
            "holds": {k: (False if c is None else bool(c.holds)) for k, c in certs.items()},
            "failing_layers": {k: (None if c is None else list(c.failing_layers)) for k, c in certs.items()},
            "train_time_s": {"unconstrained": free_time, "certified": res.train_time},
            "projection_time_s": res.projection_time,
            "projections_needed": int(sum(bool(e.get("projection_needed")) for e in res.history)),
            "cost": {k: float(average[k][-1] / average["unconstrained"][-1]) for k in average}}


# ---- 2. safeguarded unfolding ---------------------------------------------------------------------------


def _safeguard(cfg: Config, seed: int, progress: bool) -> dict[str, Any]:
    problem = SparseRecovery(m=cfg.sg_m, n=cfg.sg_n, sparsity=0.1, snr_db=40.0, lam=0.05, seed=seed)
    K = cfg.sg_layers
    _say(progress, f"safeguard: training LISTA-CP ({cfg.sg_m} x {cfg.sg_n}, K = {K})")
    model = MODELS["lista-cp"](problem, K, dtype=torch.float64)
    train(model, problem, "end-to-end", epochs=cfg.sg_epochs, steps_per_epoch=cfg.sg_steps, batch_size=64,
          lr=cfg.sg_lr, val_size=256, seed=seed, progress=False)
    out: dict[str, Any] = {"settings": {}}
    for setting, eps in (("in distribution", 0.0), (f"mismatch eps = {cfg.mismatch_eps:g}", cfg.mismatch_eps)):
        true = perturbed_dictionary(problem, eps, seed + 11)
        batch = true.sample(cfg.test_size, rng=seed + 13).to(torch.float64)
        rep = safeguard_report(model, true, batch.y, batch.x)  # raw and safeguarded runs, one copy
        with torch.no_grad():
            ista = run_ista(true, batch.y, K).iterates
        out["settings"][setting] = {
            "eps": eps,
            "nmse_db": {"raw": rep["nmse_db_raw"], "safeguarded": rep["nmse_db_safeguarded"],
                        "ista": nmse_db_curve(ista, batch.x).tolist()},
            "max_residual": {"raw": rep["residual_raw_max"], "safeguarded": rep["residual_max"],
                             "ista": _residuals(true, ista, batch.y).tolist()},
            "fire_rate": rep["fire_rate"], "overall_fire_rate": rep["overall_fire_rate"],
            "bound_holds": bool(rep["bound_holds"]), "max_bound_violation": rep["max_bound_violation"],
            "initial_residual_max": rep["residual_max"][0]}
    out["rule"] = {k: rep[k] for k in ("rule", "delta", "theta")}
    return out


def _residuals(problem: SparseRecovery, iterates: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """max over the batch of r(x^k) = ||x^k - T(x^k)|| per layer, T ISTA on ``problem`` (the safeguard's)."""
    return np.array([float(fixed_point_residual(problem, x, y).max()) for x in iterates])


# ---- 3. certified LISTA-CP / ALISTA ---------------------------------------------------------------------


def _lista(cfg: Config, seed: int, progress: bool) -> dict[str, Any]:
    problem = BoundedSparseRecovery(m=cfg.cl_m, n=cfg.cl_n, support_size=cfg.cl_s, amplitude=cfg.cl_B, seed=seed)
    region = ListaRegion(s=cfg.cl_s, B=cfg.cl_B)
    K = cfg.cl_layers
    budget = dict(epochs=cfg.cl_epochs, steps_per_epoch=cfg.cl_steps, batch_size=64, lr=cfg.cl_lr, val_size=256,
                  seed=seed, progress=False)
    test = problem.sample(cfg.test_size, rng=seed + 17)
    out: dict[str, Any] = {"class": region.to_dict(), "models": {}}
    with torch.no_grad():
        out["ista_nmse_db"] = nmse_db_curve(run_ista(problem, test.y, K).iterates, test.x)
    for family in ("alista", "lista-cp"):
        for variant, constraint in (("unconstrained", None), ("certified", region)):
            _say(progress, f"lista: {family}, {variant}")
            model = (MODELS["alista"](problem, K, percent=0.0, max_percent=0.0) if family == "alista"
                     else MODELS["lista-cp"].from_analytic(problem, K))
            t0 = time.perf_counter()
            train(model, problem, "end-to-end", constraint=constraint, **budget)
            seconds = time.perf_counter() - t0
            with torch.no_grad():
                curve = nmse_db_curve(model(test.y.to(model.model_dtype), trajectory=True), test.x)
            report = certify_lista(model, region, num_samples=cfg.test_size, rng=seed + 19)
            measured, _ = measure_on_class(model, region.s, region.B, cfg.test_size, rng=seed + 19)
            bound = next((b for b in report.bounds if b.assumptions_hold), None)
            out["models"][f"{family} {variant}"] = {
                "family": family, "variant": variant, "nmse_db": curve, "train_time_s": seconds,
                "guarantee": bool(report.guarantee), "max_error": measured,
                "bound": None if bound is None else np.asarray(bound.values, dtype=np.float64),
                "bound_name": None if bound is None else bound.name,
                "failed_assumptions": [str(a) for a in report.assumptions if not a.holds],
                "verdicts": report.verdicts}
    return out


# ---- the figure -----------------------------------------------------------------------------------------


def compute(cfg: Config, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    with limit_threads(1):
        t0 = time.perf_counter()
        out: dict[str, Any] = {"figure": NAME, "config": asdict(cfg), "seed": seed}
        out["schedule"] = _schedules(cfg, seed, progress)
        out["safeguard"] = _safeguard(cfg, seed, progress)
        out["lista"] = _lista(cfg, seed, progress)
        out["verdicts"] = _verdicts(out)
        out["all_hold"] = all(v["holds"] for v in out["verdicts"].values())
        out["wall_time_s"] = time.perf_counter() - t0
    return out


def _verdicts(out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What must hold: every certified model's certificate recomputed from scratch, and the safeguard's bound
    on every test sample in every setting. (Whether an unconstrained model leaves the certified set is a
    measurement, reported beside them, not a verdict.)"""
    v: dict[str, dict[str, Any]] = {}
    sched = out["schedule"]
    v["schedule: certified schedule inside the envelope (PEP, from scratch)"] = {
        "holds": sched["holds"]["certified"], "detail": f"failing layers {sched['failing_layers']['certified']}"}
    v["schedule: classical reference inside its own envelope"] = {
        "holds": sched["holds"]["classical"], "detail": f"failing layers {sched['failing_layers']['classical']}"}
    for name, s in out["safeguard"]["settings"].items():
        v[f"safeguard ({name}): r(x^k) <= certified bound, every sample and layer"] = {
            "holds": s["bound_holds"], "detail": f"max violation {s['max_bound_violation']:.3e}"}
        v[f"safeguard ({name}): r(x^k) <= r(x^0)"] = {
            "holds": bool(np.max(s["max_residual"]["safeguarded"]) <= s["initial_residual_max"] * (1 + 1e-9)),
            "detail": "float64, 1e-9 relative"}
    for name, m in out["lista"]["models"].items():
        if m["variant"] == "certified":
            v[f"lista: {name} certified on X(B, s) (check_lista_model, from scratch)"] = {
                "holds": m["guarantee"], "detail": "; ".join(m["failed_assumptions"]) or "all assumptions hold"}
    return v


def plot(result: dict[str, Any]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(18, 9.5))
    colors = {"classical": "k", "unconstrained": "C3", "certified": "C0", "ista": "k", "raw": "C3",
              "safeguarded": "C0"}
    # 1. schedules
    sched = result["schedule"]
    K = len(sched["envelope"]) - 1
    k = np.arange(K + 1)
    ax = axes[0, 0]
    for name, vals in sched["average_case"].items():
        ax.semilogy(k, np.maximum(np.asarray(vals, dtype=float), 1e-300), "-o", ms=3, color=colors[name],
                    label=f"{name}" + (f" (x{sched['cost'][name]:.2f} of unconstrained at K)" if name != "unconstrained"
                                       else ""))
    ax.set(title="1. certified schedule: average case (least squares)", xlabel="layer k",
           ylabel=r"mean $(f(x_k)-f^*)/(LR^2)$")
    ax = axes[1, 0]
    ax.semilogy(k, np.asarray(sched["envelope"], dtype=float), "--", color="0.5", lw=3, alpha=0.6,
                label=f"envelope ({sched['reference']})")
    for name, vals in sched["worst_case"].items():
        if vals is None:
            continue
        tag = "inside" if sched["holds"][name] else f"OUTSIDE at layers {sched['failing_layers'][name]}"
        ax.semilogy(k, np.asarray(vals, dtype=float), "-o", ms=3, color=colors[name], label=f"{name}: {tag}")
    ax.set(title="1. exact worst case over $F_{\\mu,L}$ (PEP, certified upper value)", xlabel="layer k",
           ylabel=r"$\sup\,(f(x_k)-f^*)/(LR^2)$")
    # 2. safeguard
    sg = result["safeguard"]["settings"]
    names = list(sg)
    mis = sg[names[-1]]
    kk = np.arange(len(mis["nmse_db"]["raw"]))
    ax = axes[0, 1]
    for setting, ls in zip(names, ("-", "--")):
        for name, curve in sg[setting]["nmse_db"].items():
            ax.plot(kk, curve, ls, color=colors[name], marker="o", ms=3,
                    label=f"{name}, {setting}" + (f" (fires {sg[setting]['overall_fire_rate']:.2f})"
                                                  if name == "safeguarded" else ""))
    ax.set(title="2. safeguarded LISTA-CP: NMSE per layer", xlabel="layer k", ylabel="NMSE (dB)")
    ax = axes[1, 1]
    for setting, ls in zip(names, ("-", "--")):
        for name, vals in sg[setting]["max_residual"].items():
            ax.semilogy(kk, np.maximum(np.asarray(vals, dtype=float), 1e-300), ls, color=colors[name], marker="o",
                        ms=3, label=f"{name}, {setting}")
        ax.axhline(sg[setting]["initial_residual_max"], color="0.5", ls=":", lw=1)
    ax.set(title=r"2. largest fixed-point residual $\|x^k - T x^k\|$ (guarantee: $\leq r(x^0)$, dotted)",
           xlabel="layer k", ylabel="max over the test set")
    # 3. certified LISTA
    li = result["lista"]
    cls = li["class"]
    ax = axes[0, 2]
    kl = np.arange(len(li["ista_nmse_db"]))
    ax.plot(kl, li["ista_nmse_db"], "-", color="k", label="ISTA (classical)")
    styles = {"alista": "-", "lista-cp": "--"}
    for name, m in li["models"].items():
        ax.plot(kl, m["nmse_db"], styles[m["family"]], color=colors[m["variant"]], marker="o", ms=3,
                label=f"{name} ({m['nmse_db'][-1]:.1f} dB)")
    ax.set(title=f"3. certified LISTA-CP / ALISTA on X(B={cls['B']:g}, s={cls['s']}): NMSE", xlabel="layer k",
           ylabel="NMSE (dB)")
    ax = axes[1, 2]
    for name, m in li["models"].items():
        ax.semilogy(kl, np.maximum(np.asarray(m["max_error"], dtype=float), 1e-300), styles[m["family"]],
                    color=colors[m["variant"]], marker="o", ms=3,
                    label=f"{name}: measured max" + ("" if m["guarantee"] else " (no certificate)"))
        if m["bound"] is not None:
            ax.semilogy(kl, np.asarray(m["bound"], dtype=float), styles[m["family"]], color=colors[m["variant"]],
                        lw=3, alpha=0.35, label=f"{name}: certified bound ({m['bound_name']})")
    ax.set(title=r"3. worst error $\max\|x^k - x^*\|_2$ on X(B, s) and the certified bound", xlabel="layer k",
           ylabel="l2 error")
    for a in axes.flat:
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def reproduce(out_dir: str | Path, quick: bool = True, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Compute, plot and write ``certified-training.{png,pdf,json}`` into ``out_dir``."""
    return reproduce_figure(sys.modules[__name__], out_dir, quick, seed, progress)
