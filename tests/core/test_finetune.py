"""Self-supervised fine-tuning of the single-pass model (``core.finetune``)."""

import numpy as np
import pytest

from napari_xray_denoise.core.finetune import FinetuneConfig, finetune_singlepass
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
