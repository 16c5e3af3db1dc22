"""Certified learned schedules: training that keeps a learned step schedule's exact worst case (PEP) inside
a per-layer envelope set by a classical schedule (issue 18, mechanism 1; docs/certified_schedules_section.md).

* ``schedule_envelope`` -> ``Envelope``: E_k = factor x exact worst case of a classical reference at layer k;
* ``certify_schedule`` -> ``ScheduleCertificate``: per-layer exact worst case of a schedule vs E_k, from scratch;
* ``project_schedule``: the largest certified point on the segment from a certified schedule to a candidate;
* ``project_momentum_schedule``: the same for (steps, momentum) jointly (agd / fista);
* ``train_certified_schedule`` -> ``CertifiedTrainResult``: unsupervised training with projections.

The names are imported from ``schedule`` on first use (PEP 562), so that importing this package does not load
cvxpy and torch.
"""
from importlib import import_module
from typing import Any

_EXPORTS = ("ACCEPTED_STATUSES", "CERTIFIABLE_MODELS", "DEFAULT_BISECTION_STEPS", "DEFAULT_RTOL",
            "CertifiedTrainResult", "Envelope", "ScheduleCertificate", "certify_schedule", "project_momentum_schedule",
            "project_schedule", "schedule_envelope", "train_certified_schedule")
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """A public name, imported from ``schedule`` (then cached in this package's namespace)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(import_module(f"{__name__}.schedule"), name)
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
