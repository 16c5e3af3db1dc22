"""Command-line argument helpers shared by the CLI and the benchmark scripts: a parser whose errors are
one line with exit status 2, and argument types that name what was wrong."""
from __future__ import annotations

import argparse
import os
from pathlib import Path


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def int_at_least(minimum: int):  # noqa: ANN201 - an argparse type
    """An argparse ``type``: an integer >= ``minimum`` (ArgumentTypeError naming the value otherwise)."""
    what = "a non-negative integer" if minimum == 0 else "a positive integer" if minimum == 1 else \
        f"an integer >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except (TypeError, ValueError):
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
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


def _output_folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot take output files (None if it can): it is created if missing, must be a folder,
    and a temporary file is created in it and deleted again (the only reliable writability test)."""
    import tempfile

    if path.exists() and not path.is_dir():
        return "exists and is not a folder; give a folder (it is created if missing)"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"cannot create this folder ({err.strerror or err}); give a folder you can write to"
    try:
        fd, probe = tempfile.mkstemp(prefix=".unfoldkit-write-test-", dir=path)
    except OSError as err:
        return f"cannot write files in this folder ({err.strerror or err}); give a folder you can write to"
    os.close(fd)
    os.unlink(probe)
    return None


def output_folder(flag: str, path: str | Path) -> Path:
    """The output folder of option ``flag``, validated before any work starts: created if missing, a
    folder, writable (a temporary file is created and deleted in it). ValueError naming ``flag``, the path
    and the fix otherwise (the CLI prints it on one line and exits 2)."""
    path = Path(path)
    problem = _output_folder_problem(path)
    if problem:
        raise ValueError(f"{flag} {path}: {problem}")
    return path


def folder(text: str) -> Path:
    """An argparse ``type`` with the checks of ``output_folder`` (argparse names the option)."""
    path = Path(text)
    problem = _output_folder_problem(path)
    if problem:
        raise argparse.ArgumentTypeError(f"{path}: {problem}")
    return path
