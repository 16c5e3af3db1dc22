"""Exact generalized coherence of the 250 x 500 benchmark matrix: the certified fast path beside the LP path.

    python benchmarks/coherence.py [--m 250] [--n 500] [--seed 0] [--lp-columns 25] [--repeats 3] [--out PATH] [--force]

The matrix is ``SparseRecovery(m, n, seed).A`` (N(0, 1/m) entries, unit columns; the LISTA papers' setting).
Rounds run side by side, so that both paths share the machine's load: each round times the fast path
(``coherence_bounds``, no cache, one process and then two) and the reference LP path (``lp_column_weight``,
one HiGHS LP per column) on ``--lp-columns`` evenly spaced columns; the LP path's time for all n columns is
extrapolated from its per-column median, and the table says so (``--lp-columns 0``: all columns, 7-14
minutes). Agreement: the fast path's certified per-column values against the LP's on the columns it solved.
The target (issue 17) is under 60 s on 2 CPU cores with every column's relative gap (upper - lower) / upper
<= 1e-6. The table shows the load average before and after. JSON goes atomically to
benchmarks/out/coherence.json (``--out``); an earlier run's file is replaced only with --force.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unfoldkit.experiments.arguments import OneLineParser, nonneg_int, positive_int
from unfoldkit.experiments.benchmarking import UsageError, command, machine, utc_now
from unfoldkit.unrolled.io import write_json
from unfoldkit.unrolled.models.alista_weights import (
    COHERENCE_RTOL,
    coherence_bounds,
    column_coherences,
    lp_column_weight,
)
from unfoldkit.unrolled.problems import SparseRecovery

TARGET_S = 60.0


def lp_columns(a: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """The LP path's per-column coherences and seconds on ``columns``."""
    values, seconds = [], []
    for i in columns:
        t0 = time.perf_counter()
        w = lp_column_weight(a, int(i))
        seconds.append(time.perf_counter() - t0)
        g = np.abs(w @ a)
        g[int(i)] = 0.0
        values.append(float(g.max()))
    return np.array(values), seconds


def run(m: int, n: int, seed: int, n_lp: int, repeats: int) -> dict[str, Any]:
    """Measure both paths in ``repeats`` side-by-side rounds; the result document's "results" part."""
    a = SparseRecovery(m=m, n=n, sparsity=0.1, seed=seed).A
    columns = np.arange(n) if n_lp == 0 or n_lp >= n else np.unique(np.linspace(0, n - 1, n_lp).round().astype(int))
    load_before = os.getloadavg()
    fast_s: dict[int, list[float]] = {1: [], 2: []}
    lp_s: list[float] = []
    bounds = None
    lp_values = None
    for _ in range(repeats):
        for jobs in (1, 2):
            t0 = time.perf_counter()
            b = coherence_bounds(a, cache=False, n_jobs=jobs)
            fast_s[jobs].append(time.perf_counter() - t0)
            if bounds is None:
                bounds = b
            elif not np.array_equal(b.upper, bounds.upper):
                raise RuntimeError("the fast path is not deterministic: two runs differ")
        lp_values, secs = lp_columns(a, columns)
        lp_s.extend(secs)
    load_after = os.getloadavg()
    assert bounds is not None and lp_values is not None
    achieved = column_coherences(bounds.weight, a)
    fast_on_subset = bounds.upper[columns]
    rel = np.abs(fast_on_subset - lp_values) / lp_values
    lp_per_col = statistics.median(lp_s)
    fast1 = statistics.median(fast_s[1])
    return {
        "matrix": {"m": m, "n": n, "seed": seed, "source": "SparseRecovery(m, n, sparsity=0.1, seed).A"},
        "fast": {"seconds_1_process": fast_s[1], "seconds_2_processes": fast_s[2],
                 "median_s_1_process": fast1, "median_s_2_processes": statistics.median(fast_s[2]),
                 "max_gap": bounds.max_gap, "all_certified": bool(np.all(bounds.certified)),
                 "rtol": COHERENCE_RTOL, "fallback_columns": int(bounds.fallback.sum()),
                 "pivots_mean": float(bounds.pivots.mean()), "pivots_max": int(bounds.pivots.max()),
                 "coherence": bounds.coherence, "coherence_lower": bounds.coherence_lower,
                 "weight_reaches_upper": float(np.max(np.abs(achieved - bounds.upper) / bounds.upper))},
        "lp": {"columns": columns.tolist(), "seconds_per_column": lp_s, "median_s_per_column": lp_per_col,
               "extrapolated_s_all_columns": lp_per_col * n, "extrapolated": bool(columns.size < n),
               "values": lp_values.tolist()},
        "agreement": {"max_rel_diff_fast_vs_lp": float(rel.max()), "columns": int(columns.size),
                      "lp_below_certified_lower": int(np.sum(lp_values < bounds.lower[columns] * (1 - 1e-9)))},
        "speedup": lp_per_col * n / fast1,
        "under_target": bool(fast1 < TARGET_S and bounds.max_gap <= COHERENCE_RTOL),
        "load_average_before": list(load_before), "load_average_after": list(load_after),
        "repeats": repeats,
    }


def table(r: dict[str, Any]) -> str:
    """The printed table."""
    f, lp, ag, mx = r["fast"], r["lp"], r["agreement"], r["matrix"]
    n = mx["n"]
    lp_label = (f"LP path (HiGHS per column), {len(lp['columns'])} columns, extrapolated to {n}"
                if lp["extrapolated"] else f"LP path (HiGHS per column), all {n} columns")
    lines = [
        (f"generalized coherence of the {mx['m']} x {n} matrix (seed {mx['seed']}): mu~ = {f['coherence']:.10f} "
         f"(certified lower {f['coherence_lower']:.10f}); medians of {r['repeats']} side-by-side rounds"),
        f"{'path':<62} {'seconds':>9} {'s / column':>11}",
        (f"{'fast (ADMM + simplex crossover + certificate), 1 process':<62} {f['median_s_1_process']:9.2f} "
         f"{f['median_s_1_process'] / n:11.4f}"),
        (f"{'fast, 2 processes (crossover split)':<62} {f['median_s_2_processes']:9.2f} "
         f"{f['median_s_2_processes'] / n:11.4f}"),
        f"{lp_label:<62} {lp['extrapolated_s_all_columns']:9.1f} {lp['median_s_per_column']:11.4f}",
        f"speed-up (LP extrapolated / fast, 1 process): {r['speedup']:.0f}x",
        (f"max certified relative gap over {n} columns: {f['max_gap']:.1e} (target <= {f['rtol']:g}); "
         f"LP fallbacks: {f['fallback_columns']}; simplex pivots per column: mean {f['pivots_mean']:.1f}, "
         f"max {f['pivots_max']}"),
        (f"agreement with the LP path on {ag['columns']} columns: max relative difference "
         f"{ag['max_rel_diff_fast_vs_lp']:.1e}; LP values below the certified lower bound: "
         f"{ag['lp_below_certified_lower']}"),
        (f"under {TARGET_S:g} s with gap <= {f['rtol']:g}: {'yes' if r['under_target'] else 'NO'}; load average "
         f"before {r['load_average_before'][0]:.2f}, after {r['load_average_after'][0]:.2f} "
         f"({os.cpu_count()} CPUs)"),
    ]
    return "\n".join(lines)


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python benchmarks/coherence.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--m", type=positive_int, default=250, help="rows (default 250)")
    parser.add_argument("--n", type=positive_int, default=500, help="columns (default 500)")
    parser.add_argument("--seed", type=nonneg_int, default=0, help="matrix seed (default 0)")
    parser.add_argument("--lp-columns", type=nonneg_int, default=25,
                        help="columns the LP path solves per round (default 25; 0: all)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="side-by-side rounds (default 3)")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/out/coherence.json)")
    parser.add_argument("--force", action="store_true", help="replace the JSON of an earlier run")
    args = parser.parse_args(argv)
    if args.n < 2:
        raise UsageError("--n must be at least 2 (one column has no coherence)")
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "out" / "coherence.json"
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists (an earlier run): --force replaces it, or choose another --out")
    started = time.perf_counter()
    results = run(args.m, args.n, args.seed, args.lp_columns, args.repeats)
    text = table(results)
    print(text)
    write_json(out, {"benchmark": "coherence", "created_utc": utc_now(), "machine": machine(),
                     "config": vars(args) | {"out": str(out)}, "target_s": TARGET_S, "results": results,
                     "wall_time_s": time.perf_counter() - started, "table": text})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
