"""Tests for napari_xray_denoise.fusion (dual-energy fusion, pseudo-colour, materials)."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import pywt
from scipy import ndimage

from napari_xray_denoise.fusion import (
    MATERIAL_BACKGROUND,
    MATERIAL_COLOURS_RGB01,
    MATERIAL_IMPENETRABLE,
    MATERIAL_INORGANIC,
    MATERIAL_METAL,
    MATERIAL_ORGANIC,
    SOURCE_APPROX_KERNEL,
    classify_materials,
    estimate_white_level,
    hot_colormap,
    hsv_pseudocolour,
    hsv_to_rgb,
    material_colour,
    material_ratio,
    spatial_fuse,
    wavelet_fuse,
)

WHITE = 65535.0


@pytest.fixture
def smooth_pair():
    """A smooth 16-bit-range pair (2, 96, 128) with objects: float counts."""
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float64)
    low = 60000.0 * np.exp(-0.8 * np.exp(-((yy - 40) ** 2 + (xx - 60) ** 2) / 300.0)) - 80 * yy
    high = 0.5 * (low + 60000.0) + 30 * xx
    return np.stack([low, high])


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("fuse", [wavelet_fuse, spatial_fuse, classify_materials, material_ratio])
def test_shape_mismatch_names_both_shapes(fuse):
    with pytest.raises(ValueError, match=r"\(32, 32\).*\(32, 33\)"):
        fuse(np.ones((32, 32)), np.ones((32, 33)))


@pytest.mark.parametrize("which", ["low", "high"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_names_the_input(which, bad):
    low, high = np.full((32, 32), 1000.0), np.full((32, 32), 900.0)
    (low if which == "low" else high)[3, 4] = bad
    with pytest.raises(ValueError, match=rf"^{which}.*NaN or infinite.*nan_to_num"):
        wavelet_fuse(low, high, level=1)
    with pytest.raises(ValueError, match=rf"^{which}"):
        spatial_fuse(low, high)


@pytest.mark.parametrize("single", [np.ones((32, 32)), np.ones((1, 32, 32))])
def test_single_energy_input_is_refused(single):
    for fuse in (wavelet_fuse, spatial_fuse, material_colour):
        with pytest.raises(ValueError, match="only one energy image"):
            fuse(single)


def test_wrong_stack_and_dimension_errors():
    with pytest.raises(ValueError, match=r"\(3, 16, 16\)"):
        spatial_fuse(np.ones((3, 16, 16)))
    with pytest.raises(ValueError, match="two 2-D images or a single"):
        spatial_fuse(np.ones((2, 16, 16)), np.ones((16, 16)))
    with pytest.raises(ValueError, match="dtype bool"):
        spatial_fuse(np.ones((16, 16), bool), np.ones((16, 16), bool))
    with pytest.raises(ValueError, match="2-D image"):
        hot_colormap(np.ones((2, 16, 16)))


def test_stack_and_pair_give_the_same_result(dual_u16):
    np.testing.assert_array_equal(
        wavelet_fuse(dual_u16, level=2), wavelet_fuse(dual_u16[0], dual_u16[1], level=2)
    )
    np.testing.assert_array_equal(spatial_fuse(dual_u16), spatial_fuse(*dual_u16))


# --------------------------------------------------------------------------- wavelet fusion


@pytest.mark.parametrize("shape", [(101, 203), (37, 53), (64, 65), (128, 96)])
@pytest.mark.parametrize("wavelet", ["db4", "haar", "sym5", "bior2.2"])
def test_wavelet_fuse_keeps_exact_shape_up_to_max_level(shape, wavelet, rng):
    low = rng.uniform(0, WHITE, shape)
    high = rng.uniform(0, WHITE, shape)
    max_level = pywt.dwtn_max_level(shape, wavelet)
    for level in range(1, max_level + 1):
        out = wavelet_fuse(low, high, wavelet=wavelet, level=level)
        assert out.shape == shape
        assert out.dtype == np.float32
    assert wavelet_fuse(low, high, wavelet=wavelet, level=None).shape == shape


def test_wavelet_level_above_maximum_is_a_clear_error():
    image = np.ones((101, 203))
    max_level = pywt.dwtn_max_level(image.shape, "db4")
    with pytest.raises(ValueError, match=rf"1 <= level <= {max_level}.*dwtn_max_level"):
        wavelet_fuse(image, image, level=max_level + 1)
    with pytest.raises(ValueError, match="level"):
        wavelet_fuse(image, image, level=0)
    with pytest.raises(ValueError, match="too small"):
        wavelet_fuse(np.ones((4, 4)), np.ones((4, 4)))


@pytest.mark.parametrize(
    "kwargs",
    [{"wavelet": "morl"}, {"wavelet": "nope"}, {"approx": "max"}, {"detail": "min"},
     {"mode": "wrap-around"}, {"approx": "weighted", "weight": 1.5}],
)
def test_wavelet_bad_options(kwargs):
    image = np.ones((64, 64))
    with pytest.raises(ValueError):
        wavelet_fuse(image, image, level=1, **kwargs)


@pytest.mark.parametrize("wavelet", ["db4", "haar", "coif2"])
@pytest.mark.parametrize(
    "rules",
    [{"approx": "mean", "detail": "max_abs"}, {"approx": "mean", "detail": "mean"},
     {"approx": "weighted", "weight": 0.3, "detail": "max_abs"}],
)
def test_fusing_an_image_with_itself_returns_it(wavelet, rules, rng):
    shape = (101, 203)
    image = ndimage.gaussian_filter(rng.uniform(0, WHITE, shape), 2) + np.linspace(0, 20000, 203)
    out = wavelet_fuse(image, image, wavelet=wavelet, level=None, **rules)
    np.testing.assert_allclose(out, image, rtol=0, atol=WHITE * 4e-6)


def test_default_wavelet_rules_match_the_source_recipe(smooth_pair, rng):
    low, high = smooth_pair + rng.normal(0, 300, smooth_pair.shape)
    coeffs_low = pywt.wavedec2(low, "db4", level=3, mode="symmetric")
    coeffs_high = pywt.wavedec2(high, "db4", level=3, mode="symmetric")
    kernel = SOURCE_APPROX_KERNEL / SOURCE_APPROX_KERNEL.sum()
    fused = [
        0.5 * (ndimage.convolve(coeffs_low[0], kernel, mode="reflect")
               + ndimage.convolve(coeffs_high[0], kernel, mode="reflect"))
    ]
    fused += [tuple(a + b for a, b in zip(dl, dh)) for dl, dh in zip(coeffs_low[1:], coeffs_high[1:])]
    expected = pywt.waverec2(fused, "db4", mode="symmetric")[: low.shape[0], : low.shape[1]]
    np.testing.assert_allclose(wavelet_fuse(low, high, level=3), expected, atol=0.1)


def test_default_wavelet_fusion_is_symmetric_linear_and_keeps_flat_images(smooth_pair):
    low, high = smooth_pair
    out = wavelet_fuse(low, high, level=3)
    np.testing.assert_allclose(wavelet_fuse(high, low, level=3), out, atol=0.05)
    np.testing.assert_allclose(wavelet_fuse(0.5 * low, 0.5 * high, level=3), 0.5 * out, atol=0.05)
    flat = np.full((161, 203), 41234.0)
    # kernel normalised to unit sum: a flat image keeps its level (the raw kernel loses 0.03 %)
    np.testing.assert_allclose(wavelet_fuse(flat, flat), flat, atol=0.05)


def test_max_abs_detail_keeps_the_stronger_edge():
    step = np.zeros((64, 64))
    step[:, 29:] = 40000.0  # not aligned with the wavelet blocks: real detail coefficients
    flat = np.full((64, 64), 20000.0)  # no detail at all
    # approx from low only, details by magnitude: every detail comes from the step image
    out = wavelet_fuse(step, flat, wavelet="haar", level=3, approx="weighted", weight=1.0,
                       detail="max_abs")
    np.testing.assert_allclose(out, step, atol=0.05)
    # averaging the details instead halves the edge: no longer the step
    soft = wavelet_fuse(step, flat, wavelet="haar", level=3, approx="weighted", weight=1.0,
                        detail="mean")
    assert np.abs(soft - step).max() > 5000


def test_wavelet_fusion_keeps_16_bit_precision():
    # a 640-count ramp: 2.5 grey levels in 8 bits, 640 distinct values in 16 bits
    ramp = np.tile(30000 + np.arange(640), (128, 1)).astype(np.uint16)
    out = wavelet_fuse(ramp, ramp - np.uint16(2000), level=4)
    assert np.unique(np.rint(out[8:-8, 8:-8])).size > 256


# --------------------------------------------------------------------------- spatial fusion


@pytest.mark.parametrize("white", [WHITE, 4095.0])
def test_spatial_fusion_of_identical_images(white, rng):
    image = rng.uniform(0, white, (37, 53)).astype(np.float32)
    np.testing.assert_array_equal(spatial_fuse(image, image, gamma=1.0, white_level=white), image)
    gamma_counts, linear = spatial_fuse(image, image, gamma=2.2, white_level=white,
                                        return_pre_gamma=True)
    np.testing.assert_array_equal(linear, image)
    expected = white * (image / white) ** (1 / 2.2)
    np.testing.assert_allclose(gamma_counts, expected, rtol=1e-5, atol=white * 1e-6)
    assert gamma_counts.dtype == np.float32
    assert gamma_counts.max() <= white


def test_spatial_fusion_rule(rng):
    low = ndimage.gaussian_filter(rng.uniform(10000, 50000, (40, 60)), 3)
    high = low + rng.choice([0.0, 3000.0, -9000.0, 12000.0], size=low.shape)
    threshold = 5140.0
    _, fused = spatial_fuse(low, high, threshold=threshold, return_pre_gamma=True)
    mean = 0.5 * (low + high)
    background = np.abs(low - high) < threshold
    np.testing.assert_allclose(fused[background], mean[background], rtol=1e-6)
    local = ndimage.uniform_filter(mean, 3, mode="reflect")
    closer = np.where(np.abs(low - local) <= np.abs(high - local), low, high)
    np.testing.assert_allclose(fused[~background], closer[~background], rtol=1e-6)
    assert (~background).sum() > 100 and background.sum() > 100


def test_spatial_threshold_defaults_to_20_grey_levels_of_the_white_level():
    low = np.full((16, 16), 2000.0)
    high = low + 300.0  # 300 counts: below the 12-bit default 20/255*4095 = 321 counts
    _, fused_12bit = spatial_fuse(low, high, white_level=4095.0, return_pre_gamma=True)
    np.testing.assert_allclose(fused_12bit, 2150.0)  # background: average
    _, fused_explicit = spatial_fuse(low, high, threshold=100.0, return_pre_gamma=True)
    assert set(np.unique(fused_explicit)) <= {2000.0, 2300.0}  # detail: one of the two


def test_spatial_fusion_keeps_16_bit_precision():
    ramp = np.tile(30000 + np.arange(640), (32, 1)).astype(np.uint16)
    for gamma in (1.0, 2.2):
        out = spatial_fuse(ramp, ramp + np.uint16(100), gamma=gamma)
        assert np.unique(np.rint(out)).size > 256


def test_spatial_bad_parameters():
    image = np.ones((16, 16))
    with pytest.raises(ValueError, match="gamma"):
        spatial_fuse(image, image, gamma=0)
    with pytest.raises(ValueError, match="threshold"):
        spatial_fuse(image, image, threshold=-1)
    with pytest.raises(ValueError, match="white_level"):
        spatial_fuse(image, image, white_level=np.nan)


# --------------------------------------------------------------------------- colour maps


def test_hsv_to_rgb_primaries():
    hsv = np.array([[0, 1, 1], [1 / 3, 1, 1], [2 / 3, 1, 1], [1, 1, 1], [0.5, 0, 0.5], [1 / 6, 1, 1]])
    expected = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0.5, 0.5, 0.5], [1, 1, 0]])
    np.testing.assert_allclose(hsv_to_rgb(hsv), expected, atol=1e-6)


def test_hsv_pseudocolour_source_stacking():
    fused = np.array([[0.0, WHITE], [WHITE / 3, WHITE]])
    value = np.array([[WHITE, WHITE], [WHITE, 0.0]])
    rgb = hsv_pseudocolour(fused, value)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    np.testing.assert_array_equal(rgb[0, 0], [255, 51, 51])  # H=0 red, S=0.8
    np.testing.assert_array_equal(rgb[0, 1], [255, 51, 51])  # H=1 wraps to red
    np.testing.assert_array_equal(rgb[1, 0], [51, 255, 51])  # H=1/3 green
    np.testing.assert_array_equal(rgb[1, 1], [0, 0, 0])  # V=0 black
    as_float = hsv_pseudocolour(fused, value, as_float=True)
    assert as_float.dtype == np.float32
    np.testing.assert_allclose(as_float[1, 0], [0.2, 1.0, 0.2], atol=1e-6)
    # no gamma image: V = (fused / white) ** (1 / 2.2)
    np.testing.assert_allclose(
        hsv_pseudocolour(np.full((1, 1), WHITE / 4), as_float=True).max(), 0.25 ** (1 / 2.2), atol=1e-6
    )


def test_hot_colormap_endpoints_and_breakpoints():
    x01 = np.array([[0.0, 0.365079, 0.746032, 1.0, 1.5]])
    rgb = hot_colormap(x01 * 4095.0, white_level=4095.0)
    np.testing.assert_array_equal(
        rgb[0], [[11, 0, 0], [255, 0, 0], [255, 255, 0], [255, 255, 255], [255, 255, 255]]
    )
    ramp = hot_colormap(np.linspace(0, WHITE, 2000)[None, :], as_float=True)[0]
    assert (np.diff(ramp, axis=0) >= 0).all()  # every channel rises monotonically
    # red rises first, then green, then blue
    assert ramp[1100, 0] > ramp[1100, 1] > ramp[1100, 2] == 0
    # continuous (not a 256-entry LUT): 16-bit steps give distinct colours
    assert np.unique(ramp, axis=0).shape[0] > 1000


# --------------------------------------------------------------------------- white level


def test_estimate_white_level_clipped_and_noisy(rng):
    bag = np.full((200, 300), 4095.0)
    bag[50:150, 80:220] = 1500.0
    assert estimate_white_level(bag) == pytest.approx(4095.0)
    photons = rng.poisson(3000.0, size=(200, 300)).astype(np.float64)
    photons[50:150, 80:220] = rng.poisson(900.0, size=(100, 140))
    noisy = photons * 20.0  # gain 20: air at 60000 counts, sigma ~1.8 %
    assert estimate_white_level(noisy) == pytest.approx(60000.0, rel=0.005)
    assert np.percentile(noisy, 99.9) > 62000  # a plain percentile would overshoot
    pair = np.stack([noisy, noisy * 0.999])
    assert estimate_white_level(pair) == pytest.approx(60000.0, rel=0.005)
    with pytest.raises(ValueError, match="white_level"):
        estimate_white_level(np.zeros((8, 8)))


# --------------------------------------------------------------------------- materials

# Toy Beer-Lambert bag with a constant dual-energy ratio R = mu_low / mu_high per
# material (monochromatic-like, no beam hardening) and high-energy mu (1/cm), at the
# typical values quoted for baggage scanners (organics ~1.1-1.3, aluminium ~1.4-1.6,
# iron 2+); classified with constant ratio thresholds between them.
BEER_LAMBERT = {
    MATERIAL_ORGANIC: (1.2, 0.18),  # water / plastics
    MATERIAL_INORGANIC: (1.5, 0.45),  # aluminium
    MATERIAL_METAL: (2.2, 2.2),  # iron
}
CONSTANT_THRESHOLDS = {"organic_max": 1.35, "inorganic_max": 1.8}


def beer_lambert_bag(white=60000.0, rows=20):
    """Bands of rows: air, then each material with thickness rising along x.

    Returns the (2, Y, X) stack of expected counts and the true class per pixel."""
    thickness_cm = np.linspace(0.0, 8.0, 120)
    low_rows, high_rows = [np.full((rows, 120), white)], [np.full((rows, 120), white)]
    classes = [np.zeros((rows, 120), np.uint8)]
    for class_id, (ratio, mu_high) in BEER_LAMBERT.items():
        t = np.tile(thickness_cm * (0.25 if class_id == MATERIAL_METAL else 1.0), (rows, 1))
        high_rows.append(white * np.exp(-mu_high * t))
        low_rows.append(white * np.exp(-ratio * mu_high * t))
        classes.append(np.full((rows, 120), class_id, np.uint8))
    return np.stack([np.vstack(low_rows), np.vstack(high_rows)]), np.vstack(classes)


def test_material_ratio_recovers_beer_lambert_ratio():
    stack, truth = beer_lambert_bag()
    ratio = material_ratio(stack, white_level=60000.0)
    assert ratio.dtype == np.float32
    assert np.isnan(ratio[truth == MATERIAL_BACKGROUND]).all()
    for class_id, (r, _) in BEER_LAMBERT.items():
        valid = (truth == class_id) & np.isfinite(ratio) & (stack[1] > 600)
        assert valid.sum() > 1000
        np.testing.assert_allclose(ratio[valid], r, rtol=1e-3)


def test_material_ratio_honours_dark_level_and_estimates_white():
    stack, truth = beer_lambert_bag(white=4000.0)
    with_offset = stack + 100.0
    ratio = material_ratio(with_offset, white_level=4100.0, dark_level=100.0)
    valid = (truth == MATERIAL_INORGANIC) & np.isfinite(ratio) & (stack[1] > 100)
    np.testing.assert_allclose(ratio[valid], 1.5, rtol=1e-3)
    estimated = material_ratio(stack)  # white level estimated from the air band
    np.testing.assert_allclose(estimated[valid], 1.5, rtol=2e-3)
    per_channel = material_ratio(stack * [[[0.5]], [[1.0]]], white_level=(2000.0, 4000.0))
    np.testing.assert_allclose(per_channel[valid], 1.5, rtol=1e-3)


def test_classify_materials_with_constant_thresholds():
    stack, truth = beer_lambert_bag()
    classes = classify_materials(stack, white_level=60000.0, **CONSTANT_THRESHOLDS)
    assert classes.dtype == np.uint8 and classes.shape == truth.shape
    t_high = stack[1] / 60000.0
    attenuated = -np.log(t_high) >= 0.03
    judgeable = attenuated & (t_high >= 0.015)
    np.testing.assert_array_equal(classes[judgeable], truth[judgeable])
    assert (classes[t_high < 0.015] == MATERIAL_IMPENETRABLE).all()
    assert (classes[~attenuated] == MATERIAL_BACKGROUND).all()
    assert (classes[truth == MATERIAL_BACKGROUND] == MATERIAL_BACKGROUND).all()
    # the thresholds are parameters: moving organic_max above 1.5 makes aluminium organic
    moved = classify_materials(stack, white_level=60000.0, organic_max=1.6, inorganic_max=2.0)
    aluminium = judgeable & (truth == MATERIAL_INORGANIC)
    assert (moved[aluminium] == MATERIAL_ORGANIC).all()
    # a boundary curve over the attenuation: organic below R 1.6 only where A_high > 1
    curve = classify_materials(stack, white_level=60000.0,
                               organic_max=([0.99, 1.01], [1.3, 1.6]), inorganic_max=2.0)
    a_high = -np.log(t_high)
    np.testing.assert_array_equal(curve[aluminium & (a_high > 1.01)], MATERIAL_ORGANIC)
    np.testing.assert_array_equal(curve[aluminium & (a_high < 0.99)], MATERIAL_INORGANIC)


@pytest.mark.parametrize(
    "bad",
    [{"organic_max": 2.0, "inorganic_max": 1.5}, {"organic_max": -1.0},
     {"organic_max": ([1.0, 0.5], [1.3, 1.4])}, {"inorganic_max": ([0.1, 1.0], [1.3])},
     {"organic_max": ([0.1, 1.0], [1.3, 2.0]), "inorganic_max": 1.9}],
)
def test_classify_materials_rejects_bad_thresholds(bad):
    stack, _ = beer_lambert_bag()
    with pytest.raises(ValueError, match="organic_max|inorganic_max"):
        classify_materials(stack, white_level=60000.0, **bad)


def test_classify_materials_on_noisy_scan_with_smoothing():
    rng = np.random.default_rng(7)
    stack, truth = beer_lambert_bag(white=60000.0, rows=30)
    gain = 10.0  # 6000 photons in air
    noisy = rng.poisson(stack / gain) * gain
    classes = classify_materials(noisy, smooth_sigma=2.0, **CONSTANT_THRESHOLDS)
    t_high = stack[1] / 60000.0
    interior = np.zeros_like(truth, bool)
    for band in range(4):
        interior[band * 30 + 6: band * 30 + 24] = True
    judgeable = interior & (-np.log(t_high) >= 0.1) & (t_high >= 0.05)
    for class_id in BEER_LAMBERT:
        sel = judgeable & (truth == class_id)
        assert (classes[sel] == class_id).mean() > 0.9, class_id
    air = interior & (truth == MATERIAL_BACKGROUND)
    assert (classes[air] == MATERIAL_BACKGROUND).mean() > 0.99


def test_material_colour_display():
    stack, truth = beer_lambert_bag()
    rgb = material_colour(stack, white_level=60000.0, **CONSTANT_THRESHOLDS)
    assert rgb.dtype == np.uint8 and rgb.shape == truth.shape + (3,)
    np.testing.assert_array_equal(rgb[truth == MATERIAL_BACKGROUND], 255)  # air stays white
    classes = classify_materials(stack, white_level=60000.0, **CONSTANT_THRESHOLDS)
    columns = np.arange(truth.shape[1])
    for class_id in (MATERIAL_ORGANIC, MATERIAL_INORGANIC, MATERIAL_METAL):
        row = np.flatnonzero(truth[:, 0] == class_id)[5]
        cols = columns[classes[row] == class_id]
        pixels = rgb[row, cols].astype(int)
        # hue of the class: dominant channel as the palette's
        assert (pixels.argmax(axis=1) == np.argmax(MATERIAL_COLOURS_RGB01[class_id])).all()
        # brightness follows attenuation: thicker (further right) is darker
        assert (np.diff(pixels.sum(axis=1)) <= 1).all() and pixels[0].sum() > pixels[-1].sum() + 100
    impenetrable = classes == MATERIAL_IMPENETRABLE
    assert impenetrable.any()
    expected = np.rint(np.array(MATERIAL_COLOURS_RGB01[MATERIAL_IMPENETRABLE]) * 255)
    np.testing.assert_array_equal(rgb[impenetrable], np.broadcast_to(expected, (impenetrable.sum(), 3)))
    # negligible attenuation stays uncoloured (grey, all channels equal)
    faint = (classes == MATERIAL_BACKGROUND) & (truth != MATERIAL_BACKGROUND)
    assert faint.any()
    assert (rgb[faint].max(axis=1) - rgb[faint].min(axis=1) == 0).all()
    rgb_float = material_colour(stack, white_level=60000.0, as_float=True, **CONSTANT_THRESHOLDS)
    assert rgb_float.dtype == np.float32 and 0 <= rgb_float.min() and rgb_float.max() <= 1


# ---- default boundary curves against the phantom's polychromatic physics

PHANTOM_GROUPS = {  # phantom MATERIAL_CLASSES names -> our class
    "organic": MATERIAL_ORGANIC, "liquid": MATERIAL_ORGANIC, "plastic": MATERIAL_ORGANIC,
    "explosive": MATERIAL_ORGANIC, "aluminium": MATERIAL_INORGANIC,
    "copper": MATERIAL_METAL, "steel": MATERIAL_METAL,
}


@pytest.fixture(scope="module")
def phantom():
    return pytest.importorskip("napari_xray_denoise.phantom")


@pytest.mark.parametrize(
    "material, expected",
    [("water", MATERIAL_ORGANIC), ("polyethylene", MATERIAL_ORGANIC), ("cellulose", MATERIAL_ORGANIC),
     ("sucrose", MATERIAL_ORGANIC), ("tnt", MATERIAL_ORGANIC), ("rdx", MATERIAL_ORGANIC),
     ("aluminium", MATERIAL_INORGANIC), ("steel", MATERIAL_METAL), ("copper", MATERIAL_METAL)],
)
def test_default_boundaries_on_polychromatic_slabs(phantom, material, expected):
    """Slabs of one material, every thickness from barely visible to impenetrable,
    through the phantom's tube spectrum and dual-layer detector (beam hardening
    included): the default boundary curves give the screeners' class throughout."""
    spectra = phantom.detector_spectra()
    thickness_cm = np.geomspace(1e-3, 60.0, 600)[None, :]
    transmission = phantom.polychromatic_transmission({material: thickness_cm}, spectra)
    classes = classify_materials(60000.0 * transmission, white_level=60000.0)[0]
    t_high = transmission[1, 0]
    judgeable = (t_high >= 0.015) & (t_high <= np.exp(-0.03))
    assert judgeable.sum() > 100
    np.testing.assert_array_equal(classes[judgeable], expected)
    assert (classes[t_high < 0.015] == MATERIAL_IMPENETRABLE).all()


def _dominant_group(phantom, bag):
    """Per pixel, our class whose materials give most of the high-energy attenuation,
    and that share (bag.labels marks the dominant material at 60 keV instead)."""
    spectra = phantom.detector_spectra()
    names = phantom.MATERIAL_CLASSES
    share = np.zeros((5, *bag.labels.shape))
    for material, t in bag.thickness.items():
        mu_high = float((spectra.weights[1] * spectra.material_mu[material]).sum())
        share[PHANTOM_GROUPS[names[phantom.MATERIAL_CLASS_OF[material]]]] += mu_high * t
    share /= np.maximum(share.sum(axis=0), 1e-12)
    return share.argmax(axis=0), share.max(axis=0)


@pytest.fixture(scope="module")
def phantom_bags(phantom):
    return [phantom.make_bag((400, 640), seed=seed) for seed in (0, 1, 2)]


def _pooled_rate(pairs):
    """Fraction of hits over all bags: pairs of (classes[selection] values, expected)."""
    hits = sum(int((values == expected).sum()) for values, expected in pairs)
    total = sum(values.size for values, _ in pairs)
    return hits / max(total, 1), total


def test_phantom_materials_classify_as_screeners_expect(phantom, phantom_bags):
    names = phantom.MATERIAL_CLASSES
    label_group = np.zeros(256, np.uint8)
    for label_id, name in names.items():
        label_group[label_id] = PHANTOM_GROUPS.get(name, MATERIAL_BACKGROUND)
    by_label = {c: [] for c in (MATERIAL_ORGANIC, MATERIAL_INORGANIC, MATERIAL_METAL)}
    by_share = {c: [] for c in by_label}
    for bag in phantom_bags:
        classes = classify_materials(bag.clean)  # white level estimated from the scan
        white = bag.params["white_level"]
        assert estimate_white_level(bag.clean) == pytest.approx(white, rel=0.01)
        t_high = bag.clean[1] / white
        visible = (classes != MATERIAL_IMPENETRABLE) & (t_high < 0.97)
        assert (classes[bag.labels == 0] == MATERIAL_BACKGROUND).mean() > 0.95  # air
        group, share = _dominant_group(phantom, bag)
        for class_id in by_label:
            by_label[class_id].append(classes[visible & (label_group[bag.labels] == class_id)])
            core = ndimage.binary_erosion((group == class_id) & (share > 0.7), iterations=2)
            by_share[class_id].append(classes[core & visible])
    # labels organic / liquid / plastic / explosive classify as organic
    rate, n = _pooled_rate([(v, MATERIAL_ORGANIC) for v in by_label[MATERIAL_ORGANIC]])
    assert n > 10000 and rate > 0.8
    # aluminium, copper and steel labels are not taken for organic (labels mark the
    # dominant material at 60 keV; under thick clothing the mixture's ratio is lower,
    # so such metal may legitimately show as "mixed"/inorganic)
    for class_id in (MATERIAL_INORGANIC, MATERIAL_METAL):
        values = np.concatenate(by_label[class_id])
        assert values.size > 1000 and (values != MATERIAL_ORGANIC).mean() > 0.85, class_id
    # where a group gives > 70 % of the high-energy attenuation (away from edges), its
    # class wins: organics organic, aluminium inorganic, steel/copper metal
    for class_id, minimum in ((MATERIAL_ORGANIC, 0.85), (MATERIAL_INORGANIC, 0.95),
                              (MATERIAL_METAL, 0.95)):
        rate, n = _pooled_rate([(v, class_id) for v in by_share[class_id]])
        assert n > 300 and rate > minimum, (class_id, rate, n)


def test_phantom_noisy_scan_with_smoothing(phantom):
    bag = phantom.make_bag((400, 640), seed=2)
    white = bag.params["white_level"]  # noisy air: high channel ~3.5 % noise, some clipped
    for channel in (0, 1):
        assert estimate_white_level(bag.noisy[channel]) == pytest.approx(white, rel=0.01)
    classes = classify_materials(bag.noisy, smooth_sigma=2.0)
    t_high = bag.clean[1] / bag.params["white_level"]
    visible = (classes != MATERIAL_IMPENETRABLE) & (t_high < 0.97)
    group, share = _dominant_group(phantom, bag)
    for class_id, minimum in ((MATERIAL_ORGANIC, 0.8), (MATERIAL_INORGANIC, 0.8),
                              (MATERIAL_METAL, 0.8)):
        core = ndimage.binary_erosion((group == class_id) & (share > 0.7), iterations=3) & visible
        assert (classes[core] == class_id).mean() > minimum, class_id
    rgb = material_colour(bag.noisy, smooth_sigma=2.0)
    assert rgb.shape == (*bag.labels.shape, 3)


# --------------------------------------------------------------------------- speed, imports


def test_fusion_is_vectorised_fast():
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 65536, size=(2, 640, 1000), dtype=np.uint16)
    for fuse in (wavelet_fuse, spatial_fuse):
        fuse(stack)
        start = time.perf_counter()
        fuse(stack)
        # target 0.2 s (measured ~0.02 s); the bound is loose for a shared 2-core machine
        assert time.perf_counter() - start < 2.0, fuse.__name__


def test_import_is_light():
    code = (
        "import sys, napari_xray_denoise.fusion; "
        "bad = [m for m in ('tensorflow', 'keras', 'napari', 'qtpy', 'matplotlib') if m in sys.modules]; "
        "print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
