"""Robust-PCA recovery theory (theory/rpca.py) and its verdicts (proofs_check/rpca_guarantees.py).

Small instances (40 x 40 and below) from ``RobustPCA`` run by the classical solvers of ``unrolled/rpca.py``:
every assumption is decided on measured numbers; a violated one blanks the bound (NaN, "not applicable");
where every assumption holds the measured error stays under the bound; a family with no theorem gets no
bound. With outliers, the recalled constants cannot be met at a testable size (LRPCA: alpha <= 1e-4 /
(mu r^1.5 kappa) needs n >= 1e4 mu r^1.5 kappa since one outlier in a row is a fraction 1/n; AltProj:
alpha <= 1/(512 mu^2 r) needs n >= 512 mu^2 r), so the "assumptions hold" cases are outlier-free, and
``test_lrpca_outliers_need_huge_matrices`` checks that the sparsity condition is the one that fails.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from unfoldkit.proofs_check import REGISTRY, coverage
from unfoldkit.proofs_check.guarantees import Setting
from unfoldkit.proofs_check.rpca_guarantees import RPCA_REGISTRY, verify_rpca
from unfoldkit.proofs_check.verdict import HOLDS, NOT_APPLICABLE
from unfoldkit.theory.bound import Bound, Metric
from unfoldkit.theory.rpca import LRPCA_C_ALPHA, RPCA_NOT_COVERED, lrpca_bound
from unfoldkit.unrolled.problems.rpca import RobustPCA
from unfoldkit.unrolled.rpca import (
    RPCATrajectory,
    run_altproj,
    run_pcp,
    run_scaledgd,
    scaledgd_init,
    scaledgd_step,
)
from unfoldkit.unrolled.training.threads import limit_threads

limit_threads(1)

CLASSICAL = ("pcp-admm", "altproj", "scaledgd", "rpca-ista")
MODELS = ("lrpca", "pcp-weighted", "scaledgd-correction", "corona")


def batch(n=40, rank=2, alpha=0.1, seed=0, B=2, noise_std=0.0):
    return RobustPCA(n, n, rank, alpha, noise_std=noise_std, seed=seed).sample(B)


def oracle_lrpca(b, rank, K, eta=0.5, algorithm="lrpca"):
    """LRPCA with the theorem's oracle thresholds zeta_0 = ||L0||_inf, zeta_{k+1} = ||L_k - L0||_inf per instance
    (the steps of unrolled/rpca.py), recorded as a model trajectory with the scaledgd params keys."""
    M, L0 = b.M, b.L
    z = L0.abs().amax(dim=(-2, -1), keepdim=True)
    U, V, S = scaledgd_init(M, rank, z)
    Ls, Ss, zetas = [U @ V.mT], [S], [z.reshape(-1).tolist()]
    for _ in range(K):
        z = (Ls[-1] - L0).abs().amax(dim=(-2, -1), keepdim=True)
        U, V, S = scaledgd_step(U, V, M, z, eta)
        Ls.append(U @ V.mT)
        Ss.append(S)
        zetas.append(z.reshape(-1).tolist())
    return RPCATrajectory(torch.stack(Ls), torch.stack(Ss), algorithm,
                          {"rank": rank, "zeta": zetas, "eta": [eta] * K}, kind="model")


def only(verdicts):
    assert len(verdicts) == 1
    return verdicts[0]


def test_metric_added_without_dropping_any():
    assert Metric.LOWRANK_ERROR == "lowrank_error" and Metric.LOWRANK_ERROR in Metric.ALL
    assert {Metric.OBJECTIVE_GAP, Metric.DISTANCE, Metric.SQ_DISTANCE, Metric.SQ_GRAD_NORM} < set(Metric.ALL)


def test_registry_answers_every_rpca_target_and_keeps_the_sparse_registry_apart():
    for name in CLASSICAL + MODELS:
        cov = coverage(name)
        assert cov is RPCA_REGISTRY[name] and cov.setting == "rpca" and name not in REGISTRY
        assert cov.covered or len(cov.reason) > 40, name
    assert {n for n, c in RPCA_REGISTRY.items() if not c.covered} == {"rpca-ista", "pcp-weighted",
                                                                       "scaledgd-correction", "corona"}
    assert coverage("lrpca").names() == coverage("scaledgd").names() == ("lrpca-thm1",)
    assert all(c.setting == "sparse" for c in REGISTRY.values())
    # an RPCA guarantee never builds from a sparse-recovery Setting
    with pytest.raises(TypeError, match="RpcaSetting"):
        coverage("lrpca").guarantees[0].build(Setting.__new__(Setting))


def test_lrpca_assumptions_are_measured_and_a_violation_blanks_the_bound():
    b = batch(alpha=0.1)
    traj = run_scaledgd(b.M, 2, 4, zeta0=float(b.L.abs().max()))
    v = only(verify_rpca(traj, b))
    assert v.state == NOT_APPLICABLE and not v.holds and math.isnan(v.worst_margin)
    bound = v.bound
    assert bound.metric == Metric.LOWRANK_ERROR and bound.status == "recalled"
    assert bound.values.shape == (5, 2) and np.isnan(bound.values).all()
    by_name = {a.name: a for a in bound.assumptions}
    sparse = next(a for n, a in by_name.items() if n.startswith("outliers"))
    c = {k: t.numpy() for k, t in b.constants.items()}
    assert sparse.holds is False
    assert sparse.measured == pytest.approx(float(np.max(c["sparsity_max"] * c["incoherence"] * 2 ** 1.5
                                                        * c["condition"])))
    steps = next(a for n, a in by_name.items() if n.startswith("steps"))
    assert steps.holds is True  # eta = 0.5 lies in [1/4, 8/9]
    thresholds = [a for n, a in by_name.items() if n.startswith("threshold")]
    assert len(thresholds) == 5 and all(a.measured is not None and math.isfinite(a.measured) for a in thresholds)
    # the geometric schedule is not the oracle one: the threshold checks fail too
    assert any(a.holds is False for a in thresholds)
    assert all(a.holds in (True, False) for a in bound.assumptions)  # every LRPCA assumption is decided


def test_lrpca_step_outside_its_range_fails():
    b = batch(n=20, rank=1, alpha=0.0)
    v = only(verify_rpca(oracle_lrpca(b, 1, 3, eta=0.95), b))
    failed = [a.name for a in v.bound.failed]
    assert failed == ["steps eta_k in [1/4, 8/9]"] and v.state == NOT_APPLICABLE
    assert np.isnan(v.bound.values).all()


def test_lrpca_bound_holds_where_every_assumption_does():
    b = batch(n=40, rank=1, alpha=0.0, B=3)  # no outlier: the only sparsity the recalled constant allows here
    traj = oracle_lrpca(b, 1, 6)
    v = only(verify_rpca(traj, b))
    assert v.bound.assumptions_hold and v.state == HOLDS and v.holds
    vals = v.bound.values
    assert vals.shape == (7, 3) and np.isfinite(vals).all() and (vals > 0).all()
    sigma_r = torch.linalg.svdvals(b.L)[:, 0].numpy()
    assert vals[0] == pytest.approx(0.03 * sigma_r)
    assert vals[3] == pytest.approx(0.03 * 0.7 ** 3 * sigma_r)  # (1 - 0.6 * 0.5)^k
    assert (traj.error_L(b.L).numpy() * torch.linalg.matrix_norm(b.L).numpy() <= vals + 1e-9).all()
    # the classical ScaledGD with the same (oracle) schedule is the same target theory-wise
    classical = RPCATrajectory(traj.L, traj.S, "scaledgd", traj.params)
    assert only(verify_rpca(classical, b)).state == HOLDS


def test_lrpca_outliers_need_huge_matrices():
    """With one outlier in a row, alpha >= 1/n, so alpha mu r^1.5 kappa <= 1e-4 needs n >= 1e4 mu: not
    testable. The oracle thresholds pass, and the sparsity condition is the only failing assumption."""
    b = batch(n=40, rank=1, alpha=0.02, seed=3)
    assert float(b.constants["sparsity_max"].min()) >= 1 / 40
    v = only(verify_rpca(oracle_lrpca(b, 1, 4), b))
    assert [a.name.split(" ")[0] for a in v.bound.failed] == ["outliers"]
    mu = float(b.constants["incoherence"].min())
    assert 40 < mu / LRPCA_C_ALPHA  # the smallest n at which a single outlier per row could pass
    assert v.state == NOT_APPLICABLE and np.isnan(v.bound.values).all()


def test_dense_noise_breaks_the_exact_model():
    b = batch(n=20, rank=1, alpha=0.0, noise_std=1e-3)
    v = only(verify_rpca(oracle_lrpca(b, 1, 2), b))
    assert [a.name.split(":")[0] for a in v.bound.failed] == ["no dense noise"]


def test_altproj_violations_are_reported_with_measured_numbers():
    b = batch(alpha=0.1)
    v = only(verify_rpca(run_altproj(b.M, 2, 4), b))
    assert v.state == NOT_APPLICABLE and np.isnan(v.bound.values).all()
    failed = {a.name.split(" ")[0]: a for a in v.bound.failed}
    # default beta = 4 r / sqrt(n1 n2) encodes mu = 1 < measured incoherence; alpha far above 1/(512 mu^2 r);
    # two rank stages run as one
    assert set(failed) == {"L0", "outliers", "rank"}
    assert failed["L0"].measured == pytest.approx(float(b.constants["incoherence"].max()))
    assert failed["outliers"].measured == pytest.approx(float(b.constants["sparsity_max"].max()))


def test_altproj_bound_holds_where_every_assumption_does():
    b = batch(n=40, rank=1, alpha=0.0)
    mu = float(b.constants["incoherence"].max())
    traj = run_altproj(b.M, 1, 5, beta=4 * mu ** 2 / 40)
    v = only(verify_rpca(traj, b))
    assert v.bound.assumptions_hold and v.state == HOLDS
    vals = v.bound.values
    assert np.isinf(vals[0]).all() and np.isfinite(vals[1:]).all()
    err = torch.linalg.matrix_norm(traj.L - b.L).numpy()
    assert (err[1:] <= vals[1:]).all()


def test_pcp_theorem_is_unchecked_not_violated():
    b = batch(n=20, rank=1, alpha=0.05)
    v = only(verify_rpca(run_pcp(b.M, 3), b))
    assert v.state == NOT_APPLICABLE and "unchecked" in v.details["reason"] and "rho_r" in v.details["reason"]
    unchecked = [a for a in v.bound.assumptions if a.holds is None]
    assert len(unchecked) == 2 and all(a.measured is not None and math.isfinite(a.measured) for a in unchecked)
    assert not v.bound.failed and v.bound.iterations.tolist() == [0]  # the minimizer, not iterates
    # a lam other than 1/sqrt(n_(1)) is a checked failure: NaN
    w = only(verify_rpca(run_pcp(b.M, 3, lam=0.5), b))
    assert [a.name for a in w.bound.failed] == ["lam = 1/sqrt(max(n1, n2))"] and np.isnan(w.bound.values).all()


@pytest.mark.parametrize("family", ["pcp-weighted", "scaledgd-correction", "corona", "rpca-ista"])
def test_no_bound_for_families_without_a_theorem(family):
    b = batch(n=20, rank=1, alpha=0.05, B=1)
    base = run_scaledgd(b.M, 1, 2, zeta0=1.0)
    traj = RPCATrajectory(base.L, base.S, family, base.params, kind="model")
    assert verify_rpca(traj, b) == []
    cov = coverage(family)
    assert not cov.covered and cov.reason == RPCA_NOT_COVERED[family]
    with pytest.raises(ValueError, match="does not govern"):
        verify_rpca(traj, b, ["lrpca-thm1"])


@given(alpha=st.floats(0.03, 0.3), seed=st.integers(0, 2 ** 16))
def test_lrpca_never_reports_a_finite_bound_with_outliers_at_testable_sizes(alpha, seed):
    b = RobustPCA(24, 24, 1, alpha, seed=seed).sample(1)
    if float(b.constants["sparsity_max"].max()) == 0:
        return
    traj = run_scaledgd(b.M, 1, 2, zeta0=float(b.L.abs().max()))
    v = only(verify_rpca(traj, b))
    assert v.state == NOT_APPLICABLE and np.isnan(v.bound.values).all()


def test_theory_function_checks_shapes():
    with pytest.raises(ValueError, match="zeta must have"):
        lrpca_bound(rank=1, model_rank=1, incoherence=1, condition=1, sparsity_max=0, sigma_r=1, zeta=[1.0],
                    eta=[0.5], l0_inf=1, error_inf=np.zeros((2, 1)), noise=0)
    b = lrpca_bound(rank=[1], model_rank=1, incoherence=[1], condition=[1], sparsity_max=[0], sigma_r=[2.0],
                    zeta=[1.0, 0.0], eta=[0.5], l0_inf=[1.0], error_inf=np.zeros((2, 1)), noise=[0.0])
    assert isinstance(b, Bound) and b.assumptions_hold and b.values[:, 0] == pytest.approx([0.06, 0.042])
