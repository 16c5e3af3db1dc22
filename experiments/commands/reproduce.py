"""`unfoldkit reproduce NAME`: compute a figure, write NAME.png, NAME.pdf and NAME.json, print the verdicts.

`unfoldkit reproduce all` runs every entry of FIGURES in turn (quick mode unless --full), skips an entry whose
outputs an earlier run left with the same mode and seed (unless --force), records an entry that raises and
goes on, and writes index.json, index.md and a self-contained index.html (experiments/figures/index_page.py)
after every entry. Exit status 1 if an entry failed or a verdict does not hold.
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from unfoldkit.experiments import figures as registry
from unfoldkit.experiments.arguments import nonneg_int, output_folder
from unfoldkit.experiments.figures import ALL
from unfoldkit.experiments.figures.output import figure_paths

NAME = "reproduce"
HELP = "reproduce a figure (PNG, PDF and JSON numbers), or all of them with an index page"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    names = sorted(registry.FIGURES)
    parser = subparsers.add_parser(
        NAME, help=HELP,
        description="Reproduce a figure: writes NAME.png, NAME.pdf and NAME.json "
                    "(all numbers, bounds with provenance, verdicts) atomically into --out; existing ones "
                    f"only with --force. `reproduce {ALL}` runs every figure (quick unless --full) into --out, "
                    "keeps those an earlier run left with the same mode and seed (unless --force), and writes "
                    "index.md and a self-contained index.html beside them.")
    parser.add_argument("name", choices=[*names, ALL], metavar="NAME",
                        help="figure to reproduce: " + ", ".join(names) + f"; or {ALL!r}: every figure")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help=f"small sizes and few problems (minutes on a laptop CPU); the default of `{ALL}`, "
                           "while one figure defaults to paper scale")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help=f"paper scale (the default for one figure; `{ALL} --full` takes hours)")
    parser.add_argument("--out", default="results", metavar="DIR",
                        help="output folder, created if missing and checked for writing before any work "
                             "(default: results/)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite NAME.png, NAME.pdf and NAME.json if --out holds them already "
                             f"(with `{ALL}`: recompute every entry)")
    parser.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--only", metavar="A,B", type=_figure_list,
                        help=f"with `{ALL}`: only these figures (comma-separated names, in the registry's order)")
    return parser


def _figure_list(text: str) -> list[str]:
    """An argparse ``type``: comma-separated figure names, each one of FIGURES."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in registry.FIGURES]
    if not names or unknown:
        what = f"unknown figure {', '.join(map(repr, unknown))}" if unknown else "no figure named"
        raise argparse.ArgumentTypeError(f"{what} in {text!r}; choose from {', '.join(sorted(registry.FIGURES))}")
    return names


def verdict_line(name: str, verdict: dict) -> str:
    """One printed line of a verdict: its state ("holds", "VIOLATED", "not applicable") and its tightness.

    The state is ``verdict["state"]`` when present, else derived from ``verdict["holds"]``; a tightness
    that is missing, None or NaN (a bound that does not apply) prints as ``n/a``.
    """
    from unfoldkit.experiments.figures.index_page import tightness_text, verdict_state

    return f"  {name:<48} {verdict_state(verdict):<9} tightness {tightness_text(verdict)}"


def run(args: argparse.Namespace) -> int:
    if args.name == ALL:
        return run_all(args)
    if args.only is not None:
        raise ValueError(f"--only selects figures of `unfoldkit reproduce {ALL}`; give NAME = {ALL}, or drop --only")
    module = registry.FIGURES[args.name]
    out = output_folder("--out", args.out)  # fail before computing, not after
    existing = [p.name for p in figure_paths(out, args.name) if p.exists()]
    if existing and not args.force:
        raise ValueError(f"--out {out} already holds {', '.join(existing)}; pass --force to overwrite them, "
                         f"or choose another --out")
    start = time.perf_counter()
    result = module.reproduce(out, quick=args.mode == "quick", seed=args.seed, progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    for name, verdict in result.get("verdicts", {}).items():
        print(verdict_line(name, verdict))
    for path in result.get("paths", []):
        print(f"wrote {path}")
    all_hold = result.get("all_hold", True)
    print(f"{args.name}: {'all bounds hold' if all_hold else 'SOME BOUND FAILED'} ({elapsed:.1f} s)")
    return 0 if all_hold else 1


# ---- reproduce all ---------------------------------------------------------------------------------


def earlier_outputs(out: Path, name: str, mode: str, seed: int) -> tuple[str, str]:
    """What ``out`` holds of figure ``name``: ("absent", "") when there is no NAME.json (nothing, or the PNG or
    PDF of an interrupted run: it is recomputed), ("same", "") when NAME.png, NAME.pdf and NAME.json are there
    and the JSON records ``mode`` and ``seed``, else ("other", what is there)."""
    from unfoldkit.unrolled.io import read_json

    png, pdf, js = figure_paths(out, name)
    if not js.exists():
        return "absent", ""
    try:
        data = read_json(js)
    except (OSError, ValueError) as err:
        return "other", f"{js.name} (unreadable: {err})"
    if not isinstance(data, dict):
        return "other", f"{js.name} (not a figure's JSON)"
    if (data.get("mode"), data.get("seed")) != (mode, seed):
        return "other", f"{name} ({data.get('mode')} mode, seed {data.get('seed')})"
    missing = [p.name for p in (png, pdf) if not p.exists()]
    if missing:
        return "other", f"{js.name} without {', '.join(missing)}"
    return "same", ""


def run_all(args: argparse.Namespace) -> int:
    """`unfoldkit reproduce all`: every selected entry in turn, the index written after each."""
    import unfoldkit
    from unfoldkit.experiments.figures import index_page as index

    mode = args.mode or "quick"
    quick = mode == "quick"
    out = output_folder("--out", args.out)  # fail before computing, not after
    names = [n for n in registry.FIGURES if args.only is None or n in args.only]
    states = {n: earlier_outputs(out, n, mode, args.seed) for n in names}
    conflicts = [what for state, what in states.values() if state == "other"]
    if conflicts and not args.force:
        raise ValueError(f"--out {out} already holds outputs of other runs: {'; '.join(conflicts)}; pass --force to "
                         f"recompute them, or choose another --out")
    previous = index.previous_entries(out, mode, args.seed)
    doc = {"schema": index.SCHEMA, "mode": mode, "seed": args.seed, "version": unfoldkit.__version__,
           "command": f"unfoldkit reproduce {ALL} --{mode} --seed {args.seed} --out {out}" +
                      (f" --only {','.join(names)}" if args.only is not None else ""),
           "started": index.now(), "wall_s": 0.0,
           "entries": [index.new_entry(registry.FIGURES[n]) for n in names]}
    start = time.perf_counter()
    print(f"reproduce {ALL}: {len(names)} entries, {mode} mode, seed {args.seed}, into {out}")
    try:
        for i, entry in enumerate(doc["entries"], 1):
            name = entry["name"]
            head = f"[{i}/{len(names)}] {name}"
            if states[name][0] == "same" and not args.force:
                from unfoldkit.unrolled.io import read_json

                data = read_json(figure_paths(out, name)[2])
                before = previous.get(name, {})
                entry.update(status=index.SKIPPED, verdicts=index.compact_verdicts(data.get("verdicts", {})),
                             all_hold=bool(data.get("all_hold", True)), seconds=before.get("seconds"),
                             finished=before.get("finished"))
                print(f"{head}: skipped, --out holds its {mode}-mode outputs of seed {args.seed} already "
                      f"(--force recomputes it)")
            else:
                print(f"{head}: {registry.FIGURES[name].DESCRIPTION}", flush=True)
                entry.update(_run_entry(registry.FIGURES[name], out, quick, args.seed, not args.no_progress))
                if entry["status"] == index.FAILED:
                    print(f"{name}: FAILED: {entry['error']} (recorded in the index; going on)")
                else:
                    for verdict_name, verdict in entry["verdicts"].items():
                        print(f"  {verdict_name:<48} {verdict['state']:<9} tightness "
                              f"{index.tightness_text(verdict)}")
                    print(f"{name}: {'all bounds hold' if entry['all_hold'] else 'SOME BOUND FAILED'} "
                          f"({entry['seconds']:.1f} s)")
            doc["wall_s"] = time.perf_counter() - start
            index.write_index(doc, out)
    except KeyboardInterrupt:
        doc["wall_s"] = time.perf_counter() - start
        index.write_index(doc, out)
        raise KeyboardInterrupt(f"the index in {out} lists what finished; run the same command again to continue "
                                f"(finished entries are kept)") from None
    for path in index.INDEX_FILES:
        print(f"wrote {out / path}")
    s = doc["summary"]
    print(f"reproduce {ALL}: {index.summary_line(doc)} ({s['seconds_total']:.1f} s over the figures, "
          f"{doc['wall_s']:.1f} s now)")
    return 0 if s["all_hold"] else 1


def _run_entry(figure: registry.Figure, out: Path, quick: bool, seed: int, progress: bool) -> dict:
    """Reproduce one figure; the entry's fields: status, seconds, verdicts, all_hold, error, finished. An
    exception is recorded (its last line, the traceback on stderr), not raised."""
    from unfoldkit.experiments.figures import index_page as index

    start = time.perf_counter()
    try:
        result = figure.reproduce(out, quick=quick, seed=seed, progress=progress)
    except Exception as err:  # noqa: BLE001 - one figure failing must not lose the others
        traceback.print_exc(file=sys.stderr)
        return {"status": index.FAILED, "seconds": time.perf_counter() - start, "all_hold": None, "verdicts": {},
                "error": f"{type(err).__name__}: {err}", "finished": index.now()}
    return {"status": index.RAN, "seconds": time.perf_counter() - start,
            "verdicts": index.compact_verdicts(result.get("verdicts", {})),
            "all_hold": bool(result.get("all_hold", True)), "error": None, "finished": index.now()}
