"""The noise fit on photon-starved scans from detectors with an offset (issue 24): a
dark scan's top is no guide to how large the detector's offset may be."""

import numpy as np
import pytest

from napari_xray_denoise import noise, synth


@pytest.mark.parametrize(
    "gain, read, offset, dose, seed",
    [
        (3.0, 6.0, 60.0, 300.0, 1),
        (8.0, 25.0, 200.0, 2000.0, 3),
        (8.0, 25.0, 200.0, 500.0, 4),
        (0.7, 2.0, 1000.0, 20000.0, 5),
        (15.0, 80.0, 100.0, 3000.0, 4),
        pytest.param(
            8.0,
            25.0,
            200.0,
            2000.0,
            2,
            marks=pytest.mark.xfail(
                reason="a known limit: on this structure-dense scene the level sets hold "
                "structure the smoothness test lets through, and the gain comes out 1.24x "
                "(1.9x at gain 0.7) too large (2026-12-03)",
                strict=False,
            ),
        ),
    ],
)
def test_fit_on_dark_offset_scans(gain, read, offset, dose, seed):
    rng = np.random.default_rng(seed)
    t = synth.dense_electronics((320, 480), rng)
    s = synth.scan_detector(t, rng, dose=dose, gain=gain, read_noise=read, offset=offset)
    fit = noise.fit_noise_levels(s.noisy)
    assert fit.model.a == pytest.approx(gain, rel=0.2), fit.note
    # the variance the law gives at the scan's median level, within 20% of the truth
    level = float(np.median(s.clean))
    assert fit.model.variance(level) == pytest.approx(s.a * level + s.b, rel=0.2)
