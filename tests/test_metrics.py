"""Tests for napari_xray_denoise.metrics (BRISQUE, PSNR/SSIM, noise level, score table)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_xray_denoise import metrics

DATA = Path(__file__).parent / "data" / "brisque"
# MATLAB rgb2gray weights, as used for the reference score of I01.BMP.
RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


def _goldhill() -> np.ndarray:
    return np.array(Image.open(DATA / "goldhill.gif"))


def _i01_gray() -> np.ndarray:
    rgb = np.array(Image.open(DATA / "I01.BMP").convert("RGB"), dtype=np.float64)
    return np.rint(rgb @ RGB2GRAY).astype(np.uint8)


@pytest.fixture(scope="module")
def goldhill():
    return _goldhill()


# ---------------------------------------------------------------- BRISQUE
@pytest.mark.parametrize(
    ("loader", "matlab_score"),
    [(_goldhill, 8.425548118925917), (_i01_gray, 10.259409019043119)],
    ids=["goldhill.gif", "I01.BMP"],
)
def test_brisque_reproduces_matlab_reference(loader, matlab_score):
    image = loader()
    assert image.ndim == 2 and image.dtype == np.uint8
    assert metrics.brisque(image) == pytest.approx(matlab_score, abs=0.01)


def test_brisque_features_shape_and_values(goldhill):
    feats = metrics.brisque_features(goldhill)
    assert feats.shape == (36,)
    assert np.all(np.isfinite(feats))
    # shape parameters come from MATLAB's grid 0.2:0.001:10
    shapes = feats[[0, 2, 6, 10, 14, 18, 20, 24, 28, 32]]
    assert np.all((shapes >= 0.2) & (shapes <= 10.0))
    np.testing.assert_allclose(shapes * 1000, np.rint(shapes * 1000), atol=1e-6)
    # variances are positive
    assert np.all(feats[[1, 4, 5, 8, 9, 12, 13, 16, 17]] > 0)


def test_shipped_model_is_the_live_release():
    model = metrics._load_model()
    assert model.support_vectors.shape == (774, 36)
    assert model.coefs.shape == (774,)
    assert model.gamma == pytest.approx(0.05)
    assert model.rho == pytest.approx(-153.591)
    assert (model.scale_lower, model.scale_upper) == (-1.0, 1.0)
    assert np.all(model.feature_max > model.feature_min)


def test_brisque_noisy_scores_worse(goldhill):
    rng = np.random.default_rng(0)
    noisy = np.clip(goldhill + rng.normal(0.0, 20.0, goldhill.shape), 0, 255)
    assert metrics.brisque(noisy) > metrics.brisque(goldhill) + 10.0


def test_brisque_does_not_mutate_and_accepts_float(goldhill):
    before = goldhill.copy()
    score_u8 = metrics.brisque(goldhill)
    np.testing.assert_array_equal(goldhill, before)
    assert metrics.brisque(goldhill.astype(np.float32)) == pytest.approx(score_u8, abs=1e-6)


def test_brisque_odd_shape_runs(goldhill):
    score = metrics.brisque(goldhill[:301, :257])
    assert np.isfinite(score)


def test_brisque_uint16_uses_fixed_window(goldhill):
    counts_u16 = (goldhill.astype(np.uint16) * 257).astype(np.uint16)  # 255 -> 65535
    direct = metrics.brisque(counts_u16)
    assert direct == pytest.approx(metrics.brisque(goldhill), abs=1e-9)
    # a 12-bit scanner: window (0, 4095) chosen once for the scanner
    counts_12bit = np.rint(goldhill.astype(np.float64) * 4095 / 255).astype(np.uint16)
    windowed = metrics.brisque(counts_12bit, window=(0, 4095))
    assert windowed == pytest.approx(metrics.brisque(goldhill), abs=0.05)
    assert windowed == pytest.approx(
        metrics.brisque(metrics.window_to_8bit(counts_12bit, 0, 4095)), abs=1e-12
    )


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 32, 32), np.uint8),  # a stack: score channels separately
        np.zeros((4, 64), np.uint8),  # too small
        np.full((32, 32), 1000.0),  # float outside 0..255 without window
        np.full((32, 32), 100, np.uint8),  # constant: BRISQUE undefined
    ],
    ids=["3d", "tiny", "float-out-of-range", "constant"],
)
def test_brisque_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        metrics.brisque(bad)


def test_imresize_half_matches_matlab_kernel():
    # Interior output pixels of imresize(x, 0.5) use the bicubic (a=-0.5) kernel widened
    # by 2: taps at distances 0.5, 1.5, 2.5, 3.5 on each side with weights cubic(d/2)/2.
    def cubic(s):
        s = abs(s)
        if s <= 1:
            return 1.5 * s**3 - 2.5 * s**2 + 1
        if s <= 2:
            return -0.5 * s**3 + 2.5 * s**2 - 4 * s + 2
        return 0.0

    half = np.array([cubic(d / 2) / 2 for d in (0.5, 1.5, 2.5, 3.5)])
    expected = np.concatenate([half[::-1], half])
    expected /= expected.sum()
    matrix = metrics._imresize_matrix(40, 0.5).toarray()
    assert matrix.shape == (20, 40)
    row = 10  # output pixel 11 (1-based): u = 21.5, taps on input pixels 18..25 (1-based)
    np.testing.assert_allclose(matrix[row, 17:25], expected, atol=1e-12)
    assert np.count_nonzero(np.abs(matrix[row]) > 1e-15) == 8
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)
    # symmetric padding at the border: first output uses mirrored input indices
    assert np.all(matrix[0, 5:] == 0)
    # odd length rounds up, a constant stays constant
    assert metrics._imresize_half(np.full((9, 7), 3.0)).shape == (5, 4)
    np.testing.assert_allclose(metrics._imresize_half(np.full((9, 7), 3.0)), 3.0)


# ---------------------------------------------------------------- window
def test_window_to_8bit_is_fixed_and_pure():
    a = np.array([[0, 32768, 65535], [100, 200, 300]], dtype=np.uint16)
    b = np.array([[0, 32768, 65535], [60000, 61000, 62000]], dtype=np.uint16)
    a_copy = a.copy()
    wa = metrics.window_to_8bit(a)
    wb = metrics.window_to_8bit(b)
    assert wa.dtype == np.uint8 and wa.shape == a.shape
    np.testing.assert_array_equal(a, a_copy)
    # same counts give the same 8-bit value whatever else is in the image
    np.testing.assert_array_equal(wa[0], wb[0])
    np.testing.assert_array_equal(wa[0], [0, 128, 255])
    np.testing.assert_array_equal(wa[1], np.rint(a[1].astype(np.float64) * 255 / 65535))


def test_window_to_8bit_custom_window_clips():
    counts = np.array([0, 1000, 2000, 4095, 9000], dtype=np.uint16)
    out = metrics.window_to_8bit(counts, low=1000, high=4095)
    np.testing.assert_array_equal(out, [0, 0, np.rint(1000 * 255 / 3095), 255, 255])


def test_window_to_8bit_rejects_empty_window():
    with pytest.raises(ValueError):
        metrics.window_to_8bit(np.zeros(3), low=10, high=10)


# ---------------------------------------------------------------- PSNR / SSIM
def test_psnr_identical_and_offset():
    rng = np.random.default_rng(1)
    ref = rng.integers(1000, 60000, (64, 80)).astype(np.uint16)
    assert metrics.psnr(ref, ref) == np.inf
    offset = 100.0
    expected = 20 * np.log10(65535.0 / offset)
    assert metrics.psnr(ref.astype(np.float64) + offset, ref) == pytest.approx(expected)
    assert metrics.psnr(ref.astype(np.float64) + 1.0, ref, data_range=255.0) == pytest.approx(
        20 * np.log10(255.0)
    )


def test_psnr_ssim_on_stack_per_channel():
    rng = np.random.default_rng(2)
    ref = rng.uniform(10000, 50000, (2, 48, 64))
    test = ref.copy()
    test[1] += 50.0
    p = metrics.psnr(test, ref)
    assert p.shape == (2,) and p[0] == np.inf
    assert p[1] == pytest.approx(20 * np.log10(65535.0 / 50.0))
    s = metrics.ssim(test + rng.normal(0, 2000, test.shape), ref)
    assert s.shape == (2,) and np.all(s < 1.0)


def test_ssim_identical_and_degrades_with_noise():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:96, 0:96]
    ref = 30000 + 10000 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    assert metrics.ssim(ref, ref) == pytest.approx(1.0)
    light = metrics.ssim(ref + rng.normal(0, 200, ref.shape), ref)
    heavy = metrics.ssim(ref + rng.normal(0, 3000, ref.shape), ref)
    assert 1.0 > light > heavy


def test_full_reference_shape_mismatch():
    with pytest.raises(ValueError):
        metrics.psnr(np.zeros((10, 10)), np.zeros((10, 11)))
    with pytest.raises(ValueError):
        metrics.ssim(np.zeros((10, 10)), np.zeros((2, 10, 10)))


# ---------------------------------------------------------------- noise estimate
def test_noise_estimate_smooth_gradient():
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:300, 0:400].astype(np.float64)
    clean = 5000 + 40 * yy + 25 * xx + 0.02 * (xx - 200) ** 2  # smooth, 16-bit scale
    sigma = 50.0
    noisy = np.clip(np.rint(clean + rng.normal(0, sigma, clean.shape)), 0, 65535).astype(np.uint16)
    assert metrics.estimate_noise_flat(noisy) == pytest.approx(sigma, rel=0.15)


def test_noise_estimate_piecewise_constant():
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:300, 0:300]
    clean = np.full((300, 300), 10000.0)
    clean[(yy - 120) ** 2 + (xx - 110) ** 2 < 70**2] = 30000.0  # disc
    clean[yy + 0.6 * xx > 260] += 15000.0  # oblique edge
    clean[40:120, 200:280] -= 6000.0  # rectangle
    sigma = 80.0
    noisy = clean + rng.normal(0, sigma, clean.shape)
    assert metrics.estimate_noise_flat(noisy) == pytest.approx(sigma, rel=0.15)
    # without the flat-region selection the edges inflate the estimate
    assert metrics.estimate_noise_flat(noisy, flat_fraction=1.0) > 1.5 * sigma


def test_noise_estimate_scales_and_ignores_saturation():
    rng = np.random.default_rng(6)
    yy, xx = np.mgrid[0:200, 0:200].astype(np.float64)
    clean = 20000 + 100 * xx
    noisy = clean + rng.normal(0, 30, clean.shape)
    clipped = np.minimum(noisy, 30000)  # half the image saturated (constant)
    assert metrics.estimate_noise_flat(clipped) == pytest.approx(30, rel=0.15)
    noise_a = metrics.estimate_noise_flat(noisy)
    assert metrics.estimate_noise_flat(3 * noisy) == pytest.approx(3 * noise_a, rel=1e-9)


def test_noise_estimate_rejects_bad_input():
    with pytest.raises(ValueError):
        metrics.estimate_noise_flat(np.zeros((2, 10, 10)))
    with pytest.raises(ValueError):
        metrics.estimate_noise_flat(np.zeros((10, 10)), flat_fraction=0.0)


# ---------------------------------------------------------------- table
def test_score_table_rows(goldhill):
    rng = np.random.default_rng(7)
    clean_u16 = (goldhill.astype(np.uint16) * 257).astype(np.uint16)
    noisy_u16 = np.clip(clean_u16 + rng.normal(0, 3000, clean_u16.shape), 0, 65535).astype(
        np.uint16
    )
    rows = metrics.score_table({"clean": clean_u16, "noisy": noisy_u16}, reference=clean_u16)
    assert [r["name"] for r in rows] == ["clean", "noisy"]
    assert all(r["channel"] is None for r in rows)
    clean_row, noisy_row = rows
    assert clean_row["psnr"] == np.inf and clean_row["ssim"] == pytest.approx(1.0)
    assert noisy_row["brisque"] > clean_row["brisque"]
    assert noisy_row["noise"] > clean_row["noise"]
    assert noisy_row["psnr"] == pytest.approx(metrics.psnr(noisy_u16, clean_u16))

    stack = np.stack([clean_u16, noisy_u16])
    stack_rows = metrics.score_table({"scan": stack})
    assert [(r["name"], r["channel"]) for r in stack_rows] == [("scan", 0), ("scan", 1)]
    assert "psnr" not in stack_rows[0]
    assert stack_rows[1]["brisque"] == pytest.approx(noisy_row["brisque"])

    with pytest.raises(ValueError):
        metrics.score_table({"scan": stack}, reference=clean_u16)


def test_import_is_light():
    code = (
        "import sys, napari_xray_denoise.metrics; "
        "bad = [m for m in ('tensorflow', 'keras', 'napari', 'qtpy') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
