"""Step functions and classical solvers: trajectories, schedules, momentum, ADMM."""
import numpy as np
import pytest
import torch

from unfoldkit.unrolled.operators import soft_threshold
from unfoldkit.unrolled.problems import LeastSquares, SparseRecovery
from unfoldkit.unrolled.solvers import run_admm, run_fista, run_gd, run_ista
from unfoldkit.unrolled.steps import fista_momentum, fista_t


@pytest.fixture(scope="module")
def lasso():
    p = SparseRecovery(m=20, n=40, sparsity=0.15, snr_db=40.0, lam=0.05, seed=0)
    y = p.sample(5, rng=0).y
    return p, y, p.reference(y)


def test_trajectory_shapes_and_start(lasso):
    p, y, _ = lasso
    for run in (run_gd, run_ista, run_fista, run_admm):
        t = run(p, y, 7)
        assert t.iterates.shape == (8, 5, 40)
        assert torch.equal(t.iterates[0], torch.zeros(5, 40, dtype=torch.float64))
    assert run_ista(p, y, 0).iterates.shape == (1, 5, 40)


def test_ista_step_is_the_prox_gradient_map(lasso):
    p, y, _ = lasso
    t = run_ista(p, y, 1)
    gamma = 1 / p.L
    expected = soft_threshold(y @ torch.as_tensor(p.A) * gamma, gamma * p.lam)
    assert torch.allclose(t.iterates[1], expected, atol=1e-14)


@pytest.mark.parametrize("run", [run_ista, run_fista, run_admm])
def test_solvers_reach_the_reference(lasso, run):
    p, y, ref = lasso
    t = run(p, y, 3000)
    gap = t.objective_gap(p, y, ref)[-1]
    # converged to the reference value within 1e-9 (reference certified to its duality gap)
    assert float(gap.abs().max()) < 1e-9 + ref.max_gap


def test_step_schedules_are_validated(lasso):
    p, y, _ = lasso
    with pytest.raises(ValueError, match="step"):
        run_ista(p, y, 3, step=0.0)
    with pytest.raises(ValueError, match="step"):
        run_gd(p, y, 3, step=[0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        run_gd(p, y, 2, step=[0.1, float("nan")])
    with pytest.raises(ValueError, match="num_steps"):
        run_gd(p, y, -1)
    with pytest.raises(ValueError, match="rho"):
        run_admm(p, y, 2, rho=-1.0)
    with pytest.raises(ValueError, match=r"shape \(batch, 20\)"):
        run_ista(p, y[:, :3], 2)
    with pytest.raises(ValueError, match="LASSO"):
        run_admm(LeastSquares(m=5, n=4), torch.zeros(1, 5, dtype=torch.float64), 2)
    t = run_gd(p, y, 2, step=[0.1, 0.2])
    assert t.params["step"] == [0.1, 0.2]


def test_fista_momentum_matches_beck_teboulle():
    t = fista_t(6)
    assert t[1] == 1.0
    for k in range(1, 6):
        assert t[k + 1] == pytest.approx((1 + np.sqrt(1 + 4 * t[k] ** 2)) / 2)
        assert t[k] >= (k + 1) / 2  # Beck & Teboulle 2009, Lemma 4.3
    beta = fista_momentum(5)
    assert beta[0] == 0.0 and beta[1] == 0.0  # y_1 = x_0 and t_1 = 1
    assert beta[2] == pytest.approx((t[2] - 1) / t[3])


def test_gd_on_quadratic_matches_closed_form():
    p = LeastSquares(m=6, n=4, kappa=5.0, seed=1)
    y = p.sample(2, rng=0).y
    ref = p.reference(y)
    t = run_gd(p, y, 10, step=0.3)
    a = torch.as_tensor(p.A)
    m = torch.eye(4, dtype=torch.float64) - 0.3 * a.T @ a
    expected = (t.iterates[0] - ref.x) @ torch.linalg.matrix_power(m, 10).T + ref.x
    assert torch.allclose(t.final, expected, atol=1e-12)
