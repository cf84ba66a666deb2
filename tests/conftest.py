import numpy as np
import pytest


def pytest_collection_modifyitems(config, items):
    """Tests that need a Qt/napari viewer are `gui` tests: they run in their own pytest
    process, apart from TensorFlow (see the Makefile)."""
    for item in items:
        if {"make_napari_viewer", "qtbot", "viewer"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.gui)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def dual_u16(rng):
    """A small odd-sized dual-energy stack (2, Y, X) of uint16 counts."""
    return rng.integers(0, 65536, size=(2, 37, 53), dtype=np.uint16)
