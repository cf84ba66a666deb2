"""How much of a model's error on set (b) of ``bench_default.py`` is column-constant.

Set (b)'s scans (photographs used as transmission maps) carry 1% per-column gain streaks
and no air to flat-field them from, so the streaks are part of the clean scan, as a
scanner records them. A model that smooths them away as noise leaves an error whose
column means (over all rows) are large; this prints, per model, the share of each
channel's squared error (denoised minus clean, in counts) that those column means hold:
median, smallest and largest over the 40 channels. For diagnosis, not ``make bench``:

    python benchmarks/column_error_share.py default training_runs/streaks/export.keras
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_default import photo_scans  # noqa: E402

from napari_xray_denoise.core import load_model  # noqa: E402


def column_share(denoised: np.ndarray, clean: np.ndarray) -> float:
    """The share of the mean squared error held by the error's column means (their
    overall mean taken out)."""
    err = np.asarray(denoised, np.float64) - clean
    col = err.mean(axis=0)
    col -= col.mean()
    return float(np.mean(col**2) / np.mean(err**2))


def main(paths) -> None:
    scans = photo_scans()
    for path in paths:
        model = load_model() if path == "default" else load_model(path)
        shares = []
        for _name, noisy, clean, _code in [s[:4] for s in scans]:
            out = model.denoise(noisy)
            shares += [column_share(out[c], clean[c]) for c in range(2)]
        s = np.array(shares)
        print(
            f"{path}: column-constant share of the error, median {np.median(s):.3f}, "
            f"min {s.min():.3f}, max {s.max():.3f} ({s.size} channels)",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:] or ["default"])
