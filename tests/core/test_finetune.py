"""Self-supervised fine-tuning of the single-pass model (``core.finetune``)."""

import numpy as np
import pytest

from napari_xray_denoise.core.finetune import BLENDS, FinetuneConfig, finetune_singlepass, gain_z
from napari_xray_denoise.core.singlepass_denoiser import untrained_singlepass
from napari_xray_denoise.phantom import make_bag


@pytest.fixture(scope="module")
def scans():
    return [make_bag((192, 160), dose=800.0, seed=s).noisy for s in (61, 62)]


def test_finetuning_learns_from_noisy_scans_alone(scans):
    start = untrained_singlepass((8, 8, 8))  # the identity: any learning shows
    result = finetune_singlepass(
        start,
        scans,
        FinetuneConfig(
            minutes=5,
            steps=120,
            crop_size=32,
            batch_size=4,
            learning_rate=3e-3,
            val_every=40,
            val_crops=16,
        ),
    )
    assert result.steps == 120 and not result.kept_start
    assert result.val_loss_best < result.val_loss_start
    assert result.denoiser is not start and result.denoiser.metadata["finetune"]["steps"] == 120
    # channel by channel, on the same held-back crops: none is worse than with the start
    losses = result.channel_losses
    assert len(losses["start"]) == len(losses["tuned"]) == 4  # 2 scans x 2 energies
    assert all(t <= s * (1 + 1e-4) for s, t in zip(losses["start"], losses["tuned"], strict=True))
    meta = result.denoiser.metadata["finetune"]
    assert meta["blend"] in BLENDS and set(result.blends_tried) == set(BLENDS)
    # the blend kept is the qualifying one with the lowest held-back loss, and significant
    assert result.val_loss_best == pytest.approx(result.blends_tried[meta["blend"]])
    assert meta["gain_z"] > 2.0
    out = result.denoiser.denoise(scans[0])
    assert out.shape == scans[0].shape and np.all(np.isfinite(out))


def test_no_gain_keeps_the_starting_model(scans):
    start = untrained_singlepass((8, 8, 8))
    result = finetune_singlepass(
        start,
        scans,
        FinetuneConfig(
            steps=20, crop_size=32, batch_size=4, learning_rate=0.0, val_every=10, val_crops=8
        ),
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
    from napari_xray_denoise.core.finetune import _crop, _prepare

    channels = _prepare(scans, 32, 0.15)
    assert [c.partner for c in channels] == [1, 0, 3, 2]
    rng = np.random.default_rng(0)
    own, (guide, sigma_g) = _crop(channels, 0, rng, 32, False, True)
    assert own.shape == guide.shape == (32, 32) and sigma_g == channels[1].sigma
    rng = np.random.default_rng(0)  # the same draw: the partner's crop sits where own's does
    again, _ = _crop(channels[1:2] + channels[1:2], 0, rng, 32, False, False)
    np.testing.assert_array_equal(again, guide)
    start = untrained_singlepass((8, 8, 8), guided=True)
    result = finetune_singlepass(
        start,
        scans,
        FinetuneConfig(
            minutes=5, steps=80, crop_size=32, batch_size=4, learning_rate=3e-3, val_every=40
        ),
    )
    assert not result.kept_start and result.denoiser.guided


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


def test_an_insignificant_gain_keeps_the_starting_model(scans):
    """The same run as above would be kept; asked for more evidence than it can give,
    the start comes back, with what was tried on record."""
    start = untrained_singlepass((8, 8, 8))
    result = finetune_singlepass(
        start,
        scans,
        FinetuneConfig(
            steps=40,
            crop_size=32,
            batch_size=4,
            learning_rate=3e-3,
            val_every=20,
            val_crops=16,
            significance=1e9,
        ),
    )
    assert result.kept_start and result.denoiser is start
    assert result.gain_z is not None and 0 < result.gain_z < 1e9
    assert set(result.blends_tried) == set(BLENDS)
