"""Unfolded models (see base.py for the contract) and their registry ``MODELS``.

The survey's four paradigms (docs/models.md has the table with sources and equations):

1. hyperparameters: "ista-learned-step", "fista-unfolded", "admm-unfolded", "gd-unfolded";
2. objective: "ista-weighted-l1";
3. correction: "ista-correction";
4. inductive bias: "lista", "lista-cp", "lista-cpss", "alista".

Build one with ``MODELS[family](problem, num_layers, ...)`` or, initialised at its classical algorithm,
``MODELS[family].from_classical(problem, num_layers)``; ``MODELS[family](problem, **model.config())``
rebuilds an architecture.
"""
from __future__ import annotations

from typing import Any

from unfoldkit.unrolled.models.alista import Alista
from unfoldkit.unrolled.models.alista_weights import (
    coherence_weight,
    column_coherences,
    frobenius_weight,
    frobenius_weight_projected_gradient,
    generalized_coherence,
    normalize_diagonal,
)
from unfoldkit.unrolled.models.base import ParamInfo, UnfoldedModel
from unfoldkit.unrolled.models.correction import IstaCorrection
from unfoldkit.unrolled.models.learned_step import AdmmUnfolded, FistaUnfolded, GdUnfolded, IstaLearnedStep
from unfoldkit.unrolled.models.lista import Lista, ListaCP, ListaCPSS
from unfoldkit.unrolled.models.objective import IstaWeightedL1
from unfoldkit.unrolled.problems.base import Problem

#: family name -> model class (the name stored in checkpoints)
MODELS: dict[str, type[UnfoldedModel]] = {
    cls.family: cls
    for cls in (IstaLearnedStep, FistaUnfolded, AdmmUnfolded, GdUnfolded, IstaWeightedL1, IstaCorrection,
                Lista, ListaCP, ListaCPSS, Alista)
}

#: paradigm -> family names, in the survey's order
PARADIGMS: dict[str, tuple[str, ...]] = {
    p: tuple(name for name, cls in MODELS.items() if cls.paradigm == p)
    for p in ("hyperparameters", "objective", "correction", "inductive-bias")
}


def make_model(family: str, problem: Problem, **config: Any) -> UnfoldedModel:
    """Build a model by its registry name from ``config()``-style arguments (ValueError for an unknown name)."""
    if family not in MODELS:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[family](problem, **config)


__all__ = [
    "MODELS",
    "PARADIGMS",
    "AdmmUnfolded",
    "Alista",
    "FistaUnfolded",
    "GdUnfolded",
    "IstaCorrection",
    "IstaLearnedStep",
    "IstaWeightedL1",
    "Lista",
    "ListaCP",
    "ListaCPSS",
    "ParamInfo",
    "UnfoldedModel",
    "coherence_weight",
    "column_coherences",
    "frobenius_weight",
    "frobenius_weight_projected_gradient",
    "generalized_coherence",
    "make_model",
    "normalize_diagonal",
]
