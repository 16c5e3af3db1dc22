"""Generalization bounds for unfolded models on a bounded (clipped) loss: covering-number / Rademacher,
PAC-Bayes, the trivial bound; each a ``GeneralizationBound`` (value, provenance, delta, vacuity)."""
from unfoldkit.theory.generalization.loss import DEFAULT_CLIP, clipped_nmse
from unfoldkit.theory.generalization.result import GeneralizationBound, trivial_bound

__all__ = ["DEFAULT_CLIP", "GeneralizationBound", "clipped_nmse", "trivial_bound"]
