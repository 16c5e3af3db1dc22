"""Lipschitz bounds of unfolded models: value, tightness and wall time of each certified upper bound on the
last layer, with each cell's peak memory, and the tightness per layer of LISTA, side by side in one run.

    python benchmarks/lipschitz.py [--quick] [--seed S] [--threads N] [--cap SECONDS] [--out DIR]
                                   [--resume | --force]

Grid: LISTA with ISTA's weights (``Lista.from_classical``) and ALISTA with its analytic Frobenius weight and
no support selection (``Alista(problem, K, percent=0, max_percent=0)``) on ``SparseRecovery(m = n/2, n)``
(seeded), for n in NS and K in KS, in float64. Per cell, one ``theory.lipschitz.lipschitz_bounds`` call:
the naive recursion, LipLT, ECLipsE-Fast and the SDP certificate (structured solver, last layer only;
multipliers optimised by first-order descent where n <= ``sdp_optimize_max_n``, otherwise the initial
multipliers, the best of the API's starts (ECLipsE-Fast's, the naive recursion's): a certificate recomputed
from the data, not optimised; the table names the start), and the attained lower bound (modest
search options, smaller ones from n = SMALL_LOWER_FROM_N on). Per method: its bound on Lip(y -> x_K), its
ratio to the lower bound and its wall time (``seconds`` of the result); per cell: the lower bound and its
time, the model's construction time (ALISTA's weight included) and the peak memory. Every (model, n) runs
in its own spawned worker process, K ascending after a tiny warm-up cell, so the worker's peak RSS
(``ru_maxrss``, a high-water mark) above its baseline is that of the largest cell so far, i.e. this cell's;
a cell past ``--cap`` seconds is killed and the larger K of that worker are skipped.

Tightness rows: LISTA at (TIGHT_N, TIGHT_K), at its classical initialisation and after a brief seeded
end-to-end training, every layer: best certified upper / lower (SDP at every layer, multipliers optimised
at every layer; default lower-search options) beside the naive bound / lower, which grows with K.

Targets (full mode; stated with pass/fail in the table): the SDP certificate at n = 100, K = 16 under
60 s (both models), and some certified bound at n = 500, K = 16 under 5 minutes (the fastest method).
``--quick``: n in {50, 100}, K in {4, 8}, tightness at n = 50, K = 8 (under ~3 minutes on 2 cores).

Outputs (``--out``, default benchmarks/out/): ``lipschitz_<mode>.json`` (settings, sessions, cells,
tightness rows; rewritten after every cell, so ``--resume`` skips the finished ones) and
``lipschitz_<mode>.txt`` (the tables). An earlier run's files are replaced only with ``--force``.
"""
from __future__ import annotations

import copy
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from unfoldkit.experiments.arguments import OneLineParser, nonneg_int
from unfoldkit.experiments.benchmarking import (
    ResultFile, Settings, Worker, cap_seconds, command, finish, fmt, log_stderr, machine, output_options,
    output_paths, table_head, table_row, worker_options,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "out"
BENCHMARK = "lipschitz"
#: bump when the JSON layout changes (a resumed file must have the same version)
FORMAT_VERSION = 1
FAMILIES = ("lista", "alista")
METHODS = ("naive", "liplt", "eclipse-fast", "sdp")
DISPLAY = {"naive": "naive", "liplt": "LipLT", "eclipse-fast": "ECLipsE-Fast", "sdp": "SDP"}
#: the targets: SDP certificate at (n, K) within seconds; some certified bound at (n, K) within seconds
SDP_TARGET = (100, 16, 60.0)
ANY_TARGET = (500, 16, 300.0)


@dataclass(frozen=True)
class LipConfig(Settings):
    """The numbers of a run (stored in its JSON; ``--resume`` needs them unchanged)."""

    mode: str
    ns: tuple[int, ...]
    ks: tuple[int, ...]
    seed: int = 0
    families: tuple[str, ...] = FAMILIES
    sdp_optimize_max_n: int = 100
    sdp_iters: int = 300
    lower_modest: tuple[int, int] = (8, 20)       # (starts, ascent_steps) below small_lower_from_n
    lower_small: tuple[int, int] = (4, 10)
    small_lower_from_n: int = 250
    tight_n: int = 100
    tight_k: int = 16
    tight_lower: tuple[int, int, int, int] = (16, 50, 16, 100)  # (starts, ascent, steer_starts, steer_steps)
    tight_sdp_optimize: str = "all"
    train_epochs: int = 20
    train_steps: int = 25
    train_lr: float = 1e-3
    cap_s: float = 900.0


QUICK = LipConfig(mode="quick", ns=(50, 100), ks=(4, 8), tight_n=50, tight_k=8, tight_lower=(8, 20, 8, 50),
                  train_epochs=5, train_steps=20, cap_s=300.0)
FULL = LipConfig(mode="full", ns=(50, 100, 250, 500), ks=(4, 8, 16))


def _model(family: str, n: int, num_layers: int, seed: int):
    """(problem, float32 model) of ``family`` on SparseRecovery(m = n/2, n)."""
    from unfoldkit.unrolled.models import Alista, Lista
    from unfoldkit.unrolled.problems.sparse import SparseRecovery

    problem = SparseRecovery(m=n // 2, n=n, seed=seed)
    if family == "lista":
        model = Lista.from_classical(problem, num_layers)
    elif family == "alista":
        model = Alista(problem, num_layers, percent=0.0, max_percent=0.0)
    else:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return problem, model


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _scalars(d: dict[str, Any]) -> dict[str, Any]:
    """The scalar fields of a solver's evidence (its arrays left out)."""
    return {k: v for k, v in d.items() if isinstance(v, (str, int, float, bool)) or v is None}


def cell(family: str, n: int, num_layers: int, cfg: dict[str, Any], threads: int = 1) -> dict[str, Any]:
    """One grid cell (in its worker process): every method's last-layer bound, ratio and wall time, with
    ``threads`` torch and BLAS threads (0: unchanged)."""
    import torch

    from unfoldkit.theory.lipschitz import lipschitz_bounds
    from unfoldkit.unrolled.resources import peak_rss_bytes
    from unfoldkit.unrolled.training.threads import limit_threads

    start = time.perf_counter()
    _, model = _model(family, n, num_layers, cfg["seed"])
    model = model.to(torch.float64)
    build_s = time.perf_counter() - start
    optimize = "last" if n <= cfg["sdp_optimize_max_n"] else "none"
    starts, ascent = cfg["lower_small"] if n >= cfg["small_lower_from_n"] else cfg["lower_modest"]
    with warnings.catch_warnings(record=True) as caught, limit_threads(threads or None):
        warnings.simplefilter("always", RuntimeWarning)
        r = lipschitz_bounds(model, methods=METHODS, sdp_solver="structured", sdp_layers="last",
                             sdp_optimize=optimize, sdp_iters=cfg["sdp_iters"], lower=True,
                             lower_options={"starts": starts, "ascent_steps": ascent}, seed=cfg["seed"])
    lower = float(r.lower[-1])
    methods = {}
    for name in METHODS:
        value = float(r.upper[name][-1]) if name in r.upper else math.nan
        methods[name] = {"value": _finite(value), "ratio": _finite(value / lower) if lower > 0 else None,
                         "seconds": r.seconds.get(name)}
    sdp = r.evidence.get("sdp", {}).get(num_layers, {})
    methods["sdp"]["mode"] = "optimised" if optimize == "last" else "initial certificate, not optimised"
    methods["sdp"]["evidence"] = {**_scalars(sdp), "start_bounds": sdp.get("start_bounds")}
    peak = peak_rss_bytes()
    return {"family": family, "n": n, "m": n // 2, "K": num_layers, "status": "done", "finite": r.finite,
            "reason": r.reason, "methods": methods, "lower": lower, "lower_seconds": r.seconds.get("lower"),
            "lower_options": {"starts": starts, "ascent_steps": ascent},
            "lower_jacobian": r.lower_detail.get("jacobian_method"), "best_method": r.best_method()[-1],
            "build_seconds": build_s, "peak_rss_mib": None if peak is None else peak / 2**20,
            "warnings": sorted({str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)})[:5]}


def tightness(state: str, cfg: dict[str, Any], threads: int = 1) -> dict[str, Any]:
    """LipLT at (tight_n, tight_k), classical init or briefly trained: per layer best upper / lower."""
    import numpy as np
    import torch

    from unfoldkit.theory.lipschitz import lipschitz_bounds
    from unfoldkit.unrolled.training.threads import limit_threads
    from unfoldkit.unrolled.training.trainer import train

    n, num_layers, seed = cfg["tight_n"], cfg["tight_k"], cfg["seed"]
    problem, model = _model("lista", n, num_layers, seed)
    out: dict[str, Any] = {"state": state, "n": n, "m": n // 2, "K": num_layers}
    with limit_threads(threads or None):
        if state == "trained":
            start = time.perf_counter()
            res = train(model, problem, "end-to-end", epochs=cfg["train_epochs"], steps_per_epoch=cfg["train_steps"],
                        batch_size=64, lr=cfg["train_lr"], val_size=500, seed=seed, progress=False)
            out["training"] = {"scheme": "end-to-end", "epochs": res.epochs_run,
                               "steps_per_epoch": cfg["train_steps"], "lr": cfg["train_lr"],
                               "seconds": time.perf_counter() - start,
                               "val_nmse_db_K_before": res.history[0]["val_nmse_db"][-1],
                               "val_nmse_db_K_after": res.final_val_nmse_db[-1]}
        model = copy.deepcopy(model).to(torch.float64)
        starts, ascent, steer_starts, steer_steps = cfg["tight_lower"]
        start = time.perf_counter()
        r = lipschitz_bounds(model, methods=METHODS, sdp_solver="structured", sdp_layers="all",
                             sdp_optimize=cfg["tight_sdp_optimize"], sdp_iters=cfg["sdp_iters"], lower=True,
                             lower_options={"starts": starts, "ascent_steps": ascent, "steer_starts": steer_starts,
                                            "steer_steps": steer_steps}, seed=seed)
    lower = np.asarray(r.lower, dtype=float)
    out.update({"seconds": time.perf_counter() - start, "method_seconds": r.seconds, "finite": r.finite,
                "reason": r.reason, "lower": lower.tolist(), "best_upper": r.best_upper().tolist(),
                "best_method": r.best_method(), "ratio": r.ratio().tolist(),
                "upper": {k: v.tolist() for k, v in r.upper.items()},
                "naive_ratio": (np.asarray(r.upper["naive"]) / lower).tolist() if "naive" in r.upper else None})
    return out


def _warm_up(threads: int) -> float:
    """A tiny cell (first-use costs of torch and the solvers), then the worker's baseline peak RSS in MiB."""
    from unfoldkit.unrolled.resources import peak_rss_bytes

    cell("lista", 8, 2, {**QUICK.to_dict(), "lower_modest": (2, 2)}, threads)
    peak = peak_rss_bytes()
    return math.nan if peak is None else peak / 2**20


def _serve(kind: str, *args: Any) -> Any:
    """The worker's entry point (a module-level function, so that spawn can pickle it)."""
    return {"warm-up": _warm_up, "cell": cell, "tightness": tightness}[kind](*args)


def cell_key(family: str, n: int, num_layers: int) -> str:
    return f"{family} n={n} K={num_layers}"


def _run_group(family: str, n: int, cfg: LipConfig, doc: dict[str, Any], save: Callable[[], None], isolate: bool,
               threads: int, log: Callable[[str], None]) -> None:
    """Every K of (family, n) not yet in ``doc["cells"]``, K ascending, in one worker (or in this process)."""
    todo = [k for k in cfg.ks if cell_key(family, n, k) not in doc["cells"]]
    if not todo:
        return
    settings = cfg.to_dict()
    worker = Worker(_serve) if isolate else None
    try:
        base = worker.call("warm-up", threads, timeout=cfg.cap_s) if worker else None
        for i, k in enumerate(todo):
            key = cell_key(family, n, k)
            try:
                row = worker.call("cell", family, n, k, settings, threads, timeout=cfg.cap_s) if worker else \
                    cell(family, n, k, settings, threads)
            except (TimeoutError, ChildProcessError) as err:
                doc["cells"][key] = {"family": family, "n": n, "m": n // 2, "K": k, "status": "stopped",
                                     "error": str(err)}
                for later in todo[i + 1:]:
                    doc["cells"][cell_key(family, n, later)] = {
                        "family": family, "n": n, "m": n // 2, "K": later, "status": "skipped",
                        "error": f"K={k} stopped ({err})"}
                save()
                log(f"  {key}: {err}; larger K skipped")
                return
            if worker is not None and base is not None and row["peak_rss_mib"] is not None:
                row["peak_rss_increase_mib"] = row["peak_rss_mib"] - base
                row["baseline_rss_mib"] = base
            doc["cells"][key] = row
            save()
            times = ", ".join(f"{DISPLAY[m]} {row['methods'][m]['seconds'] or math.nan:.2f} s" for m in METHODS)
            log(f"  {key}: lower {row['lower']:.4g} ({row['lower_seconds']:.1f} s); {times}")
    finally:
        if worker is not None:
            worker.close()


def _target_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    cells = doc["cells"]
    out = []
    n, k, cap = SDP_TARGET
    rows = [cells.get(cell_key(f, n, k)) for f in doc["config"]["families"]]
    label = f"SDP certificate at n={n}, K={k} under {cap:.0f} s"
    if all(r is None for r in rows):
        out.append({"target": label, "pass": None, "verdict": "not measured in this mode"})
    else:
        times = {r["family"]: (r["methods"]["sdp"]["seconds"] if r and r.get("status") == "done" else None)
                 for r in rows if r}
        ok = len(times) == len(rows) and all(t is not None and t < cap for t in times.values())
        detail = ", ".join(f"{f} {fmt(t, '.1f', 'not done')} s" for f, t in times.items())
        out.append({"target": label, "pass": ok, "seconds": times, "verdict": f"{'PASS' if ok else 'FAIL'} ({detail})"})
    n, k, cap = ANY_TARGET
    rows = [cells.get(cell_key(f, n, k)) for f in doc["config"]["families"]]
    label = f"some certified bound at n={n}, K={k} under {cap:.0f} s"
    if all(r is None for r in rows):
        out.append({"target": label, "pass": None, "verdict": "not measured in this mode"})
    else:
        fastest = {}
        for r in rows:
            if r and r.get("status") == "done":
                done = [(m["seconds"], name) for name, m in r["methods"].items()
                        if m["value"] is not None and m["seconds"] is not None]
                fastest[r["family"]] = min(done) if done else (None, None)
        ok = len(fastest) == len(rows) and all(t is not None and t < cap for t, _ in fastest.values())
        detail = ", ".join(f"{f}: {DISPLAY.get(name, name)} {fmt(t, '.1f')} s" for f, (t, name) in fastest.items())
        out.append({"target": label, "pass": ok, "fastest": {f: {"method": name, "seconds": t}
                                                             for f, (t, name) in fastest.items()},
                    "verdict": f"{'PASS' if ok else 'FAIL'} ({detail or 'no cell finished'})"})
    return out


def _method_cell(m: dict[str, Any]) -> str:
    if m["value"] is None:
        return "-"
    return f"{m['value']:.4g} ({fmt(m['ratio'], '.3g')}x) {fmt(m['seconds'], '.2f')} s"


def table(doc: dict[str, Any]) -> str:
    cfg = doc["config"]
    sess = doc["sessions"][-1]["machine"]
    commits = ", ".join(sorted({str((s.get("code") or {}).get("commit")) for s in doc["sessions"]}))
    lines = [f"Lipschitz bounds of y -> x_K (l2), last layer K; mode {cfg['mode']}, seed {cfg['seed']}, "
             f"{sess['cpu_count']} CPU(s), torch threads {sess['torch_threads']}; code at commit(s) {commits}",
             "Each method: bound (bound / attained lower) wall time. SDP: structured solver, last layer only; "
             f"multipliers optimised ({cfg['sdp_iters']} descent steps) where n <= {cfg['sdp_optimize_max_n']}, "
             "else the initial certificate, NOT optimised (SDP mode column; its start: the best of the "
             "ECLipsE-Fast and naive-recursion multipliers).",
             f"Lower: attained lower bound, search starts/ascent steps {cfg['lower_modest'][0]}/"
             f"{cfg['lower_modest'][1]} (n < {cfg['small_lower_from_n']}), {cfg['lower_small'][0]}/"
             f"{cfg['lower_small'][1]} from n = {cfg['small_lower_from_n']} on, then the chain-guided smoothed-pattern "
             "ascent at its defaults (ceil(starts / 8) starts per layer, 50 steps per temperature). Peak: worker's "
             "peak RSS above its baseline (MiB).", "", "Targets:"]
    for t in doc.get("targets", []):
        lines.append(f"  {t['target']}: {t['verdict']}")
    lines.append("")
    head = ["model", "n", "m", "K", *(DISPLAY[m] for m in METHODS), "SDP mode", "lower", "lower s", "build s",
            "peak MiB"]
    lines += table_head(head)
    for key in sorted(doc["cells"], key=lambda s: (FAMILIES.index(doc["cells"][s]["family"]), doc["cells"][s]["n"],
                                                   doc["cells"][s]["K"])):
        r = doc["cells"][key]
        if r.get("status") != "done":
            lines.append(table_row([r["family"], r["n"], r["m"], r["K"], f"{r['status']}: {r.get('error', '')[:60]}",
                                    *[""] * (len(head) - 5)]))
            continue
        start = str(r["methods"]["sdp"]["evidence"].get("init", "?")).replace(" multipliers", "")
        sdp_mode = ("optimised" if r["methods"]["sdp"]["mode"] == "optimised" else "not optimised") + f" ({start})"
        lines.append(table_row([r["family"], r["n"], r["m"], r["K"], *(_method_cell(r["methods"][m]) for m in METHODS),
                                sdp_mode, f"{r['lower']:.4g}", fmt(r["lower_seconds"], ".1f"),
                                fmt(r["build_seconds"], ".2f"), fmt(r.get("peak_rss_increase_mib"), ".0f")]))
    tight = doc.get("tightness", {})
    if tight:
        lines += ["", f"Tightness per layer: LISTA n={cfg['tight_n']}, m={cfg['tight_n'] // 2}, K={cfg['tight_k']}; "
                      f"SDP at every layer, multipliers optimised at layers: {cfg['tight_sdp_optimize']}; lower "
                      f"search {cfg['tight_lower'][0]}/{cfg['tight_lower'][1]} starts/ascent steps, steering "
                      f"{cfg['tight_lower'][2]} starts per layer x {cfg['tight_lower'][3]} steps per temperature. "
                      "ratio = best certified upper / "
                      "attained lower; naive = naive bound / lower."]
        for state, row in tight.items():
            if state == "trained" and "training" in row:
                tr = row["training"]
                lines.append(f"  trained: end-to-end, {tr['epochs']} x {tr['steps_per_epoch']} steps, lr {tr['lr']:g}, "
                             f"{tr['seconds']:.1f} s; validation NMSE at layer K {tr['val_nmse_db_K_before']:.2f} -> "
                             f"{tr['val_nmse_db_K_after']:.2f} dB")
            lines.append(f"  {state}: {row['seconds']:.1f} s (" + ", ".join(
                f"{k} {v:.1f} s" for k, v in row["method_seconds"].items()) + ")")
        states = list(tight)
        head = ["k", *(f"{s} {c}" for s in states for c in ("lower", "best upper", "ratio", "best method", "naive"))]
        lines += table_head(head)
        for k in range(cfg["tight_k"]):
            cells = [k + 1]
            for s in states:
                row = tight[s]
                cells += [f"{row['lower'][k]:.4g}", f"{row['best_upper'][k]:.4g}", f"{row['ratio'][k]:.3f}",
                          DISPLAY.get(row["best_method"][k], row["best_method"][k]),
                          fmt(row["naive_ratio"][k] if row["naive_ratio"] else None, ".3f")]
            lines.append(table_row(cells))
    return "\n".join(lines) + "\n"


def code_version() -> dict[str, Any]:
    """The repository's commit and whether theory/lipschitz differs from it (the bounds' code changes
    between commits, so a resumed run across commits mixes versions: each session records its own)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "theory/lipschitz"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "theory_lipschitz_modified": None}
    return {"commit": head or None, "theory_lipschitz_modified": bool(dirty)}


def run_benchmark(cfg: LipConfig, out_dir: str | Path, resume: bool = False, force: bool = False,
                  isolate: bool = True, threads: int = 1, log: Callable[[str], None] = log_stderr) -> dict[str, Any]:
    """The grid and the tightness rows; returns the JSON document (also written to ``out_dir`` after every
    cell). ``isolate``: each (model, n) in its own spawned worker (peak memory per cell, cells past
    ``cfg.cap_s`` killed); otherwise everything in this process (tests; no peak per cell)."""
    run = ResultFile(out_dir, BENCHMARK, FORMAT_VERSION, cfg.to_dict(), resume, machine(threads=threads),
                     {"isolated": isolate, "code": code_version()}, force=force, cells={}, tightness={}, targets=[])
    doc = run.doc

    def save() -> None:
        doc["targets"] = _target_rows(doc)
        run.save(table(doc))

    for n in cfg.ns:
        for family in cfg.families:
            _run_group(family, n, cfg, doc, save, isolate, threads, log)
    for state in ("init", "trained"):
        if state in doc["tightness"]:
            continue
        log(f"  tightness: LISTA {state}, n={cfg.tight_n}, K={cfg.tight_k}")
        if isolate:
            with Worker(_serve) as worker:
                try:
                    row = worker.call("tightness", state, cfg.to_dict(), threads, timeout=cfg.cap_s)
                except (TimeoutError, ChildProcessError) as err:
                    log(f"  tightness {state}: {err}")
                    continue
        else:
            row = tightness(state, cfg.to_dict(), threads)
        doc["tightness"][state] = row
        save()
    save()
    return doc


@command
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: 0, or 2 on a bad argument."""
    p = OneLineParser(prog="python benchmarks/lipschitz.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="n in 50, 100, K in 4, 8; tightness at n=50, K=8 "
                                                        "(under ~3 minutes)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="problem, lower-search and training seed (default 0)")
    worker_options(p, "torch and BLAS threads per worker (default 1; 0 = torch's default)")
    output_options(p, DEFAULT_OUT, "skip the cells and tightness rows that are finished")
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    cap = cap_seconds(args.cap, base.cap_s)
    cfg = LipConfig(**{**base.__dict__, "seed": args.seed, "cap_s": cap})
    start = time.perf_counter()
    doc = run_benchmark(cfg, args.out, resume=args.resume, force=args.force, threads=args.threads)
    print(table(doc))
    failed = [k for k, r in doc["cells"].items() if r.get("status") != "done"]
    failed += [f"tightness {s}" for s in ("init", "trained") if s not in doc["tightness"]]
    return finish(time.perf_counter() - start, cfg.mode, output_paths(args.out, BENCHMARK, cfg.mode), failed)


if __name__ == "__main__":
    sys.exit(main())
