"""Fixtures of the core tests: one tiny trained model and one scan shared by the session."""

from __future__ import annotations

import pytest
from blindspot_helpers import _dual_scan, _tiny_config

from napari_xray_denoise import core


@pytest.fixture(scope="module")
def dual_scan():
    return _dual_scan()


@pytest.fixture(scope="module")
def trained(dual_scan):
    """A tiny 2-channel cross model trained for a few steps (shared by several tests)."""
    return core.train_blindspot([dual_scan[0]], _tiny_config(steps=8, joint="cross"))


@pytest.fixture
def op_determinism():
    """Enable TensorFlow op determinism for one test, then switch it off again."""
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    tf.config.experimental.enable_op_determinism()
    yield
    disable = getattr(tf_config, "disable_op_determinism", None)
    if disable is not None:
        disable()
