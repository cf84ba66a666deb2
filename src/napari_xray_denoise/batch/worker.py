"""What runs in each worker process: the per-process model cache, TensorFlow's thread
pools, and the worker plugin (``ModelPlugin``) that loads the model when a worker starts."""

from __future__ import annotations

import os
import threading
from typing import Any

_MODELS: dict[str, Any] = {}
_MODEL_LOADS = 0
_MODEL_LOCK = threading.Lock()


def model_load_count() -> int:
    """How many times this process loaded a model file (1 per worker, whatever the scans)."""
    return _MODEL_LOADS


def configure_tensorflow_threads(threads: int) -> None:
    """Size TensorFlow's thread pools (intra-op ``threads``, inter-op 1) before first use."""
    threads = max(1, int(threads))
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran in this process: its pools are fixed
        pass


def tensorflow_threads() -> tuple[int, int]:
    """(intra-op, inter-op) thread pool sizes TensorFlow uses in this process."""
    import tensorflow as tf

    return (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )


def cached_model(model_path: str, model_sha256: str):
    """The model of ``model_path`` for this process, loaded on first use only."""
    global _MODEL_LOADS
    with _MODEL_LOCK:
        if model_sha256 not in _MODELS:
            from ..core import load_model

            _MODELS[model_sha256] = load_model(model_path)
            _MODEL_LOADS += 1
        return _MODELS[model_sha256]


try:  # the plugin base class; dask[distributed] is a dependency, but keep imports cheap
    from distributed import WorkerPlugin as _WorkerPluginBase
except ImportError:  # pragma: no cover
    _WorkerPluginBase = object


class ModelPlugin(_WorkerPluginBase):
    """Loads the model once when a worker starts, with TensorFlow threads sized to fit.

    Registered with ``client.register_plugin``; the scheduler also runs it on workers
    that join later (a nanny's replacement for a worker that died).
    """

    idempotent = True

    def __init__(self, model_path: str, model_sha256: str, tf_threads: int):
        self.model_path = model_path
        self.model_sha256 = model_sha256
        self.tf_threads = int(tf_threads)
        self.name = f"xray-denoise-model-{model_sha256[:12]}-t{self.tf_threads}"

    def setup(self, worker=None):
        configure_tensorflow_threads(self.tf_threads)
        cached_model(self.model_path, self.model_sha256)


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"
