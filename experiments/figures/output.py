"""Writing a figure's outputs: NAME.png, NAME.pdf and NAME.json, atomically, in one place."""
from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any


#: the files a figure writes: NAME.png, NAME.pdf (the figure) and NAME.json (its numbers)
IMAGE_FORMATS = ("png", "pdf")


def figure_paths(out_dir: str | Path, name: str) -> list[Path]:
    """The files ``write_figure`` writes for figure ``name`` into ``out_dir``: NAME.png, NAME.pdf, NAME.json."""
    return [Path(out_dir) / f"{name}.{fmt}" for fmt in (*IMAGE_FORMATS, "json")]


def write_figure(result: dict[str, Any], fig: Any, out_dir: str | Path, name: str, quick: bool) -> list[str]:
    """Save ``fig`` as PNG and PDF and ``result`` (keys starting with "_" left out, plus "mode") as JSON into
    ``out_dir``, each atomically; close the figure and return the written paths."""
    import matplotlib.pyplot as plt

    from unfoldkit.experiments.io import save_figure, write_json

    out = Path(out_dir)
    paths = save_figure(fig, out / name, IMAGE_FORMATS)
    plt.close(fig)
    data = {k: v for k, v in result.items() if not k.startswith("_")}
    data["mode"] = "quick" if quick else "full"
    paths.append(write_json(out / f"{name}.json", data))
    return [str(p) for p in paths]


def reproduce_figure(module: ModuleType, out_dir: str | Path, quick: bool, seed: int, progress: bool,
                     **compute_args: Any) -> dict[str, Any]:
    """The shared ``reproduce`` of a figure module: ``module.compute(QUICK or FULL, seed, progress, ...)``, then
    ``module.plot`` and ``write_figure``; the result gets the written ``paths``."""
    result = module.compute(module.QUICK if quick else module.FULL, seed=seed, progress=progress, **compute_args)
    result["paths"] = write_figure(result, module.plot(result), out_dir, module.NAME, quick)
    return result
