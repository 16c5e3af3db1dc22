"""Classical robust-PCA solvers as step functions (unrolled/rpca.py): exact recovery on easy instances."""
import pytest
import torch

from unfoldkit.unrolled.rpca import (
    altproj_step,
    hard_threshold,
    pcp_admm_step,
    pcp_objective,
    relative_error,
    run_altproj,
    run_pcp,
    run_scaledgd,
    scaledgd_step,
    soft,
    svt,
)


def instance(B=3, n=30, r=2, alpha=0.05, seed=0):
    """L0 = n U V^T (U, V random orthonormal, entries of order 1), S0 with a fraction alpha of entries
    of random sign and magnitude in [10, 20] (well above max |L0|): an easy instance, float64."""
    g = torch.Generator().manual_seed(seed)
    kw = dict(generator=g, dtype=torch.float64)
    L0, S0 = [], []
    for _ in range(B):
        U, _ = torch.linalg.qr(torch.randn(n, r, **kw))
        V, _ = torch.linalg.qr(torch.randn(n, r, **kw))
        L0.append(n * U @ V.T)
        mask = torch.rand(n, n, **kw) < alpha
        S0.append(mask * (10 + 10 * torch.rand(n, n, **kw)) * torch.sign(torch.randn(n, n, **kw)))
    L0, S0 = torch.stack(L0), torch.stack(S0)
    return L0, S0, L0 + S0


def test_svt_matches_explicit_svd():
    X = torch.randn(4, 7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for b in range(4):
        U, s, Vh = torch.linalg.svd(X[b], full_matrices=False)
        expected = U @ torch.diag(torch.clamp(s - 0.8, min=0)) @ Vh
        torch.testing.assert_close(svt(X, 0.8)[b], expected)
    assert torch.equal(hard_threshold(torch.tensor([-2.0, 0.5, 1.0, 3.0]), 1.0), torch.tensor([-2.0, 0, 0, 3.0]))
    torch.testing.assert_close(soft(torch.tensor([-2.0, 0.5, 3.0]), 1.0), torch.tensor([-1.0, 0.0, 2.0]))


def test_pcp_admm_exact_recovery_and_objective_decreases():
    L0, S0, M = instance()
    tr = run_pcp(M, 300)
    assert tr.L.shape == (301, 3, 30, 30) and tr.S.shape == tr.L.shape
    assert float(tr.error_L(L0)[-1].max()) < 1e-5
    assert float(tr.error_S(S0)[-1].max()) < 1e-5
    obj = tr.objective(tr.params["lam"])
    assert bool((obj[-1] < obj[1]).all())  # decreases overall (ADMM is not monotone step by step)
    # the final point is feasible and no worse than the planted pair (PCP recovers it)
    assert bool((obj[-1] <= pcp_objective(L0, S0, tr.params["lam"]) * (1 + 1e-8)).all())
    assert float(relative_error(tr.L[-1] + tr.S[-1], M).max()) < 1e-8


def test_altproj_recovers_L0():
    L0, S0, M = instance()
    tr = run_altproj(M, 2, 60)
    assert float(tr.error_L(L0)[-1].max()) < 1e-6
    assert float(tr.error_S(S0)[-1].max()) < 1e-6


def test_scaledgd_recovers_L0():
    L0, S0, M = instance()
    tr = run_scaledgd(M, 2, 100, zeta0=float(L0.abs().max()), decay=0.8, eta=0.5)
    assert float(tr.error_L(L0)[-1].max()) < 1e-6
    assert len(tr.params["zeta"]) == 101 and len(tr.params["eta"]) == 100


def test_batched_equals_per_sample():
    L0, S0, M = instance()
    runs = [lambda m: run_pcp(m, 40), lambda m: run_altproj(m, 2, 15, beta=0.2),
            lambda m: run_scaledgd(m, 2, 15, zeta0=5.0, decay=0.8, eta=0.5)]
    for run in runs:
        batched = run(M)
        for b in range(M.shape[0]):
            single = run(M[b:b + 1])  # per-instance defaults (PCP's penalty too): the batch changes nothing
            torch.testing.assert_close(single.L[:, 0], batched.L[:, b], atol=1e-9, rtol=1e-9)
            torch.testing.assert_close(single.S[:, 0], batched.S[:, b], atol=1e-9, rtol=1e-9)


def test_steps_are_the_solver_iterations():
    L0, S0, M = instance(B=2)
    tr = run_pcp(M, 2)
    z = torch.zeros_like(M)
    mu = torch.tensor(tr.params["mu"], dtype=M.dtype)[:, None, None]  # per-instance penalties (B, 1, 1)
    L1, S1, Y1 = pcp_admm_step(z, z, z, M, tr.params["lam"], mu)
    torch.testing.assert_close(tr.L[1], L1)
    torch.testing.assert_close(tr.S[1], S1)
    L, S = altproj_step(L0, M, 2, 1.0)  # at the truth the step is a fixed point
    torch.testing.assert_close(L, L0)
    torch.testing.assert_close(S, S0)
    U, s, Vh = torch.linalg.svd(L0)
    Uf, Vf = U[..., :2] * s[..., None, :2].sqrt(), Vh[..., :2, :].mT * s[..., None, :2].sqrt()
    U1, V1, S = scaledgd_step(Uf, Vf, M, 1.0, 0.5, threshold=hard_threshold)  # fixed point with HT
    torch.testing.assert_close(U1 @ V1.mT, L0)


@pytest.mark.parametrize("call, match", [
    (lambda M: run_pcp(M[0], 5), "shape"),
    (lambda M: run_pcp(M, -1), "num_steps"),
    (lambda M: run_pcp(M, 5, mu=0.0), "mu"),
    (lambda M: run_altproj(M, 0, 5), "rank"),
    (lambda M: run_altproj(M, 31, 5), "rank"),
    (lambda M: run_scaledgd(M, 2.5, 5, 1.0), "rank"),
    (lambda M: run_scaledgd(M, 2, 5, 1.0, eta=-0.5), "eta"),
    (lambda M: run_scaledgd(M, 2, 5, 0.0), "zeta0"),
    (lambda M: run_scaledgd(M, 2, 5, 1.0, decay=1.5), "decay"),
    (lambda M: run_altproj(M, 2, 5, beta=-1.0), "beta"),
])
def test_one_line_errors(call, match):
    _, _, M = instance(B=1)
    with pytest.raises(ValueError, match=match) as info:
        call(M)
    assert "\n" not in str(info.value)


def test_rpca_ista_is_monotone_and_reaches_a_fixed_point():
    """ISTA on (1/2)||M - L - S||^2 + lam_L ||L||_* + lam_S ||S||_1 with step 1/2 = 1/Lip (Lip = 2): the
    objective never increases (Beck & Teboulle 2009, Lemma 2.3; slack 1e-12 relative for float64 round-off),
    and the iterates approach a fixed point of the prox-gradient map, i.e. a minimizer."""
    from unfoldkit.unrolled.rpca import rpca_ista_step, run_rpca_ista

    L0, S0, M = instance(B=2)
    tr = run_rpca_ista(M, 400, lam_L=2.0, lam_S=0.3)

    def F(L, S):
        return 0.5 * ((M - L - S) ** 2).sum((-2, -1)) + pcp_objective(L, S, 0.3 / 2.0) * 2.0

    values = torch.stack([F(tr.L[k], tr.S[k]) for k in range(tr.L.shape[0])])
    assert bool((values[1:] <= values[:-1] * (1 + 1e-12)).all())
    L1, S1 = rpca_ista_step(tr.L[-1], tr.S[-1], M, 2.0, 0.3, 0.5)
    assert float(relative_error(L1, tr.L[-1]).max()) < 1e-6
    assert tr.params["step"] == [0.5] * 400 and tr.algorithm == "rpca-ista"
    with pytest.raises(ValueError, match=r"step must lie in \(0, 1/2\]"):
        run_rpca_ista(M, 3, step=0.6)


def test_pcp_admm_reaches_the_certified_reference_on_noisy_data():
    """With dense noise PCP does not recover L0; the classical solver (default per-instance penalty) must reach
    the PCP minimiser instead. After 500 iterations (measured: relative objective error <= 1.4e-10, iterate
    error <= 1.7e-9 on this instance) the objective of (L_K, M - L_K) is within 1e-8 relative of the
    reference's, minus its certified gap, and L_K within 1e-6 of the reference's L."""
    from unfoldkit.unrolled.problems.rpca import RobustPCA

    p = RobustPCA(20, 20, 2, 0.1, noise_std=0.3, seed=1)
    b = p.sample(3, 0)
    ref = p.reference(b.M, tol=1e-10)
    L = run_pcp(b.M, 500).L[-1]
    obj = pcp_objective(L, b.M - L, p.lam)
    lower = ref.objective - ref.gap
    assert bool((obj >= lower * (1 - 1e-12)).all())  # no feasible point beats the certified optimum
    assert bool(((obj - ref.objective) / ref.objective <= 1e-8).all())
    assert float(relative_error(L, ref.L).max()) < 1e-6
