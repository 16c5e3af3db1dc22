"""Generalization bounds for unfolded models on a bounded (clipped) loss, each a ``GeneralizationBound``
(value, provenance, delta, vacuity): covering numbers / Rademacher (``covering.py``), PAC-Bayes
(``pac_bayes.py``: kl-inverse, McAllester, quad; Monte Carlo step), the trivial bound (``result.py``)."""
from unfoldkit.theory.generalization.covering import covering_bound
from unfoldkit.theory.generalization.loss import DEFAULT_CLIP, clipped_nmse
from unfoldkit.theory.generalization.pac_bayes import (
    kl_bernoulli,
    kl_gaussians,
    kl_inverse_upper,
    pac_bayes_bound,
    pac_bayes_certificate,
)
from unfoldkit.theory.generalization.result import GeneralizationBound, trivial_bound

__all__ = [
    "DEFAULT_CLIP",
    "GeneralizationBound",
    "clipped_nmse",
    "covering_bound",
    "kl_bernoulli",
    "kl_gaussians",
    "kl_inverse_upper",
    "pac_bayes_bound",
    "pac_bayes_certificate",
    "trivial_bound",
]
