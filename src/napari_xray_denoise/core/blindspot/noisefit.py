"""Noise-model arithmetic for the blind-spot denoiser (numpy/scipy only, no TensorFlow).

Units: ``x01`` values are counts divided by the model's ``scale`` (float, ~[0, 1]);
variances in x01 units are ``var_counts / scale**2``. An affine noise model
``var = a * mean + b`` in x01 units is ``var_counts = (a * scale) * mean_counts +
b * scale**2`` in counts (:func:`affine_to_counts`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize

#: robust std from the median absolute deviation of a Gaussian
_MAD_TO_STD = 1.482602218505602


@dataclass(frozen=True)
class AffineNoise:
    """Affine noise model ``var = a * mean + b`` (x01 units) with a typical level.

    ``mean_ref`` is the median signal level (x01) the estimate was made around and
    ``var_ref = a * mean_ref + b`` the noise variance there (always > 0).
    """

    a: float
    b: float
    mean_ref: float
    var_ref: float

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def affine_to_counts(a: float, b: float, scale: float) -> tuple[float, float]:
    """Convert ``var = a*mean + b`` from x01 units to counts: returns ``(a_counts, b_counts)``."""
    return float(a) * float(scale), float(b) * float(scale) ** 2


def posterior_mean(y, mu, prior_var, noise_var):
    """Bayesian posterior mean of a Gaussian prior N(mu, prior_var) and likelihood N(x, noise_var).

    ``x_hat = (mu * noise_var + prior_var * y) / (prior_var + noise_var)``; where both
    variances are 0 the prior mean ``mu`` is returned. Arrays broadcast; any float unit.
    """
    y, mu = np.asarray(y), np.asarray(mu)
    prior_var, noise_var = np.asarray(prior_var), np.asarray(noise_var)
    shape = np.broadcast_shapes(y.shape, mu.shape, prior_var.shape, noise_var.shape)
    num = np.empty(shape, np.result_type(y, mu, prior_var, noise_var, np.float32))
    np.multiply(mu, noise_var, out=num)
    num += prior_var * y  # two full-size temporaries at most
    denom = prior_var + noise_var
    ok = denom > 0
    np.divide(num, denom, out=num, where=ok)
    if not np.all(ok):
        np.copyto(num, np.broadcast_to(mu, shape), where=~ok)
    return num[()] if num.ndim == 0 else num


def _four_neighbour_residuals(x01: np.ndarray, valid: np.ndarray | None):
    """Centre minus mean of 4 neighbours (var = 1.25 * noise var for white noise), 3x3 mean."""
    y = np.asarray(x01, dtype=np.float64)
    c = y[1:-1, 1:-1]
    n4 = 0.25 * (y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:])
    resid = c - n4
    local_mean = (4.0 * n4 + c + y[:-2, :-2] + y[:-2, 2:] + y[2:, :-2] + y[2:, 2:]) / 9.0
    ok = np.ones_like(c, dtype=bool)
    if valid is not None:
        v = np.asarray(valid, dtype=bool)
        ok = v[1:-1, 1:-1] & v[:-2, 1:-1] & v[2:, 1:-1] & v[1:-1, :-2] & v[1:-1, 2:]
    return resid[ok], local_mean[ok]


def estimate_affine_noise(
    x01: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    n_bins: int = 12,
    max_pixels: int = 2_000_000,
    seed: int = 0,
) -> AffineNoise:
    """Quick Poisson-Gaussian estimate ``var = a*mean + b`` of one 2-D image (x01 units).

    Used to give the network's noise parameters and ``std`` output their units before
    training, not as a final answer. Residuals centre-minus-4-neighbour-mean are binned by
    the local 3x3 mean; each bin's variance is a MAD estimate (robust to edges), and a
    line is fitted with relative weights. ``valid`` (bool, same shape) excludes saturated
    pixels. Raises ``ValueError`` if the image is smaller than 3x3.
    """
    x01 = np.asarray(x01)
    if x01.ndim != 2 or min(x01.shape) < 3:
        raise ValueError(f"Noise estimation needs a 2-D image of at least 3x3, got {x01.shape}.")
    resid, mean = _four_neighbour_residuals(x01, valid)
    if resid.size < 64:
        raise ValueError("Too few unsaturated pixels to estimate the noise; use a larger scan.")
    if resid.size > max_pixels:
        pick = np.random.default_rng(seed).choice(resid.size, max_pixels, replace=False)
        resid, mean = resid[pick], mean[pick]
    order = np.argsort(mean)
    groups = np.array_split(order, max(1, min(n_bins, resid.size // 256)))
    bin_mean = np.array([mean[g].mean() for g in groups])
    bin_var = np.array(
        [
            (_MAD_TO_STD * np.median(np.abs(resid[g] - np.median(resid[g])))) ** 2 / 1.25
            for g in groups
        ]
    )
    floor = max(float(np.max(bin_var)) * 1e-6, 1e-30)
    bin_var = np.maximum(bin_var, floor)
    mean_ref = float(np.median(mean))
    a, b = 0.0, float(np.median(bin_var))
    if len(groups) >= 2 and np.ptp(bin_mean) > 0:
        a_fit, b_fit = np.polyfit(bin_mean, bin_var, 1, w=1.0 / bin_var)
        if a_fit > 0:
            a, b = float(a_fit), float(b_fit)
    var_ref = a * mean_ref + b
    if not var_ref > 0:
        a, b = 0.0, float(np.median(bin_var))
        var_ref = b
    return AffineNoise(a=a, b=b, mean_ref=mean_ref, var_ref=float(var_ref))


def fit_uncalib_noise(
    y: np.ndarray,
    mu: np.ndarray,
    *,
    low_percentile: float = 2.0,
    high_percentile: float = 97.0,
    valid: np.ndarray | None = None,
    max_pixels: int = 400_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Fit ``v = a*mu + b`` to residuals ``y - mu`` by Gaussian likelihood (x01 units).

    The ``uncalib`` step of Khademi et al.: keep pixels whose noisy value lies between the
    ``low``/``high`` percentiles of ``y``, then minimise ``mean((y-mu)^2 / v + log v)`` with
    ``v = max(floor, a*mu + b)`` by Nelder-Mead. Differences from the source: the search
    starts from the least-squares moment fit instead of (0.01, 0), it runs on parameters
    scaled to O(1) so Nelder-Mead's simplex fits 16-bit data, the floor is relative
    (1e-4 x the mean squared residual, not 1e-4 absolute) and there is no ``b * 10`` fudge.
    ``y``, ``mu`` (and ``valid``) are same-shape arrays; returns ``(a, b)``.
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    mu = np.asarray(mu, dtype=np.float64).ravel()
    if y.shape != mu.shape:
        raise ValueError(f"y and mu must have the same size, got {y.size} and {mu.size}.")
    keep = np.isfinite(y) & np.isfinite(mu)
    if valid is not None:
        keep &= np.asarray(valid, dtype=bool).ravel()
    lo, hi = np.percentile(y[keep], [low_percentile, high_percentile]) if keep.any() else (0, 0)
    keep &= (y >= lo) & (y <= hi)
    idx = np.flatnonzero(keep)
    if idx.size < 16:
        raise ValueError("Too few pixels to fit the noise; the scan is too small or flat.")
    if idx.size > max_pixels:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_pixels, replace=False))
    y, mu = y[idx], mu[idx]
    r2 = (y - mu) ** 2
    v_ref = float(r2.mean())
    if not v_ref > 0:
        return 0.0, 0.0
    m_ref = float(np.abs(mu).mean()) or 1.0
    floor = 1e-4 * v_ref
    mu_s = mu / m_ref  # O(1)
    r2_s = r2 / v_ref  # O(1)

    def objective(p):
        v = np.maximum(floor / v_ref, p[0] * mu_s + p[1])
        return float(np.mean(r2_s / v + np.log(v)))

    design = np.stack([mu_s, np.ones_like(mu_s)], axis=1)
    start, *_ = np.linalg.lstsq(design, r2_s, rcond=None)
    if not np.all(start[0] * mu_s + start[1] > 0):
        start = np.array([0.0, 1.0])
    res = optimize.minimize(
        objective,
        start,
        method="Nelder-Mead",
        options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 4000},
    )
    a_s, b_s = res.x
    return float(a_s * v_ref / m_ref), float(b_s * v_ref)
