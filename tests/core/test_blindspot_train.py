"""Tests of ``napari_xray_denoise.core.blindspot.train``: training blind-spot denoisers end to end (tiny networks)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

from blindspot_helpers import _stripes_x01, _tiny_config  # noqa: E402

from napari_xray_denoise import core  # noqa: E402


def test_train_blindspot_single_channel_and_denoise_shapes():
    rng = np.random.default_rng(6)
    counts = (_stripes_x01((80, 100)) * 4000).astype(np.uint16)
    seen = []
    den = core.train_blindspot(
        counts,
        _tiny_config(mode="uncalib", steps=4, val_every=2),
        on_progress=lambda *a: seen.append(a),
    )
    assert [s[0] for s in seen] == [1, 2, 3, 4] and all(s[1] == 4 for s in seen)
    assert seen[-1][3] is not None and np.isfinite(seen[-1][2])
    meta = den.metadata
    assert meta["method"] == "blindspot" and meta["channels"] == 1 and meta["joint"] == "single"
    assert meta["scale"] == 4095.0  # 12-bit data
    assert len(meta["noise"]["channels"]) == 1 and "a_counts" in meta["noise"]["channels"][0]
    odd = rng.integers(100, 4000, (70, 90)).astype(np.uint16)
    out = den.denoise(odd, tile=64, overlap=16)
    assert out.shape == (70, 90) and out.dtype == np.float32 and np.all(np.isfinite(out))
    # a 1-channel model denoises each channel of a dual-energy scan on its own
    assert den.denoise(np.stack([odd, odd]), tile=64, overlap=16).shape == (2, 70, 90)
    assert (
        len(den.last_noise) == 2 and den.last_noise[0]["a_counts"] == den.last_noise[1]["a_counts"]
    )


def test_separate_channels_share_one_single_channel_model(dual_scan):
    den = core.train_blindspot([dual_scan[0]], _tiny_config(joint="separate", steps=2, val_every=2))
    meta = den.metadata
    assert meta["channels"] == 1 and meta["joint"] == "single"
    assert "columns" in meta["training"]["validation"]  # a band of the one scan, both channels
    assert den.denoise(dual_scan[0], tile=64, overlap=16).shape == dual_scan[0].shape


def test_dual_energy_model_denoises_and_reports_noise_in_counts(trained, dual_scan):
    noisy, clean = dual_scan
    meta = trained.metadata
    assert meta["channels"] == 2 and meta["joint"] == "cross" and meta["mode"] == "poissongaussian"
    noise = meta["noise"]["channels"]
    assert len(noise) == 2 and all(n["a_counts"] > 0 for n in noise)
    out = trained.denoise(noisy, tile=64, overlap=16)
    assert out.shape == noisy.shape and out.dtype == np.float32
    err_noisy = np.mean((noisy - clean) ** 2)
    err_out = np.mean((out - clean) ** 2)
    assert err_out < err_noisy  # even 8 steps of a tiny net beat the raw scan
    with pytest.raises(ValueError, match="channel"):
        trained.denoise(noisy[0])


def test_bfloat16_inference_is_close_to_float32(trained, dual_scan):
    scan = dual_scan[0][:, :64, :64]
    full = trained.denoise(scan, tile=64, overlap=16, precision="float32")
    fast = trained.denoise(scan, tile=64, overlap=16, precision="bfloat16")
    noise_std = np.sqrt(np.mean((scan - full) ** 2))
    assert np.sqrt(np.mean((fast - full) ** 2)) < 0.1 * noise_std
    with pytest.raises(ValueError, match="precision"):
        trained.denoise(scan, precision="float16")


def test_saturated_pixels_pass_through(trained, dual_scan):
    noisy = dual_scan[0].copy()
    noisy[1, 20:40, 30:70] = 65535  # clipped block in the high channel
    out = trained.denoise(noisy, tile=64, overlap=16)
    assert np.all(out[1, 20:40, 30:70] == 65535.0)
    assert not np.allclose(out[0, 20:40, 30:70], noisy[0, 20:40, 30:70])


def test_cancel_stops_within_one_step_and_keeps_a_model(dual_scan, tmp_path):
    cancel = threading.Event()
    steps = []

    def on_progress(step, total, loss, val_loss):
        steps.append(step)
        if step == 2:
            cancel.set()

    ckpt = tmp_path / "ckpt.keras"
    den = core.train_blindspot(
        [dual_scan[0]],
        _tiny_config(steps=50),
        on_progress=on_progress,
        cancel=cancel,
        checkpoint_path=ckpt,
    )
    assert steps == [1, 2]
    assert den.metadata["training"]["cancelled"] is True and den.metadata["training"]["steps"] == 2
    assert den.denoise(dual_scan[0], tile=64, overlap=16).shape == dual_scan[0].shape
    assert core.load_model(ckpt).metadata["training"]["cancelled"] is True


def test_training_is_deterministic_for_a_seed(dual_scan, op_determinism):
    cfg = _tiny_config(steps=3, val_every=3, seed=11)
    w1 = core.train_blindspot([dual_scan[0]], cfg).model.get_weights()
    w2 = core.train_blindspot([dual_scan[0]], cfg).model.get_weights()
    assert len(w1) == len(w2)
    for a, b in zip(w1, w2, strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_training_input_is_rejected():
    with pytest.raises(ValueError, match="at least"):
        core.train_blindspot([np.zeros((2, 20, 20), np.uint16)], _tiny_config())
    with pytest.raises(ValueError, match="same number of channels"):
        core.train_blindspot(
            [np.zeros((2, 64, 64), np.uint16), np.zeros((64, 64), np.uint16)], _tiny_config()
        )
    with pytest.raises(ValueError, match="multiple"):
        _tiny_config(crop_size=30).check()


@pytest.mark.slow
def test_phantom_bag_quality_improves():
    phantom = pytest.importorskip("napari_xray_denoise.phantom")
    bags = [phantom.make_bag((256, 384), seed=s) for s in range(3)]
    cfg = core.TrainConfig(steps=300, crop_size=64, batch_size=8, val_every=50, tile=128)
    den = core.train_blindspot([b.noisy for b in bags[:2]], cfg)
    test = bags[2]
    out = den.denoise(test.noisy)
    for c in range(2):
        mse_noisy = np.mean((test.noisy[c] - test.clean[c]) ** 2)
        mse_out = np.mean((out[c] - test.clean[c]) ** 2)
        assert mse_out < 0.5 * mse_noisy


def test_supervised_training_learns_from_clean_pairs(dual_scan):
    noisy, clean = dual_scan
    den = core.train_blindspot(
        [noisy],
        _tiny_config(mode="supervised", joint="blind", steps=40, learning_rate=3e-3),
        clean=[clean],
    )
    assert den.mode == "supervised" and den.metadata["joint"] == "blind"
    assert den.metadata["training"]["steps"] == 40
    out = den.denoise(noisy)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert den.last_noise == [{"model": "none"}] * 2
    inner = (slice(None), slice(8, -8), slice(8, -8))
    err_out = np.mean((out - clean)[inner] ** 2)
    err_in = np.mean((noisy.astype(np.float64) - clean)[inner] ** 2)
    assert err_out < err_in  # 40 tiny steps already beat the noisy input
    # "separate" trains one 1-channel supervised model on both channels
    sep = core.train_blindspot(
        [noisy], _tiny_config(mode="supervised", joint="separate", steps=2), clean=[clean]
    )
    assert sep.channels == 1 and sep.denoise(noisy).shape == noisy.shape


def test_supervised_training_input_errors(dual_scan):
    noisy, clean = dual_scan
    with pytest.raises(ValueError, match="needs the clean scans"):
        core.train_blindspot([noisy], _tiny_config(mode="supervised"))
    with pytest.raises(ValueError, match="go with mode 'supervised' only"):
        core.train_blindspot([noisy], _tiny_config(), clean=[clean])
    with pytest.raises(ValueError, match="one to one"):
        core.train_blindspot([noisy], _tiny_config(mode="supervised"), clean=[clean[:, :64]])


def test_training_fits_each_scans_noise_when_asked():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:96, :128]
    clean = np.stack([20000 + 15000 * np.sin(xx / 20.0) * np.cos(yy / 28.0)] * 2)
    scans = [
        np.clip(
            np.round(g * rng.poisson(clean / g) + rng.normal(0, 25, clean.shape)), 0, 65535
        ).astype(np.uint16)
        for g in (4.0, 32.0)
    ]
    den = core.train_blindspot(scans, _tiny_config(steps=4, noise_per_scan=True, joint="blind"))
    fits = den.metadata["noise"]["per_scan_counts"]
    assert len(fits) == 2 and len(fits[0]) == 2
    for fit, gain in zip(fits, (4.0, 32.0)):  # small images: the fits are rough
        for ch in fit:
            assert ch["a_counts"] == pytest.approx(gain, rel=0.35)
    for c in range(2):  # but each scan clearly gets its own law
        assert 5.0 < fits[1][c]["a_counts"] / fits[0][c]["a_counts"] < 12.0
    assert den.denoise(scans[0]).shape == scans[0].shape
