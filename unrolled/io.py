"""Atomic file output: every file is written to a temporary sibling, flushed to disk and renamed into
place, so an interrupted run never leaves a half-written result. JSON goes through ``jsonable``
(NaN -> null, +-inf -> "inf"/"-inf", numpy -> lists). The one copy of these helpers: checkpoints,
figures, benchmarks and the CLI import them from here."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: dicts/lists/tuples recursively, numpy arrays as lists, numpy scalars as
    Python numbers, NaN as None and +-inf as the strings "inf" / "-inf"; objects with ``to_dict()`` by it."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if isinstance(value, np.integer):
        return int(value)
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return jsonable(value.to_dict())
    return value


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)``, fsync the file, then atomically rename it to ``path`` (same directory).

    On any error the temporary file is removed and an existing ``path`` is left untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``jsonable(data)`` as indented JSON atomically."""
    return write_text(path, json.dumps(jsonable(data), indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    """The JSON document at ``path``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
