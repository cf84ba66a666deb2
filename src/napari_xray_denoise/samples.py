"""Where the shipped sample bags are: in a wheel, or in a source checkout (numpy-free paths).

The files are made by ``scripts/make_sample_data.py`` (see ``sample_data/README.md``).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

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
