"""Keras 3 alone, for the ``core`` modules that need no TensorFlow: the network layers
(``layers``), the single-pass network (``singlepass.network``) and model files (``model_file``).

Sets ``KERAS_BACKEND=tensorflow`` unless the user chose otherwise before Keras is first
imported. Those modules run on any Keras backend (``keras.ops`` only), so a machine with
JAX and no TensorFlow can build, train and time the default network
(``scripts/gpu_train_default.py``); everything else in ``core`` imports ``_backend``,
which requires TensorFlow.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

#: package name under which every custom layer is registered for ``.keras`` files
REGISTER_PACKAGE = "napari_xray_denoise"

__all__ = ["keras", "REGISTER_PACKAGE"]
