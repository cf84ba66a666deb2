"""Training the single-pass network on simulated pairs: a resumable long run.

The default model is trained supervised on pairs with exact ground truth
(``core.singlepass.simdata``: phantom bags and procedural scenes, every scanner trait), because the
simulator makes clean scans without limit and a supervised loss is the most
compute-efficient signal (measured against blind-spot training in ``docs/benchmarks.md``).
What it cannot see in simulation, it learns from the user's own scans by self-supervised
fine-tuning (``core.singlepass.finetune``).

The run is open-ended and resumable: ``run_dir`` holds a TensorFlow checkpoint (weights,
Adam state, an exponential moving average of the weights, the step, the hours trained),
``log.jsonl`` (one line per validation: step, hours, loss, validation gain in dB) and
``model.keras`` (the averaged weights, or the current ones while the average still lags
behind them on the validation set: the model to ship). Calling :func:`train_long_run`
again continues from the checkpoint. The loop is ``core.engine.run``: the producer
thread's queue gives the batches, the averaged weights are updated inside the traced step
(``TFStep(after_apply=...)``), validation with the checkpoint every
``val_every_minutes``, SIGTERM/SIGINT as the cancel event.

Loss: squared error in the network domain divided by the noise variance (every dose
weighs the same) and weighted by ``0.05 + target^2`` (the squared error in counts grows
with the level, ``d counts ~ u du``; the floor keeps dark regions in the objective),
averaged per crop and then its logarithm averaged over crops (the mean PSNR gain: a plain
mean let hard, textured, high-dose crops drown the smooth low-dose ones, where BM3D gains
most; measured: phantom bags stayed 3-4 dB under BM3D after 4600 steps of the plain mean).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from queue import Queue

import numpy as np

from .. import engine
from .._backend import keras, tf
from ..model_file import save_model_file
from ..training import TFStep
from .network import (
    DEFAULT_WIDTHS,
    build_singlepass_model,
    gain_db,
    guided_from,
    is_guided,
    weighted_loss,
)
from .simdata import (
    TRAIN_SEED_BASE,
    PairSampler,
    SimSettings,
    phantom_transmissions,
    validation_set,
)


@dataclass
class LongRunConfig:
    widths: tuple[int, int, int] = DEFAULT_WIDTHS
    crop: int = 128
    batch: int = 8
    learning_rate: float = 1e-3
    lr_half_life_steps: float = 30000.0
    min_lr: float = 5e-5
    ema_decay: float = 0.999
    pool_bags: int = 24
    refresh_every: int = 40
    val_every_minutes: float = 5.0
    seed: int = 0
    #: the guided network (the partner energy as a second input, ``core.singlepass.network``)
    guided: bool = False
    #: a model file to start from when the run has no checkpoint yet ("" = from scratch);
    #: a single-energy model starting a guided run becomes ``singlepass.guided_from`` it
    init: str = ""
    #: of the non-phantom crops, the fraction with natural-image texture
    #: (``SimSettings.photo_fraction``)
    photo_fraction: float = 0.0
    #: of all crops, the photon-starved ones (``SimSettings.dark_fraction``); of all
    #: scans, those by a camera-style detector (``SimSettings.detector_fraction``); the
    #: validation set holds the same shares
    dark_fraction: float = 0.0
    detector_fraction: float = 0.0


def singlepass_metadata(
    config: LongRunConfig, steps: int, hours: float, extra: dict | None = None
) -> dict:
    from ... import __version__

    return {
        "method": "singlepass",
        "channels": 1,
        "joint": "guided by the other energy" if config.guided else "separate",
        "architecture": {
            "widths": list(config.widths),
            "convs_per_level": 2,
            "guided": bool(config.guided),
        },
        "domain": "normalised generalized Anscombe (vst), noise level as a second input",
        "training": {
            "kind": "supervised on simulated pairs (core.simdata)",
            "steps": int(steps),
            "hours": round(float(hours), 3),
            "config": asdict(config),
            **(extra or {}),
        },
        "package_version": __version__,
    }


def _start_weights(config: LongRunConfig) -> list:
    """The weights of ``config.init`` for this run's network (a single-energy model
    starting a guided run: :func:`singlepass.guided_from` it)."""
    from ..model_file import read_model_file_of

    start, _ = read_model_file_of(config.init, "singlepass")
    if config.guided and not is_guided(start):
        start = guided_from(start)
    if is_guided(start) != config.guided:
        raise ValueError(f"{config.init} is a guided model; this run is not.")
    return start.get_weights()


def _install_stop_handlers() -> tuple[threading.Event, dict]:
    """SIGTERM/SIGINT end the run after the current step, with a checkpoint and an export
    (only from the main thread; elsewhere the run ends at its time budget). Returns the
    event and the previous handlers, to restore when the run ends."""
    import signal

    event = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: event.set())
    return event, previous


def _producer(
    sampler: PairSampler, batch: int, refresh_every: int, queue: Queue, stop: threading.Event
):
    n = 0
    while not stop.is_set():
        queue.put(sampler.batch(batch))
        n += 1
        if n % refresh_every == 0:
            sampler.refresh()


def _run_config(run_dir: Path, config: LongRunConfig | None) -> LongRunConfig:
    """The run's own saved settings if it has them, else ``config`` (saved for next time)."""
    cfg_path = run_dir / "config.json"
    if cfg_path.exists():
        saved = json.loads(cfg_path.read_text())
        saved["widths"] = tuple(saved["widths"])
        return LongRunConfig(**saved)  # the run's own settings, whatever was passed
    config = config or LongRunConfig()
    cfg_path.write_text(json.dumps(asdict(config), indent=1))
    return config


@dataclass
class _RunState:
    """The network, Adam, the averaged weights, the step and seconds trained, the saver."""

    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    ema: list
    step: tf.Variable
    seconds: tf.Variable
    manager: tf.train.CheckpointManager


def _restore_or_start(
    run_dir: Path, config: LongRunConfig, log: Callable[[str], None]
) -> _RunState:
    """Build the model and optimizer, then restore the checkpoint or start afresh."""
    model = build_singlepass_model(config.widths, guided=config.guided)
    optimizer = keras.optimizers.Adam(config.learning_rate)
    optimizer.build(model.trainable_variables)
    ema = [tf.Variable(v, trainable=False) for v in model.trainable_variables]
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    seconds_var = tf.Variable(0.0, dtype=tf.float64, trainable=False)
    ckpt = tf.train.Checkpoint(
        model=model, optimizer=optimizer, ema=ema, step=step_var, seconds=seconds_var
    )
    manager = tf.train.CheckpointManager(ckpt, str(run_dir / "ckpt"), max_to_keep=1)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint).expect_partial()
        log(
            f"resumed from {manager.latest_checkpoint} at step {int(step_var.numpy())}, "
            f"{float(seconds_var.numpy()) / 3600:.2f} h trained"
        )
    else:
        if config.init:
            model.set_weights(_start_weights(config))
            log(f"started from {config.init}")
        for e, v in zip(ema, model.trainable_variables, strict=True):
            e.assign(v)
    return _RunState(model, optimizer, ema, step_var, seconds_var, manager)


def _pair_sampler(config: LongRunConfig, step: int) -> PairSampler:
    """The simulated-pair source, seeded by the run's seed and step (resumes continue it)."""
    rng = np.random.default_rng([config.seed, step])
    next_seed = TRAIN_SEED_BASE + 1000 + step // max(config.refresh_every, 1)
    pool = phantom_transmissions(range(next_seed, next_seed + config.pool_bags), rng)
    return PairSampler(
        pool,
        rng,
        crop=config.crop,
        settings=SimSettings(
            photo_fraction=config.photo_fraction,
            dark_fraction=config.dark_fraction,
            detector_fraction=config.detector_fraction,
        ),
        next_seed=next_seed + config.pool_bags,
        guided=config.guided,
    )


def _train_step(state: _RunState, config: LongRunConfig) -> TFStep:
    """The traced training step, updating the averaged weights after each apply."""

    def update_ema() -> None:
        for e, v in zip(state.ema, state.model.trainable_variables, strict=True):
            e.assign(config.ema_decay * e + (1.0 - config.ema_decay) * v)

    return TFStep(state.model, state.optimizer, weighted_loss, after_apply=update_ema)


def _validation(state: _RunState, config: LongRunConfig, val_x, val_t):
    """The model to export and the validation function that fills it (returns the gain)."""
    model, ema = state.model, state.ema
    ema_model = build_singlepass_model(config.widths, guided=config.guided)
    predict = tf.function(lambda x: ema_model(x, training=False), reduce_retracing=True)

    raw_predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def validate() -> float:
        """Validation gain of the better of the averaged and the current weights; that
        one goes into ``ema_model`` for export (early in a run the average lags behind)."""
        ema_model.set_weights([e.numpy() for e in ema])
        outs = np.concatenate([predict(val_x[i : i + 8]).numpy() for i in range(0, len(val_x), 8)])
        raw = np.concatenate(
            [raw_predict(val_x[i : i + 8]).numpy() for i in range(0, len(val_x), 8)]
        )
        gain_ema, gain_raw = gain_db(val_x, val_t, outs), gain_db(val_x, val_t, raw)
        if gain_raw > gain_ema:
            ema_model.set_weights(model.get_weights())
        return max(gain_ema, gain_raw)

    return ema_model, validate


def _start_producer(sampler: PairSampler, config: LongRunConfig) -> tuple[Queue, threading.Event]:
    """Start the batch-producing thread; returns its queue and its stop event."""
    queue: Queue = Queue(maxsize=4)
    stop = threading.Event()
    worker = threading.Thread(
        target=_producer,
        args=(sampler, config.batch, config.refresh_every, queue, stop),
        daemon=True,
    )
    worker.start()
    return queue, stop


def _export(ema_model, meta: dict, run_dir: Path, export: str | Path | None) -> None:
    """Write ``model.keras`` in the run directory, and ``export`` if given."""
    save_model_file(ema_model, meta, run_dir / "model.keras")
    if export is not None:
        save_model_file(ema_model, meta, export)


class _Bookkeeper:
    """Per-step bookkeeping: the learning rate, the losses, the clock and the checkpoints."""

    def __init__(self, state, config, validate, ema_model, run_dir, export, log) -> None:
        self.state, self.config, self.validate = state, config, validate
        self.ema_model, self.run_dir, self.export, self.log = ema_model, run_dir, export, log
        self.t_start = time.perf_counter()
        self.base_seconds = float(state.seconds.numpy())
        self.losses: list[float] = []
        self.last_lr = config.learning_rate

    def learning_rate(self, step: int, fraction: float) -> float:
        """Halve every ``lr_half_life_steps`` steps, down to ``min_lr``."""
        config = self.config
        self.last_lr = max(
            config.min_lr, config.learning_rate * 0.5 ** (step / config.lr_half_life_steps)
        )
        return self.last_lr

    def on_step(self, step: int, loss: float) -> None:
        """Record the step's loss and count the step."""
        self.losses.append(loss)
        self.state.step.assign_add(1)

    def record_time(self) -> None:
        """Store the hours trained so far (all sessions) in the checkpoint's variable."""
        self.state.seconds.assign(self.base_seconds + time.perf_counter() - self.t_start)

    def checkpoint(self, step: int) -> float:
        """Validate, log a line, save the checkpoint and the model; returns the gain."""
        state = self.state
        self.record_time()
        gain = self.validate()
        record = {
            "step": int(state.step.numpy()),
            "hours": round(float(state.seconds.numpy()) / 3600, 4),
            "loss": float(np.mean(self.losses)),
            "val_gain_db": round(gain, 3),
            "lr": self.last_lr,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        self.losses.clear()
        with open(self.run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        self.log(json.dumps(record))
        state.manager.save()
        meta = singlepass_metadata(
            self.config, record["step"], record["hours"], {"val_gain_db": gain}
        )
        _export(self.ema_model, meta, self.run_dir, self.export)
        return gain


def _run_engine(train_step, queue: Queue, stop, hours: float, book: _Bookkeeper) -> None:
    """Run the loop for ``hours``, stoppable by signal; then restore handlers, end the producer."""
    stop_requested, previous_handlers = _install_stop_handlers()
    try:
        engine.run(
            train_step,
            queue.get,
            seconds=hours * 3600,
            at_least_one_step=False,
            learning_rate=book.learning_rate,
            val_every_seconds=60 * book.config.val_every_minutes,
            validate=book.checkpoint,
            on_step=book.on_step,
            cancel=stop_requested,
            first_step=int(book.state.step.numpy()),
        )
    finally:
        import signal

        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        stop.set()
        while not queue.empty():
            queue.get_nowait()


def train_long_run(
    run_dir: str | Path,
    *,
    hours: float,
    config: LongRunConfig | None = None,
    export: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train (or continue training) for ``hours`` more wall-clock hours; see module docstring."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = _run_config(run_dir, config)
    state = _restore_or_start(run_dir, config, log)
    sampler = _pair_sampler(config, int(state.step.numpy()))
    val_x, val_t = validation_set(
        crop=config.crop,
        guided=config.guided,
        dark_fraction=config.dark_fraction,
        detector_fraction=config.detector_fraction,
    )
    train_step = _train_step(state, config)
    ema_model, validate = _validation(state, config, val_x, val_t)

    queue, stop = _start_producer(sampler, config)
    book = _Bookkeeper(state, config, validate, ema_model, run_dir, export, log)
    _run_engine(train_step, queue, stop, hours, book)

    book.record_time()
    state.manager.save()
    gain = validate()
    meta = singlepass_metadata(
        config, int(state.step.numpy()), float(state.seconds.numpy()) / 3600, {"val_gain_db": gain}
    )
    _export(ema_model, meta, run_dir, export)
    return {
        "steps": int(state.step.numpy()),
        "hours": float(state.seconds.numpy()) / 3600,
        "val_gain_db": gain,
    }
