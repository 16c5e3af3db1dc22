"""Certified schedules (theory/certified): the envelope, the certificate, the projection and certified training.

Settings measured before being fixed here (least squares, kappa = 20, L = 1, mu = 0.05, seed 0): an
unconstrained ``gd-unfolded`` model (m = 20, n = 15, K = 6, 10 epochs x 10 steps, lr 0.05) learns the constant
step 1.654/L, whose exact worst case is 1.35x the envelope of constant 1/L at layer 1 (and 1.017x at layer 2).
"""
import json
import math

import numpy as np
import pytest
import torch

from unfoldkit.theory.certified import (
    CertifiedTrainResult,
    Envelope,
    ScheduleCertificate,
    certify_schedule,
    project_schedule,
    schedule_envelope,
    train_certified_schedule,
)
from unfoldkit.theory.pep import make_spec, pep_bound
from unfoldkit.unrolled.models import MODELS
from unfoldkit.unrolled.problems import LeastSquares
from unfoldkit.unrolled.training.threads import limit_threads
from unfoldkit.unrolled.training.trainer import train

K = 6


@pytest.fixture(scope="module")
def problem():
    return LeastSquares(m=20, n=15, kappa=20.0, L=1.0, seed=0)


@pytest.fixture(scope="module")
def envelope(problem):
    with limit_threads(1):
        return schedule_envelope(K, problem.L, problem.mu)


def train_free(family, problem, layers, **budget):
    """A float64 ``family`` model trained without the certificate by the existing trainer (unsupervised loss,
    lr 0.05, seed 0): its schedule()."""
    with limit_threads(1):
        model = MODELS[family](problem, layers, dtype=torch.float64)
        train(model, problem, "unsupervised", lr=0.05, seed=0, progress=False, **budget)
    return model.schedule()


@pytest.fixture(scope="module")
def unconstrained(problem):
    """The schedule learned without the certificate by the existing trainer (the same unsupervised loss)."""
    steps = train_free("gd-unfolded", problem, K, epochs=10, steps_per_epoch=10, batch_size=64, val_size=256)["step"]
    return np.asarray(steps, dtype=np.float64)


def test_envelope_default_is_the_best_classical_at_the_last_layer(problem, envelope):
    assert isinstance(envelope, Envelope) and envelope.values.dtype == np.float64
    assert envelope.values.shape == (K + 1,) and envelope.reference == "constant 1/L"
    with limit_threads(1):
        other = pep_bound(make_spec(np.full(K, 2.0 / (problem.L + problem.mu)), L=problem.L, mu=problem.mu)).values
        twice = schedule_envelope(K, problem.L, problem.mu, reference="constant 1/L", factor=2.0)
    assert envelope.values[-1] <= other[-1]
    np.testing.assert_allclose(twice.values, 2.0 * envelope.values, rtol=1e-12)
    assert envelope.values[0] == pytest.approx(problem.L / 2)          # L R^2 / 2, closed form
    json.dumps(envelope.to_dict())


def test_reference_inside_its_own_envelope(envelope):
    with limit_threads(1):
        cert = certify_schedule(envelope.reference_steps, envelope)
    assert isinstance(cert, ScheduleCertificate)
    assert cert.holds and cert.failing_layers == () and cert.complete
    assert cert.layers == tuple(range(K + 1))
    assert all(s in ("optimal", "closed_form") for s in cert.statuses)
    # the certified value is the dual (upper) bound: within the solver's certified gap of the envelope
    assert np.all(cert.upper >= cert.values) and np.all(cert.ratios <= 1 + cert.rtol)
    d = cert.to_dict()
    json.dumps(d)
    assert d["holds"] and "Drori" in d["provenance"] and "Taylor" in d["provenance"]


@pytest.mark.parametrize("num_layers, reference", [(3, "silver"), (4, "constant 1/L")])
def test_convex_reference_inside_its_own_envelope(num_layers, reference):
    with limit_threads(1):
        env = schedule_envelope(num_layers, 2.0, 0.0, R=1.5)
        cert = certify_schedule(env.reference_steps, env)
    assert env.reference == reference and cert.holds and np.all(np.abs(cert.ratios - 1) < 1e-6)


def test_unconstrained_schedule_is_detected(envelope, unconstrained):
    with limit_threads(1):
        cert = certify_schedule(unconstrained, envelope)
    assert not cert.holds
    assert 1 in cert.failing_layers and cert.ratios[1] > 1.2      # measured 1.35 at layer 1
    assert all(cert.margins[cert.layers.index(k)] < 0 for k in cert.failing_layers)
    assert "layer 1" in cert.describe()


def test_projection_returns_the_certified_point_of_the_segment(envelope, unconstrained):
    base = envelope.reference_steps
    with limit_threads(1):
        steps, cert, t = project_schedule(unconstrained, base, envelope, bisection_steps=6)
        again = certify_schedule(steps, envelope)
    assert 0.0 <= t < 1.0
    np.testing.assert_allclose(steps, base + t * (unconstrained - base), rtol=1e-14)
    assert cert.holds and cert.complete and again.holds and np.all(steps > 0)
    # a certified candidate comes back unchanged with t = 1
    with limit_threads(1):
        same, c1, t1 = project_schedule(base, base, envelope)
    assert t1 == 1.0 and c1.holds and np.array_equal(same, base)
    # a candidate with non-positive steps: never returned, the point stays positive and certified
    with limit_threads(1):
        pos, c2, t2 = project_schedule(base - 3.0, base, envelope, bisection_steps=4)
    assert 0.0 <= t2 < 1.0 and np.all(pos > 0) and c2.holds


def test_certified_training_ends_certified(problem, envelope):
    with limit_threads(1):
        model = MODELS["gd-unfolded"](problem, K, dtype=torch.float64)
        res = train_certified_schedule(model, problem, envelope, epochs=3, steps_per_epoch=10, batch_size=64,
                                       lr=0.05, seed=0, project_every=5)
        fresh = certify_schedule(model.schedule()["step"], envelope)   # from scratch, on the trained model
    assert isinstance(res, CertifiedTrainResult)
    assert res.certificate.holds and fresh.holds
    np.testing.assert_array_equal(res.steps, model.schedule()["step"])
    assert len(res.history) == 3 and all(h["projections"] == 2 for h in res.history)
    assert all(h["t_min"] is None or 0.0 <= h["t_min"] <= 1.0 for h in res.history)
    assert all(math.isfinite(h["train_objective"]) for h in res.history)
    assert res.start == "model" and res.train.epochs_run == 3        # 1/L (the default) is the reference
    json.dumps(res.to_dict())


def test_certified_training_composite_pgm():
    """ista-learned-step with theta_k = lam gamma_k on least squares (h = 0 is in the class of closed convex h)."""
    prob = LeastSquares(m=12, n=8, kappa=10.0, L=1.0, seed=1)
    with limit_threads(1):
        env = schedule_envelope(3, prob.L, prob.mu, method="pgm")
        model = MODELS["ista-learned-step"](prob, 3, learn_threshold=False, dtype=torch.float64)
        res = train_certified_schedule(model, prob, env, epochs=2, steps_per_epoch=4, batch_size=16, lr=0.05,
                                       seed=0, project_every=4)
    assert res.certificate.holds and math.isinf(env.values[0])


def test_user_envelope_values(problem, envelope):
    vals = envelope.values[1:]
    e1 = schedule_envelope(K, problem.L, problem.mu, reference=vals)
    e2 = schedule_envelope(K, problem.L, problem.mu, reference=envelope.values, factor=1.5)
    np.testing.assert_allclose(e1.values, envelope.values, rtol=1e-12)
    np.testing.assert_allclose(e2.values, 1.5 * envelope.values, rtol=1e-12)
    assert e1.reference == "user" and e1.reference_steps is None


def test_keep_multipliers():
    env = schedule_envelope(2, 1.0, 0.0, reference="constant 1/L")
    with limit_threads(1):
        cert = certify_schedule([1.0, 1.0], env, keep_multipliers=True)
    assert cert.holds and cert.multipliers[0] is None
    assert all(np.all(np.asarray(m) >= -1e-8) for m in cert.multipliers[1:])
    json.dumps(cert.to_dict())


def _one_line(excinfo):
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize("factor", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_factor(factor):
    with pytest.raises(ValueError, match="factor") as e:
        schedule_envelope(3, 1.0, 0.0, factor=factor)
    _one_line(e)


def test_bad_inputs(envelope):
    with pytest.raises(ValueError, match="reference values") as e:
        schedule_envelope(K, 1.0, 0.05, reference=np.ones(K + 3))
    _one_line(e)
    with pytest.raises(ValueError, match="reference must be") as e:
        schedule_envelope(K, 1.0, 0.05, reference="silver-ish")
    _one_line(e)
    good = envelope.reference_steps
    bad_nan = good.copy()
    bad_nan[2] = np.nan
    for bad, what in [(bad_nan, "NaN"), (good[:-1], "one entry per layer"), (-good, "> 0")]:
        with pytest.raises(ValueError, match=what) as e:
            certify_schedule(bad, envelope)
        _one_line(e)
    with pytest.raises(ValueError, match="NaN") as e:
        project_schedule(bad_nan, good, envelope)
    _one_line(e)
    with pytest.raises(ValueError, match="one entry per layer") as e:
        project_schedule(good, good[:-1], envelope)
    _one_line(e)
    with pytest.raises(ValueError, match="not inside the envelope") as e:
        project_schedule(3.0 * good, 2.5 * good, envelope, bisection_steps=2)
    _one_line(e)
    with pytest.raises(ValueError, match="envelope must be an Envelope") as e:
        certify_schedule(good, envelope.values)
    _one_line(e)


def test_bad_training_inputs(problem, envelope):
    m32 = MODELS["gd-unfolded"](problem, K)
    with pytest.raises(ValueError, match="float64") as e:
        train_certified_schedule(m32, problem, envelope, epochs=1, steps_per_epoch=1, batch_size=4, lr=0.1)
    _one_line(e)
    short = MODELS["gd-unfolded"](problem, K - 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="layers") as e:
        train_certified_schedule(short, problem, envelope, epochs=1, steps_per_epoch=1, batch_size=4, lr=0.1)
    _one_line(e)
    m = MODELS["gd-unfolded"](problem, K, dtype=torch.float64)
    with pytest.raises(ValueError, match="train_size") as e:
        train_certified_schedule(m, problem, envelope, epochs=1, steps_per_epoch=1, batch_size=4, lr=0.1,
                                 train_size=64)
    _one_line(e)
    with pytest.raises(ValueError, match="project_every") as e:
        train_certified_schedule(m, problem, envelope, epochs=1, steps_per_epoch=1, batch_size=4, lr=0.1,
                                 project_every=0)
    _one_line(e)


def test_layerwise_projection_is_certified_and_moves_the_free_layers(envelope, unconstrained):
    """mode="layerwise" (each step moved as far as its own layer stays certified, earlier steps fixed) returns
    a schedule certified from scratch at every layer, with t the smallest fraction moved; it never returns a
    point worse than the segment projection's at the last layer's envelope ratio by more than the tolerance,
    and it moves a non-binding step further than the segment does (the segment's weakness)."""
    base = envelope.reference_steps
    with limit_threads(1):
        seg, c_seg, t_seg = project_schedule(unconstrained, base, envelope, bisection_steps=6)
        lay, c_lay, t_lay = project_schedule(unconstrained, base, envelope, bisection_steps=6, mode="layerwise")
        again = certify_schedule(lay, envelope)
    assert c_lay.holds and again.holds and c_lay.complete and np.all(lay > 0)
    assert 0.0 <= t_lay <= 1.0
    moved_seg = np.abs(seg - base) / np.maximum(np.abs(unconstrained - base), 1e-300)
    moved_lay = np.abs(lay - base) / np.maximum(np.abs(unconstrained - base), 1e-300)
    assert moved_lay.max() > moved_seg.max() + 1e-3
    with pytest.raises(ValueError, match="mode"):
        project_schedule(unconstrained, base, envelope, mode="diagonal")


# -- momentum: fista-unfolded (method "fista") ---------------------------------------------------------------
# Measured before being fixed here (SparseRecovery m = 20, n = 30, lam = 0.1, seed 0, L = 4.73, mu = 0, K = 4):
# the unconstrained fista-unfolded schedule (5 epochs x 10 steps, batch 32, lr 0.05) is gamma L = (0.970,
# 2.258, 2.665, 1.165), beta = (0, 0.106, 0.757, 0.821), whose exact worst case is 1.03, 1.56, 34.3, 67.4 x the
# envelope of 1/L with Beck-Teboulle momentum at layers 1-4.
KF = 4


@pytest.fixture(scope="module")
def sparse():
    from unfoldkit.unrolled.problems import SparseRecovery
    return SparseRecovery(m=20, n=30, seed=0)


@pytest.fixture(scope="module")
def fista_envelope(sparse):
    with limit_threads(1):
        return schedule_envelope(KF, sparse.L, 0.0, "fista")


@pytest.fixture(scope="module")
def fista_unconstrained(sparse):
    s = train_free("fista-unfolded", sparse, KF, epochs=5, steps_per_epoch=10, batch_size=32, val_size=128)
    return np.asarray(s["step"], dtype=np.float64), np.asarray(s["momentum"], dtype=np.float64)


def test_fista_envelope_reference_has_momentum(sparse, fista_envelope):
    from unfoldkit.unrolled.steps import fista_momentum
    env = fista_envelope
    assert env.method == "fista" and env.reference == "1/L, Beck-Teboulle momentum"
    np.testing.assert_array_equal(env.reference_momentum, fista_momentum(KF))
    np.testing.assert_allclose(env.reference_steps, 1.0 / sparse.L, rtol=1e-15)
    assert math.isinf(env.values[0]) and np.all(np.isfinite(env.values[1:]))
    with limit_threads(1):
        cert = certify_schedule(env.reference_steps, env, momentum=env.reference_momentum)
    assert cert.holds and np.all(np.abs(cert.ratios[1:] - 1) < 1e-6)


def test_fista_layer_k_depends_on_the_first_k_steps_and_momenta_only():
    """W_k (fista) depends on gamma_0..gamma_{k-1} and beta_1..beta_{k-1}: perturbing gamma_j or beta_j leaves
    layers <= j unchanged (the same truncated spec, hence the same SDP) and changes layer j + 1 (beta_j, j >= 1);
    beta_0 multiplies x_0 - x_{-1} = 0 and changes no layer."""
    g, b = np.array([1.0, 1.1, 0.9, 1.2]), np.array([0.0, 0.3, 0.5, 0.4])
    spec = make_spec(g, L=1.0, method="fista", momentum=b)
    with limit_threads(1):
        base = pep_bound(spec, layers="all").values
        for j in range(KF):
            for which in ("step", "momentum"):
                g2, b2 = g.copy(), b.copy()
                (g2 if which == "step" else b2)[j] += 0.2
                spec2 = make_spec(g2, L=1.0, method="fista", momentum=b2)
                for k in range(j + 1):
                    t1, t2 = spec.truncated(k), spec2.truncated(k)
                    assert np.array_equal(t1.steps, t2.steps) and np.array_equal(t1.momentum, t2.momentum)
                vals = pep_bound(spec2, layers="all").values
                np.testing.assert_allclose(vals[1:j + 1], base[1:j + 1], rtol=1e-9)
                if which == "step" or j >= 1:
                    assert abs(vals[j + 1] - base[j + 1]) > 1e-3 * base[j + 1], (which, j)
                else:
                    np.testing.assert_allclose(vals[1:], base[1:], rtol=1e-9)   # beta_0: no effect


def test_fista_unconstrained_schedule_is_detected(fista_envelope, fista_unconstrained):
    steps, mom = fista_unconstrained
    with limit_threads(1):
        cert = certify_schedule(steps, fista_envelope, momentum=mom)
        bad = certify_schedule(fista_envelope.reference_steps, fista_envelope, momentum=np.full(KF, 1.5))
    assert not cert.holds and cert.ratios[KF] > 10.0                  # measured 67.4 at layer 4
    assert KF in cert.failing_layers and "layer 4" in cert.describe()
    assert not bad.holds and bad.failing_layers                        # momentum 1.5: outside at once


@pytest.mark.parametrize("mode", ["segment", "layerwise"])
def test_joint_projection_returns_a_certified_point(fista_envelope, fista_unconstrained, mode):
    from unfoldkit.theory.certified import project_momentum_schedule
    env = fista_envelope
    steps, mom = fista_unconstrained
    bs, bm = env.reference_steps, env.reference_momentum
    with limit_threads(1):
        ps, pm, cert, t = project_momentum_schedule(steps, mom, bs, bm, env, bisection_steps=5, mode=mode)
        again = certify_schedule(ps, env, momentum=pm)
    assert cert.holds and cert.complete and again.holds and 0.0 <= t < 1.0
    assert ps.dtype == np.float64 and pm.dtype == np.float64 and np.all(ps > 0) and pm[0] == 0.0
    np.testing.assert_array_equal(cert.momentum, pm)
    if mode == "segment":       # one t for the concatenated vector (gamma, beta)
        np.testing.assert_allclose(ps, bs + t * (steps - bs), rtol=1e-14)
        np.testing.assert_allclose(pm, bm + t * (mom - bm), rtol=1e-14, atol=1e-15)
    else:                       # block k = (gamma_{k-1}, beta_{k-1}) moves along its own segment
        for k in range(KF):
            fs = (ps[k] - bs[k]) / (steps[k] - bs[k])
            if k >= 1:
                assert (pm[k] - bm[k]) / (mom[k] - bm[k]) == pytest.approx(fs, rel=1e-9, abs=1e-12)
            assert -1e-12 <= fs <= 1 + 1e-12
        assert np.any(np.abs(ps - bs) > 1e-6)     # the layerwise projection moves off the reference


def test_fista_certified_training_ends_certified(sparse, fista_envelope):
    with limit_threads(1):
        model = MODELS["fista-unfolded"](sparse, KF, dtype=torch.float64)
        res = train_certified_schedule(model, sparse, fista_envelope, epochs=3, steps_per_epoch=10, batch_size=32,
                                       lr=0.05, seed=0, project_every=10, val_size=128)
        sched = model.schedule()
        fresh = certify_schedule(sched["step"], fista_envelope, momentum=sched["momentum"])   # from scratch
    assert res.certificate.holds and fresh.holds and res.start == "model"
    np.testing.assert_array_equal(res.steps, sched["step"])
    np.testing.assert_array_equal(res.momentum, sched["momentum"])
    np.testing.assert_array_equal(res.initial_momentum, fista_envelope.reference_momentum)
    assert res.momentum[0] == 0.0 and res.momentum.dtype == np.float64
    assert not np.allclose(res.steps, fista_envelope.reference_steps)     # it learned something
    assert len(res.history) == 3 and all(h["projections"] == 1 for h in res.history)
    json.dumps(res.to_dict())


def test_joint_projection_bad_inputs(envelope, fista_envelope):
    from unfoldkit.theory.certified import project_momentum_schedule
    g = fista_envelope.reference_steps
    b = fista_envelope.reference_momentum
    with pytest.raises(ValueError, match="momentum method") as e:
        project_momentum_schedule(envelope.reference_steps, np.zeros(K), envelope.reference_steps, np.zeros(K),
                                  envelope)
    _one_line(e)
    bad = b.copy()
    bad[2] = np.nan
    with pytest.raises(ValueError, match="candidate_momentum") as e:
        project_momentum_schedule(g, bad, g, b, fista_envelope)
    _one_line(e)
    with pytest.raises(ValueError, match="certified_momentum") as e:
        project_momentum_schedule(g, b, g, b[:-1], fista_envelope)
    _one_line(e)
    with pytest.raises(ValueError, match="mode") as e:
        project_momentum_schedule(g, b, g, b, fista_envelope, mode="diagonal")
    _one_line(e)
