"""Generalization sweep: for each (family, K, m_train, seed), train an unfolded model on m_train samples, measure
its generalization gap on a large fresh test set and compute the risk bounds of ``theory.generalization``.

    python -m unfoldkit.experiments.generalization --out DIR [--quick] [--families a,b] [--ks 5,10]
        [--ms 100,1000,10000] [--seeds 0,1,2] [--workers W] [--backend loky|dask|ray] [--scheduler ADDRESS]
        [--resume | --force] [--no-progress]

Per config (``run_config``, one torch / BLAS thread): the model at its classical initialisation (ALISTA: the
analytic Frobenius weight without support selection, ``percent = max_percent = 0``: support selection is
discontinuous and the covering bound refuses it), trained end to end (NMSE, Adam) on a fixed training set of
m_train samples drawn from the trainer's own seeded stream (``training_set`` draws the same samples), for about
``train_steps`` optimisation steps (whole passes over the set: epochs = max(1, round(train_steps / passes))),
learning rate on a cosine schedule over the epochs, keeping the last iterate (``restore_best=False``: choosing the epoch on a validation set would use
``val_size`` more labelled samples than m_train, which at m_train = 100 is most of the data; the validation
set only reports).
Then, on the clipped NMSE (loss in [0, c]):

- measured: ``proofs_check.generalization_gap.measure_gap`` (train risk, test risk on ``test_size`` fresh
  samples, gap, bootstrap interval of the gap, Hoeffding interval of the true risk);
- ``pac_bayes_certificate`` (kl form; prior at the classical initialisation, ``prior="init"``; for ALISTA
  ``prior="constructor"``, its own initialisation gamma = 1, theta = lam/L, where training starts and where the
  covering bound centres its class: "init" would put ALISTA's prior at ISTA's step 1/L; see ``PRIORS``), with
  the posterior's own test risk (``posterior_risk`` at the certificate's sigma on ``posterior_test_size`` test
  samples), since that certificate bounds the risk of the randomised model;
- ``covering_bound`` (or "not covered" with the reason: NotImplementedError for an uncovered family, ValueError
  for a model it refuses, e.g. a learned negative threshold);
- ``trivial_bound`` (c).

Parallel: joblib over configs (``--workers``; backend loky by default, dask or ray through the same option and
helper as ``unfoldkit stress``: ``experiments.hunt.parallel_backend``), with a tqdm progress bar. Every finished
config is one row of ``DIR/generalization-sweep.json`` (settings, rows by key), rewritten atomically as it
arrives; ``--resume`` continues a run with the same settings and skips its finished rows (failed ones rerun).
"""
from __future__ import annotations

import math
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from unfoldkit.experiments.hunt import BACKENDS, parallel_backend, saved_on_interrupt
from unfoldkit.unrolled.io import jsonable, read_json, write_json

RESULT = "generalization-sweep.json"
FORMAT_VERSION = 1
#: the study's families, one panel each: paradigm 1 (hyperparameters), 4 (inductive bias) x 3, 3 (correction)
FAMILIES = ("ista-learned-step", "alista", "lista-cp", "lista", "ista-correction")
#: Adam learning rate per family (the full-matrix models move with the smaller one)
LRS = {"ista-learned-step": 5e-3, "alista": 5e-3, "lista-cp": 1e-3, "lista": 1e-3, "ista-correction": 1e-3}
#: PAC-Bayes prior per family (default "init"): see the module docstring for ALISTA
PRIORS = {"alista": "constructor"}
#: the bounds computed per config, in table order
BOUNDS = ("pac-bayes-kl", "covering", "trivial")
#: seed stream of the test set (independent of the trainer's validation / training / shuffling streams)
TEST_STREAM = 7_777_777


@dataclass(frozen=True)
class SweepSettings:
    """The numbers of a sweep (stored in its JSON; ``--resume`` needs them unchanged).

    ``grid``: "cross" (every m at K = ``k_ref`` and every K at m = ``m_ref``: the two slices the figure
    draws) or "product" (every (K, m)). ``delta``: confidence parameter of the covering bound and of the
    measured intervals (level 1 - delta); the PAC-Bayes certificate holds with probability
    1 - ``pac_delta`` - ``pac_delta_mc``."""

    families: tuple[str, ...] = FAMILIES
    ks: tuple[int, ...] = (5, 10, 16)
    ms: tuple[int, ...] = (100, 1000, 10_000, 100_000)
    seeds: tuple[int, ...] = (0, 1, 2)
    grid: str = "cross"
    k_ref: int = 10
    m_ref: int = 10_000
    problem_m: int = 50
    problem_n: int = 100
    problem_seed: int = 0
    train_steps: int = 400
    batch_size: int = 64
    val_size: int = 256
    test_size: int = 100_000
    clip: float = 1.0
    delta: float = 0.05
    pac_delta: float = 0.025
    pac_delta_mc: float = 0.01
    mc_samples: int = 200
    mc_batch: int = 100
    posterior_draws: int = 10
    posterior_test_size: int = 5000
    bootstrap: int = 2000

    def __post_init__(self) -> None:
        unknown = [f for f in self.families if f not in LRS]
        if unknown or not self.families:
            raise ValueError(f"families must be among {', '.join(FAMILIES)}, got {', '.join(unknown) or 'none'}")
        for name in ("ks", "ms", "seeds"):
            vals = getattr(self, name)
            low = 0 if name == "seeds" else 1
            if not vals or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low for v in vals):
                raise ValueError(f"{name} must be a non-empty list of integers >= {low}, got {list(vals)!r}")
            if len(set(vals)) != len(vals):
                raise ValueError(f"{name} lists a value twice: {list(vals)!r}")
        if self.grid not in ("cross", "product"):
            raise ValueError(f"grid must be 'cross' or 'product', got {self.grid!r}")
        if self.grid == "cross" and (self.k_ref not in self.ks or self.m_ref not in self.ms):
            raise ValueError(f"a cross grid needs k_ref = {self.k_ref} among ks {list(self.ks)} and m_ref = "
                             f"{self.m_ref} among ms {list(self.ms)}")
        if min(self.ms) < 8:
            raise ValueError(f"every m_train must be >= 8 (the PAC-Bayes-kl theorem), got {min(self.ms)}")

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepSettings:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


#: the figure's quick grid: 4 families (paradigms 1, 3 and 4, small and large d), m up to 1e4, K in {5, 10},
#: one seed, 20000 test samples; 16 configs, a few minutes on 2 loaded cores (1 worker)
QUICK = SweepSettings(families=("ista-learned-step", "alista", "lista", "ista-correction"), ks=(5, 10),
                      ms=(100, 1000, 10_000), seeds=(0,), test_size=20_000, posterior_test_size=2000)
FULL = SweepSettings()


# ---- the grid ----------------------------------------------------------------------------------------


def config_key(family: str, num_layers: int, m_train: int, seed: int) -> str:
    """The row key of a config, e.g. "lista/K=10/m=1000/seed=0"."""
    return f"{family}/K={num_layers}/m={m_train}/seed={seed}"


def configs(settings: SweepSettings) -> list[tuple[str, int, int, int]]:
    """(family, K, m_train, seed) of every config, cheapest first within a family (small m, small K)."""
    if settings.grid == "product":
        pairs = [(k, m) for m in settings.ms for k in settings.ks]
    else:
        pairs = [(settings.k_ref, m) for m in settings.ms]
        pairs += [(k, settings.m_ref) for k in settings.ks if k != settings.k_ref]
    pairs.sort(key=lambda km: (km[1], km[0]))
    return [(f, k, m, s) for s in settings.seeds for f in settings.families for k, m in pairs]


# ---- one config --------------------------------------------------------------------------------------


def build_model(family: str, problem: Any, num_layers: int) -> Any:
    """The float32 model at its classical initialisation (ALISTA: Frobenius weight, no support selection)."""
    from unfoldkit.unrolled.models import MODELS, Alista

    if family == "alista":
        return Alista(problem, num_layers, percent=0.0, max_percent=0.0)
    return MODELS[family].from_classical(problem, num_layers)


def training_set(problem: Any, m_train: int, seed: int) -> Any:
    """The m_train samples ``train(..., train_size=m_train, seed=seed)`` trains on (its second seed stream),
    in float64."""
    _, train_seq, _ = np.random.SeedSequence(seed).spawn(3)
    return problem.sample(m_train, np.random.default_rng(train_seq))


def test_set(problem: Any, size: int, seed: int) -> Any:
    """``size`` fresh samples from a stream of its own (shared by every family, K and m of a seed)."""
    return problem.sample(size, np.random.default_rng([seed, TEST_STREAM]))


def _epochs(settings: SweepSettings, m_train: int) -> int:
    passes = math.ceil(m_train / settings.batch_size)
    return max(1, round(settings.train_steps / passes))


def _bound_entry(bound: Any, seconds: float) -> dict[str, Any]:
    out = bound.to_dict()
    out.update(status="vacuous" if bound.vacuous else "non-vacuous", seconds=seconds)
    return out


def run_config(settings: dict[str, Any], family: str, num_layers: int, m_train: int, seed: int) -> dict[str, Any]:
    """Train one config and measure / bound it (module docstring); returns its row. One torch / BLAS thread."""
    from unfoldkit.proofs_check.generalization_gap import measure_gap
    from unfoldkit.theory.generalization import covering_bound, pac_bayes_certificate, trivial_bound
    from unfoldkit.theory.generalization.pac_bayes import learned_parameters, posterior_risk
    from unfoldkit.unrolled.problems.sparse import SparseRecovery
    from unfoldkit.unrolled.training.threads import limit_threads
    from unfoldkit.unrolled.training.trainer import train

    s = SweepSettings.from_dict(settings)
    start = time.perf_counter()
    timings: dict[str, float] = {}
    with limit_threads(1):
        problem = SparseRecovery(m=s.problem_m, n=s.problem_n, seed=s.problem_seed)
        model = build_model(family, problem, num_layers)
        epochs = _epochs(s, m_train)
        t = time.perf_counter()
        res = train(model, problem, "end-to-end", epochs=epochs, batch_size=s.batch_size, train_size=m_train,
                    lr=LRS[family], val_size=s.val_size, restore_best=False, lr_schedule="cosine", seed=seed,
                    progress=False, threads=1)
        timings["train"] = time.perf_counter() - t
        train_data = training_set(problem, m_train, seed)
        test = test_set(problem, s.test_size, seed)

        t = time.perf_counter()
        measured = measure_gap(model, train_data.y, train_data.x, test.y, test.x, clip=s.clip,
                               confidence=1.0 - s.delta, bootstrap=s.bootstrap, seed=seed)
        timings["measure"] = time.perf_counter() - t

        bounds: dict[str, Any] = {}
        t = time.perf_counter()
        prior = PRIORS.get(family, "init")
        pac = pac_bayes_certificate(model, train_data.y, train_data.x, prior=prior, mc_samples=s.mc_samples,
                                    mc_batch=s.mc_batch if s.mc_batch < m_train else None, delta=s.pac_delta,
                                    delta_mc=s.pac_delta_mc, clip=s.clip, seed=seed, form="kl")
        bounds["pac-bayes-kl"] = _bound_entry(pac, time.perf_counter() - t)
        t = time.perf_counter()
        p = min(s.posterior_test_size, s.test_size)
        draws = posterior_risk(model, test.y[:p], test.x[:p], pac.details["best_sigma"], draws=s.posterior_draws,
                               clip=s.clip, seed=seed)
        bounds["pac-bayes-kl"]["posterior_test_risk"] = float(draws.mean())
        bounds["pac-bayes-kl"]["posterior_test_risk_draws"] = draws.tolist()
        bounds["pac-bayes-kl"]["posterior_test_size"] = p
        timings["posterior_test"] = time.perf_counter() - t

        t = time.perf_counter()
        try:
            cov = covering_bound(model, train_data.y, train_data.x, delta=s.delta, clip=s.clip, check_y=test.y)
            bounds["covering"] = _bound_entry(cov, time.perf_counter() - t)
        except NotImplementedError as err:
            bounds["covering"] = {"name": "covering", "status": "not covered", "reason": str(err), "value": None,
                                  "seconds": time.perf_counter() - t}
        except ValueError as err:
            bounds["covering"] = {"name": "covering", "status": "refused", "reason": str(err), "value": None,
                                  "seconds": time.perf_counter() - t}
        bounds["trivial"] = _bound_entry(trivial_bound(s.clip, measured["train_risk"], m_train, s.delta), 0.0)
        d = int(sum(p.numel() for p in learned_parameters(model).values()))
    timings["total"] = time.perf_counter() - start
    from unfoldkit.unrolled.models import MODELS

    return jsonable({
        "key": config_key(family, num_layers, m_train, seed), "status": "done", "family": family,
        "paradigm": MODELS[family].paradigm, "K": num_layers, "m_train": m_train, "seed": seed, "d": d,
        "prior": prior,
        "training": {"scheme": "end-to-end", "lr": LRS[family], "epochs": res.epochs_run,
                     "steps": res.epochs_run * math.ceil(m_train / s.batch_size), "batch_size": s.batch_size,
                     "restore_best": False, "lr_schedule": "cosine", "train_loss_last": res.history[-1]["train_loss"],
                     "val_nmse_db_before": res.history[0]["val_nmse_db"][-1],
                     "val_nmse_db_after": res.final_val_nmse_db[-1]},
        "measured": measured, "bounds": bounds, "seconds": timings,
    })


def _safe_run(settings: dict[str, Any], family: str, num_layers: int, m_train: int, seed: int) -> dict[str, Any]:
    """``run_config``, with an error recorded as a failed row (the sweep goes on; --resume retries it)."""
    try:
        return run_config(settings, family, num_layers, m_train, seed)
    except Exception as err:  # noqa: BLE001 - recorded in the row
        return {"key": config_key(family, num_layers, m_train, seed), "status": "failed", "family": family,
                "K": num_layers, "m_train": m_train, "seed": seed, "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc(limit=6)}


# ---- running many ------------------------------------------------------------------------------------


def run_configs(settings: SweepSettings, todo: Sequence[tuple[str, int, int, int]], *, workers: int = 1,
                backend: str = "loky", scheduler: str | None = None, progress: bool = True,
                desc: str = "generalization") -> Iterator[dict[str, Any]]:
    """The rows of ``todo`` as they finish (any order): in this process for one loky worker, else over
    joblib's ``backend`` (``experiments.hunt.parallel_backend``) on ``workers``; a tqdm bar on stderr."""
    import joblib
    from tqdm.auto import tqdm

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    cfg = settings.to_dict()
    bar = tqdm(total=len(todo), desc=desc, unit="config", disable=not progress, leave=False)
    try:
        if workers == 1 and backend == "loky":
            for task in todo:
                bar.set_postfix_str(config_key(*task))
                row = _safe_run(cfg, *task)
                bar.update()
                yield row
            return
        with parallel_backend(backend, scheduler, workers):
            jobs = (joblib.delayed(_safe_run)(cfg, *task) for task in todo)
            for row in joblib.Parallel(n_jobs=workers, return_as="generator_unordered",
                                       pre_dispatch="2*n_jobs")(jobs):
                bar.set_postfix_str(row["key"])
                bar.update()
                yield row
    finally:
        bar.close()


def sweep(settings: SweepSettings, out_dir: str | Path, *, workers: int = 1, backend: str = "loky",
          scheduler: str | None = None, resume: bool = False, force: bool = False, progress: bool = True,
          on_row: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run every config of ``settings`` not finished yet and return the document (also ``out_dir/RESULT``,
    rewritten atomically after each row). An existing document needs ``resume`` (same settings: its finished
    rows are kept and skipped) or ``force`` (replaced); ValueError otherwise."""
    out = Path(out_dir)
    path = out / RESULT
    if resume and force:
        raise ValueError("resume and force exclude each other")
    cfg = settings.to_dict()
    if path.exists() and resume:
        doc = read_json(path)
        if doc.get("format_version") != FORMAT_VERSION or doc.get("settings") != cfg:
            raise ValueError(f"{path} holds a sweep with other settings (or format); use --force to replace it "
                             f"or another --out")
    elif path.exists() and not force:
        raise ValueError(f"{path} exists (an earlier sweep): --resume continues it, --force replaces it")
    elif resume:
        raise ValueError(f"--resume: {out} holds no sweep ({RESULT} missing)")
    else:
        doc = {"sweep": "generalization", "format_version": FORMAT_VERSION, "settings": cfg, "rows": {},
               "wall_s": 0.0, "status": "running"}
    done = {k for k, r in doc["rows"].items() if r.get("status") == "done"}
    todo = [c for c in configs(settings) if config_key(*c) not in done]
    out.mkdir(parents=True, exist_ok=True)
    start, wall0 = time.perf_counter(), float(doc.get("wall_s", 0.0))
    doc["status"] = "running"
    write_json(path, doc)
    with saved_on_interrupt(doc, path, wall0, start):
        for row in run_configs(settings, todo, workers=workers, backend=backend, scheduler=scheduler,
                               progress=progress):
            doc["rows"][row["key"]] = row
            doc["wall_s"] = wall0 + time.perf_counter() - start
            write_json(path, doc)
            if on_row is not None:
                on_row(row)
    failed = sorted(k for k, r in doc["rows"].items() if r.get("status") != "done")
    doc["status"] = "failed rows: " + ", ".join(failed) if failed else "done"
    doc["wall_s"] = wall0 + time.perf_counter() - start
    write_json(path, doc)
    return doc


def finished_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The finished rows of a document, in grid order (family, seed, m, K)."""
    rows = [r for r in doc["rows"].values() if r.get("status") == "done"]
    order = {f: i for i, f in enumerate(FAMILIES)}
    return sorted(rows, key=lambda r: (order.get(r["family"], 99), r["seed"], r["m_train"], r["K"]))


# ---- command line -------------------------------------------------------------------------------------


def _int_list(option: str, text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        vals = tuple(int(float(v)) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{option} must be comma-separated integers, got {text!r}") from None
    return vals


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: 0 (every row done), 1 (some failed), 2 (bad argument), 130 (Ctrl-C)."""
    from unfoldkit.experiments.arguments import OneLineParser, output_folder, positive_int

    p = OneLineParser(prog="python -m unfoldkit.experiments.generalization", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="generalization-results", metavar="DIR",
                   help=f"output folder, {RESULT} inside (default generalization-results/)")
    p.add_argument("--quick", action="store_true", help="the figure's quick grid (4 families, m up to 1e4, K 5, "
                                                        "10, one seed; minutes)")
    p.add_argument("--families", default=None, help=f"comma-separated, among {', '.join(FAMILIES)}")
    p.add_argument("--ks", default=None, help="layers K, e.g. 5,10,16")
    p.add_argument("--ms", default=None, help="training-set sizes, e.g. 100,1000,10000")
    p.add_argument("--seeds", default=None, help="seeds, e.g. 0,1,2")
    p.add_argument("--grid", choices=("cross", "product"), default=None,
                   help="cross: every m at K = k_ref and every K at m = m_ref (default); product: every (K, m)")
    p.add_argument("--workers", type=positive_int, default=1, metavar="W", help="parallel configs (default 1)")
    p.add_argument("--backend", choices=BACKENDS, default="loky",
                   help="joblib backend (dask, ray: optional extras; default loky, local processes)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="dask scheduler or ray cluster address (default: a local cluster)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue the sweep in --out (finished rows kept)")
    g.add_argument("--force", action="store_true", help="start afresh even if --out holds a sweep")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    try:
        args = p.parse_args(argv)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2
    try:
        base = QUICK if args.quick else FULL
        changes: dict[str, Any] = {}
        if args.families is not None:
            changes["families"] = tuple(f.strip() for f in args.families.split(",") if f.strip())
        for name in ("ks", "ms", "seeds"):
            vals = _int_list(f"--{name}", getattr(args, name))
            if vals is not None:
                changes[name] = vals
        if args.grid is not None:
            changes["grid"] = args.grid
        if "ks" in changes and base.k_ref not in changes["ks"]:
            changes["k_ref"] = changes["ks"][len(changes["ks"]) // 2]
        if "ms" in changes and base.m_ref not in changes["ms"]:
            changes["m_ref"] = max(changes["ms"])
        settings = replace(base, **changes)
        out = output_folder("--out", args.out)
        doc = sweep(settings, out, workers=args.workers, backend=args.backend, scheduler=args.scheduler,
                    resume=args.resume, force=args.force, progress=not args.no_progress)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished rows are in {args.out}/{RESULT}; run the same command with --resume",
              file=sys.stderr)
        return 130
    rows = finished_rows(doc)
    for r in rows:
        b = r["bounds"]
        cov = b["covering"]
        print(f"{r['key']}: test {r['measured']['test_risk']:.4f}, gap {r['measured']['gap']:+.4f}; PAC-Bayes-kl "
              f"{b['pac-bayes-kl']['value']:.4g}; covering "
              + (f"{cov['value']:.4g}" if cov.get("value") is not None else cov["status"]))
    print(f"{len(rows)} of {len(doc['rows'])} rows done in {doc['wall_s']:.1f} s; wrote {out / RESULT}")
    return 0 if doc["status"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
