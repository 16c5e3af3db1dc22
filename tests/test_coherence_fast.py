"""The certified fast path of the generalized coherence (issue 17): ``coherence_bounds`` /
``coherence_weight(A, method="fast")`` against the reference LP path, its per-column certificate, the LP
fallback, the cache by matrix hash, and its one-line errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from unfoldkit.unrolled.models.alista_weights import (
    COHERENCE_CACHE_ENV,
    COHERENCE_RTOL,
    WEIGHTS,
    coherence_bounds,
    coherence_cache_dir,
    coherence_weight,
    coherence_weight_fast,
    column_coherences,
    generalized_coherence,
)
from unfoldkit.unrolled.problems.linear import gaussian_unit_columns


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Every test caches into its own folder, never the user's ~/.cache."""
    monkeypatch.setenv(COHERENCE_CACHE_ENV, str(tmp_path / "coherence-cache"))


def _check_against_lp(a: np.ndarray, **options) -> None:
    b = coherence_bounds(a, cache=False, **options)
    lp = column_coherences(coherence_weight(a, method="lp"), a)
    # the returned weight achieves `upper` (diag(W^T A) = 1 checked by column_coherences)
    np.testing.assert_allclose(column_coherences(b.weight, a), b.upper, rtol=1e-12, atol=1e-15)
    assert np.all(b.certified) and b.max_gap <= COHERENCE_RTOL
    assert np.all(b.lower <= b.upper)
    # both are optimal: equal to 1e-6 relative (the LP's HiGHS tolerances are ~1e-9); the certified
    # lower bound is never above the LP's achieved value
    np.testing.assert_allclose(b.upper, lp, rtol=1e-6, atol=1e-12)
    assert np.all(b.lower <= lp * (1 + 1e-9) + 1e-12)


@given(seed=st.integers(0, 2**31 - 1), m=st.integers(2, 30), ratio=st.floats(1.05, 2.2),
       admm=st.sampled_from([0, 3, 400]), max_pivots=st.sampled_from([None, 1]))
def test_fast_path_equals_the_lp_path(seed: int, m: int, ratio: float, admm: int, max_pivots: int | None) -> None:
    """Random Gaussian matrices 2 x 3 .. 30 x 66: the same per-column optimum as the LP path, every column
    certified to 1e-6. admm = 0 starts the crossover from the Frobenius weight, 3 from a poor ADMM iterate
    (many pivots); max_pivots = 1 sends most columns through the LP fallback."""
    n = max(m + 1, round(ratio * m))
    a = gaussian_unit_columns(m, n, np.random.default_rng(seed))
    _check_against_lp(a, admm_iterations=admm, max_pivots=max_pivots)


def test_40x80_certified_without_fallback() -> None:
    a = gaussian_unit_columns(40, 80, np.random.default_rng(0))
    b = coherence_bounds(a, cache=False)
    assert not b.fallback.any() and b.max_gap < 1e-10
    assert b.coherence == pytest.approx(generalized_coherence(coherence_weight(a), a), rel=1e-9)
    assert b.coherence_lower <= b.coherence


def test_degenerate_matrices_fall_back_and_stay_certified() -> None:
    rng = np.random.default_rng(5)
    # rank 3 in R^6 (no basis of m = 6 columns): every column goes through the LP fallback
    low_rank = rng.standard_normal((6, 3)) @ rng.standard_normal((3, 12))
    low_rank /= np.linalg.norm(low_rank, axis=0)
    b = coherence_bounds(low_rank, cache=False)
    assert b.fallback.all()
    _check_against_lp(low_rank)
    # a repeated column: its twin forces coherence 1 for both
    a = gaussian_unit_columns(8, 15, rng)
    a[:, 7] = a[:, 3]
    b = coherence_bounds(a, cache=False)
    assert b.upper[3] == pytest.approx(1.0, rel=1e-9) and b.upper[7] == pytest.approx(1.0, rel=1e-9)
    _check_against_lp(a)


def test_zero_coherence_and_single_column() -> None:
    tall = gaussian_unit_columns(12, 7, np.random.default_rng(2))          # full column rank: mu~ = 0
    b = coherence_bounds(tall, cache=False)
    assert b.coherence < 1e-12 and np.all(b.certified) and b.max_gap == 0.0
    one = coherence_bounds(np.array([[2.0], [0.0]]), cache=False)
    np.testing.assert_allclose(one.weight, [[0.5], [0.0]])
    assert one.coherence == 0.0 and one.max_gap == 0.0


def test_method_option_and_the_alista_weight_use_the_fast_path(tmp_path) -> None:
    a = gaussian_unit_columns(10, 20, np.random.default_rng(4))
    fast = coherence_weight(a, method="fast")
    np.testing.assert_array_equal(fast, coherence_bounds(a).weight)
    np.testing.assert_array_equal(WEIGHTS["coherence"](a), fast)
    assert WEIGHTS["coherence"] is coherence_weight_fast and WEIGHTS["coherence-lp"] is coherence_weight
    assert generalized_coherence(fast, a) == pytest.approx(generalized_coherence(coherence_weight(a), a), rel=1e-6)


def test_cache_hit_env_override_and_corrupt_file(tmp_path, monkeypatch) -> None:
    a = gaussian_unit_columns(12, 24, np.random.default_rng(7))
    folder = tmp_path / "c"
    first = coherence_bounds(a, cache=folder)
    assert not first.cached
    files = list(folder.glob("*.npz"))
    assert len(files) == 1 and len(files[0].stem) == 64                      # SHA-256 hex of shape + bytes
    second = coherence_bounds(a, cache=folder)
    assert second.cached and second.seconds == pytest.approx(first.seconds)
    np.testing.assert_array_equal(second.weight, first.weight)
    np.testing.assert_array_equal(second.lower, first.lower)
    # another matrix (even the same values in another shape) is another entry
    coherence_bounds(a[:, :20], cache=folder)
    assert len(list(folder.glob("*.npz"))) == 2
    # garbage in the file: a warning, recomputed, replaced by a valid file
    files[0].write_bytes(b"not an npz file")
    with pytest.warns(RuntimeWarning, match="corrupt"):
        again = coherence_bounds(a, cache=folder)
    assert not again.cached
    np.testing.assert_allclose(again.upper, first.upper, rtol=1e-12)
    assert coherence_bounds(a, cache=folder).cached
    # a readable file whose bounds do not match its weight is corrupt too
    with np.load(files[0]) as f:
        data = dict(f)
    data["upper"] = data["upper"] * 0.5
    with open(files[0], "wb") as fh:
        np.savez(fh, **data)
    with pytest.warns(RuntimeWarning, match="do not match"):
        assert not coherence_bounds(a, cache=folder).cached
    # the default folder follows the environment variable; cache=False writes nothing
    env_dir = tmp_path / "env"
    monkeypatch.setenv(COHERENCE_CACHE_ENV, str(env_dir))
    assert coherence_cache_dir() == env_dir and coherence_cache_dir(False) is None
    coherence_bounds(a)
    assert len(list(env_dir.glob("*.npz"))) == 1
    coherence_bounds(a[:, :15], cache=False)
    assert len(list(env_dir.glob("*.npz"))) == 1


def test_two_processes_give_the_same_result() -> None:
    a = gaussian_unit_columns(15, 30, np.random.default_rng(8))
    one = coherence_bounds(a, cache=False)
    two = coherence_bounds(a, cache=False, n_jobs=2)
    np.testing.assert_array_equal(one.weight, two.weight)
    np.testing.assert_array_equal(one.lower, two.lower)


@pytest.mark.parametrize("bad, kwargs, match", [
    (np.full((3, 5), np.nan), {}, "NaN"),
    (np.ones(5), {}, "dimension"),
    (np.zeros((3, 0)), {}, "non-empty"),
    (np.c_[np.ones((3, 2)), np.zeros((3, 1))], {}, "zero column"),
    (np.eye(3, 5) + 0.1, {"rtol": 0.0}, "rtol"),
    (np.eye(3, 5) + 0.1, {"n_jobs": 0}, "n_jobs"),
    (np.eye(3, 5) + 0.1, {"admm_iterations": -1}, "admm_iterations"),
    (np.eye(3, 5) + 0.1, {"cache": 3}, "cache"),
])
def test_bad_input_is_a_one_line_value_error(bad, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match) as err:
        coherence_bounds(bad, **kwargs)
    assert "\n" not in str(err.value)


def test_bad_method_is_a_one_line_value_error() -> None:
    with pytest.raises(ValueError, match="method must be 'lp' or 'fast'"):
        coherence_weight(np.eye(3, 5) + 0.1, method="simplex")
