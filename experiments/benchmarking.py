"""What the benchmark scripts of benchmarks/ share, so that each keeps only its settings, methods, targets
and ``main``: noise levels and their parsing, the training budget, the result document (JSON and table
rewritten atomically, resumable, one entry per session; an earlier run's files are replaced only with
--force), the machine description, a worker process per model or engine (its own memory high-water mark,
killed when late), verdicts with their margin, table cells, and the command-line convention (a bad argument
is one line on stderr and exit status 2; Ctrl-C says how to resume)."""
from __future__ import annotations

import datetime as _dt
import functools
import math
import multiprocessing
import os
import platform
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from unfoldkit.experiments.arguments import OneLineParser, folder, nonneg_int
from unfoldkit.unrolled.io import jsonable, read_json, write_json, write_text


class UsageError(ValueError):
    """A bad command-line argument (reported on one line, exit status 2)."""


def command(main: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
    """A benchmark's ``main(argv)``: a UsageError is one line on stderr and status 2, as are argparse's errors
    (``OneLineParser``); ``--help`` returns 0; Ctrl-C is one line saying how to continue, status 130. The
    status is returned, not raised (``sys.exit(main())``)."""
    @functools.wraps(main)
    def run(argv: Sequence[str] | None = None) -> int:
        try:
            return main(argv)
        except UsageError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("\ninterrupted: what was finished is saved in --out; run the same command with --resume to "
                  "continue", file=sys.stderr)
            return 130
        except SystemExit as stop:  # argparse: --help (0) or a bad argument (2, its line already printed)
            return stop.code if isinstance(stop.code, int) else 2
    return run


def output_options(p: OneLineParser, default_out: Path, resume: str) -> None:
    """Add --out (an output folder), --resume (help ``resume``) and --force to ``p``; --resume and --force
    exclude each other, and without either a run does not start where an earlier one left files
    (``claim_outputs``)."""
    p.add_argument("--out", type=folder, default=default_out, help="output folder (default benchmarks/out)")
    flags = p.add_mutually_exclusive_group()
    flags.add_argument("--resume", action="store_true", help=resume)
    flags.add_argument("--force", action="store_true", help="start afresh: delete what an earlier run with "
                       "these settings left in --out (results, trainer checkpoints)")


def worker_options(p: OneLineParser, threads: str) -> None:
    """Add --threads (help ``threads``) and --cap (seconds per cell before its worker is killed; the default
    comes from the mode, see ``cap_seconds``) to ``p``."""
    p.add_argument("--threads", type=nonneg_int, default=1, help=threads)
    p.add_argument("--cap", type=float, default=None, help="seconds per cell before its worker is killed "
                                                           "(default 900, quick 300)")


def cap_seconds(cap: float | None, default: float) -> float:
    """The --cap value (``default`` when not given); UsageError unless it is a finite number > 0."""
    value = default if cap is None else cap
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(f"--cap: must be a positive number of seconds, got {value:g}")
    return value


def settings_parser(script: str, description: str, quick: str, seed: str, resume: str,
                    default_out: Path) -> OneLineParser:
    """The parser of ``python benchmarks/<script>.py`` with the options of every benchmark run over noise
    levels: --quick (help ``quick``), --snr, --seed (of ``seed``), --threads and ``output_options``."""
    p = OneLineParser(prog=f"python benchmarks/{script}.py", description=description)
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--snr", default="inf,40", help="noise levels in dB, 'inf' = noiseless (default inf,40)")
    p.add_argument("--seed", type=nonneg_int, default=0, help=f"{seed} seed (default 0)")
    p.add_argument("--threads", type=nonneg_int, default=1,
                   help="torch and BLAS threads per process (default 1; 0 = torch's default)")
    output_options(p, default_out, resume)
    return p


def finish(wall_s: float, mode: str, paths: tuple[Path, Path], failed: Sequence[str]) -> int:
    """Print a run's wall time and files; the exit status: 1 (the failed methods named on stderr) or 0."""
    print(f"\nwall time of this run: {wall_s:.1f} s ({mode} mode); wrote {paths[0]} and {paths[1]}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def log_stderr(message: str) -> None:
    """The default progress log of a benchmark: one line on stderr."""
    print(message, file=sys.stderr, flush=True)


# ---- settings --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """Training budget of one scheme: ``epochs`` (per stage for layer-wise) of ``steps_per_epoch`` fresh
    batches of ``batch_size``; a stage stops after ``patience`` epochs without improvement (None: never)."""

    epochs: int
    steps_per_epoch: int
    batch_size: int = 64
    patience: int | None = None


class Settings:
    """Base of the frozen dataclasses that fix a benchmark's numbers (stored in its JSON; ``--resume`` needs
    them unchanged): ``to_dict``, the JSON form (tuples as lists), and ``from_dict``, its inverse."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (tuples become lists)."""
        return jsonable(asdict(self))  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        """Inverse of ``to_dict``: a dict field is a Budget, a list a tuple."""
        return cls(**{k: Budget(**v) if isinstance(v, dict) else tuple(v) if isinstance(v, list) else v
                      for k, v in d.items()})


def setting_key(snr_db: float | None) -> str:
    """The JSON key of a noise level: "snr=inf" or "snr=40"."""
    return "snr=inf" if snr_db is None else f"snr={snr_db:g}"


def setting_label(snr_db: float | None) -> str:
    """Human label of a noise level."""
    return "noiseless" if snr_db is None else f"SNR {snr_db:g} dB"


def parse_snr_list(text: str) -> list[float | None]:
    """Parse "inf,40" into [None, 40.0] (UsageError on anything else)."""
    out: list[float | None] = []
    for item in (t.strip() for t in text.split(",")):
        if item.lower() in ("inf", "noiseless", "none"):
            value: float | None = None
        else:
            try:
                value = float(item)
            except ValueError:
                raise UsageError(f"--snr: {item!r} is not a number or 'inf'") from None
            if not math.isfinite(value):
                value = None if value > 0 else math.nan
            if value is not None and not math.isfinite(value):
                raise UsageError(f"--snr: {item!r} is not a finite SNR in dB or 'inf'")
        if value in out:
            raise UsageError(f"--snr: {item!r} is listed twice")
        out.append(value)
    if not out:
        raise UsageError("--snr: give at least one noise level, e.g. inf,40")
    return out


def parse_models(text: str, known: Sequence[str]) -> list[str]:
    """Parse "a,b" into model families from ``known`` (UsageError naming an unknown one); "all" = every one."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if items == ["all"]:
        return list(known)
    if not items:
        raise UsageError("--models: give at least one model, e.g. alista,lista-cpss (or 'all')")
    for item in items:
        if item not in known:
            raise UsageError(f"--models: unknown model {item!r}; known: {', '.join(known)}")
    if len(set(items)) != len(items):
        raise UsageError("--models: a model is listed twice")
    return [k for k in known if k in items]


# ---- the result document ---------------------------------------------------------------------------


def machine(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """What a run ran on: platform, versions, CPU count, torch threads (``threads`` or torch's), device."""
    return {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": threads if threads is not None else torch.get_num_threads(),
            "device": device}


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def output_paths(out_dir: str | Path, benchmark: str, mode: str) -> tuple[Path, Path]:
    """(JSON path, table path) of a ``benchmark`` run in ``mode`` in ``out_dir``."""
    return Path(out_dir) / f"{benchmark}_{mode}.json", Path(out_dir) / f"{benchmark}_{mode}.txt"


def claim_outputs(paths: Sequence[str | Path], resume: bool, force: bool) -> None:
    """Check, before any work, that a run may write ``paths`` (its result files first, then any checkpoint
    folders). With ``resume`` one of them must exist (UsageError naming the folder: nothing to resume);
    without ``resume`` or ``force`` none may (UsageError naming the first one found and both flags), so an
    earlier run is never overwritten by accident; with ``force`` the existing ones are deleted, so that
    nothing of the earlier run (a stale checkpoint) is mixed into this one."""
    paths = [Path(p) for p in paths]
    found = [p for p in paths if p.exists()]
    if resume and not found:
        raise UsageError(f"--resume: nothing to resume in {paths[0].parent} (no {paths[0].name}); "
                         f"run without --resume to start")
    if found and not (resume or force):
        raise UsageError(f"{found[0]} exists (an earlier run): --resume continues it, --force deletes it "
                         f"and starts afresh")
    for path in found if force else ():
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def result_document(json_path: Path, benchmark: str, version: int, config: dict[str, Any], resume: bool,
                    **fresh: Any) -> dict[str, Any]:
    """The JSON document of a run: with ``resume``, the existing ``json_path`` (UsageError unless it is a
    readable ``benchmark`` result of format ``version`` made with ``config``); otherwise (or when absent) a
    new one with the fields ``fresh``."""
    if not (resume and json_path.exists()):
        return {"benchmark": benchmark, "format_version": version, "config": config, **fresh}
    try:
        doc = read_json(json_path)
    except (OSError, ValueError) as err:
        raise UsageError(f"--resume: cannot read {json_path} ({err}); --force replaces it") from None
    if not isinstance(doc, dict) or doc.get("format_version") != version or doc.get("benchmark") != benchmark:
        raise UsageError(f"--resume: {json_path} is not a result of {benchmark} (format v{version}); --force "
                         f"replaces it")
    if doc.get("config") != config:
        raise UsageError(f"--resume: {json_path} was made with another configuration (other --seed or "
                         f"settings?); --force replaces it, or use another --out")
    return doc


class ResultFile:
    """A run's JSON document ``doc`` (``result_document``: resumed, or new with ``fresh`` and an empty list
    of sessions) and its text table, both in ``out_dir``; ``session``, this run's entry of ``doc["sessions"]``,
    holds its start time, ``machine``, the fields ``session`` and its wall time.

    The files, and the run's ``checkpoints`` folders, are claimed first (``claim_outputs``: an earlier run is
    continued with ``resume``, replaced with ``force``, an error otherwise), and the JSON is written at once,
    so that an interrupted run can always be resumed."""

    def __init__(self, out_dir: str | Path, benchmark: str, version: int, config: dict[str, Any], resume: bool,
                 machine: dict[str, Any], session: dict[str, Any], force: bool = False,
                 checkpoints: Sequence[Path] = (), **fresh: Any) -> None:
        self.json_path, self.table_path = output_paths(out_dir, benchmark, config["mode"])
        claim_outputs([self.json_path, self.table_path, *checkpoints], resume, force)
        self.doc = result_document(self.json_path, benchmark, version, config, resume, **fresh, sessions=[])
        self.session = {"started_utc": utc_now(), "machine": machine, **session, "wall_time_s": None}
        self.doc["sessions"].append(self.session)
        self._start = time.perf_counter()
        write_json(self.json_path, self.doc)

    def save(self, table: str) -> None:
        """Update the wall times and rewrite the JSON and the table (``table``) atomically."""
        self.session["wall_time_s"] = time.perf_counter() - self._start
        self.doc["wall_time_s_total"] = sum(s["wall_time_s"] or 0.0 for s in self.doc["sessions"])
        write_json(self.json_path, self.doc)
        write_text(self.table_path, table)


# ---- worker processes ------------------------------------------------------------------------------


def _serve(conn: Any, fn: Callable[..., Any]) -> None:
    """The worker's loop: ``fn(*task)`` for every task received until None; replies (ok, result or error).
    Ctrl-C is the parent's to handle (it kills the worker), so the worker ignores it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while (task := conn.recv()) is not None:
        try:
            reply = (True, fn(*task))
        except Exception as err:  # noqa: BLE001 - raised again in the parent
            reply = (False, err)
        try:
            conn.send(reply)
        except Exception:  # noqa: BLE001 - an error that does not pickle: its text
            conn.send((False, RuntimeError(f"{type(reply[1]).__name__}: {reply[1]}")))


class Worker:
    """A freshly spawned process that runs ``fn(*args)`` for each ``call`` (so that its memory high-water
    mark is its own); a context manager. ``call`` raises ``fn``'s error, TimeoutError when no answer came
    within ``timeout`` seconds and ChildProcessError when the process died; both kill the worker."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, fn), daemon=True)
        self.process.start()

    def call(self, *args: Any, timeout: float | None = None) -> Any:
        self._conn.send(args)
        if not self._conn.poll(timeout):
            self.kill()
            raise TimeoutError(f"no answer within {timeout:g} s")
        try:
            ok, value = self._conn.recv()
        except EOFError:  # the worker died (e.g. out of memory)
            self.kill()
            raise ChildProcessError(f"the worker died (exit code {self.process.exitcode})") from None
        if not ok:
            raise value
        return value

    def kill(self) -> None:
        self.process.kill()
        self.process.join()

    def close(self) -> None:
        """Stop the worker (politely, then by force)."""
        if self.process.is_alive():
            self._conn.send(None)
            self.process.join(timeout=10)
        if self.process.is_alive():
            self.kill()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        """Stop the worker: politely after success, at once after an error (e.g. Ctrl-C in the parent)."""
        if exc_type is None:
            self.close()
        else:
            self.kill()


# ---- verdicts --------------------------------------------------------------------------------------

#: a target met or missed by less than this many dB is labelled "(narrow)": a stated convention, not a
#: measured noise level (retrain with another --seed to see how far a margin moves)
NARROW_DB = 0.5


def judge(passed: bool, margin_db: float, detail: str) -> dict[str, Any]:
    """The fields of a pass/fail target: ``pass``, ``margin_db`` (how far from the threshold, positive on the
    passing side) and ``verdict``, e.g. "PASS by 1.20 dB <detail>" or, under NARROW_DB, "PASS (narrow) by ..."
    (likewise FAIL)."""
    word = ("PASS" if passed else "FAIL") + (" (narrow)" if abs(margin_db) < NARROW_DB else "")
    return {"pass": bool(passed), "margin_db": margin_db, "verdict": f"{word} by {abs(margin_db):.2f} dB {detail}"}


def judge_layers(ours: Sequence[float], reference: Sequence[float], name: str) -> dict[str, Any]:
    """``judge`` of "strictly better than ``name`` at the last layer K", from per-layer NMSE curves in dB
    (layers 0..K), e.g. "PASS (narrow) by 0.14 dB at layer 16; beats FISTA at 4 of 16 layers"; also
    ``layers_better``, the number of layers 1..K at which ``ours`` is strictly lower."""
    k, margin = len(ours) - 1, reference[-1] - ours[-1]
    better = sum(a < b for a, b in zip(ours[1:], reference[1:]))
    return {**judge(margin > 0, margin, f"at layer {k}; beats {name} at {better} of {k} layers"),
            "layers_better": better}


# ---- tables ----------------------------------------------------------------------------------------


def fmt(value: Any, spec: str, missing: str = "-") -> str:
    """``value`` formatted with ``spec``; ``missing`` for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, spec)


def table_row(cells: Sequence[Any]) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def table_head(head: Sequence[str]) -> list[str]:
    """The header and separator lines of a Markdown table."""
    return [table_row(head), "|" + "---|" * len(head)]


def failed_entry(name: str, kind: str, snr_db: float | None, err: Exception) -> dict[str, Any]:
    """The result row of a method that raised ``err`` (recorded, and the run goes on)."""
    return {"name": name, "kind": kind, "setting": setting_label(snr_db), "snr_db": snr_db, "status": "failed",
            "error": f"{type(err).__name__}: {err}"}


def failed_row(name: str, setting: str, row: dict[str, Any], width: int) -> str:
    """The table row of a method that did not finish: its status and the start of its error."""
    return f"| {name} | {setting} | {row.get('status')}: {row.get('error', '')[:60]} |" + " |" * (width - 3)
