"""The `unfoldkit` command line: list and reproduce figures (more subcommands arrive with their issues).

Errors in arguments or inputs exit with status 2 and one line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from unfoldkit.experiments.figures import FIGURES


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _build() -> argparse.ArgumentParser:
    parser = _Parser(prog="unfoldkit", description=(
        "Deep unfolding paired with its theory: reproduce the theory plots of the survey "
        "'Deep Unfolding: Recent Developments, Theory, and Design Guidelines' and its sources."))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p_list = sub.add_parser("list", help="list the figures that can be reproduced",
                            description="List the figures `unfoldkit reproduce` can produce.")
    p_list.set_defaults(func=_cmd_list)

    p_rep = sub.add_parser("reproduce", help="reproduce a figure (PNG, PDF and JSON numbers)",
                           description="Reproduce a figure: writes NAME.png, NAME.pdf and NAME.json "
                                       "(all numbers, bounds with provenance, verdicts) atomically into --out.")
    p_rep.add_argument("name", choices=sorted(FIGURES), metavar="NAME",
                       help="figure to reproduce: " + ", ".join(sorted(FIGURES)))
    p_rep.add_argument("--quick", action="store_true",
                       help="small sizes and few problems (minutes on a laptop CPU); default: paper scale")
    p_rep.add_argument("--out", default="results", metavar="DIR", help="output folder (default: results/)")
    p_rep.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (default 0)")
    p_rep.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p_rep.set_defaults(func=_cmd_reproduce)
    return parser


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _cmd_list(args: argparse.Namespace) -> int:
    width = max(len(n) for n in FIGURES)
    for name in sorted(FIGURES):
        print(f"{name:<{width}}  {FIGURES[name].DESCRIPTION}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    module = FIGURES[args.name]
    Path(args.out).mkdir(parents=True, exist_ok=True)  # fail before computing, not after
    start = time.perf_counter()
    result = module.reproduce(args.out, quick=args.quick, seed=args.seed, progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    for name, v in result.get("verdicts", {}).items():
        state = "holds" if v["holds"] else "VIOLATED"
        print(f"  {name:<48} {state:<9} tightness {v['tightness']:.3g}")
    for path in result.get("paths", []):
        print(f"wrote {path}")
    print(f"{args.name}: {'all bounds hold' if result.get('all_hold', True) else 'SOME BOUND FAILED'} "
          f"({elapsed:.1f} s)")
    return 0 if result.get("all_hold", True) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `unfoldkit` console script."""
    parser = _build()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, RuntimeError, OSError) as err:
        print(f"unfoldkit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("unfoldkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
