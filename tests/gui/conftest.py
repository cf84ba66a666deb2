"""GUI tests: a real napari canvas under Xvfb. TensorFlow must never enter this process
(it crashes Mesa's OpenGL, see docs/architecture.md); `make test` runs these tests in
their own pytest process and this guard fails loudly if anything imported it."""

import sys

import pytest


@pytest.fixture(autouse=True)
def _no_tensorflow_in_gui_process():
    assert "tensorflow" not in sys.modules, "TensorFlow was imported in the GUI test process"
    yield
    assert "tensorflow" not in sys.modules, "TensorFlow was imported in the GUI test process"
