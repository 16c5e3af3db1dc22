"""`unfoldkit stress TARGET`: hunt for instances where a bound fails while its assumptions hold, shrink the
first one found to a minimal instance, save it (replay with --replay FILE); exit 0 none, 1 found, 2 bad input."""
from __future__ import annotations

import argparse
import re
import shlex
import sys
from typing import Any

from unfoldkit.experiments.arguments import nonneg_int, output_folder, positive_int

NAME = "stress"
HELP = "hunt for bound violations on random instances (hypothesis), shrink and save counterexamples"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help=HELP,
        description="Generate random instances of TARGET (a built-in pairing of a bound with its algorithm or "
                    "model, a lemma:NAME, or a trained model's checkpoint .pt), hold every layer against every "
                    "applicable bound, steer toward small margins and shrink the first real violation. Every "
                    "check ends as 'holds', 'violated' (assumptions hold, bound exceeded: a counterexample) or "
                    "'not applicable' (the instance breaks an assumption). Results stream to --out.")
    p.add_argument("target", nargs="?", metavar="TARGET", help="what to stress (see --list)")
    p.add_argument("--list", action="store_true", help="list the built-in targets and lemmas, then exit")
    p.add_argument("--replay", metavar="FILE", help="re-run a saved counterexample .npz and print its margin")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--examples", type=positive_int, default=None, metavar="N",
                        help="examples in all (default: the profile's: ci 15, dev 40, stress 1000)")
    budget.add_argument("--time", type=_duration, default=None, metavar="T",
                        help="time budget instead, e.g. 90s, 10m, 1h")
    p.add_argument("--workers", type=positive_int, default=1, metavar="W", help="parallel searches (default 1)")
    p.add_argument("--backend", choices=("loky", "dask", "ray"), default="loky",
                   help="joblib backend (dask, ray: optional extras; default loky, local processes)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="dask scheduler or ray cluster address (default: a local cluster)")
    p.add_argument("--profile", choices=("ci", "dev", "stress"), default="dev",
                   help="hypothesis profile: ci (derandomized), dev (default), stress")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the first search (default 0)")
    p.add_argument("--out", default="stress-results", metavar="DIR",
                   help="output folder: stress.json, counterexamples/, hypothesis-db/ (default stress-results/)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue the run in --out (keeps what it found)")
    g.add_argument("--force", action="store_true", help="start afresh even if --out holds a run")
    p.add_argument("--no-progress", action="store_true", help="no progress line")
    return p


def _duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration such as 90s, 10m or 1h, got {text!r}")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def _list() -> int:
    from unfoldkit.proofs_check.stress_targets import TARGETS, lemma_targets

    rows = [(t.name, t.description) for t in TARGETS.values()] + [(t.name, t.description)
                                                                  for t in lemma_targets().values()]
    width = max(len(n) for n, _ in rows)
    for name, desc in rows:
        print(f"{name:<{width}}  {desc}")
    print(f"{'MODEL.pt':<{width}}  a checkpoint of a trained model: its family's guarantees (registry)")
    return 0


def _replay(path: str) -> int:
    from unfoldkit.proofs_check.stress import replay

    cex, checks = replay(path)
    print(f"{path}: {cex['target']} {cex['dims']}, saved margin {cex['margin']:.6g} ({cex['check']})")
    violated = False
    for c in checks:
        print(f"  {c.name}: {c.state}, margin {c.worst_margin:.6g}")
        violated |= c.state == "violated"
    return 1 if violated else 0


def _show(doc: dict[str, Any]) -> None:
    c, rate = doc["counts"], doc["examples"] / max(doc["wall_s"], 1e-9)
    best = doc["best_margin"]
    print(f"\r{doc['examples']} examples ({rate:.1f}/s): holds {c['holds']}, violated {c['violated']}, "
          f"not applicable {c['not applicable']}, errors {doc['errors']}; smallest normalized margin "
          f"{'n/a' if best is None else f'{best:.3g}'}", end="", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    if args.list:
        return _list()
    if args.replay:
        return _replay(args.replay)
    if not args.target:
        raise ValueError("give a TARGET (see `unfoldkit stress --list`), --list or --replay FILE")
    from unfoldkit.experiments.hunt import RESULT, hunt
    from unfoldkit.proofs_check.stress_targets import get_target

    target = get_target(args.target)  # a bad name or checkpoint fails here, before any work
    out = output_folder("--out", args.out)
    if (out / RESULT).exists() and not (args.resume or args.force):
        raise ValueError(f"--out {out} holds a stress run ({RESULT}); pass --resume to continue it or --force "
                         f"to start afresh")
    if args.resume and not (out / RESULT).exists():
        raise ValueError(f"--resume: {out} holds no stress run ({RESULT} missing)")
    call = "unfoldkit stress " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2 else \
        f"unfoldkit stress {args.target}"
    try:
        doc = hunt(target.name, out, examples=args.examples, time_s=args.time, workers=args.workers,
                   backend=args.backend, scheduler=args.scheduler, seed=args.seed, profile=args.profile,
                   resume=args.resume, call=call, progress=None if args.no_progress else _show)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"what was found is in {out}; continue with `unfoldkit stress {args.target} "
                                f"--resume --out {out}`") from None
    if not args.no_progress:
        print(file=sys.stderr)
    c = doc["counts"]
    print(f"{target.name}: {doc['examples']} examples in {doc['wall_s']:.1f} s; checks: holds {c['holds']}, "
          f"violated {c['violated']}, not applicable {c['not applicable']}; errors {doc['errors']}")
    for cex in doc["counterexamples"]:
        print(f"  {cex['kind'].upper()}: {cex['check']} at {cex['dims']}, margin {cex['margin']:.6g}; "
              f"saved {cex['file']} (replay: unfoldkit stress --replay {cex['file']})")
    print(f"{target.name}: {doc['status']}" + (" (planted: the hunter works)" if target.planted and
                                                doc["counterexamples"] else ""))
    return 1 if doc["counterexamples"] else 0
