"""theory/lipschitz/lower.py: attained lower bounds on Lip(y -> x_k), per layer.

Checked: exactness on linear maps (a matrix, a LISTA with zero thresholds, the power-iteration and
reverse-mode paths), validity below the naive LISTA upper bound, that the reported values are attained
(recomputed at the reported argmax / pairs), determinism, the callable path, and one-line errors.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from unfoldkit.theory.lipschitz import lower
from unfoldkit.theory.lipschitz.lower import LowerBound, lipschitz_lower_bound
from unfoldkit.unrolled.models import FistaUnfolded, IstaLearnedStep, Lista, ListaCP
from unfoldkit.unrolled.problems.sparse import SparseRecovery

FAST = {"starts": 4, "ascent_steps": 4}


@pytest.fixture(scope="module")
def problem() -> SparseRecovery:
    return SparseRecovery(m=10, n=20, seed=0)


def perturbed_lista(problem: SparseRecovery, layers: int = 4, seed: int = 1) -> Lista:
    """An ISTA-initialised LISTA with perturbed weights and thresholds (a stand-in for a trained one)."""
    model = Lista.from_classical(problem, layers, dtype="float64")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        model.threshold.abs_()
    return model


def naive_upper(model: Lista) -> np.ndarray:
    """Lip_{k+1} <= ||W_2^k|| Lip_k + ||W_1^k|| from Lip_0 = 0 (x_0 = 0): a valid upper bound per layer."""
    out, lip = [], 0.0
    for k in range(model.num_layers):
        w1, w2 = (w.detach() for w in model.layer_weights(k))
        lip = float(torch.linalg.matrix_norm(w2, 2)) * lip + float(torch.linalg.matrix_norm(w1, 2))
        out.append(lip)
    return np.array(out)


def check_shapes(lb: LowerBound, K: int, m: int) -> None:
    for arr in (lb.jacobian, lb.finite_difference, lb.best):
        assert arr.shape == (K,) and arr.dtype == np.float64
        assert np.all(np.isfinite(arr)) and np.all(arr >= 0)
    assert np.array_equal(lb.best, np.maximum(lb.jacobian, lb.finite_difference))
    assert lb.argmax.shape == (K, m) and lb.pairs.shape == (K, 2, m)
    assert lb.evaluations > 0 and lb.seconds >= 0
    json.dumps(lb.to_dict())


def test_linear_callable_is_exact() -> None:
    gen = np.random.default_rng(3)
    M = torch.as_tensor(gen.standard_normal((7, 5)))
    lb = lipschitz_lower_bound(lambda y: y @ M.T, input_dim=5, **FAST)
    check_shapes(lb, 1, 5)
    norm = float(torch.linalg.matrix_norm(M, 2))
    assert lb.jacobian_method == "exact-svd"
    assert lb.jacobian[0] == pytest.approx(norm, rel=1e-9)
    assert 0 < lb.finite_difference[0] <= norm * (1 + 1e-9)
    assert lb.finite_difference[0] == pytest.approx(norm, rel=1e-6)   # pairs along the top singular vector


def test_zero_threshold_lista_is_the_product_of_its_linear_maps(problem: SparseRecovery) -> None:
    model = perturbed_lista(problem)
    model.threshold.data.zero_()
    lb = lipschitz_lower_bound(model, **FAST)
    check_shapes(lb, 4, problem.m)
    M = torch.zeros(problem.n, problem.m, dtype=torch.float64)
    for k in range(4):
        w1, w2 = (w.detach() for w in model.layer_weights(k))
        M = w2 @ M + w1                       # x_{k+1} = W1 y + W2 x_k, linear
        assert lb.jacobian[k] == pytest.approx(float(torch.linalg.matrix_norm(M, 2)), rel=1e-9)


@pytest.mark.parametrize("init", ["ista", "perturbed"])
def test_lista_lower_bound_below_naive_upper_bound(problem: SparseRecovery, init: str) -> None:
    model = Lista.from_classical(problem, 5, dtype="float64") if init == "ista" else perturbed_lista(problem, 5)
    lb = lipschitz_lower_bound(model, **FAST)
    check_shapes(lb, 5, problem.m)
    assert np.all(lb.best <= naive_upper(model) * (1 + 1e-9))
    assert np.all(lb.jacobian > 0)


def test_reported_values_are_attained(problem: SparseRecovery) -> None:
    model = perturbed_lista(problem)
    lb = lipschitz_lower_bound(model, **FAST)
    f = lambda y: model(y, trajectory=True)[1:]  # noqa: E731
    with torch.no_grad():
        a, b = torch.as_tensor(lb.pairs[:, 0]), torch.as_tensor(lb.pairs[:, 1])
        fa, fb = f(a), f(b)
    for k in range(4):
        ratio = float(torch.linalg.vector_norm(fa[k, k] - fb[k, k]) / torch.linalg.vector_norm(a[k] - b[k]))
        assert ratio == pytest.approx(lb.finite_difference[k], rel=1e-10)
        jac = torch.autograd.functional.jacobian(lambda y: f(y[None])[k, 0], torch.as_tensor(lb.argmax[k]))
        assert float(torch.linalg.matrix_norm(jac, 2)) == pytest.approx(lb.jacobian[k], rel=1e-9)


def test_deterministic_and_caller_model_untouched(problem: SparseRecovery) -> None:
    model = ListaCP.from_classical(problem, 3)            # float32: the function works on a float64 copy
    before = [p.detach().clone() for p in model.parameters()]
    one = lipschitz_lower_bound(model, seed=5, **FAST)
    two = lipschitz_lower_bound(model, seed=np.random.default_rng(5), **FAST)
    for name in ("jacobian", "finite_difference", "argmax", "pairs"):
        assert np.array_equal(getattr(one, name), getattr(two, name))
    assert one.evaluations == two.evaluations
    assert model.model_dtype == torch.float32 and all(p.dtype == torch.float32 for p in model.parameters())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))


@pytest.mark.parametrize("cls", [IstaLearnedStep, FistaUnfolded])
def test_other_families(problem: SparseRecovery, cls: type) -> None:
    model = cls.from_classical(problem, 3, dtype="float64")
    lb = lipschitz_lower_bound(model, num_layers=3, starts=2, ascent_steps=2)
    check_shapes(lb, 3, problem.m)


def test_three_d_callable_and_power_iteration(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = np.random.default_rng(0)
    q1, _ = np.linalg.qr(gen.standard_normal((6, 6)))
    q2, _ = np.linalg.qr(gen.standard_normal((4, 4)))
    M = torch.as_tensor(q1[:, :4] @ np.diag([3.0, 1.0, 0.5, 0.2]) @ q2.T)    # ||M|| = 3, gap 3
    fn = lambda y: torch.stack([y @ M.T, torch.relu(y @ M.T)])  # noqa: E731
    exact = lipschitz_lower_bound(fn, input_dim=4, num_layers=2, **FAST)
    check_shapes(exact, 2, 4)
    assert exact.jacobian[0] == pytest.approx(3.0, rel=1e-9) and exact.jacobian[1] <= 3.0 * (1 + 1e-9)
    monkeypatch.setattr(lower, "EXACT_MAX_SIZE", 0)
    power = lipschitz_lower_bound(fn, input_dim=4, **FAST)
    assert power.jacobian_method == f"power-iteration({lower.POWER_ITERS})"
    assert power.jacobian[0] == pytest.approx(3.0, rel=1e-9) and power.jacobian[1] <= 3.0 * (1 + 1e-9)


def test_reverse_mode_fallback_without_forward_ad() -> None:
    M = torch.as_tensor(np.random.default_rng(1).standard_normal((3, 5)))

    class NoJvp(torch.autograd.Function):      # no jvp: forward-mode AD raises NotImplementedError
        @staticmethod
        def forward(ctx: object, y: torch.Tensor) -> torch.Tensor:
            return y @ M.T

        @staticmethod
        def backward(ctx: object, g: torch.Tensor) -> torch.Tensor:
            return g @ M

    lb = lipschitz_lower_bound(NoJvp.apply, input_dim=5, starts=2, ascent_steps=1)
    assert lb.jacobian[0] == pytest.approx(float(torch.linalg.matrix_norm(M, 2)), rel=1e-9)


@pytest.mark.parametrize("kwargs, fn, message", [
    ({"starts": 0}, None, "starts must be a positive integer"),
    ({"ascent_steps": -1}, None, "ascent_steps must be a non-negative integer"),
    ({"scales": [1.0, -2.0]}, None, "scales must be a non-empty list of positive numbers"),
    ({"scales": []}, None, "scales must be a non-empty list"),
    ({"input_dim": 3}, None, "input_dim = 3 but the model's problem has obs_dim m = 10"),
    ({"num_layers": 7}, None, "num_layers = 7 but the map returns 2 layer"),
    ({"dtype": torch.int32}, None, "dtype must be torch.float32 or torch.float64"),
    ({}, lambda y: y, "input_dim is required"),
    ({"input_dim": 0}, lambda y: y, "input_dim must be a positive integer"),
    ({"input_dim": 3}, lambda y: y[:-1] if len(y) > 1 else y[:, :, None], r"must return \(K, B, n\) or \(B, n\)"),
    ({"input_dim": 3}, lambda y: y.numpy(), r"got ndarray"),
    ({"input_dim": 3}, lambda y: y / 0.0, "returned NaN or inf"),
    ({"input_dim": 3}, 3, "must be an UnfoldedModel or a callable"),
])
def test_one_line_errors(problem: SparseRecovery, kwargs: dict, fn: object, message: str) -> None:
    target = Lista.from_classical(problem, 2, dtype="float64") if fn is None else fn
    with pytest.raises(ValueError, match=message) as err:
        lipschitz_lower_bound(target, **kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(problem: SparseRecovery) -> None:
    model = perturbed_lista(problem)
    cpu = lipschitz_lower_bound(model, **FAST)
    gpu = lipschitz_lower_bound(model.cuda(), **FAST)
    assert np.all(gpu.best <= naive_upper(model.cpu()) * (1 + 1e-9))
    np.testing.assert_allclose(gpu.jacobian, cpu.jacobian, rtol=0.2)
