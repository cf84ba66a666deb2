"""Progress and time left of a training run that ends on a step count or a time budget.

Both front ends show it (the CLI's bar, the Train widget): under ``--minutes`` the run
usually ends on time, so progress follows the clock, not the steps (TF-free, no GUI).
"""

from __future__ import annotations

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
