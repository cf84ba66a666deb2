"""Jobs for the worker tests, run in the worker as ``"worker_test_jobs:<name>"``.

They live with the tests, not in the package: the worker runs any importable function
named ``"module:function"`` (the spawned worker inherits the test process's sys.path).
"""

import os
import time


def ping(report, cancel) -> dict:
    return {"pid": os.getpid()}


def sleep(report, cancel, *, seconds: float, exit_code: int | None = None) -> dict:
    """Report ticks until ``seconds`` pass or cancel; with ``exit_code``, die hard at once."""
    t0 = time.monotonic()
    ticks = 0
    while time.monotonic() - t0 < seconds and not cancel.is_set():
        ticks += 1
        report(step=ticks)
        time.sleep(0.05)
        if exit_code is not None:
            os._exit(exit_code)
    return {"ticks": ticks, "cancelled": cancel.is_set()}


def fail(report, cancel, *, kind: str) -> dict:
    """Raise a user error (ValueError) or an unexpected one."""
    if kind == "value":
        raise ValueError(
            "The model file '/nonexistent/model.keras' does not exist; check the path."
        )
    return _deep_in_the_library()


def _deep_in_the_library():
    raise RuntimeError("boom in the library")
