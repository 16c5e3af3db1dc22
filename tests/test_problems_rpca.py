"""Robust PCA family (issue 15): sampler statistics, determinism, certified PCP reference, errors."""
import numpy as np
import pytest
import torch

from unfoldkit.unrolled.problems import RobustPCA, pcp_duality_gap, rpca_constants


def test_sampler_statistics():
    n1, n2, r, alpha, B = 30, 20, 3, 0.1, 8
    p = RobustPCA(n1, n2, r, alpha, condition=4.0)
    b = p.sample(B, 0)
    assert b.M.shape == b.L.shape == b.S.shape == (B, n1, n2) and b.M.dtype == torch.float64
    torch.testing.assert_close(b.M, b.L + b.S, rtol=0, atol=0)  # noiseless
    s = torch.linalg.svdvals(b.L)
    assert torch.all(s[:, r:] <= 1e-10 * s[:, :1])  # rank exactly r
    assert torch.all(s[:, r - 1] > 1e-3 * s[:, 0])
    torch.testing.assert_close(s[:, 0] / s[:, r - 1], torch.full((B,), 4.0, dtype=torch.float64))
    torch.testing.assert_close(b.constants["condition"], torch.full((B,), 4.0, dtype=torch.float64))
    # sparsity within 5 binomial standard deviations of alpha
    total = B * n1 * n2
    frac = float((b.S != 0).sum()) / total
    assert abs(frac - alpha) < 5 * np.sqrt(alpha * (1 - alpha) / total)
    torch.testing.assert_close(b.constants["sparsity"], (b.S != 0).double().mean(dim=(1, 2)))
    assert torch.all(b.constants["sparsity_max"] >= b.constants["sparsity"])
    mu = b.constants["incoherence"]
    assert torch.all(torch.isfinite(mu)) and torch.all(mu >= 1 - 1e-12) and torch.all(mu <= max(n1, n2) / r)
    assert torch.all(b.constants["rank"] == r)
    # magnitudes in the stated range, relative to mean |L0|
    scale = b.L.abs().mean(dim=(1, 2), keepdim=True)
    rel = (b.S.abs() / scale)[b.S != 0]
    assert rel.min() >= 1.0 - 1e-12 and rel.max() <= 10.0 + 1e-12
    # noise
    q = RobustPCA(n1, n2, r, alpha, noise_std=0.1)
    c = q.sample(4, 0)
    assert 0.05 < float((c.M - c.L - c.S).std()) < 0.2


def test_incoherence_extremes():
    # a coordinate-aligned L is maximally coherent: mu = n / r
    L = np.zeros((1, 6, 4))
    L[0, 0, 0] = 1.0
    c = rpca_constants(L, np.zeros_like(L), 1)
    assert c["incoherence"][0] == pytest.approx(6.0)
    # a flat rank-1 matrix is perfectly incoherent: mu = 1
    c = rpca_constants(np.ones((1, 6, 4)), np.zeros((1, 6, 4)), 1)
    assert c["incoherence"][0] == pytest.approx(1.0)


def test_determinism_by_seed():
    p = RobustPCA(12, 10, 2, 0.1, noise_std=0.01)
    a, b, c = p.sample(3, 5), p.sample(3, 5), p.sample(3, 6)
    assert torch.equal(a.M, b.M) and torch.equal(a.S, b.S) and not torch.equal(a.M, c.M)
    x, y = RobustPCA(12, 10, 2, 0.1, seed=3).sample(2), RobustPCA(12, 10, 2, 0.1, seed=3).sample(2)
    assert torch.equal(x.M, y.M)
    assert p.sample(2, 5, dtype=torch.float32).M.dtype == torch.float32


def test_reference_gap_certified_and_small():
    p = RobustPCA(30, 20, 3, 0.1, noise_std=0.1, condition=5.0)
    b = p.sample(2, 2)
    ref = p.reference(b.M, tol=1e-9)
    assert torch.all(ref.gap >= 0) and torch.all(ref.gap / ref.objective < 1e-6)
    torch.testing.assert_close(ref.L + ref.S, b.M, rtol=0, atol=1e-12)
    torch.testing.assert_close(ref.objective, p.objective(ref.L, ref.S))
    # the certificate is a true bound: a perturbed point has a larger objective than objective - gap
    worse = p.objective(ref.L + 1e-3, ref.S - 1e-3)
    assert torch.all(worse >= ref.objective - ref.gap)
    # a bad dual gives a valid (large) gap, never a negative one
    M = b.M.numpy()
    _, g = pcp_duality_gap(M, M, np.zeros_like(M), p.lam)
    assert np.all(g > 0)


def test_reference_matches_cvxpy():
    cp = pytest.importorskip("cvxpy")
    p = RobustPCA(8, 6, 2, 0.1, noise_std=0.05)
    M = p.sample(1, 3).M
    ref = p.reference(M, tol=1e-10)
    L = cp.Variable((8, 6))
    m = M[0].numpy()
    prob = cp.Problem(cp.Minimize(cp.normNuc(L) + p.lam * cp.sum(cp.abs(m - L))))
    prob.solve(solver=cp.CLARABEL)
    assert prob.status == "optimal"
    assert abs(prob.value - float(ref.objective[0])) < 1e-6 * abs(prob.value)
    assert np.abs(L.value - ref.L[0].numpy()).max() < 1e-4


def test_exact_recovery_easy_instance():
    p = RobustPCA(40, 40, 2, 0.05)
    b = p.sample(2, 1)
    ref = p.reference(b.M)
    err = torch.linalg.matrix_norm(ref.L - b.L) / torch.linalg.matrix_norm(b.L)
    assert torch.all(err < 1e-4)
    err_s = torch.linalg.matrix_norm(ref.S - b.S) / torch.linalg.matrix_norm(b.S)
    assert torch.all(err_s < 1e-4)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"n1": 0}, "n1"), ({"n2": -2}, "n2"), ({"n1": 2.5}, "n1"), ({"rank": 0}, "rank"),
        ({"rank": 7}, "rank"), ({"alpha": -0.1}, "alpha"), ({"alpha": 1.0}, "alpha"),
        ({"alpha": float("nan")}, "alpha"), ({"noise_std": -1.0}, "noise_std"), ({"seed": -1}, "seed"),
        ({"condition": 0.5}, "condition"), ({"rank": 1, "condition": 2.0}, "condition"),
        ({"magnitude": (2.0, 1.0)}, "magnitude"), ({"magnitude": 3.0}, "magnitude"),
    ],
)
def test_rejects_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word) as info:
        RobustPCA(**{"n1": 8, "n2": 6, "rank": 2, "alpha": 0.1, **kwargs})
    assert "\n" not in str(info.value)


def test_rejects_bad_calls():
    p = RobustPCA(8, 6, 2, 0.1)
    with pytest.raises(ValueError, match="batch_size"):
        p.sample(0)
    with pytest.raises(ValueError, match="M"):
        p.reference(torch.zeros(1, 6, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="lam"):
        p.reference(p.sample(1, 0).M, lam=-1.0)
    with pytest.raises(ValueError, match="rank"):
        rpca_constants(np.zeros((1, 3, 2)), np.zeros((1, 3, 2)), 3)
