"""Tests of ``napari_xray_denoise.core.data``: saturation, scale, training/validation regions, crop sampling."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

from napari_xray_denoise.core.data import (  # noqa: E402
    CropSampler,
    Region,
    choose_scale,
    saturated_mask,
    saturation_levels,
    split_regions,
)


def test_saturation_detection_and_scale():
    counts = np.full((2, 50, 60), 1000.0, np.float32)
    counts[1, :10] = 4095.0  # clipped block in the high channel
    counts[0, 0, 0] = 3000.0  # a single bright pixel is no clipping
    levels = saturation_levels(counts, "auto")
    assert np.isinf(levels[0]) and levels[1] == 4095.0
    mask = saturated_mask(counts, levels)
    assert mask[1, :10].all() and not mask[1, 10:].any() and not mask[0].any()
    assert np.isinf(saturation_levels(counts, None)).all()
    assert choose_scale([counts]) == 4095.0
    assert choose_scale([np.array([[70000.0]])]) == 70000.0


def test_regions_and_crop_sampler():
    rng = np.random.default_rng(0)
    train, val, how = split_regions([(100, 200)], 32, rng)
    assert "columns" in how and train[0].x1 == val[0].x0 and val[0].x1 == 200
    train, val, how = split_regions([(64, 64)] * 5, 32, rng)
    assert len(val) == 1 and len(train) == 4 and {r.index for r in train}.isdisjoint({val[0].index})
    images = [np.arange(2 * 40 * 50, dtype=np.float32).reshape(2, 40, 50)]
    valid = [np.ones((2, 40, 50), bool)]
    x, v = CropSampler(images, valid, [Region(0, 0, 40, 0, 50)], 16).sample(rng, 3)
    assert x.shape == v.shape == (3, 16, 16, 2) and x.dtype == np.float32
    with pytest.raises(ValueError, match="crop"):
        CropSampler(images, valid, [Region(0, 0, 40, 0, 50)], 48)
