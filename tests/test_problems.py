"""Problem families: validation, seeded sampling, exact constants and certified references."""
import numpy as np
import pytest
import torch

from unfoldkit.unrolled.problems import (
    LeastSquares,
    SparseRecovery,
    WorstCaseHuber,
    lasso_duality_gap,
    make_problem,
)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"m": 0}, "m"), ({"n": -3}, "n"), ({"m": 2.5}, "m"), ({"sparsity": 0.0}, "sparsity"),
        ({"sparsity": 1.5}, "sparsity"), ({"sparsity": float("nan")}, "sparsity"), ({"lam": 0}, "lam"),
        ({"lam": float("inf")}, "lam"), ({"snr_db": float("nan")}, "snr_db"), ({"seed": -1}, "seed"),
    ],
)
def test_sparse_rejects_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        SparseRecovery(**{"m": 5, "n": 8, **kwargs})


def test_least_squares_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kappa"):
        LeastSquares(m=5, n=4, kappa=0.5)
    with pytest.raises(ValueError, match="m >= n"):
        LeastSquares(m=3, n=4, kappa=2.0)
    with pytest.raises(ValueError, match="L"):
        LeastSquares(m=5, n=4, kappa=2.0, L=-1.0)


def test_bad_batches_are_rejected():
    p = SparseRecovery(m=5, n=8)
    with pytest.raises(ValueError, match="batch_size"):
        p.sample(0)
    with pytest.raises(ValueError, match="rng"):
        p.sample(2, rng="seed")
    y = torch.zeros(3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"y must have shape \(batch, 5\)"):
        p.reference(y)
    y = torch.full((2, 5), float("nan"), dtype=torch.float64)
    with pytest.raises(ValueError, match="NaN"):
        p.reference(y)
    with pytest.raises(ValueError, match="unknown problem family"):
        make_problem("nope")


def test_sampling_is_seeded_and_batched():
    p = SparseRecovery(m=10, n=20, sparsity=0.2, snr_db=20.0, seed=3)
    a, b = p.sample(7, rng=11), p.sample(7, rng=np.random.default_rng(11))
    assert torch.equal(a.y, b.y) and torch.equal(a.x, b.x)
    assert a.y.shape == (7, 10) and a.x.shape == (7, 20) and a.y.dtype == torch.float64
    c = p.sample(7, rng=12)
    assert not torch.equal(a.y, c.y)
    f32 = p.sample(3, rng=0, dtype=torch.float32)
    assert f32.y.dtype == torch.float32
    # the same seed rebuilds the same matrix; params() round-trips through the registry
    q = make_problem(p.name, **p.params())
    assert np.array_equal(p.A, q.A)


def test_sparse_constants_are_exact():
    p = SparseRecovery(m=12, n=30, seed=1)
    np.testing.assert_allclose(np.linalg.norm(p.A, axis=0), 1.0, rtol=1e-12)
    assert p.L == pytest.approx(np.linalg.eigvalsh(p.A.T @ p.A).max(), rel=1e-12)
    assert p.mu == 0.0  # m < n
    g = np.abs(p.A.T @ p.A)
    np.fill_diagonal(g, 0)
    assert p.coherence == pytest.approx(g.max(), rel=1e-12)


def test_snr_is_achieved_on_average():
    p = SparseRecovery(m=200, n=50, sparsity=1.0, snr_db=10.0, seed=0)
    b = p.sample(200, rng=0)
    clean = b.x @ torch.as_tensor(p.A.T)
    noise = b.y - clean
    snr = 10 * torch.log10((clean**2).sum(1) / (noise**2).sum(1))
    # per-sample SNR of a chi-square with 200 d.o.f. ratio: mean within 0.2 dB of the target
    assert abs(float(snr.mean()) - 10.0) < 0.2


def test_least_squares_conditioning_is_exact():
    p = LeastSquares(m=30, n=20, kappa=50.0, L=2.0, seed=4)
    eig = np.linalg.eigvalsh(p.A.T @ p.A)
    assert eig.max() == pytest.approx(2.0, rel=1e-10)
    assert eig.min() == pytest.approx(2.0 / 50.0, rel=1e-10)
    assert p.L == 2.0 and p.mu == pytest.approx(0.04) and p.kappa == pytest.approx(50.0)


def test_lasso_references_agree_and_are_certified():
    p = SparseRecovery(m=15, n=30, sparsity=0.2, snr_db=30.0, lam=0.05, seed=2)
    y = p.sample(3, rng=5).y
    ref_cvx = p.reference(y, method="cvxpy")
    ref_cel = p.reference(y, method="celer")
    assert ref_cvx.max_gap < 1e-9 and ref_cel.max_gap < 1e-9
    # both certify F* within their gaps: the objectives agree to the sum of the gaps
    diff = (ref_cvx.objective - ref_cel.objective).abs()
    assert torch.all(diff <= ref_cvx.gap + ref_cel.gap)
    with pytest.raises(ValueError, match="method"):
        p.reference(y, method="magic")


def test_duality_gap_is_an_upper_bound_on_suboptimality():
    p = SparseRecovery(m=10, n=20, lam=0.1, seed=0)
    y = p.sample(2, rng=0).y
    ref = p.reference(y)
    x_bad = ref.x + 0.01
    primal, gap = lasso_duality_gap(p.A, y.numpy(), x_bad.numpy(), p.lam)
    sub = primal - ref.objective.numpy()
    assert np.all(gap >= sub - ref.gap.numpy())
    assert np.all(sub > 0)


def test_least_squares_reference_is_exact():
    p = LeastSquares(m=8, n=12, kappa=None, seed=0)  # rank-deficient: min-norm solution
    y = p.sample(4, rng=1).y
    ref = p.reference(y)
    grad = p.grad(ref.x, y)
    assert float(grad.abs().max()) < 1e-12
    assert ref.max_gap < 1e-20 + 1e-13 * float(ref.objective.abs().max())


def test_huber_worst_case_function():
    h = WorstCaseHuber(n=3, L=2.0, R=1.5, horizon=4, step_factor=0.5)
    b = h.sample(5, rng=0)
    assert torch.allclose(b.y.norm(dim=1), torch.full((5,), 1.5, dtype=torch.float64))
    ref = h.reference(b.y)
    assert torch.equal(ref.x, b.y) and float(ref.objective.abs().max()) == 0.0
    # continuity and gradient at the kink tau = R / (2 N h + 1)
    tau = 1.5 / (2 * 4 * 0.5 + 1)
    d = torch.tensor([[tau, 0.0, 0.0]], dtype=torch.float64)
    y0 = torch.zeros(1, 3, dtype=torch.float64)
    assert float(h.smooth(d, y0)) == pytest.approx(0.5 * 2.0 * tau**2, rel=1e-12)
    assert float(h.grad(d, y0)[0, 0]) == pytest.approx(2.0 * tau, rel=1e-12)
