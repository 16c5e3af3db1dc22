"""unrolled/svd.py: the thin SVD with a NaN-safe backward equals torch's gradient where that one is finite,
and stays finite (and correct) where triplets without gradient share a singular value."""
import pytest
import torch

from unfoldkit.unrolled.rpca import svt
from unfoldkit.unrolled.svd import svd


def _f(fn, X, r=2):
    """A gauge-invariant function of the top-r triplets and every singular value."""
    U, s, Vh = fn(X)
    low = (U[..., :r] * s[..., None, :r]) @ Vh[..., :r, :]
    return low.sin().sum() + 0.3 * ((U[..., :r] @ U[..., :r].mT) ** 2).sum() + (s * s.flip(-1)).sum()


@pytest.mark.parametrize("shape", [(2, 6, 6), (2, 7, 4), (2, 4, 7)])
def test_gradient_equals_torch_and_gradcheck(shape):
    X = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    ours, = torch.autograd.grad(_f(svd, X), X)
    ref, = torch.autograd.grad(_f(lambda Y: torch.linalg.svd(Y, full_matrices=False), X), X)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda Y: _f(svd, Y), (X,))


def test_finite_where_inactive_singular_values_coincide():
    """X = diag(3, 2, 1, 1): SVT at threshold 1.5 keeps the first two triplets; the two dropped singular values
    are exactly equal, where torch's own SVD backward returns NaN everywhere (0 x inf; checked below). Ours is
    finite and matches central finite differences of the SVT output (a smooth function of X here: the kept
    values are separated from the dropped ones by 1, far beyond the step)."""
    X = torch.diag(torch.tensor([3.0, 2.0, 1.0, 1.0], dtype=torch.float64))[None].requires_grad_(True)
    W = torch.randn(1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    U, s, Vh = torch.linalg.svd(X, full_matrices=False)
    plain, = torch.autograd.grad((((U * (s - 1.5).clamp_min(0).unsqueeze(-2)) @ Vh) * W).sum(), X)
    assert not bool(torch.isfinite(plain).all())  # the failure this module exists for
    grad, = torch.autograd.grad((svt(X, 1.5) * W).sum(), X)
    assert bool(torch.isfinite(grad).all())
    fd = torch.zeros_like(grad)
    h = 1e-6
    with torch.no_grad():
        for i in range(4):
            for j in range(4):
                E = torch.zeros_like(X)
                E[0, i, j] = h
                fd[0, i, j] = ((svt(X + E, 1.5) - svt(X - E, 1.5)) * W).sum() / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-7)
