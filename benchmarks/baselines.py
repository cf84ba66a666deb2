"""Classical baseline: BM3D in the generalized-Anscombe domain (needs the `bench` extra, bm3d).

    bm3d_anscombe(scan_counts, noise_model=None, *, profile="np", inverse="exact")

GAT with the Poisson-Gaussian model -> BM3D with sigma_psd = 1 (hard thresholding and
Wiener stages) -> inverse GAT (exact unbiased by default). Saturated pixels (at the clip
level, e.g. 65535) are passed through unchanged.

Usage: python benchmarks/baselines.py [--quick]
prints a markdown table: BM3D time per 512x512 image, and PSNR on a 256x256 crop of a
640x1000 phantom bag (dose 3000) for the noisy scan and BM3D+GAT with true parameters,
fitted parameters, and the algebraic / closed-form inverses.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _util import machine  # noqa: E402

from napari_xray_denoise import noise  # noqa: E402

UINT16_MAX = 65535.0


def _saturation_level(counts: np.ndarray) -> float | None:
    """The clip level of a channel: 65535, or the image max when many pixels sit there."""
    top = float(counts.max())
    if top >= UINT16_MAX or np.count_nonzero(counts == top) >= max(3, int(1e-5 * counts.size)):
        return top
    return None


def _bm3d_one(counts: np.ndarray, model: noise.NoiseModel, profile, inverse: str) -> np.ndarray:
    import bm3d

    z = noise.generalized_anscombe(counts, model.a, model.b)
    denoised_z = bm3d.bm3d(z, sigma_psd=1.0, profile=profile, stage_arg=bm3d.BM3DStages.ALL_STAGES)
    out = noise.inverse_generalized_anscombe(denoised_z, model.a, model.b, method=inverse)
    level = _saturation_level(counts)
    if level is not None:
        saturated = counts >= level
        out[saturated] = counts[saturated]
    return out.astype(np.float32)


def bm3d_anscombe(
    scan_counts, noise_model=None, *, profile="np", inverse: str = "exact"
) -> np.ndarray:
    """Denoise a scan with BM3D (Dabov et al. 2007) after the generalized Anscombe transform.

    scan_counts: (Y, X) or (2, Y, X) counts, any real dtype (uint16 0..65535 typically).
    noise_model: a NoiseModel for (Y, X), one per channel (sequence) for a stack, a single
        model applied to every channel, or None to fit it from the scan itself.
    profile: bm3d profile ("np", "refilter", "vn", "high", "deb" or a BM3DProfile).
    inverse: "exact" (unbiased), "closed_form" or "algebraic", see
        ``noise.inverse_generalized_anscombe``.
    Returns float32 counts of the same shape; saturated pixels unchanged.
    """
    counts = np.asarray(scan_counts)
    if counts.ndim not in (2, 3):
        raise ValueError(f"expected a (Y, X) scan or a (C, Y, X) stack, got shape {counts.shape}.")
    counts = counts.astype(np.float64)
    channels = counts[None] if counts.ndim == 2 else counts
    if noise_model is None:
        models = [noise.fit_poisson_gaussian(c) for c in channels]
    elif isinstance(noise_model, noise.NoiseModel):
        models = [noise_model] * len(channels)
    else:
        models = list(noise_model)
    if len(models) != len(channels):
        raise ValueError(
            f"got {len(models)} noise models for {len(channels)} channels; give one per channel."
        )
    out = np.stack(
        [_bm3d_one(c, m, profile, inverse) for c, m in zip(channels, models, strict=True)]
    )
    return out[0] if counts.ndim == 2 else out


# --------------------------------------------------------------------------- benchmark
def _timing_512(rng) -> tuple[float, float]:
    """(wall, CPU) seconds for one 512x512 BM3D+GAT (both stages) on a synthetic noisy ramp."""
    yy, xx = np.mgrid[0:512, 0:512]
    clean = 500.0 + 50000.0 * (xx / 512.0) * (0.5 + 0.5 * yy / 512.0)
    model = noise.NoiseModel(20.0, 625.0)
    counts = model.a * rng.poisson(clean / model.a) + rng.normal(0, np.sqrt(model.b), clean.shape)
    counts = np.clip(np.rint(counts), 0, UINT16_MAX)
    t0, c0 = time.perf_counter(), time.process_time()
    bm3d_anscombe(counts, model)
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv=None) -> int:
    from napari_xray_denoise.metrics import psnr
    from napari_xray_denoise.phantom import make_bag

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="128x128 crop instead of 256x256")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)

    print(f"# BM3D + generalized Anscombe baseline, {time.strftime('%Y-%m-%d')}, {machine()}\n")
    wall, cpu = _timing_512(rng)
    print(
        f"BM3D+GAT (profile np, both stages), one 512x512 channel: {wall:.2f} s wall, {cpu:.2f} s CPU\n"
    )

    bag = make_bag((640, 1000), dose=3000.0, seed=7)
    size = 128 if args.quick else 256
    y0, x0 = 200, 380
    crop = (slice(None), slice(y0, y0 + size), slice(x0, x0 + size))
    noisy, clean = bag.noisy[crop], bag.clean[crop]
    true_models = [noise.NoiseModel(p.gain, p.read_std**2) for p in bag.noise]
    fitted = noise.fit_poisson_gaussian(bag.noisy)  # fitted on the whole scan, as a user would
    rows = [("noisy", noisy.astype(np.float64), "")]
    for name, models, inverse in [
        ("BM3D+GAT, true params, exact inverse", true_models, "exact"),
        ("BM3D+GAT, fitted params, exact inverse", fitted, "exact"),
        ("BM3D+GAT, true params, closed-form inverse", true_models, "closed_form"),
        ("BM3D+GAT, true params, algebraic inverse", true_models, "algebraic"),
    ]:
        t0 = time.perf_counter()
        out = bm3d_anscombe(noisy, models, inverse=inverse)
        rows.append((name, out, f"{time.perf_counter() - t0:.1f}"))

    print(f"Phantom bag 640x1000, dose 3000, seed 7, crop {size}x{size} at (y, x) = ({y0}, {x0}).")
    print("True (a, b) low / high: " + " / ".join(f"({m.a:.2f}, {m.b:.0f})" for m in true_models))
    print(
        "Fitted (a, b) low / high: " + " / ".join(f"({m.a:.2f}, {m.b:.0f})" for m in fitted) + "\n"
    )
    print("| method | PSNR low (dB) | PSNR high (dB) | seconds (both channels) |")
    print("|---|---:|---:|---:|")
    for name, out, secs in rows:
        low, high = psnr(out, clean, data_range=UINT16_MAX)
        print(f"| {name} | {low:.2f} | {high:.2f} | {secs} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
