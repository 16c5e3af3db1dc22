"""Built-in stress targets: each pairs a bound family of ``theory/`` with the algorithm or model it governs,
a hypothesis strategy of instances, and an evaluation that returns verdicts.

An instance is a flat dict of numbers and short float lists (JSON- and npz-friendly), so that a failing one
is saved, shrunk by hypothesis and replayed bit for bit: ``evaluate(params)`` rebuilds the problem, the
batch and the run from the seeds and sizes it holds. Three targets are *planted*: their claim is false on
purpose (an assumption check is switched off), and the hunter must find and shrink a counterexample.
Checkpoint targets (a trained model's family guarantees) are built by ``checkpoint_target``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from hypothesis import strategies as st

from unfoldkit.proofs_check.guarantees import coverage
from unfoldkit.proofs_check.lista_bounds import layer_constants
from unfoldkit.proofs_check.targets import classical
from unfoldkit.proofs_check.verdict import Verdict, compare_to_bound
from unfoldkit.proofs_check.verifier import measure, verify
from unfoldkit.theory import rates
from unfoldkit.theory.lista import certified_thresholds, model_recursion_bound
from unfoldkit.unrolled.models import MODELS
from unfoldkit.unrolled.models.alista_weights import frobenius_weight, generalized_coherence
from unfoldkit.unrolled.problems import BoundedSparseRecovery, LeastSquares, SparseRecovery

Params = dict[str, Any]

#: batch size of every built-in instance (a few observations of one problem)
BATCH = 4


@dataclass(frozen=True)
class StressTarget:
    """A stress target: ``strategy`` draws instance params, ``evaluate(params)`` returns the verdicts,
    ``dims(params)`` the sizes reported for a (shrunk) counterexample. ``planted``: the claim is false on
    purpose (a hunter that misses it is broken)."""

    name: str
    description: str
    strategy: st.SearchStrategy[Params]
    evaluate: Callable[[Params], list[Verdict]]
    dims: Callable[[Params], dict[str, int]]
    planted: bool = False


def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(min_value=lo, max_value=hi)


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)


_seed = _ints(0, 2**31 - 1)


def _sizes(params: Params) -> dict[str, int]:
    out = {k: int(params[k]) for k in ("m", "n", "K", "s") if k in params}
    if "extra" in params:
        out["n"] = int(params["m"] + params["extra"])
    return out


# ---- instances -----------------------------------------------------------------------------------------


def _lasso(p: Params) -> tuple[SparseRecovery, torch.Tensor]:
    problem = SparseRecovery(m=p["m"], n=p["n"], sparsity=p["sparsity"], snr_db=p["snr_db"], lam=p["lam"],
                             seed=p["seed"])
    return problem, problem.sample(BATCH, rng=p["data_seed"]).y


def _least_squares(p: Params) -> tuple[LeastSquares, torch.Tensor]:
    problem = LeastSquares(m=p["m"], n=p["n"], kappa=p.get("kappa"), snr_db=p["snr_db"], seed=p["seed"])
    return problem, problem.sample(BATCH, rng=p["data_seed"]).y


#: initial points: x_0 = 0 (the default, first so that failures shrink to it) or scale * N(0, I)
_x0_scale = st.one_of(st.just(0.0), _floats(1e-2, 10.0))

_lasso_params = st.fixed_dictionaries({
    "m": _ints(1, 12), "n": _ints(2, 16), "sparsity": _floats(0.05, 1.0), "lam": _floats(1e-3, 1.0),
    "snr_db": st.one_of(st.none(), _floats(5.0, 60.0)), "seed": _seed, "data_seed": _seed,
    "K": _ints(1, 30), "h": _floats(1e-3, 1.0), "x0_scale": _x0_scale, "x0_seed": _seed})


def _x0(p: Params, n: int) -> torch.Tensor | None:
    """The drawn initial points (BATCH, n), None for x_0 = 0 (params without "x0_scale" too)."""
    scale = p.get("x0_scale", 0.0)
    if not scale:
        return None
    return torch.as_tensor(scale * np.random.default_rng(p["x0_seed"]).standard_normal((BATCH, n)))


@st.composite
def _quadratic_params(draw: Any, convex: bool = False, steps: tuple[float, float] | None = None,
                      max_k: int = 30) -> Params:
    n = draw(_ints(1, 10))
    p: Params = {"n": n, "snr_db": draw(st.one_of(st.none(), _floats(5.0, 60.0))), "seed": draw(_seed),
                 "data_seed": draw(_seed), "K": draw(_ints(1, max_k)), "x0_scale": draw(_x0_scale),
                 "x0_seed": draw(_seed)}
    if convex:
        p.update(m=draw(_ints(1, 14)), kappa=None)
    else:
        p.update(m=n + draw(_ints(0, 6)), kappa=draw(_floats(1.0, 1e3)))
    if steps is None:
        p["h"] = draw(_floats(1e-3, 1.0 if convex else 1.999))
    else:
        p["steps"] = draw(st.lists(_floats(*steps), min_size=p["K"], max_size=p["K"]))
    return p


def _classical_verdicts(algorithm: str, bounds: tuple[str, ...], make: Callable) -> Callable[[Params], list]:
    def evaluate(p: Params) -> list[Verdict]:
        problem, y = make(p)
        step = np.asarray(p["steps"]) / problem.L if "steps" in p else p["h"] / problem.L
        return verify(classical(algorithm, p["K"], step, _x0(p, problem.n)), problem, y, bounds)

    return evaluate


# ---- LISTA family on X(B, s) --------------------------------------------------------------------------


_lista_params = st.fixed_dictionaries({
    "m": _ints(6, 16), "extra": _ints(0, 8), "s": _ints(1, 2), "B": _floats(0.1, 10.0), "K": _ints(1, 10),
    "seed": _seed, "data_seed": _seed})


_lista_uncoupled_params = st.fixed_dictionaries({
    "m": _ints(6, 16), "extra": _ints(0, 8), "s": _ints(1, 2), "B": _floats(0.1, 10.0), "K": _ints(1, 10),
    "seed": _seed, "data_seed": _seed, "eps": _floats(0.0, 1.0)})


def _lista_instance(p: Params) -> tuple[BoundedSparseRecovery, Any, np.ndarray, float]:
    n = p["m"] + p["extra"]
    problem = BoundedSparseRecovery(m=p["m"], n=n, support_size=min(p["s"], n), amplitude=p["B"], seed=p["seed"])
    batch = problem.sample(BATCH, rng=p["data_seed"])
    weight = frobenius_weight(problem.A)
    return problem, batch, weight, generalized_coherence(weight, problem.A, atol=1e-6)


def _certified_lista_cp(problem: BoundedSparseRecovery, weight: np.ndarray, mu: float, p: Params):
    """LISTA-CP with W^k = W~ (the analytic Frobenius weight, unit diagonal) and the certified thresholds."""
    model = MODELS["lista-cp"](problem, p["K"], dtype=torch.float64)
    th = certified_thresholds(mu, p["s"], p["B"], p["K"], np.ones(p["K"]))
    with torch.no_grad():
        model.W.copy_(torch.as_tensor(np.stack([weight] * p["K"])))
        model.threshold.copy_(torch.as_tensor(th))
    return model


def _certified_alista(problem: BoundedSparseRecovery, weight: np.ndarray, mu: float, p: Params):
    model = MODELS["alista"](problem, p["K"], weight="frobenius", step=1.0, percent=0.0, max_percent=0.0,
                             dtype=torch.float64)
    with torch.no_grad():
        model.threshold.copy_(torch.as_tensor(certified_thresholds(mu, p["s"], p["B"], p["K"], np.ones(p["K"]))))
    return model


def _lista_verdicts(build: Callable) -> Callable[[Params], list[Verdict]]:
    def evaluate(p: Params) -> list[Verdict]:
        problem, batch, weight, mu = _lista_instance(p)
        model = build(problem, weight, mu, p)
        return verify(model, problem, batch.y, x=batch.x, s=p["s"], B=p["B"], sigma=0.0)

    return evaluate


# ---- planted failures ---------------------------------------------------------------------------------


def _ista_overstep(p: Params) -> list[Verdict]:
    """ISTA with step 2.5/L held against R^2/(2 gamma k) with the step assumption (gamma <= 1/L) unchecked."""
    problem, y = _lasso(p)
    gamma = 2.5 / problem.L
    ref = problem.reference(y)
    traj = classical("ista", p["K"], gamma, _x0(p, problem.n)).run(problem, y)
    r = (traj.iterates[0] - ref.x).norm(dim=-1).double().numpy()
    legal = rates.ista_convex(problem.L, r, p["K"], step=1.0 / problem.L)
    bound = legal.with_assumptions(values=legal.values / 2.5)  # R^2/(2 gamma k) at gamma = 2.5/L: claimed
    return [compare_to_bound(measure(problem, y, traj, ref, bound.metric), bound, rel_tol=1e-6,
                             label="ista-convex at step 2.5/L (step check off)")]


def _schedule_divergent(p: Params) -> list[Verdict]:
    """A learned GD schedule (steps up to 3/L) held against the classical convergent bound L R^2/(2k)."""
    problem, y = _least_squares(p)
    gammas = np.asarray(p["steps"]) / problem.L
    ref = problem.reference(y)
    traj = classical("gd", p["K"], gammas, _x0(p, problem.n)).run(problem, y)
    r = (traj.iterates[0] - ref.x).norm(dim=-1).double().numpy()
    bound = rates.gd_convex(problem.L, r, p["K"], step=1.0 / problem.L)
    return [compare_to_bound(measure(problem, y, traj, ref, bound.metric), bound, rel_tol=1e-6,
                             label="gd-convex for a learned schedule (schedule check off)")]


def _lista_uncoupled(p: Params) -> list[Verdict]:
    """A LISTA whose W_2 = I - W_1 A + eps E is held against the LISTA-CP recursion, coupling check off."""
    problem, batch, weight, mu = _lista_instance(p)
    cp = _certified_lista_cp(problem, weight, mu, p)
    model = MODELS["lista"](problem, p["K"], dtype=torch.float64)
    rng = np.random.default_rng(p["seed"])
    with torch.no_grad():
        model.W1.copy_(torch.as_tensor(np.stack([weight.T] * p["K"])))
        if model.W2 is not None:
            eye = np.eye(problem.n) - weight.T @ problem.A
            noise = rng.standard_normal((p["K"] - 1, problem.n, problem.n)) / problem.n
            model.W2.copy_(torch.as_tensor(eye[None] + p["eps"] * noise))
        model.threshold.copy_(cp.threshold)
    const = layer_constants(model)
    bound = model_recursion_bound(const["mu"], const["delta"], const["threshold"], p["s"], p["B"], 0.0,
                                  const["c_w"], name="lista-recursion (coupling check off)")
    err = model.trajectory(batch.y).distance(batch.x).double().numpy()
    return [compare_to_bound(err, bound, rel_tol=1e-6, abs_tol=1e-12)]


# ---- the registry -------------------------------------------------------------------------------------


TARGETS: dict[str, StressTarget] = {t.name: t for t in (
    StressTarget("gd-convex", "GD, step h/L (h <= 1), convex least squares: Beck-Teboulle and Drori-Teboulle rates",
                 _quadratic_params(convex=True),
                 _classical_verdicts("gd", ("gd-convex", "gd-convex-tight"), _least_squares), _sizes),
    StressTarget("gd-strongly-convex", "GD, step h/L (h < 2), strongly convex least squares: q^k contraction "
                 "(Taylor-Hendrickx-Glineur) and its objective form", _quadratic_params(),
                 _classical_verdicts("gd", ("gd-strongly-convex", "gd-strongly-convex-objective"), _least_squares),
                 _sizes),
    StressTarget("ista-rates", "ISTA on random LASSO, step h/L (h <= 1): R^2/(2 gamma k) and R^2/(4 gamma k)",
                 _lasso_params, _classical_verdicts("ista", ("ista-convex", "ista-convex-tight"), _lasso), _sizes),
    StressTarget("fista-rates", "FISTA on random LASSO, step h/L (h <= 1): Beck-Teboulle Thm 4.4 and its t_k form",
                 _lasso_params, _classical_verdicts("fista", ("fista-convex", "fista-convex-t"), _lasso), _sizes),
    StressTarget("pep-schedule", "GD with a random schedule h_k in (0, 2.5) on strongly convex least squares: "
                 "the exact PEP worst case of the schedule", _quadratic_params(steps=(0.05, 2.5), max_k=4),
                 _classical_verdicts("gd", ("pep-gd-schedule",), _least_squares), _sizes),
    StressTarget("quadratic-schedule", "GD with a random schedule h_k in (0, 3) on strongly convex least squares: "
                 "the exact worst case over quadratics", _quadratic_params(steps=(0.05, 3.0), max_k=12),
                 _classical_verdicts("gd", ("quadratic-worst-case-gd",), _least_squares), _sizes),
    StressTarget("lista-cp", "LISTA-CP with the analytic weight and certified thresholds on X(B, s): the "
                 "per-layer recursion (Chen et al. 2018 Thm 2)", _lista_params,
                 _lista_verdicts(_certified_lista_cp), _sizes),
    StressTarget("alista", "ALISTA (Frobenius weight, gamma = 1, certified thresholds) on X(B, s): the recursion "
                 "and Liu et al. 2019 Thm 1", _lista_params, _lista_verdicts(_certified_alista), _sizes),
    StressTarget("ista-overstep", "PLANTED: ISTA with step 2.5/L against the 1/k rate, step check off",
                 _lasso_params, _ista_overstep, _sizes, planted=True),
    StressTarget("lista-uncoupled", "PLANTED: LISTA with W2 != I - W1 A against the LISTA-CP recursion, "
                 "coupling check off", _lista_uncoupled_params, _lista_uncoupled, _sizes, planted=True),
    StressTarget("schedule-divergent", "PLANTED: a learned GD schedule (h_k up to 3) against the classical "
                 "convergent bound L R^2/(2k), schedule check off", _quadratic_params(steps=(0.05, 3.0), max_k=8),
                 _schedule_divergent, _sizes, planted=True),
)}


def checkpoint_target(path: str) -> StressTarget:
    """The guarantees of a trained model's family (registry), on fresh batches of its own problem (and, for
    the LISTA family, of X(B, s) with its dictionary). Params: batch seed, and s, B for the LISTA family. A
    model trained with ``--certify safeguard`` is also run safeguarded (its rule and delta from the
    checkpoint) on batches of its problem under a dictionary mismatch eps in [0, 2] (``perturbed_dictionary``),
    with the safeguard's bound as a verdict (``certified_safeguard.safeguard_verdict``)."""
    from unfoldkit.proofs_check.certified_safeguard import safeguard_verdict
    from unfoldkit.unrolled.problems import perturbed_dictionary
    from unfoldkit.unrolled.safeguard import SafeguardedModel
    from unfoldkit.unrolled.training.checkpoint import load_checkpoint, load_model

    ckpt = load_checkpoint(path)
    model = load_model(ckpt)
    certify = (ckpt.training or {}).get("certify") or {}
    guarded = certify.get("mechanism") == "safeguard"
    cov = coverage(model.family)
    if not cov.covered and not guarded:
        raise ValueError(f"{path}: no theorem covers a {model.family!r} model ({cov.reason})")
    model = model.to(torch.float64)
    signal = any(g.against == "signal" for g in cov.guarantees)
    base = model.problem

    def evaluate(p: Params) -> list[Verdict]:
        out: list[Verdict] = []
        if signal:
            problem = BoundedSparseRecovery(m=base.m, n=base.n, support_size=p["s"], amplitude=p["B"], seed=0)
            problem.A = base.A
            batch = problem.sample(BATCH, rng=p["data_seed"])
            out += verify(model, problem, batch.y, x=batch.x, s=p["s"], B=p["B"], sigma=0.0)
        elif cov.covered:
            batch = base.sample(BATCH, rng=p["data_seed"])
            out += verify(model, base, batch.y, x=batch.x)
        if guarded:
            true = perturbed_dictionary(base, p["eps"], p["data_seed"])
            y = true.sample(BATCH, rng=p["data_seed"]).y.double()
            trace = SafeguardedModel(model, rule=certify["rule"], delta=certify["delta"], problem=true).run(y)
            out.append(safeguard_verdict(trace, f"safeguard, mismatch eps = {p['eps']:.3g}"))
        return out

    fields = {"data_seed": _seed}
    if signal:
        fields.update(s=_ints(1, max(1, min(base.n, 8))), B=_floats(0.1, 10.0))
    if guarded:
        fields.update(eps=_floats(0.0, 2.0))
    names = list(cov.names()) + (["safeguard-residual"] if guarded else [])
    return StressTarget(f"checkpoint:{path}", f"{model.family} from {path}: {', '.join(names)}",
                        st.fixed_dictionaries(fields), evaluate, lambda p: {"m": base.m, "n": base.n,
                                                                            "K": model.num_layers})


def lemma_targets() -> dict[str, StressTarget]:
    """``lemma:NAME`` targets: each inequality of ``proofs_check.lemmas`` on random data (see lemma_checks)."""
    from unfoldkit.proofs_check.lemma_stress import LEMMA_TARGETS

    return LEMMA_TARGETS


def get_target(name: str) -> StressTarget:
    """A built-in target, a ``lemma:NAME`` or a checkpoint path (ValueError naming the choices otherwise)."""
    if name in TARGETS:
        return TARGETS[name]
    if name.startswith("lemma:"):
        lemmas = lemma_targets()
        if name in lemmas:
            return lemmas[name]
        raise ValueError(f"unknown lemma {name!r}; known: {', '.join(sorted(lemmas))}")
    if name.startswith("checkpoint:") or name.endswith(".pt"):
        return checkpoint_target(name.removeprefix("checkpoint:"))
    raise ValueError(f"unknown stress target {name!r}; see `unfoldkit stress --list` (or give a checkpoint .pt)")
