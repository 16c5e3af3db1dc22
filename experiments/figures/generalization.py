"""Figure `generalization`: risk bounds of unfolded models against the measured risk, over the training-set
size m and the depth K, one column per family (paradigm), on a log scale with the vacuous region shaded.

The quantity drawn is the *risk* on the clipped NMSE (loss in [0, c], c = 1): each bound is an upper bound on
the true risk, beside the measured test risk (on a large fresh test set, with Hoeffding's 95 % interval) and
the training risk. The PAC-Bayes-kl certificate bounds the risk of the randomised model Q = N(theta,
sigma^2 I), so Q's own test risk is drawn beside it (dotted); the covering bound bounds the trained model
itself. Everything at or above c is vacuous (shaded): the trivial bound c says as much.

The numbers come from the sweep of ``experiments.generalization`` (training, ``measure_gap``,
``pac_bayes_certificate``, ``covering_bound``, ``trivial_bound`` per (family, K, m, seed)); its rows are
written to ``generalization-sweep.json`` beside the figure as they finish, so an interrupted ``reproduce``
picks up where it stopped (run the same command again); ``--force`` (needed once generalization.json exists)
recomputes everything. Top row: against m at K = k_ref; bottom row: against K at m = m_ref. With several
seeds the line is the mean and the band the min-max over seeds.

Quick (``--quick``, a few minutes on 2 cores): SparseRecovery(m = 50, n = 100), families ista-learned-step,
alista, lista, ista-correction; m in {1e2, 1e3, 1e4} at K = 10 and K in {5, 10} at m = 1e4; one seed;
about 400 Adam steps per config; 20000 test samples. Full: the five families (lista-cp too), m in {1e2, 1e3,
1e4, 1e5}, K in {5, 10, 16}, three seeds, 1e5 test samples.

Verdicts (printed by the CLI): per family and bound, "the bound is above the measured risk at every config"
(PAC-Bayes against Q's test risk minus its Hoeffding half-width, covering against the lower end of the test
risk's Hoeffding interval), with the tightness min(bound / measured risk); a bound that does not apply to a
family is "not applicable" with the reason.
"""
from __future__ import annotations

import math
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from unfoldkit.experiments import generalization as gen
from unfoldkit.experiments.figures.output import figure_paths, reproduce_figure
from unfoldkit.experiments.generalization import FULL, QUICK, SweepSettings
from unfoldkit.unrolled.io import read_json

NAME = "generalization"
DESCRIPTION = "risk bounds (PAC-Bayes-kl, covering, trivial) vs measured test risk over m and K, per paradigm"

#: how the panels name the families
DISPLAY = {"ista-learned-step": "ISTA, learned steps", "alista": "ALISTA (no support selection)",
           "lista-cp": "LISTA-CP", "lista": "LISTA", "ista-correction": "ISTA + learned correction"}
PARADIGM_NUMBER = {"hyperparameters": 1, "objective": 2, "correction": 3, "inductive-bias": 4}
#: the bounds drawn (the trivial bound is the shaded region's edge)
DRAWN = {"pac-bayes-kl": ("C0", "o", "PAC-Bayes-kl bound (risk of Q)"),
         "covering": ("C1", "s", "covering-number bound")}


def _num(v: Any) -> float:
    return math.nan if v is None else (math.inf if v == "inf" else float(v))


def compact(row: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a sweep row the figure and its JSON keep (the sweep file has the provenance)."""
    meas = row["measured"]
    bounds = {}
    for name, b in row["bounds"].items():
        entry = {"status": b["status"], "value": b.get("value"), "empirical": b.get("empirical"),
                 "gap": b.get("gap"), "delta": b.get("delta"), "seconds": b.get("seconds")}
        if b["status"] in ("not covered", "refused"):
            entry["reason"] = b["reason"]
        details = b.get("details") or {}
        if name == "pac-bayes-kl":
            entry.update(posterior_test_risk=b["posterior_test_risk"], sigma=details.get("best_sigma"),
                         kl=details.get("kl"), complexity=details.get("complexity"), d=details.get("d"),
                         prior=details.get("prior"),
                         posterior_test_size=b["posterior_test_size"])
        elif name == "covering" and details:
            entry.update(d=details.get("num_parameters"), complexity_term=details.get("complexity_term"),
                         confidence_term=details.get("confidence_term"))
        bounds[name] = entry
    return {"key": row["key"], "family": row["family"], "paradigm": row["paradigm"], "K": row["K"],
            "m_train": row["m_train"], "seed": row["seed"], "d": row["d"], "prior": row["prior"],
            "train_risk": meas["train_risk"], "test_risk": meas["test_risk"], "gap": meas["gap"],
            "gap_ci": meas["gap_ci"], "test_interval": meas["test_interval"],
            "hoeffding_halfwidth": meas["hoeffding_halfwidth"], "m_test": meas["m_test"],
            "training": row["training"], "bounds": bounds, "seconds": row["seconds"]}


def _verdicts(rows: list[dict[str, Any]], settings: SweepSettings) -> dict[str, Any]:
    out = {}
    conf = 1.0 - settings.delta
    for fam in settings.families:
        mine = [r for r in rows if r["family"] == fam]
        for name in DRAWN:
            label = f"{fam} {name} >= measured risk"
            entries = [(r, r["bounds"][name]) for r in mine]
            if entries and all(b["status"] in ("not covered", "refused") for _, b in entries):
                out[label] = {"state": "not applicable", "holds": True, "tightness": None,
                              "reason": entries[0][1]["reason"]}
                continue
            below, ratios, non_vacuous = [], [], 0
            for r, b in entries:
                value = _num(b["value"])
                if not math.isfinite(value):
                    continue
                if name == "pac-bayes-kl":
                    measured = b["posterior_test_risk"]
                    half = settings.clip * math.sqrt(math.log(2.0 / (1.0 - conf)) / (2.0 * b["posterior_test_size"]))
                    lower = measured - half
                else:
                    measured, lower = r["test_risk"], r["test_interval"][0]
                if value < lower:
                    below.append(r["key"])
                ratios.append(value / max(measured, 1e-300))
                non_vacuous += b["status"] == "non-vacuous"
            out[label] = {"state": "holds" if not below else "violated", "holds": not below,
                          "tightness": min(ratios) if ratios else None, "below_at": below,
                          "non_vacuous": non_vacuous, "configs": len(ratios)}
    return out


def _target(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The non-vacuous target: ista-learned-step, m = 1e4, K = 10 (n = 100): the PAC-Bayes-kl certificate."""
    hits = [r for r in rows if r["family"] == "ista-learned-step" and r["m_train"] == 10_000 and r["K"] == 10]
    if not hits:
        return None
    vals = [_num(r["bounds"]["pac-bayes-kl"]["value"]) for r in hits]
    return {"family": "ista-learned-step", "m_train": 10_000, "K": 10, "values": vals,
            "delta": hits[0]["bounds"]["pac-bayes-kl"]["delta"], "non_vacuous": all(v < 1.0 for v in vals)}


def compute(cfg: SweepSettings, seed: int = 0, progress: bool = False,
            results_dir: str | Path | None = None, resume: bool = False) -> dict[str, Any]:
    """The sweep of ``cfg`` with seeds shifted by ``seed`` (and the problem drawn with ``seed``); with
    ``results_dir`` its rows go to ``results_dir/generalization-sweep.json`` (continued with ``resume``,
    replaced otherwise), else they are kept in memory only."""
    settings = replace(cfg, seeds=tuple(seed + s for s in cfg.seeds), problem_seed=seed)
    if results_dir is not None:
        doc = gen.sweep(settings, results_dir, resume=resume, force=not resume, progress=progress)
        rows = gen.finished_rows(doc)
        failed = {k: r.get("error") for k, r in doc["rows"].items() if r.get("status") != "done"}
        wall = doc["wall_s"]
    else:
        doc_rows = list(gen.run_configs(settings, gen.configs(settings), progress=progress))
        rows = gen.finished_rows({"rows": {r["key"]: r for r in doc_rows}})
        failed = {r["key"]: r.get("error") for r in doc_rows if r.get("status") != "done"}
        wall = sum(r["seconds"]["total"] for r in rows)
    compact_rows = [compact(r) for r in rows]
    verdicts = _verdicts(compact_rows, settings)
    return {"figure": NAME, "config": settings.to_dict(), "seed": seed,
            "quantity": "risk on the clipped NMSE min(||x_hat - x||^2 / ||x||^2, c), c = clip",
            "problem": {"family": "SparseRecovery", "m": settings.problem_m, "n": settings.problem_n,
                        "seed": settings.problem_seed},
            "rows": compact_rows, "failed": failed, "verdicts": verdicts, "target": _target(compact_rows),
            "sweep_wall_s": wall,
            "all_hold": not failed and all(v["holds"] for v in verdicts.values())}


# ---- plot ------------------------------------------------------------------------------------------


def _series(rows: list[dict[str, Any]], x: str, fn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x values, mean, min, max over seeds) of fn(row), NaNs dropped."""
    xs = sorted({r[x] for r in rows})
    mean, lo, hi, keep = [], [], [], []
    for v in xs:
        vals = np.array([fn(r) for r in rows if r[x] == v], dtype=float)
        vals = vals[np.isfinite(vals)]
        if vals.size:
            keep.append(v)
            mean.append(vals.mean())
            lo.append(vals.min())
            hi.append(vals.max())
    return np.array(keep, dtype=float), np.array(mean), np.array(lo), np.array(hi)


def _draw(ax, x, mean, lo, hi, **kw):
    if x.size == 0:
        return
    ax.plot(x, mean, **kw)
    if np.any(hi > lo):
        ax.fill_between(x, lo, hi, color=kw.get("color"), alpha=0.15, lw=0)


def _panel(ax, rows: list[dict[str, Any]], x: str, clip: float) -> list[float]:
    """Draw one panel; returns the values drawn (for the shared y range)."""
    drawn: list[float] = []
    for name, (color, marker, label) in DRAWN.items():
        xs, m, lo, hi = _series(rows, x, lambda r, n=name: _num(r["bounds"][n]["value"]))
        _draw(ax, xs, m, lo, hi, color=color, marker=marker, ms=5, lw=1.8, label=label)
        drawn += list(hi)
    xs, m, lo, hi = _series(rows, x, lambda r: r["bounds"]["pac-bayes-kl"]["posterior_test_risk"])
    _draw(ax, xs, m, lo, hi, color="C0", ls=":", marker="x", ms=5, lw=1.5, label="risk of Q (measured, test)")
    drawn += list(lo)
    xs, m, lo, hi = _series(rows, x, lambda r: r["test_risk"])
    if xs.size:
        half = np.array([np.mean([r["hoeffding_halfwidth"] for r in rows if r[x] == v]) for v in xs])
        ax.errorbar(xs, m, yerr=[np.minimum(half, m * 0.95), half], color="k", marker="D", ms=4, lw=1.8,
                    capsize=3, label="test risk (measured, Hoeffding 95%)")
        drawn += list(lo)
    xs, m, lo, hi = _series(rows, x, lambda r: r["train_risk"])
    _draw(ax, xs, m, lo, hi, color="0.45", ls="--", marker=".", lw=1.3, label="train risk (measured)")
    drawn += list(lo)
    cov = [r["bounds"]["covering"] for r in rows]
    if cov and all(b["status"] in ("not covered", "refused") for b in cov):
        short = cov[0]["reason"].split(":", 1)[-1].strip()
        text = textwrap.shorten(short, width=130, placeholder=" ...")
        ax.text(0.03, 0.04, f"covering bound: {cov[0]['status']}\n" + "\n".join(textwrap.wrap(text, 55)),
                transform=ax.transAxes, fontsize=7, color="C1", va="bottom")
    ax.set_xscale("log" if x == "m_train" else "linear")
    ax.set_yscale("log")
    return drawn


def plot(result: dict[str, Any]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = result["config"]
    rows, clip = result["rows"], cfg["clip"]
    families = [f for f in cfg["families"] if any(r["family"] == f for r in rows)] or list(cfg["families"])
    ncol = len(families)
    fig, axes = plt.subplots(2, ncol, figsize=(4.3 * ncol + 0.6, 8.6), squeeze=False, sharey=True)
    values: list[float] = []
    for j, fam in enumerate(families):
        mine = [r for r in rows if r["family"] == fam]
        by_m = [r for r in mine if r["K"] == cfg["k_ref"]]
        by_k = [r for r in mine if r["m_train"] == cfg["m_ref"]]
        values += _panel(axes[0, j], by_m, "m_train", clip)
        values += _panel(axes[1, j], by_k, "K", clip)
        d = by_m[0]["d"] if by_m else "?"
        para = mine[0]["paradigm"] if mine else ""
        axes[0, j].set_title(f"{DISPLAY.get(fam, fam)}\nparadigm {PARADIGM_NUMBER.get(para, '?')} ({para}), "
                             f"d = {d} at K = {cfg['k_ref']}", fontsize=10)
        axes[0, j].set_xlabel(f"training samples $m$ (K = {cfg['k_ref']})")
        axes[1, j].set_xlabel(f"layers $K$ (m = {cfg['m_ref']:g})")
        ks = sorted({r["K"] for r in by_k})
        if ks:
            axes[1, j].set_xticks(ks)
    finite = [v for v in values if np.isfinite(v) and v > 0]
    bottom = max(1e-3, 0.5 * min(finite)) if finite else 1e-3
    top = max(3.0 * clip, 1.8 * max(finite)) if finite else 3.0 * clip
    for ax in axes.flat:
        ax.set_ylim(bottom, top)
        ax.axhspan(clip, top, color="tab:red", alpha=0.08, lw=0)
        ax.axhline(clip, color="tab:red", lw=1.0, ls="-")
        ax.grid(True, which="both", alpha=0.25)
    for i, what in enumerate(("against m", "against K")):
        axes[i, 0].set_ylabel(f"risk (clipped NMSE), {what}")
    axes[0, 0].text(0.03, 0.96, f"vacuous: bound $\\geq$ c = {clip:g} (trivial bound)", transform=axes[0, 0].transAxes,
                    fontsize=8, color="tab:red", va="top")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(list(seen.values()), list(seen.keys()), loc="lower center", ncol=min(5, len(seen)), fontsize=9,
               frameon=False)
    nseeds = len(cfg["seeds"])
    band = f"; mean over {nseeds} seeds, band min-max" if nseeds > 1 else ""
    pb_delta = cfg["pac_delta"] + cfg["pac_delta_mc"]
    fig.suptitle(f"Generalization: bounds on the risk vs measured risk, SparseRecovery(m={cfg['problem_m']}, "
                 f"n={cfg['problem_n']}); PAC-Bayes delta = {pb_delta:g}, covering delta = {cfg['delta']:g}{band}",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return fig


def reproduce(out_dir: str | Path, quick: bool = False, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Compute, plot and write ``generalization.{png,pdf,json}`` into ``out_dir``, the sweep's rows into
    ``out_dir/generalization-sweep.json`` as they finish. An interrupted run (sweep file with the same settings,
    no generalization.json yet) is continued; once the figure exists (the CLI then needs --force) it starts
    afresh."""
    cfg = QUICK if quick else FULL
    out = Path(out_dir)
    sweep_file = out / gen.RESULT
    resume = False
    if sweep_file.exists() and not any(p.exists() for p in figure_paths(out, NAME)):
        try:
            doc = read_json(sweep_file)
            want = replace(cfg, seeds=tuple(seed + s for s in cfg.seeds), problem_seed=seed).to_dict()
            resume = doc.get("settings") == want and doc.get("format_version") == gen.FORMAT_VERSION
        except (OSError, ValueError):
            resume = False
    return reproduce_figure(sys.modules[__name__], out_dir, quick, seed, progress, results_dir=out, resume=resume)
