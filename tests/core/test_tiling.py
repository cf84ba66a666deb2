"""Tests of ``napari_xray_denoise.core.tiling``: blended tiled inference."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("keras")


from napari_xray_denoise import core  # noqa: E402
from napari_xray_denoise.core.tiling import blend_ramp, predict_tiled  # noqa: E402


def test_blend_weights_are_a_partition_of_unity():
    tile, overlap = 128, 32
    w = blend_ramp(tile, overlap)
    total = np.zeros(3 * tile)
    for start in range(0, 2 * tile, tile - overlap):
        total[start : start + tile] += w
    assert np.allclose(total[overlap : 2 * tile], 1.0)
    assert np.all(w[: overlap // 4] == 0.0)


def test_tiled_inference_equals_untiled_in_the_interior():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((None, None, 2))]
        + [keras.layers.Conv2D(6, 3, padding="same", activation="relu") for _ in range(3)]
        + [keras.layers.Conv2D(3, 1)]
    )
    image = np.random.default_rng(5).random((300, 411, 2)).astype(np.float32)
    shapes, progress = [], []

    def predict(batch):
        shapes.append(batch.shape)
        return np.asarray(model(batch))

    tiled = predict_tiled(
        image,
        predict,
        tile=128,
        overlap=32,
        batch_size=3,
        on_progress=lambda d, t: progress.append((d, t)),
    )
    whole = np.asarray(model(image[None]))[0]
    assert tiled.shape == (300, 411, 3) and tiled.dtype == np.float32
    r = 3  # receptive-field radius: the untiled run zero-pads the border, the tiled one reflects
    np.testing.assert_allclose(tiled[r:-r, r:-r], whole[r:-r, r:-r], atol=1e-5, rtol=1e-5)
    assert set(shapes) == {(3, 128, 128, 2)}  # one fixed shape: a traced model never re-traces
    assert progress[-1][0] == progress[-1][1] == len(shapes)


def test_tiled_inference_cancel_and_small_images():
    cancel = threading.Event()
    calls = []

    def predict(batch):
        calls.append(1)
        cancel.set()
        return batch

    with pytest.raises(core.OperationCancelled):
        predict_tiled(
            np.zeros((300, 300, 1), np.float32), predict, tile=64, overlap=16, cancel=cancel
        )
    assert len(calls) == 1
    small = np.random.default_rng(0).random((20, 37, 1)).astype(np.float32)
    same = predict_tiled(small, lambda b: b, tile=64, overlap=16)
    np.testing.assert_allclose(same, small, rtol=1e-6)
    with pytest.raises(ValueError, match="overlap"):
        predict_tiled(small, lambda b: b, tile=64, overlap=40)
