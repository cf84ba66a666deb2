"""`make demo`: the main job on the shipped sample bags.

For each bag: read the noisy dual-energy scan -> denoise it with the shipped default model
(when TensorFlow is installed) -> fuse both energies (wavelet) -> colour by material ->
write 16-bit TIFFs and PNG previews under the output folder -> print quality scores
before and after denoising (BRISQUE, flat-region noise, PSNR/SSIM against the clean
reference shipped beside each bag).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import bands, colour, fusion, io, metrics
from .samples import SAMPLES, sample_paths
from .tables import print_table


def shipped_model_path() -> Path:
    """The shipped default model (single-pass network), as ``core.registry`` names it."""
    from .core.registry import default_model_path  # TF-free

    return default_model_path()


def _denoiser():
    """The shipped default model, or None (with the reason) when it cannot be used."""
    path = shipped_model_path()
    if not path.exists():
        return None, f"no shipped model at {path}"
    try:
        from .core import load_model
    except ImportError as exc:  # TensorFlow not installed
        return None, f"TensorFlow is not installed ({exc.name}); install the 'tf' extra"
    return load_model(path), None


def _preview(path: Path, gray_counts: np.ndarray, history) -> None:
    """8-bit PNG preview of a 16-bit image with a fixed full-range window."""
    gray8 = metrics.window_to_8bit(np.clip(gray_counts, 0, 65535))
    io.write_rgb(path, np.repeat(gray8[..., None], 3, axis=-1), history=history)


def run_demo(out: Path) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    model, why_not = _denoiser()
    if model is None:
        print(f"denoising skipped: {why_not}")
    rows = []
    for key in SAMPLES:
        noisy_path, clean_path = sample_paths(key)
        scan = io.read_scan(noisy_path)
        clean = io.read_scan(clean_path).stack().astype(np.float64)
        noisy = scan.stack()
        history = list(scan.meta.get("history", []))
        versions = {"noisy": noisy.astype(np.float32)}
        if model is not None:
            t0 = time.perf_counter()
            versions["denoised"] = bands.apply_inside(model.denoise, noisy)
            seconds = time.perf_counter() - t0
            step = io.denoise_history_entry("default", model.metadata, model.last_noise)
            io.write_tiff(
                out / f"{scan.name}_denoised.tif",
                list(versions["denoised"]),
                channel_names=["low", "high"],
                history=history + [step],
            )
            print(f"{scan.name}: denoised {noisy.shape[1]}x{noisy.shape[2]} in {seconds:.2f} s")
        for label, stack in versions.items():
            fused = fusion.wavelet_fuse(stack[0], stack[1])
            rgb = colour.material_colour(stack[0], stack[1])
            step = io.history_entry("wavelet fusion", input=label, wavelet="db4", level=4)
            io.write_tiff(
                out / f"{scan.name}_{label}_fused.tif",
                fused,
                channel_names=["fused"],
                history=history + [step],
            )
            _preview(out / f"{scan.name}_{label}_fused.png", fused, history + [step])
            io.write_rgb(
                out / f"{scan.name}_{label}_material.png",
                rgb,
                history=history + [io.history_entry("material colour", input=label)],
            )
            for row in metrics.score_table(
                {f"{scan.name} {label}": stack}, reference=clean, window=metrics.DEFAULT_WINDOW
            ):
                row["channel"] = ("low", "high")[row["channel"]]
                rows.append(row)
            rows.append(
                {
                    "name": f"{scan.name} {label}",
                    "channel": "fused",
                    "brisque": metrics.brisque(np.clip(fused, 0, 65535).astype(np.uint16)),
                    "noise": metrics.estimate_noise_flat(fused),
                }
            )
    print()
    print_table(rows, ["name", "channel", "brisque", "noise", "psnr", "ssim"])
    print(f"\noutputs written to {out.resolve()}")
    return rows
