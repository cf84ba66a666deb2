"""Procedural scenes and the scanner simulation (``synth``)."""

import numpy as np
import pytest

from napari_xray_denoise import synth


@pytest.mark.parametrize("kind", sorted(synth.SCENE_KINDS))
def test_scene_kinds_give_attenuation_of_the_shape(kind):
    rng = np.random.default_rng(0)
    depth = synth.SCENE_KINDS[kind]((64, 96), rng)
    assert depth.shape == (64, 96) and depth.dtype == np.float32
    assert np.all(np.isfinite(depth)) and depth.min() >= 0 and depth.max() > 0


def test_random_scene_is_a_transmission_map_and_repeatable():
    a = synth.random_scene((96, 96), np.random.default_rng(3))
    b = synth.random_scene((96, 96), np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.min() > 0 and a.max() <= 1 and a.std() > 0.01


def test_scan_follows_the_affine_noise_law_and_clips():
    rng = np.random.default_rng(1)
    flat = np.full((400, 400), 0.5)
    s = synth.scan_transmission(flat, rng, dose=400.0, code_max=4095.0, read_std_fraction=2e-3)
    expected_mean = 0.5 * 0.92 * 4095
    assert s.clean.mean() == pytest.approx(expected_mean)
    assert s.noisy.var() == pytest.approx(s.a * expected_mean + s.b, rel=0.05)
    air = synth.scan_transmission(np.ones((200, 200)), rng, dose=30.0, code_max=4095.0)
    assert air.noisy.max() == 4095.0 and np.all(air.noisy == np.rint(air.noisy))


def test_defects_are_stuck_pixels():
    rng = np.random.default_rng(2)
    s = synth.scan_transmission(
        np.full((100, 100), 0.3), rng, dose=1e6, code_max=65535.0, defect_fraction=0.01
    )
    stuck = (s.noisy == 0) | (s.noisy == 65535)
    assert 50 <= np.count_nonzero(stuck) <= 110


@pytest.mark.parametrize("shape", [(96, 96), (40, 130), (1024, 1024)])
def test_photo_scene_is_a_textured_transmission_map_of_any_shape(shape):
    a = synth.photo_scene(shape, np.random.default_rng(5))
    np.testing.assert_array_equal(a, synth.photo_scene(shape, np.random.default_rng(5)))
    assert a.shape == shape and a.dtype == np.float32
    assert a.min() > 0 and a.max() <= 1
    # natural-image texture: detail at every scale, not a flat fill
    assert np.abs(np.diff(a, axis=1)).mean() > 1e-3


def test_training_photographs_are_not_the_held_apart_test_photographs(monkeypatch):
    """The benchmark's photographs (``skimage.data``) must never be training scenes:
    no training photograph matches any of them, neither pixel for pixel (normalised
    correlation of the overlap, in either orientation) nor as a rescaled copy (correlation
    after resizing both to 128 x 128, in any of the 8 orientations)."""
    from pathlib import Path

    from skimage.transform import resize

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_default import PHOTOS
    from unseen_sets import photo

    def corr(a, b):
        n = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
        a, b = a[: n[0], : n[1]].ravel(), b[: n[0], : n[1]].ravel()
        return float(np.corrcoef(a, b)[0, 1])

    def small(img):
        return resize(np.asarray(img, np.float64), (128, 128), anti_aliasing=True)

    def orientations(img):
        for t in (img, img.T):
            yield from (t, t[::-1], t[:, ::-1], t[::-1, ::-1])

    train = synth.training_photographs()
    assert len(train) == 2 + len(synth.TEXTURE_FILES) >= 20
    assert all(p.ndim == 2 and p.dtype == np.float32 for p in train)
    assert all(min(p.shape) >= 256 and p.min() >= 0 and p.max() <= 1 for p in train)
    train_small = [small(p) for p in train]
    for name in PHOTOS:
        test = photo(name, (512, 512))  # set (b)'s crop
        test_small = small(test)
        for i, (p, ps) in enumerate(zip(train, train_small)):
            assert max(corr(p, test), corr(p.T, test)) < 0.9, (name, i)
            assert max(abs(corr(o, test_small)) for o in orientations(ps)) < 0.9, (name, i)
