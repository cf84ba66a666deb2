"""Self-supervised fine-tuning of the single-pass model (``core.singlepass.finetune``)."""

import numpy as np
import pytest

from napari_xray_denoise.core.singlepass.denoiser import untrained_singlepass
from napari_xray_denoise.core.singlepass.finetune import (
    BLENDS,
    FinetuneConfig,
    finetune_singlepass,
    gain_z,
    mc_sure,
)
from napari_xray_denoise.phantom import make_bag


def small(**kw) -> FinetuneConfig:
    """A fine-tuning run sized for tests: 32-pixel crops, batches of 4, a fast rate."""
    return FinetuneConfig(
        **{"minutes": 5, "crop_size": 32, "batch_size": 4, "learning_rate": 3e-3, **kw}
    )


@pytest.fixture(scope="module")
def scans():
    return [make_bag((192, 160), dose=800.0, seed=s).noisy for s in (61, 62)]


def test_finetuning_learns_from_noisy_scans_alone(scans):
    start = untrained_singlepass((8, 8, 8))  # the identity: any learning shows
    result = finetune_singlepass(
        start,
        scans,
        small(steps=120, val_every=40, val_crops=16),
    )
    assert result.steps == 120 and not result.kept_start
    assert result.val_loss_best < result.val_loss_start
    assert result.denoiser is not start and result.denoiser.metadata["finetune"]["steps"] == 120
    # channel by channel, SURE on the raw scan: none is worse than with the start, over
    # its held-back pixels or over whole crops
    losses = result.channel_losses
    for where in ("held", "all"):
        start_err, tuned_err = losses[f"start_{where}"], losses[f"tuned_{where}"]
        assert len(start_err) == len(tuned_err) == 4  # 2 scans x 2 energies
        assert all(t <= s for s, t in zip(start_err, tuned_err, strict=True))
    assert set(result.blends_sure_db) == set(BLENDS)
    assert all(len(v["held"]) == len(v["all"]) == 4 for v in result.blends_sure_db.values())
    assert len(result.channel_gain_z) == 4
    assert set(result.blends_channel_gain_z) == set(BLENDS)
    assert all(len(z) == 4 for z in result.blends_channel_gain_z.values())
    assert len(result.tuned_weights) == len(start.model.get_weights())
    meta = result.denoiser.metadata["finetune"]
    assert meta["blend"] in BLENDS and set(result.blends_tried) == set(BLENDS)
    # the blend kept is the qualifying one with the lowest held-back loss, and significant
    assert result.val_loss_best == pytest.approx(result.blends_tried[meta["blend"]])
    assert meta["gain_z"] > 2.0 and meta["gain_db_estimated"] >= 0.1
    assert meta["gain_db_estimated"] == pytest.approx(result.gain_db, abs=1e-3)
    # ... and it passed the count-domain check, whose median gain is the one asked for
    checked = result.blends_count_check[meta["blend"]]
    assert checked["passed"] and len(checked["channels"]) == 4
    assert all(c["change"] + 2.0 * c["stderr"] < 0 for c in checked["channels"])
    assert result.gain_db == pytest.approx(checked["median_gain_db"])
    assert meta["count_gain_db_estimated"] == pytest.approx(result.gain_db, abs=1e-3)
    out = result.denoiser.denoise(scans[0])
    assert out.shape == scans[0].shape and np.all(np.isfinite(out))


def test_no_gain_keeps_the_starting_model(scans):
    start = untrained_singlepass((8, 8, 8))
    result = finetune_singlepass(
        start,
        scans,
        small(steps=20, learning_rate=0.0, val_every=10, val_crops=8),
    )
    assert result.kept_start and result.denoiser is start


def test_scans_too_small_are_refused():
    with pytest.raises(ValueError, match="at least 64x32"):
        finetune_singlepass(
            untrained_singlepass(), [np.ones((40, 40), np.uint16)], FinetuneConfig(crop_size=32)
        )


def test_widget_defaults_are_the_configs_own():
    from dataclasses import fields

    from napari_xray_denoise import options

    defaults = {f.name: f.default for f in fields(FinetuneConfig)}
    assert {k: defaults[k] for k in options.FINETUNE_DEFAULTS} == options.FINETUNE_DEFAULTS


def test_a_guided_model_finetunes_with_the_other_energy_as_guide(scans):
    """Dual-energy scans: each energy's crops come with the same crop of the other one."""
    from napari_xray_denoise.core.singlepass.finetune import _crop, _prepare

    channels = _prepare(scans, 32, 0.15)
    assert [c.partner for c in channels] == [1, 0, 3, 2]
    rng = np.random.default_rng(0)
    own, _, (guide, sigma_g) = _crop(channels, 0, rng, 32, None, True)
    assert own.shape == guide.shape == (32, 32) and sigma_g == channels[1].sigma
    rng = np.random.default_rng(0)  # the same draw: the partner's crop sits where own's does
    again, _, _ = _crop(channels[1:2] + channels[1:2], 0, rng, 32, None, False)
    np.testing.assert_array_equal(again, guide)
    start = untrained_singlepass((8, 8, 8), guided=True)
    result = finetune_singlepass(  # as many steps as the unguided run: every channel's
        start,  # count-domain bound must fall below zero (80 steps did, not every time)
        scans,
        small(steps=120, val_every=40),
    )
    assert not result.kept_start and result.denoiser.guided


def test_held_back_blocks_are_scattered_over_the_whole_scan():
    from napari_xray_denoise.core.singlepass.finetune import held_back_blocks

    held, windows = held_back_blocks((640, 1000), 128, 32, 0.15, np.random.default_rng(1))
    grid = (640 // 32) * (1000 // 32)
    assert held.sum() == round(0.15 * grid) * 32 * 32
    rows, cols = np.nonzero(held)
    # not a band: held pixels in every quarter of the rows and of the columns
    assert set(rows // 160) == {0, 1, 2, 3} and set(cols // 250) == {0, 1, 2, 3}
    assert len(windows) == round(0.15 * grid)
    for y0, x0 in windows:  # each validation window lies inside and holds a whole block
        assert 0 <= y0 <= 640 - 128 and 0 <= x0 <= 1000 - 128
        assert held[y0 : y0 + 128, x0 : x0 + 128].sum() >= 32 * 32
    again, _ = held_back_blocks((640, 1000), 128, 32, 0.15, np.random.default_rng(1))
    np.testing.assert_array_equal(held, again)


def test_the_training_loss_never_scores_held_back_pixels(scans):
    """Training crops fall anywhere but their mask is 0 exactly on held-back pixels;
    validation crops score held-back pixels only. (The channel's image is replaced by its
    own held-back mask, so each crop shows which pixels it came from, after any turn.)"""
    from napari_xray_denoise.core.singlepass.finetune import _crop, _prepare

    channels = _prepare(scans, 32, 0.15, 16)
    for ch in channels:
        ch.u = ch.held.astype(np.float32)
    rng = np.random.default_rng(2)
    seen = 0.0
    for _ in range(200):
        u, mask, _ = _crop(channels, int(rng.integers(4)), rng, 32, None, False)
        np.testing.assert_array_equal(mask, 1.0 - u)
        seen += u.sum()
    assert seen > 0  # training crops do see held-back pixels as input
    for j in range(12):
        u, mask, _ = _crop(channels, j % 4, rng, 32, j, False)
        np.testing.assert_array_equal(mask, u)
        assert mask.sum() >= 16 * 16


def test_gain_z_is_a_paired_test():
    rng = np.random.default_rng(3)
    start = rng.uniform(1.0, 3.0, 200)  # crops differ a lot from one another ...
    same = start + rng.normal(0, 1e-3, 200)  # ... a tuned model no better than the start
    assert abs(gain_z(start, same)) < 4.0
    better = start - 0.01 + rng.normal(0, 1e-3, 200)  # 0.5% better on every crop
    assert gain_z(start, better) > 20.0
    assert gain_z(start, start + 0.01) < 0  # worse everywhere
    assert gain_z(start[:1], better[:1]) == 0.0  # one crop: no spread, no evidence
    assert gain_z(np.full(5, 2.0), np.full(5, 1.5)) == float("inf")  # no spread at all


@pytest.mark.parametrize("demand", [{"significance": 1e9}, {"min_gain_db": 100.0}])
def test_an_insignificant_gain_keeps_the_starting_model(scans, demand):
    """The same run as above would be kept; asked for more evidence (or more gain) than
    it can give, the start comes back, with what was tried on record."""
    start = untrained_singlepass((8, 8, 8))
    result = finetune_singlepass(
        start,
        scans,
        small(steps=120, val_every=40, val_crops=16, **demand),
    )
    assert result.kept_start and result.denoiser is start
    assert result.gain_z is not None and 0 < result.gain_z < 1e9
    assert 0 < result.gain_db < 100
    assert set(result.blends_tried) == set(BLENDS)


def test_the_simulated_half_keeps_the_scene_mix_the_model_was_trained_on():
    from napari_xray_denoise.core.singlepass.finetune import _photo_fraction

    start = untrained_singlepass((8, 8, 8))
    assert _photo_fraction(start, FinetuneConfig()) == 0.0  # trained without photo scenes
    start.metadata["training"] = {"config": {"photo_fraction": 0.5}}
    assert _photo_fraction(start, FinetuneConfig()) == 0.5
    assert _photo_fraction(start, FinetuneConfig(photo_fraction=0.2)) == 0.2
    start.metadata["training"] = {"config": {"photo_fraction": "lots"}}  # a foreign file
    assert _photo_fraction(start, FinetuneConfig()) == 0.0


def test_mc_sure_estimates_the_error_against_the_clean_image_from_the_noisy_one():
    """SURE needs no clean image: for a smoothing filter, the identity and a bad filter
    its mean is the true mean squared error within a few percent."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    clean = ndimage.gaussian_filter(rng.uniform(0.2, 0.8, (256, 256)), 3.0)
    sigma = 0.05
    noisy = clean + sigma * rng.standard_normal(clean.shape)
    probe = rng.standard_normal(clean.shape)
    eps = 0.1 * sigma
    filters = {
        "smooth": lambda y: ndimage.gaussian_filter(y, 1.5),
        "identity": lambda y: y,
        "too smooth": lambda y: ndimage.uniform_filter(y, 15),
    }
    for name, f in filters.items():
        sure = mc_sure(f(noisy), f(noisy + eps * probe), noisy, sigma, probe, eps).mean()
        true = np.mean((f(noisy) - clean) ** 2)
        assert sure == pytest.approx(true, rel=0.05), name
    # it orders them as the truth does
    errs = {
        n: mc_sure(f(noisy), f(noisy + eps * probe), noisy, sigma, probe, eps).mean()
        for n, f in filters.items()
    }
    assert errs["smooth"] < errs["identity"]


def test_the_count_check_blocks_a_channel_that_may_be_worse():
    """``_count_verdict``: every channel's upper bound of its error change (counts^2)
    must be below zero; one channel whose bound is a loss blocks the blend, whatever the
    others gain."""
    from napari_xray_denoise.core.singlepass.finetune import FinetuneConfig, _count_verdict
    from napari_xray_denoise.pgure import RiskChange

    config = FinetuneConfig(count_check_z=2.0)
    better = RiskChange(mse_reference=10.0, change=-1.0, stderr=0.2, pixels=1000)
    unsure = RiskChange(mse_reference=10.0, change=-0.2, stderr=0.2, pixels=1000)
    ok, median, records = _count_verdict([better, better], config)
    assert ok and median == pytest.approx(10 * np.log10(10 / 9))
    ok, _, records = _count_verdict([better, unsure], config)
    assert not ok and records[1]["upper_loss_db"] > 0
    # an error estimate that is not positive (bright air: far noisier than the change)
    # gives no dB figure but the change still decides
    noisy_level = RiskChange(mse_reference=-5.0, change=-1.0, stderr=0.2, pixels=1000)
    ok, median, records = _count_verdict([better, noisy_level], config)
    assert ok and np.isnan(records[1]["gain_db"])


def test_the_count_check_scores_the_error_in_counts(scans):
    """``_CountCheck`` on a scan: the start against itself changes nothing; against a
    network that outputs its input (no denoising) it finds the error much larger."""
    from napari_xray_denoise.core.singlepass.finetune import FinetuneConfig, _CountCheck, _prepare

    start = untrained_singlepass((8, 8, 8))  # starts as the identity (zero output layer)
    config = FinetuneConfig(crop_size=32)
    channels = _prepare(scans[:1], 32, 0.15, 16)
    check = _CountCheck(channels, config, start.guided, np.random.default_rng(0))
    terms = check.terms(start.model)
    same = check.changes(terms, check.terms(start.model))
    assert all(abs(c.change) < 1e-6 * max(abs(c.mse_reference), 1.0) for c in same)
    # the identity's estimated error is the noise variance of the scan, in counts^2
    for ch, c in zip(channels, same, strict=True):
        law = ch.law
        expected = float(np.mean(law.a * ch.counts[ch.held] + law.b))
        assert c.mse_reference == pytest.approx(expected, rel=0.15)
