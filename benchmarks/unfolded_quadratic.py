#!/usr/bin/env python
"""Benchmark: ``gd-unfolded`` (learned per-layer steps) on its own family, least squares, at equal depth K.

    python benchmarks/unfolded_quadratic.py [--quick] [--snr inf,40] [--out DIR] [--threads N] [--seed S]
                                            [--resume | --force]

Setting (``FULL``): ``LeastSquares(m=500, n=250, kappa=100, L=1)``, i.e. A = U diag(sigma) V^T with the
eigenvalues of M = A^T A geometric in [mu, L] = [0.01, 1] (endpoints exact, A drawn once with seed 0),
x ~ N(0, I_n), y = A x (+ white noise at a per-sample SNR), x_0 = 0, K = 16 layers, noiseless and SNR 40 dB.
Why these numbers: m = 2n keeps A well defined as a tall matrix with a prescribed spectrum, n = 250 makes
the spectrum dense enough that the average case differs from the worst case, and kappa = 100 with K = 16 is
the regime where acceleration matters: 16 steps of 1/L leave (1 - 1/kappa)^16 = 0.85 of the slowest
component, while Chebyshev reaches 1/T_16(101/99) = 0.081. L = 1 only fixes the scale (steps in units of 1/L).
``QUICK`` is 120 x 60 with a short training (seconds).

Rows, each measured as NMSE(k) = 10 log10(sum_b ||x_k^b - x^b||^2 / sum_b ||x^b||^2) against the TRUE x at
every layer k = 0..K on one fixed, seeded test set (classical rows in float64):

* ``gd-1/L``: gradient descent, step 1/L (``run_gd``);
* ``gd-2/(mu+L)``: the optimal constant step: max_{[mu,L]} |1 - gamma lam| = max(|1 - gamma mu|, |1 - gamma L|)
  is minimal when both are equal, at gamma = 2/(mu+L), value (kappa-1)/(kappa+1) per step (the same rate
  holds on all of F_{mu,L}, Nesterov 2004, Thm. 2.1.15);
* ``fista``: FISTA with step 1/L and Beck-Teboulle momentum (``run_fista``); the prox of least squares is
  the identity, so this is Nesterov's accelerated gradient method (Beck & Teboulle 2009, Sec. 4);
* ``chebyshev``: gradient descent with the K steps 1/lam_i, lam_i = (L+mu)/2 + (L-mu)/2 cos((2i-1) pi/(2K)),
  i = 1..K (the roots of the shifted Chebyshev polynomial), in this natural order (smallest step first).
  Its residual polynomial p(lam) = T_K((L+mu-2lam)/(L-mu)) / T_K((L+mu)/(L-mu)) is the minimax polynomial
  on [mu, L] with p(0) = 1 (Young 1953; Golub & Varga 1961). Only layer K is a
  Chebyshev iterate: the intermediate layers are partial products of a schedule built for depth K, so
  the per-layer curve of this row is only meaningful at layer K;
* ``gd-unfolded``: ``MODELS["gd-unfolded"]`` (``GdUnfolded``), K learned steps, trained end-to-end on
  NMSE(x_K) with the trainer's ``train`` (``RECIPE``), in float64 (see *Precision* below);
* ``oracle-avg-case`` (information, not a competitor): the steps 1/r_i, r_i the roots of the degree-K
  polynomial with p(0) = 1 that minimises the EXPECTED NMSE at layer K for the actual spectrum of M and
  the noise level (``avg_case_optimal_polynomial``; the average-case optimal method of Pedregosa & Scieur,
  "Acceleration through spectral density estimation", ICML 2020, for the empirical spectral measure). No
  schedule of K gradient steps has a lower expected NMSE at layer K, learned or not.

Theory beside the measurement. For a linear method with residual polynomial p_k (x_k - x_ls = -p_k(M) x_ls,
x_ls = M^{-1} A^T y), with x ~ N(0, I) and noise of variance s^2 per entry (s^2 = tr(M) / m * 10^(-SNR/10)
in expectation over the per-sample SNR):

    E ||x_k - x||^2 / E ||x||^2 = (1/n) sum_i [ p_k(lam_i)^2 + s^2 (1 - p_k(lam_i))^2 / lam_i ],

for gradient descent p_k(lam) = prod_{j<k} (1 - gamma_j lam); for FISTA p_{k+1} = (1 - gamma lam)((1 + beta_k) p_k
- beta_k p_{k-1}), p_0 = p_{-1} = 1. Reported as ``expected_nmse_db``. The worst-case certificate of a step
schedule over the class of quadratics with spectrum in [mu, L] is max_{lam in [mu,L]} |p_K(lam)| (the
contraction factor of ||x_K - x_ls|| in the worst case). Reported two ways: on ``spectrum_grid`` (a dense grid
holding the endpoints and the K + 1 extrema of the Chebyshev polynomial) and exactly (``sup_abs_residual``:
between consecutive roots log|p| is strictly concave, so its maximum is the root of (log|p|)' found by
bisection). By the minimax property no schedule goes below 1/T_K((L+mu)/(L-mu)) = ``minimax_value``.

Precision. The learned model is trained and evaluated in float64, as the classical rows, so that no row is
limited by round-off: step schedules with large steps can amplify it (``float32_check`` reruns the Chebyshev
and the learned schedules in float32: the natural-order Chebyshev schedule loses about 10 dB at K; the
learned one, whose order interleaves large and small steps, lost nothing in our run). Symmetry. The initial steps are 1/L times a seeded perturbation
1 + eps u_k, u_k ~ U(-1, 1): the loss is a symmetric function of the steps (p_K is), so from the registry's
constant initial steps 1/L every gradient has equal components (``symmetry_check``) and exact training would
never leave the constant-step schedules (a float64 run from 1/L ended at the constant step 1.96/L, -10.3 dB;
in float32 round-off breaks the symmetry by accident).

Targets: "T2 gd-unfolded better than FISTA at layer K" (pass/fail, with its margin in dB and the number of
layers at which gd-unfolded is better: ``judge_layers``), and for information the gaps to the Chebyshev
steps and to the average-case oracle, and the learned schedule's certificate.

Outputs (``--out``, default benchmarks/out/): ``unfolded_quadratic_<mode>.json`` (rewritten atomically with
``unrolled.io.write_json`` after every setting; ``--resume`` keeps finished settings and resumes the
trainer's checkpoint under ``checkpoints/quadratic_<mode>/<setting>/``) and ``unfolded_quadratic_<mode>.txt``
(the tables); when these exist, a run needs ``--resume`` (continue) or ``--force`` (delete them and start
afresh). Bad arguments print one line on stderr and exit with status 2; a failed training exits 1.
What every benchmark shares (settings, result file, argument parsing, tables) is
``unfoldkit.experiments.benchmarking``; the per-layer NMSE curve is ``unfoldkit.unrolled.metrics.nmse_db_curve``.
The mathematics (Chebyshev steps, residual polynomials, the exact worst case, the expected NMSE, the
average-case oracle) comes from ``unfoldkit.theory.quadratic_schedules``.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unfoldkit.experiments.arguments import OneLineParser
from unfoldkit.experiments.benchmarking import (
    Budget, ResultFile, Settings, command, failed_entry, failed_row, finish, fmt, judge_layers, log_stderr, machine,
    output_paths, parse_snr_list, setting_key, setting_label, settings_parser, table_head, table_row,
)
from unfoldkit.theory.quadratic_schedules import (  # noqa: F401 - re-exported: bench.<name> in tests and notebooks
    avg_case_optimal_polynomial,
    chebyshev_extrema,
    chebyshev_steps,
    exact_abs_residual,
    expected_nmse,
    fista_residual,
    gd_residual,
    minimax_value,
    noise_variance,
    spectrum_grid,
    sup_abs_residual,
)
from unfoldkit.unrolled.metrics import nmse, nmse_db_curve, to_db
from unfoldkit.unrolled.models import make_model
from unfoldkit.unrolled.problems.quadratic import LeastSquares
from unfoldkit.unrolled.solvers import run_fista, run_gd
from unfoldkit.unrolled.steps import fista_momentum
from unfoldkit.unrolled.training import train
from unfoldkit.unrolled.training.threads import limit_threads

#: bump when the JSON layout changes (a resumed file must have the same version)
FORMAT_VERSION = 1
DEFAULT_OUT = Path(__file__).resolve().parent / "out"
MODEL = "gd-unfolded"
ROW_ORDER = ("gd-1/L", "gd-2/(mu+L)", "fista", "chebyshev", MODEL, "oracle-avg-case")


# ---- settings --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuadConfig(Settings):
    """Everything that fixes the numbers of a run (stored in the JSON; ``--resume`` needs it unchanged).

    ``m``, ``n``, ``kappa``, ``L``: the LeastSquares problem (mu = L / kappa); ``num_layers``: K.
    ``test_size``: the fixed test set; ``train_val_size``: the trainer's validation set (best-epoch restore).
    ``budget``, ``lr``: Adam on fresh batches, constant learning rate; ``init_perturbation``: eps of the
    initial steps (1 + eps u_k) / L; ``grid_points``: the uniform part of ``spectrum_grid``.
    ``problem_seed`` draws A; ``seed`` the data, the initial perturbation and the trainer's streams.
    """

    mode: str
    m: int
    n: int
    kappa: float = 100.0
    L: float = 1.0
    num_layers: int = 16
    test_size: int = 1000
    train_val_size: int = 256
    budget: Budget = field(default_factory=lambda: Budget(100, 50, 32, None))
    lr: float = 0.05
    init_perturbation: float = 0.2
    grid_points: int = 20001
    problem_seed: int = 0
    seed: int = 0

    @property
    def mu(self) -> float:
        return self.L / self.kappa


#: the benchmark setting (a few minutes on 2 CPU cores, one thread)
FULL = QuadConfig(mode="full", m=500, n=250)
#: seconds: 120 x 60, 1500 training steps
QUICK = QuadConfig(mode="quick", m=120, n=60, test_size=500, budget=Budget(30, 50, 32, None))

#: how gd-unfolded is trained (the settings not in QuadConfig); "why" documents the choice
RECIPE: dict[str, Any] = {
    "scheme": "end-to-end", "optimizer": "adam", "lr_schedule": "constant", "dtype": "float64",
    "init": "steps (1 + eps u_k) / L, u_k ~ U(-1, 1) seeded (eps = init_perturbation)",
    "why": ("Adam, constant lr 0.05, batch 32, 5000 steps (full): on the exact expected loss, lr 0.02-0.05 "
            "reach the average-case optimum in 6000-8000 steps while lr 0.3 and 1.0 end with negative steps "
            "(no better than -10 dB); the large steps (up to ~1/mu) grow by at most about lr per Adam step, "
            "hence the long run. The trainer "
            "restores the epoch of best validation NMSE(x_K). float64 like the classical rows (float32_check "
            "shows what float32 would cost each schedule).")}


# ---- the mathematics: theory/quadratic_schedules.py ---------------------------------------------------
# (Chebyshev steps and minimax value, residual polynomials, exact worst case, expected NMSE, average-case oracle)


# ---- the problem and the data ----------------------------------------------------------------------


def make_problem(config: QuadConfig, snr_db: float | None) -> Any:
    """The LeastSquares of the benchmark (A drawn from ``problem_seed``)."""
    return LeastSquares(m=config.m, n=config.n, kappa=config.kappa, L=config.L, snr_db=snr_db,
                        seed=config.problem_seed)


def make_test_set(config: QuadConfig, snr_db: float | None) -> Any:
    """The fixed float64 test batch, from its own stream (independent of the trainer's SeedSequence(seed))."""
    problem = make_problem(config, snr_db)
    (seq,) = np.random.SeedSequence([1953, 16, config.seed]).spawn(1)
    return problem.sample(config.test_size, np.random.default_rng(seq)).to(torch.float64)


def initial_steps(config: QuadConfig) -> np.ndarray:
    """(1 + eps u_k) / L with u_k ~ U(-1, 1) from SeedSequence([1953, 2, seed]) (breaks the step symmetry)."""
    rng = np.random.default_rng(np.random.SeedSequence([1953, 2, config.seed]))
    return (1.0 + config.init_perturbation * rng.uniform(-1.0, 1.0, config.num_layers)) / config.L


# ---- rows ------------------------------------------------------------------------------------------


def _row(name: str, kind: str, snr_db: float | None, curve: list[float], residuals: np.ndarray | None,
         eig: np.ndarray, s2: float, grid_res: np.ndarray | None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "kind": kind, "setting": setting_label(snr_db), "snr_db": snr_db,
                             "nmse_db": curve, "nmse_db_K": curve[-1], "status": "done"}
    if residuals is not None:
        exp = [to_db(float(v)) for v in expected_nmse(residuals, eig, s2)]
        entry["expected_nmse_db"] = exp
        entry["expected_nmse_db_K"] = exp[-1]
    if grid_res is not None:
        entry["worst_case"] = {"grid_max_abs_p_K": float(np.max(np.abs(grid_res)))}
    entry.update(extra)
    return entry


def _add_sup(entry: dict[str, Any], steps: np.ndarray, config: QuadConfig, minimax: float) -> None:
    sup, arg = sup_abs_residual(steps, config.mu, config.L)
    wc = entry["worst_case"]
    wc.update({"sup_abs_p_K": sup, "argmax_lambda": arg, "ratio_to_minimax": sup / minimax if minimax else None})


def classical_rows(config: QuadConfig, snr_db: float | None, problem: Any, test: Any, eig: np.ndarray,
                   grid: np.ndarray, minimax: float) -> dict[str, dict[str, Any]]:
    """GD (1/L and 2/(mu+L)), FISTA (1/L, Beck-Teboulle), Chebyshev, and the average-case oracle, float64."""
    k, mu, L = config.num_layers, config.mu, config.L
    s2 = noise_variance(eig, config.m, snr_db)
    rows: dict[str, dict[str, Any]] = {}
    for name, step, why in (("gd-1/L", 1.0 / L, "step 1/L"),
                            ("gd-2/(mu+L)", 2.0 / (mu + L), "optimal constant step on F_{mu,L}")):
        steps = np.full(k, step)
        curve = nmse_db_curve(run_gd(problem, test.y, k, step=steps).iterates, test.x).tolist()
        rows[name] = _row(name, "classical", snr_db, curve, gd_residual(steps, eig), eig, s2,
                          gd_residual(steps, grid)[-1], steps=steps.tolist(), recipe=why)
        _add_sup(rows[name], steps, config, minimax)
    betas = fista_momentum(k)
    steps = np.full(k, 1.0 / L)
    curve = nmse_db_curve(run_fista(problem, test.y, k).iterates, test.x).tolist()
    rows["fista"] = _row("fista", "classical", snr_db, curve, fista_residual(steps, betas, eig), eig, s2,
                         fista_residual(steps, betas, grid)[-1], steps=steps.tolist(), momentum=betas.tolist(),
                         recipe="FISTA = Nesterov (identity prox), step 1/L, Beck-Teboulle momentum")
    cheb = chebyshev_steps(k, mu, L)
    curve = nmse_db_curve(run_gd(problem, test.y, k, step=cheb).iterates, test.x).tolist()
    rows["chebyshev"] = _row("chebyshev", "classical", snr_db, curve, gd_residual(cheb, eig), eig, s2,
                             gd_residual(cheb, grid)[-1], steps=cheb.tolist(),
                             recipe="Young/Chebyshev steps, natural order (smallest first); only layer K is "
                                    "meaningful")
    rows["chebyshev"]["worst_case"]["minimax_value"] = minimax
    _add_sup(rows["chebyshev"], cheb, config, minimax)
    oracle = avg_case_optimal_polynomial(eig, s2, k, mu, L)
    extra = {"roots": [[r.real, r.imag] for r in oracle["roots"]], "expected_nmse_db_K_closed_form":
             to_db(oracle["expected_nmse"]), "recipe": "steps 1/r_i of the average-case optimal degree-K "
             "polynomial for the spectrum of A^T A and the noise level (information, uses the spectrum)"}
    if oracle["realizable"]:
        osteps = oracle["steps"]
        curve = nmse_db_curve(run_gd(problem, test.y, k, step=osteps).iterates, test.x).tolist()
        rows["oracle-avg-case"] = _row("oracle-avg-case", "oracle", snr_db, curve, gd_residual(osteps, eig), eig,
                                       s2, gd_residual(osteps, grid)[-1], steps=osteps.tolist(), **extra)
        _add_sup(rows["oracle-avg-case"], osteps, config, minimax)
    else:
        rows["oracle-avg-case"] = {"name": "oracle-avg-case", "kind": "oracle", "setting": setting_label(snr_db),
                                   "snr_db": snr_db, "status": "not realizable",
                                   "error": "a root of the optimal polynomial is not real and positive", **extra}
    return rows


def learned_row(config: QuadConfig, snr_db: float | None, problem: Any, test: Any, eig: np.ndarray,
                grid: np.ndarray, minimax: float, checkpoint_dir: str | None, resume: bool) -> dict[str, Any]:
    """Train ``gd-unfolded`` (RECIPE, float64) and evaluate it on the test set."""
    k = config.num_layers
    init = initial_steps(config)
    model = make_model(MODEL, problem, num_layers=k, step=init.tolist(), dtype=torch.float64)
    resumed = bool(resume and checkpoint_dir is not None and (Path(checkpoint_dir) / "checkpoint.pt").exists())
    b = config.budget
    result = train(model, problem, RECIPE["scheme"], epochs=b.epochs, steps_per_epoch=b.steps_per_epoch,
                   batch_size=b.batch_size, patience=b.patience, lr=config.lr, optimizer=RECIPE["optimizer"],
                   lr_schedule=RECIPE["lr_schedule"], val_size=config.train_val_size, val_batch_size=1000,
                   seed=config.seed, checkpoint_dir=checkpoint_dir, resume=resume, progress=False)
    steps = np.asarray(model.schedule()["step"], dtype=np.float64)
    with torch.no_grad():
        traj = model(test.y, trajectory=True)
    curve = nmse_db_curve(traj, test.x).tolist()
    s2 = noise_variance(eig, config.m, snr_db)
    entry = _row(MODEL, "learned", snr_db, curve, gd_residual(steps, eig), eig, s2, gd_residual(steps, grid)[-1],
                 steps=steps.tolist(), steps_sorted=np.sort(steps).tolist(), init_steps=init.tolist(),
                 train_time_s=float(result.wall_time_s), epochs_run=int(result.epochs_run),
                 best_val_nmse_db=result.best_val_nmse_db, params=int(sum(p.numel() for p in model.parameters())),
                 resumed=resumed, model_config=model.config(),
                 recipe={**RECIPE, "lr": config.lr, "budget": asdict(b), "val_size": config.train_val_size,
                         "init_perturbation": config.init_perturbation, "seed": config.seed})
    _add_sup(entry, steps, config, minimax)
    return entry


def symmetry_check(config: QuadConfig, problem: Any, batch_size: int = 256) -> dict[str, Any]:
    """The gradient of NMSE(x_K) at the registry's constant initial steps 1/L (float64, one seeded batch).

    p_K is a symmetric function of the steps, so at equal steps all partial derivatives are equal: the
    relative spread (max - min) / |mean| is round-off, and gradient training from there keeps the steps equal.
    """
    model = make_model(MODEL, problem, num_layers=config.num_layers, dtype=torch.float64)
    batch = problem.sample(batch_size, np.random.default_rng(np.random.SeedSequence([1953, 3, config.seed])))
    batch = batch.to(torch.float64)
    traj = model(batch.y, trajectory=True)
    nmse(traj[-1], batch.x).backward()
    grad = model.step.grad.detach().numpy()
    spread = float((grad.max() - grad.min()) / abs(grad.mean()))
    return {"gradient_at_constant_1/L": grad.tolist(), "relative_spread": spread,
            "note": "equal components: from constant steps, (exact) gradient training keeps them equal"}


def float32_check(problem: Any, test: Any, schedules: dict[str, np.ndarray], num_layers: int) -> dict[str, Any]:
    """NMSE at layer K of the same schedules run in float32 (round-off of large-step schedules)."""
    y32 = test.y.to(torch.float32)
    return {name: float(nmse_db_curve(run_gd(problem, y32, num_layers, step=s).iterates, test.x)[-1])
            for name, s in schedules.items()}


# ---- targets and tables ----------------------------------------------------------------------------


def evaluate_targets(results: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """T2 (pass/fail): gd-unfolded strictly better than FISTA at layer K (``judge_layers``: its margin and at
    how many layers it is). Information (pass None): the gaps to the Chebyshev steps and to the average-case
    oracle at layer K, and the learned certificate."""
    out: list[dict[str, Any]] = []
    for key, rows in results.items():
        ours = rows.get(MODEL, {})
        if ours.get("status") != "done":
            out.append({"target": "T2 gd-unfolded better than FISTA at layer K", "setting": key, "model": MODEL,
                        "ours_db": None, "reference_db": None, "difference_db": None, "pass": None,
                        "note": f"gd-unfolded {ours.get('status', 'not run')}"})
            continue
        o = ours["nmse_db_K"]
        for ref_name, target, passing in (
                ("fista", "T2 gd-unfolded better than FISTA at layer K", True),
                ("chebyshev", "info: gap to Chebyshev steps at layer K", False),
                ("oracle-avg-case", "info: gap to the average-case optimal steps at layer K", False)):
            ref = rows.get(ref_name, {})
            if ref.get("status") != "done":
                continue
            r = ref["nmse_db_K"]
            note = f"ours {abs(o - r):.2f} dB {'lower (better)' if o < r else 'higher (worse)'}"
            out.append({"target": target, "setting": key, "model": MODEL, "ours_db": o, "reference_db": r,
                        "difference_db": o - r, "pass": None, "note": note,
                        **(judge_layers(ours["nmse_db"], ref["nmse_db"], "FISTA") if passing else {})})
        wc = ours["worst_case"]
        mm = rows.get("chebyshev", {}).get("worst_case", {}).get("minimax_value")
        out.append({"target": "info: worst-case max|p_K| over [mu, L] (learned vs Chebyshev minimax)",
                    "setting": key, "model": MODEL, "ours": wc["sup_abs_p_K"], "reference": mm,
                    "pass": None, "note": (f"grid {wc['grid_max_abs_p_K']:.4g}, exact {wc['sup_abs_p_K']:.4g} "
                                           f"at lambda={wc['argmax_lambda']:.4g}; "
                                           f"{fmt(wc.get('ratio_to_minimax'), '.3g')} x the minimax value")})
    return out


def _layers(k: int) -> list[int]:
    return sorted({max(1, round(k * f)) for f in (0.25, 0.5, 0.75)} | {k})


def format_table(doc: dict[str, Any]) -> str:
    """Rows = methods: measured NMSE at a few layers, expected NMSE at K, difference to FISTA, worst case."""
    k = doc["config"]["num_layers"]
    layers = _layers(k)
    head = ["method", "setting", *[f"NMSE@{j} (dB)" for j in layers], f"expected@{k} (dB)", f"vs FISTA@{k} (dB)",
            f"max|p_{k}| on [mu,L]", "train time (s)"]
    lines = table_head(head)
    for key, rows in doc["results"].items():
        fista = rows.get("fista", {})
        for name in ROW_ORDER:
            row = rows.get(name)
            if row is None:
                continue
            if row.get("status") != "done":
                lines.append(failed_row(name, row.get("setting", key), row, len(head)))
                continue
            vs = row["nmse_db_K"] - fista["nmse_db_K"] if fista.get("status") == "done" else None
            wc = row.get("worst_case", {})
            wc_v = wc.get("sup_abs_p_K", wc.get("grid_max_abs_p_K"))
            label = name + (" (*)" if name == "chebyshev" else "") + (" (oracle)" if row["kind"] == "oracle" else "")
            lines.append(table_row([
                label, row["setting"], *[fmt(row["nmse_db"][j], ".2f") for j in layers],
                fmt(row.get("expected_nmse_db_K"), ".2f"), fmt(vs, "+.2f"), fmt(wc_v, ".4f"),
                fmt(row.get("train_time_s"), ".1f")]))
    lines.append("")
    lines.append(f"(*) Chebyshev steps are a depth-{k} schedule: only layer {k} is a Chebyshev iterate; likewise "
                 f"gd-unfolded and the oracle are built for layer {k} only (intermediate layers may grow). "
                 "max|p| is exact (critical points) for step schedules, on the grid for FISTA.")
    return "\n".join(lines)


def format_steps(doc: dict[str, Any]) -> str:
    """Per setting: the learned steps sorted beside the Chebyshev and oracle steps sorted, and in layer order."""
    out = []
    for key, rows in doc["results"].items():
        ours = rows.get(MODEL, {})
        if ours.get("status") != "done":
            continue
        cheb = np.sort(rows["chebyshev"]["steps"])
        orc = rows.get("oracle-avg-case", {})
        orc_s = np.sort(orc["steps"]) if orc.get("status") == "done" else None
        out.append(f"steps ({key}): sorted, and gd-unfolded's in layer order")
        out.append("| rank | gd-unfolded | Chebyshev | avg-case oracle | layer | gd-unfolded (layer order) | init |")
        out.append("|---|---|---|---|---|---|---|")
        for i, (s, c) in enumerate(zip(ours["steps_sorted"], cheb)):
            out.append(f"| {i + 1} | {s:.3f} | {c:.3f} | {fmt(None if orc_s is None else orc_s[i], '.3f')} | "
                       f"{i} | {ours['steps'][i]:.3f} | {ours['init_steps'][i]:.3f} |")
        out.append("")
    return "\n".join(out)


def format_targets(targets: list[dict[str, Any]]) -> str:
    lines = table_head(["target", "setting", "ours", "reference", "result", "note"])
    for t in targets:
        verdict = t.get("verdict", "info")
        ours = t.get("ours_db", t.get("ours"))
        ref = t.get("reference_db", t.get("reference"))
        unit = " dB" if "ours_db" in t else ""
        lines.append(f"| {t['target']} | {t['setting']} | {fmt(ours, '.4g')}{unit if ours is not None else ''} | "
                     f"{fmt(ref, '.4g')}{unit if ref is not None else ''} | {verdict} | {t['note']} |")
    return "\n".join(lines)


def format_notes(doc: dict[str, Any]) -> str:
    lines = []
    for key, s in doc.get("settings", {}).items():
        f32 = ", ".join(f"{n} {v:.2f} dB" for n, v in s["float32_check"].items())
        lines.append(f"- {key}: mu={s['mu']:g}, L={s['L']:g}, minimax 1/T_K = {s['minimax_value']:.4g}; "
                     f"gradient at constant steps 1/L: relative spread {s['symmetry_check']['relative_spread']:.1e}; "
                     f"float32 at layer K: {f32}")
    return "\n".join(lines)


def full_text(doc: dict[str, Any]) -> str:
    return "\n\n".join([format_table(doc), format_targets(doc["targets"]), format_steps(doc), format_notes(doc)]) + "\n"


# ---- the runner ------------------------------------------------------------------------------------


def run_setting(config: QuadConfig, snr_db: float | None, checkpoint_dir: str | None, resume: bool,
                log: Callable[[str], None]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """All rows of one noise level, and the setting's facts (spectrum, minimax value, checks)."""
    key = setting_key(snr_db)
    problem = make_problem(config, snr_db)
    test = make_test_set(config, snr_db)
    eig = np.linalg.eigvalsh(problem.A.T @ problem.A)
    grid = spectrum_grid(config.mu, config.L, config.num_layers, config.grid_points)
    minimax = minimax_value(config.num_layers, config.mu, config.L)
    rows = classical_rows(config, snr_db, problem, test, eig, grid, minimax)
    log(f"[{key}] FISTA {rows['fista']['nmse_db_K']:.2f} dB, Chebyshev {rows['chebyshev']['nmse_db_K']:.2f} dB at "
        f"layer {config.num_layers}; training {MODEL}")
    try:
        rows[MODEL] = learned_row(config, snr_db, problem, test, eig, grid, minimax, checkpoint_dir, resume)
        log(f"[{key}] {MODEL}: {rows[MODEL]['nmse_db_K']:.2f} dB, {rows[MODEL]['train_time_s']:.1f} s")
    except Exception as err:  # noqa: BLE001 - recorded in the JSON, the run goes on
        rows[MODEL] = failed_entry(MODEL, "learned", snr_db, err)
        log(f"[{key}] {MODEL}: FAILED: {rows[MODEL]['error']}")
    schedules = {"chebyshev": np.asarray(rows["chebyshev"]["steps"])}
    if rows[MODEL].get("status") == "done":
        schedules[MODEL] = np.asarray(rows[MODEL]["steps"])
    facts = {"mu": config.mu, "L": config.L, "kappa": config.kappa, "minimax_value": minimax,
             "noise_variance": noise_variance(eig, config.m, snr_db),
             "eigenvalues_min_max": [float(eig.min()), float(eig.max())], "grid_size": int(grid.size),
             "symmetry_check": symmetry_check(config, problem),
             "float32_check": float32_check(problem, test, schedules, config.num_layers)}
    return {name: rows[name] for name in ROW_ORDER if name in rows}, facts


def run_benchmark(config: QuadConfig, snrs: Sequence[float | None], out_dir: str | Path, resume: bool = False,
                  threads: int | None = 1, log: Callable[[str], None] | None = None,
                  force: bool = False) -> dict[str, Any]:
    """Run every setting of ``snrs`` and return the JSON document (also written to ``out_dir``).

    The JSON is rewritten atomically after every setting. With ``resume``, finished settings of an existing
    JSON made with the same config are kept and skipped (UsageError for another config), and the trainer
    resumes its checkpoint bit-exactly. Without ``resume``, the JSON, the table and the checkpoints of this
    mode must not exist unless ``force`` deletes them (``ResultFile``).
    """
    log = log or log_stderr
    out_dir = Path(out_dir)
    checkpoints = out_dir / "checkpoints" / f"quadratic_{config.mode}"
    run = ResultFile(out_dir, "unfolded_quadratic", FORMAT_VERSION, config.to_dict(), resume, machine("cpu", threads),
                     {"snrs": [setting_key(s) for s in snrs]}, force, [checkpoints], recipe=RECIPE, results={},
                     settings={}, targets=[])
    doc = run.doc

    def save() -> None:
        doc["targets"] = evaluate_targets(doc["results"])
        run.save(full_text(doc))

    with limit_threads(threads):
        for snr in snrs:
            key = setting_key(snr)
            old = doc["results"].get(key, {})
            if resume and old and all(r.get("status") in ("done", "not realizable") for r in old.values()):
                log(f"[{key}] done already (--resume), skipped")
                continue
            ckpt = str(checkpoints / key / MODEL)
            doc["results"][key], doc["settings"][key] = run_setting(config, snr, ckpt, resume, log)
            save()
    save()
    return doc


# ---- command line ----------------------------------------------------------------------------------


def build_parser() -> OneLineParser:
    return settings_parser("unfolded_quadratic", "gd-unfolded vs GD, FISTA and Chebyshev steps on least squares "
                           "(K = 16).", "120 x 60, short training (seconds)", "data / initialisation / training",
                           "skip finished settings, resume the trainer checkpoint", DEFAULT_OUT)


@command
def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: returns 0, 1 if the training failed, 2 on a bad argument."""
    args = build_parser().parse_args(argv)
    snrs = parse_snr_list(args.snr)
    config = replace(QUICK if args.quick else FULL, seed=args.seed)
    t0 = time.perf_counter()
    doc = run_benchmark(config, snrs, args.out, resume=args.resume, threads=args.threads or None, force=args.force)
    wall = time.perf_counter() - t0
    print(full_text(doc), end="")
    return finish(wall, config.mode, output_paths(args.out, "unfolded_quadratic", config.mode), [f"{key}/{MODEL}" for key, rows in doc["results"].items()
                                             if rows.get(MODEL, {}).get("status") != "done"])


if __name__ == "__main__":
    sys.exit(main())
