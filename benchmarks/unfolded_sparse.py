#!/usr/bin/env python
"""Benchmark: every unfolded model of ``MODELS`` beside ISTA and FISTA on sparse recovery.

The standard setting of Chen, Liu, Wang & Yin (NeurIPS 2018) and Liu, Chen, Wang & Yin (ICLR 2019):
y = A x (+ noise), A in R^{m x n} with N(0, 1/m) entries and unit-norm columns (``SparseRecovery``),
x Bernoulli(0.1) x N(0, 1), m = 250, n = 500, K = 16 layers, noiseless and SNR 40 dB.

    python benchmarks/unfolded_sparse.py [--quick] [--models a,b,...] [--snr inf,40] [--out DIR] [--resume | --force]

Measured, per setting (noise level) and per method, on one fixed, seeded test set:

* NMSE (dB) = 10 log10(sum_b ||x_k^b - x^b||^2 / sum_b ||x^b||^2) at EVERY layer k = 0..K;
* ISTA and FISTA (K iterations, step 1/L, x_0 = 0) with lambda chosen on a separate validation set from
  ``lam_grid``; also at lambda = 0.4, the value behind the only published ISTA/FISTA numbers;
* every model of ``MODELS`` trained with the recipe of ``RECIPES`` (documented there and in
  benchmarks/README.md), its training time, its peak memory and its number of learned parameters;
* published values beside ours (``PUBLISHED``, read from benchmarks/published.json; "not available" elsewhere);
* the targets, each with pass / fail / not evaluable (``evaluate_targets``).

Peak memory on CPU is the increase of ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` during training
(``peak_memory_kind`` "ru_maxrss-delta, fresh process" when every model trains in its own spawned process,
the default; "ru_maxrss-delta, shared process (lower bound)" with ``--no-isolate``, where an earlier,
higher peak hides a later one). On CUDA it is ``torch.cuda.max_memory_allocated``.

Outputs (``--out``, default benchmarks/out/): ``unfolded_sparse_<mode>.json`` (rewritten atomically with
``unrolled.io.write_json`` after every method, so ``--resume`` skips what is finished) and
``unfolded_sparse_<mode>.txt`` (the table); per-model trainer checkpoints under
``checkpoints/<mode>/<setting>/<model>/`` (``--resume`` continues an interrupted training bit-exactly).
When these exist, a run needs ``--resume`` (continue) or ``--force`` (delete them and start afresh).
Bad arguments print one line on stderr and exit with status 2.
"""
from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unfoldkit.experiments.arguments import OneLineParser
from unfoldkit.experiments.benchmarking import (
    Budget, ResultFile, Settings, UsageError, Worker, claim_outputs, command, failed_entry, failed_row, finish, fmt,
    judge, judge_layers, log_stderr, machine, output_paths, parse_models, parse_snr_list, setting_key, setting_label,
    settings_parser, table_head, table_row,
)
from unfoldkit.unrolled.io import jsonable, read_json, write_json
from unfoldkit.unrolled.metrics import nmse, nmse_db_curve
from unfoldkit.unrolled.models import MODELS, make_model
from unfoldkit.unrolled.models.common import require_linear
from unfoldkit.unrolled.problems.sparse import SparseRecovery
from unfoldkit.unrolled.resources import peak_memory, peak_rss_bytes
from unfoldkit.unrolled.solvers import run_fista, run_ista
from unfoldkit.unrolled.training import evaluate, train
from unfoldkit.unrolled.training.schemes import make_scheme
from unfoldkit.unrolled.training.threads import limit_threads

#: bump when the JSON layout changes (a resumed file must have the same version)
FORMAT_VERSION = 1
#: the initial lambda of the authors' LISTA / LISTA-CP / LISTA-CPSS / ALISTA code
#: (VITA-Group/LISTA-CPSS config.py: ``--lam 0.4``, "Initial lambda in LISTA solvers")
AUTHORS_LAM = 0.4
#: the rows of the classical baselines, in table order (``run_baselines``)
BASELINE_ROWS = ("ista", "fista", f"ista@lam={AUTHORS_LAM:g}", f"fista@lam={AUTHORS_LAM:g}")
DEFAULT_OUT = Path(__file__).resolve().parent / "out"
#: the published reference values, each with its source
PUBLISHED_FILE = Path(__file__).resolve().parent / "published.json"


# ---- settings --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig(Settings):
    """Everything that fixes the numbers of a run (stored in the JSON; ``--resume`` needs it unchanged).

    ``m``, ``n``, ``sparsity``, ``num_layers`` (K): the problem and the depth. ``test_size``: the fixed test
    set; ``lam_val_size``: the validation set on which ISTA's and FISTA's lambda is chosen from
    ``lam_grid``; ``train_val_size``: the trainer's validation set (early stopping, best-epoch restore).
    ``layerwise`` / ``end_to_end``: training budgets (``end_to_end`` also serves multi-loss).
    ``problem_seed`` draws A; ``seed`` the data (test, validation and training streams are independent).
    """

    mode: str
    m: int
    n: int
    sparsity: float = 0.1
    num_layers: int = 16
    test_size: int = 1000
    lam_val_size: int = 1000
    train_val_size: int = 1000
    lam_grid: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8)
    layerwise: Budget = field(default_factory=lambda: Budget(2, 50, 64, 1))
    end_to_end: Budget = field(default_factory=lambda: Budget(40, 50, 64, 5))
    problem_seed: int = 0
    seed: int = 0


#: the paper-scale setting
FULL = BenchConfig(mode="full", m=250, n=500)
#: a few minutes on 2 CPU cores: 64 x 128, smaller sets, one short epoch per layer-wise stage
QUICK = BenchConfig(mode="quick", m=64, n=128, test_size=500, lam_val_size=500, train_val_size=256,
                    layerwise=Budget(1, 20, 64, None), end_to_end=Budget(10, 20, 64, None))

#: Training recipe per family. "scheme" is a trainer scheme; "lr" the base learning rate (Adam);
#: "options" the scheme options; "lam": "authors" (AUTHORS_LAM, the LISTA code's initial lambda) or
#: "fista" (the lambda chosen for FISTA on the validation set: the objective these models unfold);
#: "model_args" constructor arguments; "why" the source of the choice.
#: LISTA and LISTA-CP (issue 17): ALISTA without support selection trained first (``warm_start``), copied in,
#: then fine-tuned end to end at lr 1e-5 with early stopping; "budget" overrides the full-mode budget
_AFTER_ALISTA: dict[str, Any] = {"scheme": "end-to-end", "lr": 1e-5, "options": {}, "lam": "authors", "model_args": {},
                                 "init": "alista-trained", "warm_start_args": {"percent": 0.0, "max_percent": 0.0}}
RECIPES: dict[str, dict[str, Any]] = {
    "ista-learned-step": {
        "scheme": "end-to-end", "lr": 1e-2, "options": {}, "lam": "fista", "model_args": {},
        "why": "per-layer step and threshold learned end-to-end on NMSE(x_K) (SLISTA, Ablin et al. 2019, "
               "trains end-to-end, there on the LASSO objective; here supervised, the benchmark's metric)"},
    "fista-unfolded": {
        "scheme": "end-to-end", "lr": 1e-2, "options": {}, "lam": "fista", "model_args": {},
        "why": "per-layer step and momentum learned end-to-end on NMSE(x_K); threshold = step x lambda"},
    "admm-unfolded": {
        "scheme": "end-to-end", "lr": 3e-2, "options": {}, "lam": "fista", "model_args": {},
        "why": "per-layer log rho and threshold learned end-to-end on NMSE(x_K)"},
    "gd-unfolded": {
        "scheme": "end-to-end", "lr": 1e-2, "options": {}, "lam": "fista", "model_args": {},
        "why": "unrolled GD on the least-squares data term (no l1 term), per-layer steps end-to-end"},
    "ista-weighted-l1": {
        "scheme": "end-to-end", "lr": 1e-2, "options": {}, "lam": "fista", "model_args": {"solver": "fista"},
        "why": "per-coordinate log l1 weights (tied over layers) learned end-to-end; the layers iterate FISTA "
               "of the learned objective (solver='fista'): with ISTA's 1/L steps it cannot beat FISTA"},
    "ista-correction": {
        "scheme": "multi-loss", "lr": 1e-2, "options": {}, "lam": "fista",
        "model_args": {"hidden": 32, "correction": "coordinate"},
        "why": "per-layer coordinate-wise correction (linear branch + MLP, hidden 32, on (z_k, z_{k-1}, v_k)) "
               "after each ISTA step, multi-loss (w_k = 1/K) so that every layer's correction is supervised; "
               "lr 1e-2 (quick mode: -12.9 dB vs -11.9 dB at 1e-3; end-to-end -12.5 dB)"},
    "lista": {
        **_AFTER_ALISTA, "budget": {"epochs": 150, "patience": 5},
        "why": "two stages (issue 17), as lista-cpss: ALISTA without support selection trained with its recipe, "
               "copied in (W_1^k = gamma_k W~^T, W_2^k = I - gamma_k W~^T A, its thresholds), then fine-tuned end "
               "to end at lr 1e-5 until the validation NMSE plateaus (patience 5 epochs, at most 150). Measured at "
               "250 x 500 noiseless (one-off script): -30.15 dB after the ALISTA stage, -36.13 dB after 99 epochs "
               "at lr 1e-5 (12 min); the authors' layer-wise recipe (VITA-Group/LISTA-CPSS setup_sc_training) "
               "reached -11.8 dB from ISTA's weights and -24.5 dB from the analytic weight in our CPU budget"},
    "lista-cp": {
        **_AFTER_ALISTA, "budget": {"epochs": 100, "patience": 5},
        "why": "as lista (W^k = gamma_k W~). Measured at 250 x 500 noiseless: -30.15 dB after the ALISTA stage; "
               "end to end at lr 1e-5 / 3e-5 / 1e-4 / 3e-4 it plateaus at once (-30.151 dB after 12 epochs at "
               "1e-5, no gain at the others); layer-wise from ISTA's weights -23.2 dB, from the analytic weight "
               "-25.1 dB"},
    "lista-cpss": {
        "scheme": "end-to-end", "lr": 1e-4, "options": {}, "lam": "authors",
        "model_args": {"percent": 1.2, "max_percent": 13.0}, "init": "alista-trained",
        "why": "support selection p = 1.2 %/layer, max 13 % (the authors' -p 1.2 -maxp 13); two stages (issue 17): "
               "ALISTA trained with its recipe, copied into LISTA-CPSS (W^k = gamma_k W~, its thresholds), then "
               "fine-tuned end to end at lr 1e-4 (measured at 250 x 500: -62.8 / -42.6 dB noiseless / 40 dB, vs "
               "-57.6 / -42.8 from the untrained analytic weight layer-wise and -38.2 / -39.2 from ISTA's weights; "
               "benchmarks/README.md)"},
    "alista": {
        "scheme": "layer-wise", "lr": 5e-3, "options": {"lr_decay": (0.2, 0.02), "layer_decay": 1.0},
        "lam": "authors", "model_args": {"weight": "frobenius", "percent": 1.2, "max_percent": 13.0},
        "why": "analytic W~ (Frobenius, eq. (17)), gamma and theta learned layer-wise as in VITA-Group/ALISTA "
               "(same training code as LISTA-CPSS); p = 1.2 %/layer, max 13 %"},
}

#: Published layer-K NMSE (dB) in the standard setting (m 250, n 500, p 0.1, K 16), keyed by (row name, SNR in
#: dB; None = noiseless): {"nmse_db", "source", "caveats"}, from benchmarks/published.json (docs/published_curves.md).
PUBLISHED: dict[tuple[str, float | None], dict[str, Any]] = {
    (e["row"], e["snr_db"]): {k: e[k] for k in ("nmse_db", "source", "caveats")} for e in read_json(PUBLISHED_FILE)["layer_K"]}
#: learned models whose family is not sparse recovery: their sparse rows are information, and their T2
#: ("better than FISTA at equal depth") is judged on their own family by the named benchmark
OWN_FAMILY_BENCHMARK: dict[str, str] = {
    "gd-unfolded": ("unrolled GD on the least-squares data term cannot recover a sparse x from m < n "
                    "measurements (its fixed point is a least-squares solution); it is the model for "
                    "quadratics and is judged against FISTA (Nesterov) on least squares by "
                    "benchmarks/unfolded_quadratic.py"),
}
#: tolerance of the "within 3 dB of the published value" target
PUBLISHED_TOLERANCE_DB = 3.0
#: models with a published-value target (T1)
PUBLISHED_TARGET_MODELS = ("lista-cpss", "alista")


# ---- the problem and the data ---------------------------------------------------------------------


def make_problem(config: BenchConfig, snr_db: float | None, lam: float) -> Any:
    """The SparseRecovery of the benchmark (A drawn from ``problem_seed``; ``lam`` only sets the objective)."""
    return SparseRecovery(m=config.m, n=config.n, sparsity=config.sparsity, snr_db=snr_db, lam=lam,
                          seed=config.problem_seed)


def data_sets(config: BenchConfig, snr_db: float | None) -> tuple[Any, Any]:
    """(lambda-validation batch, test batch), float64, each from its own seeded stream.

    The streams are independent of the trainer's (which spawns SeedSequence(seed)); the data do not
    depend on lambda, so every method of a setting sees exactly the same test set.
    """
    problem = make_problem(config, snr_db, AUTHORS_LAM)
    val_seq, test_seq = np.random.SeedSequence([2018, 3, config.seed]).spawn(2)
    val = problem.sample(config.lam_val_size, np.random.default_rng(val_seq))
    test = problem.sample(config.test_size, np.random.default_rng(test_seq))
    return val, test


# ---- classical baselines ---------------------------------------------------------------------------


def run_baselines(config: BenchConfig, snr_db: float | None) -> dict[str, dict[str, Any]]:
    """ISTA and FISTA (K iterations, step 1/L, x_0 = 0, float64) with lambda tuned on the validation set,
    and both at lambda = AUTHORS_LAM (the published baselines' value). Returns entries keyed by row name."""
    t0 = time.perf_counter()
    val, test = data_sets(config, snr_db)
    k = config.num_layers
    out: dict[str, dict[str, Any]] = {}
    for name, runner in (("ista", run_ista), ("fista", run_fista)):
        grid: dict[str, float] = {}
        for lam in config.lam_grid:
            problem = make_problem(config, snr_db, lam)
            grid[f"{lam:g}"] = nmse_db_curve(runner(problem, val.y, k).iterates, val.x)[-1]
        best = min(config.lam_grid, key=lambda lam: grid[f"{lam:g}"])
        tuning = time.perf_counter() - t0
        for row, lam, tuned in ((name, best, True), (f"{name}@lam={AUTHORS_LAM:g}", AUTHORS_LAM, False)):
            problem = make_problem(config, snr_db, lam)
            curve = nmse_db_curve(runner(problem, test.y, k).iterates, test.x).tolist()
            entry: dict[str, Any] = {
                "name": row, "kind": "classical", "algorithm": name, "setting": setting_label(snr_db),
                "snr_db": snr_db, "lam": lam, "lam_tuned": tuned, "nmse_db": curve, "nmse_db_K": curve[-1],
                "train_time_s": None, "peak_memory_bytes": None, "peak_memory_kind": None, "params": 0,
                "recipe": {"iterations": k, "step": "1/L", "x0": "0", "dtype": "float64"}, "status": "done"}
            if tuned:
                entry["lam_grid_val_nmse_db_K"] = grid
                entry["tuning_time_s"] = tuning
            out[row] = entry
    return {name: out[name] for name in BASELINE_ROWS}


# ---- learned models --------------------------------------------------------------------------------


def build_model(family: str, problem: Any, num_layers: int, recipe: dict[str, Any]) -> Any:
    """The untrained model of a recipe: ``make_model`` (ISTA's weights, the "classical" init; also the shell that
    ``warm_start`` fills for ``init = "alista-trained"``), or, for ``init = "analytic"``,
    ``MODELS[family].from_analytic`` (ALISTA's analytic weight; issue 17)."""
    if recipe.get("init", "classical") == "analytic":
        return MODELS[family].from_analytic(problem, num_layers, **recipe["model_args"])
    return make_model(family, problem, num_layers=num_layers, **recipe["model_args"])


def warm_start(model: Any, problem: Any, num_layers: int, recipe: dict[str, Any], checkpoint_dir: str | None,
               resume: bool, device: str) -> tuple[Any, float]:
    """The first stage of an ``init = "alista-trained"`` recipe: train ALISTA with ``recipe["warm_start"]``
    (checkpoints under ``checkpoint_dir/warm-start``) and copy it into ``model``: for LISTA-CP(SS)
    W^k = gamma_k W~, for LISTA W_1^k = gamma_k W~^T and W_2^k = I - gamma_k W~^T A, and theta^k its thresholds,
    so ``model`` starts with ALISTA's iterates (the same support-selection schedule; ``warm_start_args`` of the
    recipe turns it off for the models without one). Returns the trained ALISTA and the stage's wall time (s)."""
    stage = recipe["warm_start"]
    alista = build_model("alista", problem, num_layers, stage)
    ckpt = None if checkpoint_dir is None else str(Path(checkpoint_dir) / "warm-start")
    result = train(alista, problem, stage["scheme"], resume=resume, checkpoint_dir=ckpt, device=device,
                   progress=False, **stage["options"], **stage["settings"])
    with torch.no_grad():
        dtype = model.threshold.dtype
        w = alista.weight_matrix.to(dtype)
        gammas = alista.gamma.detach().to(dtype)
        if hasattr(model, "W1"):  # LISTA: W_1^k = gamma_k W~^T, W_2^k = I - gamma_k W~^T A
            a = torch.as_tensor(require_linear(problem, model.family).A, dtype=dtype)
            eye = torch.eye(a.shape[1], dtype=dtype)
            model.W1.copy_(torch.stack([g * w.T for g in gammas]).to(model.W1.device))
            if model.W2 is not None:
                model.W2.copy_(torch.stack([eye - g * (w.T @ a) for g in gammas[1:]]).to(model.W2.device))
        else:  # LISTA-CP(SS): W^k = gamma_k W~
            model.W.copy_(torch.stack([g * w for g in gammas]).to(model.W.device))
        model.threshold.copy_(alista.threshold.detach().to(model.threshold))
    return alista, float(result.wall_time_s)


def recipe_for(family: str, config: BenchConfig) -> dict[str, Any]:
    """The full training recipe (scheme, options, trainer settings) of ``family`` under ``config``."""
    base = RECIPES[family]
    budget = config.layerwise if base["scheme"] == "layer-wise" else config.end_to_end
    settings = {"epochs": budget.epochs, "steps_per_epoch": budget.steps_per_epoch, "batch_size": budget.batch_size,
                "patience": budget.patience, "lr": base["lr"], "val_size": config.train_val_size,
                "val_batch_size": 1000, "seed": config.seed, "optimizer": "adam"}
    if config.mode == "full":  # a recipe's own budget (train to a plateau) applies at full size only
        settings.update(base.get("budget", {}))
    recipe = {"scheme": base["scheme"], "options": dict(base["options"]), "settings": settings,
              "lam_source": base["lam"], "model_args": dict(base["model_args"]), "init": base.get("init", "classical"),
              "why": base["why"]}
    if recipe["init"] == "alista-trained":  # the first stage: ALISTA with its own recipe
        stage = recipe_for("alista", config)
        stage["model_args"].update(base.get("warm_start_args", {}))
        recipe["warm_start"] = stage
    return recipe


#: the recipe fields that change a row's numbers (its "why" text does not)
RECIPE_KEYS = ("scheme", "options", "settings", "lam_source", "model_args", "init", "warm_start")


def recipe_changed(row: dict[str, Any], recipe: dict[str, Any]) -> bool:
    """Whether a stored row was trained with another recipe than ``recipe`` (then --resume re-trains it)."""
    stored, current = row.get("recipe") or {}, jsonable(recipe)
    return any(stored.get(k) != current.get(k) for k in RECIPE_KEYS)


def train_model(config_dict: dict[str, Any], family: str, recipe: dict[str, Any], snr_db: float | None,
                fista_lam: float, checkpoint_dir: str | None, resume: bool, device: str, threads: int | None,
                isolated: bool) -> dict[str, Any]:
    """Build ``family`` on the benchmark problem, train it with ``recipe`` (``recipe_for``), evaluate it on
    the test set.

    Runs in a fresh process when ``isolated`` (then the ru_maxrss delta is this model's own peak); the
    recipe comes from the parent, so editing RECIPES during a run cannot change it. Returns the JSON entry
    of the row (per-layer test NMSE, training time, peak memory, parameter count, recipe).
    """
    with limit_threads(threads):
        config = BenchConfig.from_dict(config_dict)
        lam = AUTHORS_LAM if recipe["lam_source"] == "authors" else fista_lam
        problem = make_problem(config, snr_db, lam)
        _, test = data_sets(config, snr_db)
        torch.manual_seed(config.seed)
        model = build_model(family, problem, config.num_layers, recipe)
        params = int(sum(p.numel() for p in model.parameters() if p.requires_grad))
        resumed = bool(resume and checkpoint_dir is not None and (Path(checkpoint_dir) / "checkpoint.pt").exists())
        dev = torch.device(device)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        rss_before = peak_rss_bytes()
        stage_s = 0.0
        if recipe.get("init") == "alista-trained":
            _, stage_s = warm_start(model, problem, config.num_layers, recipe, checkpoint_dir, resume, device)
        result = train(model, problem, recipe["scheme"], resume=resume, checkpoint_dir=checkpoint_dir,
                       device=device, progress=False, **recipe["options"], **recipe["settings"])
        peak, kind = peak_memory(dev)
        if dev.type != "cuda":
            peak = None if rss_before is None or peak is None else peak - rss_before
            kind = "ru_maxrss-delta, fresh process" if isolated else "ru_maxrss-delta, shared process (lower bound)"
        ev = evaluate(model, problem, test.to(model.model_dtype, dev), batch_size=1000)
        curve = [float(v) for v in ev["nmse_db"]]
        return {
            "name": family, "kind": "learned", "family": family, "paradigm": type(model).paradigm,
            "setting": setting_label(snr_db), "snr_db": snr_db, "lam": lam, "nmse_db": curve, "nmse_db_K": curve[-1],
            "train_time_s": float(result.wall_time_s) + stage_s, "warm_start_time_s": stage_s, "peak_memory_bytes": peak, "peak_memory_kind": kind,
            "peak_rss_bytes": peak_rss_bytes(), "params": params, "recipe": {**jsonable(recipe), "lam": lam},
            "epochs_run": int(result.epochs_run), "stopped_early": bool(result.stopped_early),
            "stages": len(result.stages), "best_val_nmse_db": result.best_val_nmse_db,
            "val_nmse_db_K": (result.final_val_nmse_db or [None])[-1], "resumed": resumed,
            "val_curve": validation_curve(result.history),
            "model_config": model.config(), "device": str(dev), "status": "done"}


def validation_curve(history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trainer's validation curve: per epoch (epoch 0 = the initial model) its stage and the layer-K
    validation NMSE (dB); what shows whether training reached a plateau (``write_validation_figure``)."""
    return [{"epoch": int(e["epoch"]), "stage": None if e.get("stage") is None else int(e["stage"]),
             "val_nmse_db_K": None if e.get("val_nmse_db") is None else float(e["val_nmse_db"][-1])}
            for e in history]


def estimate_wall_time(config: BenchConfig, models: Sequence[str], snrs: Sequence[float | None],
                       steps: int = 5, threads: int | None = 1,
                       log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """A timed partial run: time ``steps`` training steps and one validation pass of each model at
    ``config``'s size, and extrapolate to the recipe's maximum number of steps and validations.

    The estimate is an UPPER bound on training time as far as early stopping goes (a stage that stops
    early runs fewer epochs), measured on this machine under its current load. Returns
    {"per_model": {family: {...}}, "total_s": ..., "steps_timed": steps}.
    """
    log = log or log_stderr
    per_model: dict[str, Any] = {}
    with limit_threads(threads):
        for family in models:
            recipe = recipe_for(family, config)
            problem = make_problem(config, snrs[0], AUTHORS_LAM if recipe["lam_source"] == "authors" else 0.1)
            torch.manual_seed(config.seed)
            model = build_model(family, problem, config.num_layers, recipe)
            scheme = make_scheme(recipe["scheme"], **recipe["options"])
            stages = len(scheme.stages(model))
            st = recipe["settings"]
            rng = np.random.default_rng(0)
            opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=st["lr"])
            t_step = 0.0
            for i in range(steps + 1):
                t0 = time.perf_counter()
                batch = problem.sample(st["batch_size"], rng).to(model.model_dtype)
                opt.zero_grad()
                traj = model(batch.y, trajectory=True)
                loss = nmse(traj[-1], batch.x)
                loss.backward()
                opt.step()
                if i > 0:  # the first step warms up
                    t_step += time.perf_counter() - t0
            t_step /= steps
            val = problem.sample(config.train_val_size, rng).to(model.model_dtype)
            t0 = time.perf_counter()
            with torch.no_grad():
                model(val.y, trajectory=True)
            t_val = time.perf_counter() - t0
            max_steps = stages * st["epochs"] * st["steps_per_epoch"]
            max_vals = stages * (st["epochs"] + 1) + 2
            est = max_steps * t_step + max_vals * t_val
            per_model[family] = {"stages": stages, "max_steps": max_steps, "max_validations": max_vals,
                                 "step_s": t_step, "validation_s": t_val, "estimate_s_per_setting": est}
            if recipe.get("init") == "alista-trained":
                per_model[family]["note"] = ("the first stage (ALISTA with its recipe) is not included: "
                                             "add alista's estimate")
            log(f"{family}: {t_step * 1e3:.1f} ms/step, {t_val:.2f} s/validation, <= {max_steps} steps "
                f"-> about {est / 60:.1f} min per setting")
    total = sum(v["estimate_s_per_setting"] for v in per_model.values()) * len(snrs)
    return {"per_model": per_model, "total_s": total, "steps_timed": steps, "settings": len(snrs),
            "kind": "estimate from a timed partial run (upper bound w.r.t. early stopping)"}


# ---- published values and targets ------------------------------------------------------------------


def is_standard(config: BenchConfig) -> bool:
    """Whether ``config`` is the setting of the published values (250 x 500, p = 0.1, K = 16)."""
    return (config.m, config.n, config.sparsity, config.num_layers) == (250, 500, 0.1, 16)


def published_for(name: str, config: BenchConfig, snr_db: float | None) -> dict[str, Any]:
    """The published layer-K value for row ``name`` ({"available": False, "why": ...} when none exists)."""
    if not is_standard(config):
        return {"available": False, "why": "published values exist only for m=250, n=500, p=0.1, K=16"}
    pub = PUBLISHED.get((name, snr_db))
    if pub is None:
        return {"available": False, "why": "no published number readable as text (docs/published_curves.md §2)"}
    return {"available": True, **pub}


def evaluate_targets(results: dict[str, dict[str, dict[str, Any]]], config: BenchConfig) -> list[dict[str, Any]]:
    """The targets, each {"target", "setting", "model", "ours_db", "reference_db", "difference_db", "pass",
    "note"}, and for a pass/fail target ``judge``'s "margin_db" and "verdict" (which says how close it is).

    T1: LISTA-CPSS and ALISTA within PUBLISHED_TOLERANCE_DB of the published layer-K value (|difference|),
    where one exists (``pass`` None otherwise). T2: every learned model strictly better than FISTA (tuned
    lambda, K iterations) at layer K (``judge_layers``: also at how many layers it is); for a model of another
    family (``OWN_FAMILY_BENCHMARK``) the row is information (``pass`` None) and the target is judged by that
    family's benchmark. Also T0 (information, no pass/fail): ISTA / FISTA at lambda 0.4 against the
    published baselines.
    """
    out: list[dict[str, Any]] = []
    t1, t2 = f"T1 within {PUBLISHED_TOLERANCE_DB:g} dB of published", "T2 better than FISTA at layer K"

    def add(target: str, key: str, name: str, ours: float, ref: float | None, note: str, **judged: Any) -> None:
        out.append({"target": target, "setting": key, "model": name, "ours_db": ours, "reference_db": ref,
                    "difference_db": None if ref is None else ours - ref, "pass": None, "note": note, **judged})

    for key, rows in results.items():
        fista = rows.get("fista") if rows.get("fista", {}).get("status") == "done" else None
        for name, row in rows.items():
            if row.get("status") != "done":
                continue
            ours = row["nmse_db_K"]
            # the current published table (rows store the one of their run; notes may have been added since)
            pub = published_for(name, config, row["snr_db"]) if "snr_db" in row else row.get("published", {})
            pub_db = pub["nmse_db"] if pub.get("available") else None
            if name in PUBLISHED_TARGET_MODELS and pub_db is None:
                add(t1, key, name, ours, None, f"not evaluable: {pub.get('why', 'no published value')}")
            elif name in PUBLISHED_TARGET_MODELS:
                diff = ours - pub_db
                side = "lower (better)" if diff < 0 else "higher (worse)"
                add(t1, key, name, ours, pub_db, f"ours {abs(diff):.2f} dB {side} than published; published: "
                    f"{pub.get('caveats', '')}", **judge(abs(diff) <= PUBLISHED_TOLERANCE_DB,
                                                         PUBLISHED_TOLERANCE_DB - abs(diff),
                                                         f"(|ours - published| = {abs(diff):.2f} dB)"))
            if row["kind"] == "learned" and name in OWN_FAMILY_BENCHMARK:
                add(t2, key, name, ours, fista and fista["nmse_db_K"],
                    f"not applicable here: {OWN_FAMILY_BENCHMARK[name]}")
            elif row["kind"] == "learned" and fista is None:
                add(t2, key, name, ours, None, "FISTA not run")
            elif row["kind"] == "learned":
                add(t2, key, name, ours, fista["nmse_db_K"], "",
                    **judge_layers(row["nmse_db"], fista["nmse_db"], "FISTA"))
            if row["kind"] == "classical" and not row.get("lam_tuned") and pub_db is not None:
                add("T0 classical baseline vs published (information)", key, name, ours, pub_db,
                    "docs/published_curves.md §4 expects about 0.2 dB for a faithful ISTA/FISTA")
    return out


# ---- table -----------------------------------------------------------------------------------------


def format_table(doc: dict[str, Any]) -> str:
    """The results as one Markdown table: rows = methods, columns = setting, NMSE at layer K, published,
    difference to FISTA, training time, peak memory, learned parameters."""
    k = doc["config"]["num_layers"]
    head = ["method", "setting", f"NMSE@{k} (dB)", f"published@{k} (dB)", f"vs FISTA@{k} (dB)",
            "train time (s)", "peak mem (MiB)", "params"]
    lines = table_head(head)
    for key, rows in doc["results"].items():
        fista = rows.get("fista", {})
        for name, row in rows.items():
            if row.get("status") != "done":
                lines.append(failed_row(name, key, row, len(head)))
                continue
            label = name
            if row["kind"] == "classical" and row.get("lam_tuned"):
                label = f"{name} (tuned lam={row['lam']:g})"
            pub = row.get("published", {})
            pub_s = fmt(pub.get("nmse_db"), ".2f") if pub.get("available") else "not available"
            vs = None
            if row["kind"] == "learned" and fista.get("status") == "done":
                vs = row["nmse_db_K"] - fista["nmse_db_K"]
            mem = row.get("peak_memory_bytes")
            lines.append(table_row([
                label, row["setting"], fmt(row["nmse_db_K"], ".2f"), pub_s, fmt(vs, "+.2f"),
                fmt(row.get("train_time_s"), ".1f"), fmt(None if mem is None else mem / 2**20, ".1f"),
                row.get("params", "-")]))
    return "\n".join(lines)


def format_targets(targets: list[dict[str, Any]]) -> str:
    """The targets as a Markdown table: the verdict with its margin (``judge``), n/a, or information."""
    lines = table_head(["target", "setting", "model", "ours (dB)", "reference (dB)", "result", "note"])
    for t in targets:
        verdict = t.get("verdict", "n/a")
        if t["target"].startswith("T0"):
            verdict = f"info ({fmt(t['difference_db'], '+.2f')} dB)"
        lines.append(table_row([t["target"], t["setting"], t["model"], fmt(t["ours_db"], ".2f"),
                                fmt(t["reference_db"], ".2f"), verdict, t["note"]]))
    return "\n".join(lines)


# ---- the runner ------------------------------------------------------------------------------------


def run_benchmark(config: BenchConfig, models: Sequence[str], snrs: Sequence[float | None], out_dir: str | Path,
                  resume: bool = False, isolate: bool = True, device: str = "cpu", threads: int | None = 1,
                  log: Callable[[str], None] | None = None, force: bool = False) -> dict[str, Any]:
    """Run the benchmark and return the JSON document (also written to ``out_dir``).

    For each noise level in ``snrs``: the classical baselines, then each family of ``models`` (trained in a
    fresh process when ``isolate``). The JSON is rewritten atomically after every method. With ``resume``,
    the existing JSON's finished rows are kept and skipped (unless their stored recipe differs from the
    current one, ``recipe_changed``: then the row and its checkpoints are made anew), and trainer checkpoints are resumed; the
    stored config must equal ``config`` (UsageError otherwise). Without ``resume``, the JSON, the table and the
    checkpoints of this mode must not exist unless ``force`` deletes them (``ResultFile``). A model that
    raises is recorded with ``status`` "failed" and its error, and the run goes on.
    """
    log = log or log_stderr
    out_dir = Path(out_dir)
    run = ResultFile(out_dir, "unfolded_sparse", FORMAT_VERSION, config.to_dict(), resume, machine(device, threads),
                     {"models": list(models), "snrs": [setting_key(s) for s in snrs], "isolate": isolate},
                     force, [out_dir / "checkpoints" / config.mode], recipes={}, results={}, targets=[])
    doc = run.doc
    doc["peak_memory_method"] = (
        "torch.cuda.max_memory_allocated" if device.startswith("cuda") else
        "increase of resource.getrusage(RUSAGE_SELF).ru_maxrss during training, "
        + ("each model in a fresh spawned process" if isolate else
           "all models in one process (a lower bound: an earlier higher peak hides a later one)"))

    def save() -> None:
        doc["targets"] = evaluate_targets(doc["results"], config)
        run.save(format_table(doc) + "\n\n" + format_targets(doc["targets"]) + "\n")

    for family in models:
        doc["recipes"][family] = jsonable(RECIPES[family])
    for snr in snrs:
        key = setting_key(snr)
        rows = doc["results"].setdefault(key, {})
        if not all(rows.get(n, {}).get("status") == "done" for n in BASELINE_ROWS):
            log(f"[{key}] ISTA / FISTA: choosing lambda on {config.lam_val_size} validation samples")
            with limit_threads(threads):
                baselines = run_baselines(config, snr)
            for name, entry in baselines.items():
                entry["published"] = published_for(name, config, snr)
                rows[name] = entry
            log(f"[{key}] ISTA (lam={rows['ista']['lam']:g}) {rows['ista']['nmse_db_K']:.2f} dB, "
                f"FISTA (lam={rows['fista']['lam']:g}) {rows['fista']['nmse_db_K']:.2f} dB at layer "
                f"{config.num_layers}")
            save()
        for family in models:
            ckpt = out_dir / "checkpoints" / config.mode / key / family
            recipe = recipe_for(family, config)
            if resume and rows.get(family, {}).get("status") == "done":
                if not recipe_changed(rows[family], recipe):
                    log(f"[{key}] {family}: done already (--resume), skipped")
                    continue
                log(f"[{key}] {family}: its recipe changed since the stored row (--resume): training anew")
                shutil.rmtree(ckpt, ignore_errors=True)
            log(f"[{key}] {family}: training ({recipe['scheme']}, lr {recipe['settings']['lr']:g})")
            args = (config.to_dict(), family, recipe, snr, float(rows["fista"]["lam"]), str(ckpt), resume, device, threads,
                    isolate)
            try:
                if isolate:
                    with Worker(train_model) as worker:
                        entry = worker.call(*args)
                else:
                    entry = train_model(*args)
            except Exception as err:  # noqa: BLE001 - recorded in the JSON, the run goes on
                rows[family] = failed_entry(family, "learned", snr, err)
                log(f"[{key}] {family}: FAILED: {rows[family]['error']}")
                save()
                continue
            entry["published"] = published_for(family, config, snr)
            rows[family] = entry
            log(f"[{key}] {family}: {entry['nmse_db_K']:.2f} dB at layer {config.num_layers} "
                f"(FISTA {rows['fista']['nmse_db_K']:.2f}), {entry['train_time_s']:.1f} s")
            save()
    save()
    return doc


# ---- command line ----------------------------------------------------------------------------------


def build_parser() -> OneLineParser:
    """The command-line parser."""
    p = settings_parser("unfolded_sparse", "Unfolded models vs ISTA/FISTA on sparse recovery (Chen et al. 2018 "
                        "setting).", "64 x 128, short training (minutes on 2 CPU cores)", "data",
                        "skip finished rows, resume trainer checkpoints", DEFAULT_OUT)
    p.add_argument("--models", default="all", help="comma-separated families of MODELS, or 'all' (default)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    p.add_argument("--estimate", action="store_true",
                   help="only time a few training steps per model and print an estimate of the training time")
    p.add_argument("--no-isolate", action="store_true",
                   help="train every model in this process (faster start; peak memory becomes a lower bound)")
    return p


def write_curves_figure(doc: dict[str, Any], path: str | Path) -> Path:
    """One PNG: per-layer test NMSE (dB) of every finished row, one panel per setting, learned models solid,
    ISTA / FISTA dashed; the published layer-K values (``PUBLISHED``: NA-ALISTA's ALISTA at 40 dB, read from
    their log) as stars at layer K. Written atomically (``experiments.io.save_figure``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from unfoldkit.experiments.io import save_figure

    keys = list(doc["results"])
    palette = plt.get_cmap("tab20")
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(6.5 * max(len(keys), 1), 5.0), squeeze=False)
    k_max = doc["config"]["num_layers"]
    for ax, key in zip(axes[0], keys):
        rows = doc["results"][key]
        for i, (name, row) in enumerate(sorted(rows.items())):
            if row.get("status") != "done" or not row.get("nmse_db"):
                continue
            curve = np.asarray(row["nmse_db"], dtype=float)
            classical = row.get("kind") == "classical"
            ax.plot(np.arange(curve.size), curve, ls="--" if classical else "-", lw=1.2 if classical else 1.8,
                    color=palette(i % 20), label=f"{name} ({curve[-1]:.1f} dB)")
            pub = row.get("published", {})
            if pub.get("available"):
                ax.plot([k_max], [pub["nmse_db"]], marker="*", ms=13, color=palette(i % 20), ls="none",
                        markeredgecolor="k", label=f"{name}: published {pub['nmse_db']:.2f} dB")
        setting = next((r.get("setting") for r in rows.values() if r.get("setting")), key)
        ax.set_title(f"{setting}: test NMSE per layer ({doc['config']['m']} x {doc['config']['n']}, K = {k_max})")
        ax.set_xlabel("layer / iteration k")
        ax.set_ylabel("NMSE (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2, loc="lower left")
    fig.tight_layout()
    out = Path(path)
    save_figure(fig, out.with_suffix(""), ("png",))
    plt.close(fig)
    return out


def write_validation_figure(doc: dict[str, Any], path: str | Path) -> Path:
    """One PNG: the layer-K validation NMSE (dB) per training epoch of every finished learned row (the
    trainer's history, ``validation_curve``; epochs counted over all stages, epoch 0 = the initial model), one
    panel per setting: the curves that show whether each model's training reached a plateau (issue 17)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from unfoldkit.experiments.io import save_figure

    keys = list(doc["results"])
    palette = plt.get_cmap("tab20")
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(6.5 * max(len(keys), 1), 5.0), squeeze=False)
    for ax, key in zip(axes[0], keys):
        rows = doc["results"][key]
        for i, (name, row) in enumerate(sorted(rows.items())):
            curve = [e["val_nmse_db_K"] for e in row.get("val_curve") or [] if e["val_nmse_db_K"] is not None]
            if row.get("status") != "done" or not curve:
                continue
            ax.plot(np.arange(len(curve)), curve, lw=1.5, color=palette(i % 20),
                    label=f"{name} ({len(curve) - 1} epochs, best {min(curve):.1f} dB)")
        setting = next((r.get("setting") for r in rows.values() if r.get("setting")), key)
        ax.set_title(f"{setting}: validation NMSE at layer K per training epoch")
        ax.set_xlabel("epoch (all stages; warm-start stage not shown)")
        ax.set_ylabel("validation NMSE at layer K (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    out = Path(path)
    save_figure(fig, out.with_suffix(""), ("png",))
    plt.close(fig)
    return out


@command
def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: returns 0, 1 if a model failed, 2 on a bad argument."""
    args = build_parser().parse_args(argv)
    models = parse_models(args.models, list(MODELS))
    snrs = parse_snr_list(args.snr)
    threads = args.threads or None
    if args.device != "cpu":
        try:
            dev = torch.device(args.device)
        except (RuntimeError, ValueError):
            raise UsageError(f"--device: {args.device!r} is not 'cpu' or 'cuda[:i]'") from None
        if dev.type != "cuda" or not torch.cuda.is_available():
            raise UsageError(f"--device: {args.device!r} is not available here")
    config = replace(QUICK if args.quick else FULL, seed=args.seed)
    out = args.out
    if args.estimate:
        if args.resume:
            raise UsageError("--resume: an --estimate run has nothing to resume (--force replaces its file)")
        path = out / f"unfolded_sparse_{config.mode}_estimate.json"
        claim_outputs([path], False, args.force)
        est = estimate_wall_time(config, models, snrs, threads=threads)
        write_json(path, {"config": config.to_dict(), "machine": machine(args.device, threads), **est})
        print(f"ESTIMATED training time ({config.mode} mode, {len(snrs)} setting(s), {len(models)} model(s)): "
              f"about {est['total_s'] / 60:.0f} min (upper bound w.r.t. early stopping; wrote {path})")
        return 0
    t0 = time.perf_counter()
    doc = run_benchmark(config, models, snrs, out, resume=args.resume, isolate=not args.no_isolate,
                        device=args.device, threads=threads, force=args.force)
    wall = time.perf_counter() - t0
    figure = write_curves_figure(doc, Path(out) / f"unfolded_sparse_{config.mode}.png")
    validation = write_validation_figure(doc, Path(out) / f"unfolded_sparse_{config.mode}_validation.png")
    print(format_table(doc))
    print(f"per-layer curves: {figure}; validation curves: {validation}")
    print()
    print(format_targets(doc["targets"]))
    return finish(wall, config.mode, output_paths(out, "unfolded_sparse", config.mode), [f"{key}/{name}" for key, rows in doc["results"].items()
                                             for name, row in rows.items() if row.get("status") != "done"])


if __name__ == "__main__":
    sys.exit(main())
