"""Train the model shipped in the wheel (used by `make demo` and offered as a starting point).

    python scripts/train_shipped_model.py --minutes 20

A Poisson-Gaussian blind-spot network, CPU size, one single-channel model for both
energies (`--joint separate`, the best per CPU-minute in docs/benchmarks.md), trained
self-supervised (noisy scans only, no clean references) on phantom bags made here with
scene seeds 1000+ at doses 300..10000 photons/pixel: none of them is a shipped sample
bag (seeds 101, 202, 303) or a benchmark test bag (seeds 900+). The training defaults
apply (cosine learning-rate decay from 1e-3 to the end of the time budget, each
training scan's noise fitted on itself). Training stops at the step budget or the time
budget, whichever comes first, keeping the best-validation weights. Writes
`src/napari_xray_denoise/data/models/blindspot_phantom.keras`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from napari_xray_denoise.core import TrainConfig, train_blindspot
from napari_xray_denoise.phantom import make_bag

OUT = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "napari_xray_denoise"
    / "data"
    / "models"
    / "blindspot_phantom.keras"
)
DOSES = (300.0, 1000.0, 3000.0, 10000.0)


def training_phantoms(n: int, shape=(480, 800)):
    """The ``n`` training phantom bags (scene seeds 1000+, doses cycling through DOSES)."""
    return [make_bag(shape, dose=DOSES[i % len(DOSES)], seed=1000 + i) for i in range(n)]


def training_bags(n: int, shape=(480, 800)) -> list[np.ndarray]:
    return [bag.noisy for bag in training_phantoms(n, shape)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--bags", type=int, default=12)
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--joint", default="separate", choices=["separate", "cross", "blind"])
    parser.add_argument("--resume", default=None, help="continue from this model file")
    args = parser.parse_args()
    scans = training_bags(args.bags)
    config = TrainConfig(
        mode="poissongaussian",
        joint=args.joint,
        steps=args.steps,
        seed=args.seed,
        val_every=100,
        early_stop_patience=1000,
        minutes=args.minutes,
    )
    t0 = time.monotonic()
    last = [0.0]

    def progress(step, total, loss, val_loss):
        if time.monotonic() - last[0] > 30 or val_loss is not None and step % config.val_every == 0:
            last[0] = time.monotonic()
            print(
                f"{(time.monotonic() - t0) / 60:5.1f} min  step {step}  loss {loss:.4f}  val {val_loss}",
                flush=True,
            )

    model = train_blindspot(scans, config, on_progress=progress, resume_from=args.resume)
    model.metadata["name"] = "blindspot_phantom"
    model.metadata["trained_on"] = (
        f"{args.bags} phantom bags 480x800, scene seeds 1000-{999 + args.bags}, "
        f"doses {DOSES}; command: python scripts/train_shipped_model.py "
        f"--minutes {args.minutes:g} --bags {args.bags} --joint {args.joint}"
        + (" --resume <previous run>" if args.resume else "")
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    print(f"wrote {args.out}: {model.metadata.get('training')}")


if __name__ == "__main__":
    main()
