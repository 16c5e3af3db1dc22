"""The neuron-wise floor (theory/lipschitz/floor.py): below every neuron-wise certificate, attained at its slopes."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from unfoldkit.theory.lipschitz import chain_of, lipschitz_bounds
from unfoldkit.theory.lipschitz.floor import neuronwise_floor
from unfoldkit.unrolled.models import MODELS, Lista
from unfoldkit.unrolled.problems.sparse import SparseRecovery


def _jacobian(chain, layer: int, slopes: list[np.ndarray]) -> np.ndarray:
    """C_k J_{t_k}(d) written out in numpy from the chain's matrices (independent of floor.py's torch code)."""
    jac = np.zeros((chain.stages[0].state_dim, chain.input_dim))
    for st, d in zip(chain.stages[:chain.readout_stage[layer - 1]], slopes):
        jac = st.R @ (d[:, None] * (st.P @ jac + st.Q)) + st.S @ jac + st.T
    return chain.readouts[layer - 1] @ jac


@pytest.mark.parametrize("family", ["lista", "alista", "ista-learned-step", "fista-unfolded", "admm-unfolded"])
def test_floor_is_below_every_certificate_and_attained(family: str) -> None:
    """For every layer: slopes inside [lo, hi], ||C_k J(d)|| recomputed in numpy equals the value (1e-12), and the
    value is <= every certified upper bound (each is valid for the linear network with those slopes; 1e-9 for
    the certificates' float64 margins)."""
    p = SparseRecovery(m=6, n=12, seed=1)
    model = MODELS[family].from_classical(p, 3, dtype="float64")
    chain = chain_of(model)
    r = lipschitz_bounds(model, sdp_optimize="all", sdp_iters=50, lower=False)
    for k in range(1, 4):
        f = neuronwise_floor(chain, k, starts=4, steps=50, seed=k)
        for st, d in zip(chain.stages, f.slopes):
            assert np.all(d >= st.lo - 1e-15) and np.all(d <= st.hi + 1e-15)
        assert np.linalg.norm(_jacobian(chain, k, f.slopes), 2) == pytest.approx(f.value, rel=1e-12)
        assert f.value >= f.relaxed * (1 - 1e-12)
        for name, values in r.upper.items():
            assert f.value <= values[k - 1] * (1 + 1e-9), (name, k)


def test_floor_finds_the_best_vertex_of_a_small_chain() -> None:
    """||J(d)|| is convex in each d_i, so its maximum over the box is at a vertex: on a chain of 2 x 3 free
    neurons the search returns the largest of the 64 vertices (enumerated) to round-off."""
    p = SparseRecovery(m=2, n=3, seed=0)
    chain = chain_of(Lista.from_classical(p, 2, dtype="float64"))
    sizes = [st.num_neurons for st in chain.stages]
    assert sizes == [3, 3]
    best = max(np.linalg.norm(_jacobian(chain, 2, [np.array(v[:3], float), np.array(v[3:], float)]), 2)
               for v in itertools.product([0, 1], repeat=6))
    f = neuronwise_floor(chain, 2, starts=4, steps=100, seed=0)
    assert f.value == pytest.approx(best, rel=1e-12)


def test_linear_chain_floor_is_the_exact_norm() -> None:
    """Zero thresholds fold every neuron into a linear map: no freedom, the floor is ||J|| (the SDP's value)."""
    p = SparseRecovery(m=4, n=8, seed=0)
    model = Lista.from_classical(p, 3, dtype="float64")
    with torch.no_grad():
        model.threshold.zero_()
    chain = chain_of(model)
    assert chain.num_neurons == 0
    f = neuronwise_floor(chain, 3, starts=2, steps=3)
    r = lipschitz_bounds(model, methods=["sdp"], lower=False)
    assert f.value == pytest.approx(float(r.upper["sdp"][-1]), rel=1e-9) and f.flips == 0


def test_floor_arguments() -> None:
    chain = chain_of(Lista.from_classical(SparseRecovery(m=4, n=8, seed=0), 2))
    with pytest.raises(ValueError, match="layer = 3"):
        neuronwise_floor(chain, 3)
    with pytest.raises(ValueError, match="starts"):
        neuronwise_floor(chain, 1, starts=0)
