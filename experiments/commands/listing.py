"""`unfoldkit list`: the figures `unfoldkit reproduce` can produce, one a line with its description."""
from __future__ import annotations

import argparse

from unfoldkit.experiments.figures import FIGURES

NAME = "list"
HELP = "list the figures that can be reproduced"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    return subparsers.add_parser(NAME, help=HELP, description="List the figures `unfoldkit reproduce` can produce.")


def run(args: argparse.Namespace) -> int:
    width = max(len(n) for n in FIGURES)
    for name in sorted(FIGURES):
        print(f"{name:<{width}}  {FIGURES[name].DESCRIPTION}")
    return 0
