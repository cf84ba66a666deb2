"""Tests for napari_xray_denoise.fidelity (level/ratio bias, classes, line errors, wires)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage

from napari_xray_denoise.colour import classify_materials
from napari_xray_denoise.fidelity import (
    RegionBias,
    class_agreement,
    flat_region_mask,
    level_bias,
    line_error_share,
    ratio_bias,
    wire_contrast,
)

WHITE = 60000.0


def _two_plateaus(shape=(60, 80), left=20000.0, right=40000.0):
    """A clean channel of two flat halves with a sharp step between them."""
    img = np.full(shape, left)
    img[:, shape[1] // 2 :] = right
    return img


def _dual(a_high, ratio):
    """Clean (2, Y, X) counts of a material of high-energy attenuation ``a_high`` and
    dual-energy ratio ``ratio`` (both maps or numbers)."""
    a_high = np.asarray(a_high, dtype=np.float64)
    low = WHITE * np.exp(-a_high * ratio)
    high = WHITE * np.exp(-a_high)
    return np.stack([low, high])


# --------------------------------------------------------------------------- flat regions
def test_flat_mask_keeps_plateaus_and_drops_edges_and_borders():
    clean = _two_plateaus()
    mask = flat_region_mask(clean, erosion=2)
    assert mask[30, 10] and mask[30, 60]
    assert not mask[:, 36:44].any()  # around the step at x = 40
    assert not mask[0].any() and not mask[:, -1].any()  # the border counts as an edge


def test_flat_mask_drops_gradients_textures_and_levels_out_of_range():
    yy, xx = np.mgrid[:60, :80]
    ramp = 30000.0 * (1 + 0.02 * xx)  # 2 % of the level per pixel: not flat
    assert not flat_region_mask(ramp).any()
    texture = 30000.0 * (1 + 0.02 * np.random.default_rng(0).standard_normal((60, 80)))
    assert not flat_region_mask(texture).any()
    clean = _two_plateaus()
    bright_cut = flat_region_mask(clean, max_level=30000.0)
    assert bright_cut[30, 10] and not bright_cut[:, 40:].any()
    assert not flat_region_mask(clean, min_level=30000.0)[:, :40].any()


def test_flat_mask_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        flat_region_mask(np.ones((2, 10, 10)))
    with pytest.raises(ValueError, match="sigma"):
        flat_region_mask(np.ones((10, 10)), sigma=0)


# --------------------------------------------------------------------------- level bias
def test_level_bias_recovers_a_known_bias_per_region():
    clean = _two_plateaus()
    mask = flat_region_mask(clean)
    denoised = clean.copy()
    denoised[:, :40] *= 1.002  # +0.2 % on the dark half, none on the bright one
    result = level_bias(denoised, clean, mask)
    assert result.n_regions == 2
    assert sorted(result.regions) == pytest.approx([0.0, 0.002], abs=1e-12)
    assert result.worst == pytest.approx(0.002)
    assert result.median == pytest.approx(0.001)
    # pooled: the error over all flat pixels relative to their summed level
    dark, bright = mask[:, :40].sum(), mask[:, 40:].sum()
    expected = 0.002 * 20000 * dark / (20000 * dark + 40000 * bright)
    assert result.pooled == pytest.approx(expected)
    assert level_bias(clean, clean, mask).worst == 0.0


def test_level_bias_sees_a_small_bias_under_noise_and_not_without_one():
    rng = np.random.default_rng(5)
    clean = np.full((200, 200), 30000.0)
    mask = flat_region_mask(clean)
    noise = rng.normal(0, 30.0, clean.shape)  # 0.1 % noise: mean error ~ 1e-6 of the level
    biased = level_bias(clean * 1.0005 + noise, clean, mask)
    assert biased.pooled == pytest.approx(5e-4, abs=2e-5)
    assert abs(level_bias(clean + noise, clean, mask).pooled) < 2e-5


def test_level_bias_counts_small_regions_only_in_the_pooled_value():
    clean = np.full((40, 40), 10000.0)
    mask = np.zeros(clean.shape, bool)
    mask[2:22, 2:22] = True  # 400 px
    mask[30:35, 30:35] = True  # 25 px, below min_pixels
    denoised = clean + np.where(np.arange(40)[None, :] >= 30, 100.0, 0.0)  # +1 % on the small one
    result = level_bias(denoised, clean, mask, min_pixels=100)
    assert result.n_regions == 1 and result.worst == 0.0
    assert result.n_pixels == 425 and result.pooled == pytest.approx(25 * 0.01 / 425)
    empty = level_bias(denoised, clean, np.zeros_like(mask))
    assert empty.n_regions == 0 and np.isnan(empty.median) and np.isnan(empty.pooled)


def test_level_bias_on_a_stack_and_merge():
    clean = np.stack([_two_plateaus(), _two_plateaus(left=10000.0, right=30000.0)])
    mask = flat_region_mask(clean[0])
    low, high = level_bias(clean * np.array([1.001, 0.999])[:, None, None], clean, mask)
    assert low.pooled == pytest.approx(0.001) and high.pooled == pytest.approx(-0.001)
    merged = RegionBias.merge([low, high])
    assert merged.n_regions == 4 and merged.n_pixels == low.n_pixels + high.n_pixels
    assert merged.worst == pytest.approx(0.001) or merged.worst == pytest.approx(-0.001)
    assert set(low.to_dict()) == {"pooled", "median", "worst", "n_regions", "n_pixels", "excluded"}
    per_channel_masks = np.stack([mask, np.zeros_like(mask)])
    assert level_bias(clean, clean, per_channel_masks)[1].n_pixels == 0


def test_level_bias_rejects_mismatched_shapes():
    clean = _two_plateaus()
    with pytest.raises(ValueError, match="same size"):
        level_bias(clean[:, :-1], clean, np.ones(clean.shape, bool))
    with pytest.raises(ValueError, match="mask"):
        level_bias(clean, clean, np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="boolean"):
        level_bias(clean, clean, np.ones(clean.shape))


# --------------------------------------------------------------------------- ratio and classes
@pytest.mark.parametrize("statistic", ["region", "pixel"])
def test_ratio_bias_recovers_a_shifted_ratio(statistic):
    a_high = np.full((60, 80), 0.5)
    a_high[:, 40:] = 1.0
    clean = _dual(a_high, 1.4)
    shifted = _dual(a_high, 1.4 * 1.01)  # R 1 % higher everywhere
    mask = flat_region_mask(clean[0]) & flat_region_mask(clean[1])
    result = ratio_bias(shifted, clean, mask, white_level=WHITE, statistic=statistic)
    assert result.n_regions == 2
    assert result.pooled == pytest.approx(0.01, rel=1e-4)
    assert result.worst == pytest.approx(0.01, rel=1e-4)
    same = ratio_bias(clean, clean, mask, white_level=WHITE, statistic=statistic)
    assert abs(same.pooled) < 1e-6 and same.excluded == 0
    # a pair as two images works as the stack does
    pair = ratio_bias((shifted[0], shifted[1]), clean, mask, white_level=WHITE, statistic=statistic)
    assert pair.pooled == pytest.approx(result.pooled)


def test_ratio_bias_of_regions_is_robust_to_noise_and_per_pixel_is_not():
    a_high = np.full((100, 100), 0.1)  # thin material: R divides by a small attenuation
    clean = _dual(a_high, 1.4)
    noisy = clean * (1 + 0.02 * np.random.default_rng(3).standard_normal(clean.shape))
    mask = np.ones(a_high.shape, bool)
    region = ratio_bias(noisy, clean, mask, white_level=WHITE)
    pixel = ratio_bias(noisy, clean, mask, white_level=WHITE, statistic="pixel")
    assert abs(region.pooled) < 0.005
    assert pixel.pooled > 0.02  # the mean of a noisy ratio is biased upwards
    with pytest.raises(ValueError, match="statistic"):
        ratio_bias(noisy, clean, mask, statistic="mean")


def test_ratio_bias_skips_air_and_counts_undefined_pixels():
    a_high = np.zeros((60, 80))
    a_high[:, 40:] = 0.5  # air on the left: R undefined in the clean scan
    clean = _dual(a_high, 1.4)
    mask = np.ones(a_high.shape, bool)
    assert ratio_bias(clean, clean, mask, white_level=WHITE).n_pixels == 60 * 40
    washed = clean.copy()
    washed[:, :5, 40:] = WHITE  # a denoiser that turned 5 rows of the object into air
    result = ratio_bias(washed, clean, mask, white_level=WHITE, statistic="pixel")
    assert result.excluded == 5 * 40 and result.n_pixels == 55 * 40
    # the region ratio keeps those pixels: their attenuation is 0 in both channels
    assert ratio_bias(washed, clean, mask, white_level=WHITE).n_pixels == 60 * 40


def test_ratio_bias_and_classes_reject_bad_pairs():
    clean = _dual(np.full((20, 30), 0.5), 1.4)
    mask = np.ones((20, 30), bool)
    with pytest.raises(ValueError, match=r"\(2, Y, X\)"):
        ratio_bias(clean[0], clean[0], mask)
    with pytest.raises(ValueError, match="same size"):
        ratio_bias(clean[:, :, :-1], clean, mask)
    with pytest.raises(ValueError, match="same size"):
        class_agreement(clean, clean[:, :-1])
    with pytest.raises(ValueError, match="low has shape"):
        class_agreement((clean[0], clean[1, :-1]), clean)


def test_class_agreement_is_one_for_clean_and_lower_for_a_shifted_ratio():
    a_high = np.zeros((60, 80))
    a_high[10:50, 10:70] = 0.5  # an organic block (R 1.4 < 1.62 at A = 0.5) in air
    clean = _dual(a_high, 1.4)
    agree = class_agreement(clean, clean, white_level=WHITE)
    assert agree["all"] == 1.0 and agree["non_background"] == 1.0
    assert agree["per_class"]["organic"] == 1.0 and agree["per_class"]["metal"] is None
    shifted = _dual(a_high, 1.4 * 1.3)  # R 1.82: inorganic
    assert (
        classify_materials(shifted, white_level=WHITE)[30, 40]
        != (classify_materials(clean, white_level=WHITE)[30, 40])
    )
    moved = class_agreement(shifted, clean, white_level=WHITE)
    assert moved["non_background"] == 0.0
    block = 40 * 60 / (60 * 80)
    assert moved["all"] == pytest.approx(1 - block)
    assert moved["per_class"]["background"] == 1.0


# --------------------------------------------------------------------------- line errors
def test_line_error_share_separates_columns_and_rows():
    rng = np.random.default_rng(2)
    clean = np.full((50, 70), 20000.0)
    streaks = rng.normal(0, 20, 70)
    columns = clean + (streaks - streaks.mean())[None, :]  # zero-mean column error: share 1
    col, row = line_error_share(columns, clean)
    assert col == pytest.approx(1.0) and row == pytest.approx(0.0, abs=1e-12)
    bands = rng.normal(0, 20, 50)
    rows = clean + (bands - bands.mean())[:, None]
    col, row = line_error_share(rows, clean)
    assert col == pytest.approx(0.0, abs=1e-12) and row == pytest.approx(1.0)
    white = clean + rng.normal(0, 20, clean.shape)
    col, row = line_error_share(white, clean)
    assert col < 0.05 and row < 0.05  # about 1/50 and 1/70
    assert line_error_share(clean, clean) == (0.0, 0.0)
    # a constant offset is not a line error
    assert line_error_share(clean + 5.0, clean) == pytest.approx((0.0, 0.0), abs=1e-12)


def test_line_error_share_rejects_bad_input():
    with pytest.raises(ValueError, match="same size"):
        line_error_share(np.zeros((5, 6)), np.zeros((6, 5)))
    with pytest.raises(ValueError, match="2-D"):
        line_error_share(np.zeros((2, 5, 6)), np.zeros((2, 5, 6)))


# --------------------------------------------------------------------------- wires
def _wire_scene(width: int):
    clean = np.full((64, 64), 40000.0)
    wire = np.zeros(clean.shape, bool)
    wire[4:-4, 30 : 30 + width] = True
    clean[wire] *= np.exp(-0.5)
    near = ndimage.binary_dilation(wire, iterations=6)
    background = near & ~ndimage.binary_dilation(wire, iterations=3)
    return clean, wire, background


def test_wire_contrast_identity_keeps_it_and_blur_loses_it():
    clean, wire, background = _wire_scene(1)
    assert wire_contrast(clean, clean, wire, background) == pytest.approx(1.0)
    blurred = ndimage.gaussian_filter(clean, 1.0)
    kept = wire_contrast(blurred, clean, wire, background)
    assert kept < 0.95
    clean2, wire2, background2 = _wire_scene(2)
    kept2 = wire_contrast(ndimage.gaussian_filter(clean2, 1.0), clean2, wire2, background2)
    assert kept < kept2 < 1.0  # a 2-px wire survives the same blur better
    # a uniform level shift does not change the contrast; a gain of 2 doubles it
    assert wire_contrast(clean + 500.0, clean, wire, background) == pytest.approx(1.0)
    assert wire_contrast(clean * 2.0, clean, wire, background) == pytest.approx(2.0)


def test_wire_contrast_rejects_bad_masks():
    clean, wire, background = _wire_scene(1)
    with pytest.raises(ValueError, match="overlap"):
        wire_contrast(clean, clean, wire, background | wire)
    with pytest.raises(ValueError, match="at least one"):
        wire_contrast(clean, clean, np.zeros_like(wire), background)
    with pytest.raises(ValueError, match="no contrast"):
        wire_contrast(np.ones((64, 64)), np.ones((64, 64)), wire, background)
    with pytest.raises(ValueError, match="same size"):
        wire_contrast(clean[:-1], clean, wire, background)
    with pytest.raises(ValueError, match="wire_mask"):
        wire_contrast(clean, clean, wire[:-1], background)


def test_fidelity_imports_neither_tensorflow_nor_napari():
    code = (
        "import sys, napari_xray_denoise.fidelity; "
        "bad = [m for m in ('tensorflow', 'keras', 'napari', 'qtpy') if m in sys.modules]; "
        "print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
