"""Fusion, colouring and scoring speed on a 640x1000 dual-energy phantom scan.

Usage: python benchmarks/bench_fusion.py  (prints a markdown table; exit 1 if the
wavelet or spatial fusion median exceeds 0.2 s, the issue's target).
"""

from __future__ import annotations

import sys
import time

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _util import best_time, machine  # noqa: E402

from napari_xray_denoise import colour, fusion, metrics  # noqa: E402
from napari_xray_denoise.phantom import make_bag  # noqa: E402

TARGET_S = 0.2


def main() -> int:
    bag = make_bag((640, 1000), dose=3000.0, seed=7)
    low, high = bag.noisy
    fused = fusion.wavelet_fuse(low, high)
    cases = {
        "wavelet_fuse (db4, 4 levels, source rules)": lambda: fusion.wavelet_fuse(low, high),
        "wavelet_fuse (max_abs details)": lambda: fusion.wavelet_fuse(low, high, detail="max_abs"),
        "spatial_fuse (threshold 5140 counts, gamma 2.2)": lambda: fusion.spatial_fuse(low, high),
        "material_colour (white level estimated)": lambda: colour.material_colour(low, high),
        "hsv_pseudocolour": lambda: colour.hsv_pseudocolour(fused),
        "brisque (one 640x1000 channel)": lambda: metrics.brisque(low),
        "estimate_noise_flat (one channel)": lambda: metrics.estimate_noise_flat(low),
    }
    print(f"# fusion benchmark, {time.strftime('%Y-%m-%d')}, {machine()}\n")
    print("| operation (640x1000 uint16 pair) | min s | median s |")
    print("|---|---:|---:|")
    medians = {}
    for name, fn in cases.items():
        lo, med = best_time(fn)
        medians[name] = med
        print(f"| {name} | {lo:.4f} | {med:.4f} |")
    distinct = len(np.unique(np.rint(fused[200:260, 300:360])))
    print(f"\ndistinct values of the wavelet-fused image in a 60x60 window: {distinct}")
    slow = [n for n, m in medians.items() if "fuse" in n and m > TARGET_S]
    if slow:
        print(f"FAILED: above {TARGET_S} s: {slow}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
