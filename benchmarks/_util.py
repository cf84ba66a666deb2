"""Small helpers shared by the benchmark scripts."""

from __future__ import annotations

import platform
import time

import numpy as np


def machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def best_time(fn, *, repeat: int = 7, warmup: int = 1) -> tuple[float, float]:
    """(minimum, median) wall seconds of ``fn()`` over ``repeat`` runs after warm-up."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.min(times)), float(np.median(times))
