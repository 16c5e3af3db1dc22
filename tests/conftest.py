"""Test configuration: hypothesis profile from $HYPOTHESIS_PROFILE (ci | dev | stress; default dev)."""
from unfoldkit.proofs_check.profiles import load_profile

load_profile()
