"""Single place where TensorFlow and Keras 3 are imported for ``core``.

Sets ``KERAS_BACKEND=tensorflow`` (unless the user chose otherwise before) and quietens
TensorFlow's C++ start-up log. Every other ``core`` module imports ``keras``/``tf`` from
here so the backend is always chosen before Keras is first imported.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

if keras.backend.backend() != "tensorflow":  # pragma: no cover - environment guard
    raise ImportError(
        "napari_xray_denoise.core needs the TensorFlow Keras backend; unset KERAS_BACKEND "
        f"or set it to 'tensorflow' (it is {keras.backend.backend()!r})."
    )

#: package name under which every custom layer is registered for ``.keras`` files
REGISTER_PACKAGE = "napari_xray_denoise"

__all__ = ["keras", "tf", "REGISTER_PACKAGE"]
