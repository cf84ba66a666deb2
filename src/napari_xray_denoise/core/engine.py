"""The one training loop of ``core``: every method trains through :func:`run`.

A method brings a small piece (its batches, its gradient step with its loss, and hooks
for its validation and extra state); the engine owns the loop: the step and time budget,
the learning-rate schedule (a function of the step and of the fraction of the run
done), when to validate (every ``val_every_steps`` steps or ``val_every_seconds``
seconds), stop and cancel (``cancel.is_set()`` before every step), the progress
callback ``on_progress(step, total, loss, val_loss)``, and the best weights kept in
memory (:class:`BestWeights`).

Backend-neutral (no TensorFlow, no Keras): the gradient step is the method's
``Step`` adapter, ``core.training.TFStep`` (a traced ``tf.GradientTape`` step) on
TensorFlow; a JAX step has the same three members.

Users: ``core.training.fit`` (blind-spot training, AMSSD training, fine-tuning of the
single-pass model) and ``core.singlepass.train.train_long_run`` (its producer thread,
exponential moving average of the weights and TensorFlow checkpoints are its hooks).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class Step(Protocol):
    """One optimiser step on a batch, on some backend."""

    def __call__(self, batch: Any) -> float:
        """Train on ``batch``; the loss before the update."""

    def set_learning_rate(self, lr: float) -> None: ...

    def learning_rate(self) -> float: ...


@dataclass
class EngineResult:
    """How :func:`run` ended: steps done, last validation score (``None``: never), flags."""

    steps: int = 0
    last_val: float | None = None
    cancelled: bool = False
    stopped: bool = False  #: ``on_validated`` asked to stop (e.g. early stopping)
    out_of_time: bool = False
    seconds: float = 0.0
    last_lr: float | None = None  #: the learning rate the schedule set last
    validated_last_step: bool = False


def run(
    step: Step,
    next_batch: Callable[[], Any],
    *,
    steps: int | None = None,
    seconds: float | None = None,
    at_least_one_step: bool = True,
    learning_rate: Callable[[int, float], float | None] | None = None,
    val_every_steps: int | None = None,
    val_every_seconds: float | None = None,
    validate: Callable[[int], float | None] | None = None,
    on_validated: Callable[[int, float | None], bool] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    on_progress: Callable[[int, int, float, float | None], None] | None = None,
    cancel=None,
    first_step: int = 0,
    clock: Callable[[], float] = time.perf_counter,
) -> EngineResult:
    """Train until ``steps`` steps (``None``: no limit) or ``seconds`` seconds (``None``:
    no limit) are done, ``cancel.is_set()`` or ``on_validated`` returns True.

    Before each step: ``learning_rate(step, fraction)`` (``fraction``: of the run done,
    the further along of steps and time; ``None``: keep the rate) is set on ``step``.
    After each step: ``on_step(step, loss)``; a validation when due (``validate(step)``,
    then ``on_validated(step, score)`` -> stop?); ``on_progress(step, steps, loss,
    last_score)``. ``at_least_one_step``: a spent time budget ends the run only after its
    first step. ``first_step``: the step count a resumed run starts from (the schedule's
    and the hooks' step numbers count from it; ``steps`` counts this run's steps).
    """
    result = EngineResult()
    t0 = clock()
    last_val_time = t0
    done = 0
    while True:
        if steps is not None and done >= steps:
            break
        if cancel is not None and cancel.is_set():
            result.cancelled = True
            break
        fraction = progress_fraction(done, clock() - t0, steps, seconds)
        if fraction >= 1.0 and (done > 0 or not at_least_one_step):  # time budget spent
            result.out_of_time = True
            break
        if learning_rate is not None:
            lr = learning_rate(first_step + done, fraction)
            if lr is not None:
                step.set_learning_rate(lr)
                result.last_lr = lr
        loss = float(step(next_batch()))
        done += 1
        n = first_step + done
        if on_step is not None:
            on_step(n, loss)
        due = (val_every_steps is not None and (done % val_every_steps == 0 or done == steps)) or (
            val_every_seconds is not None and clock() - last_val_time >= val_every_seconds
        )
        stop = False
        result.validated_last_step = False
        if due and validate is not None:
            last_val_time = clock()
            result.last_val = validate(n)
            result.validated_last_step = True
            if on_validated is not None:
                stop = bool(on_validated(n, result.last_val))
        if on_progress is not None:
            on_progress(n, steps, loss, result.last_val)
        if stop:
            result.stopped = True
            break
    result.steps = done
    result.seconds = clock() - t0
    return result


def progress_fraction(done: int, elapsed: float, steps: int | None, seconds: float | None) -> float:
    """Fraction of a run done (0..1): the further along of its steps and its time."""
    frac = done / steps if steps else 0.0
    if seconds is not None:
        frac = max(frac, elapsed / seconds if seconds > 0 else 1.0)
    return min(1.0, frac)


class BestWeights:
    """The weights of the best validation score so far (lower is better), kept in memory.

    ``get_weights()`` returns copies (numpy arrays); ``restore`` puts the best back.
    """

    def __init__(self, get_weights: Callable[[], list], set_weights: Callable[[list], None]):
        self._get, self._set = get_weights, set_weights
        self.weights: list | None = None
        self.score = math.inf
        self.step = 0

    def offer(self, step: int, score: float) -> bool:
        """Keep the current weights if ``score`` (finite) beats the best; True if kept."""
        if math.isfinite(score) and score < self.score:
            self.score, self.step = score, step
            self.weights = self._get()
            return True
        return False

    def restore(self) -> None:
        if self.weights is not None:
            self._set(self.weights)


class Plateau:
    """Halve-on-plateau learning rate and early stopping, counted in validations."""

    def __init__(self, *, factor: float, patience: int, min_lr: float, stop_patience: int):
        self.factor, self.patience, self.min_lr = factor, patience, min_lr
        self.stop_patience = stop_patience
        self.since_best_lr = self.since_best_stop = 0

    def improved(self) -> None:
        self.since_best_lr = self.since_best_stop = 0

    def not_improved(self, lr: float, *, lower_lr: bool = True) -> float | None:
        """Count a validation without improvement; the lowered rate when it is time, else None."""
        self.since_best_lr += 1
        self.since_best_stop += 1
        if lower_lr and self.since_best_lr >= self.patience and lr > self.min_lr:
            self.since_best_lr = 0
            return max(self.min_lr, lr * self.factor)
        return None

    @property
    def should_stop(self) -> bool:
        return self.since_best_stop >= self.stop_patience
