"""The chain-guided smoothed-pattern ascent of the Lipschitz lower bound (theory/lipschitz/steer.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from unfoldkit.theory.lipschitz import NoFiniteConstant, NotCovered, chain_of, lipschitz_lower_bound
from unfoldkit.theory.lipschitz.lower import _jacobian_norms
from unfoldkit.theory.lipschitz.steer import TorchChain, rank_starts, smoothed_jvp_norms, steer
from unfoldkit.unrolled.models import MODELS, Lista, ListaCPSS
from unfoldkit.unrolled.problems.sparse import SparseRecovery
from unfoldkit.unrolled.training.trainer import train

K = 3


def _model(family: str):
    p = SparseRecovery(m=8, n=16, seed=0)
    kw = {"hidden": 4} if family == "ista-correction" else {}
    model = MODELS[family].from_classical(p, K, dtype="float64", **kw)
    gen = torch.Generator().manual_seed(3)
    shift = 0.1 if family == "ista-correction" else 0.0   # a ReLU correction with active units
    with torch.no_grad():  # off the classical values
        for name, q in model.named_parameters():
            if "threshold" in name:
                q.mul_(2.0)
            elif "rho" not in name:
                q.add_(0.05 * torch.randn(q.shape, generator=gen, dtype=q.dtype) + shift)
    return p, model


def _covered(family: str):
    p, model = _model(family)
    try:
        return p, model, chain_of(model)
    except (NoFiniteConstant, NotCovered) as err:
        pytest.skip(f"{family}: no chain ({err})")


@pytest.mark.parametrize("family", sorted(MODELS))
def test_exact_pattern_is_the_models_jvp(family: str) -> None:
    """tau = 0: ||C_k J_{t_k}(y) v|| / ||v|| from the chain equals the model's own ||J_k(y) v|| / ||v|| (forward
    AD through the model), every layer, at inputs with mixed activation patterns; float64 round-off only."""
    p, model, chain = _covered(family)
    rng = np.random.default_rng(1)
    y = torch.as_tensor(p.sample(5, rng).y.numpy() * rng.uniform(0.3, 3.0, (5, 1)), dtype=torch.float64)
    v = torch.as_tensor(rng.standard_normal(y.shape), dtype=torch.float64)
    with torch.no_grad():
        _, tangent = torch.func.jvp(lambda a: model(a, trajectory=True)[1:], (y,), (v,))
    want = (torch.linalg.vector_norm(tangent, dim=-1) / torch.linalg.vector_norm(v, dim=-1)).numpy()  # (K, B)
    tc = TorchChain(chain)
    layers = torch.arange(1, K + 1).repeat_interleave(5)
    got = smoothed_jvp_norms(tc, y.repeat(K, 1), v.repeat(K, 1), layers, 0.0).reshape(K, 5).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)


def test_smoothing_tends_to_the_exact_pattern() -> None:
    """As tau -> 0 the smooth pattern sigmoid(margin / (tau theta)) tends to the step: with every margin at
    least 1e-3 theta, tau = 1e-6 gives slopes within exp(-1000) of 0/1, so the values agree to round-off;
    a large tau moves them (the smoothing is not a no-op)."""
    p, model, chain = _covered("lista")
    tc = TorchChain(chain)
    y = p.sample(64, np.random.default_rng(0)).y.double() * 2.0
    v = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    layers = torch.full((64,), K)
    # keep the rows whose margins are all at least 1e-3 theta (v_t is the chain's own pre-activation)
    s = torch.zeros(64, chain.stages[0].state_dim, dtype=torch.float64)
    ok = torch.ones(64, dtype=torch.bool)
    for st in chain.stages:
        pre = s @ torch.as_tensor(st.P).T + y @ torch.as_tensor(st.Q).T
        theta = torch.as_tensor(st.theta)
        ok &= ((pre.abs() - theta).abs() >= 1e-3 * theta).all(1)
        s = torch.sign(pre) * torch.clamp(pre.abs() - theta, min=0.0) @ torch.as_tensor(st.R).T
    assert int(ok.sum()) >= 10
    exact = smoothed_jvp_norms(tc, y[ok], v[ok], layers[ok], 0.0)
    np.testing.assert_allclose(smoothed_jvp_norms(tc, y[ok], v[ok], layers[ok], 1e-6), exact, rtol=1e-12)
    assert float((smoothed_jvp_norms(tc, y[ok], v[ok], layers[ok], 1.0) - exact).abs().max()) > 1e-3


def test_steer_hands_over_only_better_or_equal_points() -> None:
    """Each visited row is its best iterate by the exact-pattern value ||J(y) v|| / ||v||, never below its start's,
    so the model's exact ||J(y)|| (>= ||J(y) v|| / ||v||) at the handed-over points is >= each start's value."""
    p, model, chain = _covered("lista")
    tc = TorchChain(chain)
    y0 = p.sample(8, np.random.default_rng(4)).y.double()
    v0 = torch.randn(y0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    layers = torch.full((8,), K)
    start = smoothed_jvp_norms(tc, y0, v0, layers, 0.0)
    seen = []
    n = steer(chain, y0, v0, layers, 5, seen.append)
    assert n == 8 and len(seen) == 1
    jac = _jacobian_norms(lambda a: model(a, trajectory=True)[1:], seen[0], K, 16, True,
                          np.random.default_rng(0), vectors=False)[0][-1]
    assert torch.all(jac >= start * (1 - 1e-12))


def test_rank_starts_estimates_the_jacobian_norm() -> None:
    """Power iteration on the chain's J^T J: each estimate is ||J v|| / ||v|| <= ||J|| (attained direction) and,
    after 200 iterations on these 16 x 8 Jacobians, within 1e-6 of ||J|| on rows with sigma_2 < 0.97 sigma_1
    (the direction's tangent shrinks like (sigma_2 / sigma_1)^(2 iters) <= 5e-6, the norm's error like its
    square); each layer gets its best points."""
    p, model, chain = _covered("lista")
    pool = p.sample(12, np.random.default_rng(5)).y.double() * 1.5
    starts, dirs, layers = rank_starts(chain, pool, 3, iters=200, seed=0)
    assert starts.shape == (3 * K, 8) and layers.tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    est = smoothed_jvp_norms(TorchChain(chain), starts, dirs, layers, 0.0)
    jac = torch.stack([torch.autograd.functional.jacobian(lambda a: model(a[None], trajectory=True)[int(k)][0], y)
                       for y, k in zip(starts, layers)])
    sv = torch.linalg.svdvals(jac)
    assert torch.all(est <= sv[:, 0] * (1 + 1e-12))
    gapped = sv[:, 1] < 0.97 * sv[:, 0]
    assert int(gapped.sum()) >= 3, (sv[:, 1] / sv[:, 0]).tolist()
    np.testing.assert_allclose(est[gapped], sv[gapped, 0], rtol=1e-6)
    full = torch.stack([torch.linalg.matrix_norm(torch.autograd.functional.jacobian(
        lambda a: model(a[None], trajectory=True)[k][0], y), ord=2) for k in range(1, K + 1) for y in pool])
    for k in range(K):  # the chosen three are among the layer's best four of the twelve
        best4 = full.reshape(K, 12)[k].topk(4).values[-1]
        assert torch.all(sv[3 * k:3 * k + 3, 0] >= best4 * (1 - 1e-6))


@pytest.fixture(scope="module")
def trained() -> Lista:
    """A briefly trained LISTA (its thresholds and weights off ISTA's), where the plain search stalls."""
    p = SparseRecovery(m=20, n=40, seed=0)
    model = Lista.from_classical(p, 8)
    torch.manual_seed(0)
    train(model, p, "end-to-end", epochs=4, steps_per_epoch=15, batch_size=64, lr=1e-3, val_size=128, seed=0,
          progress=False)
    return model.double()


def test_steering_only_adds_attained_points(trained: Lista) -> None:
    """The random starts and the finite-difference ascent draw the same numbers with or without steering,
    so the steered Jacobian values are >= the unsteered ones at every layer; and they are attained: the
    model's exact Jacobian norm at each reported argmax is the reported value."""
    off = lipschitz_lower_bound(trained, starts=8, ascent_steps=10, steer_steps=0, seed=0)
    on = lipschitz_lower_bound(trained, starts=8, ascent_steps=10, steer_steps=20, steer_starts=4, seed=0)
    assert off.steered == 0 and on.steered > 0
    assert np.all(on.jacobian >= off.jacobian)
    assert np.any(on.jacobian > off.jacobian * (1 + 1e-6))       # it finds something the plain search missed
    for k in range(8):
        y = torch.as_tensor(on.argmax[k][None], dtype=torch.float64)
        jac = torch.autograd.functional.jacobian(lambda a: trained(a, trajectory=True)[k + 1], y)[0, :, 0]
        assert abs(float(torch.linalg.matrix_norm(jac, ord=2)) - on.jacobian[k]) <= 1e-10 * on.jacobian[k]


def test_no_steering_without_a_chain() -> None:
    """A black-box callable and a discontinuous model (support selection) are searched without it."""
    p = SparseRecovery(m=8, n=16, seed=0)
    a = torch.as_tensor(np.random.default_rng(0).standard_normal((16, 8)))
    black = lipschitz_lower_bound(lambda y: torch.relu(y @ a.T), input_dim=8, starts=4, ascent_steps=2)
    ss = lipschitz_lower_bound(ListaCPSS(p, 2, percent=5.0, max_percent=10.0), starts=4, ascent_steps=2)
    assert black.steered == 0 and ss.steered == 0


def test_steer_arguments() -> None:
    p = SparseRecovery(m=8, n=16, seed=0)
    with pytest.raises(ValueError, match="steer_steps"):
        lipschitz_lower_bound(Lista.from_classical(p, 2), steer_steps=-1)
    with pytest.raises(ValueError, match="steer_starts"):
        lipschitz_lower_bound(Lista.from_classical(p, 2), steer_starts=0)
    with pytest.raises(ValueError, match="steer_starts"):  # checked even where no steering would run
        lipschitz_lower_bound(lambda y: y, input_dim=3, steer_starts=0)
