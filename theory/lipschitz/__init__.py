"""Lipschitz constants of unfolded models: certified upper bounds, attained lower bounds, the gap.

``lipschitz_bounds(model)`` (bounds.py) is the entry point: for y -> x_k, every layer k, in the l2 norm,
the naive recursion, LipLT, ECLipsE-Fast (cheap.py), the LipSDP-Neuron certificate solved along the layer
chain (certificate.py), the attained lower bound (lower.py, steered by steer.py) and their ratio; the floor
under every neuron-wise certificate (floor.py); the model as a chain of
slope-restricted stages is structure.py; the constant with respect to the parameters is parameters.py.
"""
from unfoldkit.theory.lipschitz.bounds import METHODS, LipschitzBounds, lipschitz_bounds, sdp_bound
from unfoldkit.theory.lipschitz.cheap import eclipse_fast_bound, liplt_bound, naive_bound
from unfoldkit.theory.lipschitz.floor import NeuronwiseFloor, neuronwise_floor
from unfoldkit.theory.lipschitz.lower import LowerBound, lipschitz_lower_bound
from unfoldkit.theory.lipschitz.structure import Chain, NoFiniteConstant, NotCovered, Stage, chain_of

__all__ = [
    "METHODS",
    "Chain",
    "LipschitzBounds",
    "LowerBound",
    "NeuronwiseFloor",
    "NoFiniteConstant",
    "NotCovered",
    "Stage",
    "chain_of",
    "eclipse_fast_bound",
    "liplt_bound",
    "lipschitz_bounds",
    "lipschitz_lower_bound",
    "naive_bound",
    "neuronwise_floor",
    "sdp_bound",
]
