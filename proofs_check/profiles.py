"""Hypothesis profiles: ``ci`` (fast, deterministic), ``dev`` (default), ``stress`` (large).

Select one with the environment variable HYPOTHESIS_PROFILE; ``tests/conftest.py`` calls
``load_profile()``, and users can do the same in their own test suites.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

settings.register_profile("ci", max_examples=15, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("dev", max_examples=40, **_COMMON)
settings.register_profile("stress", max_examples=1000, **_COMMON)

PROFILES = ("ci", "dev", "stress")


def load_profile(name: str | None = None) -> str:
    """Load the named profile (default: $HYPOTHESIS_PROFILE, else 'dev') and return its name."""
    name = name or os.environ.get("HYPOTHESIS_PROFILE", "dev")
    if name not in PROFILES:
        raise ValueError(f"HYPOTHESIS_PROFILE must be one of {PROFILES}, got {name!r}")
    settings.load_profile(name)
    return name
