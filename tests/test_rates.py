"""Classical rates: closed forms, provenance, assumption handling."""
import math

import numpy as np
import pytest

from unfoldkit.theory import rates
from unfoldkit.theory.bound import Assumption, Bound, Metric
from unfoldkit.unrolled.steps import fista_t


def test_drori_teboulle_values():
    b = rates.gd_convex_tight(1.0, 1.0, 5)
    # L R^2 / (4N + 2): 1/6, 1/10, 1/14, 1/18, 1/22 (the PEP values of the reference digest)
    np.testing.assert_allclose(b.values[1:], [1 / 6, 1 / 10, 1 / 14, 1 / 18, 1 / 22], rtol=1e-15)
    assert b.values[0] == 0.5 and b.tight and b.assumptions_hold
    half = rates.gd_convex_tight(2.0, 3.0, 4, step=0.25)  # h = 0.5
    assert half.at(4) == pytest.approx(2.0 * 9.0 / (4 * 4 * 0.5 + 2))


def test_textbook_and_fista_values():
    np.testing.assert_allclose(rates.gd_convex(2.0, 1.0, 3).values[1:], [1.0, 0.5, 1 / 3])
    np.testing.assert_allclose(rates.ista_convex_tight(1.0, 1.0, 3).values[1:], [0.25, 0.125, 1 / 12])
    f = rates.fista_convex(1.0, 1.0, 4)
    np.testing.assert_allclose(f.values[1:], [2 / 4, 2 / 9, 2 / 16, 2 / 25])
    ft = rates.fista_convex_t(1.0, 1.0, 8)
    t = fista_t(8)
    np.testing.assert_allclose(ft.values[1:], 1 / (2 * t[1:9] ** 2))
    assert np.all(ft.values[1:] <= rates.fista_convex(1.0, 1.0, 8).values[1:] * (1 + 1e-15))  # since t_k >= (k+1)/2
    assert math.isinf(f.values[0]) and math.isinf(rates.ista_convex(1.0, 1.0, 2).values[0])


def test_strongly_convex_rates():
    L, mu = 4.0, 0.4
    b = rates.gd_strongly_convex(L, mu, 2.0, 3, step=1 / L)
    np.testing.assert_allclose(b.values, 2.0 * (1 - mu / L) ** np.arange(4))
    opt = rates.gd_strongly_convex(L, mu, 1.0, 3, step=2 / (L + mu))
    kappa = L / mu
    assert opt.extra["rate"] == pytest.approx((kappa - 1) / (kappa + 1))
    obj = rates.gd_strongly_convex_objective(L, mu, 1.0, 3, step=1 / L)
    np.testing.assert_allclose(obj.values, 0.5 * L * (1 - mu / L) ** (2 * np.arange(4)))
    assert obj.status == "derived" and b.metric == Metric.DISTANCE


def test_per_instance_radii_broadcast():
    b = rates.ista_convex(1.0, np.array([1.0, 2.0]), 3)
    assert b.values.shape == (4, 2)
    np.testing.assert_allclose(b.values[2], [0.25, 1.0])


def test_failed_assumption_blanks_the_bound():
    b = rates.gd_convex_tight(1.0, 1.0, 5, step=1.5)
    assert not b.assumptions_hold and np.all(np.isnan(b.values))
    (failed,) = b.failed
    assert failed.measured == pytest.approx(1.5) and "gamma L <= 1" in failed.required
    assert "assumption fails" in b.summary()
    sc = rates.gd_strongly_convex(1.0, 0.1, 1.0, 3, step=2.0)  # gamma = 2/L is not < 2/L
    assert not sc.assumptions_hold
    bad_mu = rates.gd_strongly_convex(1.0, 2.0, 1.0, 3)
    assert not bad_mu.assumptions_hold


def test_step_exactly_one_over_L_is_accepted_despite_rounding():
    L = 3.0000000000000004
    assert rates.gd_convex_tight(L, 1.0, 2, step=1 / L).assumptions_hold


@pytest.mark.parametrize("args", [(0.0, 1.0, 3), (1.0, -1.0, 3), (1.0, 1.0, -2), (1.0, float("nan"), 2)])
def test_bad_inputs_raise(args):
    with pytest.raises(ValueError):
        rates.gd_convex(*args)


def test_bound_provenance_and_serialisation():
    b = rates.gd_convex_tight(1.0, 1.0, 2)
    d = b.to_dict()
    assert d["theorem"].startswith("Thm 3.1") and "Drori" in d["source"] and d["status"] == "confirmed"
    assert d["assumptions"][1]["name"].startswith("step size")
    assert rates.ista_convex_tight(1.0, 1.0, 2).to_dict()["values"][0] == "inf"
    name, holds, measured, required = b.assumptions[1]
    assert holds is True and measured == pytest.approx(1.0)
    with pytest.raises(ValueError, match="metric"):
        Bound("x", np.arange(2), np.zeros(2), "nope", "t", "s", "confirmed")
    with pytest.raises(ValueError, match="status"):
        Bound("x", np.arange(2), np.zeros(2), Metric.DISTANCE, "t", "s", "guessed")
    assert "FAILS" in str(Assumption("a", False, 2.0, "<= 1"))
