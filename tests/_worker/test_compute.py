"""The compute worker process: results, progress, cancel, busy refusal, crash reporting."""

import os
import time

import pytest

from napari_xray_denoise._worker import compute as _compute

J = "worker_test_jobs:"  # test jobs live in tests/_worker/worker_test_jobs.py


@pytest.fixture
def lane():
    ln = _compute.Lane("test")
    yield ln
    ln.shutdown(kill=True)


def test_job_runs_in_another_process(lane):
    result = lane.submit(J + "ping").wait()
    assert result["pid"] != os.getpid()
    # the worker stays alive for the next job (TensorFlow is imported once)
    assert lane.submit(J + "ping").wait()["pid"] == result["pid"]


def test_progress_and_cancel(lane):
    job = lane.submit(J + "sleep", seconds=30)
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
    job = lane.submit(J + "sleep", seconds=0.5)
    with pytest.raises(_compute.BusyError, match="already running"):
        lane.submit(J + "ping")
    job.wait()
    assert lane.submit(J + "ping").wait()["pid"]


def test_crash_becomes_one_sentence(lane):
    job = lane.submit(J + "sleep", seconds=5, exit_code=3)
    with pytest.raises(_compute.ComputeError, match="stopped unexpectedly"):
        job.wait()
    assert lane.submit(J + "ping").wait()["pid"]  # a fresh worker starts


def test_job_error_is_reported(lane):
    with pytest.raises(_compute.ComputeError, match="does not exist"):
        lane.submit(J + "fail", kind="value").wait()


def test_unexpected_error_traceback_goes_to_the_log_file(lane, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the worker is spawned after this
    with pytest.raises(_compute.ComputeError) as info:
        lane.submit(J + "fail", kind="runtime").wait()
    message = str(info.value)
    assert len(message.splitlines()) == 1 and message.startswith(
        "RuntimeError: boom in the library"
    )
    log = tmp_path / "napari-xray-denoise" / "worker.log"
    assert str(log) in message
    text = log.read_text()
    assert "Traceback" in text and "_deep_in_the_library" in text and "boom in the library" in text
