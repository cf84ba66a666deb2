"""Run TensorFlow work in a separate, long-lived worker process.

TensorFlow's bundled LLVM and Mesa's libLLVM (software OpenGL) crash a process that
holds both a napari canvas and TensorFlow (docs/architecture.md). So the GUI process
never imports TensorFlow: every core job (train, denoise) runs in a worker started
with the ``spawn`` method. One worker per *lane* ("train", "infer") so that a model can
be used while another trains; each worker imports TensorFlow once and stays alive.

Messages from a job are tuples on a queue:
``("progress", dict)``, ``("done", result)``, ``("error", message)``. An unexpected
error's traceback goes to :func:`log_path` (a file under the user's cache folder); the
GUI shows one sentence that names that file.

A job is a function of ``jobs`` named by its name, or any importable function named
``"module:function"`` (tests use their own jobs this way).
Cancelling sets an Event the job checks between steps (the job returns its best
result so far); :meth:`Job.kill` ends the worker for a hard stop.

This module imports neither napari, Qt nor TensorFlow.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import os
import queue
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

WORKER_NICENESS = 10


class ComputeError(Exception):
    """A job failed; the message is one sentence for the user.

    Not a RuntimeError: superqt treats RuntimeErrors from worker threads as "aborted
    thread" and then never emits ``finished``.
    """


class BusyError(ComputeError):
    """The lane already runs a job."""


def user_cache_dir() -> Path:
    """This package's folder in the user's cache (XDG on Linux, Library/Caches, LOCALAPPDATA)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "napari-xray-denoise"


def log_path() -> Path:
    """The worker's log file: tracebacks of jobs that failed unexpectedly."""
    return user_cache_dir() / "worker.log"


def _worker_log() -> logging.Logger:
    """A logger writing to :func:`log_path` (created on first use in the worker process)."""
    logger = logging.getLogger("napari_xray_denoise.worker")
    if not logger.handlers:
        path = log_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(
            logging.Formatter("%(asctime)s pid %(process)d %(levelname)s %(message)s")
        )
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    return logger


def _job_function(name: str) -> Callable:
    if ":" in name:
        module, function = name.split(":", 1)
        return getattr(importlib.import_module(module), function)
    from . import jobs

    return getattr(jobs, name)


def _worker_main(jobs, messages, cancel) -> None:  # runs in the child process
    try:  # the GUI keeps priority: a busy worker must not make napari stutter
        os.nice(WORKER_NICENESS)
    except (AttributeError, OSError):
        pass

    while True:
        item = jobs.get()
        if item is None:
            return
        name, kwargs = item
        cancel.clear()

        def report(**info):
            messages.put(("progress", info))

        try:
            result = _job_function(name)(report=report, cancel=cancel, **kwargs)
        except (ValueError, OSError) as exc:
            messages.put(("error", str(exc)))
        except Exception as exc:  # unexpected: the traceback to the log file, one line for the user
            sentence = f"{type(exc).__name__}: {exc}".splitlines()[0]
            try:
                _worker_log().error("job %r failed\n%s", name, traceback.format_exc())
                sentence += f" (details in {log_path()})"
            except OSError:  # no writable cache folder: the sentence alone
                pass
            messages.put(("error", sentence))
        else:
            messages.put(("done", result))


class Job:
    """A running job: iterate :meth:`events` for progress, then read :attr:`result`."""

    def __init__(self, lane: Lane):
        self._lane = lane
        self.result: Any = None
        self.error: str | None = None

    def cancel(self) -> None:
        self._lane._cancel.set()

    def kill(self) -> None:
        self._lane.shutdown(kill=True)

    def events(self, poll_s: float = 0.1) -> Iterator[dict]:
        """Yield progress dicts (and ``{}`` every ``poll_s`` so callers stay responsive)."""
        lane = self._lane
        try:
            while True:
                try:
                    msg = lane._messages.get(timeout=poll_s)
                except queue.Empty:
                    proc = lane._process
                    if proc is None or not proc.is_alive():
                        code = None if proc is None else proc.exitcode
                        lane._process = None
                        raise ComputeError(
                            f"The compute process stopped unexpectedly (exit code {code}); "
                            "try again, with smaller tiles or batches if memory ran out."
                        ) from None
                    yield {}
                    continue
                kind = msg[0]
                if kind == "progress":
                    yield msg[1]
                elif kind == "done":
                    self.result = msg[1]
                    return
                elif kind == "error":
                    self.error = msg[1]
                    raise ComputeError(msg[1])
        finally:
            lane._busy.release()

    def wait(self) -> Any:
        for _ in self.events():
            pass
        return self.result


class Lane:
    """One worker process and its queues."""

    def __init__(self, name: str):
        self.name = name
        self._ctx = mp.get_context("spawn")
        self._process = None
        self._busy = threading.Lock()
        self._cancel = self._ctx.Event()

    def _ensure(self) -> None:
        if self._process is not None and self._process.is_alive():
            return
        self._jobs = self._ctx.Queue()
        self._messages = self._ctx.Queue()
        self._process = self._ctx.Process(
            target=_worker_main,
            args=(self._jobs, self._messages, self._cancel),
            name=f"xray-denoise-{self.name}",
            daemon=True,
        )
        self._process.start()

    def submit(self, job: str, **kwargs) -> Job:
        if not self._busy.acquire(blocking=False):
            raise BusyError(f"A {self.name} job is already running; wait for it or stop it first.")
        try:
            self._ensure()
            self._cancel.clear()
            self._jobs.put((job, kwargs))
        except BaseException:
            self._busy.release()
            raise
        return Job(self)

    @property
    def busy(self) -> bool:
        return self._busy.locked()

    def shutdown(self, kill: bool = False) -> None:
        proc, self._process = self._process, None
        if proc is None:
            return
        if kill:
            proc.kill()
        else:
            self._jobs.put(None)
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        proc.join(timeout=5)


_LANES: dict[str, Lane] = {}


def lane(name: str) -> Lane:
    """The shared worker for ``name`` ("train" or "infer"), started on first use."""
    if name not in _LANES:
        _LANES[name] = Lane(name)
    return _LANES[name]


def shutdown_all() -> None:
    for ln in list(_LANES.values()):
        ln.shutdown()
    _LANES.clear()
