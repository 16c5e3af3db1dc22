"""`unfoldkit list`: the figures `unfoldkit reproduce` can produce, one a line with its description, and under
it which paper's figure, theorem or study it corresponds to (torch-free: the registry only)."""
from __future__ import annotations

import argparse
import shutil
import textwrap

from unfoldkit.experiments import figures as registry
from unfoldkit.experiments.figures import ALL

NAME = "list"
HELP = "list the figures that can be reproduced, and the paper each corresponds to"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    return subparsers.add_parser(NAME, help=HELP, description="List the figures `unfoldkit reproduce` can produce, "
                                 "each with the paper figure, theorem or study it corresponds to.")


def run(args: argparse.Namespace) -> int:
    figures = registry.FIGURES
    width = max(len(n) for n in figures)
    columns = max(60, min(120, shutil.get_terminal_size((100, 24)).columns))
    indent = " " * (width + 2)
    for name in sorted(figures):
        figure = figures[name]
        print(f"{name:<{width}}  {figure.DESCRIPTION}")
        if figure.paper:
            print(textwrap.fill(figure.paper, columns, initial_indent=indent + "paper: ",
                                subsequent_indent=indent + "       ", break_on_hyphens=False))
    print(f"\n`unfoldkit reproduce NAME` writes one figure; `unfoldkit reproduce {ALL}` runs them all (--quick by "
          f"default) and writes index.md and index.html")
    return 0
