"""Tests of ``napari_xray_denoise.core.blindspot.network``: the blind-spot network (its receptive field) and its losses."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

from blindspot_helpers import TINY, _randomise  # noqa: E402

from napari_xray_denoise import core  # noqa: E402


def _input_gradient(model, x: np.ndarray, out_channel: int, yx: tuple[int, int]) -> np.ndarray:
    import tensorflow as tf

    xt = tf.Variable(x)
    with tf.GradientTape() as tape:
        value = model(xt)[0, yx[0], yx[1], out_channel]
    return tape.gradient(value, xt).numpy()[0]


@pytest.mark.parametrize("joint,channels", [("single", 1), ("blind", 2)])
def test_outputs_are_blind_to_their_own_pixel(joint, channels):
    model = core.build_blindspot_model(
        channels=channels, joint=joint, mode="poissongaussian", **TINY
    )
    _randomise(model)
    x = np.random.default_rng(1).random((1, 32, 32, channels)).astype(np.float32)
    for out_channel in range(2 * channels):  # loc and std of every channel
        grad = _input_gradient(model, x, out_channel, (16, 16))
        assert np.all(grad[16, 16] == 0.0), f"output {out_channel} sees the centre pixel"
        for dy, dx in [(-1, 0), (1, 0), (0, -1), (0, 1)]:
            assert np.any(grad[16 + dy, 16 + dx] != 0.0)
        assert np.count_nonzero(grad) > 50 * channels  # a wide receptive field, not just the ring


def test_cross_variant_sees_only_the_other_channels_centre():
    model = core.build_blindspot_model(channels=2, joint="cross", mode="poissongaussian", **TINY)
    _randomise(model)
    x = np.random.default_rng(2).random((1, 32, 32, 2)).astype(np.float32)
    for c in range(2):
        for out_channel in (c, 2 + c):  # loc_c, std_c
            grad = _input_gradient(model, x, out_channel, (16, 16))
            assert grad[16, 16, c] == 0.0
            assert grad[16, 16, 1 - c] != 0.0


def test_model_rejects_bad_options():
    with pytest.raises(ValueError, match="mode"):
        core.build_blindspot_model(mode="laplace")
    with pytest.raises(ValueError, match="joint"):
        core.build_blindspot_model(channels=2, joint="single")


def test_supervised_model_sees_its_centre_pixel():
    model = core.build_blindspot_model(channels=2, joint="blind", mode="supervised", **TINY)
    _randomise(model)
    x = np.random.default_rng(1).random((1, 32, 32, 2)).astype(np.float32)
    for out_channel in range(2):
        grad = _input_gradient(model, x, out_channel, (16, 16))
        assert np.all(grad[16, 16] != 0.0)  # both channels' centre values
    with pytest.raises(ValueError, match="supervised"):
        core.build_blindspot_model(channels=2, joint="cross", mode="supervised", **TINY)


def test_per_scan_noise_loss_uses_the_crops_own_noise_law():
    from napari_xray_denoise.core.blindspot.network import make_blindspot_loss

    rng = np.random.default_rng(0)
    y = rng.random((2, 4, 4, 1)).astype(np.float32)
    mu = rng.random((2, 4, 4, 1)).astype(np.float32)
    s = 0.01 * np.ones_like(y)
    learnt = np.full_like(y, 123.0)  # the model's own noise output: must be ignored
    a = np.concatenate([np.full((1, 4, 4, 1), 1e-3), np.full((1, 4, 4, 1), 4e-3)]).astype(
        np.float32
    )
    b = np.full_like(y, 1e-5)
    targets = np.concatenate([y, np.ones_like(y), a, b], axis=-1)
    outputs = np.concatenate([mu, s, learnt], axis=-1)
    loss = make_blindspot_loss("poissongaussian", 1, [1e-3], per_scan_noise=True)
    total = (s**2 + a * mu + b) / 1e-3
    expected = np.mean((y - mu) ** 2 / 1e-3 / total + np.log(total))
    assert float(loss(targets, outputs)) == pytest.approx(float(expected), rel=1e-5)
    # supervised: y is the clean value; each pixel's error in units of its scan's noise
    sup = make_blindspot_loss("supervised", 1, [1e-3], per_scan_noise=True)
    expected_sup = np.mean((y - mu) ** 2 / (a * y + b))
    assert float(sup(targets, outputs)) == pytest.approx(float(expected_sup), rel=1e-5)
    with pytest.raises(ValueError, match="calibrated"):
        make_blindspot_loss("uncalib", 1, [1e-3], per_scan_noise=True)
