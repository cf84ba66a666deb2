"""Single place where TensorFlow is imported for ``core``.

Keras comes from ``_keras`` (which sets ``KERAS_BACKEND=tensorflow`` unless the user chose
otherwise before, and quietens TensorFlow's C++ start-up log). Every ``core`` module that
uses TensorFlow imports ``keras``/``tf`` from here, so the backend is always chosen before
Keras is first imported and a wrong one is one clear error.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from ._keras import REGISTER_PACKAGE, keras  # noqa: E402

if keras.backend.backend() != "tensorflow":  # pragma: no cover - environment guard
    raise ImportError(
        "napari_xray_denoise.core needs the TensorFlow Keras backend; unset KERAS_BACKEND "
        f"or set it to 'tensorflow' (it is {keras.backend.backend()!r})."
    )

__all__ = ["keras", "tf", "REGISTER_PACKAGE"]
