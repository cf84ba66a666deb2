"""Train (or continue training) the shipped default model: the single-pass network on
simulated pairs (``core.singlepass_train``). Resumable: run it again to continue.

    python scripts/train_default_model.py --hours 1.5          # CPU, in the background:
    nohup .venv/bin/python scripts/train_default_model.py --hours 8 > training_runs/default/nohup.log 2>&1 &

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
    args = parser.parse_args(argv)
    from napari_xray_denoise.core.singlepass_train import LongRunConfig, train_long_run

    config = LongRunConfig(val_every_minutes=args.val_every_minutes)
    summary = train_long_run(args.run_dir, hours=args.hours, config=config, export=args.export)
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
