"""theory.generalization.covering: the covering-number / Rademacher risk bound.

Checked: the chaining sum and the Dudley integral against independent computations (a plain loop; mpmath
quadrature of the closed-form covering log N = d log(1 + a/u), and the first-order condition of the minimiser)
to 1e-6 relative; monotonicity (decreasing in m, increasing in d, in the covering scale, in K, in the number of
learned blocks, LISTA > LISTA-CP > ALISTA); a real inequality on a fresh test set (the bound, non-vacuous there,
is above the measured test risk and the training risk); vacuity and NaN reporting; one-line errors.
"""
from __future__ import annotations

import json
import math
from itertools import pairwise

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unfoldkit.theory.generalization.covering import (
    chaining_bound,
    classical_center,
    covering_bound,
    dudley_integral,
    grid_weight,
    parametric_log_covering,
    rademacher_terms,
    radius_weight,
)
from unfoldkit.theory.generalization.loss import clipped_nmse
from unfoldkit.theory.lipschitz.parameters import parameter_lipschitz
from unfoldkit.unrolled.models import (
    Alista,
    FistaUnfolded,
    IstaLearnedStep,
    IstaWeightedL1,
    Lista,
    ListaCP,
    ListaCPSS,
)
from unfoldkit.unrolled.problems.sparse import SparseRecovery
from unfoldkit.unrolled.training.threads import limit_threads

F64 = "float64"
#: fixed (data-independent) settings for the monotonicity checks, so that only the varied quantity changes
FIXED = {"data_radius": 8.0, "signal_floor": 0.5, "param_radius": 1e-3}


def perturb(model: torch.nn.Module, eps: float) -> torch.nn.Module:
    """A deterministic stand-in for training: every learned scalar p_i -> p_i (1 + eps sin(i + 1))."""
    with torch.no_grad():
        for p in model.parameters():
            idx = torch.arange(p.numel(), dtype=p.dtype).reshape(p.shape)
            p.mul_(1 + eps * torch.sin(idx + 1.0))
    return model


@pytest.fixture(scope="module")
def problem() -> SparseRecovery:
    return SparseRecovery(m=10, n=20, seed=1)


@pytest.fixture(scope="module")
def data(problem: SparseRecovery) -> dict[str, torch.Tensor]:
    train, test = problem.sample(20000, 3), problem.sample(200000, 4)
    return {"y": train.y, "x": train.x, "ty": test.y, "tx": test.x}


# -- union-bound weights --------------------------------------------------------------------------------------
def test_grid_weights_sum_to_one() -> None:
    n = 200000
    total = grid_weight(0) + 2 * sum(grid_weight(i) for i in range(1, n))
    assert total == pytest.approx(1.0 - 4.0 / (3.0 * (n + 1)), rel=1e-9)  # the tail 2 sum_{i>=n} w(i)
    assert radius_weight(None) + 0.75 * total == pytest.approx(1.0 - 1.0 / (n + 1), rel=1e-9)


# -- the Rademacher term ----------------------------------------------------------------------------------------
def _chain_loop(d: int, a: float, m: int, radius: float) -> float:
    best = math.inf
    acc = 0.0
    for k in range(1, 201):
        u = radius * 2.0 ** -k
        acc += 2.0 ** -k * math.sqrt(d * math.log1p(a / u))
        best = min(best, radius * 2.0 ** -k + 6.0 * radius / math.sqrt(m) * acc)
    return best


@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 5000), a=st.floats(1e-3, 1e6), m=st.integers(1, 10 ** 6), radius=st.floats(1e-4, 0.5))
def test_chaining_matches_a_plain_loop(d: int, a: float, m: int, radius: float) -> None:
    value, levels = chaining_bound(parametric_log_covering(d, a), m, radius)
    assert value == pytest.approx(_chain_loop(d, a, m, radius), rel=1e-9)
    assert 1 <= levels <= 200


@settings(max_examples=25, deadline=None)
@given(d=st.integers(1, 200), a=st.floats(1e-2, 1e4), m=st.integers(10, 10 ** 6), frac=st.floats(1e-6, 1.0))
def test_dudley_integral_equals_mpmath_closed_form(d: int, a: float, m: int, frac: float) -> None:
    radius = 0.5
    alpha = frac * radius / 4
    value, got_alpha = dudley_integral(parametric_log_covering(d, a), m, radius, alpha=alpha)
    with mpmath.workdps(30):
        integral = mpmath.quad(lambda u: mpmath.sqrt(d * mpmath.log(1 + a / u)),
                               mpmath.linspace(alpha, radius / 2, 6))
        ref = float(4 * mpmath.mpf(alpha) + 12 / mpmath.sqrt(m) * integral)
    assert got_alpha == alpha
    assert value == pytest.approx(ref, rel=1e-6)


@settings(max_examples=25, deadline=None)
@given(d=st.integers(1, 200), a=st.floats(1e-2, 1e4), m=st.integers(10, 10 ** 6))
def test_dudley_minimiser_solves_the_first_order_condition(d: int, a: float, m: int) -> None:
    """alpha* = a / expm1(m / (9 d)) (4 = 12 sqrt(d log(1 + a/alpha)) / sqrt(m)), or radius/4 when that is larger;
    the minimum is below the value at nearby alphas and above the chaining sum it is derived from."""
    radius = 0.5
    log_cov = parametric_log_covering(d, a)
    value, alpha = dudley_integral(log_cov, m, radius)
    z = m / (9.0 * d)
    log_expected = math.log(a) - (z + math.log(-math.expm1(-z)))  # log(a / expm1(z)) without overflow
    top = math.log(radius / 4)
    expected = math.exp(min(max(log_expected, top - 700.0), top))  # the search range (alpha >= e^-700 radius/4)
    assert alpha == pytest.approx(expected, rel=1e-6)
    for f in (0.5, 0.9):
        assert value <= dudley_integral(log_cov, m, radius, alpha=alpha * f)[0] * (1 + 1e-9)
    if alpha < radius / 4:
        assert value <= dudley_integral(log_cov, m, radius, alpha=min(radius / 4, alpha * 1.5))[0] * (1 + 1e-9)
    assert chaining_bound(log_cov, m, radius)[0] <= value * (1 + 1e-9)


@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 2000), a=st.floats(1e-2, 1e5), m=st.integers(1, 10 ** 6), radius=st.floats(1e-3, 0.5),
       grow=st.floats(1.01, 100.0))
def test_rademacher_term_monotone(d: int, a: float, m: int, radius: float, grow: float) -> None:
    """Decreasing in m, increasing in d and in the covering scale a (relative tolerance 1e-9)."""
    base = rademacher_terms(d, a, m, radius)
    more_m = rademacher_terms(d, a, math.ceil(m * grow), radius)
    more_d = rademacher_terms(math.ceil(d * grow), a, m, radius)
    more_a = rademacher_terms(d, a * grow, m, radius)
    for key in ("chaining", "dudley"):
        assert more_m[key] <= base[key] * (1 + 1e-9)
        assert more_d[key] >= base[key] * (1 - 1e-9)
        assert more_a[key] >= base[key] * (1 - 1e-9)
    assert base["rademacher"] == min(base["chaining"], base["dudley"]) == base["chaining"]


def test_rademacher_of_a_fixed_class_is_zero() -> None:
    assert rademacher_terms(0, 10.0, 100, 0.5)["rademacher"] == pytest.approx(0.0, abs=1e-50)
    assert rademacher_terms(5, 10.0, 100, 0.0)["rademacher"] == 0.0


# -- the model-level bound ---------------------------------------------------------------------------------------
def test_threshold_radius_does_not_enter_the_constants(problem: SparseRecovery) -> None:
    """Why threshold groups are passed with radius 0 (module docstring, step 4)."""
    center = classical_center(IstaLearnedStep.from_classical(problem, 4))
    small = float(center.threshold.detach().min()) / 2
    a = parameter_lipschitz(center, 8.0, {"step": 1e-3, "threshold": 0.0})
    b = parameter_lipschitz(center, 8.0, {"step": 1e-3, "threshold": small})
    np.testing.assert_array_equal(a.kappa, b.kappa)
    np.testing.assert_array_equal(a.output_radius, b.output_radius)


@pytest.mark.parametrize("build", [
    lambda p: IstaLearnedStep.from_classical(p, 3, dtype=F64),
    lambda p: Alista(p, 3, percent=0.0, max_percent=0.0, dtype=F64),
], ids=["ista-learned-step", "alista"])
def test_bound_above_fresh_test_risk_and_training_risk(problem: SparseRecovery, data: dict, build) -> None:
    """The real inequality (holds with probability >= 0.95; seeded): L(model) measured on 200000 fresh samples is
    below the bound, as is the training risk. The learned-step model's bound is non-vacuous, so the check has
    teeth there (a missing confidence or complexity term, or a wrong empirical risk, would break it)."""
    model = perturb(build(problem), 1e-3)
    with limit_threads(1):
        bound = covering_bound(model, data["y"], data["x"])
        with torch.no_grad():
            test_risk = float(clipped_nmse(model(data["ty"]), data["tx"]).mean())
            train_risk = float(clipped_nmse(model(data["y"]), data["x"]).mean())
    d = bound.details
    assert bound.assumptions_hold and bound.status == "derived"
    assert bound.value >= test_risk + 0.02
    assert bound.value >= bound.empirical >= train_risk - 1e-12
    assert d["empirical_plain"] == pytest.approx(train_risk, rel=1e-9)
    assert bound.value == pytest.approx(bound.empirical + d["complexity_term"] + d["confidence_term"], rel=1e-12)
    for g, r in d["param_radius"].items():  # the smallest power of 2 containing the trained model
        assert d["distance"][g] <= r < 2 * d["distance"][g]
    assert d["num_parameters"] == 6
    if model.family == "ista-learned-step":
        assert not bound.vacuous and bound.value < 0.9
    json.dumps(bound.to_dict())


def _gap(model: torch.nn.Module, y: torch.Tensor, x: torch.Tensor, **kw) -> tuple[float, dict]:
    with limit_threads(1):
        b = covering_bound(model, y, x, **{**FIXED, **kw})
    return b.gap, b.details


def test_decreasing_in_m(problem: SparseRecovery, data: dict) -> None:
    model = perturb(IstaLearnedStep.from_classical(problem, 3, dtype=F64), 1e-4)
    gaps = [_gap(model, data["y"][:m], data["x"][:m])[0] for m in (50, 200, 800, 3200, 12800)]
    assert all(b < a for a, b in pairwise(gaps)), gaps


def test_increasing_in_depth(problem: SparseRecovery, data: dict) -> None:
    out = [_gap(IstaLearnedStep.from_classical(problem, k, dtype=F64), data["y"][:2000], data["x"][:2000])
           for k in (1, 2, 4, 8)]
    gaps, k_theta = [g for g, _ in out], [d["K_Theta"] for _, d in out]
    assert all(b > a for a, b in pairwise(gaps)), gaps
    assert all(b > a for a, b in pairwise(k_theta)), k_theta


def test_increasing_in_learned_blocks(problem: SparseRecovery, data: dict) -> None:
    model = IstaLearnedStep.from_classical(problem, 4, dtype=F64)
    y, x = data["y"][:2000], data["x"][:2000]
    g1, d1 = _gap(model, y, x, param_radius={"step": 1e-3, "threshold": 0.0})
    g2, d2 = _gap(model, y, x, param_radius={"step": 1e-3, "threshold": 1e-3})
    assert (d1["num_parameters"], d2["num_parameters"]) == (4, 8)
    assert g2 > g1


def test_lista_above_lista_cp_above_alista(problem: SparseRecovery, data: dict) -> None:
    y, x = data["y"][:2000], data["x"][:2000]
    out = [_gap(build(problem, 3, dtype=F64), y, x) for build in (
        Lista.from_classical, ListaCP.from_classical,
        lambda p, k, dtype: Alista(p, k, percent=0.0, max_percent=0.0, dtype=dtype))]
    assert [d["num_parameters"] for _, d in out] == [3 * 200 + 2 * 400 + 3, 3 * 200 + 3, 6]
    assert out[0][0] > out[1][0] > out[2][0]


def test_layer_option_counts_only_the_blocks_it_depends_on(problem: SparseRecovery, data: dict) -> None:
    model = IstaLearnedStep.from_classical(problem, 4, dtype=F64)
    g1, d1 = _gap(model, data["y"][:500], data["x"][:500], layer=1)
    g4, d4 = _gap(model, data["y"][:500], data["x"][:500])
    assert (d1["num_parameters"], d4["num_parameters"]) == (2, 8) and g1 < g4


@pytest.mark.parametrize("build", [
    lambda p: Lista.from_classical(p, 3, tied=True),
    lambda p: ListaCP.from_classical(p, 3, tied=True),
    lambda p: ListaCPSS.from_classical(p, 3),
    lambda p: Alista.from_classical(p, 3),
    lambda p: IstaLearnedStep.from_classical(p, 3, learn_threshold=False),
    lambda p: IstaWeightedL1.from_classical(p, 3),
    lambda p: IstaWeightedL1.from_classical(p, 3, learn="lambda"),
], ids=["lista-tied", "lista-cp-tied", "lista-cpss-off", "alista-dictionary", "slista", "weighted-l1",
        "weighted-l1-lambda"])
def test_every_covered_family(problem: SparseRecovery, data: dict, build) -> None:
    """Each covered family: the perturbed model lies in its grid class around the classical center, the bound is
    finite and above the training risk; d counts shared blocks once."""
    model = perturb(build(problem), 1e-3)
    with limit_threads(1):
        b = covering_bound(model, data["y"][:500], data["x"][:500])
    assert b.assumptions_hold and math.isfinite(b.value) and b.value >= b.empirical
    expected_d = {"lista": 200 + 400 + 3, "lista-cp": 200 + 3, "lista-cpss": 3 * 200 + 3, "alista": 6,
                  "ista-learned-step": 3, "ista-weighted-l1": 20 if getattr(model, "learn", "") == "weights" else 1}
    assert b.details["num_parameters"] == expected_d[model.family]


def test_vacuity_and_no_claim_are_reported(problem: SparseRecovery, data: dict) -> None:
    model = perturb(IstaLearnedStep.from_classical(problem, 3), 1e-2)
    with limit_threads(1):
        small = covering_bound(model, data["y"][:30], data["x"][:30])
        outside = covering_bound(model, data["y"][:300], data["x"][:300], param_radius=1e-6)
    assert small.value >= small.loss_range and small.vacuous and "VACUOUS" in small.summary()
    assert math.isnan(outside.value) and outside.vacuous and not outside.assumptions_hold
    assert outside.assumptions[0].holds is False and outside.assumptions[0].measured > 1
    half = covering_bound(model, data["y"][:30], data["x"][:30], clip=0.5, check_y=data["ty"][:100])
    assert half.loss_range == 0.5 and half.vacuous and "max_check_norm_y" in half.details


def test_one_line_errors(problem: SparseRecovery, data: dict) -> None:
    model = IstaLearnedStep.from_classical(problem, 2)
    y, x = data["y"][:20], data["x"][:20]
    bad_y = y.clone()
    bad_y[0, 0] = float("nan")
    negative = IstaLearnedStep.from_classical(problem, 2)
    with torch.no_grad():
        negative.threshold[1] = -0.1
    cases = [
        (ValueError, lambda: covering_bound(model, y, x[:10]), "same number of rows"),
        (ValueError, lambda: covering_bound(model, y[:, :5], x), "shape"),
        (ValueError, lambda: covering_bound(model, bad_y, x), "NaN"),
        (ValueError, lambda: covering_bound(model, y, x, delta=0.0), "delta"),
        (ValueError, lambda: covering_bound(model, y, x, delta=1.0), "delta"),
        (ValueError, lambda: covering_bound(model, y, x, clip=0.0), "clip"),
        (ValueError, lambda: covering_bound(model, y, x, layer=3), "layer"),
        (ValueError, lambda: covering_bound(model, y, x, param_radius={"W": 1.0}), "unknown group"),
        (ValueError, lambda: covering_bound(model, y, x, data_radius=-1.0), "data_radius"),
        (ValueError, lambda: covering_bound(Alista(problem, 2), y, x), "discontinuous"),
        (ValueError, lambda: covering_bound(negative, y, x), "discontinuous"),
        (NotImplementedError, lambda: covering_bound(FistaUnfolded.from_classical(problem, 2), y, x), "momentum"),
    ]
    for exc, call, needle in cases:
        with pytest.raises(exc) as info:
            call()
        msg = str(info.value)
        assert needle in msg and "\n" not in msg, msg
