"""A generic Keras 3 / TensorFlow training loop, shared by every network of ``core``.

It knows nothing about blind spots: it takes a model, a loss ``loss_fn(targets,
outputs) -> scalar`` and a batch sampler, and does Adam steps with best-validation
weights kept in memory, learning-rate reduction on plateau, early stopping, a progress
callback and a cancel flag checked before every step. Batches have a fixed shape, so the
step function is traced once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._backend import keras, tf

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


@dataclass
class FitResult:
    """What happened in :func:`fit`. ``best_val_loss`` is ``inf`` if never validated."""

    steps_done: int = 0
    best_val_loss: float = math.inf
    best_step: int = 0
    cancelled: bool = False
    stopped_early: bool = False
    seconds: float = 0.0
    final_learning_rate: float = 0.0
    history: list[dict] = field(default_factory=list)


def make_optimizer(learning_rate: float) -> keras.optimizers.Optimizer:
    """Adam with the given learning rate (a variable, so it can be lowered in place)."""
    return keras.optimizers.Adam(learning_rate=learning_rate)


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
    """
    if optimizer is None:
        optimizer = make_optimizer(schedule.learning_rate)
    else:
        optimizer.learning_rate.assign(schedule.learning_rate)
    train_vars = model.trainable_variables

    def _train_step(x, t):
        with tf.GradientTape() as tape:
            loss = loss_fn(t, model(x, training=True))
        grads = tape.gradient(loss, train_vars)
        optimizer.apply(grads, train_vars)
        return loss

    def _val_step(x, t):
        return loss_fn(t, model(x, training=False))

    train_step = tf.function(_train_step, jit_compile=schedule.jit_compile, reduce_retracing=True)
    val_step = tf.function(_val_step, jit_compile=schedule.jit_compile, reduce_retracing=True)

    def validate() -> float:
        losses = [float(val_step(x, t)) for x, t in val_batches]
        return float(np.mean(losses)) if losses else math.nan

    result = FitResult()
    best_weights = None
    since_best_lr = since_best_stop = 0
    last_val: float | None = None
    t0 = time.perf_counter()

    def check_best(step: int) -> None:
        nonlocal best_weights, since_best_lr, since_best_stop, last_val
        last_val = validate()
        lr = float(optimizer.learning_rate.numpy())
        result.history.append({"step": step, "val_loss": last_val, "lr": lr})
        if np.isfinite(last_val) and last_val < result.best_val_loss:
            result.best_val_loss, result.best_step = last_val, step
            best_weights = [np.array(v) for v in model.get_weights()]
            since_best_lr = since_best_stop = 0
            if on_new_best is not None:
                on_new_best(step, last_val)
            return
        since_best_lr += 1
        since_best_stop += 1
        if since_best_lr >= schedule.lr_patience and lr > schedule.min_lr:
            optimizer.learning_rate.assign(max(schedule.min_lr, lr * schedule.lr_factor))
            since_best_lr = 0

    step = 0
    last_validated = -1
    while step < schedule.steps:
        if cancel is not None and cancel.is_set():
            result.cancelled = True
            break
        x, t = sample_batch()
        loss = float(train_step(x, t))
        step += 1
        result.history.append({"step": step, "loss": loss})
        if step % schedule.val_every == 0 or step == schedule.steps:
            check_best(step)
            last_validated = step
            if since_best_stop >= schedule.early_stop_patience:
                result.stopped_early = True
        if on_progress is not None:
            on_progress(step, schedule.steps, loss, last_val)
        if result.stopped_early:
            break
    if last_validated != step:
        check_best(step)
    if best_weights is not None:
        model.set_weights(best_weights)
    result.steps_done = step
    result.seconds = time.perf_counter() - t0
    result.final_learning_rate = float(optimizer.learning_rate.numpy())
    return result
