"""Column flat-field (``flatfield``)."""

import numpy as np
import pytest

from napari_xray_denoise.flatfield import FlatField, estimate_column_gain
from napari_xray_denoise.phantom import make_bag


def test_gains_from_air_follow_the_detector_streaks():
    bag = make_bag((480, 640), dose=8000.0, seed=31, gain_streak_std=0.02)
    for c in range(2):
        truth = bag.streak_gain[c] / np.median(bag.streak_gain[c])
        gain = estimate_column_gain(bag.noisy[c])
        assert np.corrcoef(gain, truth)[0, 1] > 0.6
        assert np.std(gain - truth) < 0.8 * np.std(truth)  # no correction: 1.0 * std


def test_noisy_air_is_shrunk_not_trusted():
    """At very low dose the column estimates are mostly noise: shrinkage keeps the
    correction smaller than the true streaks instead of adding noise."""
    bag = make_bag((160, 320), dose=60.0, seed=32, gain_streak_std=0.0)
    gain = estimate_column_gain(bag.noisy[1])
    assert np.std(gain) < 0.01


def test_no_air_gives_identity():
    rng = np.random.default_rng(0)
    gain = estimate_column_gain(
        rng.uniform(0, 1, (64, 64)) * 0 + 1000.0 + rng.normal(0, 1, (64, 64)) * 0
    )
    assert np.all(gain == 1.0)


def test_frames_apply_and_undo():
    width = 50
    rng = np.random.default_rng(1)
    gain = 1 + 0.02 * rng.standard_normal(width)
    dark = np.full((10, width), 100.0)
    flat = dark + 5000.0 * gain
    ff = FlatField.from_frames(width, dark=dark, flat=flat)
    np.testing.assert_allclose(ff.gain, gain / np.median(gain))
    scan = rng.uniform(200, 6000, (30, width))
    np.testing.assert_allclose(ff.undo(ff.apply(scan)), scan)
    assert ff.describe()["source"] == "dark and flat frames"


def test_bad_frames_say_what_is_wrong():
    with pytest.raises(ValueError, match="must have 50 columns"):
        FlatField.from_frames(50, flat=np.ones((4, 49)))
    with pytest.raises(ValueError, match="brighter than the dark"):
        FlatField.from_frames(3, dark=np.array([10.0, 10, 10]), flat=np.array([20.0, 5, 30]))
    with pytest.raises(ValueError, match="NaN"):
        FlatField.from_frames(2, flat=np.array([1.0, np.nan]))
