"""Tests of the physics-based dual-energy bag phantom (no Qt, no TensorFlow)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from napari_xray_denoise import phantom
from napari_xray_denoise.phantom import (
    MATERIAL_CLASS_OF,
    MATERIAL_CLASSES,
    NoiseParams,
    detector_spectra,
    load_attenuation_table,
    make_bag,
    noise_free_uint16,
    polychromatic_transmission,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def default_bag():
    return make_bag()


def _unclipped(scan, c, n_std=6.0):
    """Pixels of channel c whose noise cannot reach 0 or 65535 (selected on the clean level)."""
    std = np.sqrt(scan.noise[c].variance(scan.clean[c]))
    return (scan.clean[c] - n_std * std > 0) & (scan.clean[c] + n_std * std < 65535)


# ----------------------------------------------------------------- determinism, shapes
def test_same_seed_gives_identical_scan():
    a, b = make_bag((96, 160), seed=3), make_bag((96, 160), seed=3)
    np.testing.assert_array_equal(a.noisy, b.noisy)
    np.testing.assert_array_equal(a.clean, b.clean)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_different_seeds_give_different_bags():
    a, b = make_bag((96, 160), seed=3), make_bag((96, 160), seed=4)
    assert not np.array_equal(a.clean, b.clean)
    assert not np.array_equal(a.labels, b.labels)


def test_noise_seed_changes_only_the_noise():
    a = make_bag((96, 160), seed=3, noise_seed=1)
    b = make_bag((96, 160), seed=3, noise_seed=2)
    np.testing.assert_array_equal(a.clean, b.clean)
    assert np.mean(a.noisy != b.noisy) > 0.9
    default = make_bag((96, 160), seed=3)
    np.testing.assert_array_equal(default.noisy, make_bag((96, 160), seed=3, noise_seed=3).noisy)


@pytest.mark.parametrize("shape", [(101, 257), (257, 101), (32, 33), (200, 200)])
def test_any_shape_gives_consistent_arrays(shape):
    scan = make_bag(shape, seed=7)
    assert scan.noisy.shape == scan.clean.shape == scan.transmission.shape == (2, *shape)
    assert scan.noisy.dtype == np.uint16 and scan.clean.dtype == np.float64
    assert scan.labels.shape == shape and scan.labels.dtype == np.uint8
    assert set(np.unique(scan.labels)) <= set(MATERIAL_CLASSES)
    assert scan.streak_gain.shape == (2, shape[1])
    assert set(scan.thickness) == set(MATERIAL_CLASS_OF)
    assert all(t.shape == shape and t.min() >= 0 for t in scan.thickness.values())
    assert np.all(np.isfinite(scan.clean)) and scan.clean.min() > 0
    assert 0 < scan.transmission.min() and scan.transmission.max() <= 1 + 1e-9


def test_default_bag_contents(default_bag):
    scan = default_bag
    assert scan.noisy.shape == (2, 640, 1000)
    present = {MATERIAL_CLASSES[k] for k in np.unique(scan.labels)}
    assert {"air", "organic", "liquid", "aluminium", "steel", "explosive"} <= present
    assert scan.params["seed"] == 0 and scan.params["dose"] == 3000.0
    assert scan.params["belt_axis"] == 0
    # the low channel sees more contrast than the high one, and steel is very dark
    assert scan.transmission[0].mean() < scan.transmission[1].mean()
    steel = scan.labels == 7
    assert np.median(scan.transmission[0][steel]) < 0.3
    assert np.mean(scan.labels == 0) > 0.1  # air around the bag


# ----------------------------------------------------------------- noise model
@pytest.mark.parametrize("channel", [0, 1])
def test_noise_follows_affine_poisson_gaussian_law(channel):
    """Residual variance binned by clean level is a line: slope gain, intercept read_std^2.

    Read noise is raised so the intercept is measurable from one scan; the intercept
    tolerance is 4 standard errors of the weighted fit, with Var(sample variance) =
    2 var^2 / (n - 1) per bin, and the test demands that error be small (< 15 %).
    """
    scan = make_bag((320, 500), seed=1, read_noise=(120.0, 400.0))
    truth = scan.noise[channel]
    keep = _unclipped(scan, channel)
    mean = scan.clean[channel][keep]
    resid = scan.noisy[channel][keep].astype(np.float64) - mean
    edges = np.quantile(mean, np.linspace(0, 1, 26))
    idx = np.clip(np.searchsorted(edges, mean, side="right") - 1, 0, 24)
    n = np.bincount(idx, minlength=25)
    m = np.bincount(idx, mean, 25) / n
    r_mean = np.bincount(idx, resid, 25) / n
    v = (np.bincount(idx, resid**2, 25) - n * r_mean**2) / (n - 1)
    weights = (n - 1) / (2 * v**2)
    design = np.stack([m, np.ones_like(m)], axis=1)
    cov = np.linalg.inv(design.T @ (design * weights[:, None]))
    slope, intercept = cov @ design.T @ (weights * v)
    se_intercept = np.sqrt(cov[1, 1])
    assert abs(slope - truth.gain) < 0.1 * truth.gain
    assert se_intercept < 0.15 * truth.read_std**2
    assert abs(intercept - truth.read_std**2) < 4 * se_intercept
    # unbiased: E[noisy] = clean
    assert abs(resid.mean()) < 4 * np.sqrt(v.mean() / resid.size)


def test_repeated_noise_averages_to_clean_with_predicted_variance():
    """Same scene, 8 noise seeds: per-pixel z-scores of the mean are N(0, 1) at the defaults."""
    scans = [make_bag((64, 96), seed=5, noise_seed=k) for k in range(8)]
    clean = scans[0].clean
    stack = np.stack([s.noisy.astype(np.float64) for s in scans])
    for c in range(2):
        keep = _unclipped(scans[0], c)
        var = scans[0].noise[c].variance(clean[c][keep])
        z = (stack[:, c][:, keep].mean(axis=0) - clean[c][keep]) / np.sqrt(var / len(scans))
        assert abs(z.mean()) < 0.06  # 6000 pixels: standard error 0.013
        assert 0.9 < z.var() < 1.1  # standard error about 0.02


def test_noise_params_describe_output_units():
    scan = make_bag((64, 64), dose=1000.0, white_level=50000.0, read_noise=(10.0, 30.0))
    low, high = scan.noise
    assert isinstance(low, NoiseParams)
    assert low.gain == pytest.approx(50.0)
    assert high.gain == pytest.approx(50000.0 / scan.params["dose_high"])
    assert low.read_std**2 == pytest.approx(100.0 + 1 / 12)
    assert high.read_std**2 == pytest.approx(900.0 + 1 / 12)
    assert low.variance(1000.0) == pytest.approx(50.0 * 1000.0 + 100.0 + 1 / 12)


# ----------------------------------------------------------------- physics
def test_high_z_has_larger_dual_energy_log_ratio_than_organics():
    """log(T_low)/log(T_high) from the clean scan: steel/copper above organics.

    Pixels count for a class when its label is that class and it gives >= 90 % of the
    60 keV attenuation there (2-px erosion keeps blur-mixed edges out).
    """
    table = load_attenuation_table()
    k60 = int(np.argmin(np.abs(table.energies_kev - 60.0)))
    medians: dict[str, list[float]] = {}
    for seed in (0, 1, 3):
        scan = make_bag(seed=seed)
        white = scan.params["white_level"]
        t_low, t_high = (scan.clean[c] / (white * scan.streak_gain[c]) for c in range(2))
        np.testing.assert_allclose(np.stack([t_low, t_high]), scan.transmission, rtol=1e-12)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.log(t_low) / np.log(t_high)
        per_class = np.zeros((len(MATERIAL_CLASSES), *scan.labels.shape))
        for name, t in scan.thickness.items():
            per_class[MATERIAL_CLASS_OF[name]] += table.linear_mu(name)[k60] * t
        fraction = per_class / np.maximum(per_class.sum(axis=0), 1e-12)
        for k, name in MATERIAL_CLASSES.items():
            pure = (scan.labels == k) & (fraction[k] >= 0.9) & (t_high < 0.95)
            pure = ndimage.binary_erosion(pure, iterations=2)
            if k and pure.sum() >= 50:
                medians.setdefault(name, []).append(float(np.median(ratio[pure])))
    assert "steel" in medians and "organic" in medians
    low_z = max(max(medians[n]) for n in ("organic", "liquid", "explosive") if n in medians)
    for metal in ("steel", "copper"):
        if metal in medians:
            assert min(medians[metal]) > low_z + 0.3, medians


def test_polychromatic_transmission_physics():
    spectra = detector_spectra()
    thick = np.linspace(0.0, 3.0, 31, dtype=np.float32)[None, :]
    for name in MATERIAL_CLASS_OF:
        t = polychromatic_transmission({name: thick}, spectra)
        assert t[:, 0, 0] == pytest.approx([1.0, 1.0])
        assert np.all(np.diff(t, axis=-1) < 0)  # more material, less light
        assert np.all(t[1, 0, 1:] > t[0, 0, 1:])  # the high channel is harder
        direct = np.exp(-spectra.material_mu[name][:, None] * thick[0].astype(np.float64))
        np.testing.assert_allclose(t[:, 0], spectra.weights @ direct, rtol=1e-5, atol=1e-6)
    # beam hardening: effective attenuation per cm falls with thickness
    water = polychromatic_transmission({"water": thick}, spectra)[0, 0, 1:]
    assert np.all(np.diff(-np.log(water) / thick[0, 1:]) < 0)
    # materials add along the path
    both = polychromatic_transmission({"water": thick, "steel": thick * 0.1}, spectra)
    assert np.all(both < polychromatic_transmission({"water": thick}, spectra) + 1e-12)


def test_streaks_are_per_detector_column_and_air_maps_to_white():
    scan = make_bag((128, 400), seed=2, gain_streak_std=0.02)
    flat = scan.clean / scan.transmission
    assert np.allclose(flat, flat[:, :1, :], rtol=1e-12)  # constant along the belt axis 0
    assert 0.012 < scan.streak_gain.std() < 0.028
    flat_scan = make_bag((128, 400), seed=2, gain_streak_std=0.0, white_level=40000.0)
    empty = sum(t for t in flat_scan.thickness.values()) == 0
    outside = ndimage.binary_erosion(empty, iterations=4)  # beyond the detector blur
    assert outside.sum() > 1000
    np.testing.assert_allclose(flat_scan.clean[:, outside], 40000.0, rtol=1e-6)
    assert abs(flat_scan.noisy[0][outside].mean() - 40000.0) < 5 * np.sqrt(
        flat_scan.noise[0].variance(40000.0) / outside.sum()
    )


def test_hot_and_dead_pixels_only_in_noisy():
    scan = make_bag((64, 80), seed=1, hot_pixels=6)
    defects = scan.params["defects"]
    assert len(defects) == 6
    assert {value for *_, value in defects} == {0, 65535}
    last = {(c, y, x): value for c, y, x, value in defects}  # a position may repeat
    for (c, y, x), value in last.items():
        assert scan.noisy[c, y, x] == value
    intact = make_bag((64, 80), seed=1)
    assert intact.params["defects"] == []
    changed = scan.noisy != intact.noisy
    assert 0 < changed.sum() <= 6
    assert all(changed[c, y, x] or intact.noisy[c, y, x] == v for (c, y, x), v in last.items())
    np.testing.assert_array_equal(scan.clean, intact.clean)


def test_noise_free_uint16_rounds_and_clips(default_bag):
    ref = noise_free_uint16(default_bag)
    assert ref.dtype == np.uint16 and ref.shape == default_bag.clean.shape
    np.testing.assert_array_equal(ref, np.clip(np.rint(default_bag.clean), 0, 65535))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shape": (16, 100)},
        {"shape": (64,)},
        {"dose": 0.0},
        {"dose": float("nan")},
        {"white_level": 70000.0},
        {"read_noise": -1.0},
        {"read_noise": (1.0, float("inf"))},
        {"gain_streak_std": 0.5},
        {"seed": -1},
        {"seed": 1.5},
        {"noise_seed": -3},
        {"high_dose": 0.0},
        {"n_objects": -1},
    ],
)
def test_bad_input_raises_value_error(kwargs):
    with pytest.raises(ValueError):
        make_bag(**{"shape": (40, 40), **kwargs})


def test_threat_free_bag_has_no_explosive():
    scan = make_bag((200, 300), seed=4, threat=False, n_objects=10)
    assert all(o["kind"] != "explosive" for o in scan.params["objects"])
    assert not scan.thickness["rdx"].any() and not scan.thickness["tnt"].any()
    assert len(scan.params["objects"]) == 10


# ----------------------------------------------------------------- shipped table
def test_shipped_table_is_small_and_complete():
    data = resources.files("napari_xray_denoise").joinpath("data")
    assert len(data.joinpath("attenuation.npz").read_bytes()) < 200_000
    note = data.joinpath("attenuation_source.txt").read_text()
    assert "xraydb" in note and "Elam" in note and "MIT" in note
    table = load_attenuation_table()
    assert table.energies_kev[0] == 10.0 and table.energies_kev[-1] == 160.0
    assert set(MATERIAL_CLASS_OF) | {"csi"} <= set(table.names)
    assert np.all(table.mu_rho_cm2_g > 0)
    # attenuation falls with energy from 40 keV on (above the Cs/I K edges)
    assert np.all(np.diff(table.mu_rho_cm2_g[:, table.energies_kev >= 40], axis=1) < 0)


def test_shipped_table_matches_xraydb():
    pytest.importorskip("xraydb")
    spec = importlib.util.spec_from_file_location(
        "make_attenuation_table", REPO / "scripts" / "make_attenuation_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fresh = module.build_table()
    table = load_attenuation_table()
    assert tuple(fresh["names"]) == table.names
    np.testing.assert_allclose(fresh["mu_rho_cm2_g"], table.mu_rho_cm2_g, rtol=1e-9)
    np.testing.assert_allclose(fresh["densities_g_cm3"], table.densities_g_cm3)


def test_phantom_imports_neither_xraydb_nor_gui_nor_tensorflow():
    code = (
        "import sys\n"
        "from napari_xray_denoise.phantom import make_bag\n"
        "make_bag((40, 40))\n"
        "bad = {'xraydb', 'tensorflow', 'keras', 'napari', 'qtpy'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_module_exports_exist():
    for name in phantom.__all__:
        assert hasattr(phantom, name)
