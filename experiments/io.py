"""Figure output: matplotlib figures saved atomically. File writing itself (``atomic_write``,
``write_json``, ``read_json``) lives once in ``unfoldkit.unrolled.io`` and is re-exported here."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from unfoldkit.unrolled.io import atomic_write, jsonable, read_json, write_json, write_text

__all__ = ["atomic_write", "jsonable", "read_json", "save_figure", "write_json", "write_text"]


def save_figure(fig: Any, stem: str | Path, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Save a matplotlib figure as ``stem.png`` and ``stem.pdf`` atomically; return the paths."""
    stem = Path(stem)
    out = []
    for fmt in formats:
        target = stem.with_suffix(f".{fmt}")
        out.append(atomic_write(target, lambda p, fmt=fmt: fig.savefig(p, format=fmt, dpi=150,
                                                                        bbox_inches="tight")))
    return out
