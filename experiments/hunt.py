"""Stress sweeps: seeded hypothesis rounds of a stress target run in parallel (joblib: loky on this machine,
Dask or Ray on a cluster), streamed to an output folder atomically, resumable, stopped at the first real
counterexample (saved, shrunk, replayable).

Folder layout: ``stress.json`` (settings, every finished round, counts of the three outcomes, best margin,
counterexamples), ``counterexamples/*.npz`` (``proofs_check.stress.save_counterexample``) and
``hypothesis-db/`` (hypothesis's example database: a resumed run replays saved failures first).
"""
from __future__ import annotations

import math
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from unfoldkit.proofs_check.stress import PROFILE_EXAMPLES, STATES, RoundResult, run_round, save_counterexample
from unfoldkit.unrolled.io import read_json, write_json

BACKENDS = ("loky", "dask", "ray")
RESULT = "stress.json"



@contextmanager
def saved_on_interrupt(doc: dict[str, Any], path: Path, wall0: float, start: float) -> Iterator[None]:
    """On Ctrl-C, mark the sweep document "interrupted" with its wall time and write it (atomically) before
    re-raising, so that ``--resume`` continues from the last finished unit."""
    try:
        yield
    except KeyboardInterrupt:
        doc["status"] = "interrupted"
        doc["wall_s"] = wall0 + time.perf_counter() - start
        write_json(path, doc)
        raise

def round_size(examples: int | None, workers: int, profile: str) -> int:
    """Examples per round: a quarter of a worker's share of ``examples`` in [10, 200] (so progress streams
    and a violation stops the sweep early); with a time budget, the profile's size (at least 10)."""
    if examples is None:
        return max(10, min(200, PROFILE_EXAMPLES[profile]))
    return int(min(200, max(10, math.ceil(examples / (4 * workers)))))


@contextmanager
def parallel_backend(backend: str, scheduler: str | None, workers: int) -> Iterator[None]:
    """joblib's backend for the sweep: "loky" (local processes), "dask" (a ``dask.distributed.Client`` on
    ``scheduler``, or a local cluster of ``workers`` processes) or "ray" (``ray.init(address=scheduler)``)."""
    import joblib

    if backend == "loky":
        yield
        return
    with ExitStack() as stack:
        if backend == "dask":
            try:
                from dask.distributed import Client, LocalCluster
            except ImportError:
                raise ValueError("--backend dask needs the dask extra: pip install 'unfoldkit[dask]'") from None
            if scheduler:
                client = stack.enter_context(Client(scheduler))
            else:
                cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1,
                                                           processes=True, dashboard_address=None))
                client = stack.enter_context(Client(cluster))
            del client
        elif backend == "ray":
            try:
                import ray
                from ray.util.joblib import register_ray
            except ImportError:
                raise ValueError("--backend ray needs the ray extra: pip install 'unfoldkit[ray]'") from None
            register_ray()
            ray.init(address=scheduler, ignore_reinit_error=True, include_dashboard=False)
            stack.callback(ray.shutdown)
        else:
            raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        stack.enter_context(joblib.parallel_config(backend=backend))
        yield


def _new_document(target: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {"target": target, "settings": settings, "rounds": [], "examples": 0, "errors": 0,
            "counts": {s: 0 for s in STATES}, "best_margin": None, "counterexamples": [], "wall_s": 0.0,
            "status": "running"}


def hunt(target: str, out_dir: str | Path, *, examples: int | None = None, time_s: float | None = None,
         workers: int = 1, backend: str = "loky", scheduler: str | None = None, seed: int = 0,
         profile: str = "dev", resume: bool = False, call: str = "",
         progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Hunt for a violation of ``target``'s bounds; return the result document (also in ``out_dir``).

    Budget: ``examples`` in all (default: the profile's), or ``time_s`` seconds. Rounds of
    ``round_size`` examples with seeds seed, seed + 1, ... run on ``workers`` (joblib ``backend``); each
    finished round is merged into ``stress.json`` atomically and its counterexample saved at once, so an
    interrupted run loses nothing it found; ``resume`` continues an existing document (same target and
    settings) with the next seeds. The sweep stops dispatching rounds at the first real violation."""
    import joblib

    out = Path(out_dir)
    path = out / RESULT
    settings = {"profile": profile, "seed": seed, "examples": examples, "time_s": time_s, "workers": workers,
                "backend": backend}
    if resume:
        doc = read_json(path)
        if doc.get("target") != target:
            raise ValueError(f"{path} holds a run of {doc.get('target')!r}, not {target!r}: use another --out")
    else:
        doc = _new_document(target, settings)
    if examples is None and time_s is None:
        examples = PROFILE_EXAMPLES[profile]
    size = round_size(examples, workers, profile)
    done_seeds = {r["seed"] for r in doc["rounds"]}
    start, wall0 = time.perf_counter(), float(doc["wall_s"])
    db = out / "hypothesis-db"

    in_flight: dict[int, int] = {}  # seed -> examples of rounds dispatched but not merged yet

    def budget_left() -> int:
        if doc["counterexamples"] or doc["errors"]:
            return 0
        if time_s is not None:
            return size if wall0 + time.perf_counter() - start < time_s else 0
        return max(0, int(examples) - doc["examples"] - sum(in_flight.values()))

    def tasks() -> Iterator[Any]:
        s = seed
        while True:
            n = min(size, budget_left())
            if n <= 0:
                return
            while s in done_seeds:
                s += 1
            done_seeds.add(s)
            in_flight[s] = n
            yield joblib.delayed(run_round)(target, s, n, profile, str(db))
            s += 1

    def merge(res: RoundResult) -> None:
        in_flight.pop(res.seed, None)
        doc["rounds"].append(res.to_dict())
        doc["examples"] += res.examples
        doc["errors"] += res.errors
        for k, v in res.counts.items():
            doc["counts"][k] += v
        if math.isfinite(res.best_margin):
            best = doc["best_margin"]
            doc["best_margin"] = res.best_margin if best is None else min(best, res.best_margin)
        if res.counterexample is not None:
            cex = res.counterexample
            cex["file"] = str(save_counterexample(out / "counterexamples", cex, call))
            doc["counterexamples"].append(cex)
        doc["wall_s"] = wall0 + time.perf_counter() - start
        write_json(path, doc)
        if progress is not None:
            progress(doc)

    out.mkdir(parents=True, exist_ok=True)
    write_json(path, doc)
    with saved_on_interrupt(doc, path, wall0, start):
        if workers == 1 and backend == "loky":
            for task in tasks():
                fn, args, kwargs = task
                merge(fn(*args, **kwargs))
        else:
            with parallel_backend(backend, scheduler, workers):
                for res in joblib.Parallel(n_jobs=workers, return_as="generator_unordered",
                                           pre_dispatch="n_jobs")(tasks()):
                    merge(res)
    kinds = {c.get("kind") for c in doc["counterexamples"]}
    doc["status"] = "violation" if "violation" in kinds else "error" if kinds else "no violation"
    doc["wall_s"] = wall0 + time.perf_counter() - start
    write_json(path, doc)
    return doc
