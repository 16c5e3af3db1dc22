"""unfoldkit: deep unfolding (algorithm unrolling) paired with the convergence theory that governs it.

The subpackages, lowest layer first: ``unfoldkit.unrolled`` (problems, solvers, unfolded models, training),
``unfoldkit.theory`` (bounds, PEP), ``unfoldkit.proofs_check`` (verification) and ``unfoldkit.experiments``
(the CLI, figures); see README.md. This file only gives ``__version__``, read from the installed package's
metadata on first use (pyproject.toml is the one place the version is written), so that importing any
subpackage costs nothing here.
"""
from __future__ import annotations


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("unfoldkit")
        except PackageNotFoundError:  # imported from a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
