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

import inspect
from typing import Any

from unfoldkit.unrolled.models.alista import Alista
from unfoldkit.unrolled.models.alista_weights import (
    coherence_bounds,
    coherence_weight,
    coherence_weight_fast,
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
    """Build a model by its registry name from ``config()``-style arguments.

    ValueError for an unknown name, an argument the family's constructor does not take or a required one
    left out (each naming it and listing the accepted ones), and for bad values (from the constructor)."""
    if family not in MODELS:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(sorted(MODELS))}")
    cls = MODELS[family]
    params = list(inspect.signature(cls).parameters.values())[1:]   # after the problem
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = sorted(set(config) - set(accepted))
        missing = [p.name for p in params if p.default is p.empty and p.kind is not p.VAR_POSITIONAL
                   and p.name not in config]
        if unknown or missing:
            what = (f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}" if unknown else
                    f"missing argument{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
            raise ValueError(f"make_model({family!r}): {what}; {family} accepts {', '.join(accepted)}")
    return cls(problem, **config)


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
    "coherence_bounds",
    "coherence_weight",
    "coherence_weight_fast",
    "column_coherences",
    "frobenius_weight",
    "frobenius_weight_projected_gradient",
    "generalized_coherence",
    "make_model",
    "normalize_diagonal",
]
