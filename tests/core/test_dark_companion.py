"""The default model's companion for photon-starved scans: attached by ``load_model()``,
chosen per scan by the share of pixels under ``DARK_QUANTA`` quanta."""

import numpy as np
import pytest

from napari_xray_denoise import noise, synth
from napari_xray_denoise.core import load_model
from napari_xray_denoise.core.registry import default_dark_model_path
from napari_xray_denoise.core.singlepass.denoiser import (
    DARK_QUANTA,
    SinglePassDenoiser,
    photon_starved_share,
)


@pytest.fixture(scope="module")
def default():
    return load_model()


def _scan(transmission, dose, seed):
    rng = np.random.default_rng(seed)
    return np.stack(
        [
            synth.scan_detector(t, rng, dose=d, gain=3.0, read_noise=6.0, offset=60.0).noisy
            for t, d in ((transmission, dose), (np.power(transmission, 0.55), 0.28 * dose))
        ]
    )


def test_the_shipped_default_has_its_dark_companion(default):
    assert default_dark_model_path().exists()
    assert isinstance(default.dark, SinglePassDenoiser) and default.dark.dark is None
    assert "photon-starved" in default.dark.metadata["role"]
    assert load_model(default_dark_model_path()).dark is None  # a named file: just itself


def test_photon_starved_share_counts_quanta_by_the_law():
    law = noise.calibrated_noise(gain=4.0, offset=100.0)  # b = -400: offset 100
    counts = 100.0 + 4.0 * np.array([10.0, 40.0, 49.0, 50.0, 200.0, 1000.0])
    assert photon_starved_share(counts, law) == pytest.approx(3 / 6)
    assert DARK_QUANTA == 50.0


def test_a_dark_scan_goes_to_the_companion_a_bright_one_does_not(default):
    rng = np.random.default_rng(4)
    dark = _scan(synth.dense_electronics((160, 192), rng), 600.0, 1)
    bright = _scan(synth.random_scene((160, 192), rng), 20000.0, 2)
    default.denoise(dark, self_ensemble=1)
    assert all("dark" in r["network"] for r in default.last_noise)
    assert default.last_noise[0]["photon_starved_share"] >= default.dark_share
    default.denoise(bright, self_ensemble=1)
    assert all(r["network"] == "default" for r in default.last_noise)
    # fine-tuning on dark scans starts from the network that denoises them
    assert default.for_scans([dark]) is default.dark
    assert default.for_scans([dark, bright]) is default
