"""Inference time of trained model files on a 640x1000 dual-energy phantom scan (CPU).

For each ``--model NAME=PATH`` (default: the shipped model), float32 and bfloat16: one
call to trace, then the minimum and median of 3 timed ``Denoiser.denoise`` calls. A
1-channel model runs once per energy; a joint model once for both. The load average is
printed with each line (the machine may be shared).

    python benchmarks/bench_model_speed.py
    python benchmarks/bench_model_speed.py --model cross=cross20.keras --model shipped=src/.../blindspot_phantom.keras
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from napari_xray_denoise.core import load_model
from napari_xray_denoise.phantom import make_bag

SHIPPED = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "napari_xray_denoise"
    / "data"
    / "models"
    / "blindspot_phantom.keras"
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    specs = args.model or [f"shipped={SHIPPED}"]
    scan = make_bag((640, 1000), dose=3000, seed=77).noisy
    for spec in specs:
        name, path = spec.split("=", 1)
        model = load_model(path)
        for precision in ("float32", "bfloat16"):
            model.denoise(scan, precision=precision)  # trace once
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                model.denoise(scan, precision=precision)
                times.append(time.perf_counter() - t0)
            load = "/".join(f"{x:.2f}" for x in os.getloadavg())
            print(
                f"{name} ({model.channels}-channel) {precision}: min {min(times):.2f} s, "
                f"median {float(np.median(times)):.2f} s  (load {load})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
