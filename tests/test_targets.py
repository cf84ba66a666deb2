"""Tests for napari_xray_denoise.targets (multiscale pseudo-clean targets).

The vectorised functions are checked against a direct, slow reference written here:
a per-pixel double loop with 4 x 4 taps and the kernel evaluated in plain Python, as
the source's loop does, on small images.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from napari_xray_denoise.targets import (
    DEFAULT_SCALES,
    aggregated_set,
    area_downsample,
    bicubic_kernel,
    bicubic_upsample,
    blurred_version,
    make_targets,
)

# --------------------------------------------------------------------------- reference


def ref_kernel(s: float, a: float) -> float:
    s = abs(s)
    if s <= 1:
        return (a + 2) * s**3 - (a + 3) * s**2 + 1
    if s <= 2:
        return a * s**3 - 5 * a * s**2 + 8 * a * s - 4 * a
    return 0.0


def ref_area_downsample(img: np.ndarray, f: int) -> np.ndarray:
    ny, nx = img.shape
    my, mx = -(-ny // f), -(-nx // f)
    out = np.zeros((my, mx))
    for j in range(my):
        for i in range(mx):
            total = 0.0
            for dy in range(f):
                for dx in range(f):
                    y = min(j * f + dy, ny - 1)  # edge replication
                    x = min(i * f + dx, nx - 1)
                    total += float(img[y, x])
            out[j, i] = total / (f * f)
    return out


def ref_bicubic_upsample(img, f, a, out_shape, alignment="centre"):
    ny, nx = img.shape
    out = np.zeros(out_shape)
    for j in range(out_shape[0]):
        for i in range(out_shape[1]):
            if alignment == "centre":
                y, x = (j + 0.5) / f - 0.5, (i + 0.5) / f - 0.5
            else:
                y, x = j / f, i / f
            y0, x0 = math.floor(y), math.floor(x)
            value = 0.0
            for ty in range(y0 - 1, y0 + 3):
                for tx in range(x0 - 1, x0 + 3):
                    yy = min(max(ty, 0), ny - 1)
                    xx = min(max(tx, 0), nx - 1)
                    value += ref_kernel(y - ty, a) * ref_kernel(x - tx, a) * float(img[yy, xx])
            out[j, i] = value
    return out


def ref_blurred(img, f, a, alignment="centre"):
    return ref_bicubic_upsample(ref_area_downsample(img, f), f, a, img.shape, alignment)


def random_counts(shape, seed=0, high=4096):
    return np.random.default_rng(seed).integers(0, high, size=shape).astype(np.uint16)


def assert_fp_close(actual, expected):
    """Agreement to floating-point precision for values in counts (up to 65535)."""
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-9)


# --------------------------------------------------------------------------- kernel


@pytest.mark.parametrize("a", [-0.5, 1.2, 1.5, 1.8])
def test_kernel_matches_formula(a):
    s = np.linspace(-2.6, 2.6, 521)
    expected = np.array([ref_kernel(v, a) for v in s])
    assert_fp_close(bicubic_kernel(s, a), expected)
    assert bicubic_kernel(0.0, a) == pytest.approx(1.0)
    for node in (1.0, 2.0, -1.0, -2.0, 3.0):
        assert bicubic_kernel(node, a) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("a", [-0.5, 1.2, 1.5, 1.8, 3.0])
def test_kernel_weights_sum_to_one_for_every_phase(a):
    t = np.linspace(0.0, 1.0, 101)[:, None]
    weights = bicubic_kernel(np.hstack([1 + t, t, 1 - t, 2 - t]), a)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)


# --------------------------------------------------------------------------- vs reference


@pytest.mark.parametrize("shape", [(13, 17), (20, 20), (7, 3), (1, 1), (2, 5), (6, 9)])
@pytest.mark.parametrize("factor", [2, 3])
def test_area_downsample_matches_reference(shape, factor):
    img = random_counts(shape, seed=shape[0] * 31 + shape[1])
    result = area_downsample(img, factor)
    assert result.dtype == np.float64
    assert_fp_close(result, ref_area_downsample(img, factor))


@pytest.mark.parametrize("shape", [(5, 7), (4, 4), (1, 3)])
@pytest.mark.parametrize("factor,a", [*DEFAULT_SCALES, (3, -0.5)])
@pytest.mark.parametrize("alignment", ["centre", "corner"])
def test_bicubic_upsample_matches_reference(shape, factor, a, alignment):
    img = random_counts(shape, seed=7).astype(np.float64) + 0.25
    out_shape = (shape[0] * factor, shape[1] * factor)
    result = bicubic_upsample(img, factor, a, alignment=alignment)
    assert result.shape == out_shape
    assert_fp_close(result, ref_bicubic_upsample(img, factor, a, out_shape, alignment))


@pytest.mark.parametrize("shape", [(13, 17), (20, 20), (11, 8), (1, 1), (2, 5)])
@pytest.mark.parametrize("factor,a", DEFAULT_SCALES)
@pytest.mark.parametrize("alignment", ["centre", "corner"])
def test_blurred_version_matches_reference(shape, factor, a, alignment):
    img = random_counts(shape, seed=shape[0] + 100 * shape[1], high=65536)
    result = blurred_version(img, factor, a, alignment)
    assert result.shape == shape
    assert_fp_close(result, ref_blurred(img, factor, a, alignment))


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize("ny", [1, 2, 3, 4, 5, 31, 64, 97])
@pytest.mark.parametrize("nx", [1, 6, 7, 50, 101])
def test_exact_output_size_for_any_input_size(ny, nx):
    img = random_counts((2, ny, nx))
    targets = make_targets(img, scales=[(2, 1.2), (3, 1.5), (4, 1.0), (5, 0.7)])
    assert targets.shape == (4, 2, ny, nx)


@pytest.mark.parametrize("factor,a", [*DEFAULT_SCALES, (3, -0.5), (5, 2.5)])
def test_constant_image_stays_constant(factor, a):
    img = np.full((2, 23, 19), 3071, dtype=np.uint16)
    np.testing.assert_allclose(blurred_version(img, factor, a), 3071.0, rtol=1e-12)


def test_centre_alignment_keeps_objects_in_place_and_corner_shifts_them():
    yy, xx = np.mgrid[0:64, 0:64]
    blob = 1000.0 * np.exp(-((yy - 31.3) ** 2 + (xx - 30.7) ** 2) / (2 * 4.0**2)) + 100.0

    def centroid(image):
        w = image - 100.0
        return np.array([(w * yy).sum(), (w * xx).sum()]) / w.sum()

    for factor, a in DEFAULT_SCALES:
        np.testing.assert_allclose(
            centroid(blurred_version(blob, factor, a, "centre")), [31.3, 30.7], atol=1e-3
        )
        shift = (factor - 1) / 2  # documented shift of the source's convention
        np.testing.assert_allclose(
            centroid(blurred_version(blob, factor, a, "corner")),
            [31.3 - shift, 30.7 - shift],
            atol=1e-3,
        )


def test_blurred_versions_reduce_pixel_noise():
    rng = np.random.default_rng(3)
    noisy = rng.normal(2000.0, 50.0, size=(128, 128))
    for version in make_targets(noisy, dtype=np.float64):
        residual_std = (version - 2000.0)[4:-4, 4:-4].std()
        assert residual_std < 0.7 * 50.0


def test_channels_are_processed_independently():
    low = random_counts((37, 41), seed=1)
    high = random_counts((37, 41), seed=2)
    stack = np.stack([low, high])
    targets = make_targets(stack, dtype=np.float64)
    np.testing.assert_array_equal(targets[:, 0], make_targets(low, dtype=np.float64))
    np.testing.assert_array_equal(targets[:, 1], make_targets(high, dtype=np.float64))


def test_batch_of_stacks():
    batch = random_counts((3, 2, 15, 16), seed=4)
    targets = make_targets(batch, dtype=np.float64)
    assert targets.shape == (3, 3, 2, 15, 16)
    np.testing.assert_array_equal(targets[:, 2, 1], make_targets(batch[2, 1], dtype=np.float64))


def test_input_is_not_modified():
    img = random_counts((2, 20, 21))
    copy = img.copy()
    make_targets(img)
    aggregated_set(img)
    np.testing.assert_array_equal(img, copy)


# --------------------------------------------------------------------------- dtypes


def test_default_output_is_float32_counts():
    img = random_counts((2, 30, 33), high=8192)
    targets = make_targets(img)
    assert targets.dtype == np.float32
    np.testing.assert_allclose(targets, make_targets(img, dtype=np.float64), rtol=1e-6)


def test_uint16_output_is_rounded_and_clipped():
    # a bright step next to zeros overshoots both ends of the range with positive a
    img = np.zeros((24, 24), dtype=np.uint16)
    img[:, 11:] = 65535
    as_float = make_targets(img, dtype=np.float64)
    assert as_float.max() > 65535 or as_float.min() < 0  # the overshoot is real
    as_u16 = make_targets(img, dtype=np.uint16)
    assert as_u16.dtype == np.uint16
    np.testing.assert_array_equal(as_u16, np.clip(np.rint(as_float), 0, 65535).astype(np.uint16))


def test_float_input_accepted():
    img = random_counts((2, 12, 13)).astype(np.float32) / 7
    assert_fp_close(
        make_targets(img, dtype=np.float64)[0, 1],
        ref_blurred(img[1].astype(np.float64), *DEFAULT_SCALES[0]),
    )


# --------------------------------------------------------------------------- aggregated set


def test_aggregated_set_has_noisy_group_then_blurred_groups():
    noisy = random_counts((2, 19, 22), seed=9)
    inputs, targets = aggregated_set(noisy)
    assert inputs.shape == targets.shape == (1 + len(DEFAULT_SCALES), 2, 19, 22)
    assert inputs.dtype == targets.dtype == np.float32
    for group in inputs:
        np.testing.assert_array_equal(group, noisy.astype(np.float32))
    np.testing.assert_array_equal(targets[0], noisy.astype(np.float32))
    np.testing.assert_array_equal(targets[1:], make_targets(noisy))
    assert not inputs.flags.writeable


def test_aggregated_set_custom_scales_and_uint16():
    noisy = random_counts((16, 17), seed=10)
    inputs, targets = aggregated_set(noisy, scales=[(3, 1.5)], dtype=np.uint16)
    assert targets.shape == (2, 16, 17) and targets.dtype == np.uint16
    np.testing.assert_array_equal(targets[0], noisy)
    np.testing.assert_array_equal(inputs[1], noisy)
    expected = np.clip(np.rint(ref_blurred(noisy, 3, 1.5)), 0, 65535).astype(np.uint16)
    np.testing.assert_array_equal(targets[1], expected)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "bad",
    [
        np.array([1.0, np.nan, 3.0, 4.0]).reshape(2, 2),
        np.array([[1.0, np.inf], [0.0, 2.0]]),
        np.zeros(5, dtype=np.uint16),
        np.zeros((2, 0, 4), dtype=np.uint16),
        np.zeros((3, 3), dtype=np.complex64),
        np.zeros((3, 3), dtype=bool),
    ],
    ids=["nan", "inf", "1d", "empty", "complex", "bool"],
)
def test_bad_images_raise_value_error(bad):
    with pytest.raises(ValueError):
        make_targets(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scales": [(0, 1.2)]},
        {"scales": [(2.5, 1.2)]},
        {"scales": [(2, float("nan"))]},
        {"scales": [(2, "x")]},
        {"scales": []},
        {"scales": [(2,)]},
        {"dtype": np.uint8},
        {"dtype": np.int32},
        {"alignment": "left"},
    ],
)
def test_bad_parameters_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        make_targets(random_counts((8, 8)), **kwargs)


def test_bad_out_shape_raises_value_error():
    with pytest.raises(ValueError):
        bicubic_upsample(np.ones((4, 4)), 2, 1.2, out_shape=(0, 8))


def test_import_keeps_heavy_modules_out():
    code = (
        "import sys, napari_xray_denoise.targets; "
        "bad = [m for m in ('tensorflow', 'keras', 'napari', 'qtpy') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
