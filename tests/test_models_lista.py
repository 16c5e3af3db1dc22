"""LISTA family: the coupling W2 = I - W1 A, support selection, ALISTA; and the new step functions."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from unfoldkit.unrolled import LeastSquares, SparseRecovery, run_ista
from unfoldkit.unrolled.models import Alista, Lista, ListaCP, ListaCPSS, frobenius_weight, generalized_coherence
from unfoldkit.unrolled.operators import (
    soft_threshold,
    soft_threshold_ss,
    soft_threshold_top_count,
    top_percent_mask,
)
from unfoldkit.unrolled.steps import lista_cp_step, lista_step

K = 6


@pytest.fixture(scope="module")
def sparse() -> SparseRecovery:
    return SparseRecovery(m=15, n=30, sparsity=0.15, lam=0.05, seed=2)


def _train(model: torch.nn.Module, problem: SparseRecovery, steps: int = 5, lr: float = 1e-2) -> None:
    """A few Adam steps on a dummy multi-layer loss (moves every weight away from its initial value)."""
    batch = problem.sample(32, rng=9, dtype=model.model_dtype)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        traj = model(batch.y, trajectory=True)
        loss = ((traj[1:] - batch.x) ** 2).sum(dim=-1).mean() + traj[-1].abs().sum(dim=-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def _lista_form(model, y: torch.Tensor) -> torch.Tensor:
    """Re-run a LISTA-family model as plain LISTA, x+ = shrink(W1^k y + W2^k x), from its layer_weights."""
    x = torch.zeros(y.shape[0], model.problem.n, dtype=y.dtype)
    out = [x]
    percents = model.schedule().get("percent", np.zeros(model.num_layers))
    for k in range(model.num_layers):
        w1, w2 = model.layer_weights(k)
        shrink = partial(soft_threshold_ss, percent=float(percents[k]))
        x = lista_step(x, y, w1, w2, model.threshold[k], shrink=shrink)
        out.append(x)
    return torch.stack(out)


# ---- step functions ----------------------------------------------------------------------------

def test_ista_is_a_lista_step_and_a_lista_cp_step(sparse) -> None:
    """The classical ISTA is expressible with both new steps (W1 = A^T/L, W2 = I - A^T A/L; W = A/L)."""
    y = sparse.sample(4, rng=0).y
    ref = run_ista(sparse, y, K).iterates
    a = torch.as_tensor(sparse.A)
    g = 1.0 / sparse.L
    w1, w2 = g * a.T, torch.eye(sparse.n, dtype=a.dtype) - g * a.T @ a
    x1 = x2 = torch.zeros(4, sparse.n, dtype=torch.float64)
    for k in range(K):
        x1 = lista_step(x1, y, w1, w2, g * sparse.lam)
        x2 = lista_cp_step(x2, y, a, a, g * sparse.lam, step=g)
        torch.testing.assert_close(x1, ref[k + 1], rtol=0, atol=1e-12)
        torch.testing.assert_close(x2, ref[k + 1], rtol=0, atol=1e-13)
    # W2 = None is the x = 0 layer
    torch.testing.assert_close(lista_step(torch.zeros(4, sparse.n, dtype=torch.float64), y, w1, None, 0.01),
                               soft_threshold(y @ w1.T, 0.01), rtol=0, atol=0)


# ---- coupling -----------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [ListaCP, ListaCPSS, Alista])
@pytest.mark.parametrize("tied", [False, True])
def test_coupling_holds_exactly_before_and_after_training(cls, tied: bool, sparse) -> None:
    kwargs = {} if cls is Alista else {"tied": tied}
    if cls is Alista and tied:
        pytest.skip("ALISTA's W is always shared")
    model = cls(sparse, K, dtype=torch.float64, **kwargs)
    assert np.array_equal(model.coupling_residuals(), np.zeros(K))
    before = [w.detach().clone() for w in model.parameters()]
    _train(model, sparse)
    assert any(not torch.equal(b, a) for b, a in zip(before, model.parameters())), "training moved nothing"
    assert np.array_equal(model.coupling_residuals(), np.zeros(K)), "W2 = I - W1 A exactly, by construction"
    for k in range(K):
        w1, w2 = model.layer_weights(k)
        a = torch.as_tensor(sparse.A)
        assert torch.equal(w2, torch.eye(sparse.n, dtype=torch.float64) - w1 @ a)
    # and the coupled layer computes exactly that LISTA layer (up to round-off)
    y = sparse.sample(8, rng=3).y
    with torch.no_grad():
        torch.testing.assert_close(model(y, trajectory=True), _lista_form(model, y), rtol=0, atol=1e-12)


def test_coupling_in_float32_after_training(sparse) -> None:
    model = ListaCPSS(sparse, K)
    _train(model, sparse, steps=3)
    assert np.array_equal(model.coupling_residuals(), np.zeros(K))


@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(1e-3, 0.5))
def test_coupled_layer_equals_lista_layer_for_any_weights(seed: int, scale: float) -> None:
    """x + W^T (y - A x) = W1 y + W2 x with W1 = W^T, W2 = I - W^T A, for arbitrary W (hypothesis)."""
    problem = SparseRecovery(m=6, n=10, seed=seed % 1000)
    model = ListaCP(problem, 3, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.W.add_(scale * torch.randn(model.W.shape, generator=gen, dtype=torch.float64))
    y = problem.sample(3, rng=seed).y
    with torch.no_grad():
        torch.testing.assert_close(model(y, trajectory=True), _lista_form(model, y), rtol=1e-10, atol=1e-10)
    assert np.array_equal(model.coupling_residuals(), np.zeros(3))


def test_lista_is_uncoupled_after_training(sparse) -> None:
    model = Lista(sparse, K, dtype=torch.float64)
    assert model.coupling_residuals().max() < 1e-12  # ISTA init: coupled up to round-off
    _train(model, sparse)
    res = model.coupling_residuals()
    assert res[0] == 0.0  # layer 0 sees x0 = 0: its W2 is taken coupled
    assert np.all(res[1:] > 1e-6), "free W1, W2 leave the coupled set"
    y = sparse.sample(8, rng=3).y
    with torch.no_grad():
        torch.testing.assert_close(model(y, trajectory=True), _lista_form(model, y), rtol=0, atol=1e-12)


# ---- LISTA tied / untied ------------------------------------------------------------------------

def test_lista_tied_and_untied_shapes(sparse) -> None:
    m, n = sparse.m, sparse.n
    untied = {i.name: i for i in Lista(sparse, K).parameter_info()}
    assert untied["W1"].shape == (K, n, m) and not untied["W1"].tied
    assert untied["W2"].shape == (K - 1, n, n) and not untied["W2"].tied
    tied = {i.name: i for i in Lista(sparse, K, tied=True).parameter_info()}
    assert tied["W1"].shape == (n, m) and tied["W1"].tied and tied["W2"].tied
    assert "W2" not in {i.name for i in Lista(sparse, 1).parameter_info()}
    cp = {i.name: i for i in ListaCP(sparse, K, tied=True).parameter_info()}
    assert cp["W"].shape == (m, n) and cp["W"].tied and not cp["threshold"].tied
    y = sparse.sample(3, rng=1).y
    ref = run_ista(sparse, y, K).iterates
    for model in (Lista.from_classical(sparse, K, tied=True, dtype="float64"),
                  ListaCP.from_classical(sparse, K, tied=True, dtype="float64")):
        with torch.no_grad():
            torch.testing.assert_close(model(y, trajectory=True), ref, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="tied"):
        Lista(sparse, 3, tied="yes")
    with pytest.raises(ValueError, match="one value"):
        ListaCP(sparse, 3, tied=True, step=[0.1, 0.2, 0.3])


def test_lista_on_least_squares_has_zero_thresholds() -> None:
    problem = LeastSquares(m=12, n=8, seed=0)
    model = Lista.from_classical(problem, 4, dtype="float64")
    assert np.array_equal(model.schedule()["threshold"], np.zeros(4))
    y = problem.sample(2, rng=0).y
    with torch.no_grad():
        torch.testing.assert_close(model(y, trajectory=True), run_ista(problem, y, 4).iterates, rtol=0, atol=1e-12)


# ---- support selection --------------------------------------------------------------------------

def _reference_ss(v: np.ndarray, theta: float, percent: float) -> np.ndarray:
    """The authors' shrink_ss in numpy: keep where |v| > theta and |v| > percentile(|v|, 100 - p, nearest)."""
    mags = np.abs(v)
    cut = np.percentile(mags, 100.0 - percent, axis=-1, method="nearest", keepdims=True)
    keep = (mags > theta) & (mags > cut)
    return np.where(keep, v, np.sign(v) * np.maximum(mags - theta, 0.0))


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 60), percent=st.floats(0.0, 100.0),
       theta=st.floats(0.0, 1.5))
def test_support_selection_matches_the_authors_operator(seed: int, n: int, percent: float, theta: float) -> None:
    v = np.random.default_rng(seed).standard_normal((4, n))
    got = soft_threshold_ss(torch.as_tensor(v), theta, percent).numpy()
    np.testing.assert_array_equal(got, _reference_ss(v, theta, percent))
    count = top_percent_mask(torch.as_tensor(v), percent).sum(dim=-1)
    expected = 0 if percent == 0 else n - 1 - int(np.rint((100.0 - percent) / 100.0 * (n - 1)))
    assert bool((count == expected).all())  # distinct magnitudes: exactly that many selected


def test_support_selection_basics() -> None:
    v = torch.tensor([[3.0, -0.2, 1.0, -2.0, 0.05, 0.5, -0.7, 0.1, 0.3, -0.4]])
    assert torch.equal(soft_threshold_ss(v, 0.25, 0.0), soft_threshold(v, 0.25))
    # 20 % of 10 entries: the cut-off is the sorted index round(0.8 * 9) = 7, so 2 entries (3.0, -2.0) pass
    out = soft_threshold_ss(v, 0.25, 20.0)
    expected = soft_threshold(v, 0.25)
    expected[0, 0], expected[0, 3] = 3.0, -2.0
    assert torch.equal(out, expected)
    # a selected entry below the threshold is still thresholded
    assert torch.equal(soft_threshold_ss(v, 5.0, 20.0), torch.zeros_like(v))
    # the mask is a constant: d out / d theta is 0 on selected entries, -sign(v) on the others above theta
    theta = torch.tensor(0.25, requires_grad=True)
    soft_threshold_ss(v, theta, 20.0).sum().backward()
    kept_below = (v.abs() > 0.25) & ~torch.isin(v, torch.tensor([3.0, -2.0]))
    assert float(theta.grad) == -float(torch.sign(v)[kept_below].sum())
    for bad in (-1.0, 100.5, float("nan"), "5", None, True):
        with pytest.raises(ValueError, match="percent"):
            soft_threshold_ss(v, 0.1, bad)


def _reference_top_count(v: np.ndarray, theta: float, count: int) -> np.ndarray:
    """The NA-ALISTA authors' soft_threshold(x, theta, p) in numpy: |x| > p-th largest |x| passes unchanged."""
    mags = np.abs(v)
    shrunk = np.sign(v) * np.maximum(mags - theta, 0.0)
    if count == 0:
        return shrunk
    cut = -np.sort(-mags, axis=-1)[..., count - 1:count]
    return np.where(mags > cut, v, shrunk)


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 60), frac=st.floats(0.0, 1.0), theta=st.floats(0.0, 1.5))
def test_top_count_selection_matches_the_na_alista_operator(seed: int, n: int, frac: float, theta: float) -> None:
    v = np.random.default_rng(seed).standard_normal((4, n))
    count = int(round(frac * n))
    got = soft_threshold_top_count(torch.as_tensor(v), theta, count).numpy()
    np.testing.assert_array_equal(got, _reference_top_count(v, theta, count))
    # distinct magnitudes: exactly count - 1 entries pass unchanged, even those below theta
    passed = (np.abs(v) > np.sort(np.abs(v), axis=-1)[..., n - count:n - count + 1]) if count else np.zeros_like(v, bool)
    assert bool((passed.sum(axis=-1) == max(count - 1, 0)).all())


def test_top_count_basics() -> None:
    v = torch.tensor([[3.0, -0.2, 1.0, -2.0, 0.05]])
    assert torch.equal(soft_threshold_top_count(v, 0.25, 0), soft_threshold(v, 0.25))
    out = soft_threshold_top_count(v, 5.0, 3)  # the 3rd largest is 1.0: 3.0 and -2.0 pass, even below theta
    assert torch.equal(out, torch.tensor([[3.0, 0.0, 0.0, -2.0, 0.0]]))
    for bad in (-1, 6, 2.5, True, "3"):
        with pytest.raises(ValueError, match="count"):
            soft_threshold_top_count(v, 0.1, bad)


def test_alista_na_recipe_counts(sparse) -> None:
    from unfoldkit.unrolled.models.alista import na_alista_counts

    np.testing.assert_array_equal(na_alista_counts(50, 16),
                                  [3, 6, 10, 14, 18, 22, 25, 29, 33, 37, 41, 44, 48, 52, 56, 60])
    counts = [1, 2, 3, 4]
    model = Alista(sparse, 4, step=0.5, threshold=0.5, support_counts=counts, dtype=torch.float64)
    np.testing.assert_array_equal(model.schedule()["support_count"], counts)
    assert model.config()["support_counts"] == counts
    y = sparse.sample(6, rng=1).y.to(torch.float64)
    with torch.no_grad():
        x = torch.zeros(6, sparse.n, dtype=torch.float64)
        w = model.weight_matrix
        for k in range(4):  # the authors' loop: x = soft(x - gamma W^T (A x - y), theta, p_k)
            v = x - 0.5 * ((x @ torch.as_tensor(sparse.A).T - y) @ w)
            x = torch.as_tensor(_reference_top_count(v.numpy(), 0.5, counts[k]))
        torch.testing.assert_close(model(y), x, rtol=0, atol=1e-12)
    for bad in ([1, 2, 3], [1, 2, 3, 2.5], [1, 2, 3, sparse.n + 1], [-1, 0, 0, 0], "abcd"):
        with pytest.raises(ValueError, match="support_counts"):
            Alista(sparse, 4, support_counts=bad)


def test_cpss_and_alista_reject_bad_percentages(sparse) -> None:
    for cls in (ListaCPSS, Alista):
        for kw in ({"percent": -0.5}, {"percent": 101.0}, {"max_percent": float("nan")}, {"percent": "1.2"},
                   {"max_percent": 250}):
            with pytest.raises(ValueError, match="percent"):
                cls(sparse, 3, **kw)


def test_cpss_support_selection_changes_the_iterates(sparse) -> None:
    y = sparse.sample(8, rng=4).y
    with torch.no_grad():
        plain = ListaCPSS.from_classical(sparse, K, dtype="float64")(y, trajectory=True)
        ss_model = ListaCPSS.from_classical(sparse, K, dtype="float64", percent=5.0, max_percent=20.0)
        ss = ss_model(y, trajectory=True)
    torch.testing.assert_close(plain, run_ista(sparse, y, K).iterates, rtol=0, atol=1e-12)
    assert not torch.allclose(plain[-1], ss[-1]), "selected entries bypass the threshold"


# ---- ALISTA -------------------------------------------------------------------------------------

def test_alista_uses_the_fixed_analytic_weight(sparse) -> None:
    model = Alista(sparse, K, dtype=torch.float64)
    np.testing.assert_allclose(model.weight_matrix.numpy(), frobenius_weight(sparse.A), rtol=0, atol=1e-14)
    assert not model.weight_matrix.requires_grad
    assert {n for n, _ in model.named_parameters()} == {"gamma", "threshold"}
    assert "weight_matrix" in model.state_dict()
    w0 = model.weight_matrix.clone()
    _train(model, sparse)
    assert torch.equal(model.weight_matrix, w0), "W is not learned"
    assert model.coherence() == pytest.approx(generalized_coherence(frobenius_weight(sparse.A), sparse.A))
    np.testing.assert_array_equal(model.schedule()["percent"], np.minimum(1.2 * np.arange(1, K + 1), 13.0))
    with pytest.raises(ValueError, match="weight"):
        Alista(sparse, 3, weight="learned")


def test_alista_coherence_weight_option() -> None:
    problem = SparseRecovery(m=8, n=16, seed=4)
    lp = Alista(problem, 3, weight="coherence", dtype="float64")
    fro = Alista(problem, 3, dtype="float64")
    assert lp.coherence() <= fro.coherence() + 1e-9
    y = problem.sample(2, rng=0).y
    assert torch.isfinite(lp(y)).all()


@pytest.mark.parametrize("percent", [0.0, 1.2])
def test_lista_cp_family_from_analytic_starts_as_alista(percent):
    """W^k = gamma_k W~ (LISTA-CP / LISTA-CPSS) and W_1^k = gamma_k W~^T, W_2^k = I - W_1^k A (LISTA): the
    untrained ALISTA's iterates with the same weight and support selection (float64, round-off), and the
    LISTA-CP coupling W_2 = I - W_1 A exact by construction (issue 17)."""
    from unfoldkit.unrolled.models import Alista, Lista, ListaCP, ListaCPSS
    from unfoldkit.unrolled.problems import SparseRecovery

    p = SparseRecovery(m=20, n=40, sparsity=0.1, seed=3)
    y = p.sample(8, 0).y
    ref = Alista(p, 5, weight="frobenius", percent=percent, max_percent=5 * percent, dtype="float64")(y, trajectory=True)
    cp = (ListaCPSS.from_analytic(p, 5, dtype="float64", percent=percent, max_percent=5 * percent) if percent
          else ListaCP.from_analytic(p, 5, dtype="float64"))
    torch.testing.assert_close(cp(y, trajectory=True), ref, rtol=1e-10, atol=1e-12)
    for k in range(5):
        w1, w2 = cp.layer_weights(k)
        torch.testing.assert_close(w2, torch.eye(40, dtype=w1.dtype) - w1 @ torch.as_tensor(p.A), rtol=0, atol=1e-14)
    if percent == 0.0:
        lista = Lista.from_analytic(p, 5, dtype="float64")
        torch.testing.assert_close(lista(y, trajectory=True), ref, rtol=1e-10, atol=1e-12)
