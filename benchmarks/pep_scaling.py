"""PEP scaling: solve time and peak memory of the exact worst case after K layers, our Gram SDP vs PEPit.

    python benchmarks/pep_scaling.py [--quick] [--method gd|pgm|agd|fista] [--cap SECONDS] [--engines a,b]
                                     [--out DIR] [--resume | --force]

Problem: the worst case of f(x_K) - f* over F_{0,1} with ||x_0 - x*|| <= 1 for a learned-like schedule (a
fixed seeded draw of steps in [0.5, 1.9]/L, some above 1/L; the schedule for K layers is the first K steps of
the same draw), one SDP per K. Engines, each in its own worker process (so a solve past the cap can be
killed and memory is per engine):

* gram-clarabel: ``theory.pep.gram.solve_gram`` with Clarabel (the default solver of ``pep_worst_case``);
* gram-scs: the same formulation with SCS (first-order; eps 1e-9);
* pepit-clarabel: ``theory.pep.pepit.solve_pepit`` (PEPit 0.5, cvxpy, Clarabel).

Per K: wall time of the solve (model construction + compile + solver), the value, its relative difference
to gram-clarabel, and the worker's peak RSS (``resource.getrusage``, high-water mark: K increases, so it is
the peak of the largest solve so far) above its baseline after imports and a warm-up solve. K = 1..50 for
every engine, then larger K until an engine's solve exceeds the cap (default 60 s); an engine stops at its
first solve past the cap and the table reports the largest K it solved within the cap. ``--quick`` runs a
few K up to 50 with a 20 s cap (under ~3 minutes).

Outputs (``--out``, default benchmarks/out/, git-ignored): ``pep_scaling[_METHOD]_<mode>.json`` (settings,
sessions, per-engine rows; rewritten atomically after every engine, so ``--resume`` skips the engines
that are finished) and ``pep_scaling[_METHOD]_<mode>.txt`` (the table). When these exist, a run needs
``--resume`` (continue) or ``--force`` (start afresh). Bad arguments print one line on stderr, exit status 2.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from unfoldkit.experiments.arguments import OneLineParser
from unfoldkit.experiments.benchmarking import (
    ResultFile, UsageError, Worker, command, finish, machine, output_options, output_paths,
)
from unfoldkit.unrolled.resources import peak_rss_bytes

ENGINES = {"gram-clarabel": ("gram", "CLARABEL"), "gram-scs": ("gram", "SCS"), "pepit-clarabel": ("pepit", "CLARABEL")}
FULL_K = list(range(1, 51)) + [60, 70, 80, 90, 100, 120, 140]
QUICK_K = [1, 2, 5, 10, 20, 30, 40, 50]
SEED, K_MAX = 0, 200
#: bump when the JSON layout changes (a resumed file must have the same version)
FORMAT_VERSION = 1
DEFAULT_OUT = Path(__file__).resolve().parent / "out"


def schedule(K: int, L: float = 1.0) -> np.ndarray:
    """The first K steps of one seeded learned-like draw in [0.5, 1.9] / L."""
    return np.random.default_rng(SEED).uniform(0.5, 1.9, size=K_MAX)[:K] / L


def solve(engine: str, solver: str, method: str, K: int) -> dict[str, Any]:
    """One solve, in the engine's worker process: value, times, status and the process's peak RSS."""
    from unfoldkit.theory.pep.gram import solve_gram
    from unfoldkit.theory.pep.pepit import solve_pepit
    from unfoldkit.theory.pep.problem import make_spec

    spec = make_spec(schedule(K), L=1.0, method=method)
    t0 = time.perf_counter()
    try:
        sol = (solve_gram if engine == "gram" else solve_pepit)(spec, solver=solver)
        out = {"value": sol.value, "status": sol.status, "solver_time": sol.solver_time,
               "gram_size": sol.gram_size, "num_constraints": sol.num_constraints, "duality_gap": sol.duality_gap}
    except RuntimeError as err:
        out = {"value": float("nan"), "status": "failed", "error": str(err)[-300:]}
    out["time"] = time.perf_counter() - t0
    out["rss_peak_mib"] = peak_rss_bytes() / 2**20
    return out


def run_engine(name: str, method: str, ks: list[int], cap: float, log: Any) -> dict[str, Any]:
    """All K for one engine in one worker process; stop at the first solve past ``cap`` seconds."""
    engine, solver = ENGINES[name]
    rows, stopped = [], None
    with Worker(solve) as worker:
        base = worker.call(engine, solver, method, 1)["rss_peak_mib"]  # warm-up: imports, first-call costs
        for K in ks:
            try:
                r = worker.call(engine, solver, method, K, timeout=cap)
            except (TimeoutError, ChildProcessError) as err:  # late (killed), or died (e.g. out of memory)
                stopped = K
                print(f"  {name:15s} K={K:4d}  {err}: stopped", file=log, flush=True)
                break
            r.update(K=K, rss_increase_mib=r["rss_peak_mib"] - base)
            rows.append(r)
            print(f"  {name:15s} K={K:4d}  {r['time']:8.3f} s  value {r['value']:.10g}  {r['status']}",
                  file=log, flush=True)
            if r["time"] > cap:
                stopped = K
                break
    within = [r["K"] for r in rows if r["time"] <= cap and r["status"] != "failed"]
    return {"engine": name, "solver": solver, "baseline_rss_mib": base, "rows": rows, "stopped_at": stopped,
            "largest_K_within_cap": max(within) if within else None}


def _table(results: dict[str, dict[str, Any]], cap: float) -> str:
    names = list(results)
    by_k: dict[int, dict[str, dict[str, Any]]] = {}
    for n in names:
        for r in results[n]["rows"]:
            by_k.setdefault(r["K"], {})[n] = r
    head = f"{'K':>4} " + " ".join(f"{n + ' s':>18} {'MiB':>7}" for n in names) + f" {'max rel diff':>13}"
    lines = [head, "-" * len(head)]
    for K in sorted(by_k):
        cells, vals = [], []
        for n in names:
            r = by_k[K].get(n)
            if r is None:
                cells.append(f"{'-':>18} {'-':>7}")
            else:
                cells.append(f"{r['time']:18.3f} {r['rss_increase_mib']:7.0f}")
                vals.append(r["value"])
        v = np.array(vals, dtype=float)
        diff = float(np.max(np.abs(v - v[0])) / abs(v[0])) if v.size > 1 and np.all(np.isfinite(v)) else float("nan")
        lines.append(f"{K:>4} " + " ".join(cells) + f" {diff:13.1e}")
    lines.append("")
    for n in names:
        lines.append(f"{n}: largest K solved within {cap:.0f} s = {results[n]['largest_K_within_cap']}"
                     + (f" (stopped at K = {results[n]['stopped_at']})" if results[n]["stopped_at"] else ""))
    return "\n".join(lines)


def run_benchmark(method: str, ks: list[int], cap: float, engines: list[str], out_dir: str | Path, mode: str,
                  resume: bool = False, force: bool = False, log: Any = sys.stdout) -> dict[str, Any]:
    """Run every engine of ``engines`` and return the JSON document (also written to ``out_dir``, after
    every engine). With ``resume``, the engines of an existing JSON made with the same settings are kept
    and skipped; without it, existing files need ``force`` (``ResultFile``)."""
    config = {"mode": mode, "method": method, "function_class": "F_{0,1}", "metric": "objective_gap",
              "initial": "||x0-x*||<=1", "schedule": f"seeded uniform[0.5, 1.9]/L (seed {SEED}), prefix of length K",
              "ks": ks, "cap_s": cap}
    run = ResultFile(out_dir, _benchmark(method), FORMAT_VERSION, config, resume, machine(), {"engines": engines},
                     force, results={})
    import cvxpy  # after the checks above: a bad --out or --resume is reported at once
    import PEPit

    run.session.update(cvxpy=cvxpy.__version__, pepit=getattr(PEPit, "__version__", "0.5.x"))
    results = run.doc["results"]
    for name in engines:
        if name in results:
            print(f"  {name}: done already (--resume), skipped", file=log, flush=True)
            continue
        results[name] = run_engine(name, method, ks, cap, log)
        run.save(_table(results, cap) + "\n")
    return run.doc


def _benchmark(method: str) -> str:
    """The file stem of a method's results ("pep_scaling" for gd, "pep_scaling_<method>" otherwise)."""
    return "pep_scaling" + ("" if method == "gd" else f"_{method}")


@command
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: 0, or 2 on a bad argument."""
    parser = OneLineParser(prog="python benchmarks/pep_scaling.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="K in %s, cap 20 s (under ~3 minutes)" % QUICK_K)
    parser.add_argument("--method", default="gd", choices=["gd", "pgm", "agd", "fista"])
    parser.add_argument("--cap", type=float, default=None, help="seconds per solve (default 60, quick 20)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of " + ",".join(ENGINES))
    output_options(parser, DEFAULT_OUT, "skip the engines that are finished")
    args = parser.parse_args(argv)
    cap = args.cap if args.cap is not None else (20.0 if args.quick else 60.0)
    if not cap > 0:
        raise UsageError(f"--cap: must be > 0 seconds, got {args.cap:g}")
    names = [n.strip() for n in args.engines.split(",") if n.strip()]
    bad = [n for n in names if n not in ENGINES] or ([] if names else ["(none given)"])
    if bad:
        raise UsageError(f"--engines: unknown engine(s) {', '.join(bad)}; choose from {', '.join(ENGINES)}")
    ks, mode = (QUICK_K, "quick") if args.quick else (FULL_K, "full")
    print(f"PEP scaling: method {args.method}, F_(0,1), objective gap, K in {ks[0]}..{ks[-1]}, cap {cap:.0f} s, "
          f"{os.cpu_count()} CPU(s)", flush=True)
    t0 = time.perf_counter()
    doc = run_benchmark(args.method, ks, cap, names, args.out, mode, resume=args.resume, force=args.force)
    print()
    print(_table(doc["results"], cap))
    return finish(time.perf_counter() - t0, mode, output_paths(args.out, _benchmark(args.method), mode), [])


if __name__ == "__main__":
    sys.exit(main())
