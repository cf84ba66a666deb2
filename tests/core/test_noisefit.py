"""Tests of ``napari_xray_denoise.core.blindspot.noisefit``: posterior mean, affine noise fits (numpy arithmetic)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("keras")


from napari_xray_denoise import core  # noqa: E402
from napari_xray_denoise.core.blindspot import noisefit  # noqa: E402


def test_posterior_mean_matches_numerical_integration():
    y, mu, prior_var, noise_var = 0.8, 0.5, 0.02, 0.01
    grid = np.linspace(-1, 2, 200_001)
    density = np.exp(-((grid - mu) ** 2) / (2 * prior_var) - (y - grid) ** 2 / (2 * noise_var))
    expected = np.sum(grid * density) / np.sum(density)
    got = core.posterior_mean(y, mu, prior_var, noise_var)
    assert got == pytest.approx(expected, rel=1e-6)
    # limits: no noise -> the measurement, no prior spread -> the prior mean
    assert core.posterior_mean(y, mu, 0.02, 0.0) == pytest.approx(y)
    assert core.posterior_mean(y, mu, 0.0, 0.01) == pytest.approx(mu)
    assert core.posterior_mean(y, mu, 0.0, 0.0) == pytest.approx(mu)


def test_uncalib_fit_recovers_known_affine_noise():
    rng = np.random.default_rng(3)
    a_true, b_true = 2e-4, 1.5e-5
    mu = rng.uniform(0.05, 0.9, 600_000)
    y = mu + rng.normal(size=mu.size) * np.sqrt(a_true * mu + b_true)
    a, b = core.fit_uncalib_noise(y, mu)
    assert a == pytest.approx(a_true, rel=0.1)
    assert b == pytest.approx(b_true, rel=0.1)
    a_counts, b_counts = noisefit.affine_to_counts(a, b, 4095.0)
    assert a_counts == pytest.approx(a * 4095.0) and b_counts == pytest.approx(b * 4095.0**2)


def test_noise_estimate_from_one_image_is_close():
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:400, :400]
    clean = 0.1 + 0.8 * xx / 400 + 0.05 * np.sin(yy / 20)
    noisy = clean + rng.normal(size=clean.shape) * np.sqrt(2e-4 * clean + 1e-5)
    est = noisefit.estimate_affine_noise(noisy)
    assert est.a == pytest.approx(2e-4, rel=0.2)
    assert est.var_ref == pytest.approx(2e-4 * est.mean_ref + 1e-5, rel=0.2)
