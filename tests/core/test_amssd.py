"""Tests of the AMSSD network, loss, optimiser and training in ``napari_xray_denoise.core``.

Tiny widths, tiny crops and few steps: the file runs in well under two minutes on a busy
2-core CPU. Longer checks are marked ``slow``.
"""

from __future__ import annotations

import json
import threading
import zipfile

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

from napari_xray_denoise.core.amssd import network as amssd  # noqa: E402
from napari_xray_denoise.core.amssd.network import (  # noqa: E402
    AmssdDenoiser,
    GradientCentralizedAdam,
    amssd_loss,
    build_amssd_model,
    centralize_gradient,
)
from napari_xray_denoise.core.amssd.train import (  # noqa: E402
    AmssdConfig,
    PairedCropSampler,
    train_amssd,
)
from napari_xray_denoise.core.blindspot.denoiser import Denoiser  # noqa: E402
from napari_xray_denoise.core.data import Region  # noqa: E402
from napari_xray_denoise.core.registry import load_model  # noqa: E402


# ----------------------------------------------------------------------------- fixtures
def _dual_scan(shape=(96, 128), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """(noisy uint16 (2, Y, X), clean float64) smooth Poisson-Gaussian scan, strong noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    low = 20000 + 15000 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    clean = np.stack([low, 0.7 * low + 5000])
    noisy = 64 * rng.poisson(clean / 64) + rng.normal(0, 100, clean.shape)
    return np.clip(np.round(noisy), 0, 65535).astype(np.uint16), clean


def _tiny_config(**kw) -> AmssdConfig:
    base = dict(
        width=8,
        steps=4,
        batch_size=2,
        crop_size=24,
        val_every=2,
        val_crops=4,
        learning_rate=3e-3,
        tile=64,
        overlap=16,
    )
    base.update(kw)
    return AmssdConfig(**base)


def _randomise(model, seed=0):
    """Give every weight random values so no path is hidden by a zero initialisation."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in model.get_weights()])


@pytest.fixture(scope="module")
def dual_scan():
    return _dual_scan()


TRAINED_CONFIG = dict(
    steps=16, val_every=8, val_crops=8, batch_size=4, crop_size=32, groups=(1, 2, 3)
)


@pytest.fixture(scope="module")
def trained(dual_scan):
    """A tiny 2-channel AMSSD model trained for a few steps, with its progress calls."""
    seen = []
    den = train_amssd(
        [dual_scan[0]], _tiny_config(**TRAINED_CONFIG), on_progress=lambda *a: seen.append(a)
    )
    return den, seen


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


# ------------------------------------------------------------------------------ network
@pytest.mark.parametrize("channels", [1, 2])
def test_model_is_fully_convolutional_and_starts_as_identity(channels):
    model = build_amssd_model(channels, width=8)
    x = np.random.default_rng(0).random((2, 37, 53, channels)).astype(np.float32)
    out = np.asarray(model(x))
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, x, atol=1e-6)  # residual stages with zero heads
    _randomise(model)
    out = np.asarray(model(x[:, :20, :31]))
    assert out.shape == (2, 20, 31, channels) and np.all(np.isfinite(out))
    assert not np.allclose(out, x[:, :20, :31], atol=1e-3)


def test_model_sees_a_wide_neighbourhood_and_every_branch_is_used():
    import tensorflow as tf

    model = build_amssd_model(1, width=8)
    _randomise(model, seed=1)
    x = tf.Variable(np.random.default_rng(2).random((1, 97, 97, 1)).astype(np.float32))
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(model(x)[0, 48, 48])
    grad = np.abs(tape.gradient(value, x).numpy()[0, ..., 0])
    ys, xs = np.nonzero(grad)
    radius = max(np.abs(ys - 48).max(), np.abs(xs - 48).max())
    assert radius == amssd.RECEPTIVE_RADIUS
    names = {layer.name for layer in model.layers}
    for part in (
        "stem_dil",
        "stage1_den_mix_mish",
        "stage1_den_res3_2_add",
        "stage1_den_dense_fuse",
        "stage2_runt_down3",
        "stage2_runt_add",
        "stage2_head",
    ):
        assert part in names
    mix = [model.get_layer(f"stage2_den_mix_{act}") for act in ("relu", "silu", "mish")]
    assert [layer.get_config()["activation"] for layer in mix] == ["relu", "silu", "mish"]
    assert [layer.kernel_size for layer in mix] == [(3, 3), (5, 5), (7, 7)]
    assert {layer.filters for layer in mix} == {amssd.MIX_FILTERS}


def test_mixed_bfloat16_body_keeps_float32_heads_and_residuals():
    model32 = build_amssd_model(2, width=8)
    model16 = build_amssd_model(2, width=8, mixed_bfloat16=True)
    x = np.random.default_rng(3).random((1, 40, 40, 2)).astype(np.float32)
    out = np.asarray(model16(x))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x)  # identity start is exact: the residual add is float32
    _randomise(model32, seed=4)
    model16.set_weights(model32.get_weights())
    ref, got = np.asarray(model32(x)), np.asarray(model16(x))
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref - x).max()
    assert model16.get_layer("stage1_den_c5").compute_dtype == "bfloat16"
    assert model16.get_layer("stage2_head").compute_dtype == "float32"


def test_model_without_residual_and_bad_options():
    model = build_amssd_model(2, width=8, residual=False)
    x = np.full((1, 24, 24, 2), 0.5, np.float32)
    assert not np.allclose(np.asarray(model(x)), x)
    with pytest.raises(ValueError, match="1 or 2 channels"):
        build_amssd_model(3)
    with pytest.raises(ValueError, match="width"):
        build_amssd_model(1, width=4)


# --------------------------------------------------------------------------------- loss
def test_loss_is_zero_for_identical_images_positive_otherwise_with_finite_gradients():
    import tensorflow as tf

    rng = np.random.default_rng(3)
    for channels in (1, 2):
        a = rng.random((2, 32, 40, channels)).astype(np.float32)
        assert float(amssd_loss(a, a)) == pytest.approx(0.0, abs=1e-5)
        b = np.clip(a + rng.normal(0, 0.01, a.shape), 0, 1).astype(np.float32)
        value = float(amssd_loss(a, b))
        assert value > 0.01
        for pred in (b, a):  # also at the minimum, where |x| and log have kinks
            pv = tf.Variable(pred)
            with tf.GradientTape() as tape:
                loss = amssd_loss(a, pv)
            grad = tape.gradient(loss, pv).numpy()
            assert np.all(np.isfinite(grad))
        # the terms have the source's weights: a constant offset of 0.1 gives
        # MAE 0.1, SSIM of the offset image and PSNR 20 dB
        c = np.clip(a + 0.1, None, None).astype(np.float32)
        ssim = float(tf.reduce_mean(tf.image.ssim(a, c, max_val=1.0)))
        expected = 0.25 * 0.1 + 0.85 * (1 - ssim) + 0.3 * (100 - 20) / 100
        assert float(amssd_loss(a, c)) == pytest.approx(expected, rel=1e-4)


def test_loss_prefers_the_closer_prediction():
    rng = np.random.default_rng(4)
    clean = (0.4 + 0.2 * np.sin(np.arange(48) / 5.0))[None, :, None, None] * np.ones((1, 48, 48, 2))
    clean = clean.astype(np.float32)
    near = (clean + rng.normal(0, 0.002, clean.shape)).astype(np.float32)
    far = (clean + rng.normal(0, 0.02, clean.shape)).astype(np.float32)
    assert float(amssd_loss(clean, near)) < float(amssd_loss(clean, far))


# ---------------------------------------------------------------------------- optimiser
def test_gradient_centralisation_zeroes_every_filters_mean():
    import tensorflow as tf

    rng = np.random.default_rng(5)
    kernel_grad = tf.constant(rng.normal(1.0, 1.0, (3, 3, 4, 6)).astype(np.float32))
    centred = centralize_gradient(kernel_grad).numpy()
    np.testing.assert_allclose(centred.mean(axis=(0, 1, 2)), 0.0, atol=1e-6)
    np.testing.assert_allclose(
        centred - kernel_grad.numpy(),
        -np.broadcast_to(kernel_grad.numpy().mean(axis=(0, 1, 2)), centred.shape),
        atol=1e-6,
    )
    dense_grad = tf.constant(rng.normal(1.0, 1.0, (5, 3)).astype(np.float32))
    np.testing.assert_allclose(centralize_gradient(dense_grad).numpy().mean(axis=0), 0.0, atol=1e-6)
    bias_grad = tf.constant(rng.normal(1.0, 1.0, (6,)).astype(np.float32))
    np.testing.assert_array_equal(centralize_gradient(bias_grad).numpy(), bias_grad.numpy())
    assert centralize_gradient(None) is None


def test_optimiser_applies_gradient_centralisation():
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(6)
    start = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    bias0 = rng.normal(size=(4,)).astype(np.float32)
    grads = [
        tf.constant(rng.normal(0.5, 1.0, start.shape).astype(np.float32)),
        tf.constant(rng.normal(0.5, 1.0, bias0.shape).astype(np.float32)),
    ]

    def run(optimizer, gs):
        variables = [keras.Variable(start), keras.Variable(bias0)]
        for _ in range(3):
            optimizer.apply(gs, variables)
        return [v.numpy() for v in variables]

    with_gc = run(GradientCentralizedAdam(learning_rate=0.01), grads)
    manual = run(keras.optimizers.Adam(learning_rate=0.01), [centralize_gradient(g) for g in grads])
    plain = run(keras.optimizers.Adam(learning_rate=0.01), grads)
    for a, b in zip(with_gc, manual, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not np.allclose(with_gc[0], plain[0])
    np.testing.assert_allclose(with_gc[1], plain[1])  # biases are not centralised
    # the optimiser round-trips through its config (it is saved inside model files)
    opt = GradientCentralizedAdam(learning_rate=0.002)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(again) is GradientCentralizedAdam
    assert float(again.learning_rate.numpy()) == pytest.approx(0.002)


# --------------------------------------------------------------------------- data pairs
def test_paired_crops_are_aligned_and_use_the_chosen_groups():
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:40, :50]
    ramp = 50.0 * yy + xx  # every rotation/flip of a crop shows in its row and column steps
    image = np.stack([ramp, ramp + 5000]).astype(np.float32)
    targets = np.stack([image + 0.25 * g for g in range(4)])  # group g = input + g/4
    sampler = PairedCropSampler([image], [targets], [Region(0, 0, 40, 0, 50)], 16, groups=(1, 3))
    x, t = sampler.sample(rng, 64)
    assert x.shape == t.shape == (64, 16, 16, 2) and x.dtype == t.dtype == np.float32
    offsets = (t - x).reshape(64, -1)
    np.testing.assert_allclose(offsets, offsets[:, :1] * np.ones_like(offsets), atol=1e-3)
    assert set(np.round(4 * offsets[:, 0]).astype(int)) == {1, 3}
    # the 8 rotations/flips are used: steps along the crop's rows and columns tell which
    steps = {(float(c[0, 1, 0] - c[0, 0, 0]), float(c[1, 0, 0] - c[0, 0, 0])) for c in x}
    assert len(steps) == 8
    no_augment = PairedCropSampler(
        [image], [targets], [Region(0, 0, 40, 0, 50)], 16, groups=(0,), augment=False
    )
    x, t = no_augment.sample(rng, 8)
    np.testing.assert_array_equal(x, t)
    assert np.all(x[:, 0, 1, 0] - x[:, 0, 0, 0] == 1.0)


def test_training_targets_keep_saturated_pixels():
    from napari_xray_denoise.core.amssd.train import _pairs_x01

    scan, _ = _dual_scan((40, 48), seed=1)
    scan[1, 10:20, 5:30] = 65535
    x01, t01 = _pairs_x01(scan.astype(np.float32), 65535.0, [(2, 1.2), (3, 1.5)], "auto")
    assert x01.shape == (2, 40, 48) and t01.shape == (3, 2, 40, 48)
    assert np.all(t01[:, 1, 10:20, 5:30] == 1.0)
    np.testing.assert_allclose(t01[0], x01)  # group 0: noisy -> noisy
    assert not np.allclose(t01[1, 0], x01[0])


# ----------------------------------------------------------------------------- training
def test_training_steps_reduce_the_loss_and_denoise(trained, dual_scan):
    from napari_xray_denoise.core.amssd.train import _pairs_x01

    den, seen = trained
    noisy, clean = dual_scan
    assert [s[0] for s in seen] == list(range(1, 17)) and all(s[1] == 16 for s in seen)
    assert all(np.isfinite(s[2]) for s in seen) and seen[-1][3] is not None
    assert den.metadata["training"]["best_val_loss"] == pytest.approx(
        min(s[3] for s in seen if s[3])
    )
    # loss on fixed crops: the untrained model is the identity, i.e. the noisy input
    x01, t01 = _pairs_x01(
        noisy.astype(np.float32), den.scale, den.metadata["targets"]["scales"], None
    )
    sampler = PairedCropSampler([x01], [t01], [Region(0, 0, 96, 0, 128)], 32, groups=(1, 2, 3))
    x, t = sampler.sample(np.random.default_rng(9), 16)
    assert float(amssd_loss(t, den.model(x))) < float(amssd_loss(t, x))
    out = den.denoise(noisy, tile=64, overlap=16, precision="float32")
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert np.mean((out - clean) ** 2) < np.mean((noisy.astype(float) - clean) ** 2)


def test_train_amssd_rejects_bad_input():
    scan = np.zeros((3, 64, 64), np.uint16)
    with pytest.raises(ValueError, match="1 or 2 channels"):
        train_amssd([scan], _tiny_config())
    with pytest.raises(ValueError, match="crop_size"):
        train_amssd([scan[:2, :20, :20]], _tiny_config())
    with pytest.raises(ValueError, match="same number of channels"):
        train_amssd([scan[:2], scan[:1]], _tiny_config())
    with pytest.raises(ValueError, match="at least one scan"):
        train_amssd([], _tiny_config())
    with pytest.raises(ValueError, match="groups"):
        _tiny_config(groups=(0, 4)).check()
    with pytest.raises(ValueError, match="crop_size"):
        _tiny_config(crop_size=8).check()


def test_dual_model_denoises_and_passes_saturation_through(trained, dual_scan):
    den = trained[0]
    noisy = dual_scan[0].copy()
    assert den.metadata["channels"] == 2 and den.metadata["method"] == "amssd"
    noisy[1, 20:40, 30:70] = 65535
    out = den.denoise(noisy, tile=64, overlap=16, precision="float32")
    assert out.shape == noisy.shape and np.all(out[1, 20:40, 30:70] == 65535.0)
    assert den.last_noise == [{"model": "none"}] * 2
    fast = den.denoise(noisy, tile=64, overlap=16, precision="bfloat16")
    assert fast.shape == noisy.shape and np.all(fast[1, 20:40, 30:70] == 65535.0)
    assert np.abs(fast - out).mean() < 0.5 * np.abs(out - noisy).mean()
    with pytest.raises(ValueError, match="channel"):
        den.denoise(noisy[0])


def test_cancel_stops_within_one_step_single_channel_12_bit(tmp_path):
    cancel = threading.Event()
    steps = []

    def on_progress(step, total, loss, val_loss):
        steps.append(step)
        if step == 2:
            cancel.set()

    counts = _dual_scan((64, 80), seed=3)[0][0] // 16  # one 12-bit channel
    ckpt = tmp_path / "ckpt.keras"
    den = train_amssd(
        counts,
        _tiny_config(steps=50, val_every=1),
        on_progress=on_progress,
        cancel=cancel,
        checkpoint_path=ckpt,
    )
    assert steps == [1, 2]
    meta = den.metadata
    assert meta["training"]["cancelled"] is True and meta["training"]["steps"] == 2
    assert isinstance(den, Denoiser) and meta["channels"] == 1 and meta["scale"] == 4095.0
    assert load_model(ckpt).metadata["training"]["cancelled"] is True
    odd = np.random.default_rng(8).integers(100, 4000, (70, 90)).astype(np.uint16)
    out = den.denoise(odd, tile=64, overlap=16)
    assert out.shape == (70, 90) and out.dtype == np.float32 and np.all(np.isfinite(out))
    # a 1-channel model denoises each channel of a dual-energy scan on its own
    both = den.denoise(np.stack([odd, odd]), tile=64, overlap=16)
    np.testing.assert_array_equal(both[0], out)
    # resume from the checkpoint: its architecture, scale and step count carry on
    resumed = train_amssd(counts, _tiny_config(steps=2, val_every=2, width=16), resume_from=ckpt)
    assert resumed.metadata["training"]["steps"] == 4
    assert resumed.metadata["architecture"]["width"] == 8 and resumed.metadata["scale"] == 4095.0
    assert resumed.metadata["training"]["resumed_from"] == str(ckpt)


def test_save_load_round_trip(trained, dual_scan, tmp_path):
    trained = trained[0]
    path = trained.save(tmp_path / "model.keras")
    loaded = load_model(path)
    assert isinstance(loaded, AmssdDenoiser)
    stored = {k: v for k, v in loaded.metadata.items() if k not in ("format", "format_version")}
    assert stored == json.loads(json.dumps(trained.metadata))
    assert isinstance(loaded.model.optimizer, GradientCentralizedAdam)
    scan = dual_scan[0][:, :80, :100]
    np.testing.assert_array_equal(
        loaded.denoise(scan, tile=64, overlap=16), trained.denoise(scan, tile=64, overlap=16)
    )
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("xray_denoise_meta.json"))
    assert meta["method"] == "amssd" and meta["package_version"] and meta["tile"] == 64
    assert meta["targets"]["groups"] == [1, 2, 3] and meta["architecture"]["residual"] is True


def test_load_model_still_loads_blind_spot_files_and_refuses_them_for_resume(dual_scan, tmp_path):
    from napari_xray_denoise.core.blindspot.network import build_blindspot_model
    from napari_xray_denoise.core.model_file import ModelFileError, save_model_file

    model = build_blindspot_model(channels=1, enc_filters=8, dec_filters=8, levels=1)
    path = save_model_file(
        model,
        {"method": "blindspot", "mode": "mse", "channels": 1, "scale": 1.0},
        tmp_path / "bs.keras",
    )
    den = load_model(path)
    assert type(den) is Denoiser and den.metadata["method"] == "blindspot"
    with pytest.raises(ValueError, match="AMSSD"):
        train_amssd([dual_scan[0][:1]], _tiny_config(), resume_from=path)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.keras")


def test_same_seed_gives_same_start_and_batches():
    import keras

    weights = []
    for _ in range(2):
        keras.utils.set_random_seed(5)
        weights.append(build_amssd_model(2, 8).get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*weights, strict=True))
    image = np.random.default_rng(0).random((2, 40, 50)).astype(np.float32)
    targets = np.stack([image] * 4)
    sampler = PairedCropSampler(
        [image], [targets], [Region(0, 0, 40, 0, 50)], 16, groups=(0, 1, 2, 3)
    )
    a, b, c = (sampler.sample(np.random.default_rng(seed), 4)[0] for seed in (3, 3, 4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.slow
def test_training_is_deterministic_for_a_seed(dual_scan, op_determinism):
    cfg = _tiny_config(steps=2, val_every=2, seed=11)
    w1 = train_amssd([dual_scan[0]], cfg).model.get_weights()
    w2 = train_amssd([dual_scan[0]], cfg).model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2, strict=True))
    assert not all(
        np.array_equal(a, b) for a, b in zip(w1, build_amssd_model(2, 8).get_weights(), strict=True)
    )


def test_library_defaults_match_the_front_ends_and_cover_the_receptive_field():
    """GUI and CLI pass None for tile/overlap; the model's own overlap must then cover
    the network's receptive radius, and the training defaults are options.TRAIN_DEFAULTS."""
    from napari_xray_denoise import options
    from napari_xray_denoise.core import TrainConfig

    for config in (AmssdConfig(), TrainConfig()):
        assert {k: getattr(config, k) for k in options.TRAIN_DEFAULTS} == options.TRAIN_DEFAULTS
    assert AmssdConfig().overlap >= amssd.RECEPTIVE_RADIUS
