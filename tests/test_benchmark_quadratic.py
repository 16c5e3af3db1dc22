"""benchmarks/unfolded_quadratic.py: a tiny end-to-end run (JSON structure, finite curves), the mathematics
behind its theory columns, and the command line's bad arguments (one line on stderr, exit 2).

Mathematics checked:

* the Chebyshev (Young 1953) steps attain the minimax value 1/T_K((L+mu)/(L-mu)) on the grid (equality);
* no other schedule goes below it (inequality): for any K steps, p(lam) = prod_k (1 - gamma_k lam) has degree
  K and p(0) = 1, so by de la Vallee Poussin's argument max |p| over the K + 1 Chebyshev alternation points
  (which ``spectrum_grid`` contains) is >= 1/T_K; checked in exact rational arithmetic and in float64;
* the residual polynomials reproduce ``run_gd`` / ``run_fista`` iterates, and the average-case oracle
  minimises the expected NMSE.

The tiny run (m = 12, n = 6, K = 3, a few training steps) takes about a second."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
U = np.finfo(np.float64).eps / 2  # unit round-off of float64


def _load_benchmark():
    name = "unfoldkit_benchmark_unfolded_quadratic"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "unfolded_quadratic.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses need the module registered while it executes
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()

TINY = bench.QuadConfig(mode="tiny", m=12, n=6, kappa=10.0, num_layers=3, test_size=40, train_val_size=16,
                        budget=bench.Budget(2, 3, 8, None), grid_points=2001)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quad")
    messages: list[str] = []
    doc = bench.run_benchmark(TINY, [None, 40.0], out, log=messages.append)
    return out, doc, messages


def test_tiny_run_writes_json_with_every_row_and_finite_curves(tiny_run):
    out, _, _ = tiny_run
    json_path, table_path = bench.output_paths(out, "tiny")
    doc = json.loads(json_path.read_text())
    assert doc["benchmark"] == "unfolded_quadratic" and doc["format_version"] == bench.FORMAT_VERSION
    assert doc["config"] == json.loads(json.dumps(TINY.to_dict()))
    assert set(doc["results"]) == {"snr=inf", "snr=40"} == set(doc["settings"])
    k = TINY.num_layers
    minimax = bench.minimax_value(k, TINY.mu, TINY.L)
    for key, rows in doc["results"].items():
        assert tuple(rows) == bench.ROW_ORDER
        for name, row in rows.items():
            if name == "oracle-avg-case" and row["status"] == "not realizable":
                continue
            assert row["status"] == "done", (key, name)
            for curve in (row["nmse_db"], row["expected_nmse_db"]):
                assert len(curve) == k + 1 and all(isinstance(v, float) and math.isfinite(v) for v in curve)
            assert row["nmse_db"][0] == 0.0  # x_0 = 0: the error is x itself, computed in float64
            assert row["nmse_db_K"] == row["nmse_db"][-1]
            assert row["worst_case"]["grid_max_abs_p_K"] >= minimax * (1 - 1e-9)
        learned = rows["gd-unfolded"]
        assert learned["params"] == k and learned["train_time_s"] > 0 and len(learned["steps"]) == k
        assert learned["steps_sorted"] == sorted(learned["steps"]) and len(learned["init_steps"]) == k
        assert learned["model_config"]["dtype"] == "float64"
        assert learned["worst_case"]["sup_abs_p_K"] >= learned["worst_case"]["grid_max_abs_p_K"] * (1 - 1e-12)
        assert rows["chebyshev"]["worst_case"]["minimax_value"] == pytest.approx(minimax, rel=1e-12)
        facts = doc["settings"][key]
        assert facts["symmetry_check"]["relative_spread"] < 1e-10
        assert set(facts["float32_check"]) == {"chebyshev", "gd-unfolded"}
    t2 = [t for t in doc["targets"] if t["target"].startswith("T2")]
    assert {t["setting"] for t in t2} == {"snr=inf", "snr=40"}
    assert all(isinstance(t["pass"], bool) and t["pass"] == (t["ours_db"] < t["reference_db"]) for t in t2)
    assert any(t["target"].startswith("info: worst-case") for t in doc["targets"])
    table = table_path.read_text()
    assert "| gd-unfolded | noiseless |" in table and "T2 gd-unfolded better than FISTA" in table
    assert "| rank | gd-unfolded | Chebyshev |" in table
    assert doc["sessions"][0]["wall_time_s"] > 0


def test_resume_skips_finished_settings_and_rejects_another_config(tiny_run):
    out, doc, _ = tiny_run
    messages: list[str] = []
    again = bench.run_benchmark(TINY, [None, 40.0], out, resume=True, log=messages.append)
    assert sum("skipped" in m for m in messages) == 2 and not any("training" in m for m in messages)
    assert again["results"] == json.loads(json.dumps(doc["results"]))
    other = bench.QuadConfig(**{**TINY.__dict__, "seed": 1})
    with pytest.raises(ValueError, match="another configuration"):
        bench.run_benchmark(other, [None], out, resume=True, log=lambda m: None)


# ---- Chebyshev: equality with the minimax value -------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3, 8, 16, 32])
@pytest.mark.parametrize("kappa", [1.5, 10.0, 100.0, 1e4])
def test_chebyshev_steps_attain_the_minimax_value(k, kappa):
    """max over the grid of |prod_i (1 - lam / lam_i)| = 1/T_K((L+mu)/(L-mu)) within 1e-9 relative.

    Equality in exact arithmetic: the grid holds the endpoints, where |p| = 1/T_K exactly, and |p| <= 1/T_K on
    [mu, L]. Tolerance: the product form loses at most about 2K u x (lam / distance to the nearest root) at
    the extrema, <= 2 * 32 * 1.1e-16 * 16 K^2 / pi^2 ~ 1e-11 here, and 1/cosh(K acosh x) is accurate to ~1e-13
    relative even for x = 1.0002 (kappa 1e4): 1e-9 leaves a margin of 100."""
    L, mu = 1.0, 1.0 / kappa
    steps = bench.chebyshev_steps(k, mu, L)
    c = bench.minimax_value(k, mu, L)
    grid = bench.spectrum_grid(mu, L, k, 4001)
    assert bench.max_abs_on_grid(bench.gd_residual(steps, grid)[-1]) == pytest.approx(c, rel=1e-9)
    assert bench.sup_abs_residual(steps, mu, L)[0] == pytest.approx(c, rel=1e-9)
    # the closed form of T_K against the three-term recurrence T_{j+1} = 2x T_j - T_{j-1}
    x, t_prev, t = (L + mu) / (L - mu), 1.0, (L + mu) / (L - mu)
    for _ in range(k - 1):
        t_prev, t = t, 2 * x * t - t_prev
    assert c == pytest.approx(1.0 / t, rel=1e-12)


def test_constant_optimal_step_has_its_closed_form_worst_case():
    """gamma = 2/(mu+L): max |1 - gamma lam| = (kappa-1)/(kappa+1) at both ends, so max|p_K| = that^K."""
    for kappa, k in ((10.0, 5), (100.0, 16)):
        mu, L = 1.0 / kappa, 1.0
        steps = np.full(k, 2.0 / (mu + L))
        value = ((kappa - 1) / (kappa + 1)) ** k
        grid = bench.spectrum_grid(mu, L, k, 2001)
        assert bench.max_abs_on_grid(bench.gd_residual(steps, grid)[-1]) == pytest.approx(value, rel=1e-12)
        assert bench.sup_abs_residual(steps, mu, L)[0] == pytest.approx(value, rel=1e-12)
        assert value >= bench.minimax_value(k, mu, L)


# ---- every other schedule: the inequality -------------------------------------------------------------


def _check_not_below_minimax(steps, mu, L):
    k = len(steps)
    c = bench.minimax_value(k, mu, L)
    ext = bench.chebyshev_extrema(k, mu, L)
    # (1) exact rational arithmetic at the K + 1 alternation points (floats): de la Vallee Poussin gives
    # max >= min_j |p_cheb(ext_j)|, which is c at the exact endpoints and c (1 - O(K^4 u^2)) at the rounded
    # interior extrema (T_K' = 0 there); 1e-12 also covers c's own round-off (~1e-13 relative).
    exact = bench.exact_abs_residual(steps, ext)
    assert float(max(exact)) >= c * (1 - 1e-12)
    # (2) the float64 grid maximum the benchmark reports: the grid contains ext, and the product evaluated
    # in float64 is off by at most ((1 + u)^(2K) - 1) prod_k (1 + |gamma_k lam|) <= 2.01 K u prod (...)
    bound = max(float(np.prod(1.0 + np.abs(np.asarray(steps) * lam))) for lam in ext)
    tol = 1e-12 * c + 2.01 * k * U * bound
    grid = bench.spectrum_grid(mu, L, k, 2001)
    grid_max = bench.max_abs_on_grid(bench.gd_residual(steps, grid)[-1])
    assert grid_max >= c - tol
    # (3) the exact supremum is at least the grid maximum (same round-off allowance)
    assert bench.sup_abs_residual(steps, mu, L)[0] >= grid_max - tol
    return grid_max, c


@given(kappa=st.floats(1.5, 1000.0), data=st.data(), k=st.integers(1, 12))
def test_no_schedule_beats_the_chebyshev_minimax_value(kappa, data, k):
    """Hypothesis-drawn steps in [0.1/L, 2/mu] (roots anywhere in [mu/2, 10 L]). Check (1) is exact; the
    float64 allowance of check (2) is an a-priori bound and is loose when prod (1 + gamma lam) is large."""
    L, mu = 1.0, 1.0 / kappa
    steps = data.draw(st.lists(st.floats(0.1 / L, 2.0 / mu), min_size=k, max_size=k))
    _check_not_below_minimax(np.asarray(steps), mu, L)


@pytest.mark.parametrize("steps, mu", [([1.0, 108.0625], 1 / 109.0), ([1.0, 1.9], 1 / 1.9), ([1.0, 1.0, 2.0], 0.1), ([100.0, 1.0], 0.01)])
def test_exact_supremum_with_roots_at_or_near_the_interval_ends(steps, mu):
    """Roots at L, at mu, or rounded just inside: the supremum is still found (it dominates a fine grid)."""
    grid = np.linspace(mu, 1.0, 200001)
    fine = bench.max_abs_on_grid(bench.gd_residual(steps, grid)[-1])
    sup, arg = bench.sup_abs_residual(steps, mu, 1.0)
    assert fine * (1 - 1e-12) <= sup <= fine * (1 + 1e-6) and mu <= arg <= 1.0


@pytest.mark.parametrize("kind", ["1/L", "2/(mu+L)", "cheb-permuted", "cheb-perturbed", "oracle"])
def test_named_schedules_are_not_below_the_minimax_value(kind):
    mu, L, k = 0.01, 1.0, 16
    cheb = bench.chebyshev_steps(k, mu, L)
    rng = np.random.default_rng(0)
    steps = {"1/L": np.full(k, 1.0 / L), "2/(mu+L)": np.full(k, 2.0 / (mu + L)),
             "cheb-permuted": rng.permutation(cheb), "cheb-perturbed": cheb * (1 + 1e-3 * rng.standard_normal(k)),
             "oracle": None}[kind]
    if steps is None:
        eig = L * (L / mu) ** (-np.linspace(1.0, 0.0, 250))
        steps = bench.avg_case_optimal_polynomial(eig, 0.0, k, mu, L)["steps"]
    grid_max, c = _check_not_below_minimax(steps, mu, L)
    if kind == "cheb-permuted":  # the order does not change the polynomial
        assert grid_max == pytest.approx(c, rel=1e-9)
    elif kind != "cheb-perturbed":
        assert grid_max > 1.5 * c


# ---- residual polynomials reproduce the solvers; the oracle minimises the expected NMSE ---------------


def test_residual_polynomials_reproduce_run_gd_and_run_fista():
    """Noiseless y = A x with full-rank A: x_k - x = -V diag(p_k(lam)) V^T x for GD and FISTA."""
    from unfoldkit.unrolled.problems.quadratic import LeastSquares
    from unfoldkit.unrolled.solvers import run_fista, run_gd
    from unfoldkit.unrolled.steps import fista_momentum

    problem = LeastSquares(m=9, n=5, kappa=20.0, L=1.0, seed=3)
    batch = problem.sample(4, np.random.default_rng(1)).to(torch.float64)
    lam, vec = np.linalg.eigh(problem.A.T @ problem.A)
    x = batch.x.numpy()
    steps = np.array([1.0, 3.0, 0.7, 12.0, 1.9])
    cases = [(run_gd(problem, batch.y, 5, step=steps).iterates, bench.gd_residual(steps, lam)),
             (run_fista(problem, batch.y, 5).iterates,
              bench.fista_residual(np.ones(5), fista_momentum(5), lam))]
    for iterates, res in cases:
        for k in range(6):
            predicted = x - ((x @ vec) * res[k]) @ vec.T
            np.testing.assert_allclose(iterates[k].numpy(), predicted, rtol=0, atol=1e-11)


@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 8), noisy=st.booleans())
def test_oracle_minimises_the_expected_nmse(seed, k, noisy):
    """The KKT solution is the global minimiser of a convex quadratic on an affine set: no schedule
    (Chebyshev, constant, random) has a lower expected NMSE (tolerance 1e-10 relative: solve round-off)."""
    rng = np.random.default_rng(seed)
    mu, L = 0.02, 1.0
    eig = np.sort(rng.uniform(mu, L, 30))
    eig[0], eig[-1] = mu, L
    s2 = 1e-3 if noisy else 0.0
    orc = bench.avg_case_optimal_polynomial(eig, s2, k, mu, L)
    best = orc["expected_nmse"]
    for steps in (bench.chebyshev_steps(k, mu, L), np.full(k, 2 / (mu + L)), rng.uniform(1 / L, 1 / mu, k)):
        assert bench.expected_nmse(bench.gd_residual(steps, eig)[-1], eig, s2) >= best * (1 - 1e-10)
    if orc["realizable"]:
        got = bench.expected_nmse(bench.gd_residual(orc["steps"], eig)[-1], eig, s2)
        assert got == pytest.approx(best, rel=1e-6)


def test_gradient_is_symmetric_at_constant_steps():
    """Why the initial steps are perturbed: at equal steps every partial derivative of the loss is equal."""
    problem = bench.make_problem(TINY, None)
    check = bench.symmetry_check(TINY, problem, batch_size=16)
    assert check["relative_spread"] < 1e-10 and len(check["gradient_at_constant_1/L"]) == TINY.num_layers


# ---- command line ------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, fragment", [
    (["--snr", "loud"], "not a number"),
    (["--snr", "nan"], "not a finite SNR"),
    (["--snr", "inf,inf"], "listed twice"),
    (["--seed", "-1"], "--seed"),
    (["--threads", "x"], "--threads"),
    (["--bogus"], "unrecognized arguments"),
])
def test_bad_arguments_exit_2_with_one_line(argv, fragment, capsys, tmp_path):
    assert bench.main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_out_that_is_a_file_and_resume_with_another_config_are_usage_errors(tmp_path, capsys):
    from unfoldkit.experiments.io import write_json

    afile = tmp_path / "file"
    afile.write_text("x")
    assert bench.main(["--out", str(afile)]) == 2
    write_json(bench.output_paths(tmp_path, "quick")[0], {"config": {"mode": "quick", "m": 1}})
    assert bench.main(["--quick", "--resume", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a folder" in err and "another configuration" in err and err.count("\n") == 2
