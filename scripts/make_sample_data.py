"""Regenerate the shipped sample bags: `python scripts/make_sample_data.py`.

Three phantom bags (different scenes and doses), each a noisy dual-energy 16-bit TIFF
(low, high) and its noise-free reference, zlib-compressed, in ``sample_data/``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_xray_denoise import io
from napari_xray_denoise.phantom import make_bag

# name -> (seed, low-channel photons per pixel in air)
BAGS = {
    "bag_low_dose": (101, 500.0),
    "bag_medium_dose": (202, 2000.0),
    "bag_high_dose": (303, 8000.0),
}
SHAPE = (480, 800)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "sample_data"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, (seed, dose) in BAGS.items():
        bag = make_bag(SHAPE, dose=dose, seed=seed)
        params = {
            "shape": SHAPE,
            "dose": dose,
            "seed": seed,
            "noise": [{"gain": n.gain, "read_std": n.read_std} for n in bag.noise],
        }
        history = [io.history_entry("phantom", **params)]
        io.write_tiff(out / f"{name}.tif", bag.noisy, history=history, compress=True)
        io.write_tiff(
            out / f"{name}_clean.tif",
            bag.clean,
            compress=True,
            history=history + [io.history_entry("noise-free reference (expected counts, rounded)")],
        )
        print(f"wrote {name}.tif and {name}_clean.tif (dose {dose:g}, seed {seed})")


if __name__ == "__main__":
    main()
