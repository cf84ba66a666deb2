"""The compute worker process: results, progress, cancel, busy refusal, crash reporting."""

import os
import time

import pytest

from napari_xray_denoise._worker import compute as _compute


@pytest.fixture
def lane():
    ln = _compute.Lane("test")
    yield ln
    ln.shutdown(kill=True)


def test_job_runs_in_another_process(lane):
    result = lane.submit("ping").wait()
    assert result["pid"] != os.getpid()
    # the worker stays alive for the next job (TensorFlow is imported once)
    assert lane.submit("ping").wait()["pid"] == result["pid"]


def test_progress_and_cancel(lane):
    job = lane.submit("sleep", seconds=30)
    seen = []
    t0 = time.monotonic()
    for info in job.events():
        if info:
            seen.append(info["step"])
        if len(seen) == 3:
            job.cancel()
    assert time.monotonic() - t0 < 10
    assert job.result["cancelled"] and seen[:3] == [1, 2, 3]


def test_second_job_is_refused_while_busy(lane):
    job = lane.submit("sleep", seconds=0.5)
    with pytest.raises(_compute.BusyError, match="already running"):
        lane.submit("ping")
    job.wait()
    assert lane.submit("ping").wait()["pid"]


def test_crash_becomes_one_sentence(lane):
    job = lane.submit("sleep", seconds=5, exit_code=3)
    with pytest.raises(_compute.ComputeError, match="stopped unexpectedly"):
        job.wait()
    assert lane.submit("ping").wait()["pid"]  # a fresh worker starts


def test_job_error_is_reported(lane):
    with pytest.raises(_compute.ComputeError, match="does not exist|No such file|model"):
        lane.submit("model_info", model_path="/nonexistent/model.keras").wait()
