"""Tests of the TensorFlow/Keras blind-spot denoiser in ``napari_xray_denoise.core``.

Tiny networks, tiny crops and few steps: the file runs in well under two minutes on a
busy 2-core CPU. Longer checks are marked ``slow``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

from napari_xray_denoise import core  # noqa: E402
from napari_xray_denoise.core import noisefit  # noqa: E402
from napari_xray_denoise.core.data import (  # noqa: E402
    CropSampler,
    Region,
    choose_scale,
    saturated_mask,
    saturation_levels,
    split_regions,
)
from napari_xray_denoise.core.tiling import blend_ramp, predict_tiled  # noqa: E402

TINY = {"enc_filters": 8, "dec_filters": 8, "levels": 2}
NOISE_INIT_1 = [{"a": 1e-4, "b": 1e-5, "mean_ref": 0.45, "var_ref": 5.5e-5}]


# ----------------------------------------------------------------------------- fixtures
def _stripes_x01(shape=(96, 96), seed=0) -> np.ndarray:
    """Noisy x01 image whose 8-neighbour mean is a poor prior (period-2 stripes)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    clean = 0.45 + 0.15 * (-1.0) ** xx + 0.1 * np.sin(yy / 7.0)
    return (clean + rng.normal(size=shape) * np.sqrt(1e-4 * clean + 1e-5)).astype(np.float32)


def _dual_scan(shape=(96, 128), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """(noisy uint16 (2, Y, X), clean float64) Poisson-Gaussian scan, gain 8, read noise 25."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    low = 20000 + 15000 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    clean = np.stack([low, 0.7 * low + 5000])
    noisy = 8 * rng.poisson(clean / 8) + rng.normal(0, 25, clean.shape)
    return np.clip(np.round(noisy), 0, 65535).astype(np.uint16), clean


def _randomise(model, seed=0):
    """Give every weight random values so no path is hidden by a zero initialisation."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(w.dtype) for w in model.get_weights()])


def _tiny_config(**kw) -> core.TrainConfig:
    base = dict(
        TINY, steps=6, batch_size=2, crop_size=32, val_every=3, val_crops=4, tile=64, overlap=16
    )
    base.update(kw)
    return core.TrainConfig(**base)


@pytest.fixture(scope="module")
def dual_scan():
    return _dual_scan()


@pytest.fixture(scope="module")
def trained(dual_scan):
    """A tiny 2-channel cross model trained for a few steps (shared by several tests)."""
    return core.train_blindspot([dual_scan[0]], _tiny_config(steps=8, joint="cross"))


@pytest.fixture
def op_determinism():
    """Enable TensorFlow op determinism for one test, then switch it off again."""
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    tf.config.experimental.enable_op_determinism()
    yield
    disable = getattr(tf_config, "disable_op_determinism", None)
    if disable is not None:
        disable()


# ------------------------------------------------------------------ blind-spot property
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


# -------------------------------------------------------------------- numpy arithmetic
def test_posterior_mean_matches_numerical_integration():
    y, mu, prior_var, noise_var = 0.8, 0.5, 0.02, 0.01
    grid = np.linspace(-1, 2, 200_001)
    density = np.exp(-((grid - mu) ** 2) / (2 * prior_var) - (y - grid) ** 2 / (2 * noise_var))
    expected = np.sum(grid * density) / np.sum(density)
    got = core.posterior_mean(y, mu, prior_var, noise_var)
    assert got == pytest.approx(expected, rel=1e-6)
    # limits: no noise -> the measurement, no prior spread -> the prior mean
    assert core.posterior_mean(y, mu, 0.02, 0.0) == pytest.approx(y)
    assert core.posterior_mean(y, mu, 0.0, 0.01) == pytest.approx(mu)
    assert core.posterior_mean(y, mu, 0.0, 0.0) == pytest.approx(mu)


def test_uncalib_fit_recovers_known_affine_noise():
    rng = np.random.default_rng(3)
    a_true, b_true = 2e-4, 1.5e-5
    mu = rng.uniform(0.05, 0.9, 600_000)
    y = mu + rng.normal(size=mu.size) * np.sqrt(a_true * mu + b_true)
    a, b = core.fit_uncalib_noise(y, mu)
    assert a == pytest.approx(a_true, rel=0.1)
    assert b == pytest.approx(b_true, rel=0.1)
    a_counts, b_counts = noisefit.affine_to_counts(a, b, 4095.0)
    assert a_counts == pytest.approx(a * 4095.0) and b_counts == pytest.approx(b * 4095.0**2)


def test_noise_estimate_from_one_image_is_close():
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:400, :400]
    clean = 0.1 + 0.8 * xx / 400 + 0.05 * np.sin(yy / 20)
    noisy = clean + rng.normal(size=clean.shape) * np.sqrt(2e-4 * clean + 1e-5)
    est = noisefit.estimate_affine_noise(noisy)
    assert est.a == pytest.approx(2e-4, rel=0.2)
    assert est.var_ref == pytest.approx(2e-4 * est.mean_ref + 1e-5, rel=0.2)


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


# ----------------------------------------------------------------------------- tiling
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


# ---------------------------------------------------------------------------- training
def _fit_tiny(mode: str, steps: int = 30):
    import keras

    from napari_xray_denoise.core.blindspot import build_blindspot_model, make_blindspot_loss
    from napari_xray_denoise.core.training import FitSchedule, fit

    keras.utils.set_random_seed(0)
    noisy = _stripes_x01()
    model = build_blindspot_model(
        channels=1, mode=mode, enc_filters=8, dec_filters=8, levels=1, noise_init=NOISE_INIT_1
    )
    loss_fn = make_blindspot_loss(mode, 1, [NOISE_INIT_1[0]["var_ref"]], reg=0.05)

    def batch(rng):
        ys, xs = rng.integers(0, 96 - 16, 4), rng.integers(0, 96 - 16, 4)
        x = np.stack([noisy[y : y + 16, x : x + 16] for y, x in zip(ys, xs, strict=True)])[
            ..., None
        ]
        return x, np.concatenate([x, np.ones_like(x)], axis=-1)

    rng = np.random.default_rng(1)
    val = [batch(np.random.default_rng(7)) for _ in range(2)]
    before = np.mean([float(loss_fn(t, model(x))) for x, t in val])
    result = fit(
        model,
        loss_fn,
        lambda: batch(rng),
        val,
        FitSchedule(steps=steps, val_every=10, learning_rate=3e-3),
    )
    after = np.mean([float(loss_fn(t, model(x))) for x, t in val])
    return before, after, result, model


@pytest.mark.parametrize(
    "mode",
    ["poissongaussian"]
    + [pytest.param(m, marks=pytest.mark.slow) for m in ("mse", "uncalib", "gaussian", "poisson")],
)
def test_each_mode_trains_and_loss_decreases(mode):
    before, after, result, model = _fit_tiny(mode)
    assert np.isfinite(after) and np.isfinite(result.best_val_loss)
    assert after < before - 0.5 * abs(before) or after < 0.5 * before
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


def test_fit_lowers_learning_rate_on_plateau_and_stops_early():
    import keras

    from napari_xray_denoise.core.training import FitSchedule, fit

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    x = np.ones((2, 4), np.float32)

    def flat_loss(targets, outputs):  # a loss that never improves
        return keras.ops.mean(outputs * 0.0) + 1.0

    schedule = FitSchedule(
        steps=100,
        learning_rate=1e-2,
        val_every=1,
        lr_patience=2,
        lr_factor=0.5,
        early_stop_patience=5,
    )
    result = fit(model, flat_loss, lambda: (x, x), [(x, x)], schedule)
    assert result.stopped_early and result.steps_done == 6 and result.best_step == 1
    assert result.final_learning_rate == pytest.approx(2.5e-3)


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


def test_save_load_round_trip_and_resume(trained, dual_scan, tmp_path):
    path = trained.save(tmp_path / "model.keras")
    loaded = core.load_model(path)
    assert loaded.metadata == json.loads(json.dumps(trained.metadata))
    scan = dual_scan[0][:, :80, :100]
    np.testing.assert_array_equal(
        loaded.denoise(scan, tile=64, overlap=16), trained.denoise(scan, tile=64, overlap=16)
    )
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("xray_denoise_meta.json"))
    assert meta["package_version"] and meta["tile"] == 64 and "training" in meta
    resumed = core.train_blindspot([dual_scan[0]], _tiny_config(steps=2), resume_from=path)
    assert resumed.metadata["training"]["steps"] == trained.metadata["training"]["steps"] + 2
    assert resumed.metadata["joint"] == "cross"


def test_load_model_errors(tmp_path):
    import keras

    with pytest.raises(core.ModelFileError, match="does not exist"):
        core.load_model(tmp_path / "missing.keras")
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    with pytest.raises(core.ModelFileError, match="not a .keras"):
        core.load_model(text)
    plain = tmp_path / "plain.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(plain)
    with pytest.raises(core.ModelFileError, match="not one made by napari-xray-denoise"):
        core.load_model(plain)
    # a model file whose weights are damaged
    model = core.build_blindspot_model(**TINY)
    from napari_xray_denoise.core.model_file import save_model_file

    good = save_model_file(
        model,
        {"method": "blindspot", "mode": "mse", "channels": 1, "scale": 1.0},
        tmp_path / "good.keras",
    )
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith(".h5"):
                data = data[: len(data) // 3]
            dst.writestr(item, data)
    with pytest.raises(core.ModelFileError, match="damaged"):
        core.load_model(broken)
    assert issubclass(core.ModelFileError, ValueError)


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


def test_importing_core_does_not_import_tensorflow():
    code = (
        "import sys, napari_xray_denoise.core as c, napari_xray_denoise.core.noisefit, "
        "napari_xray_denoise.core.tiling, napari_xray_denoise.core.data; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; "
        "assert 'napari' not in sys.modules and 'qtpy' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


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


# ---------------------------------------------------------- schedules, supervised bound
def test_cosine_schedule_warms_up_peaks_and_decays_to_min_lr():
    from napari_xray_denoise.core.training import FitSchedule

    s = FitSchedule(steps=1000, learning_rate=1e-3, min_lr=1e-6, lr_schedule="cosine")
    assert s.cosine_lr(0.0) == pytest.approx(1e-5)  # 1% of the peak, never 0
    assert s.cosine_lr(0.01) == pytest.approx(5e-4)  # half-way through the 2% warm-up
    assert s.cosine_lr(0.02) == pytest.approx(1e-3)
    mid = s.cosine_lr(0.51)
    assert mid == pytest.approx(1e-6 + (1e-3 - 1e-6) * 0.5, rel=1e-6)
    assert s.cosine_lr(1.0) == pytest.approx(1e-6)
    lrs = [s.cosine_lr(f) for f in np.linspace(0.02, 1.0, 50)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    # the time budget drives the fraction when it is further along than the steps
    timed = FitSchedule(steps=1000, max_minutes=1.0)
    assert timed.progress(10, 30.0) == pytest.approx(0.5)
    assert timed.progress(900, 30.0) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="lr_schedule"):
        FitSchedule(lr_schedule="step")
    with pytest.raises(ValueError, match="max_minutes"):
        FitSchedule(max_minutes=0)


def test_fit_stops_on_its_time_budget_at_a_low_learning_rate():
    import time

    import keras

    from napari_xray_denoise.core.training import FitSchedule, fit

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    x = np.ones((2, 4), np.float32)

    def slow_batch():
        time.sleep(0.01)
        return x, x

    def loss(targets, outputs):
        return keras.ops.mean(keras.ops.square(outputs - targets[:, :1]))

    schedule = FitSchedule(steps=10**6, learning_rate=1e-2, min_lr=1e-5, val_every=5,
                           lr_schedule="cosine", max_minutes=0.02)
    t0 = time.perf_counter()
    result = fit(model, loss, slow_batch, [(x, x)], schedule)
    assert result.out_of_time and not result.cancelled
    assert 1.0 <= time.perf_counter() - t0 < 10.0
    assert 10 < result.steps_done < 10**6
    assert result.final_learning_rate < 1e-3  # decayed towards min_lr, not left at the peak


def test_supervised_model_sees_its_centre_pixel():
    model = core.build_blindspot_model(channels=2, joint="blind", mode="supervised", **TINY)
    _randomise(model)
    x = np.random.default_rng(1).random((1, 32, 32, 2)).astype(np.float32)
    for out_channel in range(2):
        grad = _input_gradient(model, x, out_channel, (16, 16))
        assert np.all(grad[16, 16] != 0.0)  # both channels' centre values
    with pytest.raises(ValueError, match="supervised"):
        core.build_blindspot_model(channels=2, joint="cross", mode="supervised", **TINY)


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


def test_per_scan_noise_loss_uses_the_crops_own_noise_law():
    from napari_xray_denoise.core.blindspot import make_blindspot_loss

    rng = np.random.default_rng(0)
    y = rng.random((2, 4, 4, 1)).astype(np.float32)
    mu = rng.random((2, 4, 4, 1)).astype(np.float32)
    s = 0.01 * np.ones_like(y)
    learnt = np.full_like(y, 123.0)  # the model's own noise output: must be ignored
    a = np.concatenate([np.full((1, 4, 4, 1), 1e-3), np.full((1, 4, 4, 1), 4e-3)]).astype(np.float32)
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


def test_training_fits_each_scans_noise_when_asked():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:96, :128]
    clean = np.stack([20000 + 15000 * np.sin(xx / 20.0) * np.cos(yy / 28.0)] * 2)
    scans = [np.clip(np.round(g * rng.poisson(clean / g) + rng.normal(0, 25, clean.shape)), 0, 65535)
             .astype(np.uint16) for g in (4.0, 32.0)]
    den = core.train_blindspot(scans, _tiny_config(steps=4, noise_per_scan=True, joint="blind"))
    fits = den.metadata["noise"]["per_scan_counts"]
    assert len(fits) == 2 and len(fits[0]) == 2
    for fit, gain in zip(fits, (4.0, 32.0)):  # small images: the fits are rough
        for ch in fit:
            assert ch["a_counts"] == pytest.approx(gain, rel=0.35)
    for c in range(2):  # but each scan clearly gets its own law
        assert 5.0 < fits[1][c]["a_counts"] / fits[0][c]["a_counts"] < 12.0
    assert den.denoise(scans[0]).shape == scans[0].shape
