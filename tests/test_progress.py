"""Training progress under a time budget: the CLI bar and the widget follow the clock."""

import pytest

from napari_xray_denoise import cli
from napari_xray_denoise.progress import TrainingProgress, format_seconds


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_time_budget_sets_the_fraction_and_the_time_left():
    clock = FakeClock()
    run = TrainingProgress(2000, minutes=10, clock=clock)
    assert run.seconds_left == pytest.approx(600)
    clock.t += 60
    run.update(90, 2000)  # 90 steps in a minute: 2000 steps would take 22 minutes
    assert run.fraction == pytest.approx(0.1)
    assert run.seconds_left == pytest.approx(540)  # the budget ends first
    assert run.describe() == "step 90/2000, 1:00 of 10:00, 9:00 left"
    fast = TrainingProgress(100, minutes=10, clock=clock)
    clock.t += 60
    fast.update(50, 100)  # the steps end first
    assert fast.fraction == pytest.approx(0.5) and fast.seconds_left == pytest.approx(60)
    no_budget = TrainingProgress(100, clock=clock)
    assert no_budget.seconds_left is None and "left" not in no_budget.describe()
    assert format_seconds(3725) == "1:02:05"


def test_cli_bar_counts_the_budget_not_the_steps():
    clock = FakeClock()
    bar = cli._Bar("train", disable=True, minutes=10, clock=clock)
    clock.t += 20
    bar(1, 2000, 0.5)
    clock.t += 40
    bar(90, 2000, 0.4)
    # cli._Bar held a tqdm bar (.bar); progress.ProgressBar counts on itself
    counted = getattr(bar, "bar", bar)
    assert counted.total == 600 and counted.n == 60
    assert bar.progress.seconds_left == pytest.approx(540)
    bar.close()
    steps = cli._Bar("train", disable=True)
    steps(90, 2000, 0.4)
    counted = getattr(steps, "bar", steps)
    assert counted.total == 2000 and counted.n == 90
    steps.close()
