"""Lazy tiled inference (dask map_overlap) gives exactly the in-memory result, chunk by chunk."""

import numpy as np
import pytest
from scipy import ndimage

from napari_xray_denoise.core.lazy_tiling import predict_tiled_lazy
from napari_xray_denoise.core.tiling import predict_tiled


def _net(batch: np.ndarray) -> np.ndarray:
    """A stand-in 'network' whose tile borders matter (zero-padded 5x5 filter) and 2 outputs."""
    out = np.empty(batch.shape[:3] + (2,), np.float32)
    out[..., 0] = np.tanh(ndimage.uniform_filter(batch[..., 0], size=(1, 5, 5), mode="constant"))
    out[..., 1] = batch[..., -1] ** 2
    return out


@pytest.mark.parametrize(
    ("shape", "tile", "overlap", "batch_size", "chunk_tiles"),
    [
        ((300, 517, 2), 64, 16, 1, 2),
        ((1000, 700, 1), 128, 32, 4, 3),
        ((37, 200, 1), 32, 8, 2, 1),
        ((64, 64, 1), 64, 16, 3, 1),
        ((5, 6, 1), 16, 4, 1, 1),
    ],
)
def test_lazy_equals_in_memory(shape, tile, overlap, batch_size, chunk_tiles, rng):
    image = rng.random(shape, dtype=np.float32)
    expected = predict_tiled(image, _net, tile=tile, overlap=overlap, batch_size=batch_size)
    lazy = predict_tiled_lazy(
        image, _net, tile=tile, overlap=overlap, batch_size=batch_size, chunk_tiles=chunk_tiles
    )
    assert lazy.shape == expected.shape and lazy.dtype == np.float32
    np.testing.assert_array_equal(lazy.compute(scheduler="synchronous"), expected)


def test_lazy_is_lazy_and_bounded_by_chunks(rng):
    image = rng.random((900, 1300, 1), dtype=np.float32)
    calls = []

    def counting_net(batch):
        calls.append(batch.shape[0])
        return _net(batch)

    lazy = predict_tiled_lazy(
        image, counting_net, tile=128, overlap=32, batch_size=1, channels_out=2, chunk_tiles=2
    )
    assert calls == [] and lazy.npartitions > 20  # nothing ran yet; many chunks
    corner = lazy[:100, :100].compute(scheduler="synchronous")
    # one corner chunk needs only the tiles touching it (3x3 of them), not the 100 of the scan
    assert len(calls) <= 9
    expected = predict_tiled(image, _net, tile=128, overlap=32, batch_size=1)
    np.testing.assert_array_equal(corner, expected[:100, :100])


def test_lazy_rejects_bad_settings_in_one_sentence(rng):
    with pytest.raises(ValueError, match="overlap < tile/2"):
        predict_tiled_lazy(rng.random((40, 40, 1), dtype=np.float32), _net, tile=32, overlap=16)
    with pytest.raises(ValueError, match=r"\(Y, X, C\)"):
        predict_tiled_lazy(rng.random((40, 40), dtype=np.float32), _net)


# --------------------------------------------------------------------------- with a real model


@pytest.fixture(scope="module")
def scan():
    from napari_xray_denoise.phantom import make_bag

    return make_bag((200, 330), dose=1500, seed=9, n_objects=5).noisy


def _tiny(**kw):
    from napari_xray_denoise.core import TrainConfig, untrained_denoiser

    cfg = dict(enc_filters=4, dec_filters=8, levels=2, tile=64, overlap=16)
    cfg.update(kw)
    return untrained_denoiser(2 if kw.get("joint") == "cross" else 1, TrainConfig(**cfg))


@pytest.mark.parametrize(
    ("mode", "joint", "noise"),
    [
        ("poissongaussian", "separate", "auto"),
        ("poissongaussian", "separate", "stored"),
        ("poissongaussian", "cross", "auto"),
        ("uncalib", "separate", "auto"),
        ("mse", "separate", "auto"),
    ],
)
def test_chunked_denoise_equals_in_memory_denoise(scan, mode, joint, noise):
    from napari_xray_denoise.large_scan import denoise_chunked

    model = _tiny(mode=mode, joint=joint)
    expected = model.denoise(scan, noise=noise, batch_size=1)
    expected_noise = list(model.last_noise)
    got = denoise_chunked(model, scan, noise=noise, batch_size=1, chunk_tiles=1)
    np.testing.assert_array_equal(got, expected)
    assert model.last_noise == expected_noise
