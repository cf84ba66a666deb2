"""Poisson-Gaussian noise of X-ray scans: fitting from one image, variance stabilisation.

Noise law (Foi, Trimeche, Katkovnik, Egiazarian 2008, "Practical Poissonian-Gaussian
noise modeling and fitting for single-image raw-data", IEEE TIP 17(10)): a pixel with
expected value ``mean`` (counts) has variance ``a * mean + b`` (counts^2), where ``a`` is
the gain (counts per detected quantum) and ``b`` the read-noise variance. ``b`` may be
negative: that is how a positive pedestal (offset) shows up in the affine law.

Everything here works in counts (float64 internally); 16-bit scans can be passed as
``uint16`` arrays. Variance-stabilised values (``generalized_anscombe``) are
dimensionless with noise of unit standard deviation.

Public API
----------
NoiseModel, NoiseFit
fit_poisson_gaussian(image) -> NoiseModel (2-D) or tuple of NoiseModel (C, Y, X)
calibrated_noise(gain, offset, read_std) -> NoiseModel of a calibrated detector
fit_noise_levels(image_2d) -> NoiseFit (model + the level sets it came from)
generalized_anscombe(y, a, b) -> z
inverse_generalized_anscombe(D, a, b, method="exact"|"closed_form"|"algebraic")
expected_generalized_anscombe(mean, a, b) -> E[GAT(y) | mean]
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage, special
from scipy.interpolate import PchipInterpolator

__all__ = [
    "NoiseFit",
    "NoiseModel",
    "calibrated_noise",
    "expected_generalized_anscombe",
    "fit_noise_levels",
    "fit_poisson_gaussian",
    "generalized_anscombe",
    "inverse_generalized_anscombe",
]

_MAD_TO_STD = 1.482602218505602  # 1 / Phi^-1(3/4): MAD -> std for Gaussian samples
_TRUNCATE_AT = 3.5  # residuals beyond this many (robust) std are outliers
# E[X^2 | |X| <= c] for X ~ N(0, 1): 1 - 2 c phi(c) / (2 Phi(c) - 1)
_TRUNCATED_SECOND_MOMENT = 1.0 - 2.0 * _TRUNCATE_AT * np.exp(-0.5 * _TRUNCATE_AT**2) / np.sqrt(
    2.0 * np.pi
) / special.erf(_TRUNCATE_AT / np.sqrt(2.0))
# Sampling variance of a level-set variance v from n overlapping residuals is about
# 2 * v^2 * _VAR_SE_FACTOR / n: the 3x3 residuals of neighbours are correlated
# (sum of squared autocorrelations (1 + 2*(4/6)^2 + 2*(1/6)^2)^2 = 3.78), times ~1.05
# for the efficiency of the truncated estimator.
_VAR_SE_FACTOR = 4.0


# --------------------------------------------------------------------------- model
@dataclass(frozen=True)
class NoiseModel:
    """Affine Poisson-Gaussian noise law of one channel: ``Var = a * mean + b``.

    a: gain in counts per detected quantum (> 0 for photon noise; 0 means pure Gaussian).
    b: read-noise variance in counts^2; negative values stand for a pedestal/offset.
    """

    a: float
    b: float

    def __post_init__(self):
        if not (np.isfinite(self.a) and np.isfinite(self.b)):
            raise ValueError(f"NoiseModel needs finite a and b, got a={self.a}, b={self.b}.")
        if self.a < 0:
            raise ValueError(f"NoiseModel gain a must be >= 0, got {self.a}.")
        object.__setattr__(self, "a", float(self.a))
        object.__setattr__(self, "b", float(self.b))

    def variance(self, mean_counts):
        """Noise variance (counts^2) at expected level ``mean_counts`` (counts); never < 0."""
        return np.maximum(self.a * np.asarray(mean_counts, dtype=np.float64) + self.b, 0.0)

    def std(self, mean_counts):
        """Noise standard deviation (counts) at expected level ``mean_counts`` (counts)."""
        return np.sqrt(self.variance(mean_counts))

    def to_dict(self) -> dict:
        """Plain ``{"a": float, "b": float}``, ready for ``json.dumps``."""
        return {"a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, data) -> NoiseModel:
        """Inverse of :meth:`to_dict`; extra keys are ignored."""
        try:
            return cls(a=float(data["a"]), b=float(data["b"]))
        except (KeyError, TypeError) as err:
            raise ValueError(
                f"a noise model needs numeric keys 'a' and 'b', got {data!r}."
            ) from err


@dataclass(frozen=True)
class NoiseFit:
    """Result of :func:`fit_noise_levels`: the model and the level sets it was fitted to.

    mean: (n,) float64 level-set means (counts); variance: (n,) robust noise variance
    (counts^2) per level set; count: (n,) pixels per level set; used: (n,) bool, False for
    level sets rejected as outliers; a_stderr, b_stderr: standard errors of a and b
    (from the spread of the level-set variances, assuming independent level sets);
    note: how ``b`` was chosen (fitted, set to 0 when not significant, clamped).
    """

    model: NoiseModel
    mean: np.ndarray
    variance: np.ndarray
    count: np.ndarray
    used: np.ndarray
    a_stderr: float
    b_stderr: float
    note: str = "fitted a and b"  #: how b was chosen (see ``_robust_choice``)


def calibrated_noise(gain: float, offset: float = 0.0, read_std: float = 0.0) -> NoiseModel:
    """The noise law of a calibrated detector: counts = offset + gain * quanta + read noise,
    so ``Var = gain * (mean - offset) + read_std^2`` (``a = gain``, ``b = read_std^2 - gain * offset``).
    Raises ``ValueError`` with one sentence for a gain <= 0 or non-finite values."""
    if not (np.isfinite(gain) and gain > 0):
        raise ValueError(
            f"the detector gain must be a positive number of counts per quantum, got {gain}."
        )
    if not (np.isfinite(offset) and np.isfinite(read_std) and read_std >= 0):
        raise ValueError("the detector offset and read noise must be finite, read noise >= 0.")
    return NoiseModel(float(gain), float(read_std) ** 2 - float(gain) * float(offset))


# --------------------------------------------------------------------------- fitting
# Separable second difference [1,-2,1] x [1,-2,1] / 6: unit noise gain (sum of squares 1),
# zero response to any f(y) + g(x) (so column gain streaks and straight edges along the
# axes cancel) and to anything linear along either axis.
_SECOND_DIFF = np.outer([1.0, -2.0, 1.0], [1.0, -2.0, 1.0]) / 6.0


def _clip_levels(y: np.ndarray, clip_low, clip_high) -> tuple[float | None, float | None]:
    """Clip levels: given ones, or the image min/max when several pixels sit exactly there."""
    many = max(3, int(1e-5 * y.size))

    def detect(extreme):
        return float(extreme) if np.count_nonzero(y == extreme) >= many else None

    low = detect(y.min()) if clip_low is None else float(clip_low)
    high = detect(y.max()) if clip_high is None else float(clip_high)
    if high is None and y.max() >= 65535:
        high = 65535.0
    return low, high


def _kernel_gain(filt, size: int = 15) -> float:
    """Sum of squared impulse-response weights of a linear filter (its noise variance gain)."""
    impulse = np.zeros((size, size))
    impulse[size // 2, size // 2] = 1.0
    return float(np.sum(filt(impulse) ** 2))


# Level sets closer than this many noise std to a clip level are dropped: there the
# windows kept (those with no clipped pixel) under-represent large noise excursions.
_CLIP_MARGIN = 3.5
_TREND_WINDOW = 9  # box over which the gradient's local trend is removed


def _edge_strength(y: np.ndarray, sigma: float) -> tuple[np.ndarray, float]:
    """Squared magnitude of the detrended gradient, and its noise gain per component.

    G = Sobel of the Gaussian-smoothed image, minus its own 9x9 box mean: an edge or
    texture makes G stand out from its surroundings, while a smooth ramp (constant or
    slowly varying G, which the residual kernel cancels anyway) does not. Each component
    is odd along one axis, so it is orthogonal to the (even-even) residual kernel and to
    the other component: for Gaussian noise, |G|^2 / (gain * var) is chi-square with 2
    degrees of freedom and independent of the residual, so selecting on it does not
    bias the variance.
    """

    def detrended(img, axis):
        g = ndimage.sobel(
            ndimage.gaussian_filter(img, sigma, mode="reflect"), axis=axis, mode="reflect"
        )
        return g - ndimage.uniform_filter(g, _TREND_WINDOW, mode="reflect")

    g2 = detrended(y, 0) ** 2 + detrended(y, 1) ** 2
    return g2, _kernel_gain(lambda img: detrended(img, 1), size=4 * _TREND_WINDOW + 1)


def _robust_variance(residual: np.ndarray, n_iter: int = 3) -> float:
    """Noise variance from residuals of known zero mean, robust to outliers.

    Starts from the MAD, (1.4826 * median|r|)^2, then iterates the second moment of the
    residuals within +-3.5 std, divided by its Gaussian value (0.9939). Unlike the bare
    MAD it is nearly unbiased for the skewed, heavy-ish tailed low-count Poisson noise
    (MAD: -1.2 % at 3 quanta) and for lattice-valued data (a * Poisson with little read
    noise, where the median jumps between lattice points: MAD +10 %), and it is about
    2.5 times as efficient; outliers beyond 3.5 std have no influence.
    """
    r2 = np.square(residual)
    var = float((_MAD_TO_STD * np.median(np.abs(residual))) ** 2)
    if var == 0.0:
        var = float(np.mean(r2))
    for _ in range(n_iter):
        inside = r2 <= _TRUNCATE_AT**2 * var
        if not np.any(inside):
            break
        var = float(np.mean(r2[inside]) / _TRUNCATED_SECOND_MOMENT)
    return var


def _level_sets(mean, residual, n_bins: int, min_count: int):
    """Quantile bins of ``mean``; per bin the mean level, robust variance and count.
    Small inputs get fewer bins so that each can hold ``min_count`` pixels."""
    n_bins = min(n_bins, max(2, mean.size // min_count))
    edges = np.unique(np.quantile(mean, np.linspace(0.0, 1.0, n_bins + 1)))
    if edges.size < 2:
        return np.empty(0), np.empty(0), np.empty(0, dtype=np.int64)
    which = np.clip(np.searchsorted(edges, mean, side="right") - 1, 0, edges.size - 2)
    order = np.argsort(which, kind="stable")
    starts = np.searchsorted(which[order], np.arange(edges.size))
    means, variances, counts = [], [], []
    for i in range(edges.size - 1):  # a loop over bins, not pixels
        idx = order[starts[i] : starts[i + 1]]
        if idx.size < min_count:
            continue
        means.append(float(np.mean(mean[idx])))
        variances.append(_robust_variance(residual[idx]))
        counts.append(idx.size)
    return np.array(means), np.array(variances), np.array(counts, dtype=np.int64)


def _weighted_affine_fit(
    mean, variance, count, *, fixed_b: float | None = None, n_iter: int = 6, reject: float = 4.0
):
    """Iteratively reweighted, outlier-rejecting least squares ``variance = a*mean + b``.

    Each level-set variance has standard error ~ sqrt(2 * _VAR_SE_FACTOR / n) * predicted
    variance; level sets more than ``reject`` standard errors off the line are dropped.
    ``a`` is constrained to be >= 0; with ``fixed_b`` only ``a`` is fitted (b_se = 0).
    Returns (a, b, a_se, b_se, used).
    """
    used = np.ones(mean.size, dtype=bool)
    pred = np.maximum(variance, 1e-12)
    design = np.stack([mean, np.ones_like(mean)], axis=1)
    a, b = 0.0, float(np.median(variance)) if fixed_b is None else float(fixed_b)
    cov = np.full((2, 2), np.inf)
    for _ in range(n_iter):
        se = np.sqrt(2.0 * _VAR_SE_FACTOR / count) * pred
        w = 1.0 / se**2
        wu, mu, vu = w[used], mean[used], variance[used]
        if fixed_b is not None:
            normal_a = float(np.sum(wu * mu * mu))
            a = float(np.sum(wu * mu * (vu - b)) / normal_a) if normal_a > 0 else 0.0
            cov = np.array([[1.0 / normal_a if normal_a > 0 else np.inf, 0.0], [0.0, 0.0]])
        elif np.count_nonzero(used) >= 2 and np.ptp(mu) > 0:
            wd = design[used] * wu[:, None]
            normal = design[used].T @ wd
            a, b = np.linalg.solve(normal, wd.T @ vu)
            cov = np.linalg.inv(normal)
        if a < 0:  # constrained: pure Gaussian noise
            a = 0.0
            if fixed_b is None:
                b = float(np.sum(wu * vu) / np.sum(wu))
        pred = np.maximum(a * mean + b, 1e-12 + 1e-9 * abs(b))
        new_used = np.abs(variance - pred) <= reject * se
        if np.count_nonzero(new_used) < 2 or np.array_equal(new_used, used):
            break
        used = new_used
    # Standard errors: covariance scaled by the reduced chi-square (>= 1) of the used sets.
    n_params = 1 if fixed_b is not None else 2
    dof = max(int(np.count_nonzero(used)) - n_params, 1)
    se = np.sqrt(2.0 * _VAR_SE_FACTOR / count) * pred
    chi2 = float(np.sum(((variance - pred) / se)[used] ** 2) / dof)
    scale = max(chi2, 1.0)
    a_se, b_se = (float(np.sqrt(cov[i, i] * scale)) for i in range(2))
    return float(a), float(b), a_se, b_se, used


def fit_noise_levels(
    image,
    *,
    n_bins: int = 48,
    mean_window: int = 7,
    gradient_sigma: float = 1.5,
    flat_fraction: float = 0.8,
    clip_low: float | None = None,
    clip_high: float | None = None,
    min_count: int = 200,
    read_variance: float | None = None,
) -> NoiseFit:
    """Fit ``Var = a * mean + b`` to ONE noisy 2-D image, without a clean reference.

    Method (after Foi et al. 2008, with a residual and a smoothness test chosen so that
    selection cannot bias the variance):

    1. residual r = image correlated with ``[1,-2,1] x [1,-2,1] / 6``: unit noise gain,
       blind to anything linear along either axis and to any f(y) + g(x) (column gain
       streaks, axis-aligned edges);
    2. local level m = ``mean_window`` box mean (a box containing the 3x3 residual support
       is orthogonal to it, so m and r are uncorrelated);
    3. smoothness: squared gradient |G|^2 of a Gaussian-smoothed image minus its local
       trend, so that smooth ramps pass and edges do not (orthogonal to r). Pass 1 keeps,
       per intensity bin, the ``flat_fraction`` of pixels with the weakest edges; pass 2
       keeps pixels whose |G|^2 is below the ``flat_fraction`` quantile expected of pure
       noise at the pass-1 model (chi-square, 2 dof);
    4. clipped pixels (many pixels exactly at the image max, or min, or the given
       ``clip_high``/``clip_low``, e.g. saturated air at 65535) and every pixel whose
       windows touch one are dropped, and so are level sets within 3.5 noise std of a
       clip level (truncated noise looks smaller);
    5. ``n_bins`` quantile bins of m (level sets); robust variance per bin (MAD start,
       then the 3.5-std truncated second moment); weighted least squares
       var = a * mean + b with outlier rejection (a >= 0).

    Parameters
    ----------
    image : 2-D array (Y, X), any real dtype, counts (e.g. uint16 0..65535), at least 32x32.
    n_bins : number of intensity level sets (>= 4).
    mean_window : odd box size (>= 3) of the local mean.
    gradient_sigma : Gaussian std (pixels) of the smoothing before the gradient test.
    flat_fraction : (0, 1) fraction of pure-noise pixels kept by the smoothness test.
    clip_low, clip_high : known clip levels in counts; None detects them.
    min_count : fewest pixels for a level set to be used.
    read_variance : known b (counts^2, e.g. from a dark frame); then only ``a`` is fitted.
        Useful when the scan has no flat dark regions, where b is poorly determined
        (see ``NoiseFit.b_stderr``).

    Returns
    -------
    NoiseFit with ``model`` (a in counts per quantum, b in counts^2) and the level sets.
    """
    y = _checked_image(image, n_bins, mean_window, flat_fraction, read_variance)
    residual = ndimage.correlate(y, _SECOND_DIFF, mode="reflect")
    local_mean = ndimage.uniform_filter(y, mean_window, mode="reflect")
    grad2, grad_gain = _edge_strength(y, gradient_sigma)
    low, high = _clip_levels(y, clip_low, clip_high)
    valid = _usable_pixels(y, mean_window, gradient_sigma, low, high, min_count)
    m, r, g2 = local_mean[valid], residual[valid], grad2[valid]

    # Pass 1: per intensity bin, the flattest pixels.
    keep = _flattest_per_bin(m, g2, n_bins, flat_fraction)
    means, variances, counts = _level_sets(m[keep], r[keep], n_bins, min_count)
    _need_two_levels(means, min_count)
    a, b, *_ = _weighted_affine_fit(means, variances, counts, fixed_b=read_variance)

    # Pass 2: pixels whose gradient is consistent with pure noise at the pass-1 model.
    keep = _noise_like(m, g2, grad_gain, a, b, variances, flat_fraction)
    if np.count_nonzero(keep) >= 4 * min_count:
        means, variances, counts = _level_sets(m[keep], r[keep], n_bins, min_count)
    _need_two_levels(means, min_count)

    # Level sets too close to a clip level have truncated (smaller) noise.
    a, b, *_ = _weighted_affine_fit(means, variances, counts, fixed_b=read_variance)
    means, variances, counts = _away_from_clips(means, variances, counts, a, b, low, high)
    a, b, a_se, b_se, used = _weighted_affine_fit(means, variances, counts, fixed_b=read_variance)
    note = "fitted a and b" if read_variance is None else "fitted a, b given"
    if read_variance is None:
        a, b, a_se, b_se, used, note = _robust_choice(
            means, variances, counts, (a, b, a_se, b_se, used), top=float(y.max())
        )
    return NoiseFit(NoiseModel(a, b), means, variances, counts, used, a_se, b_se, note)


def _checked_image(image, n_bins, mean_window, flat_fraction, read_variance) -> np.ndarray:
    """``image`` as float64 counts, after checking it and the fit's settings."""
    y = np.asarray(image)
    if y.ndim != 2 or min(y.shape) < 32:
        raise ValueError(
            f"fit_noise_levels needs a 2-D image of at least 32x32 pixels, got shape {y.shape}."
        )
    if not np.issubdtype(y.dtype, np.number) or np.iscomplexobj(y):
        raise ValueError(f"fit_noise_levels needs real-valued counts, got dtype {y.dtype}.")
    y = y.astype(np.float64)
    if not np.all(np.isfinite(y)):
        raise ValueError("fit_noise_levels needs finite pixel values; replace NaN/inf first.")
    if n_bins < 4 or mean_window < 3 or mean_window % 2 == 0 or not 0 < flat_fraction < 1:
        raise ValueError("need n_bins >= 4, an odd mean_window >= 3 and 0 < flat_fraction < 1.")
    if read_variance is not None and not np.isfinite(read_variance):
        raise ValueError(f"read_variance must be a finite number of counts^2, got {read_variance}.")
    return y


def _usable_pixels(y, mean_window, gradient_sigma, low, high, min_count) -> np.ndarray:
    """Pixels whose windows stay inside the image, touch no clipped pixel (at or beyond
    ``low``/``high``) and are not constant; ValueError when too few are left."""
    valid = np.zeros(y.shape, dtype=bool)
    border = max(mean_window // 2, _TREND_WINDOW // 2 + int(np.ceil(4 * gradient_sigma)) + 1)
    valid[border:-border, border:-border] = True
    clipped = np.zeros(y.shape, dtype=bool)
    if low is not None:
        clipped |= y <= low
    if high is not None:
        clipped |= y >= high
    if clipped.any():
        valid &= ~ndimage.maximum_filter(clipped, size=mean_window + 2)
    # Constant neighbourhoods (padding, dead areas) carry no noise information.
    valid &= ndimage.maximum_filter(y, 3) > ndimage.minimum_filter(y, 3)
    if np.count_nonzero(valid) < 4 * min_count:
        raise ValueError(
            "too few unclipped, non-constant pixels to fit a noise model; "
            "pass a larger image or one that is not mostly saturated."
        )
    return valid


def _flattest_per_bin(m, g2, n_bins: int, flat_fraction: float) -> np.ndarray:
    """Pass 1 of the smoothness test: per quantile bin of the level ``m``, the
    ``flat_fraction`` of pixels with the weakest edges ``g2``."""
    edges = np.unique(np.quantile(m, np.linspace(0, 1, n_bins + 1)))
    which = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, max(edges.size - 2, 0))
    order = np.lexsort((g2, which))  # by bin, then by gradient
    starts = np.searchsorted(which[order], np.arange(edges.size))
    keep = np.zeros(m.size, dtype=bool)
    for i in range(edges.size - 1):
        idx = order[starts[i] : starts[i + 1]]
        keep[idx[: max(1, int(flat_fraction * idx.size))]] = True
    return keep


def _noise_like(m, g2, grad_gain: float, a: float, b: float, variances, flat_fraction: float):
    """Pass 2 of the smoothness test: pixels whose edge strength is below the
    ``flat_fraction`` quantile of pure noise at the law ``a * m + b`` (chi-square, 2 dof)."""
    threshold = -2.0 * np.log1p(-flat_fraction)  # chi-square(2) quantile
    noise_var = np.maximum(a * m + b, 1e-6 * max(float(np.median(variances)), 1e-12))
    return g2 <= threshold * grad_gain * noise_var


def _need_two_levels(means, min_count: int) -> None:
    if means.size < 2:
        raise ValueError(
            f"could not find two intensity levels with {min_count} usable pixels each; "
            "pass a larger scan, or one with more unsaturated, flat regions."
        )


def _away_from_clips(means, variances, counts, a: float, b: float, low, high):
    """The level sets more than ``_CLIP_MARGIN`` noise std from a clip level (truncated
    noise looks smaller), unless fewer than two would be left."""
    std = np.sqrt(np.maximum(a * means + b, 0.0))
    near_clip = np.zeros(means.size, dtype=bool)
    if low is not None:
        near_clip |= means - _CLIP_MARGIN * std <= low
    if high is not None:
        near_clip |= means + _CLIP_MARGIN * std >= high
    if np.count_nonzero(~near_clip) >= 2:
        return means[~near_clip], variances[~near_clip], counts[~near_clip]
    return means, variances, counts


#: plausible read-noise term of an X-ray detector, relative to the top of the signal range:
#: a pedestal (offset) of at most this fraction of it (b = -a * offset) ...
_MAX_OFFSET_FRACTION = 0.03
#: ... and a read-noise std of at most this fraction of it (b = read_std^2)
_MAX_READ_STD_FRACTION = 0.01


def _robust_choice(means, variances, counts, full, *, top: float):
    """Choose between the full (a, b) fit and a = fit with b = 0 (pure scaled Poisson).

    Cluttered scans (edges everywhere) or scans with few grey levels (mostly air) leave
    ``b`` poorly determined: a free fit can return read-noise terms that no detector has
    (an intercept of +21835 counts^2 on a high-dose real scene whose truth was -975). Keep
    ``b`` only when it is significant (> 3 standard errors from 0, or an F-test of b = 0
    fails) and the level sets span
    a usable range; otherwise fit ``a`` with ``b = 0``. A significant ``b`` outside the
    physical band (pedestal <= 3% of the top level or up to the darkest level set, at most
    3% of the 16-bit range; read std <= 1% of the top level) is clamped to the band and
    ``a`` refitted. (The band was 3% of the top level alone until 2026-12-03: dark scans of
    detectors with offsets got their b clamped and a 1.5-3x too small gain.)
    """
    a, b, a_se, b_se, used = full
    narrow = np.ptp(means[used]) < 2.0 * np.sqrt(np.median(variances[used]))
    a0, _, a0_se, _, used0 = _weighted_affine_fit(means, variances, counts, fixed_b=0.0)
    # F-test of b = 0 against the free fit, on the level sets the free fit used
    se = np.sqrt(2.0 * _VAR_SE_FACTOR / counts[used]) * np.maximum(a * means[used] + b, 1e-12)
    ssr_full = float(np.sum(((variances[used] - a * means[used] - b) / se) ** 2))
    ssr_zero = float(np.sum(((variances[used] - a0 * means[used]) / se) ** 2))
    dof = max(int(np.count_nonzero(used)) - 2, 1)
    b_matters = (ssr_zero - ssr_full) > 9.0 * max(ssr_full / dof, 1.0)
    if narrow or a <= 0 or not (abs(b) > 3.0 * b_se or b_matters):
        if a0 <= 0:
            raise ValueError(
                "found no photon noise in this image (variance does not grow with the level); "
                "is it a denoised or synthetic image? Pass the noise parameters instead."
            )
        why = "the scan spans too few grey levels" if narrow else "b was not significant"
        return a0, 0.0, a0_se, b_se, used0, f"b set to 0 ({why})"
    # the pedestal: at most 3% of the top level, or up to the darkest level set (an offset
    # is below every signal), so a dark scan from a detector with an offset (its top a few
    # hundred counts, its offset 60 or 200) keeps its fitted b; capped at 3% of 16 bits
    darkest = float(np.min(means[used])) if np.any(used) else 0.0
    low = -a * max(_MAX_OFFSET_FRACTION * top, min(darkest, _MAX_OFFSET_FRACTION * 65535.0))
    high = (_MAX_READ_STD_FRACTION * top) ** 2
    if low <= b <= high:
        return a, b, a_se, b_se, used, "fitted a and b"
    b_clamped = float(np.clip(b, low, high))
    a1, _, a1_se, _, used1 = _weighted_affine_fit(means, variances, counts, fixed_b=b_clamped)
    return a1, b_clamped, a1_se, 0.0, used1, f"b clamped to the physical band (fit gave {b:.4g})"


def fit_poisson_gaussian(image, *, n_bins: int = 48, **kwargs):
    """Fit the Poisson-Gaussian law ``Var = a * mean + b`` from a single noisy scan.

    image : (Y, X) counts, or a stack (C, Y, X) such as a dual-energy (2, Y, X) scan
        (channel 0 = low energy), any real dtype (uint16 0..65535 typically).
    n_bins, **kwargs : see :func:`fit_noise_levels`.

    Returns a :class:`NoiseModel` for a 2-D image, a tuple of them (one per channel) for
    a stack.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        return fit_noise_levels(arr, n_bins=n_bins, **kwargs).model
    if arr.ndim == 3:
        return tuple(fit_noise_levels(c, n_bins=n_bins, **kwargs).model for c in arr)
    raise ValueError(f"expected a (Y, X) image or a (C, Y, X) stack, got shape {arr.shape}.")


# --------------------------------------------------------------------------- GAT
def _scaled_params(a, b) -> tuple[float, float, float]:
    """(a, sigma^2, offset) in scaled units y/a; negative b becomes a pedestal ``offset``."""
    a, b = float(a), float(b)
    if not (np.isfinite(a) and a > 0 and np.isfinite(b)):
        raise ValueError(
            f"the generalized Anscombe transform needs a gain a > 0 and a finite b, got a={a}, b={b}; "
            "for pure Gaussian noise divide by sqrt(b) instead."
        )
    sigma2 = b / (a * a)
    return a, sigma2, max(-sigma2, 0.0)


def generalized_anscombe(y, a: float, b: float) -> np.ndarray:
    """Generalized Anscombe transform for Poisson-Gaussian noise ``Var = a*mean + b``.

    z = (2 / a) * sqrt(max(a*y + 3/8*a^2 + b, 0)), i.e. 2*sqrt(y/a + 3/8 + sigma^2) in units
    of y/a with sigma^2 = b / a^2 (zero Gaussian mean). y: counts, any shape/real dtype.
    Returns float64, same shape, noise std ~1 wherever the expected count is not tiny.
    """
    a, sigma2, _ = _scaled_params(a, b)
    scaled = np.asarray(y, dtype=np.float64) / a
    return 2.0 * np.sqrt(np.maximum(scaled + 0.375 + sigma2, 0.0))


# Expected GAT on a grid of Poisson means, numerically, up to this mean; above it a
# fourth-order moment expansion (error < 1e-8 relative there).
_NUMERIC_LAMBDA_MAX = 300.0


def _gaussian_smoothed_sqrt(c: np.ndarray, sigma: float, n_nodes: int = 96) -> np.ndarray:
    """h(c) = E[2 sqrt(max(c + sigma*t, 0))], t ~ N(0, 1), for each c (vectorised).

    Substituting x = c + sigma*t = w^2 gives h = (4/sigma) * int_0^inf w^2 phi((w^2 - c)/sigma) dw,
    a smooth integrand (the kink of max(., 0) disappears), integrated by Gauss-Legendre
    over w in [sqrt(max(c - 12 sigma, 0)), sqrt(c + 12 sigma)].
    """
    c = np.asarray(c, dtype=np.float64)
    if sigma <= 0:
        return 2.0 * np.sqrt(np.maximum(c, 0.0))
    nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
    lo = np.sqrt(np.maximum(c - 12.0 * sigma, 0.0))[:, None]
    hi = np.sqrt(np.maximum(c + 12.0 * sigma, 0.0))[:, None]
    w = 0.5 * (hi - lo) * nodes[None, :] + 0.5 * (hi + lo)
    pdf = np.exp(-0.5 * ((w * w - c[:, None]) / sigma) ** 2) / np.sqrt(2.0 * np.pi)
    return (4.0 / sigma) * 0.5 * (hi - lo)[:, 0] * np.sum(weights * w * w * pdf, axis=1)


def _expected_gat_numeric(lam: np.ndarray, sigma2: float) -> np.ndarray:
    """E[2 sqrt(max(P + N + 3/8 + sigma^2, 0))], P ~ Poisson(lam), N ~ N(0, sigma^2)
    (no N when sigma^2 <= 0, where the pedestal cancels -sigma^2): Poisson pmf sum
    times the Gaussian integral of each term."""
    s2 = max(sigma2, 0.0)
    k_max = int(np.ceil(lam.max() + 12.0 * np.sqrt(lam.max() + 1.0) + 30))
    k = np.arange(k_max + 1, dtype=np.float64)
    h = _gaussian_smoothed_sqrt(k + 0.375 + s2, np.sqrt(s2))
    log_pmf = (
        k[None, :] * np.log(np.maximum(lam, 1e-300))[:, None]
        - lam[:, None]
        - special.gammaln(k + 1)[None, :]
    )
    pmf = np.exp(log_pmf)
    pmf[lam == 0] = 0.0
    pmf[lam == 0, 0] = 1.0
    return pmf @ h


def _expected_gat_asymptotic(lam: np.ndarray, sigma2: float) -> np.ndarray:
    """Moment expansion of E[2 sqrt(s + e)], s = lam + 3/8 + sigma^2, e = noise with
    variance v = lam + sigma^2, third and fourth cumulants lam (valid for large s)."""
    s2 = max(sigma2, 0.0)
    s = lam + 0.375 + s2
    v = lam + s2
    return (
        2.0
        * np.sqrt(s)
        * (1.0 - v / (8 * s**2) + lam / (16 * s**3) - 5.0 * (lam + 3 * v * v) / (128 * s**4))
    )


def _expected_gat(lam, sigma2: float) -> np.ndarray:
    lam = np.maximum(np.asarray(lam, dtype=np.float64), 0.0)
    out = np.empty_like(lam)
    small = lam <= _NUMERIC_LAMBDA_MAX
    idx = np.flatnonzero(small)
    for start in range(0, idx.size, 2048):  # bounded memory: chunk x (k_max + 1) pmf matrix
        chunk = idx[start : start + 2048]
        out[chunk] = _expected_gat_numeric(lam[chunk], sigma2)
    out[~small] = _expected_gat_asymptotic(lam[~small], sigma2)
    return out


@lru_cache(maxsize=32)
def _inverse_table(sigma2: float) -> tuple[PchipInterpolator, float, float]:
    """Monotone interpolant D -> Poisson mean lam of the exact unbiased inverse, with the
    D range (min, max) it covers."""
    lam = np.concatenate(
        [
            np.linspace(0.0, 4.0, 201)[:-1],
            np.geomspace(4.0, _NUMERIC_LAMBDA_MAX, 500),
            np.geomspace(_NUMERIC_LAMBDA_MAX, 1e12, 1500)[1:],
        ]
    )
    expected = _expected_gat(lam, sigma2)
    strictly = np.concatenate([[True], np.diff(expected) > 0])
    lam, expected = lam[strictly], expected[strictly]
    return (
        PchipInterpolator(expected, lam, extrapolate=False),
        float(expected[0]),
        float(expected[-1]),
    )


def _closed_form_lambda(D: np.ndarray, sigma2: float) -> np.ndarray:
    """Makitalo & Foi closed-form approximation of the exact unbiased inverse, in y/a
    units, minus the Gaussian variance (their 2013 correction); 0 below D = 2*sqrt(3/8)."""
    s2 = max(sigma2, 0.0)
    c = np.sqrt(1.5)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lam = 0.25 * D**2 + 0.25 * c / D - 1.375 / D**2 + 0.625 * c / D**3 - 0.125 - s2
    return np.where(D > 2.0 * np.sqrt(0.375), np.maximum(lam, 0.0), 0.0)


def inverse_generalized_anscombe(D, a: float, b: float, *, method: str = "exact") -> np.ndarray:
    """Map denoised GAT values back to counts.

    D: denoised values in the GAT domain (any shape). a, b: the noise law used forward.
    method:
      - "exact": exact unbiased inverse (Makitalo & Foi 2013, IEEE TIP 22(1)): the count
        level whose expected GAT equals D. E[GAT | mean] is tabulated on a grid of means
        (units y/a) by a Poisson pmf sum with the Gaussian part integrated numerically
        (any sigma, including sigma = 0), and inverted by monotone (PCHIP) interpolation;
        beyond the table a moment expansion / the closed form takes over.
      - "closed_form": 1/4 D^2 + 1/4 sqrt(3/2) D^-1 - 11/8 D^-2 + 5/8 sqrt(3/2) D^-3 - 1/8
        - sigma^2 (Makitalo & Foi 2011 / 2013); good for large D, inexact at low counts.
      - "algebraic": (D/2)^2 - 3/8 - sigma^2 (biased at low counts; for comparison).
    Returns float64 counts (>= 0, or >= the pedestal when b < 0), same shape as D.
    """
    a, sigma2, offset = _scaled_params(a, b)
    D = np.asarray(D, dtype=np.float64)
    if method == "algebraic":
        lam = np.maximum(0.25 * D**2 - 0.375 - max(sigma2, 0.0), 0.0)
    elif method == "closed_form":
        lam = _closed_form_lambda(D, sigma2)
    elif method == "exact":
        table, d_min, d_max = _inverse_table(float(sigma2))
        inside = (D >= d_min) & (D <= d_max)
        lam = np.where(D < d_min, 0.0, _closed_form_lambda(D, sigma2))
        lam[inside] = table(D[inside])
        lam = np.maximum(lam, 0.0)
    else:
        raise ValueError(f"method must be 'exact', 'closed_form' or 'algebraic', got {method!r}.")
    return a * (lam + offset)


def expected_generalized_anscombe(mean_counts, a: float, b: float) -> np.ndarray:
    """E[generalized_anscombe(y) | E[y] = mean_counts] for y = a*Poisson + N(0, b) (or a
    pedestal when b < 0), computed numerically. The exact inverse undoes this function.
    mean_counts: counts, any shape. Returns float64, same shape."""
    a, sigma2, offset = _scaled_params(a, b)
    lam = np.asarray(mean_counts, dtype=np.float64) / a - offset
    return _expected_gat(lam.ravel(), sigma2).reshape(lam.shape)
