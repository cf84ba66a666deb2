"""PG-URE (``pgure``) against the true error, at photon counts where SURE in the
stabilised domain fails."""

import numpy as np
import pytest
from scipy import ndimage

from napari_xray_denoise import noise, pgure


def _scene(shape=(192, 192), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    lam = 1.0 + 6.0 * (xx / shape[1]) + 3.0 * (np.sin(yy / 7.0) > 0)
    return lam, rng


def _scan(lam, rng, gain, read, offset):
    """Counts, clean counts and the noise law (rounding adds 1/12 to the read variance,
    but only where there is read noise: integer photon counts times a whole gain round
    to themselves)."""
    y = offset + gain * rng.poisson(lam) + read * rng.standard_normal(lam.shape)
    law = noise.calibrated_noise(gain, offset, read)
    law = noise.NoiseModel(law.a, law.b + (1 / 12 if read > 0 else 0.0))
    return np.rint(y), offset + gain * lam, law


def _gat_smooth(law):
    """A nonlinear denoiser biased at low counts: smoothing in the Anscombe domain and
    the algebraic inverse."""

    def f(y):
        z = noise.generalized_anscombe(y, law.a, law.b)
        return noise.inverse_generalized_anscombe(
            ndimage.gaussian_filter(z, 1.5), law.a, law.b, method="algebraic"
        )

    return f


@pytest.mark.parametrize(
    "gain, read, offset", [(8.0, 25.0, 200.0), (3.0, 6.0, 60.0), (1.0, 0.0, 0.0)]
)
def test_pgure_matches_the_true_error_at_low_counts(gain, read, offset):
    lam, rng = _scene()
    smooth = lambda y: ndimage.gaussian_filter(y, 1.0)  # noqa: E731
    errs_true, errs_est = [], []
    for trial in range(8):
        y, clean, law = _scan(lam, rng, gain, read, offset)
        probe = pgure.make_probe(y.shape, None, 48, np.random.default_rng(trial), spacing=8)
        for f in (smooth, _gat_smooth(law)):
            terms = pgure.pgure_terms(f, y, law.a, law.b, probe, offset=offset)
            est = float(np.mean(terms + pgure.constant_terms(y, law.a, law.b, probe)))
            rows = np.concatenate([r for r, _ in probe.lattices])
            cols = np.concatenate([c for _, c in probe.lattices])
            errs_true.append(float(np.mean((f(y)[rows, cols] - clean[rows, cols]) ** 2)))
            errs_est.append(est)
    true, est = np.array(errs_true), np.array(errs_est)
    # averaged over trials, unbiased: within three standard errors of the trials'
    # spread, and that spread small (under 4% of the error); the detector's offset known
    for k in range(2):
        d = est[k::2] - true[k::2]
        se = d.std(ddof=1) / np.sqrt(d.size)
        assert se < 0.04 * true[k::2].mean()
        assert abs(d.mean()) < 3 * se


def test_unknown_offset_changes_the_estimate_little():
    """With the offset unknown (the smallest split of ``b``), a denoiser linear at the
    scale of a quantum is estimated without bias, a strongly curved one within 10% (5%
    measured over 30 trials); a single estimate's spread is 8-14% of the error, which
    paired differences of similar denoisers cancel (next test)."""
    lam, rng = _scene(seed=7)
    smooth = lambda y: ndimage.gaussian_filter(y, 1.0)  # noqa: E731
    d = {0: [], 1: []}
    for trial in range(20):
        y, clean, law = _scan(lam, rng, 3.0, 6.0, 60.0)
        probe = pgure.make_probe(y.shape, None, 48, np.random.default_rng(trial), spacing=8)
        rows = np.concatenate([r for r, _ in probe.lattices])
        cols = np.concatenate([c for _, c in probe.lattices])
        for k, f in enumerate((smooth, _gat_smooth(law))):
            terms = pgure.pgure_terms(f, y, law.a, law.b, probe)
            est = np.mean(terms + pgure.constant_terms(y, law.a, law.b, probe))
            true = np.mean((f(y)[rows, cols] - clean[rows, cols]) ** 2)
            d[k].append((est - true) / true)
    se = np.std(d[0], ddof=1) / np.sqrt(len(d[0]))
    assert abs(np.mean(d[0])) < 3 * se + 0.01
    assert abs(np.mean(d[1])) < 0.10


def test_risk_change_ranks_a_worse_denoiser_worse():
    """The paired change of a denoiser biased at low counts against an unbiased one of
    the same smoothing: the estimate says worse, as the truth does (offset unknown)."""
    lam, rng = _scene(seed=3)
    y, clean, law = _scan(lam, rng, 3.0, 6.0, 60.0)
    law = noise.NoiseModel(law.a, law.b + 1 / 12)
    probe = pgure.make_probe(y.shape, None, 32, np.random.default_rng(1), spacing=12)
    ref = lambda v: ndimage.gaussian_filter(v, 1.5)  # noqa: E731
    bad = _gat_smooth(law)
    change = pgure.risk_change(
        pgure.pgure_terms(ref, y, law.a, law.b, probe),
        pgure.pgure_terms(bad, y, law.a, law.b, probe),
        pgure.constant_terms(y, law.a, law.b, probe),
    )
    true_change = np.mean((bad(y) - clean) ** 2) - np.mean((ref(y) - clean) ** 2)
    assert true_change > 0 and change.change > 2 * change.stderr
    assert change.gain_db < 0 and change.upper_db_loss(2.0) > 0


def test_split_noise_law():
    assert pgure.split_noise_law(8.0, -975.0) == (975.0 / 8.0, 0.0)
    assert pgure.split_noise_law(2.0, 36.0) == (0.0, 36.0)
    assert pgure.split_noise_law(3.0, 36.0 - 180.0, offset=60.0) == (60.0, 36.0)
    with pytest.raises(ValueError, match="gain"):
        pgure.split_noise_law(0.0, 1.0)
