"""The single-pass default model: network, physics around it, files, training."""

import json

import numpy as np
import pytest

from napari_xray_denoise import metrics
from napari_xray_denoise.core import load_model
from napari_xray_denoise.core.singlepass.denoiser import (
    SinglePassDenoiser,
    pad_to_multiple,
    untrained_singlepass,
)
from napari_xray_denoise.core.singlepass.network import build_singlepass_model
from napari_xray_denoise.core.singlepass.simdata import (
    PairSampler,
    SimSettings,
    phantom_transmissions,
)
from napari_xray_denoise.noise import calibrated_noise
from napari_xray_denoise.phantom import make_bag


@pytest.fixture(scope="module")
def bag():
    return make_bag((160, 224), dose=1500.0, seed=77)


def test_network_is_fully_convolutional_and_starts_as_identity():
    model = build_singlepass_model((8, 8, 8))
    x = np.random.default_rng(0).uniform(0, 1, (1, 40, 48, 2)).astype(np.float32)
    out = model(x).numpy()
    assert out.shape == (1, 40, 48, 1)
    np.testing.assert_allclose(out[..., 0], x[..., 0], atol=1e-6)  # zero-initialised residual


def test_pad_to_multiple_keeps_the_image_top_left():
    img = np.arange(35 * 17, dtype=np.float32).reshape(35, 17)
    padded = pad_to_multiple(img, 8)
    assert padded.shape == (40, 24)
    np.testing.assert_array_equal(padded[:35, :17], img)


def test_identity_network_returns_the_scan_through_the_physics(bag):
    """Flat-field, noise domain and back are exact inverses around the network."""
    den = untrained_singlepass()
    out = den.denoise(bag.noisy)
    assert out.shape == bag.noisy.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, bag.noisy, rtol=1e-3, atol=2.0)
    rec = den.last_noise[0]
    assert rec["how"].startswith("fitted on this scan") and rec["code_max"] == 65535.0
    assert rec["flatfield"]["source"] == "estimated from the scan's air"


def test_calibrated_noise_and_frames_are_used_and_recorded(bag):
    den = untrained_singlepass()
    law = calibrated_noise(gain=60000 / 1500, offset=0.0, read_std=25.0)
    dark = np.zeros(bag.noisy.shape[2])
    flat = np.stack([bag.streak_gain[0], bag.streak_gain[1]]) * 60000
    den.denoise(bag.noisy, noise=law, dark=dark, flat=[flat[0], flat[1]])
    rec = den.last_noise[1]
    assert rec["how"] == "given (calibrated)" and rec["a_counts"] == pytest.approx(40.0)
    assert rec["flatfield"]["source"] == "dark and flat frames"
    with pytest.raises(ValueError, match="positive number of counts per quantum"):
        calibrated_noise(gain=0.0)
    with pytest.raises(ValueError, match="one per channel"):
        den.denoise(bag.noisy, dark=[dark, dark, dark])


def test_the_shipped_default_model_loads_and_denoises(bag):
    den = load_model()
    assert isinstance(den, SinglePassDenoiser) and den.metadata["method"] == "singlepass"
    assert den.metadata["training"]["steps"] > 0
    out = den.denoise(bag.noisy)
    for c in range(2):
        before = metrics.psnr(bag.noisy[c].astype(np.float64), bag.clean[c])
        after = metrics.psnr(out[c], bag.clean[c])
        assert after > before + 3.0, (c, before, after)


def test_save_and_load_give_the_same_output(tmp_path, bag):
    den = untrained_singlepass()
    den.model.layers[-3].set_weights([w + 0.01 for w in den.model.layers[-3].get_weights()])
    path = den.save(tmp_path / "sp.keras")
    again = load_model(path)
    np.testing.assert_allclose(
        again.denoise(bag.noisy[0]), den.denoise(bag.noisy[0]), rtol=1e-5, atol=1e-3
    )


def test_large_scans_are_tiled_like_whole_ones(bag):
    den = untrained_singlepass()
    den.model.layers[-3].set_weights([w + 0.01 for w in den.model.layers[-3].get_weights()])
    whole = den.denoise(bag.noisy[0])
    den.whole_limit, den.tile, den.overlap = 1000, 64, 16
    tiled = den.denoise(bag.noisy[0])
    inner = (slice(8, -8), slice(8, -8))
    np.testing.assert_allclose(tiled[inner], whole[inner], rtol=0.02, atol=50)


def test_self_ensemble_averages_passes_over_flipped_copies():
    """1 pass is the network once; 2 and 4 average the passes over the scan flipped
    along rows (and columns), each flipped back; progress counts every pass."""
    den = load_model()  # a trained network: not flip-equivariant, so the passes differ
    rng = np.random.default_rng(4)
    u = rng.uniform(0.2, 0.8, (48, 80)).astype(np.float32)
    g = (rng.uniform(0.2, 0.8, (48, 80)).astype(np.float32), 0.02)

    def once(fy, fx):
        def f(a):
            return np.ascontiguousarray(a[:: -1 if fy else 1, :: -1 if fx else 1])

        return f(den.predict_u(f(u), 0.03, guide=(f(g[0]), g[1]), self_ensemble=1))

    flips = [once(False, False), once(True, False), once(False, True), once(True, True)]
    assert np.abs(flips[1] - flips[0]).max() > 1e-4
    steps = []
    two = den.predict_u(
        u, 0.03, guide=g, self_ensemble=2, on_progress=lambda d, t: steps.append((d, t))
    )
    np.testing.assert_allclose(two, (flips[0] + flips[1]) / 2, atol=1e-6)
    assert steps == [(1, 2), (2, 2)]
    four = den.predict_u(u, 0.03, guide=g, self_ensemble=4)
    np.testing.assert_allclose(four, np.mean(flips, axis=0), atol=1e-6)
    assert den.self_ensemble == 2  # the default
    np.testing.assert_allclose(den.predict_u(u, 0.03, guide=g), two, atol=1e-6)
    with pytest.raises(ValueError, match="self-ensemble must be one of 1, 2, 4"):
        den.denoise(np.full((32, 32), 1000, np.uint16), self_ensemble=3)


def test_bad_scans_get_one_sentence(bag):
    den = untrained_singlepass()
    bad = bag.noisy[0].astype(np.float64)
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        den.denoise(bad)
    with pytest.raises(ValueError, match="at least 16x16"):
        den.denoise(np.ones((8, 100), np.uint16))


def test_simulated_pairs_cover_the_scanner_traits():
    rng = np.random.default_rng(0)
    sampler = PairSampler(phantom_transmissions([2], rng), rng, crop=32, settings=SimSettings())
    x, t = sampler.batch(64)
    assert x.shape == (64, 32, 32, 2) and t.shape == (64, 32, 32, 1)
    sigmas = x[:, 0, 0, 1]
    assert sigmas.min() < 0.01 < 0.03 < sigmas.max()  # high and low doses
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(t))


def test_a_short_supervised_run_learns_and_resumes(tmp_path):
    from napari_xray_denoise.core.singlepass.train import LongRunConfig, train_long_run

    cfg = LongRunConfig(
        widths=(8, 8, 16),
        crop=32,
        batch=4,
        pool_bags=1,
        refresh_every=1000,
        val_every_minutes=0.05,
        learning_rate=3e-3,
        ema_decay=0.9,
    )
    first = train_long_run(tmp_path, hours=0.006, config=cfg, log=lambda _m: None)
    assert first["steps"] > 10 and first["val_gain_db"] > 0.5, first
    second = train_long_run(tmp_path, hours=0.001, log=lambda _m: None)
    assert second["steps"] > first["steps"] and second["hours"] > first["hours"]
    lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert lines and all("val_gain_db" in x for x in lines)
    assert isinstance(load_model(tmp_path / "model.keras"), SinglePassDenoiser)


# ---------------------------------------------------------------- guided (joint) variant
def test_guided_from_a_trained_model_starts_out_the_same(bag):
    """A guided network made from a single-energy one computes what it computes, whatever
    the guide, until training teaches it the guide; the denoiser gives it the partner."""
    from napari_xray_denoise.core.singlepass.network import guided_from, is_guided

    single = untrained_singlepass((8, 8, 16))
    rng = np.random.default_rng(0)  # weights that do something (the output starts at zero)
    single.model.set_weights(
        [0.1 * rng.standard_normal(w.shape).astype(np.float32) for w in single.model.get_weights()]
    )
    guided = SinglePassDenoiser(guided_from(single.model), dict(single.metadata))
    with pytest.raises(ValueError, match="guided already"):
        guided_from(guided.model)
    assert guided.guided and not single.guided and is_guided(guided.model)
    rng = np.random.default_rng(1)
    x = rng.uniform(0.2, 0.9, (1, 48, 64, 2)).astype(np.float32)
    x[..., 1] = 0.02
    guide = rng.uniform(0.2, 0.9, (1, 48, 64, 2)).astype(np.float32)
    out_single = single.model(x).numpy()
    out_guided = guided.model(np.concatenate([x, guide], -1)).numpy()
    assert not np.allclose(out_single, x[..., :1], atol=1e-3)  # not the identity
    np.testing.assert_allclose(out_guided, out_single, atol=1e-5)
    np.testing.assert_allclose(guided.denoise(bag.noisy), single.denoise(bag.noisy), atol=0.05)
    assert [r["guide"] for r in guided.last_noise] == ["the other energy"] * 2
    guided.denoise(bag.noisy[0])
    assert guided.last_noise[0]["guide"] == "none"


def test_guided_network_is_given_the_other_energy(bag, monkeypatch):
    """Each energy is denoised with the other as the guide, in its own network domain."""
    den = untrained_singlepass((8, 8, 8), guided=True)
    seen = []
    real = den.predict_u

    def spy(u, sigma, *, guide=None, **kw):
        seen.append((u, sigma, guide))
        return real(u, sigma, guide=guide, **kw)

    monkeypatch.setattr(den, "predict_u", spy)
    den.denoise(bag.noisy)
    (u0, s0, g0), (u1, s1, g1) = seen
    assert g0[0] is u1 and g0[1] == s1 and g1[0] is u0 and g1[1] == s0


def test_guided_pairs_and_a_short_guided_run(tmp_path):
    from napari_xray_denoise.core.singlepass.train import LongRunConfig, train_long_run

    rng = np.random.default_rng(0)
    sampler = PairSampler(
        phantom_transmissions([2], rng), rng, crop=32, settings=SimSettings(), guided=True
    )
    x, t = sampler.batch(64)
    assert x.shape == (64, 32, 32, 4) and t.shape == (64, 32, 32, 1)
    missing = x[:, 0, 0, 3] == 0
    assert 0 < missing.sum() < 32  # some scans have one energy
    present = ~missing
    assert np.all(x[present, :, :, 3] > 0) and np.all(x[missing, :, :, 2] == 0)
    # the guide is the same scene: its detail correlates with the clean target's
    corr = [
        np.corrcoef(np.diff(x[i, :, :, 2], axis=1).ravel(), np.diff(t[i, :, :, 0], axis=1).ravel())[
            0, 1
        ]
        for i in np.flatnonzero(present)
    ]
    assert np.median(np.abs(corr)) > 0.3
    start = tmp_path / "start.keras"
    untrained_singlepass((8, 8, 16)).save(start)
    cfg = LongRunConfig(
        widths=(8, 8, 16),
        crop=32,
        batch=4,
        pool_bags=1,
        refresh_every=1000,
        val_every_minutes=0.05,
        learning_rate=3e-3,
        ema_decay=0.9,
        guided=True,
        init=str(start),
    )
    result = train_long_run(tmp_path / "run", hours=0.004, config=cfg, log=lambda _m: None)
    assert result["steps"] > 5
    trained = load_model(tmp_path / "run" / "model.keras")
    assert trained.guided and trained.metadata["architecture"]["guided"] is True


def test_photo_fraction_mixes_natural_texture_into_the_scenes(monkeypatch):
    from napari_xray_denoise import synth

    calls = {"photo": 0, "procedural": 0}
    photo, procedural = synth.photo_scene, synth.random_scene

    def count(name, f):
        def wrapped(*a, **k):
            calls[name] += 1
            return f(*a, **k)

        return wrapped

    monkeypatch.setattr(synth, "photo_scene", count("photo", photo))
    monkeypatch.setattr(synth, "random_scene", count("procedural", procedural))
    rng = np.random.default_rng(0)
    settings = SimSettings(phantom_fraction=0.0, photo_fraction=0.5)
    x, t = PairSampler([], rng, crop=32, settings=settings, guided=True).batch(40)
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(t))
    assert 8 < calls["photo"] < 32 and calls["photo"] + calls["procedural"] == 40
    calls.update(photo=0, procedural=0)
    PairSampler([], rng, crop=32, settings=SimSettings(phantom_fraction=0.0)).batch(10)
    assert calls == {"photo": 0, "procedural": 10}  # the default: procedural scenes only


_JAX_CHECK = """
import os, sys, json
os.environ["KERAS_BACKEND"] = "jax"
import numpy as np
from napari_xray_denoise.core.model_file import read_model_file_of
from napari_xray_denoise.core.registry import default_model_path
model, _ = read_model_file_of(default_model_path(), "singlepass")
x = np.load(sys.argv[1])
out = np.asarray(model(x, training=False))
np.save(sys.argv[2], out)
print(json.dumps({"tensorflow": "tensorflow" in sys.modules}))
"""


def test_the_network_gives_the_same_output_on_jax(tmp_path):
    """``scripts/gpu_train_default.py`` trains and times the network on Keras's JAX
    backend (a GPU machine without TensorFlow): the shipped model must compute the same
    there, without importing TensorFlow."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed here (only the GPU training script needs it)")
    from napari_xray_denoise.core.singlepass.simdata import validation_set

    x, _ = validation_set(n_bags=1, n_scenes=4, crop=64, guided=True)
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run(
        [sys.executable, "-c", _JAX_CHECK, str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"tensorflow": False}
    model = load_model().model
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model(x).numpy(), atol=2e-5)
