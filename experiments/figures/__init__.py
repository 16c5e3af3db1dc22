"""One module per reproducible figure; FIGURES maps the `unfoldkit reproduce NAME` name to it.

Each module exposes NAME, DESCRIPTION and ``reproduce(out_dir, quick, seed, progress) -> dict``.
"""
from __future__ import annotations

from types import ModuleType

from unfoldkit.experiments.figures import classical_rates, lista_theory, pep_learned_steps

FIGURES: dict[str, ModuleType] = {classical_rates.NAME: classical_rates, lista_theory.NAME: lista_theory,
                                  pep_learned_steps.NAME: pep_learned_steps}
