"""Start-up time of the light commands: `unfoldkit --help` and `unfoldkit list` beside `import torch`.

    python benchmarks/startup.py [--repeats N] [--out PATH] [--force]

Each command runs N times (default 10), each time in a fresh subprocess, round-robin so that the commands
share the machine's noise; the table gives the median (and min / max) wall time of the whole process, start
to exit, beside two references measured in the same run: `python -c pass` (the interpreter alone) and
`python -c "import torch"` (what every command paid when torch, cvxpy and PEPit were imported up front).
The target is under 1 s for the light commands (issue 10); tests/test_startup.py asserts the reason they meet
it (neither imports torch, cvxpy, PEPit or matplotlib). JSON goes atomically to benchmarks/out/startup.json;
an earlier run's file is replaced only with --force.
"""
from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from unfoldkit.experiments.arguments import OneLineParser, positive_int
from unfoldkit.experiments.benchmarking import UsageError, command, machine, utc_now
from unfoldkit.unrolled.io import write_json

TARGET_S = 1.0
#: the commands that must start in under TARGET_S
LIGHT = ("unfoldkit --help", "unfoldkit list")


def unfoldkit_command() -> list[str]:
    """The `unfoldkit` console script beside this interpreter (what a user runs), else ``python -m`` the CLI."""
    script = Path(sys.executable).with_name("unfoldkit")
    found = str(script) if script.exists() else shutil.which("unfoldkit")
    return [found] if found else [sys.executable, "-m", "unfoldkit.experiments.cli"]


def commands() -> dict[str, list[str]]:
    """The measured commands by label: the two references and the light commands."""
    cli = unfoldkit_command()
    return {"python -c pass": [sys.executable, "-c", "pass"],
            "unfoldkit --help": cli + ["--help"],
            "unfoldkit list": cli + ["list"],
            'python -c "import torch"': [sys.executable, "-c", "import torch"]}


def wall_time(argv: list[str]) -> float:
    """Seconds from starting ``argv`` in a fresh process to its exit (RuntimeError if it fails)."""
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return elapsed


def measure(cmds: dict[str, list[str]], repeats: int) -> dict[str, list[float]]:
    """``repeats`` wall times per command, run round-robin (one of each per round)."""
    times: dict[str, list[float]] = {label: [] for label in cmds}
    for _ in range(repeats):
        for label, argv in cmds.items():
            times[label].append(wall_time(argv))
    return times


def summarize(times: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Per command: median, min, max, the median over that of `import torch`, and (light commands) the target."""
    torch_median = statistics.median(times['python -c "import torch"'])
    rows = {}
    for label, values in times.items():
        median = statistics.median(values)
        rows[label] = {"median_s": median, "min_s": min(values), "max_s": max(values), "times_s": values,
                       "vs_import_torch": median / torch_median}
        if label in LIGHT:
            rows[label]["under_target"] = median < TARGET_S
    return rows


def table(rows: dict[str, dict[str, Any]], repeats: int) -> str:
    """The printed table: one line per command."""
    lines = [f"{'command':<28} {'median s':>9} {'min s':>7} {'max s':>7} {'/ import torch':>15}  "
             f"under {TARGET_S:g} s  ({repeats} runs each, fresh processes, round-robin)"]
    for label, r in rows.items():
        verdict = ("yes" if r["under_target"] else "NO") if "under_target" in r else "(reference)"
        lines.append(f"{label:<28} {r['median_s']:9.3f} {r['min_s']:7.3f} {r['max_s']:7.3f} "
                     f"{r['vs_import_torch']:15.2f}  {verdict}")
    return "\n".join(lines)


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python benchmarks/startup.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=positive_int, default=10, help="runs of each command (default 10)")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/out/startup.json)")
    parser.add_argument("--force", action="store_true", help="replace the JSON of an earlier run")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "out" / "startup.json"
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists (an earlier run): --force replaces it, or choose another --out")
    cmds = commands()
    rows = summarize(measure(cmds, args.repeats))
    text = table(rows, args.repeats)
    print(text)
    write_json(out, {"benchmark": "startup", "created_utc": utc_now(), "machine": machine(),
                     "repeats": args.repeats, "target_s": TARGET_S,
                     "commands": {label: " ".join(argv) for label, argv in cmds.items()},
                     "results": rows, "table": text})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
