"""The unfolded-model contract, checked on every family of the registry.

Shapes and batching, dtypes, initialization at the classical algorithm (same iterates as the solvers of
``unrolled/solvers.py``), config round trip, parameter_info, schedule, gradient flow, validation, CUDA.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from unfoldkit.unrolled import LeastSquares, SparseRecovery, WorstCaseHuber, run_admm, run_fista, run_gd, run_ista
from unfoldkit.unrolled.models import MODELS, PARADIGMS, ParamInfo, UnfoldedModel, make_model

FAMILIES = sorted(MODELS)
K = 5
SCHEDULE_KEYS = {"step", "threshold", "momentum", "rho", "percent"}

#: the classical solver each family starts from
CLASSICAL = {
    "ista-learned-step": run_ista, "fista-unfolded": run_fista, "admm-unfolded": run_admm,
    "gd-unfolded": run_gd, "ista-weighted-l1": run_ista, "ista-correction": run_ista, "lista": run_ista,
    "lista-cp": run_ista, "lista-cpss": run_ista, "alista": run_ista,
}

#: families that accept any Problem, families that need a matrix A (l1 or no regularizer), LASSO only
ANY_PROBLEM = {"gd-unfolded", "fista-unfolded", "ista-correction", "ista-learned-step"}
LINEAR = {"lista", "lista-cp", "lista-cpss", "alista"}
LASSO_ONLY = {"admm-unfolded", "ista-weighted-l1"}


@pytest.fixture(scope="module")
def sparse() -> SparseRecovery:
    return SparseRecovery(m=12, n=24, sparsity=0.2, lam=0.05, seed=3)


@pytest.fixture(scope="module")
def lstsq() -> LeastSquares:
    return LeastSquares(m=16, n=10, kappa=20.0, seed=1)


@pytest.fixture(scope="module")
def huber() -> WorstCaseHuber:
    return WorstCaseHuber(n=6, horizon=K)


def _problems(family: str, sparse, lstsq, huber) -> list:
    out = [sparse]
    if family in ANY_PROBLEM | LINEAR:
        out.append(lstsq)
    if family in ANY_PROBLEM:
        out.append(huber)
    return out


def _perturb(model: UnfoldedModel, seed: int = 0, scale: float = 0.05) -> None:
    """Move every learned parameter a little (as training would), keeping steps and rho positive."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            noise = torch.rand(p.shape, generator=gen, dtype=torch.float64).to(p.dtype) - 0.5
            p.add_(scale * noise * (p.abs() + 1e-3))


def test_registry_names_and_paradigms() -> None:
    assert set(MODELS) == {"ista-learned-step", "fista-unfolded", "admm-unfolded", "gd-unfolded",
                           "ista-weighted-l1", "ista-correction", "lista", "lista-cp", "lista-cpss", "alista"}
    assert PARADIGMS == {
        "hyperparameters": ("ista-learned-step", "fista-unfolded", "admm-unfolded", "gd-unfolded"),
        "objective": ("ista-weighted-l1",),
        "correction": ("ista-correction",),
        "inductive-bias": ("lista", "lista-cp", "lista-cpss", "alista"),
    }
    for name, cls in MODELS.items():
        assert issubclass(cls, UnfoldedModel) and cls.family == name
        assert callable(getattr(cls, "from_classical")) and callable(getattr(cls, "schedule"))
    with pytest.raises(ValueError, match="unknown model family"):
        make_model("no-such-model", SparseRecovery(m=4, n=8))


@pytest.mark.parametrize("family", FAMILIES)
def test_make_model_names_an_unknown_or_missing_argument(family: str, sparse) -> None:
    """A keyword the family does not take is a ValueError naming it and the accepted ones (not a TypeError)."""
    import inspect

    accepted = ", ".join(list(inspect.signature(MODELS[family]).parameters)[1:])
    with pytest.raises(ValueError, match=rf"make_model\('{family}'\): unknown argument foo; {family} accepts "
                                         rf"{accepted}$"):
        make_model(family, sparse, num_layers=K, foo=1)
    with pytest.raises(ValueError, match=rf"make_model\('{family}'\): missing argument num_layers"):
        make_model(family, sparse)
    assert make_model(family, sparse, num_layers=K).num_layers == K


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("batch", [1, 7])
def test_shapes_and_trajectory(family: str, batch: int, sparse) -> None:
    model = MODELS[family](sparse, K)
    y = sparse.sample(batch, rng=0).y
    out = model(y)
    traj = model(y, trajectory=True)
    assert out.shape == (batch, sparse.n) and out.dtype == torch.float32
    assert traj.shape == (K + 1, batch, sparse.n)
    assert torch.equal(traj[0], torch.zeros_like(traj[0]))
    torch.testing.assert_close(traj[-1], out, rtol=0, atol=0)
    assert torch.isfinite(traj).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_batching_is_rowwise(family: str, sparse) -> None:
    """Each row of a batch is processed independently: batched output = stacked single-row outputs."""
    model = MODELS[family](sparse, K, dtype=torch.float64)
    _perturb(model)
    y = sparse.sample(4, rng=5).y
    full = model(y, trajectory=True)
    rows = torch.stack([model(y[i:i + 1], trajectory=True)[:, 0] for i in range(4)], dim=1)
    torch.testing.assert_close(full, rows, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_from_classical_matches_solver_float64(family: str, sparse, lstsq, huber) -> None:
    for problem in _problems(family, sparse, lstsq, huber):
        y = problem.sample(6, rng=11).y
        ref = CLASSICAL[family](problem, y, K).iterates
        with torch.no_grad():
            got = MODELS[family].from_classical(problem, K, dtype=torch.float64)(y, trajectory=True)
        assert got.dtype == torch.float64
        scale = max(1.0, float(ref.abs().max()))
        err = float((got - ref).abs().max()) / scale
        assert err <= 1e-12, f"{family} on {problem!r}: relative error {err:.2e}"


@pytest.mark.parametrize("family", FAMILIES)
def test_from_classical_matches_solver_float32(family: str, sparse, lstsq, huber) -> None:
    for problem in _problems(family, sparse, lstsq, huber):
        y = problem.sample(6, rng=12, dtype=torch.float32).y
        ref = CLASSICAL[family](problem, y.double(), K).iterates
        with torch.no_grad():
            got = MODELS[family].from_classical(problem, K)(y, trajectory=True)
        assert got.dtype == torch.float32
        scale = max(1.0, float(ref.abs().max()))
        err = float((got.double() - ref).abs().max()) / scale
        assert err <= 1e-5, f"{family} on {problem!r}: relative error {err:.2e}"


@pytest.mark.parametrize("family", ["ista-learned-step", "fista-unfolded", "gd-unfolded", "ista-correction",
                                    "lista", "lista-cp", "alista"])
def test_from_classical_with_a_step_schedule(family: str, sparse) -> None:
    """A varying classical step schedule is reproduced too (the solvers accept one value per step)."""
    steps = (np.linspace(0.5, 1.5, K) / sparse.L).tolist()
    y = sparse.sample(3, rng=2).y
    ref = CLASSICAL[family](sparse, y, K, step=steps).iterates
    got = MODELS[family].from_classical(sparse, K, step=steps, dtype=torch.float64)(y, trajectory=True)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


def test_admm_with_a_rho_schedule(sparse) -> None:
    rhos = np.linspace(0.5, 2.0, K) * sparse.L
    y = sparse.sample(3, rng=2).y
    ref = run_admm(sparse, y, K, rho=rhos).iterates
    got = MODELS["admm-unfolded"].from_classical(sparse, K, rho=rhos, dtype=torch.float64)(y, trajectory=True)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_dtype_and_to(family: str, sparse) -> None:
    y = sparse.sample(2, rng=0).y
    m64 = MODELS[family](sparse, 3, dtype="float64")
    assert m64.model_dtype == torch.float64 and m64(y).dtype == torch.float64
    assert all(p.dtype == torch.float64 for p in m64.parameters())
    m32 = MODELS[family](sparse, 3)
    assert m32(y).dtype == torch.float32  # float64 input is cast to the model dtype
    m32.to(torch.float64)
    assert m32.model_dtype == torch.float64 and m32.config()["dtype"] == "float64"
    torch.testing.assert_close(m32(y), m64(y), rtol=1e-5, atol=1e-5)
    for bad in (torch.float16, "half", torch.int64, None):
        with pytest.raises(ValueError, match="dtype"):
            MODELS[family](sparse, 3, dtype=bad)


@pytest.mark.parametrize("family", FAMILIES)
def test_config_round_trip(family: str, sparse) -> None:
    model = MODELS[family](sparse, 4, dtype=torch.float64)
    _perturb(model, seed=1)
    config = json.loads(json.dumps(model.config()))
    assert config["num_layers"] == 4 and config["dtype"] == "float64"
    rebuilt = make_model(family, sparse, **config)
    rebuilt.load_state_dict(model.state_dict())
    y = sparse.sample(3, rng=4).y
    torch.testing.assert_close(rebuilt(y, trajectory=True), model(y, trajectory=True), rtol=0, atol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_parameter_info_describes_every_tensor(family: str, sparse) -> None:
    model = MODELS[family](sparse, K)
    info = model.parameter_info()
    assert all(isinstance(i, ParamInfo) for i in info)
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    learned = {i.name for i in info if i.learned}
    assert learned == set(params), "every nn.Parameter is described, and only those are learned"
    for i in info:
        tensor = params.get(i.name, buffers.get(i.name))
        assert tensor is not None, i.name
        assert tuple(tensor.shape) == i.shape
        assert i.learned == (i.name in params and tensor.requires_grad)
        assert i.meaning
        if i.shape and i.shape[0] in (K, K - 1) and len(i.shape) == 1:
            assert not i.tied, f"{i.name}: a per-layer schedule is untied"


@pytest.mark.parametrize("family", FAMILIES)
def test_schedule_is_float64_per_layer(family: str, sparse) -> None:
    model = MODELS[family](sparse, K)
    sched = model.schedule()
    assert sched and set(sched) <= SCHEDULE_KEYS
    for key, values in sched.items():
        assert isinstance(values, np.ndarray) and values.dtype == np.float64 and values.shape == (K,), key
        assert np.all(np.isfinite(values))


def test_schedule_values_are_the_classical_ones(sparse) -> None:
    L, lam = sparse.L, sparse.lam
    np.testing.assert_allclose(MODELS["gd-unfolded"].from_classical(sparse, K, dtype="float64")
                               .schedule()["step"], np.full(K, 1 / L), rtol=1e-15)
    sched = MODELS["ista-learned-step"].from_classical(sparse, K, dtype="float64").schedule()
    np.testing.assert_allclose(sched["threshold"], np.full(K, lam / L), rtol=1e-15)
    sched = MODELS["fista-unfolded"].from_classical(sparse, K, dtype="float64").schedule()
    from unfoldkit.unrolled.steps import fista_momentum
    np.testing.assert_allclose(sched["momentum"], fista_momentum(K), rtol=1e-15)
    sched = MODELS["admm-unfolded"].from_classical(sparse, K, dtype="float64").schedule()
    np.testing.assert_allclose(sched["rho"], np.full(K, L), rtol=1e-14)
    np.testing.assert_allclose(sched["threshold"], np.full(K, lam / L), rtol=1e-15)
    sched = MODELS["lista-cpss"](sparse, 14).schedule()
    np.testing.assert_allclose(sched["percent"], np.minimum(1.2 * np.arange(1, 15), 13.0))
    assert MODELS["lista-cpss"].from_classical(sparse, K).schedule()["percent"].max() == 0.0


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_reach_every_learned_parameter(family: str, sparse) -> None:
    model = MODELS[family](sparse, K, dtype=torch.float64)
    batch = sparse.sample(16, rng=7)

    def loss() -> torch.Tensor:
        traj = model(batch.y, trajectory=True)
        return ((traj[1:] - batch.x) ** 2).sum(dim=-1).mean()

    if family == "ista-correction":
        # the zero output layer blocks the hidden layer's gradient at initialization: one step unblocks it
        opt = torch.optim.SGD(model.parameters(), lr=1e-2)
        loss().backward()
        opt.step()
        opt.zero_grad()
    loss().backward()
    per_layer = {"step", "threshold", "momentum", "log_rho", "gamma"}
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{family}: no gradient for {name}"
        assert torch.isfinite(p.grad).all(), name
        assert float(p.grad.abs().sum()) > 0, f"{family}: zero gradient for {name}"
        if name in per_layer:
            assert bool((p.grad != 0).all()), f"{family}: a layer of {name} gets no gradient: {p.grad}"


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_inputs_raise_clear_errors(family: str, sparse) -> None:
    model = MODELS[family](sparse, 2)
    y = sparse.sample(3, rng=0).y
    bad = y.clone()
    bad[1, 2] = math.nan
    with pytest.raises(ValueError, match=rf"{family}.*NaN"):
        model(bad)
    with pytest.raises(ValueError, match=rf"{family} on SparseRecovery.*shape"):
        model(torch.zeros(3, sparse.m + 1))
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(sparse.m))
    with pytest.raises(ValueError, match="torch.Tensor"):
        model(y.numpy())
    for layers in (0, -3, 2.5, True, "3"):
        with pytest.raises(ValueError, match="num_layers"):
            MODELS[family](sparse, layers)
    with pytest.raises(ValueError, match="num_layers"):
        MODELS[family].from_classical(sparse, 0)
    with pytest.raises(ValueError, match="Problem"):
        MODELS[family](object(), 3)


@pytest.mark.parametrize("family", sorted(LINEAR | LASSO_ONLY))
def test_incompatible_problems_are_named(family: str, lstsq, huber) -> None:
    bad = [huber] if family in LINEAR else [huber, lstsq]
    for problem in bad:
        with pytest.raises(ValueError, match=type(problem).__name__):
            MODELS[family](problem, 3)


@pytest.mark.parametrize("family", ["ista-learned-step", "fista-unfolded", "gd-unfolded", "ista-correction",
                                    "lista", "lista-cp", "lista-cpss", "alista"])
def test_bad_steps_raise(family: str, sparse) -> None:
    for step in (0.0, -0.1, math.nan, [0.1, 0.2], "big"):
        with pytest.raises(ValueError, match="step"):
            MODELS[family](sparse, 3, step=step)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("family", FAMILIES)
def test_cuda_matches_cpu(family: str, sparse) -> None:
    model = MODELS[family](sparse, K, dtype=torch.float64)
    _perturb(model, seed=2)
    y = sparse.sample(5, rng=3).y
    cpu = model(y, trajectory=True)
    model.to("cuda")
    gpu = model(y.to("cuda"), trajectory=True)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-9)
    gpu[-1].sum().backward()
    assert all(p.grad is not None and p.grad.device.type == "cuda" for p in model.parameters())
