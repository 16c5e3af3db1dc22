"""Command-line argument helpers shared by the CLI and the benchmark scripts: a parser whose errors are
one line with exit status 2, and argument types that name what was wrong."""
from __future__ import annotations

import argparse
from pathlib import Path


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


def float_list(option: str, text: str | None) -> list[float] | None:
    """The numbers of a comma-separated option value (None stays None); ValueError naming ``option`` otherwise."""
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{option} must be comma-separated numbers, got {text!r}") from None


def json_key_values(option: str, items: list[str]) -> dict:
    """The dict of repeated ``KEY=VALUE`` option values, each VALUE parsed as JSON; ValueError naming ``option``
    and the bad item otherwise."""
    import json

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{option} must be KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"{option} {key}: VALUE must be JSON (e.g. 0.5, true, [1, 2], \"text\"), "
                             f"got {value!r}") from None
    return out


def folder(text: str) -> Path:
    """An argparse ``type``: an output folder, which may not exist yet but must not be a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} exists and is not a folder")
    return path
