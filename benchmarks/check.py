"""Cost of `unfoldkit check`: wall time of ``build_report`` (per stage) and ``write_report``, and peak memory,
for a briefly trained ALISTA and a classical-initialised LISTA-CP, in default and ``--quick`` report mode.

    python benchmarks/check.py [--quick] [--seed S] [--threads N] [--cap SECONDS] [--out DIR]
                               [--resume | --force]

Setting: ``SparseRecovery(m = n/2, n)`` (seeded), K layers, float32 models as `unfoldkit train` writes them.
ALISTA: the analytic weight, no support selection (``Alista(problem, K, percent=0, max_percent=0)``), trained
end to end for ``train_epochs`` x ``train_steps`` steps (seeded) in this process before the cells; LISTA-CP:
``ListaCP.from_classical`` (untrained). Each model is saved with ``save_checkpoint`` and every cell reads it
back through ``experiments.report.inputs`` (as the CLI does; the test set is the CLI's sampled one, 256
samples, 64 with a quick report), so the cell times what `unfoldkit check model.pt` does after parsing.

Each cell (model, report mode) runs in its own spawned worker process: a warm-up report of a tiny model
first (first-use costs), then the timed report; the peak RSS above the worker's baseline after warm-up
(``unfoldkit.unrolled.resources.peak_rss_bytes``) is this cell's. Stage times are ``report["timings"]``.
A cell past ``--cap`` seconds is killed and recorded as stopped.

Target (full mode; stated with PASS/FAIL in the table): a default check of a 16-layer model at n = 500 under
3 minutes on 2 cores (both models; ``--threads`` 1 per worker, the report's own setting).
Full: n = 500, K = 16; ``--quick``: n = 100, K = 8 (about a minute).

Outputs (``--out``, default benchmarks/out/): ``check_<mode>.json`` (settings, sessions, training, cells;
rewritten after every cell, so ``--resume`` skips the finished ones), ``check_<mode>.txt`` (the table), and
the models in ``check_<mode>_models/``. An earlier run's files are replaced only with ``--force``.
"""
from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from unfoldkit.experiments.arguments import OneLineParser, nonneg_int
from unfoldkit.experiments.benchmarking import (
    ResultFile, Settings, Worker, cap_seconds, command, finish, fmt, log_stderr, machine, output_options,
    output_paths, table_head, table_row, worker_options,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "out"
BENCHMARK = "check"
FORMAT_VERSION = 1
FAMILIES = ("alista", "lista-cp")
REPORT_MODES = ("default", "quick")
STAGES = ("trajectory", "theorems", "lista", "error", "lipschitz", "generalization", "stress")
#: the target: a default check at (n, K) within seconds
TARGET = (500, 16, 180.0)


@dataclass(frozen=True)
class CheckConfig(Settings):
    """The numbers of a run (stored in its JSON; ``--resume`` needs them unchanged)."""

    mode: str
    n: int
    num_layers: int
    seed: int = 0
    families: tuple[str, ...] = FAMILIES
    report_modes: tuple[str, ...] = REPORT_MODES
    train_epochs: int = 6
    train_steps: int = 50
    train_batch: int = 64
    train_lr: float = 1e-3
    cap_s: float = 900.0


FULL = CheckConfig(mode="full", n=500, num_layers=16)
QUICK = CheckConfig(mode="quick", n=100, num_layers=8, cap_s=300.0)


def make_model(family: str, cfg: dict[str, Any], threads: int = 1) -> tuple[Any, Any, dict[str, Any]]:
    """(problem, model, training record) of ``family`` on SparseRecovery(m = n/2, n); ALISTA trained briefly."""
    from unfoldkit.unrolled.models import Alista, ListaCP
    from unfoldkit.unrolled.problems.sparse import SparseRecovery
    from unfoldkit.unrolled.training.threads import limit_threads
    from unfoldkit.unrolled.training.trainer import train

    n, K, seed = cfg["n"], cfg["num_layers"], cfg["seed"]
    problem = SparseRecovery(m=n // 2, n=n, seed=seed)
    start = time.perf_counter()
    if family == "lista-cp":
        return problem, ListaCP.from_classical(problem, K), {"state": "classical initialisation",
                                                              "build_seconds": time.perf_counter() - start}
    if family != "alista":
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    model = Alista(problem, K, percent=0.0, max_percent=0.0)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    with limit_threads(threads or None):
        res = train(model, problem, "end-to-end", epochs=cfg["train_epochs"], steps_per_epoch=cfg["train_steps"],
                    batch_size=cfg["train_batch"], lr=cfg["train_lr"], val_size=256, seed=seed, progress=False)
    return problem, model, {
        "state": "trained", "scheme": "end-to-end", "epochs": res.epochs_run, "steps_per_epoch": cfg["train_steps"],
        "lr": cfg["train_lr"], "build_seconds": build_s, "seconds": time.perf_counter() - start,
        "val_nmse_db_K_before": res.history[0]["val_nmse_db"][-1], "val_nmse_db_K_after": res.final_val_nmse_db[-1]}


def _report(checkpoint: str, quick: bool, seed: int, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One `unfoldkit check` after parsing: inputs, ``build_report``, ``write_report`` (to a temp folder)."""
    from unfoldkit.experiments.report import CheckInputs, build_report, write_report
    from unfoldkit.experiments.report.inputs import resolve_inputs

    marks: list[tuple[float, str]] = []
    start = time.perf_counter()
    inp = CheckInputs(**resolve_inputs(checkpoint=checkpoint, quick=quick, seed=seed))
    inputs_s = time.perf_counter() - start

    def progress(msg: str) -> None:
        marks.append((time.perf_counter() - start, msg))
        if log is not None:
            log(f"    {time.perf_counter() - start:6.1f} s  {msg}")

    start_b = time.perf_counter()
    report = build_report(inp, quick=quick, seed=seed, progress=progress)
    build_s = time.perf_counter() - start_b
    with tempfile.TemporaryDirectory() as tmp:
        start_w = time.perf_counter()
        paths = write_report(report, Path(tmp) / "report")
        write_s = time.perf_counter() - start_w
        sizes = {k: p.stat().st_size for k, p in paths.items()}
    return {"inputs_seconds": inputs_s, "build_seconds": build_s, "write_seconds": write_s,
            "total_seconds": inputs_s + build_s + write_s, "stages": report["timings"],
            "exit_code": report["exit_code"], "counts": report["counts"], "file_bytes": sizes,
            "test_samples": report["data"]["test_samples"]}


def cell(checkpoint: str, report_mode: str, seed: int, warm_up: str | None = None) -> dict[str, Any]:
    """One cell (in its worker): a warm-up report of ``warm_up`` (a tiny checkpoint), then the timed report."""
    from unfoldkit.unrolled.resources import peak_rss_bytes

    base = None
    if warm_up is not None:
        _report(warm_up, True, seed)
        peak = peak_rss_bytes()
        base = None if peak is None else peak / 2**20
    row = _report(checkpoint, report_mode == "quick", seed, log=log_stderr)
    peak = peak_rss_bytes()
    row["peak_rss_mib"] = None if peak is None else peak / 2**20
    row["baseline_rss_mib"] = base
    row["peak_rss_increase_mib"] = None if peak is None or base is None else peak / 2**20 - base
    return row


def _serve(kind: str, *args: Any) -> Any:
    """The worker's entry point (module level, so that spawn can pickle it)."""
    return {"cell": cell}[kind](*args)


def cell_key(family: str, report_mode: str) -> str:
    return f"{family} {report_mode}"


def _targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    cfg = doc["config"]
    n, K, cap = TARGET
    if (cfg["n"], cfg["num_layers"]) != (n, K):
        return []
    out = []
    for family in cfg["families"]:
        row = doc["cells"].get(cell_key(family, "default"))
        if row is None:
            continue
        done = row.get("status") == "done"
        seconds = row.get("total_seconds") if done else None
        out.append({"family": family, "seconds": seconds, "cap_s": cap,
                    "passed": bool(done and seconds is not None and seconds < cap)})
    return out


def table(doc: dict[str, Any]) -> str:
    cfg = doc["config"]
    sess = doc["sessions"][-1]["machine"]
    lines = [f"unfoldkit check cost: SparseRecovery m={cfg['n'] // 2}, n={cfg['n']}, K={cfg['num_layers']}, "
             f"float32 checkpoints, seed {cfg['seed']}; {sess['cpu_count']} CPUs, {doc['threads']} thread(s) "
             f"per worker, one worker at a time. total = inputs + build_report + write_report; peak = worker "
             f"peak RSS above its baseline after a warm-up report."]
    for family, tr in doc.get("models", {}).items():
        if tr.get("state") == "trained":
            lines.append(f"  {family}: trained end-to-end {tr['epochs']} x {tr['steps_per_epoch']} steps, lr "
                         f"{tr['lr']:g}, {tr['seconds']:.1f} s; validation NMSE at layer K "
                         f"{tr['val_nmse_db_K_before']:.2f} -> {tr['val_nmse_db_K_after']:.2f} dB")
        else:
            lines.append(f"  {family}: {tr.get('state')}")
    head = ["model", "report", "samples", *STAGES, "build", "write", "total s", "peak MiB", "exit",
            "holds/fails/n.c."]
    lines += ["", *table_head(head)]
    for key, r in doc["cells"].items():
        family, mode = key.rsplit(" ", 1)
        if r.get("status") != "done":
            lines.append(table_row([family, mode, "-", *(["-"] * len(STAGES)), "-", "-", r.get("status"), "-", "-",
                                    r.get("error", "")]))
            continue
        c = r["counts"]
        lines.append(table_row([family, mode, r["test_samples"], *(fmt(r["stages"].get(s), ".1f") for s in STAGES),
                                fmt(r["build_seconds"], ".1f"), fmt(r["write_seconds"], ".2f"),
                                fmt(r["total_seconds"], ".1f"), fmt(r.get("peak_rss_increase_mib"), ".0f"),
                                r["exit_code"], f"{c['holds']}/{c['fails']}/{c['not covered']}"]))
    n, K, cap = TARGET
    if not doc.get("targets"):
        lines.append(f"target: default check of a {K}-layer model at n = {n} under {cap / 60:g} minutes on 2 cores: "
                     f"not measured in this mode")
    for t in doc.get("targets", []):
        lines.append(f"target: default check of a {K}-layer model at n = {n} under {cap / 60:g} minutes on 2 cores "
                     f"({t['family']}): {'PASS' if t['passed'] else 'FAIL'} "
                     f"({fmt(t['seconds'], '.1f')} s)")
    return "\n".join(lines) + "\n"


def run_benchmark(cfg: CheckConfig, out_dir: str | Path, resume: bool = False, force: bool = False,
                  isolate: bool = True, threads: int = 1, log: Callable[[str], None] = log_stderr) -> dict[str, Any]:
    """Train / build the models, then every (model, report mode) cell not yet done; returns the JSON document
    (written to ``out_dir`` after every cell). ``isolate``: each cell in its own spawned worker (peak memory,
    cap); otherwise in this process (tests)."""
    from unfoldkit.unrolled.training import save_checkpoint

    models_dir = Path(out_dir) / f"{BENCHMARK}_{cfg.mode}_models"
    run = ResultFile(out_dir, BENCHMARK, FORMAT_VERSION, cfg.to_dict(), resume, machine(threads=threads),
                     {"isolated": isolate}, force=force, checkpoints=[models_dir], cells={}, models={}, targets=[],
                     threads=threads)
    doc = run.doc
    settings = cfg.to_dict()

    def save() -> None:
        doc["targets"] = _targets(doc)
        run.save(table(doc))

    models_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for family in cfg.families:
        path = models_dir / f"{family}.pt"
        if family not in doc["models"] or not path.exists():
            log(f"  model {family}: n={cfg.n}, K={cfg.num_layers}")
            problem, model, record = make_model(family, settings, threads)
            save_checkpoint(path, model, problem=problem, seed=cfg.seed,
                            training={k: v for k, v in record.items() if k != "state"})
            doc["models"][family] = record
            save()
        paths[family] = str(path)
    warm = None
    if isolate:
        tiny = dict(settings, n=16, num_layers=2)
        problem, model, _ = make_model("lista-cp", tiny)
        warm = str(save_checkpoint(models_dir / "warm-up.pt", model, problem=problem))
    for family in cfg.families:
        for mode in cfg.report_modes:
            key = cell_key(family, mode)
            if doc["cells"].get(key, {}).get("status") == "done":
                continue
            log(f"  {key}")
            try:
                if isolate:
                    with Worker(_serve) as worker:
                        row = worker.call("cell", paths[family], mode, cfg.seed, warm, timeout=cfg.cap_s)
                else:
                    row = cell(paths[family], mode, cfg.seed)
                row["status"] = "done"
            except (TimeoutError, ChildProcessError) as err:
                row = {"status": "stopped", "error": str(err)}
            doc["cells"][key] = row
            save()
            if row["status"] == "done":
                log(f"  {key}: {row['total_seconds']:.1f} s, exit {row['exit_code']}")
    save()
    return doc


@command
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: 0, 1 when a cell did not finish, 2 on a bad argument."""
    p = OneLineParser(prog="python benchmarks/check.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="n = 100, K = 8 (about a minute)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="problem, training and report seed (default 0)")
    worker_options(p, "torch and BLAS threads of the training (default 1; the report limits itself to 1)")
    output_options(p, DEFAULT_OUT, "skip the cells that are finished")
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    cap = cap_seconds(args.cap, base.cap_s)
    cfg = CheckConfig(**{**base.__dict__, "seed": args.seed, "cap_s": cap})
    start = time.perf_counter()
    doc = run_benchmark(cfg, args.out, resume=args.resume, force=args.force, threads=args.threads)
    print(table(doc))
    failed = [k for k, r in doc["cells"].items() if r.get("status") != "done"]
    return finish(time.perf_counter() - start, cfg.mode, output_paths(args.out, BENCHMARK, cfg.mode), failed)


if __name__ == "__main__":
    sys.exit(main())
