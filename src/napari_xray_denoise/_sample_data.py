"""Sample phantom bags for napari's File > Open Sample (no TensorFlow, no phantom run).

The files are made by ``scripts/make_sample_data.py`` (see ``sample_data/README.md``).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from . import io
from ._layers import scan_to_layer_data

SAMPLES = {
    "low_dose": "bag_low_dose",
    "medium_dose": "bag_medium_dose",
    "high_dose": "bag_high_dose",
}


def sample_data_dir() -> Path:
    """The shipped ``sample_data`` folder, in a wheel or in a source checkout."""
    packaged = Path(str(files("napari_xray_denoise"))) / "sample_data"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "sample_data"


def sample_paths(key: str) -> tuple[Path, Path]:
    """(noisy scan, clean reference) paths of one sample bag."""
    stem = SAMPLES[key]
    folder = sample_data_dir()
    return folder / f"{stem}.tif", folder / f"{stem}_clean.tif"


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
