"""Sample phantom bags for napari's File > Open Sample (no TensorFlow, no phantom run).

The files are made by ``scripts/make_sample_data.py`` (see ``sample_data/README.md``).
"""

from __future__ import annotations

from .. import io
from ..samples import SAMPLES, sample_data_dir, sample_paths
from .layer_data import scan_to_layer_data

__all__ = [
    "SAMPLES",
    "sample_data_dir",
    "sample_paths",
    "low_dose_bag",
    "medium_dose_bag",
    "high_dose_bag",
]


def _load(key: str):
    noisy_path, clean_path = sample_paths(key)
    layers = scan_to_layer_data(io.read_scan(noisy_path))
    clean = io.read_scan(clean_path)
    for data, kwargs, kind in scan_to_layer_data(clean):
        kwargs["visible"] = False
        kwargs["metadata"]["reference"] = True
        layers.append((data, kwargs, kind))
    return layers


def low_dose_bag():
    return _load("low_dose")


def medium_dose_bag():
    return _load("medium_dose")


def high_dose_bag():
    return _load("high_dose")
