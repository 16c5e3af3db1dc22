"""Peak memory of this process (the one copy, used by the trainer and the benchmarks)."""
from __future__ import annotations

import sys

import torch


def peak_rss_bytes() -> int | None:
    """The process's peak resident set size so far (``ru_maxrss`` in bytes), None where unavailable."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def peak_memory(device: torch.device | str = "cpu") -> tuple[int | None, str | None]:
    """(bytes, kind): CUDA's max allocated memory on a CUDA device, else the process's peak RSS."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda-max-allocated"
    peak = peak_rss_bytes()
    return (None, None) if peak is None else (peak, "process-peak-rss")
