"""Image-quality measures: BRISQUE (no reference), PSNR/SSIM (with reference), noise level.

All functions take plain numpy arrays (the napari plugin and the CLI adapt layers and
files); none of them changes its input, and none returns an 8-bit image except
:func:`window_to_8bit`, whose 8-bit result exists only to feed BRISQUE.

BRISQUE
    Mittal, Moorthy, Bovik, "No-Reference Image Quality Assessment in the Spatial
    Domain", IEEE Trans. Image Processing 21(12), 2012. Re-implemented here in numpy/scipy
    so that it reproduces the MATLAB reference release (``brisquescore.m``) with the LIVE
    model shipped in ``data/brisque/`` (see the notice there): goldhill.gif scores
    8.4255 and I01.BMP 10.2594 in both. Lower is better. BRISQUE was trained on natural
    8-bit photographs, so on X-ray scans it is a *relative* measure: compare images of
    the same scan (noisy vs. denoised) scored through the same fixed window.

Steps that matter for matching MATLAB (checked against the reference scores):
    * MSCN: ``filter2(window, im, 'same')``, i.e. zero padding at the border, 7x7
      Gaussian window with sigma 7/6 normalised to sum 1, ``(im - mu) / (sigma + 1)``.
    * neighbour products use ``circshift`` (wrap-around at the border).
    * GGD/AGGD shapes are picked from the grid 0.2:0.001:10 by moment matching.
    * the second scale is MATLAB's ``imresize(im, 0.5)``: bicubic (a = -0.5) with
      antialiasing (kernel widened by 2) and symmetric border indices.
    * libsvm epsilon-SVR with RBF kernel: ``sum_i coef_i exp(-gamma |x - sv_i|^2) - rho``
      on features scaled to [-1, 1] with ``allrange`` (svm-scale, no clipping).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

import numpy as np
from scipy import ndimage, sparse
from scipy.special import gamma as gamma_fn

__all__ = [
    "DEFAULT_WINDOW",
    "brisque",
    "brisque_features",
    "estimate_noise_flat",
    "psnr",
    "score_table",
    "ssim",
    "window_to_8bit",
]

#: Fixed window (low, high) in 16-bit counts mapped linearly onto 0..255 before BRISQUE.
DEFAULT_WINDOW: tuple[float, float] = (0.0, 65535.0)

_MSCN_SIGMA = 7.0 / 6.0
_MSCN_HALF = 3  # 7x7 window
_SHAPE_GRID = np.arange(200, 10001) / 1000.0  # MATLAB 0.2:0.001:10 (9801 values)
# MATLAB circshift offsets (rows, cols): horizontal, vertical, main and secondary diagonal.
_PAIR_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))
_MIN_SIDE = 8


# --------------------------------------------------------------------------- 8-bit window
def window_to_8bit(counts, low: float = DEFAULT_WINDOW[0], high: float = DEFAULT_WINDOW[1]):
    """Map ``counts`` linearly from the fixed window [low, high] to uint8 0..255.

    The window is *fixed*: it never looks at the image content (no auto-contrast, no
    percentiles), so two images scored through the same window (e.g. a scan before and
    after denoising) see the same mapping and their BRISQUE scores are comparable. The
    default (0, 65535) is the full 16-bit range; for a scanner that writes 12- or 13-bit
    values pass ``high=4095`` or ``high=8191`` -- once per scanner, not per image.
    Values outside the window are clipped, then rounded to the nearest integer.

    Parameters
    ----------
    counts : array_like, any real dtype (typically uint16 counts)
    low, high : window edges in the units of ``counts``; ``high > low``.

    Returns
    -------
    numpy.ndarray, uint8, same shape as ``counts``; the input is left unchanged.
    This 8-bit image is for scoring only, never an output of the pipeline.
    """
    low = float(low)
    high = float(high)
    if not np.isfinite(low) or not np.isfinite(high) or high <= low:
        raise ValueError(f"window must satisfy low < high (finite), got low={low}, high={high}.")
    values = np.asarray(counts, dtype=np.float64)
    x255 = (values - low) * (255.0 / (high - low))
    return np.rint(np.clip(x255, 0.0, 255.0)).astype(np.uint8)


def _as_gray255(image, window) -> np.ndarray:
    """Return a float64 copy of a 2-D image on BRISQUE's 0..255 scale."""
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(
            f"BRISQUE needs a 2-D grayscale image, got shape {arr.shape}; score each channel "
            "of a (2, Y, X) stack separately."
        )
    if min(arr.shape) < _MIN_SIDE:
        raise ValueError(
            f"BRISQUE needs an image of at least {_MIN_SIDE}x{_MIN_SIDE} pixels, got {arr.shape}."
        )
    if window is not None:
        low, high = window
        return window_to_8bit(arr, low, high).astype(np.float64)
    if arr.dtype == np.uint16:
        return window_to_8bit(arr, *DEFAULT_WINDOW).astype(np.float64)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"BRISQUE needs a numeric image, got dtype {arr.dtype}.")
    im = arr.astype(np.float64)
    if not np.all(np.isfinite(im)):
        raise ValueError("BRISQUE needs finite pixel values; replace NaN/inf first.")
    if im.min() < 0.0 or im.max() > 255.0:
        raise ValueError(
            f"image of dtype {arr.dtype} has values outside 0..255 "
            f"({im.min():g}..{im.max():g}); pass a fixed window=(low, high) to map it to 8 bits."
        )
    return im


# --------------------------------------------------------------------------- features
def _mscn(im255: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients, as MATLAB's brisque_feature.m."""
    taps = np.arange(-_MSCN_HALF, _MSCN_HALF + 1, dtype=np.float64)
    g1 = np.exp(-(taps**2) / (2.0 * _MSCN_SIGMA**2))
    g1 /= g1.sum()  # outer(g1, g1) is exactly fspecial('gaussian', 7, 7/6) normalised

    def filter_same(a):  # filter2(window, a, 'same'): zero padding
        tmp = ndimage.correlate1d(a, g1, axis=0, mode="constant", cval=0.0)
        return ndimage.correlate1d(tmp, g1, axis=1, mode="constant", cval=0.0)

    mu = filter_same(im255)
    sigma = np.sqrt(np.abs(filter_same(im255 * im255) - mu * mu))
    return (im255 - mu) / (sigma + 1.0)


@lru_cache(maxsize=1)
def _shape_ratio_tables() -> tuple[np.ndarray, np.ndarray]:
    g = _SHAPE_GRID
    ggd = gamma_fn(1.0 / g) * gamma_fn(3.0 / g) / gamma_fn(2.0 / g) ** 2
    aggd = 1.0 / ggd  # gamma(2/a)^2 / (gamma(1/a) gamma(3/a))
    return ggd, aggd


def _fit_ggd(values: np.ndarray) -> tuple[float, float]:
    """Symmetric GGD (shape alpha, variance sigma^2) by moment matching (estimateggdparam)."""
    ggd_ratio, _ = _shape_ratio_tables()
    sigma_sq = float(np.mean(values * values))
    mean_abs = float(np.mean(np.abs(values)))
    if not (sigma_sq > 0.0):
        raise ValueError(
            "image has no structure (constant after normalisation); BRISQUE is undefined."
        )
    rho = sigma_sq / mean_abs**2
    alpha = float(_SHAPE_GRID[np.argmin(np.abs(rho - ggd_ratio))])
    return alpha, sigma_sq


def _fit_aggd(values: np.ndarray) -> tuple[float, float, float, float]:
    """Asymmetric GGD (alpha, mean, left var, right var) as estimateaggdparam + brisque_feature."""
    _, aggd_ratio = _shape_ratio_tables()
    neg = values[values < 0]
    pos = values[values > 0]
    if neg.size == 0 or pos.size == 0:
        raise ValueError(
            "image has too little structure for BRISQUE (neighbour products of one sign only)."
        )
    left_std = np.sqrt(np.mean(neg * neg))
    right_std = np.sqrt(np.mean(pos * pos))
    gamma_hat = left_std / right_std
    r_hat = np.mean(np.abs(values)) ** 2 / np.mean(values * values)
    r_hat_norm = r_hat * (gamma_hat**3 + 1.0) * (gamma_hat + 1.0) / (gamma_hat**2 + 1.0) ** 2
    alpha = float(_SHAPE_GRID[np.argmin((aggd_ratio - r_hat_norm) ** 2)])
    const = np.sqrt(gamma_fn(1.0 / alpha)) / np.sqrt(gamma_fn(3.0 / alpha))
    mean = (right_std - left_std) * (gamma_fn(2.0 / alpha) / gamma_fn(1.0 / alpha)) * const
    return alpha, float(mean), float(left_std**2), float(right_std**2)


def _features_one_scale(im255: np.ndarray) -> list[float]:
    mscn = _mscn(im255)
    feats = list(_fit_ggd(mscn.ravel()))
    for shift in _PAIR_SHIFTS:
        pair = mscn * np.roll(mscn, shift, axis=(0, 1))  # MATLAB circshift
        feats.extend(_fit_aggd(pair.ravel()))
    return feats


def _cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB imresize's cubic kernel (Keys, a = -0.5)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1.0) + (
        -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    ) * ((ax > 1.0) & (ax <= 2.0))


def _imresize_matrix(in_length: int, scale: float) -> sparse.csr_matrix:
    """Sparse (out, in) weights of MATLAB imresize along one axis (bicubic, antialiased)."""
    out_length = int(np.ceil(in_length * scale))
    kernel_width = 4.0
    if scale < 1.0:  # antialiasing: stretch the kernel by 1/scale

        def kernel(x):
            return scale * _cubic(scale * x)

        kernel_width /= scale
    else:
        kernel = _cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)[:, None]
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(np.ceil(kernel_width)) + 2
    idx = left + np.arange(taps)[None, :]  # 1-based, may fall outside
    weights = kernel(u - idx)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    idx0 = mirror[np.mod(idx.astype(np.int64) - 1, mirror.size)]  # symmetric padding
    rows = np.repeat(np.arange(out_length), taps)
    return sparse.csr_matrix(
        (weights.ravel(), (rows, idx0.ravel())), shape=(out_length, in_length)
    )  # duplicate (row, col) entries are summed


def _imresize_half(im: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(im, 0.5)`` for a 2-D double image (rows first, then columns)."""
    rows = _imresize_matrix(im.shape[0], 0.5)
    cols = _imresize_matrix(im.shape[1], 0.5)
    tmp = rows @ im
    return np.asarray((cols @ tmp.T).T)


def brisque_features(image8) -> np.ndarray:
    """The 36 BRISQUE features of a 2-D image on the 0..255 scale.

    Parameters
    ----------
    image8 : 2-D array, uint8 or real values in 0..255 (use :func:`window_to_8bit` for
        16-bit counts), at least 8x8 pixels.

    Returns
    -------
    numpy.ndarray, float64, shape (36,): for each of 2 scales (full, half), the GGD
    (shape, variance) of the MSCN image, then for the horizontal, vertical, main- and
    secondary-diagonal neighbour products the AGGD (shape, mean, left variance,
    right variance).
    """
    im = _as_gray255(image8, window=None)
    feats = _features_one_scale(im)
    feats += _features_one_scale(_imresize_half(im))
    return np.asarray(feats, dtype=np.float64)


# --------------------------------------------------------------------------- model
@dataclass(frozen=True)
class _SvrModel:
    gamma: float
    rho: float
    coefs: np.ndarray  # (n_sv,)
    support_vectors: np.ndarray  # (n_sv, n_features)
    scale_lower: float
    scale_upper: float
    feature_min: np.ndarray  # (n_features,)
    feature_max: np.ndarray


def _read_resource(name: str) -> str:
    return (files("napari_xray_denoise") / "data" / "brisque" / name).read_text(encoding="ascii")


def _parse_libsvm_model(text: str, n_features: int) -> tuple[float, float, np.ndarray, np.ndarray]:
    lines = text.splitlines()
    header: dict[str, str] = {}
    start = None
    for i, line in enumerate(lines):
        if line.strip() == "SV":
            start = i + 1
            break
        key, _, value = line.partition(" ")
        header[key] = value.strip()
    if (
        start is None
        or header.get("svm_type") != "epsilon_svr"
        or header.get("kernel_type") != "rbf"
    ):
        raise ValueError("BRISQUE model file is not a libsvm epsilon-SVR model with an RBF kernel.")
    coefs, svs = [], []
    for line in lines[start:]:
        parts = line.split()
        if not parts:
            continue
        coefs.append(float(parts[0]))
        vec = np.zeros(n_features)
        for item in parts[1:]:
            index, _, value = item.partition(":")
            vec[int(index) - 1] = float(value)
        svs.append(vec)
    if len(coefs) != int(header["total_sv"]):
        raise ValueError("BRISQUE model file is truncated (support-vector count mismatch).")
    return float(header["gamma"]), float(header["rho"]), np.asarray(coefs), np.vstack(svs)


def _parse_svm_range(text: str) -> tuple[float, float, np.ndarray, np.ndarray]:
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != ["x"]:
        raise ValueError("BRISQUE range file must start with the line 'x' (svm-scale format).")
    lower, upper = (float(v) for v in lines[1])
    table = np.array([[float(v) for v in row] for row in lines[2:]])
    order = np.argsort(table[:, 0])
    return lower, upper, table[order, 1], table[order, 2]


@lru_cache(maxsize=1)
def _load_model() -> _SvrModel:
    lower, upper, fmin, fmax = _parse_svm_range(_read_resource("allrange"))
    gamma, rho, coefs, svs = _parse_libsvm_model(_read_resource("allmodel"), fmin.size)
    return _SvrModel(gamma, rho, coefs, svs, lower, upper, fmin, fmax)


def _scale_features(feats: np.ndarray, model: _SvrModel) -> np.ndarray:
    """svm-scale: linear map [min, max] -> [lower, upper], no clipping."""
    span = model.feature_max - model.feature_min
    return (
        model.scale_lower
        + (model.scale_upper - model.scale_lower) * (feats - model.feature_min) / span
    )


def _svr_predict(x: np.ndarray, model: _SvrModel) -> float:
    sq_dist = np.sum((model.support_vectors - x[None, :]) ** 2, axis=1)
    return float(model.coefs @ np.exp(-model.gamma * sq_dist) - model.rho)


def brisque(image, *, window: tuple[float, float] | None = None) -> float:
    """BRISQUE quality score of a 2-D image (lower is better; about 0..100 on photos).

    Parameters
    ----------
    image : 2-D array.
        * uint16 counts: mapped to 8 bits through the fixed linear window
          :data:`DEFAULT_WINDOW` = (0, 65535) (see :func:`window_to_8bit`);
        * uint8, or any other dtype with values in 0..255: used as is (float values are
          not rounded, as in the MATLAB reference which works on doubles);
        * anything else needs ``window``.
    window : (low, high) or None
        Fixed window in input units mapped to 0..255 before scoring (e.g. (0, 4095) for
        a 12-bit scanner). Use the same window for every image you compare; it must not
        be derived from the image being scored.

    Returns
    -------
    float, the MATLAB-compatible BRISQUE score (LIVE release model).
    """
    im255 = _as_gray255(image, window)
    feats = _features_one_scale(im255) + _features_one_scale(_imresize_half(im255))
    model = _load_model()
    return _svr_predict(_scale_features(np.asarray(feats), model), model)


# --------------------------------------------------------------------------- full reference
def _paired(test, reference) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(test, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if t.shape != r.shape:
        raise ValueError(
            f"test and reference must have the same shape, got {t.shape} and {r.shape}."
        )
    if t.ndim not in (2, 3):
        raise ValueError(f"expected a 2-D image or a (C, Y, X) stack, got shape {t.shape}.")
    return t, r


def psnr(test, reference, data_range: float = 65535.0):
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``.

    Parameters
    ----------
    test, reference : arrays of the same shape, 2-D (Y, X) or a stack (C, Y, X), e.g. a
        dual-energy (2, Y, X) stack; any real dtype, same units (counts).
    data_range : peak value in those units (65535 for 16-bit counts, 255 for 8 bits).

    Returns
    -------
    float for a 2-D image; numpy.ndarray of shape (C,) (one value per channel) for a
    stack. Identical images give ``inf``.
    """
    t, r = _paired(test, reference)
    axes = (-2, -1)
    mse = np.mean((t - r) ** 2, axis=axes)
    with np.errstate(divide="ignore"):
        value = 10.0 * np.log10(float(data_range) ** 2 / mse)
    return float(value) if t.ndim == 2 else np.asarray(value, dtype=np.float64)


def ssim(test, reference, data_range: float = 65535.0):
    """Structural similarity (Wang et al. 2004): Gaussian window sigma 1.5, population
    covariance, K1 = 0.01, K2 = 0.03 (``skimage.metrics.structural_similarity``).

    Parameters and return as :func:`psnr`: float for 2-D, array of shape (C,) for a
    (C, Y, X) stack; 1.0 for identical images. Each side must be at least 7 pixels.
    """
    from skimage.metrics import structural_similarity

    t, r = _paired(test, reference)
    if min(t.shape[-2:]) < 7:
        raise ValueError(f"SSIM needs images of at least 7x7 pixels, got {t.shape[-2:]}.")

    def one(a, b):
        return float(
            structural_similarity(
                a,
                b,
                data_range=float(data_range),
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            )
        )

    if t.ndim == 2:
        return one(t, r)
    return np.array([one(a, b) for a, b in zip(t, r, strict=True)])


# --------------------------------------------------------------------------- noise level
_IMMERKAER = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def estimate_noise_flat(image, flat_fraction: float = 0.5) -> float:
    """Standard deviation of the noise, estimated in the flattest parts of a 2-D image.

    Method: Immerkaer's operator ``[[1,-2,1],[-2,4,-2],[1,-2,1]]`` (which cancels any
    image that is linear -- or more generally a sum f(y) + g(x) -- in each 3x3 patch)
    applied where the image is flat, i.e. restricted as in Tai & Yang (2008) to the
    ``flat_fraction`` of pixels with the lowest Sobel gradient magnitude; then
    ``sigma = sqrt(pi/2) * mean|response| / 6``. For Gaussian noise the Sobel responses
    are uncorrelated with (hence independent of) the Immerkaer response, so selecting on
    the gradient removes edges without biasing the estimate. Pixels whose 3x3
    neighbourhood is exactly constant (clipped/saturated areas, padding) carry no noise
    information and are left out.

    Parameters
    ----------
    image : 2-D array of any real dtype (e.g. uint16 counts), at least 3x3.
    flat_fraction : fraction (0, 1] of the non-constant pixels kept as "flat".

    Returns
    -------
    float, noise std in the units of ``image`` (counts for a scan). For signal-dependent
    (Poisson-Gaussian) noise it is an average over the flat regions kept. 0.0 if the
    image is constant everywhere.
    """
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim != 2 or min(arr.shape) < 3:
        raise ValueError(f"estimate_noise_flat needs a 2-D image of at least 3x3, got {arr.shape}.")
    if not 0.0 < flat_fraction <= 1.0:
        raise ValueError(f"flat_fraction must be in (0, 1], got {flat_fraction}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError("estimate_noise_flat needs finite pixel values; replace NaN/inf first.")
    inner = (slice(1, -1), slice(1, -1))
    response = ndimage.correlate(arr, _IMMERKAER, mode="nearest")[inner]
    gradient = np.hypot(
        ndimage.sobel(arr, axis=0, mode="nearest"), ndimage.sobel(arr, axis=1, mode="nearest")
    )[inner]
    spread = (ndimage.maximum_filter(arr, size=3) - ndimage.minimum_filter(arr, size=3))[inner]
    usable = spread > 0
    if not np.any(usable):
        return 0.0
    gradient_used = gradient[usable]
    threshold = np.quantile(gradient_used, flat_fraction)
    flat = response[usable][gradient_used <= threshold]
    return float(np.sqrt(np.pi / 2.0) * np.mean(np.abs(flat)) / 6.0)


# --------------------------------------------------------------------------- table
def score_table(
    images: dict,
    reference=None,
    *,
    window: tuple[float, float] | None = None,
    data_range: float = 65535.0,
) -> list[dict]:
    """Score several images; one row per image, or per channel of a (C, Y, X) stack.

    Parameters
    ----------
    images : {name: array}; each a 2-D image or a (C, Y, X) stack (e.g. dual-energy,
        channel 0 = low energy). uint16 counts go through the fixed BRISQUE window.
    reference : optional clean array of the same shape as every image (for PSNR/SSIM).
    window : fixed BRISQUE window (low, high), see :func:`brisque`.
    data_range : peak value for PSNR/SSIM, in image units.

    Returns
    -------
    list of dicts with keys ``name`` (str), ``channel`` (int, or None for 2-D),
    ``brisque`` (float), ``noise`` (float, counts; :func:`estimate_noise_flat`) and, if a
    reference is given, ``psnr`` (dB) and ``ssim``.
    """
    ref = None if reference is None else np.asarray(reference)
    rows = []
    for name, image in images.items():
        arr = np.asarray(image)
        if arr.ndim not in (2, 3):
            raise ValueError(f"image {name!r} must be 2-D or (C, Y, X), got shape {arr.shape}.")
        if ref is not None and ref.shape != arr.shape:
            raise ValueError(
                f"image {name!r} has shape {arr.shape} but the reference has {ref.shape}."
            )
        channels = (
            [(None, arr, ref)]
            if arr.ndim == 2
            else [(c, arr[c], None if ref is None else ref[c]) for c in range(arr.shape[0])]
        )
        for channel, plane, ref_plane in channels:
            row = {
                "name": str(name),
                "channel": channel,
                "brisque": brisque(plane, window=window),
                "noise": estimate_noise_flat(plane),
            }
            if ref_plane is not None:
                row["psnr"] = psnr(plane, ref_plane, data_range)
                row["ssim"] = ssim(plane, ref_plane, data_range)
            rows.append(row)
    return rows
