"""Stress speed: examples checked per second per core for each built-in stress target at two problem sizes,
and the speed-up of the hunt from 1 to 2 workers, measured side by side in one run.

    python benchmarks/stress_speed.py [--quick] [--out DIR] [--resume | --force]

Sizes: "drawn" uses the target's own strategy (small instances, n <= 16); "n=64" forces the signal
dimension to 64 (m = 64 for least squares and LISTA, m = 32 for LASSO; LISTA n = 96), everything else drawn.
Rate = examples / wall time of ``target.evaluate`` in this process (1 core; the references, PEP SDPs and
model runs included). Speed-up = wall(1 worker) / wall(2 workers) of ``hunt`` on the same examples (joblib
loky; start-up of the worker processes included). Outputs: ``stress_speed_<mode>.json`` and ``.txt``.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

from unfoldkit.experiments.arguments import OneLineParser
from unfoldkit.experiments.benchmarking import (
    ResultFile, command, finish, machine, output_options, output_paths,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "out"
FORMAT_VERSION = 1
TARGETS = ("gd-convex", "gd-strongly-convex", "ista-rates", "fista-rates", "pep-schedule", "quadratic-schedule",
           "lista-cp", "alista")
SPEEDUP_TARGETS = ("quadratic-schedule", "ista-rates")


def resized(params: dict[str, Any], n: int | None) -> dict[str, Any]:
    """``params`` with the signal dimension forced to n (None: as drawn)."""
    p = dict(params)
    if n is None:
        return p
    if "extra" in p:  # LISTA family: m x (m + extra)
        p.update(m=n, extra=n // 2)
    elif "kappa" in p:  # least squares: m >= n when strongly convex
        p.update(n=n, m=n + 4 if p["kappa"] is not None else n)
    else:  # LASSO: under-determined
        p.update(n=n, m=n // 2)
    return p


def rate(name: str, count: int, n: int | None) -> float:
    """Examples evaluated per second (1 core) on ``count`` drawn instances resized to n."""
    from hypothesis.errors import NonInteractiveExampleWarning

    from unfoldkit.proofs_check.stress_targets import get_target

    target = get_target(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        draws = [resized(target.strategy.example(), n) for _ in range(count)]
    start = time.perf_counter()
    for p in draws:
        target.evaluate(p)
    return count / (time.perf_counter() - start)


def speedup(name: str, examples: int, tmp: Path) -> dict[str, float]:
    from unfoldkit.experiments.hunt import hunt

    walls = {}
    for w in (1, 2):
        start = time.perf_counter()
        hunt(name, tmp / f"{name}-w{w}", examples=examples, workers=w, profile="ci")
        walls[w] = time.perf_counter() - start
    return {"wall_1": walls[1], "wall_2": walls[2], "speedup": walls[1] / walls[2]}


def table(doc: dict[str, Any]) -> str:
    lines = [f"{'target':<20} {'drawn ex/s':>11} {'n=64 ex/s':>10}"]
    for name, row in doc["rates"].items():
        lines.append(f"{name:<20} {row['drawn']:>11.2f} {row['n64']:>10.2f}")
    lines.append("")
    for name, row in doc["speedup"].items():
        lines.append(f"{name}: 1 worker {row['wall_1']:.1f} s, 2 workers {row['wall_2']:.1f} s, "
                     f"speed-up {row['speedup']:.2f}x")
    return "\n".join(lines)


@command
def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="stress_speed.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="5 examples per rate, 40 per speed-up (default 20, 200)")
    output_options(p, DEFAULT_OUT, "continue: targets already measured are kept")
    args = p.parse_args(argv)
    mode = "quick" if args.quick else "full"
    count, examples = (5, 40) if args.quick else (20, 200)
    out = ResultFile(args.out, "stress_speed", FORMAT_VERSION, {"mode": mode, "count": count, "examples": examples},
                     args.resume, machine(), {}, force=args.force, rates={}, speedup={})
    doc = out.doc
    start = time.perf_counter()
    for name in TARGETS:
        if name not in doc["rates"]:
            doc["rates"][name] = {"drawn": rate(name, count, None), "n64": rate(name, count, 64)}
            out.save(table(doc))
    for name in SPEEDUP_TARGETS:
        if name not in doc["speedup"]:
            doc["speedup"][name] = speedup(name, examples, Path(args.out) / "stress_speed_runs")
            out.save(table(doc))
    print(table(doc))
    return finish(time.perf_counter() - start, mode, output_paths(args.out, "stress_speed", mode), [])


if __name__ == "__main__":
    raise SystemExit(main())
