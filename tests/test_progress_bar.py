"""The command line's progress bar: in place on a terminal, a line every few seconds
into a file or a pipe, each state written once (a fake stream and a fake clock)."""

import io

import pytest

from napari_xray_denoise.progress import ProgressBar


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class Terminal(io.StringIO):
    def isatty(self):
        return True


def run_steps(bar, clock, steps, seconds_per_step, loss=None):
    for step in range(1, steps + 1):
        clock.t += seconds_per_step
        bar(step, steps, loss, None if loss is None else loss)
    bar.close()


def test_into_a_pipe_one_line_every_five_seconds_and_the_last():
    clock, out = FakeClock(), io.StringIO()
    bar = ProgressBar("train finetune", clock=clock, stream=out)
    run_steps(bar, clock, 3000, 0.1, loss=0.5)  # 5 minutes, 10 steps a second
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and out.getvalue().endswith("\n")
    # the first step, then one line per 5 s (60 in 300 s), the last step
    assert 55 <= len(lines) <= 62
    assert len(out.getvalue()) < 120 * len(lines)
    assert lines[0].startswith("train finetune:   0% 1/3000 steps, 0:00")
    assert lines[-1] == "train finetune: 100% 3000/3000 steps, 5:00, loss 0.5, val 0.5"
    assert len(set(lines)) == len(lines)  # no state written twice


def test_each_step_written_once_even_with_no_interval():
    clock, out = FakeClock(), io.StringIO()
    bar = ProgressBar("denoise bag", clock=clock, stream=out, interval_s=0)
    run_steps(bar, clock, 7, 1.0)
    lines = out.getvalue().splitlines()
    assert [line.split()[3] for line in lines] == [f"{k}/7" for k in range(1, 8)]
    assert lines[3] == "denoise bag:  57% 4/7 steps, 0:04, 0:03 left"


def test_the_last_state_comes_at_close_under_a_time_budget():
    clock, out = FakeClock(), io.StringIO()
    bar = ProgressBar("train", minutes=10, clock=clock, stream=out)
    clock.t += 20
    bar(1, 2000, 0.5)
    clock.t += 2
    bar(30, 2000, 0.45)  # under 5 s after the first line: held back
    assert len(out.getvalue().splitlines()) == 1
    clock.t += 38
    bar(90, 2000, 0.4, 0.3)
    assert bar.total == 600 and bar.n == 60  # seconds of the budget
    assert out.getvalue().splitlines()[-1] == (
        "train:  10% 1:00 of 10:00, step 90/2000, 9:00 left, loss 0.4, val 0.3"
    )
    clock.t += 1
    bar(91, 2000, 0.4, 0.3)
    bar.close()
    assert out.getvalue().splitlines()[-1].startswith("train:  10% 1:01 of 10:00, step 91/2000")
    assert len(out.getvalue().splitlines()) == 3
    bar.close()  # closing twice adds nothing
    assert len(out.getvalue().splitlines()) == 3


def test_on_a_terminal_one_line_redrawn_in_place():
    clock, out = FakeClock(), Terminal()
    bar = ProgressBar("train", clock=clock, stream=out)
    assert bar.terminal and bar.interval_s == pytest.approx(0.1)
    run_steps(bar, clock, 200, 0.01)  # 2 s: redrawn at most every 0.1 s
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one line, ended at close
    draws = text.rstrip("\n").split("\r")[1:]
    assert 15 <= len(draws) <= 23
    assert draws[-1].rstrip() == "train: 100%|####################| 200/200 steps, 0:02"
    lengths = [len(d) for d in draws]
    assert lengths == sorted(lengths)  # a shorter line is padded to cover the longer one


def test_disabled_writes_nothing_and_a_closed_stream_is_no_terminal():
    clock, out = FakeClock(), Terminal()
    bar = ProgressBar("train", disable=True, minutes=10, clock=clock, stream=out)
    clock.t += 60
    bar(90, 2000, 0.4)
    bar.close()
    assert out.getvalue() == "" and bar.n == 60
    closed = io.StringIO()
    closed.close()
    assert not ProgressBar("x", stream=closed).terminal
