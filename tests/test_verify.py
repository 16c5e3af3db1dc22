"""One verification path: solvers and unfolded models give the same Trajectory, the guarantee registry
decides which bounds apply, and verify() returns verdicts in one shape.

Tolerances: every run here is float64 on at most 60 unknowns and 8 steps, so round-off is ~1e-14 relative;
1e-9 compares two runs of the same iteration, and verify's default 1e-6 relative slack on the bound covers
the PEP solver tolerance (certified duality gaps below 1e-7)."""
import numpy as np
import pytest
import torch

from unfoldkit.proofs_check import REGISTRY, Target, coverage, verdicts_dict, verify, verify_classical
from unfoldkit.proofs_check.verdict import HOLDS, NOT_APPLICABLE, VIOLATED, compare_to_bound
from unfoldkit.theory.rates import CLASSICAL_RATES, gd_convex
from unfoldkit.unrolled.models import MODELS
from unfoldkit.unrolled.problems import BoundedSparseRecovery, LeastSquares, SparseRecovery
from unfoldkit.unrolled.solvers import run_fista, run_gd, run_ista
from unfoldkit.unrolled.trajectory import Trajectory

K = 6


@pytest.fixture(scope="module")
def lasso():
    p = SparseRecovery(m=30, n=60, seed=0)
    return p, p.sample(5, rng=1)


@pytest.fixture(scope="module")
def quad():
    p = LeastSquares(m=30, n=20, kappa=10.0, seed=0)
    return p, p.sample(5, rng=1)


@pytest.mark.parametrize("family, run", [("ista-learned-step", run_ista), ("fista-unfolded", run_fista),
                                         ("gd-unfolded", run_gd)])
def test_model_trajectory_is_the_solver_trajectory(lasso, quad, family, run):
    problem, batch = quad if family == "gd-unfolded" else lasso
    model = MODELS[family].from_classical(problem, K, dtype=torch.float64)
    traj = model.trajectory(batch.y)
    ref = run(problem, batch.y, K)
    assert isinstance(traj, Trajectory) and traj.kind == "model" and traj.algorithm == family
    assert traj.iterates.shape == (K + 1, 5, problem.n) and not traj.iterates.requires_grad
    assert torch.allclose(traj.iterates, ref.iterates, rtol=0, atol=1e-12)
    assert np.allclose(traj.params["step"], 1.0 / problem.L)


def test_trajectory_keeps_the_graph_when_asked(lasso):
    problem, batch = lasso
    model = MODELS["ista-learned-step"].from_classical(problem, 2, dtype=torch.float64)
    assert model.trajectory(batch.y, grad=True).iterates.requires_grad


@pytest.mark.parametrize("family, algorithm", [("ista-learned-step", "ista"), ("fista-unfolded", "fista"),
                                               ("gd-unfolded", "gd")])
def test_a_model_at_its_classical_start_gets_the_classical_verdicts(lasso, quad, family, algorithm):
    problem, batch = quad if family == "gd-unfolded" else lasso
    model = MODELS[family].from_classical(problem, K, dtype=torch.float64)
    ref = problem.reference(batch.y)
    mv = verify(model, problem, batch.y, reference=ref)
    cv = verify(algorithm, problem, batch.y, coverage(algorithm).names(), num_steps=K, reference=ref)
    assert [v.name for v in mv] == [v.name for v in cv] == list(coverage(family).names())
    assert {g.name for g in coverage(algorithm).default} < set(coverage(algorithm).names())
    for a, b in zip(mv, cv):
        assert a.state == b.state == HOLDS, (a.summary(), b.summary())
        assert a.worst_margin == pytest.approx(b.worst_margin, rel=1e-9, abs=1e-12)
        assert a.tightness == pytest.approx(b.tightness, rel=1e-9)


def test_learned_schedule_leaves_the_rates_but_keeps_pep(quad):
    problem, batch = quad
    model = MODELS["gd-unfolded"](problem, 4, step=np.array([1.5, 1.0, 0.5, 1.2]) / problem.L, dtype=torch.float64)
    verdicts = {v.name: v for v in verify(model, problem, batch.y)}
    for name in ("gd-convex", "gd-strongly-convex"):
        v = verdicts[name]
        assert v.state == NOT_APPLICABLE and "constant step" in v.details["reason"]
    for name in ("pep-gd-schedule", "quadratic-worst-case-gd"):
        assert verdicts[name].state == HOLDS and verdicts[name].tightness >= 1 - 1e-6
    # the exact worst case over quadratics is attained on the class, so it is never loose by much here
    assert verdicts["quadratic-worst-case-gd"].tightness < verdicts["pep-gd-schedule"].tightness * 10


def test_quadratic_bound_needs_a_quadratic(lasso):
    problem, batch = lasso
    v = verify("gd", problem, batch.y, ["quadratic-worst-case-gd"], num_steps=3)[0]
    assert v.state == NOT_APPLICABLE and "quadratic" in v.details["reason"]


def test_registry_covers_every_family_and_says_why_not():
    for name in (*MODELS, "gd", "ista", "fista", "admm"):
        cov = coverage(name)
        assert cov is REGISTRY[name]
        assert cov.covered or len(cov.reason) > 20, name
    uncovered = {n for n, c in REGISTRY.items() if not c.covered}
    assert uncovered == {"admm", "admm-unfolded", "ista-weighted-l1", "ista-correction"}
    assert not coverage("my-own-net").covered


def test_uncovered_model_gives_no_verdicts(lasso):
    problem, batch = lasso
    assert verify(MODELS["ista-correction"](problem, 2), problem, batch.y) == []


def test_unknown_bound_and_missing_signal_are_clear_errors(lasso):
    problem, batch = lasso
    with pytest.raises(ValueError, match="does not govern ista"):
        verify("ista", problem, batch.y, ["gd-convex"], num_steps=3)
    with pytest.raises(ValueError, match="num_steps is required"):
        verify("ista", problem, batch.y)
    with pytest.raises(ValueError, match="pass x"):
        verify(MODELS["lista-cp"](problem, 2), problem, batch.y)
    with pytest.raises(ValueError, match="target must be"):
        verify(3.0, problem, batch.y)


def test_lista_family_in_the_theorem_regime(lasso):
    from unfoldkit.theory.lista import certified_thresholds

    problem = SparseRecovery(m=100, n=150, seed=0)
    s, B, k = 1, 2.0, 6
    model = MODELS["alista"](problem, k, weight="frobenius", step=1.0, dtype=torch.float64)
    with torch.no_grad():
        model.threshold.copy_(torch.as_tensor(certified_thresholds(model.coherence(), s, B, k, np.ones(k))))
    cls = BoundedSparseRecovery(m=100, n=150, support_size=s, amplitude=B, seed=0)
    cls.A = problem.A
    batch = cls.sample(64, rng=0)
    verdicts = verify(model, cls, batch.y, x=batch.x, s=s, B=B, sigma=0.0)
    assert [v.name for v in verdicts] == ["alista-recursion", "alista-thm1"]
    assert all(v.state == HOLDS for v in verdicts), [v.summary() for v in verdicts]
    # a class that the batch does not lie in (s too small for its signals) breaks an assumption: no claim
    wide = cls.sample(8, rng=1)
    wide_x = wide.x.clone()
    wide_x[:, :3] = 0.5
    y = wide_x @ torch.as_tensor(problem.A).T
    v = verify(model, cls, y, x=wide_x, s=s, B=B, sigma=0.0)[0]
    assert v.state == NOT_APPLICABLE and "s-sparse" in v.details["reason"]


def test_uncoupled_lista_is_not_applicable(lasso):
    problem, batch = lasso
    model = MODELS["lista"](problem, 3, dtype=torch.float64)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-2 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0), dtype=p.dtype))
    v = verify(model, problem, batch.y, x=batch.x)[0]
    assert v.state == NOT_APPLICABLE and "coupling" in v.details["reason"]


def test_verdict_states_and_dict(lasso):
    problem, batch = lasso
    ok = verify_classical(problem, batch.y, "gd", 4, bounds=("gd-convex",))[0]
    assert ok.state == HOLDS and ok.to_dict()["state"] == "holds" and ok.to_dict()["assumptions_hold"] is True
    bound = gd_convex(1.0, 1.0, 3)
    too_big = np.array([0.0, 1.0, 1.0, 1.0])  # above L R^2 / (2k) for k >= 1
    bad = compare_to_bound(too_big, bound)
    assert bad.state == VIOLATED and bad.worst_margin < 0 and bad.tightness < 1
    blank = compare_to_bound(too_big, gd_convex(1.0, 1.0, 3, step=2.0))
    assert blank.state == NOT_APPLICABLE and not blank.holds
    d = verdicts_dict([ok, bad.__class__(**{**bad.__dict__, "label": "wrong"})])
    assert set(d) == {"gd-convex", "wrong"} and d["wrong"]["state"] == "violated"
    assert d["gd-convex"]["theorem"] and d["gd-convex"]["source"]
    with pytest.raises(ValueError, match="two verdicts"):
        verdicts_dict([ok, ok])


def test_target_runs_models_in_float64_and_restores_dtype(lasso):
    problem, batch = lasso
    model = MODELS["ista-learned-step"].from_classical(problem, 3)  # float32
    traj = Target(model.family, "model", 3, model=model).run(problem, batch.y)
    assert traj.iterates.dtype == torch.float64 and next(model.parameters()).dtype == torch.float32


def test_classical_rates_all_registered():
    for name, (_, alg, _) in CLASSICAL_RATES.items():
        assert name in coverage(alg).names()
