"""Speed of the vectorised target creation against the source's per-pixel bicubic loop.

The source (AMSSD thesis code) upsampled each downsampled image with a pure-Python loop:
the image is padded by 2 edge-replicated pixels, then for every output pixel the kernel
``u(s, a)`` is evaluated in Python for 4 x and 4 y distances and a 4 x 4 neighbourhood is
combined with two small matrix products. ``source_style_bicubic`` below transcribes that
loop (with ``np.array`` and ``@`` in place of the deprecated ``np.matrix``, which only
makes the loop faster, so the reported speed-up is conservative). Both methods get the
same area-downsampled image; the vectorised one is run with the loop's pixel convention
(``alignment="corner"``) so the outputs can be compared, and with the default one.

Usage::

    python benchmarks/bench_targets.py [--size 500] [--factor 2] [--a 1.2]

Prints a markdown table and exits with status 1 when the speed-up is below
``--min-speedup`` (default 100) or the two methods disagree.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from napari_xray_denoise.targets import area_downsample, bicubic_upsample


def source_kernel(s: float, a: float) -> float:
    """The source's kernel u(s), evaluated per call in plain Python."""
    s = abs(s)
    if 0 <= s <= 1:
        return (a + 2) * s**3 - (a + 3) * s**2 + 1
    if 1 < s <= 2:
        return a * s**3 - 5 * a * s**2 + 8 * a * s - 4 * a
    return 0.0


def source_style_bicubic(img: np.ndarray, ratio: int, a: float) -> np.ndarray:
    """Per-pixel bicubic upsampling as in the source: pad by 2 (edge), loop over outputs."""
    height, width = img.shape
    padded = np.pad(img.astype(np.float64), 2, mode="edge")
    out_h, out_w = math.floor(height * ratio), math.floor(width * ratio)
    out = np.zeros((out_h, out_w))
    step = 1 / ratio
    for j in range(out_h):
        for i in range(out_w):
            x, y = i * step + 2, j * step + 2  # position in the padded image
            dx = [1 + x - math.floor(x), x - math.floor(x), math.floor(x) + 1 - x,
                  math.floor(x) + 2 - x]  # fmt: skip
            dy = [1 + y - math.floor(y), y - math.floor(y), math.floor(y) + 1 - y,
                  math.floor(y) + 2 - y]  # fmt: skip
            cols = [int(x - dx[0]), int(x - dx[1]), int(x + dx[2]), int(x + dx[3])]
            rows = [int(y - dy[0]), int(y - dy[1]), int(y + dy[2]), int(y + dy[3])]
            left = np.array([[source_kernel(d, a) for d in dx]])
            middle = np.array([[padded[r, c] for r in rows] for c in cols])
            right = np.array([[source_kernel(d, a)] for d in dy])
            out[j, i] = (left @ middle @ right)[0, 0]
    return out


def test_image(size: int, seed: int = 0) -> np.ndarray:
    """A noisy uint16 scan-like image: smooth structure plus Poisson noise, 12-bit range."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    clean = 1500 + 1200 * np.sin(6 * xx) * np.cos(4 * yy) + 800 * (xx > 0.5)
    rng = np.random.default_rng(seed)
    return np.clip(rng.poisson(clean), 0, 4095).astype(np.uint16)


def best_time(func, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=500, help="image side in pixels")
    parser.add_argument("--factor", type=int, default=2, help="scale factor f")
    parser.add_argument("--a", type=float, default=1.2, help="kernel parameter a")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of the fast method")
    parser.add_argument("--min-speedup", type=float, default=100.0)
    args = parser.parse_args(argv)

    counts_u16 = test_image(args.size)
    small = area_downsample(counts_u16, args.factor)  # common to both methods
    shape = counts_u16.shape

    start = time.perf_counter()
    loop_out = source_style_bicubic(small, args.factor, args.a)[: shape[0], : shape[1]]
    loop_s = time.perf_counter() - start

    def fast(alignment):
        return bicubic_upsample(small, args.factor, args.a, out_shape=shape, alignment=alignment)

    corner_out = fast("corner")
    corner_s = best_time(lambda: fast("corner"), args.repeats)
    centre_s = best_time(lambda: fast("centre"), args.repeats)
    max_diff = float(np.max(np.abs(corner_out - loop_out)))

    speedup = loop_s / corner_s
    print(
        f"Bicubic upsampling x{args.factor} (a = {args.a}) to {shape[0]} x {shape[1]} "
        f"from the area-downsampled image; fast methods: best of {args.repeats}.\n"
    )
    print("| method | seconds | speed-up |")
    print("|---|---:|---:|")
    print(f"| source-style per-pixel loop | {loop_s:.3f} | 1 |")
    print(f"| vectorised, alignment='corner' | {corner_s:.5f} | {speedup:.0f} |")
    print(f"| vectorised, alignment='centre' | {centre_s:.5f} | {loop_s / centre_s:.0f} |")
    print(f"\nmax |vectorised - loop| = {max_diff:.3g} counts")

    ok = speedup >= args.min_speedup and max_diff <= 1e-8 * max(1.0, float(np.abs(loop_out).max()))
    if not ok:
        print(f"FAILED: speed-up below {args.min_speedup:g} or outputs disagree", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
