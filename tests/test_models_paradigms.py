"""Model-specific behaviour of paradigms 1-3: GD schedules for PEP, FISTA momentum, SLISTA thresholds,
the learned weighted-l1 objective, and the zero-initialised correction."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from unfoldkit.unrolled import LeastSquares, SparseRecovery, WorstCaseHuber, run_fista, run_gd, run_ista
from unfoldkit.unrolled.models import (
    AdmmUnfolded,
    FistaUnfolded,
    GdUnfolded,
    IstaCorrection,
    IstaLearnedStep,
    IstaWeightedL1,
)


@pytest.fixture(scope="module")
def sparse() -> SparseRecovery:
    return SparseRecovery(m=10, n=20, sparsity=0.2, lam=0.1, seed=5)


# ---- gd-unfolded: the schedule another engineer's PEP code reads --------------------------------------

@given(steps=st.lists(st.floats(0.01, 2.5), min_size=1, max_size=6))
def test_gd_from_steps_round_trips_its_schedule(steps: list[float]) -> None:
    problem = LeastSquares(m=8, n=5, kappa=4.0, seed=0)
    model = GdUnfolded.from_steps(problem, steps, dtype=torch.float64)
    assert model.num_layers == len(steps)
    np.testing.assert_array_equal(model.schedule()["step"], np.asarray(steps))
    y = problem.sample(2, rng=0).y
    with torch.no_grad():
        torch.testing.assert_close(model(y, trajectory=True), run_gd(problem, y, len(steps), step=steps).iterates,
                                   rtol=0, atol=1e-12)


def test_gd_from_steps_validation() -> None:
    problem = WorstCaseHuber(n=3, horizon=4)
    assert GdUnfolded.from_steps(problem, torch.tensor([0.5, 1.0])).num_layers == 2
    for bad in ([], [[0.1, 0.2]], [0.1, -0.2], [0.1, float("inf")], 0.5):
        with pytest.raises(ValueError, match="steps"):
            GdUnfolded.from_steps(problem, bad)


def test_gd_on_the_worst_case_huber_attains_drori_teboulle() -> None:
    """GD with step 1/L on the Drori-Teboulle function ends at f(x_N) = L R^2 / (4N + 2) (unfolded or not)."""
    n_steps = 5
    problem = WorstCaseHuber(n=4, L=2.0, R=1.5, horizon=n_steps)
    y = problem.sample(3, rng=1).y
    model = GdUnfolded.from_classical(problem, n_steps, dtype="float64")
    with torch.no_grad():
        value = problem.objective(model(y), y)
    torch.testing.assert_close(value, torch.full((3,), 2.0 * 1.5**2 / (4 * n_steps + 2), dtype=torch.float64))


# ---- fista-unfolded ------------------------------------------------------------------------------------

def test_fista_momentum_beta0_is_not_a_parameter(sparse) -> None:
    model = FistaUnfolded(sparse, 4, momentum=[0.7, 0.1, 0.2, 0.3], dtype="float64")
    assert model.momentum.shape == (3,)
    np.testing.assert_array_equal(model.schedule()["momentum"], [0.0, 0.1, 0.2, 0.3])
    y = sparse.sample(3, rng=0).y
    ref = run_fista(sparse, y, 4, momentum=[0.7, 0.1, 0.2, 0.3]).iterates  # beta_0 has no effect there either
    with torch.no_grad():
        torch.testing.assert_close(model(y, trajectory=True), ref, rtol=0, atol=1e-12)
    assert FistaUnfolded(sparse, 1).momentum is None
    assert FistaUnfolded(sparse, 1).schedule()["momentum"].tolist() == [0.0]
    with pytest.raises(ValueError, match="momentum"):
        FistaUnfolded(sparse, 3, momentum=[0.1, float("nan"), 0.2])


# ---- ista-learned-step ---------------------------------------------------------------------------------

def test_slista_threshold_follows_the_step(sparse) -> None:
    model = IstaLearnedStep(sparse, 4, learn_threshold=False, dtype="float64")
    assert {n for n, _ in model.named_parameters()} == {"step"}
    with torch.no_grad():
        model.step.mul_(torch.tensor([1.0, 1.5, 0.5, 2.0], dtype=torch.float64))
    sched = model.schedule()
    np.testing.assert_allclose(sched["threshold"], sparse.lam * sched["step"], rtol=1e-15)
    y = sparse.sample(3, rng=2).y
    with torch.no_grad():
        torch.testing.assert_close(model(y, trajectory=True),
                                   run_ista(sparse, y, 4, step=sched["step"]).iterates, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="learn_threshold"):
        IstaLearnedStep(sparse, 3, learn_threshold=False, threshold=0.1)
    with pytest.raises(ValueError, match="threshold"):
        IstaLearnedStep(sparse, 3, threshold=-0.1)


def test_admm_rho_stays_positive(sparse) -> None:
    model = AdmmUnfolded(sparse, 3, dtype="float64")
    with torch.no_grad():
        model.log_rho.sub_(50.0)
    assert np.all(model.schedule()["rho"] > 0)
    assert torch.isfinite(model(sparse.sample(2, rng=0).y)).all()
    with pytest.raises(ValueError, match="rho"):
        AdmmUnfolded(sparse, 3, rho=0.0)


# ---- ista-weighted-l1 ----------------------------------------------------------------------------------

def test_weighted_l1_is_ista_on_its_learned_objective(sparse) -> None:
    """With arbitrary w > 0 every layer is one ISTA step on F_w, so F_w decreases monotonically."""
    model = IstaWeightedL1(sparse, 30, dtype="float64")
    rng = np.random.default_rng(0)
    w = sparse.lam * rng.uniform(0.2, 3.0, sparse.n)
    with torch.no_grad():
        model.log_weights.copy_(torch.as_tensor(np.log(w)))
    np.testing.assert_allclose(model.weights(), w, rtol=1e-14)
    y = sparse.sample(4, rng=1).y
    with torch.no_grad():
        traj = model(y, trajectory=True)
        values = torch.stack([model.objective(x, y) for x in traj])
    assert bool((values[1:] <= values[:-1] + 1e-12).all())
    # equal weights: ISTA on a LASSO with that lambda
    lam_model = IstaWeightedL1(sparse, 5, learn="lambda", weights=0.3, dtype="float64")
    other = SparseRecovery(m=10, n=20, sparsity=0.2, lam=0.3, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(lam_model(y, trajectory=True), run_ista(other, y, 5).iterates,
                                   rtol=0, atol=1e-12)
    np.testing.assert_allclose(lam_model.schedule()["threshold"], np.full(5, 0.3 / sparse.L), rtol=1e-14)
    assert [i.name for i in lam_model.parameter_info()] == ["log_lam"]
    info = IstaWeightedL1(sparse, 5).parameter_info()
    assert info[0].shape == (sparse.n,) and info[0].tied and info[0].learned


def test_weighted_l1_validation(sparse) -> None:
    for kwargs in ({"learn": "both"}, {"weights": -1.0}, {"weights": [0.1, 0.2]}, {"weights": 0.0},
                   {"learn": "lambda", "weights": [0.1] * sparse.n}, {"step": 0.0}, {"step": "x"}):
        with pytest.raises(ValueError):
            IstaWeightedL1(sparse, 3, **kwargs)


# ---- ista-correction -----------------------------------------------------------------------------------

@pytest.mark.parametrize("correction", ["coordinate", "vector"])
def test_correction_starts_at_zero_and_learns(sparse, correction: str) -> None:
    model = IstaCorrection(sparse, 4, hidden=8, correction=correction, dtype="float64")
    for net in model.corrections:
        assert torch.count_nonzero(net.last.weight) == 0 and torch.count_nonzero(net.last.bias) == 0
        assert net.first.weight.shape == ((8, 3) if correction == "coordinate" else (8, sparse.n))
        if correction == "coordinate":
            assert torch.count_nonzero(net.linear.weight) == 0
    batch = sparse.sample(16, rng=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = ((model(batch.y) - batch.x) ** 2).sum(dim=-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    with torch.no_grad():
        z = model.ista_step(0, torch.zeros(16, sparse.n, dtype=torch.float64), batch.y)
        assert float(model.correction_term(0, z, torch.zeros_like(z), z).abs().max()) > 0
    same = IstaCorrection(sparse, 4, hidden=8, seed=0, correction=correction, dtype="float64")
    other = IstaCorrection(sparse, 4, hidden=8, seed=1, correction=correction, dtype="float64")
    again = IstaCorrection(sparse, 4, hidden=8, correction=correction, dtype="float64")
    assert torch.equal(same.corrections[0].first.weight, again.corrections[0].first.weight)
    assert not torch.equal(same.corrections[0].first.weight, other.corrections[0].first.weight)
    for bad in ({"hidden": 0}, {"hidden": 2.5}, {"seed": -1}, {"correction": "global"}):
        with pytest.raises(ValueError):
            IstaCorrection(sparse, 2, **bad)


def test_coordinate_correction_expresses_fista_momentum() -> None:
    """With the linear branch a_k = (beta_{k+1}, -beta_{k+1}, 0) and a zero MLP, the ISTA outputs z^k of
    ista-correction are FISTA's iterates x_{k+1} (Beck-Teboulle momentum): the correction can represent
    FISTA exactly, which the "vector" correction (it sees z^k only) cannot."""
    from unfoldkit.unrolled.steps import fista_momentum

    problem = SparseRecovery(m=30, n=60, sparsity=0.1, lam=0.05, seed=1)
    y = problem.sample(8, rng=2).y.to(torch.float64)
    K = 7
    model = IstaCorrection(problem, K, hidden=4, dtype="float64")
    beta = fista_momentum(K + 1)
    with torch.no_grad():
        for k, net in enumerate(model.corrections):
            net.linear.weight.copy_(torch.tensor([[beta[k + 1], -beta[k + 1], 0.0]], dtype=torch.float64))
        state = model._init_state(y)
        zs = []
        for k in range(K):
            state = model._layer(k, state, y)
            zs.append(state[1])
    fista = run_fista(problem, y, K).iterates[1:]
    # identical arithmetic up to the order of a few float64 additions: 1e-12 absolute on O(1) entries
    torch.testing.assert_close(torch.stack(zs), fista, rtol=0, atol=1e-12)


def test_weighted_l1_with_fista_solver_is_fista_at_init():
    """Paradigm 2 with FISTA as the classical solver of the learned objective reproduces run_fista."""
    from unfoldkit.unrolled.models import MODELS
    from unfoldkit.unrolled.problems import SparseRecovery
    from unfoldkit.unrolled.solvers import run_fista

    p = SparseRecovery(m=15, n=30, lam=0.05, seed=3)
    y = p.sample(4, rng=0).y
    model = MODELS["ista-weighted-l1"].from_classical(p, 7, solver="fista", dtype=torch.float64)
    traj = model(y, trajectory=True)
    torch.testing.assert_close(traj, run_fista(p, y, 7).iterates, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="solver"):
        MODELS["ista-weighted-l1"](p, 3, solver="admm")
    assert model.config()["solver"] == "fista"
