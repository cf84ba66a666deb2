"""The network domain of the single-pass model (``vst``, numpy only)."""

import numpy as np
import pytest

from napari_xray_denoise import vst


def test_round_trip_and_range():
    counts = np.linspace(0, 4095, 1000)
    u = vst.to_network(counts, 2.0, 25.0, 4095.0)
    assert u.dtype == np.float32 and u.max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(vst.from_network(u, 2.0, 25.0, 4095.0)[10:], counts[10:], rtol=1e-4)


@pytest.mark.parametrize("a,b,code", [(30.0, 400.0, 65535.0), (0.5, 4.0, 4095.0)])
def test_noise_in_the_network_domain_has_the_told_level(a, b, code):
    rng = np.random.default_rng(0)
    mean = 0.4 * code
    y = a * rng.poisson(mean / a, 200_000) + rng.normal(0, np.sqrt(b), 200_000)
    u = vst.to_network(y, a, b, code)
    assert u.std() == pytest.approx(vst.noise_level(a, b, code), rel=0.03)


def test_code_range_ignores_hot_pixels():
    rng = np.random.default_rng(1)
    scan = rng.integers(0, 4096, (100, 100)).astype(np.uint16)
    scan[0, :5] = 65535
    assert vst.code_range(scan) == 4095.0
    assert vst.code_range(np.full((10, 10), 60000)) == 65535.0


def test_bad_noise_law_is_refused():
    with pytest.raises(ValueError, match="gain a > 0"):
        vst.to_network(np.ones(3), 0.0, 1.0, 4095.0)
