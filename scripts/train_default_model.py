"""Train (or continue training) the shipped default model: the single-pass network on
simulated pairs (``core.singlepass.train``). Resumable: run it again to continue.

    python scripts/train_default_model.py --hours 1.5          # CPU, in the background:
    nohup .venv/bin/python scripts/train_default_model.py --hours 8 > training_runs/default/nohup.log 2>&1 &

The guided variant (the other energy as a second input), started from a trained model:

    python scripts/train_default_model.py --hours 1 --run-dir training_runs/guided \
        --guided --init training_runs/default/model.keras --learning-rate 3e-4 \
        --lr-half-life-steps 15000 --export training_runs/guided/export.keras

The photo-scene stage (natural-image texture in half of the non-phantom crops), started
from the guided model (the shipped default since 2026-11-30):

    python scripts/train_default_model.py --hours 1.4 --run-dir training_runs/photos \
        --guided --init training_runs/guided/model.keras --learning-rate 2e-4 \
        --lr-half-life-steps 8000 --photo-fraction 0.5 --export training_runs/photos/export.keras

The textures stage (two more training images, ``synth.training_photographs``), started
from the photo stage at 1.75 h (its export is the shipped default since then):

    python scripts/train_default_model.py --hours 1.45 --run-dir training_runs/textures \
        --guided --init training_runs/photos/model.keras --learning-rate 1e-4 \
        --lr-half-life-steps 10000 --photo-fraction 0.5 --export training_runs/textures/export.keras

The streaks stage (column streaks up to 1.5% of gain, ``SimSettings.residual_streak_std``),
started from the GPU stages' model (then the default), run as 0.17 h and 0.35 h more
(the exact commands: ``src/napari_xray_denoise/data/models/README.md``; the earlier stages'
record was copied into its export before the next GPU stage):

    python scripts/train_default_model.py --hours 0.52 --run-dir /tmp/streakrun --guided \
        --init src/napari_xray_denoise/data/models/default.keras --learning-rate 1e-4 \
        --lr-half-life-steps 10000 --photo-fraction 0.5 --export /tmp/streakrun/export.keras

The dark-scenes stage (photon-starved scenes in 30% of the crops, camera-style detectors
with offsets in half of the scans), started from the 8.36 h default:

    nohup .venv/bin/python scripts/train_default_model.py --hours 1.25 \
        --run-dir training_runs/dark --guided \
        --init src/napari_xray_denoise/data/models/default.keras --learning-rate 1e-4 \
        --lr-half-life-steps 10000 --photo-fraction 0.5 --dark-fraction 0.3 \
        --detector-fraction 0.5 --export training_runs/dark/export.keras \
        > training_runs/dark/nohup.log 2>&1 &

State lives in ``training_runs/default/`` (checkpoint, log.jsonl with the
quality-vs-hours curve, config.json); the averaged model is exported to
``src/napari_xray_denoise/data/models/default.keras`` at every validation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--hours", type=float, required=True, help="wall-clock hours to train in this call"
    )
    parser.add_argument("--run-dir", default=str(ROOT / "training_runs" / "default"))
    parser.add_argument(
        "--export", default=str(ROOT / "src/napari_xray_denoise/data/models/default.keras")
    )
    parser.add_argument("--val-every-minutes", type=float, default=5.0)
    new_run = parser.add_argument_group(
        "a new run (ignored when the run directory has a config.json: the run keeps its own)"
    )
    new_run.add_argument(
        "--guided", action="store_true", help="the guided network (the other energy as input)"
    )
    new_run.add_argument("--init", default="", help="a model file to start from")
    new_run.add_argument("--learning-rate", type=float, default=1e-3)
    new_run.add_argument("--lr-half-life-steps", type=float, default=30000.0)
    new_run.add_argument(
        "--photo-fraction",
        type=float,
        default=0.0,
        help="of the non-phantom crops, the fraction with natural-image texture",
    )
    new_run.add_argument(
        "--dark-fraction",
        type=float,
        default=0.0,
        help="of all crops, the fraction of photon-starved scenes (synth.dense_electronics)",
    )
    new_run.add_argument(
        "--detector-fraction",
        type=float,
        default=0.0,
        help="of all scans, the fraction by a camera-style detector (gain, read noise, offset)",
    )
    args = parser.parse_args(argv)
    from napari_xray_denoise.core.singlepass.train import LongRunConfig, train_long_run

    config = LongRunConfig(
        val_every_minutes=args.val_every_minutes,
        guided=args.guided,
        init=args.init,
        learning_rate=args.learning_rate,
        lr_half_life_steps=args.lr_half_life_steps,
        photo_fraction=args.photo_fraction,
        dark_fraction=args.dark_fraction,
        detector_fraction=args.detector_fraction,
    )
    summary = train_long_run(args.run_dir, hours=args.hours, config=config, export=args.export)
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
