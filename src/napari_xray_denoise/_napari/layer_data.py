"""Scans <-> napari layer data tuples (no napari import: plain tuples and dicts)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..bands import EdgeBands
from ..io import Scan


def contrast_limits(image: np.ndarray) -> tuple[float, float]:
    """Robust display range: 0.1th to 99.9th percentile of a subsample, never empty."""
    step = max(1, int(np.sqrt(image.size / 250_000)))
    sample = np.asarray(image[::step, ::step], dtype=np.float64)
    lo, hi = np.percentile(sample, [0.1, 99.9])
    if not hi > lo:
        lo, hi = float(sample.min()), float(sample.max())
    if not hi > lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def layer_name(scan_name: str, channel: str) -> str:
    return scan_name if channel == "image" else f"{scan_name} {channel}"


def scan_to_layer_data(scan: Scan) -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """One grayscale image layer per channel, named ``<scan> <channel>``."""
    layers = []
    edges = EdgeBands.from_dict(scan.meta.get("edge_bands"))
    for channel, image in scan.channels.items():
        meta = {
            "scan_name": scan.name,
            "energy": channel if channel in ("low", "high") else None,
            "channel": channel,
            "source_paths": list(scan.meta.get("source_paths", [])),
            "bit_depth": scan.meta.get("bit_depth"),
            "effective_bits": scan.meta.get("effective_bits"),
            "edge_bands": dict(scan.meta.get("edge_bands") or {}),
            "tiff_tags": dict(scan.meta.get("tiff_tags", {})),
            "history": list(scan.meta.get("history", [])),
            "count_scale": 1.0,
        }
        kwargs = {
            "name": layer_name(scan.name, channel),
            "colormap": "gray",
            "contrast_limits": contrast_limits(
                edges.interior(image)
            ),  # a filler band would wash it out
            "metadata": meta,
        }
        layers.append((image, kwargs, "image"))
    return layers
