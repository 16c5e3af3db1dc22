"""`unfoldkit check CHECKPOINT`: a guarantee report for a trained unfolded model, ours or a user's module
(docs/check.md): report.md, report.html and report.json; exit 0 all applicable guarantees hold, 1 one fails,
2 bad input."""
from __future__ import annotations

import argparse
import copy
import sys
import time

from unfoldkit.experiments.arguments import nonneg_int, output_folder, positive_int
from unfoldkit.experiments.commands import train

NAME = "check"
HELP = "check a trained model against the theoretical guarantees (a report: md, html, json)"

#: the report's files in --out (an existing one is replaced only with --force)
REPORT_FILES = ("report.md", "report.html", "report.json")
#: the problem options of `unfoldkit train` (its argument declarations are reused) -> constructor names
_PROBLEM_DESTS = ("problem", "m", "n", "sparsity", "snr_db", "lam", "kappa", "problem_seed")


def _add_problem_arguments(group: argparse._ArgumentGroup) -> None:
    """The problem options of `unfoldkit train`, declared by its own parser (not copied): every one defaults
    to "not given" here, so that the checkpoint's problem is the default."""
    scratch = argparse.ArgumentParser(add_help=False).add_subparsers()
    train_parser = train.add_parser(scratch)
    actions = [a for g in train_parser._action_groups if g.title == "problem" for a in g._group_actions]
    found = {a.dest for a in actions}
    if found != set(_PROBLEM_DESTS):  # a renamed option in train: fail loudly, not silently
        raise RuntimeError(f"unfoldkit train's problem options changed: {sorted(found)}")
    for action in actions:
        action = copy.copy(action)
        action.default = None
        if action.dest == "problem":
            action.help = "problem family (default: the checkpoint's; sparse for --module)"
        elif action.dest == "problem_seed":
            action.help = "seed that draws the matrix A (default: the checkpoint's; 0 for --module)"
        elif action.help:
            action.help = action.help.split(" (default")[0] + " (default: the checkpoint's, else the family's)"
        group._add_action(action)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help=HELP,
        description="Check a trained unfolded model against the theoretical guarantees and write a report to "
                    "--out: report.md, report.html (self-contained) and report.json (every number). The model "
                    "is one of our checkpoints (CHECKPOINT, read as data only: weights_only, integrity hash "
                    "and schema checked; never unpickled) or your own torch module (--module, which RUNS the "
                    "given Python file: use it only on code you trust). Exit status 0 when every applicable "
                    "guarantee holds, 1 when one fails, 2 for bad input. See docs/check.md.")
    p.add_argument("checkpoint", nargs="?", metavar="CHECKPOINT",
                   help="a trained model's .pt (model.pt of `unfoldkit train`, or save_checkpoint)")
    p.add_argument("--module", metavar="FILE.py:OBJECT", default=None,
                   help="instead of CHECKPOINT, your own model: imports FILE.py (this EXECUTES its code, at your "
                        "request) and takes OBJECT, a torch module or ModelAdapter, or a function or class called "
                        "with the problem that returns one (the adapter protocol: docs/check.md)")
    p.add_argument("--out", default="report", metavar="DIR",
                   help="output folder, created if missing and checked for writing before any work "
                        "(default: report/)")
    p.add_argument("--force", action="store_true", help="replace a report that --out already holds")
    p.add_argument("--quick", action="store_true", help="a smaller budget (fewer samples and stress examples)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the test samples and checks (default 0)")
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="FILE.npz", default=None,
                   help="test data: y (B, m) and x (B, n), optional A (m, n: the operator of the problem) and "
                        "y_train, x_train (the generalization gap); loaded with allow_pickle=False")
    g.add_argument("--test-size", type=positive_int, default=None, metavar="N",
                   help="without --data: N test samples drawn from the problem (default 256, 64 with --quick)")
    _add_problem_arguments(p.add_argument_group("problem (default: the checkpoint's)"))
    p.add_argument("--no-progress", action="store_true", help="do not print the stages as they run")
    return p


def problem_options(args: argparse.Namespace) -> dict:
    """The given problem options under the problem constructors' names (None = not given)."""
    return {"m": args.m, "n": args.n, "sparsity": args.sparsity, "snr_db": args.snr_db, "lam": args.lam,
            "kappa": args.kappa, "seed": args.problem_seed}


def run(args: argparse.Namespace) -> int:
    out = output_folder("--out", args.out)   # fail before any work
    existing = [name for name in REPORT_FILES if (out / name).exists()]
    if existing and not args.force:
        raise ValueError(f"--out {out} already holds {', '.join(existing)}; pass --force to replace the report, "
                         f"or choose another --out")
    start = time.perf_counter()
    show = not args.no_progress

    def progress(message: str) -> None:
        if show:
            print(f"[{time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr, flush=True)

    progress("reading the inputs")
    from unfoldkit.experiments.report.inputs import check_inputs

    inputs = check_inputs(checkpoint=args.checkpoint, module=args.module, data=args.data, problem=args.problem,
                          problem_options=problem_options(args), test_size=args.test_size, quick=args.quick,
                          seed=args.seed)
    from unfoldkit.experiments.report.build import build_report, report_exit_code
    from unfoldkit.experiments.report.render import write_report

    report = build_report(inputs, quick=args.quick, seed=args.seed, progress=progress)
    progress("writing the report")
    paths = write_report(report, out)
    code = report_exit_code(report)
    for row in report.get("verdicts", []):
        if isinstance(row, dict):
            print(f"  {str(row.get('check', '?')):<48} {row.get('state', '?')}")
    for path in paths.values():
        print(f"wrote {path}")
    print(f"check: {'every applicable guarantee holds' if code == 0 else 'A GUARANTEE FAILS'} "
          f"({time.perf_counter() - start:.1f} s)")
    return code
