"""BM3D + generalized Anscombe offered to users (``classical``)."""

import importlib.util

import numpy as np
import pytest

from napari_xray_denoise import classical, metrics
from napari_xray_denoise.phantom import make_bag


@pytest.mark.skipif(
    importlib.util.find_spec("bm3d") is None, reason="the optional bm3d package is not installed"
)
def test_bm3d_denoises_and_records_what_it_used():
    bag = make_bag((96, 128), dose=1000.0, seed=41)
    records = []
    out = classical.bm3d_denoise(bag.noisy, records=records)
    assert out.shape == bag.noisy.shape and out.dtype == np.float32
    for c in range(2):
        assert (
            metrics.psnr(out[c], bag.clean[c])
            > metrics.psnr(bag.noisy[c].astype(float), bag.clean[c]) + 3
        )
    assert len(records) == 2 and records[0]["how"].startswith("fitted")


def test_missing_package_gives_one_sentence(monkeypatch):
    monkeypatch.setattr(classical, "bm3d_available", lambda: False)
    with pytest.raises(ImportError, match=r"pip install \"napari-xray-denoise\[bm3d\]\""):
        classical.bm3d_denoise(np.ones((32, 32)))
