"""theory.lipschitz.parameters: certified parameter-Lipschitz constants, checked against perturbed forward passes.

For each covered family: random y with ||y|| <= B, the parameters perturbed block by block within the
radius (each block by exactly its radius, in Frobenius norm), and
||x_k - x'_k|| <= sum_b kappa[k, b] ||dtheta_b|| (1 + 1e-9) + 1e-13 at every layer and sample; the absolute
1e-13 covers the float64 round-off of the two forward passes (||x_k|| <= 10 here, eps 2.2e-16, K <= 5 layers).
A radius-0 bound is a derivative bound, so tiny perturbations (1e-6) are tested against the bound computed
with radius = the perturbation size, which holds exactly on that Theta.
"""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from unfoldkit.theory.lipschitz.parameters import ParameterLipschitz, parameter_lipschitz
from unfoldkit.unrolled.models import (
    AdmmUnfolded,
    Alista,
    FistaUnfolded,
    GdUnfolded,
    IstaCorrection,
    IstaLearnedStep,
    IstaWeightedL1,
    Lista,
    ListaCP,
    ListaCPSS,
)
from unfoldkit.unrolled.problems.sparse import SparseRecovery

K = 4
B = 2.0
F64 = "float64"


@pytest.fixture(scope="module")
def problem() -> SparseRecovery:
    return SparseRecovery(m=10, n=20, seed=0)


BUILDERS = {
    "lista": lambda p: Lista.from_classical(p, K, dtype=F64),
    "lista-tied": lambda p: Lista.from_classical(p, K, tied=True, dtype=F64),
    "lista-cp": lambda p: ListaCP.from_classical(p, K, dtype=F64),
    "lista-cp-tied": lambda p: ListaCP.from_classical(p, K, tied=True, dtype=F64),
    "lista-cpss-off": lambda p: ListaCPSS.from_classical(p, K, dtype=F64),
    "alista": lambda p: Alista(p, K, weight="frobenius", percent=0.0, max_percent=0.0, dtype=F64),
    "ista-learned-step": lambda p: IstaLearnedStep.from_classical(p, K, dtype=F64),
    "ista-slista": lambda p: IstaLearnedStep.from_classical(p, K, learn_threshold=False, dtype=F64),
    "weighted-l1": lambda p: IstaWeightedL1.from_classical(p, K, dtype=F64),
    "weighted-l1-lambda": lambda p: IstaWeightedL1.from_classical(p, K, learn="lambda", dtype=F64),
}


def _slot(model: torch.nn.Module, block: str) -> torch.Tensor:
    """The tensor (a view) holding a block; W2[k] of an untied LISTA is stored at W2[k - 1]."""
    name, _, idx = block.partition("[")
    t = getattr(model, name)
    if not idx:
        return t
    k = int(idx[:-1])
    return t[k - 1] if (isinstance(model, Lista) and name == "W2" and not model.tied) else t[k]


def _perturb(model: torch.nn.Module, blocks: list[str], sizes: dict[str, float], rng: np.random.Generator
             ) -> tuple[torch.nn.Module, np.ndarray]:
    """A copy of ``model`` with block b moved by a random direction of norm (1 - 1e-9) sizes[group of b] (inside
    Theta despite round-off); the norms moved.

    IstaWeightedL1 learns log w; the move is made on w itself (w' = w + dw), as the certificate is stated."""
    new = copy.deepcopy(model)
    norms = np.zeros(len(blocks))
    with torch.no_grad():
        for i, blk in enumerate(blocks):
            r = sizes[blk.partition("[")[0]] * (1 - 1e-9)
            if isinstance(new, IstaWeightedL1):
                w = new.l1_weights().detach().clone()
                d = torch.as_tensor(rng.standard_normal(w.shape), dtype=w.dtype)
                d = d * (r / max(float(torch.linalg.norm(d)), 1e-300))
                (new.log_weights if blk == "weights" else new.log_lam).copy_(torch.log(w + d))
                norms[i] = float(torch.linalg.norm((new.l1_weights() - w).reshape(-1)))
                continue
            t = _slot(new, blk)
            d = torch.as_tensor(rng.standard_normal(tuple(t.shape)), dtype=t.dtype)
            d = d * (r / max(float(torch.linalg.norm(d.reshape(-1))), 1e-300))
            t.add_(d)
            norms[i] = float(torch.linalg.norm(d.reshape(-1)))
    return new, norms


def _data(problem: SparseRecovery, rng: np.random.Generator, count: int = 32) -> torch.Tensor:
    """Random y with ||y|| = B for most rows, and a few strictly inside the ball."""
    y = rng.standard_normal((count, problem.m))
    scale = np.where(np.arange(count) < count - 4, 1.0, rng.uniform(0.1, 0.9, count))
    y = y / np.linalg.norm(y, axis=1, keepdims=True) * B * scale[:, None]
    return torch.as_tensor(y, dtype=torch.float64)


def _moved_start(model: torch.nn.Module, blocks: list[str], rng: np.random.Generator) -> torch.nn.Module:
    """Move a classical model off its ISTA values (a stand-in for a trained one), thresholds kept > 0."""
    sizes = {"W1": 0.1, "W2": 0.1, "W": 0.05, "gamma": 0.1, "step": 0.03, "threshold": 0.0, "weights": 0.02,
             "lam": 0.02}
    moved, _ = _perturb(model, blocks, sizes, rng)
    with torch.no_grad():
        thr = getattr(moved, "threshold", None)
        if isinstance(thr, torch.nn.Parameter):
            thr.mul_(torch.as_tensor(rng.uniform(0.5, 1.5, thr.shape), dtype=thr.dtype))
    return moved


def _radius_for(model: torch.nn.Module, cert0: ParameterLipschitz, scale: float) -> dict[str, float]:
    """Radii of a given scale, the threshold-like groups kept below the smallest threshold."""
    out = {}
    for g in cert0.radius:
        if g == "threshold":
            out[g] = min(scale, 0.5 * float(model.threshold.detach().min()))
        elif g in ("weights", "lam"):
            out[g] = min(scale, 0.5 * float(model.l1_weights().detach().min()))
        elif isinstance(model, IstaLearnedStep) and model.threshold is None:
            out[g] = min(scale, 0.5 * float(model.step.detach().min()))
        else:
            out[g] = scale
    return out


@pytest.mark.parametrize("scale", [1e-6, 0.05])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_bound_holds_under_perturbation(problem: SparseRecovery, name: str, scale: float) -> None:
    rng = np.random.default_rng(hash((name, scale)) % 2**32)
    base = BUILDERS[name](problem)
    model = _moved_start(base, parameter_lipschitz(base, B).blocks, rng)
    cert0 = parameter_lipschitz(model, B)
    rad = _radius_for(model, cert0, scale)
    cert = parameter_lipschitz(model, B, rad)
    nb = len(cert.blocks)
    assert cert.kappa.shape == (K, nb) and cert.euclidean.shape == (K,) and cert.output_radius.shape == (K,)
    np.testing.assert_allclose(cert.euclidean, np.linalg.norm(cert.kappa, axis=1))
    assert cert.num_parameters == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert np.all(cert0.kappa <= cert.kappa * (1 + 1e-12)) and np.all(cert0.output_radius <= cert.output_radius)
    y = _data(problem, rng)
    with torch.no_grad():
        x = model(y, trajectory=True).numpy()
        for _ in range(2):
            other, dnorm = _perturb(model, cert.blocks, rad, rng)
            assert np.all(dnorm <= np.array([rad[b.partition("[")[0]] for b in cert.blocks]) * (1 + 1e-12))
            x2 = other(y, trajectory=True).numpy()
            assert np.all(np.linalg.norm(x2[0], axis=1) == 0)
            measured = np.linalg.norm(x[1:] - x2[1:], axis=2)            # (K, samples)
            bound = cert.kappa @ dnorm                                     # (K,)
            assert np.all(measured <= bound[:, None] * (1 + 1e-9) + 1e-13), (measured.max(1), bound)
            assert measured.max() > 0
            for traj in (x, x2):                                           # both models lie in Theta
                assert np.all(np.linalg.norm(traj[1:], axis=2) <= cert.output_radius[:, None] * (1 + 1e-12))


def test_linear_case_is_not_loose(problem: SparseRecovery) -> None:
    """Thresholds 0 (a linear network), only step[0] moved by 1e-6: x_1 = gamma_0 A^T y, so
    measured / bound = ||A^T y|| / (||A|| ||y||) >= sigma_min(A) / sigma_max(A) = 0.25 here (m < n)."""
    model = IstaLearnedStep(problem, K, threshold=0.0, dtype=F64)
    delta = 1e-6
    cert = parameter_lipschitz(model, B, {"step": delta, "threshold": 0.0})
    j = cert.blocks.index("step[0]")
    y = _data(problem, np.random.default_rng(1))
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.step[0] += delta
        diff = np.linalg.norm((model(y, trajectory=True) - other(y, trajectory=True)).numpy(), axis=2)
    ratio = diff[1] / (cert.kappa[0, j] * delta)
    assert np.all(ratio <= 1 + 1e-9) and np.all(ratio > 0.1), ratio
    # a y along the top left singular vector makes layer 1 tight (ratio 1 up to the radius term)
    u = np.linalg.svd(problem.A)[0][:, 0]
    y1 = torch.as_tensor(B * u[None, :])
    with torch.no_grad():
        d1 = float(torch.linalg.norm(model(y1, trajectory=True)[1] - other(y1, trajectory=True)[1]))
    assert 0.999 < d1 / (cert.kappa[0, j] * delta) <= 1 + 1e-9


def test_tied_coefficient_is_the_sum_over_layers(problem: SparseRecovery) -> None:
    untied = parameter_lipschitz(Lista.from_classical(problem, K, dtype=F64), B, 0.01)
    tied = parameter_lipschitz(Lista.from_classical(problem, K, tied=True, dtype=F64), B, 0.01)
    col = lambda c, b: c.kappa[:, c.blocks.index(b)]  # noqa: E731
    for g in ("W1", "W2"):
        members = [b for b in untied.blocks if b.startswith(g + "[")]
        np.testing.assert_allclose(col(tied, g), sum(col(untied, b) for b in members), rtol=1e-12)
    np.testing.assert_allclose(col(tied, "threshold[2]"), col(untied, "threshold[2]"), rtol=1e-12)
    np.testing.assert_allclose(tied.output_radius, untied.output_radius, rtol=1e-12)
    n, m = problem.n, problem.m
    assert tied.num_parameters == n * m + n * n + K
    assert untied.num_parameters == K * n * m + (K - 1) * n * n + K


def test_hand_computed_one_layer(problem: SparseRecovery) -> None:
    """K = 1 ALISTA: a_1 = (|gamma| + r) ||W~|| B, kappa = [||W~|| B, sqrt(n)]."""
    model = Alista(problem, 1, percent=0.0, max_percent=0.0, dtype=F64)
    cert = parameter_lipschitz(model, B, 0.001)
    w = model.weight_matrix.numpy()
    nw = np.linalg.norm(w, 2)
    assert cert.blocks == ["gamma[0]", "threshold[0]"]
    np.testing.assert_allclose(cert.kappa[0], [nw * B, np.sqrt(problem.n)], rtol=1e-10)
    gamma0 = abs(float(model.gamma.detach()[0]))
    np.testing.assert_allclose(cert.output_radius[0], (gamma0 + 0.001) * nw * B, rtol=1e-10)
    d = cert.to_dict()
    assert json.loads(json.dumps(d))["blocks"] == cert.blocks and d["radius"] == {"gamma": 0.001, "threshold": 0.001}


def test_errors(problem: SparseRecovery) -> None:
    lista = Lista.from_classical(problem, K, dtype=F64)
    for bad in (0.0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="data_radius"):
            parameter_lipschitz(lista, bad)
    with pytest.raises(ValueError, match="radius"):
        parameter_lipschitz(lista, B, -0.1)
    with pytest.raises(ValueError, match="radius"):
        parameter_lipschitz(lista, B, {"W1": 0.1, "W2": -1.0})
    with pytest.raises(ValueError, match="radius: unknown group"):
        parameter_lipschitz(lista, B, {"gamma": 0.1})
    with pytest.raises(ValueError, match=r"threshold\[0\]"):
        parameter_lipschitz(lista, B, 1.0)   # thresholds lam/L ~ 0.024 < 1
    with pytest.raises(ValueError, match="discontinuous"):
        parameter_lipschitz(ListaCPSS(problem, K, dtype=F64), B)
    with pytest.raises(ValueError, match="discontinuous"):
        parameter_lipschitz(Alista(problem, K, dtype=F64), B)
    with pytest.raises(ValueError, match="discontinuous"):
        parameter_lipschitz(Alista(problem, K, percent=0.0, max_percent=0.0, support_counts=[1] * K), B)
    with pytest.raises(NotImplementedError, match="fista-unfolded: momentum"):
        parameter_lipschitz(FistaUnfolded.from_classical(problem, K), B)
    with pytest.raises(NotImplementedError, match="momentum"):
        parameter_lipschitz(IstaWeightedL1.from_classical(problem, K, solver="fista"), B)
    for model in (AdmmUnfolded.from_classical(problem, K), GdUnfolded.from_classical(problem, K),
                  IstaCorrection.from_classical(problem, K)):
        with pytest.raises(NotImplementedError, match=model.family):
            parameter_lipschitz(model, B)


def _reference(model: torch.nn.Module, rad: dict[str, float]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The unrolled formulas written out: a_k = B sum_{j<k} N1_j prod_{j<i<k} N2_i and
    kappa[k, b] = sum_{j<k} prod_{j<i<k} N2_i f_{j,b}, with N1, N2, f derived by hand per family."""
    a_mat, n = problem_a(model), model.problem.n
    sn = lambda m: float(np.linalg.norm(m, 2))  # noqa: E731
    eye, kk = np.eye(n), model.num_layers
    n1, n2, forcing = [], [], []                    # forcing[j]: block -> (coefficient of B, of a_j, constant)
    for j in range(kk):
        if isinstance(model, Lista):
            w1 = (model.W1 if model.tied else model.W1[j]).detach().numpy()
            w2 = None if j == 0 else (model.W2 if model.tied else model.W2[j - 1]).detach().numpy()
            n1.append(sn(w1) + rad["W1"])
            n2.append(0.0 if w2 is None else sn(w2) + rad["W2"])
            f = {("W1" if model.tied else f"W1[{j}]"): (1.0, 0.0, 0.0), f"threshold[{j}]": (0, 0, np.sqrt(n))}
            if j:
                f["W2" if model.tied else f"W2[{j}]"] = (0.0, 1.0, 0.0)
        elif isinstance(model, ListaCP):
            w = (model.W if model.tied else model.W[j]).detach().numpy()
            n1.append(sn(w) + rad["W"])
            n2.append(sn(eye - w.T @ a_mat) + sn(a_mat) * rad["W"])
            f = {("W" if model.tied else f"W[{j}]"): (1.0, sn(a_mat), 0.0), f"threshold[{j}]": (0, 0, np.sqrt(n))}
        elif isinstance(model, Alista):
            wt, g = model.weight_matrix.numpy(), float(model.gamma.detach()[j])
            n1.append((abs(g) + rad["gamma"]) * sn(wt))
            n2.append(sn(eye - g * wt.T @ a_mat) + rad["gamma"] * sn(wt.T @ a_mat))
            f = {f"gamma[{j}]": (sn(wt), sn(wt.T @ a_mat), 0.0), f"threshold[{j}]": (0, 0, np.sqrt(n))}
        elif isinstance(model, IstaLearnedStep):
            g, lam = float(model.step.detach()[j]), model.problem.lam
            n1.append((abs(g) + rad["step"]) * sn(a_mat))
            n2.append(sn(eye - g * a_mat.T @ a_mat) + rad["step"] * sn(a_mat) ** 2)
            learned = model.threshold is not None
            f = {f"step[{j}]": (sn(a_mat), sn(a_mat) ** 2, 0.0 if learned else lam * np.sqrt(n))}
            if learned:
                f[f"threshold[{j}]"] = (0, 0, np.sqrt(n))
        else:
            n1.append(model.gamma * sn(a_mat))
            n2.append(sn(eye - model.gamma * a_mat.T @ a_mat))
            f = ({"weights": (0, 0, model.gamma)} if model.learn == "weights"
                 else {"lam": (0, 0, model.gamma * np.sqrt(n))})
        forcing.append(f)
    prod = lambda j, k: float(np.prod(n2[j + 1:k]))  # noqa: E731
    a = np.array([B * sum(n1[j] * prod(j, k) for j in range(k)) for k in range(kk + 1)])
    kappa: dict[str, np.ndarray] = {}
    for k in range(1, kk + 1):
        for j in range(k):
            for blk, (cb, ca, ct) in forcing[j].items():
                kappa.setdefault(blk, np.zeros(kk))[k - 1] += prod(j, k) * (cb * B + ca * a[j] + ct)
    return a[1:], kappa


def problem_a(model: torch.nn.Module) -> np.ndarray:
    return np.asarray(model.problem.A, dtype=np.float64)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_matches_the_written_out_formulas(problem: SparseRecovery, name: str) -> None:
    rng = np.random.default_rng(7)
    base = BUILDERS[name](problem)
    model = _moved_start(base, parameter_lipschitz(base, B).blocks, rng)
    rad = _radius_for(model, parameter_lipschitz(model, B), 0.02)
    rad = {g: r * (1 + 0.5 * i) for i, (g, r) in enumerate(rad.items())}   # distinct radii per group
    cert = parameter_lipschitz(model, B, rad)
    a_ref, kappa_ref = _reference(model, rad)
    np.testing.assert_allclose(cert.output_radius, a_ref, rtol=1e-9)
    assert sorted(cert.blocks) == sorted(kappa_ref)
    for i, blk in enumerate(cert.blocks):
        np.testing.assert_allclose(cert.kappa[:, i], kappa_ref[blk], rtol=1e-9, atol=1e-300, err_msg=blk)


def test_step_forcing_is_tight(problem: SparseRecovery) -> None:
    """A linear case where Delta_2 = ||dW1|| B + ||dW2|| a_1 holds with equality: gamma_0 = -1/L makes
    x_1 = gamma_0 A^T y, and for y = B u_1 (top left singular vector) A^T (y - A x_1) has norm
    ||A|| B + ||A||^2 a_1; perturbing step[1] alone, the measured ||x_2 - x'_2|| / bound -> 1 as delta -> 0."""
    L = problem.L
    model = IstaLearnedStep(problem, 3, step=1.0 / L, threshold=0.0, dtype=F64)
    with torch.no_grad():
        model.step[0] = -1.0 / L                 # the constructor takes positive steps; training may not
    delta = 1e-7
    cert = parameter_lipschitz(model, B, {"step": delta, "threshold": 0.0})
    y = torch.as_tensor(B * np.linalg.svd(problem.A)[0][:, 0][None, :])
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.step[1] += delta
        d2 = float(torch.linalg.norm(model(y, trajectory=True)[2] - other(y, trajectory=True)[2]))
    ratio = d2 / (cert.kappa[1, cert.blocks.index("step[1]")] * delta)
    assert 0.999 < ratio <= 1 + 1e-9, ratio
