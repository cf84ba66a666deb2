"""Decide on the validation source, not the test sets: a candidate model against the
shipped one on ``unseen_sets.VALIDATION`` (photon-starved ``synth.dense_electronics``
scenes with validation seeds and validation phantom bags, by detectors V1/V2) and on
validation phantom bags at the simulator's usual settings (seeds 5000+, never a test
scene). Prints per channel PSNR of both and their difference; writes OUT (JSON).

    python benchmarks/validate_model.py training_runs/dark/export.keras docs/validation_dark.json
    python benchmarks/validate_model.py --bm3d docs/validation_bm3d.json   # BM3D + GAT rows
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import machine  # noqa: E402
from unseen_sets import VALIDATION, line_shares  # noqa: E402

from napari_xray_denoise import metrics  # noqa: E402
from napari_xray_denoise.core import load_model  # noqa: E402
from napari_xray_denoise.phantom import make_bag  # noqa: E402


def phantom_validation():
    """Validation phantom bags (seeds 5002+) at the usual simulator settings."""
    out = []
    for i, dose in enumerate((500.0, 3000.0)):
        bag = make_bag((320, 480), dose=dose, seed=5002 + i)
        out.append(
            (f"bag {5002 + i} dose {dose:g}", bag.noisy.astype(np.float64), bag.clean, 65535.0)
        )
    return out


def bm3d_rows(out: str) -> None:
    """BM3D + GAT (the true noise where the set knows it) on the validation scans."""
    from unseen_sets import TRUE_NOISE

    from napari_xray_denoise.classical import bm3d_denoise

    res = {}
    for set_name, make in {**VALIDATION, "phantom validation": phantom_validation}.items():
        for name, noisy, clean, top in make():
            laws = TRUE_NOISE.get(name)
            d = bm3d_denoise(noisy, noise=laws) if laws else bm3d_denoise(noisy)
            res[name] = [
                metrics.psnr(d[c].astype(np.float64), clean[c], data_range=top) for c in (0, 1)
            ]
            print(set_name, name, np.round(res[name], 2), flush=True)
    Path(out).write_text(json.dumps(res, indent=1))


def main(candidate: str, out: str) -> None:
    sets = {**VALIDATION, "phantom validation": phantom_validation}
    models = {"shipped": load_model(), "candidate": load_model(candidate)}
    res = {
        "candidate": candidate,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "rows": [],
    }
    for set_name, make in sets.items():
        diffs = []
        for name, noisy, clean, top in make():
            psnr = {}
            for label, m in models.items():
                d = m.denoise(noisy)
                psnr[label] = [
                    metrics.psnr(d[c].astype(np.float64), clean[c], data_range=top) for c in (0, 1)
                ]
                if label == "candidate" or label == "shipped":
                    res["rows"].append(
                        {
                            "set": set_name,
                            "scan": name,
                            "model": label,
                            "psnr": psnr[label],
                            "line_shares": [line_shares(d[c], clean[c]) for c in (0, 1)],
                        }
                    )
            diff = np.subtract(psnr["candidate"], psnr["shipped"])
            diffs += diff.tolist()
            print(
                f"{set_name} {name}: shipped {np.round(psnr['shipped'], 2)} candidate {np.round(psnr['candidate'], 2)} diff {np.round(diff, 3)}",
                flush=True,
            )
        print(
            f"== {set_name}: candidate - shipped median {np.median(diffs):+.3f} dB, worst {min(diffs):+.3f}",
            flush=True,
        )
    Path(out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    if sys.argv[1] == "--bm3d":
        bm3d_rows(sys.argv[2])
    else:
        main(sys.argv[1], sys.argv[2])
