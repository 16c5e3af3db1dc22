"""Generalization bounds of unfolded models against their measured gap: every paradigm and bound at every
training-set size m, the bounds' decay in m, the non-vacuous target and the parameter count where each bound
becomes vacuous.

    python benchmarks/generalization.py [--quick] [--seed S] [--workers W] [--backend loky|dask|ray]
                                        [--scheduler ADDRESS] [--out DIR] [--resume | --force]

Grid: the five families of the study (ista-learned-step, alista without support selection, lista-cp, lista,
ista-correction) on ``SparseRecovery(m = 50, n = 100)`` at K = 10, for every m of the grid and seed, each
config run by ``experiments.generalization.run_config`` (seeded training on m samples, ``measure_gap`` on a
fresh test set, the PAC-Bayes-kl certificate with the classical-initialisation prior, the covering bound or
"not covered" with its reason, the trivial bound; one thread per config; ``--workers`` configs in parallel
over joblib, loky by default, dask / ray as in ``unfoldkit stress``).

Reported (mean over seeds where there are several):

- per (family, m): train and test risk, the measured gap test - train with its 95 % bootstrap interval, each
  bound's value with its gap term (value - the bound's empirical risk; PAC-Bayes: of the randomised model Q),
  vacuous flagged (value >= c = 1), and the config's wall time;
- the slope in m of each gap term, of the PAC-Bayes-kl complexity term and of the measured gap: least
  squares of log(term) on log(m), over the points where the term is > 0 (and, for the PAC-Bayes-kl gap term,
  below 0.9 c: a saturated kl-inverse says nothing about the rate); a sqrt(complexity / m) bound has slope
  -1/2, a fast-rate kl bound near a small empirical risk tends to -1;
- the target: ista-learned-step at m = 1e4, n = 100, K = 10, the PAC-Bayes-kl certificate with its delta,
  PASS when non-vacuous (< c);
- per bound, the parameter count d where it becomes vacuous, at m = M_VACUITY (1e4) and K: the families' own d
  (the bound's count: PAC-Bayes d = learned scalars, covering d = active scalars) and values, the largest d
  whose bound is non-vacuous, the smallest whose bound is vacuous, and d* where the bound crosses c,
  interpolated linearly in log(value) against log(d) between those two (several families at one d: the mean
  of their log values), and from a least-squares line log(value) = a + b log(d) over all of them (the exponent
  b, d* where it reaches c; "extrapolated" outside the measured d), for c and for 0.9 c (near-vacuous: the
  kl-inverse bound approaches c but reaches it only at an infinite KL). An interpolation across families, not
  a law: the bounds depend on more than d.

``--quick``: m in {1e2, 3e2, 1e3, 3e3, 1e4}, one seed, 20000 test samples (about 5 minutes on 2 cores, 1
worker); full: m in {1e2, 3e2, 1e3, 3e3, 1e4, 3e4, 1e5}, seeds 0, 1, 2, 1e5 test samples. Outputs (``--out``,
default benchmarks/out/): ``generalization_<mode>.json`` (settings, sessions, rows, analysis; rewritten after
every config, so ``--resume`` skips the finished ones) and ``generalization_<mode>.txt`` (the tables).
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from unfoldkit.experiments.arguments import OneLineParser, nonneg_int, positive_int
from unfoldkit.experiments.benchmarking import (
    ResultFile, Settings, UsageError, command, finish, fmt, log_stderr, machine, output_options, output_paths,
    table_head, table_row,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "out"
BENCHMARK = "generalization"
#: bump when the JSON layout changes (a resumed file must have the same version)
FORMAT_VERSION = 1
FAMILIES = ("ista-learned-step", "alista", "lista-cp", "lista", "ista-correction")
#: the bounds with a gap term, in table order (the trivial bound c is a column of its own)
BOUNDS = ("pac-bayes-kl", "covering")
DISPLAY = {"pac-bayes-kl": "PAC-Bayes-kl", "covering": "covering", "measured": "measured gap"}
#: the non-vacuous target: (family, m, K); n = 100 is the problem's
TARGET = ("ista-learned-step", 10_000, 10)
#: the m at which the vacuity in d is read
M_VACUITY = 10_000
#: near-vacuous: a bound within 10 % of the trivial bound c (LEVELS[1])
#: the levels (x c) whose crossing in d is reported: vacuous (1), near-vacuous (0.9: within 10 % of trivial)
LEVELS = (1.0, 0.9)


@dataclass(frozen=True)
class GenConfig(Settings):
    """The numbers of a run (stored in its JSON; ``--resume`` needs them unchanged)."""

    mode: str
    ms: tuple[int, ...]
    seeds: tuple[int, ...] = (0,)
    families: tuple[str, ...] = FAMILIES
    num_layers: int = 10
    problem_m: int = 50
    problem_n: int = 100
    train_steps: int = 400
    batch_size: int = 64
    val_size: int = 256
    test_size: int = 100_000
    mc_samples: int = 200
    mc_batch: int = 100
    posterior_draws: int = 10
    posterior_test_size: int = 5000
    bootstrap: int = 2000

    def sweep_settings(self) -> Any:
        """The ``experiments.generalization.SweepSettings`` of this run (K fixed, every m)."""
        from unfoldkit.experiments.generalization import SweepSettings

        fields = {k: v for k, v in self.__dict__.items() if k not in ("mode", "num_layers")}
        return SweepSettings(**fields, ks=(self.num_layers,), grid="product", k_ref=self.num_layers,
                             m_ref=max(self.ms))


QUICK = GenConfig(mode="quick", ms=(100, 300, 1000, 3000, 10_000), test_size=20_000, posterior_test_size=2000)
FULL = GenConfig(mode="full", ms=(100, 300, 1000, 3000, 10_000, 30_000, 100_000), seeds=(0, 1, 2))


# ---- analysis --------------------------------------------------------------------------------------


def _num(v: Any) -> float:
    return math.nan if v is None else (math.inf if v == "inf" else float(v))


def _mean(values: list[float]) -> float:
    vals = [v for v in values if math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def term(row: dict[str, Any], what: str) -> float:
    """The measured gap ("measured"), a bound's gap term value - empirical ("pac-bayes-kl", "covering") or the
    PAC-Bayes-kl complexity (KL + log(2 sqrt(m)/delta)) / m at its chosen sigma ("pac-bayes-kl complexity");
    NaN where there is no value."""
    if what == "measured":
        return float(row["gap"])
    if what == "pac-bayes-kl complexity":
        return _num(row["bounds"]["pac-bayes-kl"].get("complexity"))
    b = row["bounds"][what]
    return _num(b.get("value")) - _num(b.get("empirical"))


def loglog_slope(xs: list[float], ys: list[float]) -> dict[str, Any]:
    """Least-squares slope of log(y) on log(x) over the points with x, y > 0 (None with fewer than 2)."""
    pts = [(x, y) for x, y in zip(xs, ys) if x > 0 and math.isfinite(y) and y > 0]
    out: dict[str, Any] = {"slope": None, "points": len(pts), "of": len(xs)}
    if len({x for x, _ in pts}) >= 2:
        lx, ly = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
        out["slope"] = float(np.polyfit(lx, ly, 1)[0])
    return out


#: the quantities whose slope in m is fitted, in table order
SLOPES = ("measured", "covering", "pac-bayes-kl", "pac-bayes-kl complexity")


def slopes(rows: list[dict[str, Any]], families: tuple[str, ...], clip: float = 1.0) -> dict[str, Any]:
    """Per family: the slope in m of each quantity of SLOPES (mean over seeds per m). PAC-Bayes-kl gap terms
    of near-vacuous certificates (>= 0.9 c) are left out: the kl-inverse saturates there, so they carry no
    rate; measured gaps <= 0 have no logarithm and are left out too (both counted in points / of)."""
    out: dict[str, Any] = {}
    for fam in families:
        mine = [r for r in rows if r["family"] == fam]
        ms = sorted({r["m_train"] for r in mine})
        entry = {}
        for what in SLOPES:
            ys = []
            for m in ms:
                vals = []
                for r in (r for r in mine if r["m_train"] == m):
                    if what == "pac-bayes-kl" and _num(r["bounds"][what].get("value")) >= LEVELS[1] * clip:
                        continue
                    vals.append(term(r, what))
                ys.append(_mean(vals))
            entry[what] = loglog_slope([float(m) for m in ms], ys)
            if what == "covering" and mine and all(r["bounds"][what]["status"] in ("not covered", "refused")
                                                   for r in mine):
                entry[what]["reason"] = mine[0]["bounds"][what]["status"]
        out[fam] = entry
    return out


def vacuity_in_d(points: list[tuple[int, float]], clip: float = 1.0, level: float = 1.0,
                 fit: bool = True) -> dict[str, Any]:
    """Where a bound crosses ``level`` x c as d grows, from (d, value) points (module docstring): the bracket,
    d* interpolated in it and (``fit``) the least-squares power law. ``level`` 1 is vacuity itself, 0.9 a
    bound within 10 % of the trivial one. ``fit=False`` for a bound capped at c (the kl-inverse): a power law
    through a saturating curve would put d* anywhere."""
    by_d: dict[int, list[float]] = {}
    for d, v in points:
        if math.isfinite(v) and v > 0:
            by_d.setdefault(int(d), []).append(math.log(v))
    ds = sorted(by_d)
    logv = {d: float(np.mean(by_d[d])) for d in ds}
    lc = math.log(level * clip)
    below = [d for d in ds if logv[d] < lc]
    above = [d for d in ds if logv[d] >= lc]
    out: dict[str, Any] = {"level": level, "points": [[d, math.exp(logv[d])] for d in ds],
                           "largest_below_d": max(below) if below else None,
                           "smallest_above_d": min(above) if above else None, "d_star": None}
    what = "c" if level == 1.0 else f"{level:g} c"
    out.update(exponent=None, d_star_fit=None, fit_extrapolated=None)
    if fit and len(ds) >= 2:
        # least squares log(value) = a + b log(d) over the distinct d; d where it reaches the level
        b, a = np.polyfit(np.log(ds), [logv[d] for d in ds], 1)
        out["exponent"] = float(b)
        if b > 0:
            d_fit = float(math.exp((lc - a) / b))
            out["d_star_fit"] = d_fit
            out["fit_extrapolated"] = not ds[0] <= d_fit <= ds[-1]
    if not ds:
        out["reading"] = "no values"
    elif not above:
        out["reading"] = f"below {what} at every d measured (up to {ds[-1]})"
    elif not below:
        out["reading"] = f"at or above {what} at every d measured (from {ds[0]})"
    else:
        # the first crossing from below to above, in d order
        for d0, d1 in zip(ds, ds[1:]):
            if logv[d0] < lc <= logv[d1]:
                t = (lc - logv[d0]) / (logv[d1] - logv[d0])
                out["d_star"] = float(math.exp(math.log(d0) + t * (math.log(d1) - math.log(d0))))
                out["reading"] = f"crosses {what} between d = {d0} and d = {d1}"
                break
        else:
            out["reading"] = f"not monotone in d: no single crossing of {what}"
    return out


def analyse(doc: dict[str, Any]) -> dict[str, Any]:
    cfg = doc["config"]
    rows = [r for r in doc["rows"].values()]
    fam, m_t, k_t = TARGET
    target: dict[str, Any] = {"family": fam, "m_train": m_t, "n": 100, "K": k_t}
    hits = [r for r in rows if r["family"] == fam and r["m_train"] == m_t and r["K"] == k_t
            and cfg["problem_n"] == 100]
    if not hits:
        target.update({"pass": None, "verdict": "not measured in this mode"})
    else:
        vals = [_num(r["bounds"]["pac-bayes-kl"]["value"]) for r in hits]
        delta = hits[0]["bounds"]["pac-bayes-kl"]["delta"]
        ok = all(v < 1.0 for v in vals)
        target.update({"values": vals, "delta": delta, "pass": ok,
                       "verdict": f"{'PASS' if ok else 'FAIL'}: PAC-Bayes-kl certificate "
                                  + ", ".join(f"{v:.4f}" for v in vals) + f" (delta = {delta:g}, "
                                  f"{'non-vacuous' if ok else 'vacuous'}; c = 1)"})
    m_v = M_VACUITY if any(r["m_train"] == M_VACUITY for r in rows) else max((r["m_train"] for r in rows),
                                                                              default=None)
    vac = {}
    for name in BOUNDS:
        pts = []
        for r in rows:
            if r["m_train"] != m_v:
                continue
            b = r["bounds"][name]
            if b.get("value") is None:
                continue
            pts.append((int(b.get("d") or r["d"]), _num(b["value"])))
        vac[name] = {"m_train": m_v, "levels": {f"{lv:g}": vacuity_in_d(pts, level=lv, fit=name != "pac-bayes-kl")
                                                for lv in LEVELS}}
    return {"target": target, "slopes": slopes(rows, tuple(cfg["families"])), "vacuity": vac}


# ---- the table ---------------------------------------------------------------------------------------


def _short(v: float) -> str:
    """4 decimals below 10 (so 0.99996 is not shown as 1), 4 significant digits above."""
    return f"{v:.4f}" if abs(v) < 10 else f"{v:.4g}"


def _bound_cell(r: dict[str, Any], name: str) -> str:
    b = r["bounds"][name]
    if b.get("value") is None:
        return b["status"]
    v = _num(b["value"])
    flag = " V" if b["status"] == "vacuous" else " (v)" if v >= LEVELS[1] else ""
    return f"{_short(v)} ({term(r, name):.3g}){flag}"


def table(doc: dict[str, Any]) -> str:
    cfg = doc["config"]
    sess = doc["sessions"][-1]["machine"]
    an = doc.get("analysis") or analyse(doc)
    lines = [f"Generalization bounds vs measured gap; SparseRecovery(m={cfg['problem_m']}, n={cfg['problem_n']}), "
             f"K = {cfg['num_layers']}; mode {cfg['mode']}, seeds {cfg['seeds']}, {sess['cpu_count']} CPU(s), one "
             f"thread per config, workers {doc['sessions'][-1].get('workers')}",
             "Loss: clipped NMSE, c = 1. Bound cells: value (gap term = value - the bound's empirical risk); V = "
             "vacuous (>= c), (v) = near-vacuous (>= 0.9 c). PAC-Bayes-kl: risk of the randomised model Q, delta 0.035 (0.025 + 0.01 Monte "
             "Carlo), prior at the classical initialisation (ALISTA: its own initialisation); covering: delta "
             "0.05. Measured gap: test - train risk [95 % bootstrap interval]; test on "
             f"{cfg['test_size']} fresh samples. d: learned scalars.", "",
             f"Target: {an['target']['family']}, m = {an['target']['m_train']}, n = {an['target']['n']}, "
             f"K = {an['target']['K']}: {an['target']['verdict']}", ""]
    head = ["family", "d", "m", "seed", "train", "test", "measured gap [95% CI]", "PAC-Bayes-kl", "risk of Q",
            "covering", "trivial", "s"]
    lines += table_head(head)
    order = {f: i for i, f in enumerate(FAMILIES)}
    for key in sorted(doc["rows"], key=lambda k: (order.get(doc["rows"][k]["family"], 99),
                                                 doc["rows"][k]["m_train"], doc["rows"][k]["seed"])):
        r = doc["rows"][key]
        lo, hi = r["gap_ci"]
        lines.append(table_row([r["family"], r["d"], r["m_train"], r["seed"], f"{r['train_risk']:.4f}",
                                f"{r['test_risk']:.4f}", f"{r['gap']:+.4f} [{lo:+.4f}, {hi:+.4f}]",
                                _bound_cell(r, "pac-bayes-kl"),
                                f"{r['bounds']['pac-bayes-kl']['posterior_test_risk']:.4f}",
                                _bound_cell(r, "covering"), f"{_num(r['bounds']['trivial']['value']):g}",
                                f"{r['seconds']['total']:.1f}"]))
    lines += ["", "Slope in m (least squares of log(quantity) on log(m), mean over seeds per m; points used / all): "
                  "measured gaps <= 0 and PAC-Bayes-kl gap terms of near-vacuous certificates (>= 0.9 c) left out; "
                  "PAC-Bayes-kl complexity = (KL + log(2 sqrt(m)/delta)) / m at the chosen sigma."]
    lines += table_head(["family", "measured gap", "covering gap term", "PAC-Bayes-kl gap term",
                         "PAC-Bayes-kl complexity"])
    for fam, entry in an["slopes"].items():
        cells = []
        for what in SLOPES:
            e = entry[what]
            cells.append(e["reason"] if e.get("reason") else f"{fmt(e['slope'], '+.3f')} ({e['points']}/{e['of']})")
        lines.append(table_row([fam, *cells]))
    lines += ["", "Vacuity in the parameter count d (m = "
                  f"{next(iter(an['vacuity'].values()))['m_train']}, K = {cfg['num_layers']}; the families' d and "
                  "values (one d: mean of log values); d* interpolated in log-log between the bracket; level 1: "
                  "vacuous (>= c), level 0.9: within 10 % of the trivial bound):"]
    lines += table_head(["bound", "level", "(d: value)", "largest d below", "smallest d at/above",
                         "d* (bracket)", "fit: exponent, d*", "reading"])
    for name, v in an["vacuity"].items():
        for level, e in v["levels"].items():
            pts = ", ".join(f"{d}: {_short(val)}" for d, val in e["points"])
            fit = ("capped at c: no power law" if name == "pac-bayes-kl" else "-") if e["exponent"] is None \
                else f"value ~ d^{e['exponent']:.2f}" + (
                "" if e["d_star_fit"] is None else f", d* = {e['d_star_fit']:.3g}"
                + (" (extrapolated)" if e["fit_extrapolated"] else ""))
            lines.append(table_row([DISPLAY[name], level, pts, fmt(e["largest_below_d"], "d"),
                                    fmt(e["smallest_above_d"], "d"), fmt(e["d_star"], ".3g"), fit, e["reading"]]))
    return "\n".join(lines) + "\n"


# ---- the run -----------------------------------------------------------------------------------------


def run_benchmark(cfg: GenConfig, out_dir: str | Path, resume: bool = False, force: bool = False, workers: int = 1,
                  backend: str = "loky", scheduler: str | None = None, progress: bool = False,
                  log: Callable[[str], None] = log_stderr) -> dict[str, Any]:
    """Every config not yet in the document; returns the JSON document (rewritten after every config)."""
    from unfoldkit.experiments import generalization as gen
    from unfoldkit.experiments.figures.generalization import compact

    run = ResultFile(out_dir, BENCHMARK, FORMAT_VERSION, cfg.to_dict(), resume, machine(threads=1),
                     {"workers": workers, "backend": backend}, force=force, rows={}, failed={})
    doc = run.doc
    settings = cfg.sweep_settings()
    todo = [c for c in gen.configs(settings) if gen.config_key(*c) not in doc["rows"]]

    def save() -> None:
        doc["analysis"] = analyse(doc)
        run.save(table(doc))

    for row in gen.run_configs(settings, todo, workers=workers, backend=backend, scheduler=scheduler,
                               progress=progress, desc=BENCHMARK):
        if row.get("status") != "done":
            doc["failed"][row["key"]] = row.get("error")
            log(f"  {row['key']}: FAILED {row.get('error')}")
        else:
            doc["failed"].pop(row["key"], None)
            doc["rows"][row["key"]] = compact(row)
            pac, cov = row["bounds"]["pac-bayes-kl"], row["bounds"]["covering"]
            log(f"  {row['key']}: gap {row['measured']['gap']:+.4f}, PAC-Bayes-kl {pac['value']:.4g}, covering "
                + (f"{cov['value']:.4g}" if cov.get("value") is not None else cov["status"])
                + f" ({row['seconds']['total']:.1f} s)")
        save()
    save()
    return doc


@command
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: 0, 1 (a config failed) or 2 on a bad argument."""
    from unfoldkit.experiments.hunt import BACKENDS

    p = OneLineParser(prog="python benchmarks/generalization.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="m in 1e2..1e4 (5 sizes), one seed, 20000 test samples "
                                                        "(about 5 minutes on 2 cores)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="first seed (default 0; full mode: S, S+1, S+2)")
    p.add_argument("--workers", type=positive_int, default=1, help="configs in parallel (default 1)")
    p.add_argument("--backend", choices=BACKENDS, default="loky", help="joblib backend (default loky)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="dask scheduler or ray cluster address")
    p.add_argument("--progress", action="store_true", help="a progress bar on stderr")
    output_options(p, DEFAULT_OUT, "skip the configs that are finished")
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    cfg = GenConfig(**{**base.__dict__, "seeds": tuple(args.seed + s for s in base.seeds)})
    start = time.perf_counter()
    try:
        doc = run_benchmark(cfg, args.out, resume=args.resume, force=args.force, workers=args.workers,
                            backend=args.backend, scheduler=args.scheduler, progress=args.progress)
    except ValueError as err:
        if isinstance(err, UsageError):
            raise
        raise UsageError(str(err)) from None
    print(table(doc))
    return finish(time.perf_counter() - start, cfg.mode, output_paths(args.out, BENCHMARK, cfg.mode),
                  sorted(doc["failed"]))


if __name__ == "__main__":
    sys.exit(main())
