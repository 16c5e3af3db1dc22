"""PEP scaling: solve time and peak memory of the exact worst case after K layers, our Gram SDP vs PEPit.

    python benchmarks/pep_scaling.py [--quick | --long | --side-by-side] [--method gd|pgm|agd|fista|ogm|...]
                                     [--schedule learned|constant] [--cap SECONDS] [--engines a,b]
                                     [--out DIR] [--resume | --force]

Problem: the worst case of f(x_K) - f* over F_{0,1} with ||x_0 - x*|| <= 1 for a learned-like schedule (a
fixed seeded draw of steps in [0.5, 1.9]/L, some above 1/L; the schedule for K layers is the first K steps of
the same draw), one SDP per K. Engines, each in its own worker process (so a solve past the cap can be
killed and memory is per engine):

* gram-clarabel: ``theory.pep.gram.solve_gram`` with Clarabel (the default solver of ``pep_worst_case``);
* gram-scs: the same formulation with SCS (first-order; eps 1e-9);
* pepit-clarabel: ``theory.pep.pepit.solve_pepit`` (PEPit 0.5, cvxpy, Clarabel);
* gram-generation: the same exact worst case by constraint generation
  (``theory.pep.constraint_generation.solve_generation``, SCS eps 1e-9; certificate on the full program);
  also reports the pairs used (of all) and the rounds;
* pepit-scs: PEPit with SCS (cvxpy's default SCS settings, looser than ours: the comparison favours PEPit);
  pepit-scs-tight: the same with our SCS tolerances (eps 1e-9); gram-generation-clarabel: generation with
  Clarabel (dense sub-program through cvxpy);
* gram-generation-all-layers: the per-layer Bound, every N = 0..K (``pep_bound(..., formulation="generation")``),
  run only at K in PER_LAYER_KS.

``--long``: K = 10..200 (LONG_K) for gram-generation and, up to LONG_FULL_MAX_K (its dense rows: ~3.5 GB at
K = 120), the full formulation with SCS for agreement; then the per-layer Bound at K = 50 and 100; cap 300 s;
and the pairs that carry non-zero multipliers in the full formulation at K = 5, 10, 20 (ACTIVE_KS).
``--side-by-side``: K = 70 only, gram-generation beside PEPit with the same solver (SCS, cvxpy's default and our
tolerances) and with Clarabel, our full formulation with Clarabel and generation with Clarabel; cap 600 s. ``--schedule constant``: steps 1/L instead of the learned-like
draw. Statuses other than 'optimal' (e.g. PEPit's 'optimal_inaccurate') are flagged in the table.

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

ENGINES = {"gram-clarabel": ("gram", "CLARABEL"), "gram-scs": ("gram", "SCS"), "pepit-clarabel": ("pepit", "CLARABEL"),
           "gram-generation": ("generation", "SCS"), "pepit-scs": ("pepit", "SCS"),
           "gram-generation-all-layers": ("generation-all-layers", "SCS"),
           "gram-generation-clarabel": ("generation", "CLARABEL"), "pepit-scs-tight": ("pepit-tight", "SCS")}
#: pepit-scs-tight: PEPit's SCS solve with our SCS tolerances (pep.gram.SOLVER_OPTIONS["SCS"])
PEPIT_TIGHT_SCS = {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000}
#: the engines of --quick and the full run (the original three)
DEFAULT_ENGINES = ("gram-clarabel", "gram-scs", "pepit-clarabel")
LONG_ENGINES = ("gram-generation", "gram-scs", "gram-generation-all-layers")
SIDE_BY_SIDE_ENGINES = ("gram-generation", "pepit-scs", "pepit-clarabel", "gram-clarabel", "pepit-scs-tight",
                        "gram-generation-clarabel")
FULL_K = list(range(1, 51)) + [60, 70, 80, 90, 100, 120, 140]
QUICK_K = [1, 2, 5, 10, 20, 30, 40, 50]
LONG_K = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 120, 140, 160, 180, 200]
SIDE_BY_SIDE_K = [70]
#: --long: the full formulation (dense rows over all pairs) only up to this K (memory)
LONG_FULL_MAX_K = 120
#: the per-layer Bound (every N = 0..K) is timed at these K only
PER_LAYER_KS = (50, 100)
SCHEDULES = ("learned", "constant")
#: --long: the active pairs of the full formulation are measured at these K
ACTIVE_KS = (5, 10, 20)
SEED, K_MAX = 0, 200
#: bump when the JSON layout changes (a resumed file must have the same version)
FORMAT_VERSION = 1
DEFAULT_OUT = Path(__file__).resolve().parent / "out"


def schedule(K: int, L: float = 1.0, kind: str = "learned") -> np.ndarray:
    """The first K steps of one seeded learned-like draw in [0.5, 1.9] / L, or the constant 1/L."""
    if kind == "constant":
        return np.full(K, 1.0 / L)
    return np.random.default_rng(SEED).uniform(0.5, 1.9, size=K_MAX)[:K] / L


#: the step-matrix methods of theory.pep.methods benchmarked with --method (L = 1, mu = 0.1 where strongly
#: convex), each with the metric and initial condition of its PEPit example (tests/test_pep_methods.py)
LINEAR_METHODS = ("ogm", "ogm-g", "heavy-ball", "triple-momentum", "agd-strongly-convex", "silver-strongly-convex")
LINEAR_MU = 0.1


def bench_spec(method: str, K: int, kind: str = "learned") -> Any:
    """The PepSpec of a step-matrix method with K layers (``kind`` is unused: these methods fix their steps)."""
    import math

    from unfoldkit.theory.bound import Metric
    from unfoldkit.theory.pep import methods as M
    from unfoldkit.theory.pep.problem import make_linear_spec

    mu = LINEAR_MU
    if method == "ogm":
        return make_linear_spec(M.ogm(K, 1.0), L=1.0)
    if method == "ogm-g":
        return make_linear_spec(M.ogm_g(K, 1.0), L=1.0, metric=Metric.SQ_GRAD_NORM, initial="function")
    if method == "heavy-ball":
        alpha = 0.5
        return make_linear_spec(M.heavy_ball(alpha, math.sqrt((1 - alpha * mu) * (1 - alpha)), K), L=1.0, mu=mu,
                                initial="function")
    if method == "triple-momentum":
        return make_linear_spec(M.triple_momentum(mu, 1.0, K), L=1.0, mu=mu)
    if method == "agd-strongly-convex":
        return make_linear_spec(M.agd_strongly_convex(mu, 1.0, K), L=1.0, mu=mu, initial="lyapunov")
    steps = M.silver_strongly_convex_steps(K, mu, 1.0)[0]
    return make_linear_spec(M.gradient_method(steps), L=1.0, mu=mu, metric=Metric.SQ_DISTANCE)


def solve(engine: str, solver: str, method: str, K: int, kind: str = "learned") -> dict[str, Any]:
    """One solve, in the engine's worker process: value, times, status and the process's peak RSS."""
    from unfoldkit.theory.pep.constraint_generation import solve_generation
    from unfoldkit.theory.pep.gram import solve_gram
    from unfoldkit.theory.pep.pepit import solve_pepit
    from unfoldkit.theory.pep.problem import make_spec
    from unfoldkit.theory.pep.worst_case import pep_bound

    spec = bench_spec(method, K, kind) if method in LINEAR_METHODS else make_spec(schedule(K, kind=kind), L=1.0,
                                                                                   method=method)
    t0 = time.perf_counter()
    try:
        extra: dict[str, Any] = {}
        if engine == "generation-all-layers":
            b = pep_bound(spec, layers="all", solver=solver, formulation="generation")
            sol = None
            out = {"value": float(b.values[-1]), "status": "optimal" if all(
                st in ("optimal", "closed_form") for st in b.extra["solver_status"]) else "mixed",
                   "solver_time": float(np.nansum(b.extra["solver_time"])), "layers": len(b.values),
                   "per_layer_values": [float(v) for v in b.values],
                   "max_duality_gap": float(np.nanmax(b.extra["duality_gap"])),
                   "generation_pairs": b.extra["generation_pairs"][-1],
                   "generation_pairs_total": b.extra["generation_pairs_total"][-1]}
        elif engine == "generation":
            sol, info = solve_generation(spec, solver=solver)
            extra = {"rounds": info.rounds, "pairs_used": info.pairs_used, "pairs_total": info.pairs_total,
                     "added_per_round": info.added}
        elif engine == "pepit-tight":
            sol = _pepit_tight(spec, solver)
        else:
            sol = (solve_gram if engine == "gram" else solve_pepit)(spec, solver=solver)
        if sol is not None:
            out = {"value": sol.value, "status": sol.status, "solver_time": sol.solver_time,
                   "gram_size": sol.gram_size, "num_constraints": sol.num_constraints,
                   "duality_gap": sol.duality_gap, "primal_residual": sol.primal_residual,
                   "dual_residual": sol.dual_residual, **extra}
    except RuntimeError as err:
        out = {"value": float("nan"), "status": "failed", "error": str(err)[-300:]}
    out["time"] = time.perf_counter() - t0
    out["rss_peak_mib"] = peak_rss_bytes() / 2**20
    return out


def _pepit_tight(spec: Any, solver: str) -> Any:
    """``solve_pepit`` with PEPit's solver options set to ours (this worker process only)."""
    from PEPit import PEP

    from unfoldkit.theory.pep.pepit import solve_pepit

    original = PEP.solve

    def tight(self: Any, *args: Any, **kwargs: Any) -> Any:
        return original(self, *args, **{**kwargs, **PEPIT_TIGHT_SCS})

    PEP.solve = tight
    try:
        return solve_pepit(spec, solver=solver)
    finally:
        PEP.solve = original


def engine_ks(name: str, ks: list[int], mode: str) -> list[int]:
    """The K an engine runs: all of ``ks``, except the per-layer Bound (PER_LAYER_KS only) and, in --long, the
    full formulation (K <= LONG_FULL_MAX_K)."""
    if name == "gram-generation-all-layers":
        return [K for K in ks if K in PER_LAYER_KS]
    if mode == "long" and ENGINES[name][0] in ("gram", "pepit"):
        return [K for K in ks if K <= LONG_FULL_MAX_K]
    return list(ks)


def run_engine(name: str, method: str, ks: list[int], cap: float, log: Any, kind: str = "learned"
               ) -> dict[str, Any]:
    """All K for one engine in one worker process; stop at the first solve past ``cap`` seconds."""
    engine, solver = ENGINES[name]
    rows, stopped = [], None
    with Worker(solve) as worker:
        warm = "generation" if engine == "generation-all-layers" else engine
        base = worker.call(warm, solver, method, 1, kind)["rss_peak_mib"]  # warm-up: imports, first-call costs
        for K in ks:
            try:
                r = worker.call(engine, solver, method, K, kind, timeout=cap)
            except (TimeoutError, ChildProcessError) as err:  # late (killed), or died (e.g. out of memory)
                stopped = K
                print(f"  {name:15s} K={K:4d}  {err}: stopped", file=log, flush=True)
                break
            r.update(K=K, rss_increase_mib=r["rss_peak_mib"] - base)
            rows.append(r)
            how = (f"  pairs {r['pairs_used']}/{r['pairs_total']}, {r['rounds']} round(s)"
                   if "pairs_used" in r else "")
            print(f"  {name:15s} K={K:4d}  {r['time']:8.3f} s  value {r['value']:.10g}  {r['status']}{how}",
                  file=log, flush=True)
            if r["time"] > cap:
                stopped = K
                break
    within = [r["K"] for r in rows if r["time"] <= cap and r["status"] != "failed"]
    return {"engine": name, "solver": solver, "baseline_rss_mib": base, "rows": rows, "stopped_at": stopped,
            "largest_K_within_cap": max(within) if within else None}


def _table(results: dict[str, dict[str, Any]], cap: float, active: list[dict[str, Any]] | None = None) -> str:
    names = list(results)
    by_k: dict[int, dict[str, dict[str, Any]]] = {}
    for n in names:
        for r in results[n]["rows"]:
            by_k.setdefault(r["K"], {})[n] = r
    head = f"{'K':>4} " + " ".join(f"{n + ' s':>18} {'MiB':>7}" for n in names) + f" {'max rel diff':>13}"
    lines = [head, "-" * len(head)]
    flagged = False
    for K in sorted(by_k):
        cells, vals = [], []
        for n in names:
            r = by_k[K].get(n)
            if r is None:
                cells.append(f"{'-':>18} {'-':>7}")
            else:
                flag = "" if r["status"] in ("optimal", "unbounded") else "*"
                flagged |= bool(flag)
                cells.append(f"{r['time']:17.3f}{flag or ' '} {r['rss_increase_mib']:7.0f}")
                if n != "gram-generation-all-layers":
                    vals.append(r["value"])
        v = np.array(vals, dtype=float)
        diff = float(np.max(np.abs(v - v[0])) / abs(v[0])) if v.size > 1 and np.all(np.isfinite(v)) else float("nan")
        lines.append(f"{K:>4} " + " ".join(cells) + f" {diff:13.1e}")
    lines.append("")
    if flagged:
        lines.append("* status not 'optimal' (e.g. 'optimal_inaccurate'; see the JSON): its value is the "
                     "solver's, flagged")
    for n in names:
        lines.append(f"{n}: largest K solved within {cap:.0f} s = {results[n]['largest_K_within_cap']}"
                     + (f" (stopped at K = {results[n]['stopped_at']})" if results[n]["stopped_at"] else ""))
        pairs = [f"K={r['K']}: {r['pairs_used']}/{r['pairs_total']} pairs, {r['rounds']} round(s)"
                 for r in results[n]["rows"] if "pairs_used" in r]
        if pairs:
            lines.append(f"  {n} pairs used: " + "; ".join(pairs))
        per_layer = [f"K={r['K']}: all {r['layers']} layers in {r['time']:.1f} s"
                     for r in results[n]["rows"] if "layers" in r]
        if per_layer:
            lines.append(f"  {n}: " + "; ".join(per_layer) + " (values compared at the last layer: not in "
                         "the max rel diff column)")
    for row in active or ():
        for solver in ("CLARABEL", "SCS"):
            a = row[solver]
            if "classes" in a:
                lines.append(f"active pairs K={row['K']} (full formulation, {solver}): {a['num_active']} of "
                             f"{a['num_pairs']} > 1e-6 x max multiplier, {a['classes']}")
        g = row["generation"]
        lines.append(f"  generation at K={row['K']}: {g['pairs_used']} of {g['pairs_total']} pairs, {g['rounds']} "
                     "round(s)")
    return "\n".join(lines)


def run_benchmark(method: str, ks: list[int], cap: float, engines: list[str], out_dir: str | Path, mode: str,
                  resume: bool = False, force: bool = False, log: Any = sys.stdout, kind: str = "learned"
                  ) -> dict[str, Any]:
    """Run every engine of ``engines`` and return the JSON document (also written to ``out_dir``, after
    every engine). With ``resume``, the engines of an existing JSON made with the same settings are kept
    and skipped; without it, existing files need ``force`` (``ResultFile``)."""
    config = {"mode": mode, "method": method, "function_class": "F_{0,1}", "metric": "objective_gap",
              "initial": "||x0-x*||<=1",
              "schedule": (f"seeded uniform[0.5, 1.9]/L (seed {SEED}), prefix of length K" if kind == "learned"
                           else "constant 1/L"),
              "ks": ks, "cap_s": cap}
    run = ResultFile(out_dir, _benchmark(method, kind), FORMAT_VERSION, config, resume, machine(),
                     {"engines": engines}, force, results={})
    import cvxpy  # after the checks above: a bad --out or --resume is reported at once
    import PEPit

    run.session.update(cvxpy=cvxpy.__version__, pepit=getattr(PEPit, "__version__", "0.5.x"))
    results = run.doc["results"]
    for name in engines:
        if name in results:
            print(f"  {name}: done already (--resume), skipped", file=log, flush=True)
            continue
        results[name] = run_engine(name, method, engine_ks(name, ks, mode), cap, log, kind)
        run.save(_table(results, cap, run.doc.get("active_pairs")) + "\n")
    if mode == "long" and "active_pairs" not in run.doc:
        run.doc["active_pairs"] = measure_active_pairs(method, kind)
        run.save(_table(results, cap, run.doc["active_pairs"]) + "\n")
    return run.doc


def measure_active_pairs(method: str, kind: str, ks: tuple[int, ...] = ACTIVE_KS) -> list[dict[str, Any]]:
    """Per K: the pairs with non-zero multipliers (> 1e-6 x the largest) in the full formulation's dual
    solution, Clarabel (interior point: maximally complementary) and SCS, by class, and the pairs constraint
    generation ended with (``constraint_generation.active_pairs``, ``solve_generation``)."""
    from unfoldkit.theory.pep.constraint_generation import active_pairs, solve_generation
    from unfoldkit.theory.pep.problem import make_spec

    out = []
    for K in ks:
        spec = make_spec(schedule(K, kind=kind), L=1.0, method=method)
        row: dict[str, Any] = {"K": K}
        for solver in ("CLARABEL", "SCS"):
            try:
                row[solver] = active_pairs(spec, solver=solver)
            except RuntimeError as err:
                row[solver] = {"error": str(err)[-200:]}
        _, info = solve_generation(spec)
        row["generation"] = {"pairs_used": info.pairs_used, "pairs_total": info.pairs_total, "rounds": info.rounds}
        out.append(row)
    return out


def _benchmark(method: str, kind: str = "learned") -> str:
    """The file stem of a method's results ("pep_scaling" for gd, "pep_scaling_<method>" otherwise; then
    "_constant" for the constant schedule)."""
    return "pep_scaling" + ("" if method == "gd" else f"_{method}") + ("" if kind == "learned" else f"_{kind}")


@command
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: 0, or 2 on a bad argument."""
    parser = OneLineParser(prog="python benchmarks/pep_scaling.py", description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="K in %s, cap 20 s (under ~3 minutes)" % QUICK_K)
    group.add_argument("--long", action="store_true",
                       help=f"K up to 200 with constraint generation (+ full SCS to K = {LONG_FULL_MAX_K}), cap 300 s")
    group.add_argument("--side-by-side", action="store_true",
                       help="K = 70: generation vs PEPit with the same solver (SCS) and with Clarabel, cap 600 s")
    parser.add_argument("--method", default="gd", choices=["gd", "pgm", "agd", "fista", *LINEAR_METHODS],
                        help="a template with the seeded learned-like schedule, or a step-matrix method of "
                             "theory.pep.methods (its own steps; L = 1, mu = 0.1 where strongly convex)")
    parser.add_argument("--schedule", default="learned", choices=list(SCHEDULES))
    parser.add_argument("--cap", type=float, default=None,
                        help="seconds per solve (default 60; quick 20, long 300, side-by-side 600)")
    parser.add_argument("--engines", default=None, help="comma-separated subset of " + ",".join(ENGINES)
                        + " (default: the mode's engines)")
    output_options(parser, DEFAULT_OUT, "skip the engines that are finished")
    args = parser.parse_args(argv)
    if args.quick:
        ks, mode, default_cap, default_engines = QUICK_K, "quick", 20.0, DEFAULT_ENGINES
    elif args.long:
        ks, mode, default_cap, default_engines = LONG_K, "long", 300.0, LONG_ENGINES
    elif args.side_by_side:
        ks, mode, default_cap, default_engines = SIDE_BY_SIDE_K, "k70", 600.0, SIDE_BY_SIDE_ENGINES
    else:
        ks, mode, default_cap, default_engines = FULL_K, "full", 60.0, DEFAULT_ENGINES
    cap = args.cap if args.cap is not None else default_cap
    if not cap > 0:
        raise UsageError(f"--cap: must be > 0 seconds, got {args.cap:g}")
    engines_arg = ",".join(default_engines) if args.engines is None else args.engines
    names = [n.strip() for n in engines_arg.split(",") if n.strip()]
    bad = [n for n in names if n not in ENGINES] or ([] if names else ["(none given)"])
    if bad:
        raise UsageError(f"--engines: unknown engine(s) {', '.join(bad)}; choose from {', '.join(ENGINES)}")
    print(f"PEP scaling: method {args.method}, F_(0,1), objective gap, {args.schedule} schedule, K in "
          f"{ks[0]}..{ks[-1]}, cap {cap:.0f} s, {os.cpu_count()} CPU(s)", flush=True)
    t0 = time.perf_counter()
    doc = run_benchmark(args.method, ks, cap, names, args.out, mode, resume=args.resume, force=args.force,
                        kind=args.schedule)
    print()
    print(_table(doc["results"], cap))
    return finish(time.perf_counter() - t0, mode,
                  output_paths(args.out, _benchmark(args.method, args.schedule), mode), [])


if __name__ == "__main__":
    sys.exit(main())
