"""The shipped default model on a generated photon-starved scene (issue 24): no invented
structure. Its error must hold no more column or row structure than BM3D + GAT's (the
share of the squared error in the error's column and row means,
``fidelity.line_error_share``), and it must not be worse than BM3D there."""

import numpy as np
import pytest

from napari_xray_denoise import classical, fidelity, metrics, noise, synth

pytestmark = pytest.mark.skipif(
    not classical.bm3d_available(), reason="the bm3d package (extra 'bm3d') is not installed"
)


@pytest.fixture(scope="module")
def dark_scan():
    """A dense-electronics scene at 0.5-50 quanta a pixel, both energies, by a detector
    with an offset (gain 3 ADU per quantum, read noise 6 ADU, offset 60, 14-bit)."""
    rng = np.random.default_rng(20261203)
    t = synth.dense_electronics((192, 256), rng)
    channels = [
        synth.scan_detector(
            tt, rng, dose=d, gain=3.0, read_noise=6.0, offset=60.0, code_max=16383.0
        )
        for tt, d in ((t, 600.0), (np.power(t, 0.55), 170.0))
    ]
    noisy = np.stack([c.noisy for c in channels])
    clean = np.stack([c.clean for c in channels])
    laws = [noise.NoiseModel(c.a, c.b) for c in channels]
    return noisy, clean, laws


@pytest.fixture(scope="module")
def outputs(dark_scan):
    from napari_xray_denoise.core import load_model

    noisy, _, laws = dark_scan
    return load_model().denoise(noisy), classical.bm3d_denoise(noisy, noise=laws)


def test_no_more_line_structure_than_bm3d(dark_scan, outputs):
    _, clean, _ = dark_scan
    model, bm3d = outputs
    for c in range(2):
        col_m, row_m = fidelity.line_error_share(model[c], clean[c])
        col_b, row_b = fidelity.line_error_share(bm3d[c], clean[c])
        # a little slack for the estimate's own noise: white noise alone puts about
        # 1/rows of its energy in the column means
        assert col_m <= col_b + 1.0 / clean.shape[1], (c, col_m, col_b)
        assert row_m <= row_b + 1.0 / clean.shape[2], (c, row_m, row_b)


def test_not_worse_than_bm3d_on_a_dark_scene(dark_scan, outputs):
    _, clean, _ = dark_scan
    model, bm3d = outputs
    for c in range(2):
        ours = metrics.psnr(model[c].astype(np.float64), clean[c], data_range=16383.0)
        theirs = metrics.psnr(bm3d[c].astype(np.float64), clean[c], data_range=16383.0)
        assert ours >= theirs - 0.1, (c, ours, theirs)
