"""The figures `unfoldkit reproduce` can produce: FIGURES maps each name to a `Figure`.

A `Figure` stands where its module stood (``NAME``, ``DESCRIPTION``, ``reproduce(...)``) but imports the
module, and with it torch, cvxpy, PEPit and matplotlib, only when the figure is reproduced, so that
`unfoldkit --help` and `unfoldkit list` start without them (benchmarks/startup.py, tests/test_startup.py).

Each figure module exposes NAME, DESCRIPTION and ``reproduce(out_dir, quick, seed, progress) -> dict``; a
new figure is one module plus one line below (tests/test_startup.py checks that each line repeats its
module's NAME and DESCRIPTION).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class Figure:
    """A reproducible figure: its name, its one-line description and the module that computes it.

    The upper-case names are those of the figure module itself, so a Figure can be used where the module
    was (``FIGURES[name].DESCRIPTION``, ``FIGURES[name].reproduce(...)``).
    """

    NAME: str
    DESCRIPTION: str
    module_name: str

    @property
    def module(self) -> ModuleType:
        """The figure's module, imported on first use."""
        return importlib.import_module(self.module_name)

    def reproduce(self, out_dir: str | Path, quick: bool = False, seed: int = 0,
                  progress: bool = True) -> dict[str, Any]:
        """``module.reproduce(out_dir, quick=..., seed=..., progress=...)``: the figure's result dict."""
        return self.module.reproduce(out_dir, quick=quick, seed=seed, progress=progress)


_PACKAGE = __name__

FIGURES: dict[str, Figure] = {figure.NAME: figure for figure in (
    Figure("classical-rates",
           "GD / ISTA / FISTA: empirical worst case per iteration vs classical bounds (with tight instances)",
           f"{_PACKAGE}.classical_rates"),
    Figure("lista-theory",
           "LISTA-CP / ALISTA: linear-convergence bound vs measured error, and where the theorem stops",
           f"{_PACKAGE}.lista_theory"),
    Figure("lipschitz",
           "LISTA/ALISTA Lipschitz per layer: naive, LipLT, ECLipsE-Fast, SDP bounds vs attained lower, init vs trained",
           f"{_PACKAGE}.lipschitz"),
    Figure("pep-learned-steps",
           "learned GD step schedule: exact (PEP) worst case vs classical schedules vs its average case",
           f"{_PACKAGE}.pep_learned_steps"),
    Figure("generalization",
           "risk bounds (PAC-Bayes-kl, covering, trivial) vs measured test risk over m and K, per paradigm",
           f"{_PACKAGE}.generalization"),
)}
