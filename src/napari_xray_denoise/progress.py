"""Progress and time left of a training run that ends on a step count or a time budget.

Both front ends show it (the CLI's bar, the Train widget): under ``--minutes`` the run
usually ends on time, so progress follows the clock, not the steps (TF-free, no GUI).
:class:`ProgressBar` is the command line's bar: redrawn in place on a terminal, a line
every few seconds into a file or a pipe.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def format_seconds(seconds: float) -> str:
    """``75`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class TrainingProgress:
    """Fraction done and estimated time left of ``steps`` steps within ``minutes`` (or None).

    The run ends on whichever comes first, so the fraction is the larger of the step
    fraction and the time fraction, and the time left the smaller of the two estimates.
    The clock starts at construction (``clock`` is for tests).
    """

    def __init__(
        self, steps: int, minutes: float | None = None, clock: Callable[[], float] = time.monotonic
    ):
        self.steps = max(int(steps), 1)
        self.budget_s = None if not minutes else 60.0 * float(minutes)
        self._clock = clock
        self._t0 = clock()
        self.step = 0

    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._t0

    def update(self, step: int, total: int | None = None) -> None:
        self.step = int(step)
        if total:
            self.steps = max(int(total), 1)

    @property
    def fraction(self) -> float:
        frac = self.step / self.steps
        if self.budget_s:
            frac = max(frac, self.elapsed_s / self.budget_s)
        return min(frac, 1.0)

    @property
    def seconds_left(self) -> float | None:
        """None until a step has run without a time budget (no rate to judge by yet)."""
        elapsed = self.elapsed_s
        left = []
        if self.step > 0:
            left.append(elapsed / self.step * (self.steps - self.step))
        if self.budget_s:
            left.append(self.budget_s - elapsed)
        return max(0.0, min(left)) if left else None

    def describe(self) -> str:
        """``"step 90/2000, 1:00 of 10:00, 9:00 left"`` (time part only under a budget)."""
        text = f"step {self.step}/{self.steps}"
        if self.budget_s:
            text += f", {format_seconds(self.elapsed_s)} of {format_seconds(self.budget_s)}"
        left = self.seconds_left
        return text + (f", {format_seconds(left)} left" if left is not None else "")


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


class ProgressBar:
    """A ``(done, total[, loss, val_loss])`` callback that shows progress on a text stream.

    On a terminal (``stream.isatty()``) one line redrawn in place, at most every
    ``tty_interval_s``; into a file or a pipe one line (ending in a newline) at most every
    ``pipe_interval_s`` and the last state at :meth:`close`, so a long run's log stays
    small (a line every 5 s is about 70 KB a day). Each state is written once.

    With ``minutes`` (a training time budget) it counts seconds of the budget and the time
    left is the real one: the run ends on the budget or the steps, whichever comes first
    (:class:`TrainingProgress`); ``total`` is then the budget in seconds and ``n`` the
    seconds of it done. Without, ``n`` of ``total`` ``unit``\\ s. ``stream`` defaults to
    ``sys.stderr``; ``clock`` (seconds) is for tests.
    """

    tty_interval_s = 0.1
    pipe_interval_s = 5.0
    width = 20  # characters of the bar drawn on a terminal

    def __init__(
        self,
        desc: str,
        disable: bool = False,
        minutes: float | None = None,
        clock: Callable[[], float] | None = None,
        *,
        stream=None,
        unit: str = "step",
        interval_s: float | None = None,
    ):
        self.desc, self.disable, self.minutes, self.unit = desc, disable, minutes, unit
        self._clock = clock if clock is not None else time.monotonic
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = _is_terminal(self.stream)
        if interval_s is None:
            interval_s = self.tty_interval_s if self.terminal else self.pipe_interval_s
        self.interval_s = float(interval_s)
        # the clock starts now: set-up time counts against a budget too
        self.progress = TrainingProgress(1, minutes, clock=self._clock)
        self.total = round(60 * minutes) if minutes else None
        self.n = 0
        self._state: tuple | None = None  # (done, total, loss, val_loss) last given
        self._written: tuple | None = None  # the state last written
        self._last_write: float | None = None
        self._drawn = 0  # characters of the line on the terminal

    def __call__(self, done, total, loss=None, val_loss=None) -> None:
        self.progress.update(done, total)
        if self.minutes:
            self.n = min(self.total, round(self.progress.fraction * self.total))
        else:
            self.total, self.n = int(total), int(done)
        self._state = (int(done), int(total), loss, val_loss)
        if self.disable:
            return
        now = self._clock()
        final = not self.minutes and done >= total
        if self._last_write is None or final or now - self._last_write >= self.interval_s:
            self._write(now)

    def describe(self) -> str:
        """The line as written, e.g. ``"train: 10% 1:00 of 10:00, step 90/2000, 9:00 left"``."""
        done, total, loss, val_loss = self._state or (0, self.progress.steps, None, None)
        fraction = self.progress.fraction if self.minutes else done / max(total, 1)
        head = f"{self.desc}: {100 * fraction:3.0f}%"
        if self.terminal:
            filled = round(fraction * self.width)
            head += "|" + "#" * filled + " " * (self.width - filled) + "|"
        elapsed = format_seconds(self.progress.elapsed_s)
        if self.minutes:
            parts = [f"{elapsed} of {format_seconds(60 * self.minutes)}", f"step {done}/{total}"]
        else:
            parts = [f"{done}/{total} {self.unit}s", elapsed]
        left = self.progress.seconds_left
        if left is not None and not (not self.minutes and done >= total):
            parts.append(f"{format_seconds(left)} left")
        if loss is not None:
            parts.append(f"loss {loss:.4g}")
            parts.append("val -" if val_loss is None else f"val {val_loss:.4g}")
        return head + " " + ", ".join(parts)

    def _write(self, now: float) -> None:
        text = self.describe()
        if self.terminal:
            self.stream.write("\r" + text.ljust(self._drawn))
            self._drawn = max(self._drawn, len(text))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._written, self._last_write = self._state, now

    def close(self) -> None:
        """Write the last state if it was not written yet; end the terminal's line."""
        if self.disable or self._state is None:
            return
        if self._state != self._written:
            self._write(self._clock())
        if self.terminal and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0
