"""torch dtypes and their JSON names: the one place that maps one to the other."""
from __future__ import annotations

import torch

#: the two model dtypes and their JSON names (``config()["dtype"]``)
DTYPE_NAMES: dict[torch.dtype, str] = {torch.float32: "float32", torch.float64: "float64"}


def as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """torch.float32 / torch.float64, also from the strings "float32" / "float64" (ValueError otherwise)."""
    if isinstance(dtype, str):
        for d, name in DTYPE_NAMES.items():
            if dtype == name:
                return d
    elif dtype in DTYPE_NAMES:
        return dtype
    raise ValueError(f"dtype must be torch.float32 or torch.float64 (or 'float32' / 'float64'), got {dtype!r}")


def dtype_name(dtype: torch.dtype) -> str:
    """The name of any torch dtype without its "torch." prefix ("float32", "int64", ...)."""
    return str(dtype).removeprefix("torch.")


def dtype_from_name(name: str) -> torch.dtype:
    """The torch dtype called ``name`` ("float32", "int64", ...); ValueError for an unknown name."""
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return dtype
