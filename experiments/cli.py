"""The `unfoldkit` command line: one subcommand per module of unfoldkit.experiments.commands.

Errors in arguments or inputs exit with status 2 and one line on stderr, never a traceback;
Ctrl-C exits with status 130 (its line says how to continue where a command knows).
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from unfoldkit.experiments.arguments import OneLineParser
from unfoldkit.experiments.commands import COMMANDS

DESCRIPTION = ("Deep unfolding paired with its theory: reproduce the theory plots of the survey "
               "'Deep Unfolding: Recent Developments, Theory, and Design Guidelines' and its sources.")


def build_parser() -> argparse.ArgumentParser:
    """The `unfoldkit` parser, one subparser per module of COMMANDS, in their order."""
    parser = OneLineParser(prog="unfoldkit", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `unfoldkit` console script."""
    args = build_parser().parse_args(argv)
    command = {command.NAME: command for command in COMMANDS}[args.command]
    try:
        return int(command.run(args))
    except (ValueError, RuntimeError, OSError) as err:
        print(f"unfoldkit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # a command may say in it how to continue
        print(f"unfoldkit: interrupted{f': {err}' if str(err) else ''}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
