"""Unfolded robust-PCA models, one per paradigm of the survey (Shlezinger et al., arXiv 2512.03768), and
their registry. Each equals its classical solver of ``unrolled/rpca.py`` at ``from_classical``:

| paradigm | family | classical solver it unfolds | learned |
| --- | --- | --- | --- |
| hyperparameters | "lrpca" | ScaledGD with thresholding ("scaledgd") | thresholds zeta_k, steps eta_k |
| objective | "pcp-weighted" | PCP by ADMM ("pcp-admm") | nuclear-norm weights w_i, outlier weight lam |
| correction | "scaledgd-correction" | ScaledGD ("scaledgd") | an entrywise correction network per layer |
| inductive-bias | "corona" | ISTA on relaxed PCP ("rpca-ista") | convolution kernels and thresholds |

``RPCA_MODELS[family].from_classical(problem, num_layers)`` builds one at its solver;
``RPCA_MODELS[family](**model.config())`` rebuilds an architecture; ``CLASSICAL[name](M, K, problem)``
runs a classical solver with the same defaults as the models' initialisation.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from unfoldkit.unrolled.problems.rpca import RobustPCA
from unfoldkit.unrolled.rpca import RPCATrajectory, run_altproj, run_pcp, run_rpca_ista, run_scaledgd
from unfoldkit.unrolled.rpca_models.base import RpcaUnfolded
from unfoldkit.unrolled.rpca_models.correction import EntrywiseCorrection, ScaledGdCorrection
from unfoldkit.unrolled.rpca_models.corona import Corona, default_lam_L, ista_kernels
from unfoldkit.unrolled.rpca_models.lrpca import Lrpca, default_zeta0, geometric_thresholds
from unfoldkit.unrolled.rpca_models.weighted_pcp import PcpWeighted

#: family name -> model class
RPCA_MODELS: dict[str, type[RpcaUnfolded]] = {
    cls.family: cls for cls in (Lrpca, PcpWeighted, ScaledGdCorrection, Corona)
}

#: paradigm -> family names, in the survey's order
RPCA_PARADIGMS: dict[str, tuple[str, ...]] = {
    p: tuple(n for n, c in RPCA_MODELS.items() if c.paradigm == p)
    for p in ("hyperparameters", "objective", "correction", "inductive-bias")
}

#: the classical decay of ScaledGD's thresholds used by the models' initialisation and ``CLASSICAL``
SCALEDGD_DECAY = 0.7


def _scaledgd(M: torch.Tensor, K: int, problem: RobustPCA, **kw: Any) -> RPCATrajectory:
    return run_scaledgd(M, problem.rank, K, kw.pop("zeta0", default_zeta0(problem.n1, problem.n2)),
                        kw.pop("decay", SCALEDGD_DECAY), **kw)


def _ista(M: torch.Tensor, K: int, problem: RobustPCA, **kw: Any) -> RPCATrajectory:
    lam_L = kw.pop("lam_L", default_lam_L(problem))
    return run_rpca_ista(M, K, lam_L, kw.pop("lam_S", None), **kw)


#: classical solver name -> runner (M, K, problem, **options) with the defaults the models start from
CLASSICAL: dict[str, Callable[..., RPCATrajectory]] = {
    "pcp-admm": lambda M, K, problem, **kw: run_pcp(M, K, **kw),
    "altproj": lambda M, K, problem, **kw: run_altproj(M, problem.rank, K, **kw),
    "scaledgd": _scaledgd,
    "rpca-ista": _ista,
}


def rpca_model(family: str, problem: RobustPCA, num_layers: int, **options: Any) -> RpcaUnfolded:
    """``RPCA_MODELS[family].from_classical(problem, num_layers, **options)``; ValueError for an unknown family."""
    if family not in RPCA_MODELS:
        raise ValueError(f"unknown RPCA model family {family!r}; known: {', '.join(RPCA_MODELS)}")
    return RPCA_MODELS[family].from_classical(problem, num_layers, **options)


__all__ = [
    "CLASSICAL", "RPCA_MODELS", "RPCA_PARADIGMS", "SCALEDGD_DECAY", "Corona", "EntrywiseCorrection", "Lrpca",
    "PcpWeighted", "RpcaUnfolded", "ScaledGdCorrection", "default_lam_L", "default_zeta0",
    "geometric_thresholds", "ista_kernels", "rpca_model",
]
