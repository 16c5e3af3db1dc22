"""One module per `unfoldkit` command; COMMANDS lists them in the order `unfoldkit --help` shows them.

Each module exposes ``NAME`` (the command word), ``HELP`` (one line for `unfoldkit --help`),
``add_parser(subparsers)`` (adds the command's parser and declares its arguments) and
``run(args) -> int`` (the exit status). Errors in inputs are raised as ValueError, RuntimeError or
OSError and reported by `unfoldkit.experiments.cli.main` as one line with exit status 2.
"""
from __future__ import annotations

from unfoldkit.experiments.commands import check, listing, reproduce, stress, train

COMMANDS = (listing, reproduce, train, stress, check)
