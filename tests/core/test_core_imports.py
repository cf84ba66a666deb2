"""Tests of ``napari_xray_denoise.core.__init__``: the package is lazy (no TensorFlow, never a GUI)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("keras")


def test_importing_core_does_not_import_tensorflow():
    code = (
        "import sys, napari_xray_denoise.core as c, napari_xray_denoise.core.blindspot.noisefit, "
        "napari_xray_denoise.core.tiling, napari_xray_denoise.core.data; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; "
        "assert 'napari' not in sys.modules and 'qtpy' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
