"""Keras 3 / TensorFlow training on the one loop of ``core`` (``core.engine``).

``TFStep`` is the engine's gradient step on TensorFlow (``tf.GradientTape``, traced).
``fit`` knows nothing about blind spots: it takes a model, a loss ``loss_fn(targets,
outputs) -> scalar`` and a batch sampler, and does Adam steps with best-validation
weights kept in memory, learning-rate reduction on plateau, early stopping, a progress
callback and a cancel flag checked before every step. Batches have a fixed shape, so the
step function is traced once.

Two learning-rate schedules: ``"plateau"`` (halve on a validation plateau) and
``"cosine"`` (a short linear warm-up, then cosine decay to ``min_lr`` over the run). A run
ends after ``steps`` steps or ``max_minutes`` minutes, whichever comes first; the cosine
schedule follows whichever of the two is further along, so a time-budgeted run still
ends at a low learning rate (what a short CPU run needs most).
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from . import engine
from ._backend import keras, tf
from .engine import BestWeights, Plateau

Batch = tuple[np.ndarray, np.ndarray]


@dataclass
class FitSchedule:
    """Optimisation schedule (counts of steps; patience counts validations)."""

    steps: int = 2000
    learning_rate: float = 3e-4
    val_every: int = 50
    lr_factor: float = 0.5
    lr_patience: int = 5
    min_lr: float = 1e-6
    early_stop_patience: int = 15
    jit_compile: bool = False
    lr_schedule: str = "plateau"
    max_minutes: float | None = None
    warmup_fraction: float = 0.02

    def __post_init__(self) -> None:
        check_schedule_options(self.lr_schedule, self.max_minutes, "max_minutes")

    def progress(self, step: int, seconds: float) -> float:
        """Fraction of the run done after ``step`` steps and ``seconds`` seconds (0..1)."""
        frac = step / self.steps
        if self.max_minutes is not None:
            frac = max(frac, seconds / (60.0 * self.max_minutes))
        return min(1.0, frac)

    def cosine_lr(self, fraction: float) -> float:
        """Learning rate of the cosine schedule at ``fraction`` of the run."""
        if fraction < self.warmup_fraction:
            return self.learning_rate * max(fraction / self.warmup_fraction, 0.01)
        f = (fraction - self.warmup_fraction) / max(1e-12, 1.0 - self.warmup_fraction)
        low = min(self.min_lr, self.learning_rate)
        return low + (self.learning_rate - low) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, f)))


LR_SCHEDULES = ("plateau", "cosine")


def check_schedule_options(lr_schedule: str, minutes: float | None, name: str = "minutes") -> None:
    """Raise ``ValueError`` for an unknown schedule or a non-positive time budget."""
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}.")
    if minutes is not None and not minutes > 0:
        raise ValueError(f"{name} must be positive, or None for no time limit.")


@dataclass
class FitResult:
    """What happened in :func:`fit`. ``best_val_loss`` is ``inf`` if never validated."""

    steps_done: int = 0
    best_val_loss: float = math.inf
    best_step: int = 0
    cancelled: bool = False
    stopped_early: bool = False
    out_of_time: bool = False
    seconds: float = 0.0
    final_learning_rate: float = 0.0
    history: list[dict] = field(default_factory=list)


def schedule_from_config(config) -> FitSchedule:
    """The :class:`FitSchedule` of a training config (``TrainConfig``, ``AmssdConfig``)."""
    return FitSchedule(
        steps=config.steps,
        learning_rate=config.learning_rate,
        val_every=config.val_every,
        lr_factor=config.lr_factor,
        lr_patience=config.lr_patience,
        min_lr=config.min_lr,
        early_stop_patience=config.early_stop_patience,
        jit_compile=config.jit_compile,
        lr_schedule=config.lr_schedule,
        max_minutes=config.minutes,
    )


class RunSummary:
    """Builds the ``metadata["training"]`` dict of a run, resumed runs adding up.

    ``previous``: the summary of the run resumed from (or ``{}``); ``validation``: how
    the validation set was chosen; ``config``: the run's dataclass config.
    """

    def __init__(self, *, previous: dict, validation: str, n_scans: int, config, resumed_from=None):
        self.previous, self.validation, self.n_scans = previous or {}, validation, n_scans
        self.config, self.resumed_from = config, resumed_from
        self.t0 = _dt.datetime.now()

    def __call__(
        self,
        *,
        steps: int,
        best_val_loss: float,
        best_step: int,
        cancelled: bool = False,
        stopped_early: bool = False,
        out_of_time: bool = False,
        final_learning_rate: float | None = None,
    ) -> dict:
        done = int(self.previous.get("steps", 0))
        return {
            "steps": done + int(steps),
            "best_val_loss": best_val_loss if math.isfinite(best_val_loss) else None,
            "best_step": done + int(best_step),
            "minutes": float(self.previous.get("minutes", 0.0))
            + (_dt.datetime.now() - self.t0).total_seconds() / 60.0,
            "cancelled": bool(cancelled),
            "stopped_early": bool(stopped_early),
            "out_of_time": bool(out_of_time),
            "final_learning_rate": final_learning_rate,
            "validation": self.validation,
            "n_scans": int(self.n_scans),
            "config": asdict(self.config),
            "resumed_from": str(self.resumed_from) if self.resumed_from is not None else None,
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }

    def of(self, result: FitResult) -> dict:
        """The summary of a finished :func:`fit`."""
        return self(
            steps=result.steps_done,
            best_val_loss=result.best_val_loss,
            best_step=result.best_step,
            cancelled=result.cancelled,
            stopped_early=result.stopped_early,
            out_of_time=result.out_of_time,
            final_learning_rate=result.final_learning_rate,
        )


def make_optimizer(learning_rate: float) -> keras.optimizers.Optimizer:
    """Adam with the given learning rate (a variable, so it can be lowered in place)."""
    return keras.optimizers.Adam(learning_rate=learning_rate)


class TFStep:
    """The engine's gradient step on TensorFlow (:class:`~.engine.Step`): a traced
    ``tf.GradientTape`` step of ``loss(inputs, targets, outputs) -> scalar``.

    ``after_apply()`` runs inside the traced step after the update (e.g. an exponential
    moving average of the weights); :meth:`evaluate` is the loss without training.
    """

    def __init__(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        loss: Callable,
        *,
        jit_compile: bool = False,
        after_apply: Callable[[], None] | None = None,
    ):
        self.model, self.optimizer = model, optimizer
        train_vars = model.trainable_variables

        def _train_step(x, t):
            with tf.GradientTape() as tape:
                value = loss(x, t, model(x, training=True))
            grads = tape.gradient(value, train_vars)
            optimizer.apply(grads, train_vars)
            if after_apply is not None:
                after_apply()
            return value

        def _val_step(x, t):
            return loss(x, t, model(x, training=False))

        self._train = tf.function(_train_step, jit_compile=jit_compile, reduce_retracing=True)
        self._val = tf.function(_val_step, jit_compile=jit_compile, reduce_retracing=True)

    def __call__(self, batch: Batch):
        x, t = batch
        return self._train(x, t)

    def evaluate(self, x, t) -> float:
        return float(self._val(x, t))

    def set_learning_rate(self, lr: float) -> None:
        self.optimizer.learning_rate.assign(lr)

    def learning_rate(self) -> float:
        return float(self.optimizer.learning_rate.numpy())


def fit(
    model: keras.Model,
    loss_fn: Callable,
    sample_batch: Callable[[], Batch],
    val_batches: Sequence[Batch],
    schedule: FitSchedule,
    *,
    optimizer: keras.optimizers.Optimizer | None = None,
    on_progress: Callable[[int, int, float, float | None], None] | None = None,
    cancel=None,
    on_new_best: Callable[[int, float], None] | None = None,
) -> FitResult:
    """Train ``model`` in place; on return it holds the best-validation weights.

    ``sample_batch()`` returns ``(inputs, targets)`` numpy arrays of one fixed shape;
    ``val_batches`` is a fixed list of such pairs. ``loss_fn(targets, outputs)`` returns a
    scalar tensor. Validation runs every ``schedule.val_every`` steps and at the end;
    ``on_progress(step, total_steps, loss, val_loss_or_None)`` after every step;
    ``on_new_best(step, val_loss)`` when validation improves (weights are already the
    new best, e.g. to write a checkpoint). ``cancel.is_set()`` is checked before each step:
    training stops, validates once and keeps the best weights seen (``cancelled=True``).

    The loop is :func:`.engine.run`; this is its piece for a Keras model with a
    ``(targets, outputs)`` loss: the plateau or cosine schedule, best weights, history.
    """
    if optimizer is None:
        optimizer = make_optimizer(schedule.learning_rate)
    else:
        optimizer.learning_rate.assign(schedule.learning_rate)
    step = TFStep(model, optimizer, lambda x, t, y: loss_fn(t, y), jit_compile=schedule.jit_compile)

    def validate() -> float:
        losses = [step.evaluate(x, t) for x, t in val_batches]
        return float(np.mean(losses)) if losses else math.nan

    result = FitResult()
    best = BestWeights(lambda: [np.array(v) for v in model.get_weights()], model.set_weights)
    plateau = Plateau(
        factor=schedule.lr_factor,
        patience=schedule.lr_patience,
        min_lr=schedule.min_lr,
        stop_patience=schedule.early_stop_patience,
    )
    cosine = schedule.lr_schedule == "cosine"

    def check_best(n: int) -> float:
        val = validate()
        lr = step.learning_rate()
        result.history.append({"step": n, "val_loss": val, "lr": lr})
        if best.offer(n, val):
            plateau.improved()
            if on_new_best is not None:
                on_new_best(n, val)
            return val
        lowered = plateau.not_improved(lr, lower_lr=not cosine)
        if lowered is not None:
            step.set_learning_rate(lowered)
        return val

    t0 = time.perf_counter()
    ran = engine.run(
        step,
        sample_batch,
        steps=schedule.steps,
        seconds=None if schedule.max_minutes is None else 60.0 * schedule.max_minutes,
        learning_rate=(lambda n, fraction: schedule.cosine_lr(fraction)) if cosine else None,
        val_every_steps=schedule.val_every,
        validate=check_best,
        on_validated=lambda n, val: plateau.should_stop,
        on_step=lambda n, loss: result.history.append({"step": n, "loss": loss}),
        on_progress=on_progress,
        cancel=cancel,
    )
    if not ran.validated_last_step:
        check_best(ran.steps)
    best.restore()
    result.best_val_loss, result.best_step = best.score, best.step
    result.cancelled, result.stopped_early = ran.cancelled, ran.stopped
    result.out_of_time = ran.out_of_time
    result.steps_done = ran.steps
    result.seconds = time.perf_counter() - t0
    result.final_learning_rate = step.learning_rate()
    return result
