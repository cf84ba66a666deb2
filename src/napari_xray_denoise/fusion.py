"""Dual-energy fusion of 16-bit X-ray scans: wavelet and spatial-information rules.

Everything here is plain numpy / PyWavelets / scipy.ndimage, vectorised, and keeps
16-bit precision (the source read its inputs as 8 bits and looped over pixels).
Pseudo-colour and material colouring live in :mod:`napari_xray_denoise.colour`.

Conventions
-----------
* Inputs are counts: ``uint16`` (0..65535) or float arrays in the same count scale.
  A dual-energy pair is given either as two 2-D arrays ``(low, high)`` or as one
  ``(2, Y, X)`` stack passed as ``low`` (channel 0 = low energy, 1 = high energy).
* Fused images are ``float32`` in the count scale (nominally 0..65535; the ``"sum"``
  wavelet rule can over/undershoot slightly).  Convert to ``uint16`` with rounding and
  clipping only when writing a file.
* The *white level* is the count that air (full transmission) reads.  Real scans are
  air-normalised to some white level that is not always 65535 (12-bit scanners: 4095).
  ``white_level=None`` means "estimate it from the scan" (see
  :func:`estimate_white_level`).
"""

from __future__ import annotations

import numbers

import numpy as np
import pywt
from scipy import ndimage

__all__ = [
    "APPROX_RULES",
    "DETAIL_RULES",
    "SOURCE_APPROX_KERNEL",
    "SOURCE_THRESHOLD_GREY_LEVELS",
    "estimate_white_level",
    "spatial_fuse",
    "wavelet_fuse",
]

FULL_SCALE_U16 = 65535.0

#: The source's 3x3 smoothing kernel for approximation bands (corners, edges, centre).
#: Its rounded weights sum to 0.9997; :func:`wavelet_fuse` normalises it to unit sum so
#: that it does not darken the image by 0.03 % (about 20 counts at 65535).
SOURCE_APPROX_KERNEL = np.array(
    [[0.0778, 0.1233, 0.0778], [0.1233, 0.1953, 0.1233], [0.0778, 0.1233, 0.0778]]
)
SOURCE_APPROX_KERNEL.setflags(write=False)

#: The source's background/detail threshold of the spatial fusion, in 8-bit grey levels.
#: In counts it is ``20 / 255 * white_level`` (20 * 257 = 5140 counts for 65535).
SOURCE_THRESHOLD_GREY_LEVELS = 20.0

_WHITE_BINS = 128
_WHITE_BOX = 5
_WHITE_PEAK_FRACTION = 0.2

#: rules of :func:`wavelet_fuse` for the approximation and the detail bands
APPROX_RULES = ("smoothed_mean", "mean", "weighted")
DETAIL_RULES = ("sum", "max_abs", "mean")


# --------------------------------------------------------------------------- validation
def _as_image(image, name: str = "image") -> np.ndarray:
    """Return one 2-D finite image as float32 counts, or raise ValueError."""
    array = np.asarray(image)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise ValueError(
            f"{name} has dtype {array.dtype}; pass real-valued counts (uint16 or float)."
        )
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D image (Y, X) but has shape {array.shape}; "
            "pass one energy channel at a time."
        )
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); pass a non-empty image.")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise ValueError(
            f"{name} contains NaN or infinite values; replace or mask them "
            "(e.g. with np.nan_to_num) before fusing."
        )
    return array


def _as_pair(low, high=None) -> tuple[np.ndarray, np.ndarray]:
    """Validate a dual-energy pair and return ``(low, high)`` as float32 2-D counts.

    Accepts two 2-D arrays of equal shape, or one ``(2, Y, X)`` stack as ``low`` with
    ``high=None``.  Raises ValueError with one clear sentence otherwise.
    """
    if high is None:
        stack = np.asarray(low)
        if stack.ndim == 3 and stack.shape[0] == 2:
            return _as_image(stack[0], "low (stack channel 0)"), _as_image(
                stack[1], "high (stack channel 1)"
            )
        if stack.ndim == 2 or (stack.ndim == 3 and stack.shape[0] == 1):
            raise ValueError(
                f"only one energy image was given (shape {stack.shape}) but fusion needs "
                "both: pass low and high images, or one (2, Y, X) stack."
            )
        raise ValueError(
            f"expected a (2, Y, X) low/high stack but got shape {stack.shape}; pass "
            "low and high as two 2-D images or stack them with channel 0 = low energy."
        )
    low_array, high_array = np.asarray(low), np.asarray(high)
    if low_array.ndim == 3 or high_array.ndim == 3:
        raise ValueError(
            f"low has shape {low_array.shape} and high has shape {high_array.shape}; "
            "pass either two 2-D images or a single (2, Y, X) stack with high=None."
        )
    if low_array.shape != high_array.shape:
        raise ValueError(
            f"low image has shape {low_array.shape} but high image has shape "
            f"{high_array.shape}; the two energy channels must be registered and the same size."
        )
    return _as_image(low_array, "low"), _as_image(high_array, "high")


def _positive_finite(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}.")
    return float(value)


def _nonnegative_finite(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    if value < 0:
        raise ValueError(f"{name} must be zero or positive, got {value!r}.")
    return float(value)


# --------------------------------------------------------------------------- white level
def _estimate_white_single(counts: np.ndarray) -> float:
    # A 5x5 box mean cuts photon noise 5x; air regions are large, so their level stays.
    values = ndimage.uniform_filter(counts.astype(np.float32), _WHITE_BOX, mode="reflect").ravel()
    top = float(np.percentile(values, 99.9))
    if top <= 0:
        raise ValueError(
            "the image is zero or negative almost everywhere, so no air (white) level can "
            "be estimated; pass white_level explicitly."
        )
    lower = 0.5 * top
    bright = values[values >= lower]
    hist, edges = np.histogram(bright, bins=_WHITE_BINS, range=(lower, top))
    width = edges[1] - edges[0]
    smooth = ndimage.gaussian_filter1d(hist.astype(np.float64), 1.5, mode="constant")
    padded = np.concatenate([[-1.0], smooth, [-1.0]])
    is_peak = (smooth >= padded[:-2]) & (smooth >= padded[2:])
    is_peak &= smooth >= _WHITE_PEAK_FRACTION * smooth.max()
    peak = int(np.flatnonzero(is_peak)[-1])  # the brightest large population: air
    centre = 0.5 * (edges[peak] + edges[peak + 1])
    # Refine by median-shift: re-centre a +-3-bin window on the median of the pixels
    # inside it until it settles on the mode of the air peak.
    for _ in range(20):
        window = bright[np.abs(bright - centre) <= 3.0 * width]
        if window.size == 0:
            break
        new_centre = float(np.median(window))
        converged = abs(new_centre - centre) < 1e-3 * width
        centre = new_centre
        if converged:
            break
    return float(centre)


def estimate_white_level(low, high=None) -> float:
    """Estimate the air (white) level of a scan, in counts.

    Method: the air of an air-normalised scan is the brightest large population of
    pixels.  Average the image over 5x5 boxes (cuts the photon noise 5x; air regions
    are large so their level is kept), then take the 99.9th percentile ``p`` (robust to a few hot pixels), histogram
    the pixels in ``[0.75 p, p]`` in 64 bins, and refine the fullest bin by median-shift
    (repeatedly take the median of the pixels within 4 bins of the current estimate).  For a clipped scan (air saturated at the top) this is the clip
    value; for noisy unclipped air it is close to the mean air level (a high percentile
    alone would sit ~3 noise sigmas above it).

    Parameters
    ----------
    low, high : array-like
        A single 2-D image (``high=None``), two 2-D images, or one ``(2, Y, X)`` stack
        (``high=None``), in counts.  For a pair the pixels of both channels are pooled
        (an air-normalised pair has one white level).

    Returns
    -------
    float
        White level in counts (e.g. ~65535 for full-range 16-bit scans, ~4095 for
        12-bit ones).
    """
    if high is None and np.ndim(low) == 2:
        return _estimate_white_single(_as_image(low, "image"))
    low_f, high_f = _as_pair(low, high)
    return _estimate_white_single(np.concatenate([low_f, high_f], axis=1))


def _resolve_white(white_level, image: np.ndarray) -> float:
    if white_level is None:
        return _estimate_white_single(image)
    return _positive_finite(white_level, "white_level")


# --------------------------------------------------------------------------- wavelet fusion
def _discrete_wavelet(wavelet) -> pywt.Wavelet:
    if isinstance(wavelet, pywt.Wavelet):
        return wavelet
    if not isinstance(wavelet, str) or wavelet not in pywt.wavelist(kind="discrete"):
        raise ValueError(
            f"wavelet {wavelet!r} is not a discrete PyWavelets wavelet; use one of "
            "pywt.wavelist(kind='discrete'), e.g. 'db4', 'sym4', 'coif2', 'haar'."
        )
    return pywt.Wavelet(wavelet)


def _fuse_approx(a_low, a_high, rule: str, weight: float) -> np.ndarray:
    if rule == "weighted":
        return weight * a_low + (1.0 - weight) * a_high
    mean = 0.5 * (a_low + a_high)
    if rule == "mean":
        return mean
    # smoothed_mean: smoothing both bands then averaging == smoothing the average.
    kernel = (SOURCE_APPROX_KERNEL / SOURCE_APPROX_KERNEL.sum()).astype(mean.dtype)
    return ndimage.convolve(mean, kernel, mode="reflect")


def _fuse_detail(d_low, d_high, rule: str) -> np.ndarray:
    if rule == "sum":
        return d_low + d_high
    if rule == "mean":
        return 0.5 * (d_low + d_high)
    return np.where(np.abs(d_low) >= np.abs(d_high), d_low, d_high)


def wavelet_fuse(
    low,
    high=None,
    *,
    wavelet="db4",
    level: int | None = 4,
    approx: str = "smoothed_mean",
    detail: str = "sum",
    weight: float = 0.5,
    mode: str = "symmetric",
) -> np.ndarray:
    """Fuse low- and high-energy images in the 2-D discrete wavelet domain.

    Both images are decomposed with ``pywt.wavedec2``; the approximation bands and the
    detail bands (H, V, D at every level) are combined by the chosen rules; the inverse
    transform is cropped to the input shape (exact for odd sizes).

    The default reproduces the source: ``db4``, 4 levels, approximation bands smoothed
    with the fixed 3x3 kernel :data:`SOURCE_APPROX_KERNEL` (normalised to unit sum,
    reflect borders) and averaged, detail bands summed.  Summing details adds the
    edges of both channels, i.e. it sharpens: ``wavelet_fuse(x, x) != x``.
    With ``approx="mean", detail="max_abs"`` fusing an image with itself returns it.

    Parameters
    ----------
    low, high : array-like
        Two 2-D images of the same shape in counts (uint16 or float), or one
        ``(2, Y, X)`` stack as ``low`` with ``high=None``.
    wavelet : str or pywt.Wavelet
        Any discrete PyWavelets wavelet (``pywt.wavelist(kind="discrete")``).
    level : int or None
        Decomposition levels, 1 <= level <= ``pywt.dwtn_max_level(shape, wavelet)``;
        None uses that maximum.
    approx : {"smoothed_mean", "mean", "weighted"}
        Rule for the coarsest approximation band; ``"weighted"`` computes
        ``weight * low + (1 - weight) * high``.
    detail : {"sum", "max_abs", "mean"}
        Rule for detail coefficients: the source's sum, the coefficient of larger
        magnitude (ties take low), or the average.
    weight : float
        Weight of the low channel in [0, 1] for ``approx="weighted"``.
    mode : str
        PyWavelets signal-extension mode (``pywt.Modes.modes``).

    Returns
    -------
    numpy.ndarray
        float32 ``(Y, X)`` fused image in the input count scale (may leave 0..65535
        slightly with ``detail="sum"``; round and clip when converting to uint16).
    """
    low_f, high_f = _as_pair(low, high)
    wavelet_obj = _discrete_wavelet(wavelet)
    if approx not in APPROX_RULES:
        raise ValueError(f"approx rule {approx!r} is unknown; use one of {APPROX_RULES}.")
    if detail not in DETAIL_RULES:
        raise ValueError(f"detail rule {detail!r} is unknown; use one of {DETAIL_RULES}.")
    if mode not in pywt.Modes.modes:
        raise ValueError(f"mode {mode!r} is unknown; use one of {pywt.Modes.modes}.")
    weight = _nonnegative_finite(weight, "weight")
    if weight > 1:
        raise ValueError(f"weight must lie in [0, 1], got {weight!r}.")
    max_level = pywt.dwtn_max_level(low_f.shape, wavelet_obj)
    if max_level < 1:
        raise ValueError(
            f"image shape {low_f.shape} is too small for even one level of the "
            f"{wavelet_obj.name} wavelet; use a shorter wavelet such as 'haar'."
        )
    if level is None:
        level = max_level
    if isinstance(level, bool) or not isinstance(level, numbers.Integral):
        raise ValueError(f"level must be an integer, got {level!r}.")
    if not 1 <= level <= max_level:
        raise ValueError(
            f"level {level} is not possible for shape {low_f.shape} with wavelet "
            f"{wavelet_obj.name}: use 1 <= level <= {max_level} (pywt.dwtn_max_level)."
        )

    coeffs_low = pywt.wavedec2(low_f, wavelet_obj, mode=mode, level=int(level))
    coeffs_high = pywt.wavedec2(high_f, wavelet_obj, mode=mode, level=int(level))
    fused = [_fuse_approx(coeffs_low[0], coeffs_high[0], approx, weight)]
    for bands_low, bands_high in zip(coeffs_low[1:], coeffs_high[1:], strict=True):
        pairs = zip(bands_low, bands_high, strict=True)
        fused.append(tuple(_fuse_detail(b_low, b_high, detail) for b_low, b_high in pairs))
    out = pywt.waverec2(fused, wavelet_obj, mode=mode)
    y_size, x_size = low_f.shape
    return np.ascontiguousarray(out[:y_size, :x_size], dtype=np.float32)


# --------------------------------------------------------------------------- spatial fusion
def spatial_fuse(
    low,
    high=None,
    *,
    threshold: float | None = None,
    gamma: float = 2.2,
    white_level: float | None = FULL_SCALE_U16,
    return_pre_gamma: bool = False,
):
    """Fuse low- and high-energy images with the source's spatial-information rule.

    1. ``d = |low - high|``.  Where ``d < threshold`` the pixel is background and takes
       ``(low + high) / 2``.
    2. ``R`` = 3x3 box average of ``(low + high) / 2``.  Where ``d >= threshold`` the
       pixel is detail and takes whichever of low/high is closer to ``R`` (ties: low).
       (The source used ``d > threshold`` there, leaving pixels with ``d == threshold``
       at 0; here every pixel is covered.)
    3. Gamma: the source applied gamma 2.2 to an 8-bit version.  Here it is applied in
       float on the [0, 1]-normalised image ``x01 = clip(fused / white_level, 0, 1)``
       as ``x01 ** (1 / gamma)`` (gamma > 1 brightens dark regions, the usual
       display-gamma lookup) and scaled back to counts, so no precision is lost.
       ``gamma=1`` returns the fused image unchanged (no clipping).

    Parameters
    ----------
    low, high : array-like
        Two 2-D images of equal shape in counts, or one ``(2, Y, X)`` stack.
    threshold : float or None
        Background/detail threshold in counts (not 8-bit grey levels).  None means the
        source's 20 grey levels scaled to the white level: ``20 / 255 * white_level``
        = 5140 counts for ``white_level=65535`` (about 321 for a 12-bit 4095 scan).
    gamma : float
        Display gamma (> 0); the output is ``white * (fused / white) ** (1 / gamma)``.
    white_level : float or None
        Count that maps to 1.0 for the gamma step (default 65535, the 16-bit full
        scale); None estimates it with :func:`estimate_white_level`.
    return_pre_gamma : bool
        Also return the fused image before gamma.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        float32 ``(Y, X)`` gamma-corrected fused image in counts, 0..white_level
        (``gamma=1``: the fused image itself, unclipped); with ``return_pre_gamma``
        the tuple ``(gamma_counts, fused_counts)``.
    """
    low_f, high_f = _as_pair(low, high)
    gamma = _positive_finite(gamma, "gamma")
    mean = 0.5 * (low_f + high_f)
    white = (
        _estimate_white_single(np.concatenate([low_f, high_f], axis=1))
        if white_level is None
        else _positive_finite(white_level, "white_level")
    )
    if threshold is None:
        threshold = SOURCE_THRESHOLD_GREY_LEVELS / 255.0 * white
    threshold = _nonnegative_finite(threshold, "threshold")

    difference = np.abs(low_f - high_f)
    local_mean = ndimage.uniform_filter(mean, size=3, mode="reflect")
    closer = np.where(np.abs(low_f - local_mean) <= np.abs(high_f - local_mean), low_f, high_f)
    fused = np.where(difference < threshold, mean, closer).astype(np.float32, copy=False)

    if gamma == 1.0:
        gamma_counts = fused.copy()
    else:
        x01 = np.clip(fused / np.float32(white), 0.0, 1.0)
        gamma_counts = (np.power(x01, np.float32(1.0 / gamma)) * np.float32(white)).astype(
            np.float32, copy=False
        )
    if return_pre_gamma:
        return gamma_counts, fused
    return gamma_counts
