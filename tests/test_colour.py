"""Tests for napari_xray_denoise.colour (HSV and hot pseudo-colour, material classes and colours)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage

from napari_xray_denoise.colour import (
    MATERIAL_BACKGROUND,
    MATERIAL_COLOURS_RGB01,
    MATERIAL_IMPENETRABLE,
    MATERIAL_INORGANIC,
    MATERIAL_METAL,
    MATERIAL_ORGANIC,
    classify_materials,
    hot_colormap,
    hsv_pseudocolour,
    hsv_to_rgb,
    material_colour,
    material_ratio,
)
from napari_xray_denoise.fusion import estimate_white_level

WHITE = 65535.0

# --------------------------------------------------------------------------- colour maps


def test_hsv_to_rgb_primaries():
    hsv = np.array(
        [[0, 1, 1], [1 / 3, 1, 1], [2 / 3, 1, 1], [1, 1, 1], [0.5, 0, 0.5], [1 / 6, 1, 1]]
    )
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
        hsv_pseudocolour(np.full((1, 1), WHITE / 4), as_float=True).max(),
        0.25 ** (1 / 2.2),
        atol=1e-6,
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
    curve = classify_materials(
        stack, white_level=60000.0, organic_max=([0.99, 1.01], [1.3, 1.6]), inorganic_max=2.0
    )
    a_high = -np.log(t_high)
    np.testing.assert_array_equal(curve[aluminium & (a_high > 1.01)], MATERIAL_ORGANIC)
    np.testing.assert_array_equal(curve[aluminium & (a_high < 0.99)], MATERIAL_INORGANIC)


@pytest.mark.parametrize(
    "bad",
    [
        {"organic_max": 2.0, "inorganic_max": 1.5},
        {"organic_max": -1.0},
        {"organic_max": ([1.0, 0.5], [1.3, 1.4])},
        {"inorganic_max": ([0.1, 1.0], [1.3])},
        {"organic_max": ([0.1, 1.0], [1.3, 2.0]), "inorganic_max": 1.9},
    ],
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
        interior[band * 30 + 6 : band * 30 + 24] = True
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
    np.testing.assert_array_equal(
        rgb[impenetrable], np.broadcast_to(expected, (impenetrable.sum(), 3))
    )
    # negligible attenuation stays uncoloured (grey, all channels equal)
    faint = (classes == MATERIAL_BACKGROUND) & (truth != MATERIAL_BACKGROUND)
    assert faint.any()
    assert (rgb[faint].max(axis=1) - rgb[faint].min(axis=1) == 0).all()
    rgb_float = material_colour(stack, white_level=60000.0, as_float=True, **CONSTANT_THRESHOLDS)
    assert rgb_float.dtype == np.float32 and 0 <= rgb_float.min() and rgb_float.max() <= 1


# ---- default boundary curves against the phantom's polychromatic physics

PHANTOM_GROUPS = {  # phantom MATERIAL_CLASSES names -> our class
    "organic": MATERIAL_ORGANIC,
    "liquid": MATERIAL_ORGANIC,
    "plastic": MATERIAL_ORGANIC,
    "explosive": MATERIAL_ORGANIC,
    "aluminium": MATERIAL_INORGANIC,
    "copper": MATERIAL_METAL,
    "steel": MATERIAL_METAL,
}


@pytest.fixture(scope="module")
def phantom():
    return pytest.importorskip("napari_xray_denoise.phantom")


@pytest.mark.parametrize(
    "material, expected",
    [
        ("water", MATERIAL_ORGANIC),
        ("polyethylene", MATERIAL_ORGANIC),
        ("cellulose", MATERIAL_ORGANIC),
        ("sucrose", MATERIAL_ORGANIC),
        ("tnt", MATERIAL_ORGANIC),
        ("rdx", MATERIAL_ORGANIC),
        ("aluminium", MATERIAL_INORGANIC),
        ("steel", MATERIAL_METAL),
        ("copper", MATERIAL_METAL),
    ],
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
    for class_id, minimum in (
        (MATERIAL_ORGANIC, 0.85),
        (MATERIAL_INORGANIC, 0.95),
        (MATERIAL_METAL, 0.95),
    ):
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
    for class_id, minimum in (
        (MATERIAL_ORGANIC, 0.8),
        (MATERIAL_INORGANIC, 0.8),
        (MATERIAL_METAL, 0.8),
    ):
        core = ndimage.binary_erosion((group == class_id) & (share > 0.7), iterations=3) & visible
        assert (classes[core] == class_id).mean() > minimum, class_id
    rgb = material_colour(bag.noisy, smooth_sigma=2.0)
    assert rgb.shape == (*bag.labels.shape, 3)


def test_import_is_light():
    code = (
        "import sys, napari_xray_denoise.colour; "
        "bad = [m for m in ('tensorflow', 'keras', 'napari', 'qtpy', 'matplotlib') if m in sys.modules]; "
        "print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
