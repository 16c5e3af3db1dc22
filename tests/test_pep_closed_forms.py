"""PEP worst cases (our Gram engine) against the closed forms of theory/rates.py and published values."""
import numpy as np
import pytest

from unfoldkit.theory.bound import Metric
from unfoldkit.theory.pep import pep_worst_case, silver_rate, silver_steps
from unfoldkit.theory.rates import fista_convex_t, gd_convex_tight, gd_strongly_convex, ista_convex_tight
from unfoldkit.unrolled.steps import fista_momentum

RTOL = 1e-6
L, R = 2.5, 1.5  # not 1: checks the scaling with L and R too


def test_gd_step_one_over_L_is_drori_teboulle():
    """Drori & Teboulle 2014, Thm 3.1 at h = 1: L R^2 / (4N + 2), every layer N = 0..6."""
    N = 6
    pep = pep_worst_case(np.full(N, 1.0 / L), L=L, R=R)
    ref = gd_convex_tight(L, R, N)
    np.testing.assert_array_equal(pep.iterations, ref.iterations)
    np.testing.assert_allclose(pep.values, ref.values, rtol=RTOL)


@pytest.mark.parametrize("h", [0.25, 0.5, 0.8, 1.0])
def test_gd_step_h_over_L(h):
    """L R^2 / (4 N h + 2) for 0 < h <= 1 (Drori & Teboulle 2014, Thm 3.1), N = 1..3."""
    N = 3
    pep = pep_worst_case(np.full(N, h / L), L=L, R=R)
    ref = gd_convex_tight(L, R, N, step=h / L)
    assert ref.assumptions_hold
    np.testing.assert_allclose(pep.values, ref.values, rtol=RTOL)


def test_gd_long_steps_match_drori_teboulle_conjecture_values():
    """h = 1.5: the PEP values 0.125, 0.071429, 0.038462 (L = 1) quoted in the theory digest (section 1.1)."""
    pep = pep_worst_case(np.full(4, 1.5), L=1.0, layers=[1, 2, 4])
    np.testing.assert_allclose(pep.values, [0.125, 1 / 14, 1 / 26], rtol=RTOL)


@pytest.mark.parametrize("h", [0.5, 1.0])
def test_ista_is_r2_over_4_gamma_n(h):
    """Proximal gradient, step h/L: R^2 / (4 gamma N) (L R^2 / (4N) at h = 1; conjectured tight by Taylor,
    Hendrickx & Glineur 2018), N = 0..4 (+inf at N = 0: x_0 may lie outside dom h)."""
    N = 4
    pep = pep_worst_case(np.full(N, h / L), L=L, R=R, method="pgm")
    ref = ista_convex_tight(L, R, N, step=h / L)
    assert ref.assumptions_hold
    assert np.isinf(pep.values[0]) and np.isinf(ref.values[0])
    np.testing.assert_allclose(pep.values[1:], ref.values[1:], rtol=RTOL)


@pytest.mark.parametrize("method", ["gd", "pgm"])
@pytest.mark.parametrize("step_factor", [0.5, 1.0, "2/(L+mu)", 1.6])
def test_strongly_convex_distance_contraction(method, step_factor):
    """||x_N - x*||^2 <= max(|1 - gamma mu|, |1 - gamma L|)^{2N} R^2, tight (THG 2018, Thm 3.1), N = 0..4."""
    mu, N = 0.25, 4
    gamma = 2.0 / (L + mu) if step_factor == "2/(L+mu)" else step_factor / L
    pep = pep_worst_case(np.full(N, gamma), L=L, mu=mu, R=R, method=method, metric=Metric.SQ_DISTANCE)
    ref = gd_strongly_convex(L, mu, R, N, step=gamma)
    assert ref.assumptions_hold
    np.testing.assert_allclose(pep.values, ref.values**2, rtol=RTOL)
    dist = pep_worst_case(np.full(N, gamma), L=L, mu=mu, R=R, method=method, metric=Metric.DISTANCE, layers="final")
    np.testing.assert_allclose(dist.values, ref.values[-1:], rtol=RTOL)


def test_fista_below_beck_teboulle_and_digest_values():
    """FISTA (Beck-Teboulle momentum, step 1/L) is below L R^2 / (2 t_N^2) (Beck & Teboulle 2009, Thm 4.4)
    and equals the PEP values 0.25, 0.125, 0.051673 (N = 1, 2, 4; L = R = 1) quoted in the digest (1.4)."""
    N = 4
    pep = pep_worst_case(np.full(N, 1.0 / L), L=L, R=R, method="fista", momentum=fista_momentum(N))
    ref = fista_convex_t(L, R, N)
    assert np.all(pep.values[1:] <= ref.values[1:] * (1 + RTOL))
    assert np.all(pep.values[2:] < ref.values[2:] * 0.9)  # valid, not tight
    unit = pep_worst_case(np.ones(N), L=1.0, method="fista", layers=[1, 2, 4])
    np.testing.assert_allclose(unit.values, [0.25, 0.125, 0.051673], rtol=1e-5)


def test_silver_steps_below_altschuler_parrilo():
    """n = 7 silver steps: PEP <= L R^2 / (1 + sqrt(4 rho^6 - 3)) (Altschuler & Parrilo 2023, Thm 1.1), and equal
    to PEPit's documented value 0.184215... at L = 10 (MOSEK), i.e. 0.0184215 at L = 1."""
    pep = pep_worst_case(silver_steps(7, L), L=L, R=R, layers="final")
    assert pep.values[-1] <= silver_rate(7, L, R) * (1 + RTOL)
    unit = pep_worst_case(silver_steps(7, 1.0), L=1.0, layers="final")
    np.testing.assert_allclose(unit.values, [0.18421541696330856 / 10], rtol=RTOL)
