"""Command-line argument helpers shared by the CLI and the benchmark scripts: a parser whose errors are
one line with exit status 2, and argument types that name what was wrong."""
from __future__ import annotations

import argparse


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def int_at_least(minimum: int):  # noqa: ANN201 - an argparse type
    """An argparse ``type``: an integer >= ``minimum`` (ArgumentTypeError naming the value otherwise)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except (TypeError, ValueError):
            value = None
        if value is None or value < minimum:
            what = ("non-negative" if value is None or value < 0 or minimum == 0 else "positive" if minimum == 1
                    else f">= {minimum}")
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


nonneg_int = int_at_least(0)
positive_int = int_at_least(1)
