"""`unfoldkit reproduce NAME`: compute a figure, write NAME.png, NAME.pdf and NAME.json, print the verdicts."""
from __future__ import annotations

import argparse
import math
import time

from unfoldkit.experiments.arguments import nonneg_int, output_folder
from unfoldkit.experiments.figures import FIGURES
from unfoldkit.experiments.figures.output import figure_paths

NAME = "reproduce"
HELP = "reproduce a figure (PNG, PDF and JSON numbers)"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        NAME, help=HELP,
        description="Reproduce a figure: writes NAME.png, NAME.pdf and NAME.json "
                    "(all numbers, bounds with provenance, verdicts) atomically into --out; existing ones "
                    "only with --force.")
    parser.add_argument("name", choices=sorted(FIGURES), metavar="NAME",
                        help="figure to reproduce: " + ", ".join(sorted(FIGURES)))
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few problems (minutes on a laptop CPU); default: paper scale")
    parser.add_argument("--out", default="results", metavar="DIR",
                        help="output folder, created if missing and checked for writing before any work "
                             "(default: results/)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite NAME.png, NAME.pdf and NAME.json if --out holds them already")
    parser.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def verdict_line(name: str, verdict: dict) -> str:
    """One printed line of a verdict: its state ("holds", "VIOLATED", "not applicable") and its tightness.

    The state is ``verdict["state"]`` when present, else derived from ``verdict["holds"]``; a tightness
    that is missing, None or NaN (a bound that does not apply) prints as ``n/a``.
    """
    state = verdict.get("state") or ("holds" if verdict.get("holds") else "VIOLATED")
    tightness = verdict.get("tightness")
    if tightness is None or (isinstance(tightness, float) and math.isnan(tightness)):
        shown = "n/a"
    else:
        shown = f"{tightness:.3g}"
    return f"  {name:<48} {state:<9} tightness {shown}"


def run(args: argparse.Namespace) -> int:
    module = FIGURES[args.name]
    out = output_folder("--out", args.out)  # fail before computing, not after
    existing = [p.name for p in figure_paths(out, args.name) if p.exists()]
    if existing and not args.force:
        raise ValueError(f"--out {out} already holds {', '.join(existing)}; pass --force to overwrite them, "
                         f"or choose another --out")
    start = time.perf_counter()
    result = module.reproduce(out, quick=args.quick, seed=args.seed, progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    for name, verdict in result.get("verdicts", {}).items():
        print(verdict_line(name, verdict))
    for path in result.get("paths", []):
        print(f"wrote {path}")
    all_hold = result.get("all_hold", True)
    print(f"{args.name}: {'all bounds hold' if all_hold else 'SOME BOUND FAILED'} ({elapsed:.1f} s)")
    return 0 if all_hold else 1
