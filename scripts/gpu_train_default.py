"""Continue training the default model on a GPU machine that has JAX and no TensorFlow,
and time the network there (issue 12's GPU figures).

The network (``core.singlepass.network``), its layers and model files are written in ``keras.ops``
alone, so this script runs them on Keras's JAX backend; the data are the same simulated
pairs as the CPU run (``core.singlepass.simdata.PairSampler``), made by worker processes (one
sampler each, its own phantom seeds) while the GPU trains on large batches. The loss is
``singlepass.weighted_loss``, the validation set and score those of the CPU run
(``simdata.validation_set``, ``singlepass.gain_db``), so the validation gains compare.

    KERAS_BACKEND=jax python scripts/gpu_train_default.py \
        --init src/napari_xray_denoise/data/models/default.keras --minutes 6 --out OUTDIR

Writes to ``OUTDIR``: ``timing.json`` (seconds per 640x1000 dual-energy pair through the
network, 1 and 2 passes), ``log.jsonl`` (one line per validation) and ``model.keras``
(the better of the averaged and the current weights, written only when its validation
gain beats the starting model's), with a ``training.stages`` entry for this run.
Needs ``jax`` and ``optax``; runs on a CPU too (slowly: how it is tested).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ["KERAS_BACKEND"] = "jax"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

#: phantom seeds of worker ``w`` start at ``WORKER_SEED_BASE + w * WORKER_SEED_STRIDE``
#: (the test sets use seeds under 1000, the CPU runs 2000-4000, validation 5000+)
WORKER_SEED_BASE = 20000
WORKER_SEED_STRIDE = 5000


def _worker(w: int, seed: int, chunk: int, photo_fraction: float, pool_bags: int, queue, stop):
    """Fill ``queue`` with ``(inputs, targets)`` chunks of ``chunk`` guided pairs."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # one core per worker: the workers are the parallelism
    import numpy as np

    from napari_xray_denoise.core.singlepass.simdata import (
        PairSampler,
        SimSettings,
        phantom_transmissions,
    )

    rng = np.random.default_rng([seed, w])
    first = WORKER_SEED_BASE + w * WORKER_SEED_STRIDE
    pool = phantom_transmissions(range(first, first + pool_bags), rng)
    sampler = PairSampler(
        pool,
        rng,
        crop=128,
        settings=SimSettings(photo_fraction=photo_fraction),
        next_seed=first + pool_bags,
        guided=True,
    )
    n = 0
    while not stop.is_set():
        queue.put(sampler.batch(chunk))
        n += 1
        if n % 20 == 0:
            sampler.refresh()


def _device_name() -> str:
    import jax

    device = jax.devices()[0]
    return f"{getattr(device, 'device_kind', '')} ({device})".strip()


def time_network(model, out: Path, repeats: int) -> dict:
    """Seconds per 640x1000 dual-energy pair through the network: both energies (each
    guided by the other) as one batch, times the self-ensemble passes; host to device,
    the network, device to host (the numpy pre- and post-processing not included)."""
    import jax
    import numpy as np

    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]
    fn = jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, x, training=False)[0])
    rng = np.random.default_rng(0)
    result = {"device": _device_name(), "backend": jax.default_backend(), "repeats": repeats}
    for passes in (1, 2):
        x = rng.uniform(0.2, 0.8, (2 * passes, 640, 1000, 4)).astype(np.float32)
        x[..., 1] = x[..., 3] = 0.02
        t0 = time.perf_counter()
        np.asarray(fn(tv, ntv, x))
        compile_s = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            np.asarray(fn(tv, ntv, x))
            times.append(time.perf_counter() - t0)
        result[f"passes_{passes}"] = {
            "median_s": float(np.median(times)),
            "min_s": float(np.min(times)),
            "first_call_s": compile_s,
        }
    (out / "timing.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--init", default=str(ROOT / "src/napari_xray_denoise/data/models/default.keras")
    )
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, required=True, help="training wall-clock minutes")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--chunk", type=int, default=8, help="pairs per worker message")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    p.add_argument("--pool-bags", type=int, default=12)
    p.add_argument("--lr", type=float, default=1.5e-4, help="peak learning rate")
    p.add_argument("--min-lr", type=float, default=1e-5, help="learning rate at the end")
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--max-reuse", type=int, default=3, help="uses of a batch while data lag")
    p.add_argument("--photo-fraction", type=float, default=0.5)
    p.add_argument("--val-every-minutes", type=float, default=1.5)
    p.add_argument("--timing-repeats", type=int, default=30, help="0: no timing")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue, stop = ctx.Queue(maxsize=4 * args.workers), ctx.Event()
    workers = [
        ctx.Process(
            target=_worker,
            args=(w, args.seed, args.chunk, args.photo_fraction, args.pool_bags, queue, stop),
            daemon=True,
        )
        for w in range(args.workers)
    ]
    for proc in workers:
        proc.start()

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from napari_xray_denoise.core.model_file import read_model_file_of, save_model_file
    from napari_xray_denoise.core.singlepass.network import gain_db, is_guided, weighted_loss
    from napari_xray_denoise.core.singlepass.simdata import SimSettings, validation_set
    from napari_xray_denoise.synth import training_photographs

    model, meta = read_model_file_of(args.init, "singlepass")
    if not is_guided(model):
        raise SystemExit(f"{args.init} is not a guided model; this script continues guided ones.")
    if args.timing_repeats:
        time_network(model, out, args.timing_repeats)

    val_x, val_t = validation_set(crop=128, guided=True)
    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def predict(tv, x):
        return model.stateless_call(tv, ntv, x, training=False)[0]

    def validate(weights) -> float:
        outs = np.concatenate(
            [np.asarray(predict(weights, val_x[i : i + 16])) for i in range(0, len(val_x), 16)]
        )
        return gain_db(val_x, val_t, outs)

    start_gain = validate(tv)
    print(json.dumps({"start_val_gain_db": round(start_gain, 4)}), flush=True)

    opt = optax.inject_hyperparams(optax.adam)(learning_rate=args.lr, eps=1e-7)
    opt_state = opt.init(tv)
    ema = [jnp.array(v) for v in tv]

    def loss_fn(tv, x, t):
        return weighted_loss(x, t, model.stateless_call(tv, ntv, x, training=True)[0])

    @jax.jit
    def train_step(tv, opt_state, ema, x, t, lr, flip):
        # flips keep detector columns columns (the sampler's column streaks stay valid)
        x = jnp.where(flip[0], x[:, ::-1], x)
        t = jnp.where(flip[0], t[:, ::-1], t)
        x = jnp.where(flip[1], x[:, :, ::-1], x)
        t = jnp.where(flip[1], t[:, :, ::-1], t)
        loss, grads = jax.value_and_grad(loss_fn)(tv, x, t)
        opt_state.hyperparams["learning_rate"] = lr
        updates, opt_state = opt.update(grads, opt_state, tv)
        tv = optax.apply_updates(tv, updates)
        ema = [args.ema_decay * e + (1 - args.ema_decay) * v for e, v in zip(ema, tv, strict=True)]
        return tv, opt_state, ema, loss

    def next_batch(last, reuse: int):
        """Fresh pairs when the workers have them ready, else ``last`` again (flipped)."""
        need = args.batch // args.chunk
        if last is not None and reuse < args.max_reuse and queue.qsize() < need:
            return last, reuse + 1
        chunks = [queue.get() for _ in range(need)]
        return (np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])), 1

    rng = np.random.default_rng(args.seed)
    best = {"gain": start_gain, "weights": None, "which": "start"}
    log = open(out / "log.jsonl", "a")
    step, fresh, losses = 0, 0, []
    batch, reuse = None, 0
    t_start = time.perf_counter()
    last_val = t_start
    budget = 60 * args.minutes

    def checkpoint(final: bool) -> None:
        nonlocal best
        elapsed = time.perf_counter() - t_start
        record = {"step": step, "fresh_batches": fresh, "minutes": round(elapsed / 60, 3)}
        record["loss"] = float(np.mean(losses)) if losses else None
        losses.clear()
        record_improved = False
        for which, weights in (("ema", ema), ("raw", tv)):
            gain = validate(weights)
            record[f"val_gain_db_{which}"] = round(gain, 4)
            if gain > best["gain"]:
                best = {
                    "gain": gain,
                    "weights": [np.asarray(w) for w in weights],
                    "which": which,
                    "step": step,
                    "seconds": elapsed,
                }
                record_improved = True
        record["steps_per_s"] = round(step / max(elapsed, 1e-9), 2)
        record["pairs_per_s_fresh"] = round(fresh * args.batch / max(elapsed, 1e-9), 1)
        print(json.dumps(record), flush=True)
        log.write(json.dumps(record) + "\n")
        log.flush()
        if best["weights"] is not None and (final or record_improved):
            for v, w in zip(model.trainable_variables, best["weights"], strict=True):
                v.assign(w)
            stages = list(meta["training"].get("stages", []))
            stages.append(
                {
                    "run": "scripts/gpu_train_default.py",
                    "kind": "guided, photo scenes; continued on a GPU (JAX backend)",
                    "photo_fraction": args.photo_fraction,
                    "residual_streak_std": SimSettings().residual_streak_std,
                    "training_photographs": len(training_photographs()),
                    "hours": round(best["seconds"] / 3600, 3),
                    "steps": best["step"],
                    "batch": args.batch,
                    "device": _device_name(),
                    "lr": [args.lr, args.min_lr],
                    "weights": best["which"],
                }
            )
            training = dict(meta["training"])
            training.update(
                stages=stages,
                hours=round(float(training.get("hours", 0.0)) + best["seconds"] / 3600, 3),
                steps=best["step"],  # this stage's (the earlier ones: ``stages``)
                val_gain_db=best["gain"],
            )
            save_model_file(model, {**meta, "training": training}, out / "model.keras")

    try:
        while time.perf_counter() - t_start < budget:
            batch, reuse = next_batch(batch, reuse)
            fresh += reuse == 1
            frac = min(1.0, (time.perf_counter() - t_start) / budget)
            lr = args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + np.cos(np.pi * frac))
            flip = jnp.asarray(rng.uniform(size=2) < 0.5)
            tv, opt_state, ema, loss = train_step(
                tv, opt_state, ema, batch[0], batch[1], jnp.float32(lr), flip
            )
            step += 1
            if step % 50 == 0:
                losses.append(float(loss))
            if time.perf_counter() - last_val >= 60 * args.val_every_minutes:
                checkpoint(final=False)
                last_val = time.perf_counter()
        checkpoint(final=True)
    finally:
        stop.set()
        for proc in workers:
            proc.terminate()
        log.close()
    print(json.dumps({"best": best["which"], "val_gain_db": round(best["gain"], 4)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
