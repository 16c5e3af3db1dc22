"""Lipschitz upper bounds (theory/lipschitz: structure, cheap, certificate, bounds) against exact values,
attained ratios and each other."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unfoldkit.theory.lipschitz import (
    NoFiniteConstant,
    chain_of,
    eclipse_fast_bound,
    liplt_bound,
    lipschitz_bounds,
    naive_bound,
    sdp_bound,
)
from unfoldkit.theory.lipschitz import certificate as cert
from unfoldkit.theory.lipschitz.cheap import feedforward_form
from unfoldkit.theory.lipschitz.structure import chain_map
from unfoldkit.unrolled.models import (
    MODELS,
    Alista,
    FistaUnfolded,
    GdUnfolded,
    Lista,
    ListaCPSS,
)
from unfoldkit.unrolled.problems import LeastSquares
from unfoldkit.unrolled.problems.sparse import SparseRecovery

#: relative slack on comparisons between certified values: the bounds carry a 1e-9 (rho) / 1e-12 (norm)
#: relative margin for float64 round-off, far above the 1e-15 backward error of the LAPACK calls involved
REL = 1e-8


def _perturbed(model, scale: float, seed: int):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            if "threshold" in name:
                p.add_(scale * noise.abs())
            elif "rho" not in name:
                p.add_(scale * noise)
    return model


def _problem(m: int = 8, n: int = 16, seed: int = 0) -> SparseRecovery:
    return SparseRecovery(m=m, n=n, seed=seed)


def _fd_ratio(model, y1: torch.Tensor, y2: torch.Tensor) -> np.ndarray:
    """max over pairs of ||x_k(y1) - x_k(y2)|| / ||y1 - y2||, per layer (K,)."""
    with torch.no_grad():
        a, b = model(y1, trajectory=True)[1:], model(y2, trajectory=True)[1:]
    num = torch.linalg.norm(a - b, dim=-1)
    den = torch.linalg.norm(y1 - y2, dim=-1)
    return (num / den).max(dim=1).values.numpy()


@pytest.mark.parametrize("family", sorted(MODELS))
def test_chain_is_the_model(family: str) -> None:
    """chain_of(model) evaluated with its own activations reproduces the model's iterates (float64)."""
    p = _problem()
    kw = {"hidden": 4} if family == "ista-correction" else {}
    model = _perturbed(MODELS[family].from_classical(p, 3, dtype="float64", **kw), 0.05, 1)
    if family == "ista-correction":
        with torch.no_grad():
            for q in model.parameters():
                q.add_(0.1)
    y = p.sample(6, np.random.default_rng(2)).y.double() * 2.0
    with torch.no_grad():
        want = model(y, trajectory=True)[1:].numpy()
    got = chain_map(chain_of(model), y.numpy())
    assert len(got) == 3
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-12)


def test_weighted_l1_fista_chain() -> None:
    p = _problem()
    model = MODELS["ista-weighted-l1"].from_classical(p, 3, solver="fista", dtype="float64")
    y = p.sample(4, np.random.default_rng(0)).y.double()
    with torch.no_grad():
        want = model(y, trajectory=True)[1:].numpy()
    for g, w in zip(chain_map(chain_of(model), y.numpy()), want):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-12)


@pytest.mark.parametrize("family", ["lista", "lista-cp", "alista", "ista-learned-step", "fista-unfolded",
                                    "admm-unfolded"])
def test_exact_on_linear_networks(family: str) -> None:
    """All thresholds 0: every layer is linear, x_k = M_k y. LipLT and the SDP certificate equal ||M_k||_2
    (the neurons are folded into the linear part), the others are >= it."""
    p = LeastSquares(m=8, n=16, kappa=None, seed=0) if family == "fista-unfolded" else _problem()  # LS: prox = identity
    model = _perturbed(MODELS[family].from_classical(p, 4, dtype="float64"), 0.05, 3)
    if hasattr(model, "threshold"):
        with torch.no_grad():
            model.threshold.zero_()
    chain = chain_of(model)
    assert chain.num_neurons == 0
    eye = torch.eye(p.m, dtype=torch.float64)
    with torch.no_grad():
        maps = model(eye, trajectory=True)[1:]  # row i: x_k(e_i) = M_k e_i (no offsets: x_0 = 0, no biases)
    exact = np.array([np.linalg.norm(mk.numpy().T, 2) for mk in maps])
    np.testing.assert_allclose(liplt_bound(chain), exact, rtol=REL)
    sdp = np.array([sdp_bound(chain, k).bound for k in range(1, 5)])
    np.testing.assert_allclose(sdp, exact, rtol=REL)
    for other in (naive_bound(chain), eclipse_fast_bound(chain)):
        assert np.all(other >= exact * (1 - REL))


def test_gd_unfolded_is_linear_and_exact() -> None:
    p = _problem()
    model = GdUnfolded.from_classical(p, 5, dtype="float64")
    r = lipschitz_bounds(model, lower_options={"starts": 2, "ascent_steps": 2})
    np.testing.assert_allclose(r.upper["liplt"], r.upper["sdp"], rtol=REL)
    np.testing.assert_allclose(r.best_upper(), r.lower, rtol=1e-7)  # the Jacobian is constant: attained


def test_eclipse_fast_matches_the_authors_package() -> None:
    """Our ECLipsE-Fast on the chain's feed-forward form equals eclipse-nn's ECLipsE_Fast on the same weights."""
    eclipse_nn = pytest.importorskip("eclipse_nn")
    p = _problem(10, 20)
    for model in (_perturbed(Lista.from_classical(p, 4, dtype="float64"), 0.05, 0),
                  FistaUnfolded.from_classical(p, 3, dtype="float64")):
        chain = chain_of(model)
        weights, readouts = feedforward_form(chain)
        ours = eclipse_fast_bound(chain)
        for k, (t, c) in enumerate(readouts):
            ws = [torch.tensor(w) for w in weights[:t + 1]] + [torch.tensor(c)]
            ref = float(eclipse_nn.ECLipsE_Fast(ws, [0.0] * (t + 1), [1.0] * (t + 1)))
            assert ours[k] == pytest.approx(ref, rel=1e-9)


def test_sdp_structured_matches_cvxpy_and_is_certified() -> None:
    """The chain elimination recomputes the cvxpy optimum (Clarabel) to solver accuracy; the structured
    solver ends within 2 % of it; the monolithic LMI is PSD at the reported rho; SDP <= every cheap bound."""
    p = _problem(6, 12)
    model = _perturbed(Lista.from_classical(p, 3, dtype="float64"), 0.05, 4)
    chain = chain_of(model)
    ref = sdp_bound(chain, 3, solver="clarabel")
    assert ref.evidence["status"] == "optimal"
    assert abs(ref.evidence["relative_gap_to_solver"]) < 1e-5
    assert ref.evidence["lmi_min_eigenvalue"] >= 0
    ours = sdp_bound(chain, 3)
    assert ref.bound <= ours.bound * (1 + 1e-5)
    assert ours.bound <= 1.02 * ref.bound
    for cheap in (naive_bound, liplt_bound, eclipse_fast_bound):
        assert ref.bound <= cheap(chain)[-1] * (1 + REL)
    assert ours.bound <= eclipse_fast_bound(chain)[-1] * (1 + REL)  # ECLipsE's multipliers are its start
    assert ours.bound <= naive_bound(chain)[-1] * (1 + REL)


def test_certificate_rejects_bad_multipliers() -> None:
    p = _problem(6, 12)
    chain = chain_of(Lista.from_classical(p, 2, dtype="float64"))
    c = chain.readouts[-1]
    with pytest.raises(cert.CertificateError, match="negative definite"):
        cert.certificate_value(chain, c, [np.zeros(12), np.zeros(12)])
    with pytest.raises(cert.CertificateError, match=">= 0"):
        cert.certificate_value(chain, c, [np.full(12, -1.0), np.ones(12)])


def test_solver_failure_falls_back_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):
        raise cert.CertificateError("cvxpy/CLARABEL returned status infeasible")

    monkeypatch.setattr(cert, "cvxpy_multipliers", boom)
    model = Lista.from_classical(_problem(6, 12), 2, dtype="float64")
    with pytest.warns(RuntimeWarning, match="falling back to the best cheap bound"):
        r = lipschitz_bounds(model, sdp_solver="clarabel", lower_options={"starts": 2, "ascent_steps": 2})
    assert np.all(np.isnan(r.upper["sdp"]))
    assert np.all(np.isfinite(r.best_upper()))
    assert r.best_method()[-1] != "sdp"
    assert "failed" in r.evidence["sdp"][2]


@pytest.mark.parametrize("model_fn", [
    lambda p: ListaCPSS(p, 3),
    lambda p: Alista(p, 3, weight="dictionary"),
    lambda p: Alista(p, 3, weight="dictionary", percent=0.0, max_percent=0.0, support_counts=[1, 2, 3]),
])
def test_discontinuous_models_have_no_finite_constant(model_fn) -> None:
    model = model_fn(_problem())
    with pytest.raises(NoFiniteConstant, match="discontinuous"):
        chain_of(model)
    r = lipschitz_bounds(model, lower_options={"starts": 2, "ascent_steps": 2})
    assert not r.finite and not r.certified and r.local
    assert r.upper == {}
    assert np.all(np.isinf(r.best_upper()))
    assert "discontinuous" in r.reason
    assert r.to_dict()["best_upper"] == ["inf"] * 3


def test_negative_threshold_is_discontinuous() -> None:
    model = Lista.from_classical(_problem(), 2, dtype="float64")
    with torch.no_grad():
        model.threshold[1] = -0.01
    with pytest.raises(NoFiniteConstant, match="negative"):
        chain_of(model)


def test_support_selection_off_is_continuous() -> None:
    p = _problem()
    for model in (ListaCPSS.from_classical(p, 3), Alista(p, 3, percent=0.0, max_percent=0.0)):
        assert chain_of(model).num_layers == 3


def test_black_box_callable_gets_lower_bound_only() -> None:
    m = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    r = lipschitz_bounds(lambda y: torch.relu(y @ m.T), input_dim=4,
                         lower_options={"starts": 4, "ascent_steps": 5})
    assert not r.certified and r.upper == {} and r.num_layers == 1
    assert "black box" in r.reason
    assert r.lower[0] <= np.linalg.norm(m.numpy(), 2) * (1 + 1e-9)


def test_bad_arguments() -> None:
    model = Lista.from_classical(_problem(), 2)
    with pytest.raises(ValueError, match="unknown Lipschitz method"):
        lipschitz_bounds(model, methods=["exact"])
    with pytest.raises(ValueError, match="sdp_solver"):
        lipschitz_bounds(model, sdp_solver="mosek")
    with pytest.raises(ValueError, match="sdp_layers"):
        lipschitz_bounds(model, sdp_layers=[0], lower=False)


FAMILIES = ["lista", "lista-cp", "alista", "ista-learned-step", "fista-unfolded", "admm-unfolded",
            "ista-correction"]


@settings(deadline=None)
@given(family=st.sampled_from(FAMILIES), seed=st.integers(0, 2**16), scale=st.floats(0.0, 0.3),
       spread=st.floats(0.05, 20.0))
def test_every_upper_bound_dominates_attained_ratios(family: str, seed: int, scale: float, spread: float) -> None:
    """Property: on generated models and inputs, every certified upper bound is >= the attained lower bound
    and >= every finite-difference ratio, per layer. Tolerance 1e-9 relative: both sides are float64 values
    of the same map (round-off ~1e-14 of the iterates), so a real violation is a wrong bound."""
    p = _problem(6, 10, seed % 5)
    kw = {"hidden": 3, "seed": seed % 7} if family == "ista-correction" else {}
    model = _perturbed(MODELS[family].from_classical(p, 3, dtype="float64", **kw), scale, seed)
    if family == "ista-correction":
        with torch.no_grad():
            for q in model.parameters():
                q.add_(scale)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        r = lipschitz_bounds(model, sdp_iters=10, lower_options={"starts": 3, "ascent_steps": 5}, seed=seed)
    if not r.finite:  # a perturbed step went negative: theta = lam gamma < 0, a discontinuous layer
        assert "negative" in r.reason and r.upper == {}
        return
    rng = np.random.default_rng(seed)
    y1 = torch.as_tensor(rng.standard_normal((64, p.m)) * spread)
    y2 = y1 + torch.as_tensor(rng.standard_normal((64, p.m)) * spread * rng.choice([1e-3, 0.1, 1.0]))
    fd = _fd_ratio(model, y1, y2)
    # the SDP starts from multipliers that certify the naive and the ECLipsE-Fast values (certificate.py)
    assert np.all(r.upper["sdp"] <= np.minimum(r.upper["naive"], r.upper["eclipse-fast"]) * (1 + REL))
    for name, up in r.upper.items():
        assert np.all(up >= r.lower * (1 - 1e-9)), (name, up, r.lower)
        assert np.all(up >= fd * (1 - 1e-9)), (name, up, fd)
