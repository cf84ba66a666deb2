"""Speed and memory of the blind-spot denoiser on this machine (CPU).

Prints: seconds per training step at the CPU default (2-channel cross, 32/64 filters,
3 levels, batch 8 of 64x64) and at the source's size (48/96 filters, 5 levels, batch 4
of 128x128); inference seconds for a 640x1000 dual-energy scan (tile 256, overlap 32,
batch 1), float32 and bfloat16; peak resident memory of a whole denoise of 640x1000 and
4096x4096 scans, each in its own process. Untrained networks: the cost does not depend
on the weights. The machine may be shared: the load average is printed with the numbers.

    python benchmarks/bench_blindspot_speed.py            # everything (~3-5 minutes)
    python benchmarks/bench_blindspot_speed.py --quick    # skip the source size and 4096^2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def _conditions() -> str:
    load = os.getloadavg()
    return f"cpus={os.cpu_count()} load_avg(1/5/15 min)={load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}"


def _scan(shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]), indexing="ij")
    clean = 20000 + 15000 * np.sin(20 * xx) * np.cos(13 * yy)
    clean = np.stack([clean, 0.7 * clean + 5000])
    return np.clip(8 * rng.poisson(clean / 8) + rng.normal(0, 25, clean.shape), 0, 65535).astype(
        np.uint16
    )


def train_step_seconds(config, channels: int, n_steps: int = 5) -> float:
    """Median seconds per optimiser step (after two warm-up steps that trace the graph)."""
    from napari_xray_denoise.core._backend import tf
    from napari_xray_denoise.core.blindspot.network import make_blindspot_loss
    from napari_xray_denoise.core.blindspot.train import untrained_denoiser
    from napari_xray_denoise.core.training import make_optimizer

    den = untrained_denoiser(channels, config)
    model, c = den.model, den.channels
    loss_fn = make_blindspot_loss(
        config.mode,
        c,
        [n["var_ref"] for n in den.metadata["noise"]["init_estimate_x01"]],
        config.reg,
    )
    opt, variables = make_optimizer(config.learning_rate), den.model.trainable_variables

    @tf.function
    def step(x, t):
        with tf.GradientTape() as tape:
            loss = loss_fn(t, model(x, training=True))
        opt.apply(tape.gradient(loss, variables), variables)
        return loss

    x = (
        _scan((config.crop_size * 2, config.crop_size * 2))[
            :c, : config.crop_size, : config.crop_size
        ]
        / 65535.0
    )
    x = np.repeat(x.transpose(1, 2, 0)[None], config.batch_size, 0).astype(np.float32)
    t = np.concatenate([x, np.ones_like(x)], -1)
    for _ in range(2):
        step(x, t).numpy()
    times = []
    for _ in range(n_steps):
        t0 = time.perf_counter()
        step(x, t).numpy()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def inference_seconds(shape, precision: str, repeats: int = 2) -> tuple[float, float]:
    """(first call incl. tracing, best later call) seconds to denoise a (2, *shape) scan."""
    from napari_xray_denoise.core import TrainConfig
    from napari_xray_denoise.core.blindspot.train import untrained_denoiser

    den = untrained_denoiser(2, TrainConfig())
    scan = _scan(shape)
    t0 = time.perf_counter()
    den.denoise(scan, precision=precision)
    first = time.perf_counter() - t0
    later = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        den.denoise(scan, precision=precision)
        later.append(time.perf_counter() - t0)
    return first, min(later)


def peak_rss_child(shape) -> dict:
    """Run one denoise of a (2, *shape) scan in a fresh process; its peak RSS in MB."""
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", f"{shape[0]}x{shape[1]}"],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MB: VmHWM (Linux), else ru_maxrss.

    ru_maxrss alone is misleading in a child process: Linux carries the parent's value
    over fork and exec.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_child(shape_text: str) -> None:
    from napari_xray_denoise.core import TrainConfig
    from napari_xray_denoise.core.blindspot.train import untrained_denoiser

    shape = tuple(int(v) for v in shape_text.split("x"))
    scan = _scan(shape)
    den = untrained_denoiser(2, TrainConfig())
    before = _peak_rss_mb()
    t0 = time.perf_counter()
    out = den.denoise(scan)
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "shape": shape,
                "peak_rss_mb": round(_peak_rss_mb(), 1),
                "peak_rss_before_denoise_mb": round(before, 1),
                "seconds_incl_tracing": round(seconds, 2),
                "out_dtype": str(out.dtype),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="skip the source-size step and the 4096^2 scan"
    )
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(args.rss_child)
        return
    from napari_xray_denoise.core import TrainConfig

    print("conditions:", _conditions(), flush=True)
    for shape in [(640, 1000)] + ([] if args.quick else [(4096, 4096)]):
        print("peak RSS of one denoise (own process):", peak_rss_child(shape), flush=True)
    cpu = TrainConfig()
    print(
        f"train step, CPU default (2-ch cross, 32/64, 3 levels, batch 8 x 64^2), float32: "
        f"{train_step_seconds(cpu, 2):.3f} s",
        flush=True,
    )
    cpu_bf = TrainConfig(mixed_bfloat16=True)
    print(
        f"train step, CPU default, mixed bfloat16: {train_step_seconds(cpu_bf, 2):.3f} s",
        flush=True,
    )
    if not args.quick:
        src = TrainConfig(enc_filters=48, dec_filters=96, levels=5, batch_size=4, crop_size=128)
        print(
            f"train step, source size (1-ch, 48/96, 5 levels, batch 4 x 128^2), float32: "
            f"{train_step_seconds(src, 1, n_steps=3):.3f} s",
            flush=True,
        )
    print("conditions:", _conditions(), flush=True)
    for precision in ("float32", "bfloat16"):
        first, best = inference_seconds((640, 1000), precision)
        print(
            f"inference 2 x 640 x 1000, tile 256/overlap 32/batch 1, {precision}: "
            f"{best:.2f} s (first call with tracing {first:.2f} s)",
            flush=True,
        )
    print("conditions:", _conditions(), flush=True)


if __name__ == "__main__":
    main()
