"""Denoising quality on phantom bags never used for training, at three doses.

For each dose (low 500, medium 2000, high 8000 photons/pixel in air, low channel) a
fresh 480x800 test bag (scene seeds 900+) is denoised by every method given, and PSNR /
SSIM against the noise-free scan are printed per channel as a markdown table:

- noisy input;
- BM3D with the generalized Anscombe transform and its exact unbiased inverse, noise
  parameters fitted from the scan itself (``noise.fit_poisson_gaussian``);
- each model given with ``--model NAME=PATH`` (any .keras written by ``xray-denoise
  train`` or ``scripts/train_shipped_model.py``);
- models trained here with ``--train VARIANT`` for each of ``--train-minutes`` on 12
  training bags (scene seeds 1000+, as the shipped model): ``single`` (one-channel
  poissongaussian for each energy), ``blind`` (joint, centre blind in both channels),
  ``cross`` (joint, each channel sees the other's centre pixel), ``amssd``, and the
  supervised upper bounds ``supervised-single`` / ``supervised-joint`` (the same
  network, not blind, trained on the bags' noisy -> clean pairs). Several minute values
  give a quality-against-training-time curve; ``--lr-schedule``/``--lr`` set the
  blind-spot schedule (default: cosine decay over the time budget from 1e-3).

    python benchmarks/bench_denoise.py --model shipped=src/napari_xray_denoise/data/models/blindspot_phantom.keras
    python benchmarks/bench_denoise.py --train single blind --train-minutes 5 --no-bm3d
    python benchmarks/bench_denoise.py --train amssd --targets --train-minutes 4 --no-bm3d
    python benchmarks/bench_denoise.py --train single supervised-single --train-minutes 2 5 10 20 --no-bm3d
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from _util import machine  # noqa: E402

from napari_xray_denoise import metrics  # noqa: E402
from napari_xray_denoise.phantom import make_bag  # noqa: E402

DOSES = {"low": 500.0, "medium": 2000.0, "high": 8000.0}
SHAPE = (480, 800)


def test_bags() -> dict[str, object]:
    return {
        name: make_bag(SHAPE, dose=dose, seed=900 + i)
        for i, (name, dose) in enumerate(DOSES.items())
    }


VARIANTS = ("single", "blind", "cross", "amssd", "supervised-single", "supervised-joint")


def train_variant(
    variant: str,
    minutes: float,
    lr_schedule: str = "cosine",
    lr: float = 1e-3,
    noise_per_scan: bool = True,
):
    from train_shipped_model import training_phantoms

    phantoms = training_phantoms(12)
    scans = [p.noisy for p in phantoms]
    from napari_xray_denoise.core import train

    if variant == "amssd":
        return train("amssd", scans, {"steps": 100_000, "minutes": minutes})
    supervised = variant.startswith("supervised")
    joint = {
        "single": "separate",
        "blind": "blind",
        "cross": "cross",
        "supervised-single": "separate",
        "supervised-joint": "blind",
    }[variant]
    config = {
        "joint": joint,
        "steps": 1_000_000,
        "val_every": 100,
        "minutes": minutes,
        "lr_schedule": lr_schedule,
        "learning_rate": lr,
        "early_stop_patience": 1_000,
        "noise_per_scan": noise_per_scan,
    }
    if supervised:
        return train("supervised", scans, config, clean=[p.clean for p in phantoms])
    return train("poissongaussian", scans, config)


def bm3d_denoise(noisy: np.ndarray) -> np.ndarray:
    from baselines import bm3d_anscombe

    return bm3d_anscombe(noisy)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--train", nargs="*", default=[], choices=VARIANTS)
    parser.add_argument("--train-minutes", type=float, nargs="+", default=[5.0])
    parser.add_argument("--lr-schedule", default="cosine", choices=["cosine", "plateau"])
    parser.add_argument(
        "--noise",
        default="per-scan",
        choices=["per-scan", "shared"],
        help="blind-spot training noise law: fitted on each training scan, or one learnt for all",
    )
    parser.add_argument(
        "--lr", type=float, default=1e-3, help="peak (cosine) or initial (plateau) learning rate"
    )
    parser.add_argument(
        "--save-trained", default=None, help="folder to keep the models trained here"
    )
    parser.add_argument("--no-bm3d", action="store_true")
    parser.add_argument(
        "--targets",
        action="store_true",
        help="also score the AMSSD pseudo-targets alone (each default scale)",
    )
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()

    bags = test_bags()
    methods: dict[str, object] = {"noisy": lambda x: x.astype(np.float32)}
    if not args.no_bm3d:
        methods["BM3D + GAT (exact inverse, fitted noise)"] = bm3d_denoise
    if args.targets:
        from napari_xray_denoise.targets import DEFAULT_SCALES, blurred_version

        for factor, a in DEFAULT_SCALES:
            methods[f"AMSSD target alone (x{factor}, a={a:g})"] = lambda x, f=factor, a=a: (
                blurred_version(x.astype(np.float64), f, a)
            )
    for spec in args.model:
        name, path = spec.split("=", 1)
        from napari_xray_denoise.core import load_model

        model = load_model(path)
        methods[name] = model.denoise
    for variant in args.train:
        for budget in args.train_minutes:
            t0 = time.monotonic()
            model = train_variant(
                variant, budget, args.lr_schedule, args.lr, args.noise == "per-scan"
            )
            minutes = (time.monotonic() - t0) / 60
            steps = model.metadata.get("training", {}).get("steps")
            sched = "" if variant == "amssd" else f", {args.lr_schedule} lr {args.lr:g}"
            if variant in ("single", "blind", "cross"):
                sched += f", {args.noise} noise"
            name = f"trained here: {variant} ({minutes:.1f} min, {steps} steps{sched})"
            if args.save_trained:
                Path(args.save_trained).mkdir(parents=True, exist_ok=True)
                model.save(Path(args.save_trained) / f"{variant}_{budget:g}min.keras")
            methods[name] = model.denoise
            print(f"trained {name}", flush=True)

    rows = []
    for method, fn in methods.items():
        for dose, bag in bags.items():
            t0 = time.perf_counter()
            out = np.asarray(fn(bag.noisy), dtype=np.float64)
            seconds = time.perf_counter() - t0
            p = metrics.psnr(out, bag.clean)
            s = metrics.ssim(out, bag.clean)
            rows.append(
                {
                    "method": method,
                    "dose": dose,
                    "psnr_low": float(p[0]),
                    "psnr_high": float(p[1]),
                    "ssim_low": float(s[0]),
                    "ssim_high": float(s[1]),
                    "seconds": seconds,
                }
            )
            print(json.dumps(rows[-1]), flush=True)

    print(f"\n# denoising quality, {time.strftime('%Y-%m-%d %H:%M')}, {machine()}")
    print(
        f"test bags {SHAPE[0]}x{SHAPE[1]}, scene seeds 900-902; PSNR in dB (data range 65535), low / high\n"
    )
    print(
        "| method | "
        + " | ".join(f"{d} dose PSNR" for d in DOSES)
        + " | "
        + " | ".join(f"{d} SSIM" for d in DOSES)
        + " | s per bag |"
    )
    print("|---|" + "---:|" * (2 * len(DOSES) + 1))
    for method in methods:
        r = [row for row in rows if row["method"] == method]
        psnrs = " | ".join(f"{x['psnr_low']:.2f} / {x['psnr_high']:.2f}" for x in r)
        ssims = " | ".join(f"{x['ssim_low']:.3f} / {x['ssim_high']:.3f}" for x in r)
        print(f"| {method} | {psnrs} | {ssims} | {np.mean([x['seconds'] for x in r]):.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
