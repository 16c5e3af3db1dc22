"""PAC-Bayes certificates: the kl machinery, the bound forms, and a certificate that a fresh test set can refute."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from unfoldkit.theory.generalization.loss import clipped_nmse
from unfoldkit.theory.generalization.pac_bayes import (
    FORMS,
    certificate_value,
    classical_prior,
    kl_bernoulli,
    kl_gaussians,
    kl_inverse_upper,
    learned_parameters,
    mc_risk_upper,
    mcallester_bound,
    pac_bayes_bound,
    pac_bayes_certificate,
    pac_bayes_kl_bound,
    posterior_risk,
    quad_bound,
)
from unfoldkit.unrolled.models import AdmmUnfolded, Alista, IstaLearnedStep
from unfoldkit.unrolled.problems.sparse import SparseRecovery
from unfoldkit.unrolled.training.threads import limit_threads

probs = st.floats(0.0, 1.0, allow_nan=False)
inner = st.floats(1e-6, 1.0 - 1e-6, allow_nan=False)
budgets = st.floats(1e-8, 5.0, allow_nan=False)


# -- kl of Bernoullis and its inverse ---------------------------------------------------------------------


def test_kl_bernoulli_closed_forms_and_limits():
    assert kl_bernoulli(0.3, 0.3) == 0.0
    assert kl_bernoulli(0.0, 0.5) == pytest.approx(math.log(2.0), abs=1e-15)
    assert kl_bernoulli(1.0, 0.25) == pytest.approx(math.log(4.0), abs=1e-15)
    assert kl_bernoulli(0.2, 0.6) == pytest.approx(0.2 * math.log(0.2 / 0.6) + 0.8 * math.log(0.8 / 0.4), abs=1e-15)
    assert kl_bernoulli(0.5, 0.0) == math.inf and kl_bernoulli(0.5, 1.0) == math.inf
    assert kl_bernoulli(0.0, 0.0) == 0.0 and kl_bernoulli(1.0, 1.0) == 0.0


def test_kl_inverse_edge_cases():
    assert kl_inverse_upper(1.0, 0.3) == 1.0
    assert kl_inverse_upper(0.4, 0.0) == 0.4
    assert kl_inverse_upper(0.4, math.inf) == 1.0
    assert kl_inverse_upper(0.4, 1e6) == 1.0
    assert kl_inverse_upper(0.0, 0.7) == pytest.approx(1.0 - math.exp(-0.7), abs=1e-15)  # kl(0||p) = -log(1-p)
    assert kl_inverse_upper(0.0, 1e-300) > 0.0


@given(inner, budgets)
def test_kl_inverse_solves_kl_equals_c(q, c):
    p = kl_inverse_upper(q, c)
    assert q <= p <= 1.0
    if p < 1.0:  # to 1e-9, or to what one ulp of p moves kl by (the slope (p - q) / (p (1 - p)))
        slack = np.spacing(p) * (p - q) / (p * (1.0 - p))
        assert abs(kl_bernoulli(q, p) - c) <= 1e-9 * max(1.0, c) + 2 * slack, (q, c, p, kl_bernoulli(q, p))
    else:  # the root lies within one ulp of 1
        assert kl_bernoulli(q, np.nextafter(1.0, 0.0)) <= c + 1e-9


@pytest.mark.parametrize("q, c", [(0.05, 0.01), (0.3, 0.2), (0.7, 0.05), (0.0, 0.1), (0.9, 1.5)])
def test_kl_inverse_against_a_brute_force_grid(q, c):
    grid = np.linspace(q, 1.0, 200_001)[:-1]
    feasible = grid[[kl_bernoulli(q, float(p)) <= c for p in grid]]
    p = kl_inverse_upper(q, c)
    assert feasible.max() <= p <= feasible.max() + (grid[1] - grid[0]) + 1e-15


@given(probs, budgets, budgets)
def test_kl_inverse_is_monotone_in_c(q, c1, c2):
    lo, hi = sorted((c1, c2))
    assert kl_inverse_upper(q, lo) <= kl_inverse_upper(q, hi) + 1e-12


@given(probs, probs, budgets)
def test_kl_inverse_is_monotone_in_q(q1, q2, c):
    lo, hi = sorted((q1, q2))
    assert kl_inverse_upper(lo, c) <= kl_inverse_upper(hi, c) + 1e-12


# -- KL of Gaussians --------------------------------------------------------------------------------------


def _kl_1d(mq, sq, mp, sp):
    return math.log(sp / sq) + (sq ** 2 + (mq - mp) ** 2) / (2 * sp ** 2) - 0.5


@given(st.lists(st.tuples(st.floats(-3, 3), st.floats(0.05, 4), st.floats(-3, 3), st.floats(0.05, 4)),
                min_size=1, max_size=6))
def test_kl_gaussians_matches_the_written_out_sum(rows):
    mq, sq, mp, sp = (np.array(c) for c in zip(*rows))
    expected = math.fsum(_kl_1d(*r) for r in rows)
    assert kl_gaussians(mq, sq, mp, sp) == pytest.approx(expected, abs=1e-10, rel=1e-12)


def test_kl_gaussians_isotropic_zero_and_monte_carlo():
    rng = np.random.default_rng(0)
    mu_q, mu_p = rng.normal(size=7), rng.normal(size=7)
    assert kl_gaussians(mu_q, 0.3, mu_p, 0.3) == pytest.approx(np.sum((mu_q - mu_p) ** 2) / (2 * 0.09), rel=1e-14)
    assert kl_gaussians(mu_q, 0.3, mu_q, 0.3) == 0.0
    assert kl_gaussians(torch.tensor(mu_q), np.full(7, 0.5), mu_q, 0.5) == 0.0
    # Monte Carlo: E_Q[log q(w) - log p(w)] for a 3-d diagonal pair
    mq, sq, mp, sp = np.array([0.1, -0.4, 1.0]), np.array([0.5, 1.2, 0.8]), np.array([0.0, 0.3, 0.7]), 0.9
    w = mq + sq * rng.normal(size=(400_000, 3))
    log_ratio = np.sum(-np.log(sq) - (w - mq) ** 2 / (2 * sq ** 2) + np.log(sp) + (w - mp) ** 2 / (2 * sp ** 2), 1)
    se = log_ratio.std() / math.sqrt(len(log_ratio))
    assert abs(log_ratio.mean() - kl_gaussians(mq, sq, mp, sp)) < 5 * se


# -- the bound forms --------------------------------------------------------------------------------------

bound_args = st.tuples(probs, st.floats(0.0, 1e4), st.integers(8, 10 ** 6), st.floats(1e-6, 0.5))


@given(bound_args)
def test_kl_form_is_below_quad_and_classic(args):
    q, kl, n, delta = args
    b_kl = pac_bayes_kl_bound(q, kl, n, delta)
    assert b_kl <= quad_bound(q, kl, n, delta) + 1e-10
    assert b_kl <= mcallester_bound(q, kl, n, delta) + 1e-10
    assert q <= b_kl <= 1.0


@pytest.mark.parametrize("form", FORMS)
@given(args=bound_args, more=st.floats(0.0, 100.0), factor=st.integers(2, 50))
def test_bounds_decrease_in_n_and_increase_in_kl(form, args, more, factor):
    q, kl, n, delta = args
    b = pac_bayes_bound(q, kl, n, delta, form)
    assert pac_bayes_bound(q, kl, n * factor, delta, form) <= b + 1e-12
    assert pac_bayes_bound(q, kl + more, n, delta, form) >= b - 1e-12
    assert b >= q


def test_bound_values_written_out():
    q, kl, n, delta = 0.1, 20.0, 5000, 0.025
    c = (kl + math.log(2 * math.sqrt(n) / delta)) / n
    assert mcallester_bound(q, kl, n, delta) == pytest.approx(q + math.sqrt(c / 2), rel=1e-14)
    assert quad_bound(q, kl, n, delta) == pytest.approx((math.sqrt(q + c / 2) + math.sqrt(c / 2)) ** 2, rel=1e-14)
    assert kl_bernoulli(q, pac_bayes_kl_bound(q, kl, n, delta)) == pytest.approx(c, abs=1e-12)
    assert mc_risk_upper(0.2, 1000, 0.01) == kl_inverse_upper(0.2, math.log(200) / 1000)
    assert certificate_value(0.2, kl, n, 1000, delta, 0.01) == pac_bayes_kl_bound(
        mc_risk_upper(0.2, 1000, 0.01), kl, n, delta)


# -- a certificate for a lightly trained model -------------------------------------------------------------

PROBLEM = SparseRecovery(m=20, n=40, seed=0)
K, N_TRAIN, N_TEST = 5, 2000, 20000


def _train_lightly(model, batch, steps=60, lr=5e-3):
    """Full-batch Adam on the training set (deterministic): stands for a short training run."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        clipped_nmse(model(batch.y), batch.x, 1.0).mean().backward()
        opt.step()
    return model


@pytest.fixture(scope="module")
def trained():
    with limit_threads(1):
        torch.manual_seed(0)
        batch = PROBLEM.sample(N_TRAIN, rng=1)
        model = _train_lightly(IstaLearnedStep.from_classical(PROBLEM, K, dtype=torch.float64), batch)
        cert = pac_bayes_certificate(model, batch.y, batch.x, mc_samples=150, seed=0)
    return model, batch, cert


def test_certificate_is_non_vacuous_and_above_the_training_risk(trained):
    model, batch, cert = trained
    d = cert.details
    assert d["d"] == 2 * K and d["parameters"] == ["step", "threshold"]
    assert d["prior_distance"] > 0.0, "training moved the parameters"
    assert cert.value > cert.empirical, cert.summary()
    assert d["mc_upper"] >= cert.empirical
    assert cert.value <= 1.0 and not cert.vacuous, cert.summary()
    assert cert.delta == pytest.approx(0.035) and d["delta_per_sigma"] == pytest.approx(0.025 / 7)
    assert d["num_draws"] == 150 and len(d["grid"]) == 7 and cert.num_samples == N_TRAIN
    best = [r for r in d["grid"] if r["sigma"] == d["best_sigma"]][0]
    assert best["certificate"] == cert.value
    assert all(r["certificate"] is None or r["certificate"] >= cert.value for r in d["grid"])
    assert cert.status == "recalled" and cert.assumptions_hold
    # the model is left as it was (float64 copy inside, no perturbation written back)
    assert model.step.dtype == torch.float64 and model.step.requires_grad


def test_certificate_holds_on_a_fresh_test_set(trained):
    """Can fail: with probability >= 1 - 0.035 the posterior's true risk is below the certificate."""
    model, _, cert = trained
    test = PROBLEM.sample(N_TEST, rng=2024)
    with limit_threads(1):
        risks = posterior_risk(model, test.y, test.x, cert.details["best_sigma"], draws=4, seed=7)
    msg = (f"posterior test risk {risks.mean():.4f} (draws {np.round(risks, 4).tolist()}) vs certificate "
           f"{cert.value:.4f} (MC training risk {cert.empirical:.4f}, sigma {cert.details['best_sigma']}, "
           f"KL {cert.details['kl']:.2f})")
    assert risks.mean() < cert.value, msg


def test_certificate_is_deterministic_and_mc_batch_runs(trained):
    model, batch, _ = trained
    with limit_threads(1):
        a = pac_bayes_certificate(model, batch.y, batch.x, sigmas=(0.1,), mc_samples=10, seed=3)
        b = pac_bayes_certificate(model, batch.y, batch.x, sigmas=(0.1,), mc_samples=10, seed=3)
        c = pac_bayes_certificate(model, batch.y, batch.x, sigmas=(0.1,), mc_samples=400, mc_batch=50, seed=3)
        quad = pac_bayes_certificate(model, batch.y, batch.x, sigmas=(0.1,), mc_samples=10, seed=3, form="quad")
    assert a.value == b.value and a.empirical == b.empirical
    assert c.details["mc_batch"] == 50 and 0.0 < c.value <= 1.0
    assert a.details["kl"] == c.details["kl"] == quad.details["kl"]
    assert quad.value >= a.value


def test_priors_and_learned_parameters(trained):
    model, batch, _ = trained
    small = dict(sigmas=(0.1,), mc_samples=2, seed=0)
    y, x = batch.y[:200], batch.x[:200]
    init = pac_bayes_certificate(model, y, x, **small)
    ctor = pac_bayes_certificate(model, y, x, prior="constructor", **small)
    own = pac_bayes_certificate(model, y, x, prior=classical_prior(model), **small)
    assert init.details["kl"] == pytest.approx(ctor.details["kl"], rel=1e-12) == own.details["kl"]
    assert own.assumptions[-1].holds is None  # a model prior: independence is the caller's responsibility
    at_prior = pac_bayes_certificate(classical_prior(model), y, x, **small)
    assert at_prior.details["kl"] == 0.0
    alista = Alista(PROBLEM, 3)
    assert list(learned_parameters(alista)) == ["gamma", "threshold"]  # W~ is fixed: not perturbed
    admm = pac_bayes_certificate(AdmmUnfolded.from_classical(PROBLEM, 2), y, x, **small)
    assert admm.details["parameters"] == ["log_rho", "threshold"]  # perturbed in the stored parametrisation
    assert admm.details["kl"] == pytest.approx(0.0, abs=1e-9)  # float32 model vs float64 prior: round-off only


def test_too_few_samples_make_no_claim(trained):
    model, batch, _ = trained
    cert = pac_bayes_certificate(model, batch.y[:5], batch.x[:5], sigmas=(0.1,), mc_samples=2)
    assert math.isnan(cert.value) and not cert.assumptions_hold


class _Frozen(IstaLearnedStep):
    def parameter_info(self):
        return [type(i)(i.name, i.shape, False, i.tied, i.meaning) for i in super().parameter_info()]


@pytest.mark.parametrize("change, match", [
    (dict(train_y=torch.zeros(10, 19)), "shapes"),
    (dict(train_x=torch.zeros(9, 40)), "as many rows"),
    (dict(train_x=torch.full((10, 40), math.nan)), "NaN"),
    (dict(delta=0.0), "delta"),
    (dict(delta=1.5), "delta"),
    (dict(delta_mc=1.0), "delta_mc"),
    (dict(sigmas=()), "empty"),
    (dict(sigmas=(0.1, -1e-3)), "sigma"),
    (dict(sigmas=(0.0,)), "sigma"),
    (dict(mc_samples=0), "mc_samples"),
    (dict(mc_batch=11), "mc_batch"),
    (dict(form="catoni"), "form"),
    (dict(prior="data"), "prior"),
    (dict(prior=Alista(PROBLEM, 3)), "prior"),
    (dict(prior=IstaLearnedStep(PROBLEM, 4)), "same learned parameters"),
    (dict(model=_Frozen(PROBLEM, 3)), "no learned parameters"),
])
def test_errors_are_one_line(change, match):
    args = dict(model=IstaLearnedStep(PROBLEM, 3), train_y=torch.zeros(10, 20), train_x=torch.ones(10, 40))
    args.update(change)
    model, y, x = args.pop("model"), args.pop("train_y"), args.pop("train_x")
    with pytest.raises(ValueError, match=match) as err:
        pac_bayes_certificate(model, y, x, **args)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("call, match", [
    (lambda: kl_inverse_upper(0.5, -1.0), "c must be >= 0"),
    (lambda: kl_inverse_upper(1.5, 1.0), "q must be in"),
    (lambda: kl_bernoulli(0.5, math.nan), "NaN"),
    (lambda: kl_gaussians(np.zeros(3), 1.0, np.zeros(4), 1.0), "same shape"),
    (lambda: kl_gaussians(np.zeros(3), 0.0, np.zeros(3), 1.0), "sigma_q"),
    (lambda: kl_gaussians(np.zeros(3), np.ones(2), np.zeros(3), 1.0), "scalar"),
    (lambda: pac_bayes_bound(0.1, -1.0, 10, 0.1), "kl must be"),
    (lambda: pac_bayes_bound(0.1, 1.0, 0, 0.1), "n must be"),
    (lambda: mc_risk_upper(0.1, 0, 0.01), "num_draws"),
])
def test_math_errors_are_one_line(call, match):
    with pytest.raises(ValueError, match=match) as err:
        call()
    assert "\n" not in str(err.value)
