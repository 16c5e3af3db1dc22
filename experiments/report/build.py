"""The guarantee report of ``unfoldkit check``: every number it shows, gathered from the existing APIs.

``build_report(CheckInputs(...))`` returns a JSON-able dict with the sections

- ``model``: architecture, paradigm, depth, learned / tied parameters (white box), or "black box";
- ``theorems``: the registry's guarantees for the family (``proofs_check.verify``), each verdict with its
  assumption checks (holds, measured, required); for the LISTA family also ``check_lista_model`` on the
  signal class X(B, s) of the test data; for a declared module, the module's own outputs held against the
  declared model's bounds (and the declaration itself: the module must reproduce the declared model);
- ``error``: per-layer NMSE (batch mean, per-instance quantiles 5/50/95 % and worst) of the model, of the
  classical algorithm at equal depth (1/L step) and the depth the classical algorithm needs to match the
  model's last layer;
- ``pep``: the exact PEP worst case of the model's step schedule where the registry lists one;
- ``lipschitz``: ``theory.lipschitz.lipschitz_bounds`` (upper, lower, ratio or "no finite constant");
- ``generalization``: PAC-Bayes and covering certificates and the measured gap (with training data);
- ``stress``: a short ``proofs_check.stress.run_round``;
- ``verdicts``: one line per check, each "holds", "fails" or "not covered" with its detail.

``report_exit_code(report)`` is 1 when a line fails, else 0. Rendering is ``render.write_report``.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from unfoldkit.proofs_check.guarantees import SIGNAL, coverage
from unfoldkit.proofs_check.lista_checks import check_lista_model
from unfoldkit.proofs_check.measure import measure
from unfoldkit.proofs_check.stress import run_round
from unfoldkit.proofs_check.stress_targets import TARGETS
from unfoldkit.proofs_check.targets import as_target
from unfoldkit.proofs_check.verdict import HOLDS, VIOLATED, Verdict, compare_to_bound
from unfoldkit.proofs_check.verifier import verify
from unfoldkit.proofs_check import generalization_gap
from unfoldkit.theory.generalization import DEFAULT_CLIP, clipped_nmse, covering_bound, pac_bayes_certificate
from unfoldkit.theory.lipschitz import lipschitz_bounds
from unfoldkit.unrolled.io import jsonable
from unfoldkit.unrolled.metrics import LayerNMSE, to_db
from unfoldkit.unrolled.models import UnfoldedModel
from unfoldkit.unrolled.problems.base import Problem
from unfoldkit.unrolled.problems.quadratic import LeastSquares
from unfoldkit.unrolled.steps import fista_momentum, fista_step, gradient_step, proximal_gradient_step
from unfoldkit.unrolled.trajectory import Trajectory
from unfoldkit.unrolled.training.threads import limit_threads

SCHEMA = "unfoldkit-check/1"
HOLD, FAIL, NOT_COVERED = "holds", "fails", "not covered"
STATES = (HOLD, FAIL, NOT_COVERED)

#: iteration cap of the classical algorithm when finding the depth that matches the model (full, quick)
MATCH_CAP = {False: 2000, True: 500}
#: test samples the depth search runs on (the first ones; the classical run is the expensive part)
MATCH_SAMPLES = {False: 256, True: 64}
#: samples of X(B, s) for check_lista_model
LISTA_SAMPLES = {False: 256, True: 64}
#: hypothesis examples of the stress run
STRESS_EXAMPLES = {False: 12, True: 4}
#: PAC-Bayes Monte Carlo draws
PAC_BAYES_DRAWS = {False: 50, True: 20}
#: PAC-Bayes Monte Carlo batch (samples of the training set per draw; at most the whole set)
PAC_BAYES_BATCH = {False: 256, True: 128}
#: lower-bound search of the Lipschitz constant (each start is an exact Jacobian per layer: at n = 500,
#: K = 16 about 0.3 s each on one core; these budgets were measured at 13 s quick, 25 s full on
#: a quiet machine; the whole Lipschitz stage (with the SDP) 31-32 s quick, 48-49 s default on a shared one,
#: benchmarks/check.py); the default mode adds 25 steps per temperature of the chain-guided steering (one
#: start per layer; at n = 500, K = 16 about 25 s more: the pool's ranking and 100 steps), quick mode none
LOWER_OPTIONS = {False: {"starts": 2, "ascent_steps": 2, "scales": [1e-3, 1e-1, 1.0, 1e2], "steer_steps": 25},
                 True: {"starts": 2, "ascent_steps": 0, "scales": [1e-2, 1.0, 1e2], "steer_steps": 0}}
#: certified upper bounds: the SDP certificate of the last layer only (the cheap bounds cover every layer);
#: in full mode its multipliers are optimised (at most 10 s) when the chain is small (n K <= SDP_OPTIMIZE_MAX),
#: else ECLipsE-Fast's multipliers are kept (at n = 500, K = 16 one descent step alone took 51 s on one core)
SDP_OPTIMIZE_MAX = 2000
LIPSCHITZ_OPTIONS = {False: {"methods": ("naive", "liplt", "eclipse-fast", "sdp"), "sdp_layers": "last",
                             "sdp_optimize": "last", "sdp_iters": 300, "sdp_time_limit": 10.0},
                     True: {"methods": ("naive", "eclipse-fast", "sdp"), "sdp_layers": "last",
                            "sdp_optimize": "none"}}
#: a declared module must reproduce the declared model within this relative deviation per layer
DECLARATION_RTOL = 1e-6
#: quantiles of the per-instance NMSE
QUANTILES = (0.05, 0.5, 0.95)


@dataclass
class CheckInputs:
    """What ``unfoldkit check`` checks.

    ``model``: a white box (one of our ``UnfoldedModel`` s, or a user's module declared as one, with its
    weights). ``fn``: a black box y (B, m) -> trajectory (K+1, B, n) with x_0 first, or the estimate (B, n);
    given together with ``model`` it is the module the declaration speaks for (its outputs are then checked
    against the declared model's and held against its bounds). ``num_layers``: K of a black box returning
    only (B, n). ``train_y``/``train_x``: training data for the generalization section. ``source``: the
    checkpoint path or a description of the module, shown in the report (a ``.pt`` path is stress-tested).
    """

    problem: Problem
    test_y: torch.Tensor
    test_x: torch.Tensor | None
    model: UnfoldedModel | None = None
    fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    num_layers: int | None = None
    train_y: torch.Tensor | None = None
    train_x: torch.Tensor | None = None
    source: str = ""
    #: the ``training["certify"]`` metadata of a model trained with ``unfoldkit train --certify`` (issue 18):
    #: its certificate is recomputed from scratch (``experiments.certify.certificate``) and judged
    certify: dict[str, Any] | None = None


# ---- small helpers ----------------------------------------------------------------------------------


def _num(v: Any) -> Any:
    """A float for JSON: None for NaN, "inf"/"-inf" for infinities (``unrolled.io.jsonable``)."""
    return jsonable(float(v))


def _arr(a: Any) -> list[Any]:
    return [_num(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    return f"{float(v):.{digits}g}"


def _row(check: str, section: str, state: str, detail: str, **extra: Any) -> dict[str, Any]:
    assert state in STATES, state
    return {"check": check, "section": section, "state": state, "detail": detail, **extra}


def _first_sentence(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


def _verdict_row(v: Verdict, section: str, prefix: str = "") -> dict[str, Any]:
    """A verdict as a table line: holds / fails (the violating layer and numbers) / not covered (the failed
    assumption with its measured number)."""
    name = prefix + v.name
    if v.state == HOLDS:
        return _row(name, section, HOLD, f"every layer within the bound (smallest margin {v.worst_margin:.3e} "
                                         f"at layer {v.worst[0]})")
    if v.state == VIOLATED:
        k, b = v.worst
        vals = np.asarray(v.bound.values, dtype=np.float64)
        bound_kb = float(vals[k, b] if vals.ndim == 2 else vals[k])
        return _row(name, section, FAIL, f"violated at layer {k}, instance {b}: measured "
                                         f"{bound_kb - v.worst_margin:.6g} > bound {bound_kb:.6g} "
                                         f"(margin {v.worst_margin:.3e})", layer=k, instance=b)
    failed = "; ".join(str(a) for a in v.bound.failed)
    return _row(name, section, NOT_COVERED, "assumption fails: " + (failed or v.details.get("reason", "")))


def _per_instance_nmse(iterates: torch.Tensor, x: torch.Tensor) -> np.ndarray:
    """||x_k^b - x^b||^2 / ||x^b||^2 per layer and instance (K+1, B), float64 (NaN where x^b = 0)."""
    it = iterates.detach().double().cpu()
    xx = x.detach().double().cpu()
    err = ((it - xx[None]) ** 2).sum(dim=-1).numpy()
    norm = (xx**2).sum(dim=-1).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm[None] > 0, err / norm[None], np.nan)


def layer_stats(iterates: torch.Tensor, x: torch.Tensor) -> dict[str, Any]:
    """Per-layer NMSE of a trajectory (K+1, B, n) against x (B, n): ``mean`` the batch NMSE
    (``metrics.LayerNMSE``: sum of errors / sum of norms), its dB, and the 5/50/95 % quantiles and the worst
    of the per-instance NMSE."""
    mean = LayerNMSE().add(iterates, x).nmse()
    per = _per_instance_nmse(iterates, x)
    out: dict[str, Any] = {"mean": _arr(mean), "mean_db": _arr([to_db(v) for v in mean])}
    with np.errstate(all="ignore"), _quiet():
        for q in QUANTILES:
            out[f"q{int(round(q * 100)):02d}"] = _arr(np.nanquantile(per, q, axis=1))
        out["worst"] = _arr(np.nanmax(per, axis=1))
    return out


class _quiet:
    """Silence numpy's all-NaN RuntimeWarnings inside a block."""

    def __enter__(self) -> None:
        import warnings
        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)


# ---- the model's trajectory -------------------------------------------------------------------------


def _run_fn(fn: Callable, y: torch.Tensor, num_layers: int | None) -> tuple[torch.Tensor, bool]:
    """(iterates, full): the callable's trajectory (K+1, B, n) (full = True), or (1, B, n) holding x_K only."""
    with torch.no_grad():
        out = fn(y)
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"the module must return a tensor, got {type(out).__name__}")
    out = out.detach().double().cpu()
    if out.ndim == 3 and out.shape[1] == y.shape[0]:
        return out, True
    if out.ndim == 2 and out.shape[0] == y.shape[0]:
        return out[None], False
    raise ValueError(f"the module must return (K+1, B, n) or (B, n) for y of shape {tuple(y.shape)}, "
                     f"got {tuple(out.shape)}")


def _lipschitz_map(fn: Callable) -> Callable[[torch.Tensor], torch.Tensor]:
    """The callable as y -> (K, B, n) (x_0, a constant, dropped) for the Lipschitz lower bound."""
    def f(y: torch.Tensor) -> torch.Tensor:
        out = fn(y)
        return out[1:] if out.ndim == 3 else out
    return f


# ---- classical algorithm -----------------------------------------------------------------------------


def classical_algorithms(problem: Problem, family: str | None) -> list[str]:
    """The classical algorithms the model is compared with: GD for least squares, ISTA and FISTA for a
    problem with a prox (the LASSO family; FISTA first for fista-unfolded)."""
    if isinstance(problem, LeastSquares):
        return ["gd"]
    if float(getattr(problem, "lam", 0.0) or 0.0) > 0:
        return ["fista", "ista"] if family == "fista-unfolded" else ["ista", "fista"]
    return []


def _classical_run(problem: Problem, y: torch.Tensor, algorithm: str, num_steps: int) -> Trajectory:
    """The classical algorithm's trajectory (``unrolled.solvers`` through the verifier's runners), step 1/L."""
    return as_target(algorithm, num_steps).run(problem, y)


def classical_match_depth(problem: Problem, y: torch.Tensor, x: torch.Tensor, algorithm: str, target: float,
                          cap: int) -> dict[str, Any]:
    """The first iteration t <= cap at which the classical algorithm (step 1/L, from x_0 = 0) reaches a batch
    NMSE <= ``target`` on (y, x); iterates are streamed (the steps of ``unrolled.steps``, the solvers' own),
    so that memory stays O(B n) at any cap."""
    y = y.double()
    xd = x.detach().double().cpu()
    norm = float((xd**2).sum())
    gamma = 1.0 / problem.L
    grad = lambda v: problem.grad(v, y)  # noqa: E731
    prox = lambda v: problem.prox(v, gamma)  # noqa: E731
    cur = problem.initial_point(y).double()
    prev = cur
    betas = fista_momentum(cap) if algorithm == "fista" else None
    last = float(((cur - xd) ** 2).sum()) / norm if norm > 0 else math.nan
    if last <= target:
        return {"algorithm": algorithm, "depth": 0, "reached": True, "cap": cap, "nmse_at_stop": last}
    for t in range(1, cap + 1):
        if algorithm == "gd":
            nxt = gradient_step(cur, grad, gamma)
        elif algorithm == "ista":
            nxt = proximal_gradient_step(cur, grad, gamma, prox)
        else:
            nxt = fista_step(cur, prev, grad, gamma, float(betas[t - 1]), prox)
        prev, cur = cur, nxt
        last = float(((cur - xd) ** 2).sum()) / norm if norm > 0 else math.nan
        if last <= target:
            return {"algorithm": algorithm, "depth": t, "reached": True, "cap": cap, "nmse_at_stop": last}
    return {"algorithm": algorithm, "depth": None, "reached": False, "cap": cap, "nmse_at_stop": last}


def _match_text(m: dict[str, Any]) -> str:
    if m.get("reached"):
        return f"{m['algorithm'].upper()} needs {m['depth']} iterations"
    if "reason" in m:
        return m["reason"]
    return f"{m['algorithm'].upper()}: not reached within {m['cap']} iterations (NMSE {_fmt(m['nmse_at_stop'])})"


# ---- sections ---------------------------------------------------------------------------------------


def _model_section(inp: CheckInputs, num_layers: int, full: bool) -> dict[str, Any]:
    m = inp.model
    if m is None:
        return {"kind": "black box", "family": "black box", "paradigm": None, "num_layers": num_layers,
                "returns_trajectory": full, "parameters": [], "config": {},
                "description": "a callable y -> x with no declared architecture: black-box checks only"}
    params = [{"name": p.name, "shape": list(p.shape), "learned": p.learned, "tied": p.tied,
               "meaning": p.meaning, "size": int(np.prod(p.shape)) if p.shape else 1} for p in m.parameter_info()]
    kind = "declared module (white box)" if inp.fn is not None else "white box"
    return {"kind": kind, "family": m.family, "paradigm": m.paradigm, "num_layers": m.num_layers,
            "dtype": m.dtype_name, "parameters": params, "config": jsonable(m.config()),
            "learned_count": int(sum(p["size"] for p in params if p["learned"])),
            "description": f"{m.family} ({m.paradigm} paradigm), {m.num_layers} layers"}


def _problem_section(p: Problem) -> dict[str, Any]:
    try:
        params = jsonable(p.params())
    except Exception:  # a custom problem (a dataset file) may not describe itself
        params = {}
    return {"name": p.name, "repr": repr(p), "m": int(p.obs_dim), "n": int(p.n), "L": _num(p.L),
            "mu": _num(p.mu), "lam": _num(getattr(p, "lam", math.nan)) if hasattr(p, "lam") else None,
            "params": params}


def _theorems(inp: CheckInputs, quick: bool, rows: list[dict[str, Any]], mod_traj: torch.Tensor | None,
              full: bool) -> tuple[dict[str, Any], dict[str, Any], list[Verdict]]:
    """(theorems section, pep section, the verdicts): verify with the registry's guarantees."""
    model, p = inp.model, inp.problem
    pep: dict[str, Any] = {"applies": False}
    if model is None:
        reason = "black box: no architecture declared, so no theorem applies (declare it as one of ours)"
        rows.append(_row("theorems", "theorems", NOT_COVERED, reason))
        pep["reason"] = "black box: no step schedule"
        rows.append(_row("PEP worst case", "pep", NOT_COVERED, pep["reason"]))
        return {"covered": False, "reason": reason, "names": [], "verdicts": []}, pep, []
    cov = coverage(model.family)
    sec: dict[str, Any] = {"covered": cov.covered, "reason": cov.reason, "names": list(cov.names()),
                           "verdicts": []}
    pep_names = [g.name for g in cov.default if g.name.startswith("pep-")]
    if not cov.covered:
        rows.append(_row("theorems", "theorems", NOT_COVERED, f"no theorem for {model.family}: {cov.reason}"))
        pep["reason"] = f"no PEP guarantee for {model.family}"
        rows.append(_row("PEP worst case", "pep", NOT_COVERED, pep["reason"]))
        return sec, pep, []
    needs_x = any(g.against == SIGNAL for g in cov.default)
    names = [g.name for g in cov.default]
    if needs_x and inp.test_x is None:
        rows.append(_row("theorems", "theorems", NOT_COVERED,
                         f"the bounds of {model.family} speak of the true signal: no ground truth given"))
        return sec, {"applies": False, "reason": "no ground truth"}, []
    start = time.perf_counter()
    verdicts = verify(model, p, inp.test_y, names, x=inp.test_x)
    sec["seconds"] = time.perf_counter() - start
    for v in verdicts:
        d = v.to_dict()
        vals = np.asarray(v.bound.values, dtype=np.float64)
        d["bound_max"] = _arr(vals.max(axis=1) if vals.ndim == 2 else vals)
        d["measured_max"] = _arr(v.measured_max)
        section = "pep" if v.name in pep_names else "theorems"
        d["section"] = section
        sec["verdicts"].append(d)
        rows.append(_verdict_row(v, section))
    if pep_names:
        pv = [d for d in sec["verdicts"] if d["name"] in pep_names]
        pep = {"applies": True, "names": pep_names, "verdicts": pv}
    else:
        pep["reason"] = f"the registry lists no PEP guarantee for {model.family}"
        rows.append(_row("PEP worst case", "pep", NOT_COVERED, pep["reason"]))
    # a declared module: its own outputs must be the declared model's, and are held against its bounds
    if inp.fn is not None and mod_traj is not None:
        ref_traj = as_target(model).run(p, inp.test_y).iterates.double().cpu()
        sec["declaration"] = _declaration(ref_traj, mod_traj, full, rows)
        if full and mod_traj.shape == ref_traj.shape:
            traj = Trajectory(mod_traj, "module", kind="model")
            reference = None
            for v in verdicts:
                g = cov.get(v.bound.name) if v.bound.name in cov.names() else None
                if g is None or not v.bound.assumptions_hold:
                    continue
                if g.against == SIGNAL:
                    meas = traj.distance(inp.test_x.double().cpu()).numpy()
                else:
                    reference = reference or p.reference(inp.test_y)
                    meas = measure(p, inp.test_y.double(), traj, reference, v.bound.metric)
                mv = compare_to_bound(meas, v.bound, rel_tol=1e-6, abs_tol=1e-12, label=f"module vs {v.name}")
                d = mv.to_dict()
                d["section"] = "theorems"
                sec["verdicts"].append(d)
                rows.append(_verdict_row(mv, "theorems"))
    return sec, pep, verdicts


def _declaration(ref: torch.Tensor, mod: torch.Tensor, full: bool, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Does the module reproduce the declared model? max relative deviation per layer."""
    ref_cmp = ref if full else ref[-1:]
    if ref_cmp.shape != mod.shape:
        detail = f"the module returns shape {tuple(mod.shape)}, the declared model {tuple(ref_cmp.shape)}"
        rows.append(_row("declaration (module = declared model)", "theorems", FAIL, detail))
        return {"holds": False, "detail": detail}
    scale = ref_cmp.abs().amax(dim=(1, 2)).clamp_min(1e-300)
    dev = ((mod - ref_cmp).abs().amax(dim=(1, 2)) / scale).numpy()
    dev = np.where(ref_cmp.abs().amax(dim=(1, 2)).numpy() > 0, dev, (mod - ref_cmp).abs().amax(dim=(1, 2)).numpy())
    worst = int(np.argmax(dev))
    layer = worst if full else ref.shape[0] - 1
    ok = bool(np.all(dev <= DECLARATION_RTOL))
    detail = (f"max relative deviation {float(dev[worst]):.3e} at layer {layer} "
              f"({'<=' if ok else '>'} {DECLARATION_RTOL:g})")
    rows.append(_row("declaration (module = declared model)", "theorems", HOLD if ok else FAIL, detail,
                     **({} if ok else {"layer": layer})))
    return {"holds": ok, "relative_deviation": _arr(dev), "worst_layer": layer, "detail": detail}


def _lista_section(inp: CheckInputs, quick: bool, seed: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    model = inp.model
    if model is None or model.family not in ("lista", "lista-cp", "lista-cpss", "alista"):
        return {"applies": False, "reason": "not a LISTA-family model"}
    if inp.test_x is None:
        return {"applies": False, "reason": "no ground truth: the signal class X(B, s) is unknown"}
    x = inp.test_x.double()
    s = max(int((x != 0).sum(dim=-1).max()), 1)
    B = max(float(x.abs().max()), float(np.finfo(float).tiny))
    try:
        rep = check_lista_model(model, s, B, 0.0, num_samples=LISTA_SAMPLES[quick], rng=seed)
    except ValueError as err:
        return {"applies": False, "reason": _first_sentence(err)}
    out = jsonable(rep.to_dict())
    out.update(applies=True, num_samples=LISTA_SAMPLES[quick])
    coupling = rep.assumptions[0]
    if not rep.bounds:
        rows.append(_row(f"LISTA theory on X(B={B:.3g}, s={s})", "theorems", NOT_COVERED,
                         f"assumption fails: {coupling}"))
    for b, (name, v) in zip(rep.bounds, rep.verdicts.items()):
        label = f"LISTA theory on X(B={B:.3g}, s={s}): {name}"
        if v["state"] == HOLDS:
            rows.append(_row(label, "theorems", HOLD, f"worst margin {v['worst_margin']:.3e}, "
                                                      f"tightness {v['tightness']:.4g}"))
        elif v["state"] == VIOLATED:
            rows.append(_row(label, "theorems", FAIL, f"violated at layer {v['worst_iteration']} "
                                                      f"(margin {v['worst_margin']:.3e})",
                             layer=v["worst_iteration"]))
        else:
            failed = "; ".join(str(a) for a in b.failed)
            rows.append(_row(label, "theorems", NOT_COVERED, "assumption fails: " + failed))
    return out


def _certified_section(inp: CheckInputs, seed: int, quick: bool, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A model trained with ``--certify``: its certificate recomputed from scratch on the test data (the
    safeguard) or on the declared class / envelope, one verdict row (docs/certified.md)."""
    if not inp.certify or inp.model is None:
        return {"applies": False, "reason": "not trained with --certify"}
    from unfoldkit.experiments.certify import certificate

    label = f"certified training ({inp.certify.get('mechanism')})"
    try:
        cert = certificate(inp.certify, inp.model, inp.problem, seed=seed, samples=LISTA_SAMPLES[quick],
                           test=(inp.test_y, inp.test_x))
    except ValueError as err:
        rows.append(_row(label, "certified", NOT_COVERED, _first_sentence(err)))
        return {"applies": False, "reason": _first_sentence(err)}
    first = cert["summary"].splitlines()[0]
    rows.append(_row(label, "certified", HOLD if cert["holds"] else FAIL, first))
    return {"applies": True, **jsonable(cert)}


def _error_section(inp: CheckInputs, iterates: torch.Tensor, full: bool, K: int, quick: bool,
                   verdicts: list[Verdict], progress: Callable[[str], None]) -> dict[str, Any]:
    if inp.test_x is None:
        return {"available": False, "reason": "no ground truth given: NMSE needs x"}
    x = inp.test_x.double().cpu()
    layers = list(range(K + 1)) if full else [K]
    out: dict[str, Any] = {"available": True, "layers": layers, "model": layer_stats(iterates, x),
                           "classical": {}, "bounds": {}}
    for v in verdicts:
        if v.bound.assumptions_hold:
            vals = np.asarray(v.bound.values, dtype=np.float64)
            out["bounds"][v.name] = {"metric": v.bound.metric, "bound_max": _arr(vals.max(axis=1) if vals.ndim == 2
                                                                                  else vals),
                                     "measured_max": _arr(v.measured_max), "state": v.state}
    algos = classical_algorithms(inp.problem, inp.model.family if inp.model is not None else None)
    if not algos:
        out["classical_reason"] = f"no classical algorithm for a {inp.problem.name!r} problem"
    nsub = min(MATCH_SAMPLES[quick], int(inp.test_y.shape[0]))
    y_sub, x_sub = inp.test_y[:nsub].double(), x[:nsub]
    target = LayerNMSE().add(iterates[-1:, :nsub], x_sub).nmse()[0]
    out["match"] = {"samples": nsub, "target_nmse": _num(target), "cap": MATCH_CAP[quick], "results": {}}
    for alg in algos:
        progress(f"classical {alg.upper()}: {K} iterations, then up to {MATCH_CAP[quick]} to match")
        traj = _classical_run(inp.problem, inp.test_y.double(), alg, K)
        out["classical"][alg] = layer_stats(traj.iterates, x)
        m = classical_match_depth(inp.problem, y_sub, x_sub, alg, target, MATCH_CAP[quick])
        m["nmse_at_stop"] = _num(m["nmse_at_stop"])
        m["text"] = _match_text(m)
        out["match"]["results"][alg] = m
    return out


def _lipschitz_section(inp: CheckInputs, K: int, quick: bool, seed: int, rows: list[dict[str, Any]]) -> dict:
    model = inp.model
    opts: dict[str, Any] = {"lower_options": LOWER_OPTIONS[quick], "seed": seed}
    if model is not None:
        opts.update(LIPSCHITZ_OPTIONS[quick])
        if not quick and int(inp.problem.n) * K > SDP_OPTIMIZE_MAX:
            opts.update(sdp_optimize="none", sdp_time_limit=None)
        subject: Any = model
    else:
        subject = _lipschitz_map(inp.fn)
        opts["input_dim"] = int(inp.problem.obs_dim)
    start = time.perf_counter()
    try:
        lb = lipschitz_bounds(subject, **opts)
    except RuntimeError as err:  # lower above a certified upper bound: a broken certificate
        rows.append(_row("Lipschitz constant", "lipschitz", FAIL, _first_sentence(err)))
        return {"available": False, "reason": _first_sentence(err), "options": jsonable(opts_public(opts))}
    except ValueError as err:
        rows.append(_row("Lipschitz constant", "lipschitz", NOT_COVERED, f"no finite constant: {err}"))
        return {"available": False, "reason": _first_sentence(err), "options": jsonable(opts_public(opts))}
    d = jsonable(lb.to_dict())
    d.update(available=True, seconds_total=time.perf_counter() - start, options=jsonable(opts_public(opts)))
    if lb.certified:
        up, lo, r = lb.best_upper()[-1], lb.lower[-1], lb.ratio()[-1]
        rows.append(_row("Lipschitz constant", "lipschitz", HOLD,
                         f"certified L_{K} <= {up:.6g} ({lb.best_method()[-1]}); attained lower {lo:.6g}; "
                         f"ratio {r:.4g}"))
    else:
        reason = lb.reason or "no certified upper bound"
        rows.append(_row("Lipschitz constant", "lipschitz", NOT_COVERED,
                         f"no finite constant: {reason}" + (f" (local lower estimate {lb.lower[-1]:.6g})"
                                                            if np.isfinite(lb.lower[-1]) else "")))
    return d


def opts_public(opts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in opts.items() if k != "input_dim"}


def _fn_losses(fn: Callable, y: torch.Tensor, x: torch.Tensor, clip: float) -> np.ndarray:
    out, _ = _run_fn(fn, y.double(), None)
    loss = clipped_nmse(out[-1], x.double().cpu(), clip)
    return torch.nan_to_num(loss, nan=clip).numpy()


def _generalization(inp: CheckInputs, quick: bool, seed: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    if inp.train_y is None or inp.train_x is None:
        reason = "no training data given"
        rows.append(_row("generalization", "generalization", NOT_COVERED, reason))
        return {"available": False, "reason": reason}
    if inp.test_x is None:
        reason = "no ground truth for the test set: the gap cannot be measured"
        rows.append(_row("generalization", "generalization", NOT_COVERED, reason))
        return {"available": False, "reason": reason}
    clip = DEFAULT_CLIP
    out: dict[str, Any] = {"available": True, "clip": clip, "certificates": {}}
    if inp.model is not None and inp.fn is None:
        gap = generalization_gap.measure_gap(inp.model, inp.train_y, inp.train_x, inp.test_y, inp.test_x, clip=clip,
                                             seed=seed, bootstrap=500 if quick else 2000)
    else:
        fn = inp.fn
        gap = generalization_gap.gap_from_losses(_fn_losses(fn, inp.train_y, inp.train_x, clip),
                                                 _fn_losses(fn, inp.test_y, inp.test_x, clip), clip,
                                                 bootstrap=500 if quick else 2000, seed=seed)
    out["gap"] = jsonable(gap)
    lo_test = float(gap["test_interval"][0])
    if inp.model is None:
        reason = "black box: the certificates need the architecture and its weights"
        rows.append(_row("generalization certificate", "generalization", NOT_COVERED, reason))
        out["certificates_reason"] = reason
        return out
    makers = {
        "PAC-Bayes": lambda: pac_bayes_certificate(inp.model, inp.train_y, inp.train_x,
                                                   mc_samples=PAC_BAYES_DRAWS[quick], clip=clip, seed=seed,
                                                   mc_batch=min(PAC_BAYES_BATCH[quick], int(inp.train_y.shape[0]))),
        "covering": lambda: covering_bound(inp.model, inp.train_y, inp.train_x, clip=clip),
    }
    for label, make in makers.items():
        try:
            g = make()
        except (NotImplementedError, ValueError) as err:
            reason = str(err).splitlines()[0]
            out["certificates"][label] = {"available": False, "reason": reason}
            rows.append(_row(f"generalization: {label}", "generalization", NOT_COVERED, reason))
            continue
        d = g.to_dict()
        d["available"] = True
        out["certificates"][label] = jsonable(d)
        if not g.assumptions_hold:
            failed = "; ".join(str(a) for a in g.assumptions if a.holds is False) or "an assumption is unchecked"
            rows.append(_row(f"generalization: {label}", "generalization", NOT_COVERED, "assumption fails: " + failed))
        elif g.vacuous:
            rows.append(_row(f"generalization: {label}", "generalization", NOT_COVERED,
                             f"vacuous: risk <= {_fmt(g.value)} is not below the loss range {clip:g}"))
        elif lo_test > g.value:
            rows.append(_row(f"generalization: {label}", "generalization", FAIL,
                             f"measured test risk {gap['test_risk']:.4g} (Hoeffding lower end {lo_test:.4g}) "
                             f"> certified risk {g.value:.4g}"))
        else:
            rows.append(_row(f"generalization: {label}", "generalization", HOLD,
                             f"risk <= {g.value:.4g} with probability >= {1 - g.delta:g} (train {g.empirical:.4g}, "
                             f"measured test {gap['test_risk']:.4g})"))
    return out


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _stress(inp: CheckInputs, quick: bool, seed: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    model = inp.model
    if model is None:
        reason = "black box: it declares no theorem to stress"
        rows.append(_row("stress", "stress", NOT_COVERED, reason))
        return {"run": False, "reason": reason}
    src = inp.source
    if src.endswith(".pt") and os.path.isfile(src) and inp.fn is None and coverage(model.family).covered:
        target, what = src, "this checkpoint's family guarantees on fresh batches of its problem"
    elif model.family in TARGETS:
        target, what = model.family, (f"the built-in {model.family!r} target: the family's theorem on certified "
                                      "instances (not this model's weights)")
    else:
        reason = (f"no stress target for {model.family!r}: no built-in target of that family and no checkpoint "
                  "file to stress")
        rows.append(_row("stress", "stress", NOT_COVERED, reason))
        return {"run": False, "reason": reason}
    examples = STRESS_EXAMPLES[quick]
    res = run_round(target, seed, examples, profile="ci")
    out = {"run": True, "target": target, "what": what, **jsonable(res.to_dict())}
    counts = res.counts
    summary = (f"{res.examples} examples: {counts.get('holds', 0)} holds, {counts.get('violated', 0)} violated, "
               f"{counts.get('not applicable', 0)} not applicable")
    if res.counterexample is not None:
        fname = f"counterexamples/{_safe(target if target in TARGETS else Path(target).stem)}-{seed}.npz"
        out["counterexample_file"] = fname
        out["call"] = f"unfoldkit stress {target} --seed {seed} --examples {examples}"
        rows.append(_row("stress", "stress", FAIL, f"{summary}; counterexample {res.counterexample['check']} "
                                                   f"(margin {res.counterexample['margin']:.3e}) saved to {fname}",
                         counterexample=fname))
    elif res.examples == 0 or counts.get("holds", 0) == 0:
        rows.append(_row("stress", "stress", NOT_COVERED, f"{summary}: no example met the assumptions"))
    else:
        rows.append(_row("stress", "stress", HOLD, summary))
    return out


# ---- the report --------------------------------------------------------------------------------------


def build_report(inputs: CheckInputs, *, quick: bool = False, seed: int = 0,
                 progress: Callable[[str], None] | None = None) -> dict:
    """The guarantee report of a model (module docstring): a JSON-able dict holding every number.

    ``quick``: smaller budgets (fewer samples, Lipschitz lower-bound starts, stress examples, classical cap
    500 instead of 2000, no SDP multiplier optimisation). ``progress`` receives one line per step."""
    inp = inputs
    if inp.model is None and inp.fn is None:
        raise ValueError("CheckInputs needs a model (white box) or fn (black box)")
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    steps = ["trajectory", "theorems", "lista", "error", "lipschitz", "generalization", "stress"]

    def step(i: int) -> float:
        say(f"[{i + 1}/{len(steps)}] {steps[i]}")
        return time.perf_counter()

    with limit_threads(1):
        # the model's trajectory (float64)
        s = step(0)
        y = inp.test_y.double()
        if inp.fn is not None:
            iterates, full = _run_fn(inp.fn, y, inp.num_layers)
        else:
            iterates, full = as_target(inp.model).run(inp.problem, y).iterates.double().cpu(), True
        if inp.model is not None:
            K = inp.model.num_layers
        elif full:
            K = iterates.shape[0] - 1
        elif inp.num_layers is not None:
            K = int(inp.num_layers)
        else:
            raise ValueError("a black box that returns only (B, n) needs num_layers")
        timings["trajectory"] = time.perf_counter() - s
        rows: list[dict[str, Any]] = []
        report: dict[str, Any] = {
            "schema": SCHEMA, "source": inp.source, "quick": bool(quick), "seed": int(seed),
            "problem": _problem_section(inp.problem),
            "data": {"test_samples": int(y.shape[0]), "ground_truth": inp.test_x is not None,
                     "train_samples": None if inp.train_y is None else int(inp.train_y.shape[0])},
            "model": _model_section(inp, K, full),
        }
        s = step(1)
        theorems, pep, verdicts = _theorems(inp, quick, rows, iterates if inp.fn is not None else None, full)
        report["theorems"], report["pep"] = theorems, pep
        timings["theorems"] = time.perf_counter() - s
        s = step(2)
        report["lista"] = _lista_section(inp, quick, seed, rows)
        report["certified"] = _certified_section(inp, seed, quick, rows)
        timings["lista"] = time.perf_counter() - s
        s = step(3)
        report["error"] = _error_section(inp, iterates, full, K, quick, verdicts, say)
        timings["error"] = time.perf_counter() - s
        s = step(4)
        report["lipschitz"] = _lipschitz_section(inp, K, quick, seed, rows)
        timings["lipschitz"] = time.perf_counter() - s
        s = step(5)
        report["generalization"] = _generalization(inp, quick, seed, rows)
        timings["generalization"] = time.perf_counter() - s
        s = step(6)
        report["stress"] = _stress(inp, quick, seed, rows)
        timings["stress"] = time.perf_counter() - s
    timings["total"] = time.perf_counter() - t0
    report["verdicts"] = rows
    report["counts"] = {st_: sum(r["state"] == st_ for r in rows) for st_ in STATES}
    report["exit_code"] = report_exit_code(report)
    report["timings"] = timings
    say(f"done in {timings['total']:.1f} s")
    return jsonable(report)


def report_exit_code(report: dict) -> int:
    """0 when every applicable guarantee holds (no line "fails"), 1 when one fails."""
    return 1 if any(r.get("state") == FAIL for r in report.get("verdicts", ())) else 0
