"""Pseudo-colour (HSV, hot) and material colouring of dual-energy 16-bit X-ray scans.

Plain numpy / scipy.ndimage, vectorised.  Inputs follow :mod:`napari_xray_denoise.fusion`'s
conventions (counts; a pair as ``(low, high)`` or one ``(2, Y, X)`` stack).

* Colour images are display products: ``uint8`` RGB ``(Y, X, 3)``, or ``float32`` RGB
  in [0, 1] with ``as_float=True``.
* Display functions default to the 16-bit full scale 65535; the material functions,
  which need the true air level for Beer-Lambert, default to ``white_level=None``,
  which means "estimate it from the scan" (see
  :func:`napari_xray_denoise.fusion.estimate_white_level`).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .fusion import (
    FULL_SCALE_U16,
    _as_image,
    _as_pair,
    _estimate_white_single,
    _nonnegative_finite,
    _positive_finite,
    _resolve_white,
)

__all__ = [
    "DEFAULT_IMPENETRABLE_TRANSMISSION",
    "DEFAULT_INORGANIC_MAX_RATIO",
    "DEFAULT_MIN_ATTENUATION",
    "DEFAULT_ORGANIC_MAX_RATIO",
    "MATERIAL_BACKGROUND",
    "MATERIAL_COLOURS_RGB01",
    "MATERIAL_IMPENETRABLE",
    "MATERIAL_INORGANIC",
    "MATERIAL_METAL",
    "MATERIAL_NAMES",
    "MATERIAL_ORGANIC",
    "classify_materials",
    "hot_colormap",
    "hsv_pseudocolour",
    "hsv_to_rgb",
    "material_colour",
    "material_ratio",
]

# Material class ids of :func:`classify_materials`.
MATERIAL_BACKGROUND = 0
MATERIAL_ORGANIC = 1
MATERIAL_INORGANIC = 2
MATERIAL_METAL = 3
MATERIAL_IMPENETRABLE = 4
MATERIAL_NAMES = {
    MATERIAL_BACKGROUND: "background",
    MATERIAL_ORGANIC: "organic",
    MATERIAL_INORGANIC: "inorganic",
    MATERIAL_METAL: "metal",
    MATERIAL_IMPENETRABLE: "impenetrable",
}
#: Fully saturated display colour of each class, RGB in [0, 1], as screeners know them:
#: organic orange, mixed/inorganic green, metal blue, impenetrable dark red.
MATERIAL_COLOURS_RGB01 = {
    MATERIAL_ORGANIC: (1.0, 0.55, 0.0),
    MATERIAL_INORGANIC: (0.1, 0.75, 0.1),
    MATERIAL_METAL: (0.15, 0.35, 1.0),
    MATERIAL_IMPENETRABLE: (0.45, 0.0, 0.0),
}

# Ratio boundaries on R = ln(T_low) / ln(T_high) (see material_ratio), as functions of
# the high-energy log-attenuation A = -ln(T_high): (A breakpoints, R breakpoints),
# linearly interpolated, constant beyond the ends.  R falls with thickness for every
# material (beam hardening), so a scanner's boundaries are curves, not constants.
# Calibrated on the physics of the project's phantom scanner (150 kVp, 2.5 mm Al
# filtration, dual-layer detector: 0.3 mm CsI front = low, 0.5 mm Cu, 4 mm CsI rear =
# high; Elam attenuation tables) from the pure-material curves R(A):
# organic/inorganic at 40 % of the way from the highest organic curve (water;
# polyethylene ... TNT, RDX lie below it) to aluminium; inorganic/metal at 20 % of the
# way from aluminium to the lower of iron and copper.  Mixtures with organics (clothing
# over everything) only lower R, so a boundary just above the pure aluminium curve
# still calls metal under clothing metal.  Other spectra need other curves.
_BOUNDARY_ATTENUATION = (0.03, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.2)
DEFAULT_ORGANIC_MAX_RATIO = (
    _BOUNDARY_ATTENUATION,
    (1.95, 1.86, 1.77, 1.68, 1.62, 1.55, 1.50, 1.43, 1.38, 1.35, 1.32, 1.30, 1.27),
)
DEFAULT_INORGANIC_MAX_RATIO = (
    _BOUNDARY_ATTENUATION,
    (3.23, 2.88, 2.59, 2.34, 2.17, 1.99, 1.86, 1.70, 1.60, 1.52, 1.47, 1.42, 1.37),
)
#: High-energy log-attenuation -ln(T_high) below which a pixel counts as air / background.
DEFAULT_MIN_ATTENUATION = 0.03
#: High-energy transmission below which a pixel is too dark to judge ("impenetrable").
DEFAULT_IMPENETRABLE_TRANSMISSION = 0.015
# High-energy log-attenuation at which the class colour is fully saturated.
_FULL_COLOUR_ATTENUATION = 0.35


def _to_output(rgb01: np.ndarray, as_float: bool) -> np.ndarray:
    """RGB in [0, 1] -> float32 [0, 1] or uint8 (rounded)."""
    rgb01 = np.clip(rgb01, 0.0, 1.0)
    if as_float:
        return rgb01.astype(np.float32, copy=False)
    return np.rint(rgb01 * 255.0).astype(np.uint8)


def _per_channel(value, name: str) -> tuple[float, float]:
    """One number for both channels, or a (low, high) pair, as two floats."""
    pair = (
        value if isinstance(value, Sequence | np.ndarray) and not isinstance(value, str) else None
    )
    try:
        if pair is None:
            return float(value), float(value)
        if len(pair) == 2:
            return float(pair[0]), float(pair[1])
    except (TypeError, ValueError):
        pass
    raise ValueError(f"{name} must be one number or a (low, high) pair of numbers, got {value!r}.")


# --------------------------------------------------------------------------- pseudo-colour
def hsv_to_rgb(hsv01: np.ndarray) -> np.ndarray:
    """Convert HSV to RGB, vectorised.  ``hsv01``: float ``(..., 3)`` in [0, 1]
    (hue 0 and 1 are both red).  Returns float ``(..., 3)`` RGB in [0, 1]."""
    hsv01 = np.asarray(hsv01, dtype=np.float32)
    h, s, v = hsv01[..., 0], hsv01[..., 1], hsv01[..., 2]
    h6 = (h % 1.0) * 6.0
    sector = np.floor(h6)
    f = h6 - sector
    sector = sector.astype(np.int64) % 6
    p = v * (1.0 - s)
    q = v * (1.0 - s * f)
    t = v * (1.0 - s * (1.0 - f))
    r = np.choose(sector, [v, q, p, p, t, v])
    g = np.choose(sector, [t, v, v, q, p, p])
    b = np.choose(sector, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1)


def hsv_pseudocolour(
    fused,
    gamma_image=None,
    *,
    white_level: float | None = FULL_SCALE_U16,
    saturation: float = 0.8,
    gamma: float = 2.2,
    as_float: bool = False,
) -> np.ndarray:
    """The source's HSV pseudo-colour: H = fused, S = 0.8, V = gamma image, to RGB.

    Parameters
    ----------
    fused : array-like
        2-D fused image in counts; hue = ``clip(fused / white_level, 0, 1)``.
    gamma_image : array-like or None
        2-D image in counts for the value channel (e.g. the first output of
        :func:`spatial_fuse`); None computes ``white * (fused / white) ** (1 / gamma)``.
    white_level : float or None
        Count that maps to 1.0 (default 65535); None estimates it from ``fused``.
    saturation : float
        Constant saturation in [0, 1] (source: 0.8).
    gamma : float
        Used only when ``gamma_image`` is None.
    as_float : bool
        Return float32 RGB in [0, 1] instead of uint8.

    Returns
    -------
    numpy.ndarray
        ``(Y, X, 3)`` RGB, uint8 (or float32 in [0, 1]).
    """
    fused_f = _as_image(fused, "fused")
    white = _resolve_white(white_level, fused_f)
    saturation = _nonnegative_finite(saturation, "saturation")
    if saturation > 1:
        raise ValueError(f"saturation must lie in [0, 1], got {saturation!r}.")
    hue01 = np.clip(fused_f / np.float32(white), 0.0, 1.0)
    if gamma_image is None:
        value01 = np.power(hue01, np.float32(1.0 / _positive_finite(gamma, "gamma")))
    else:
        value_f = _as_image(gamma_image, "gamma_image")
        if value_f.shape != fused_f.shape:
            raise ValueError(
                f"fused has shape {fused_f.shape} but gamma_image has shape "
                f"{value_f.shape}; pass images of the same size."
            )
        value01 = np.clip(value_f / np.float32(white), 0.0, 1.0)
    hsv01 = np.stack([hue01, np.full_like(hue01, saturation), value01], axis=-1)
    return _to_output(hsv_to_rgb(hsv01), as_float)


# matplotlib's 'hot' colormap breakpoints (x, value) per channel.
_HOT_RED = ((0.0, 0.365079, 1.0), (0.0416, 1.0, 1.0))
_HOT_GREEN = ((0.0, 0.365079, 0.746032, 1.0), (0.0, 0.0, 1.0, 1.0))
_HOT_BLUE = ((0.0, 0.746032, 1.0), (0.0, 0.0, 1.0))


def hot_colormap(
    image, *, white_level: float | None = FULL_SCALE_U16, as_float: bool = False
) -> np.ndarray:
    """Map a 2-D count image through the 'hot' colormap (black-red-yellow-white).

    Same breakpoints as matplotlib's ``hot`` (red ramps 0.0416 -> 1 over
    x in [0, 0.365], green 0 -> 1 over [0.365, 0.746], blue 0 -> 1 over [0.746, 1]),
    interpolated continuously (no 256-entry lookup table, so 16-bit steps survive
    in ``as_float`` output).  ``x = clip(image / white_level, 0, 1)``.

    Returns ``(Y, X, 3)`` uint8 RGB, or float32 RGB in [0, 1] with ``as_float``.
    """
    image_f = _as_image(image, "image")
    white = _resolve_white(white_level, image_f)
    x01 = np.clip(image_f / np.float32(white), 0.0, 1.0)
    rgb01 = np.stack(
        [np.interp(x01, xp, fp).astype(np.float32) for xp, fp in (_HOT_RED, _HOT_GREEN, _HOT_BLUE)],
        axis=-1,
    )
    return _to_output(rgb01, as_float)


# --------------------------------------------------------------------------- materials
def _attenuations(low, high, white_level, dark_level, smooth_sigma):
    """Return (a_low, a_high, t_high): log-attenuations -ln(T) >= 0 and high transmission."""
    low_f, high_f = _as_pair(low, high)
    if white_level is None:
        white = (_estimate_white_single(low_f), _estimate_white_single(high_f))
    else:
        white = _per_channel(white_level, "white_level")
    dark = _per_channel(dark_level, "dark_level")
    smooth_sigma = _nonnegative_finite(smooth_sigma, "smooth_sigma")
    result = []
    for counts, w, d, name in zip((low_f, high_f), white, dark, ("low", "high"), strict=True):
        if not np.isfinite(w) or not np.isfinite(d) or w <= d:
            raise ValueError(
                f"the {name} channel's white level ({w}) must be finite and above its dark "
                f"level ({d}); check white_level and dark_level."
            )
        span = np.float32(w - d)
        # Floor at half a count so that log() stays finite on zero-count pixels.
        transmission = np.clip((counts - np.float32(d)) / span, 0.5 / span, 1.0)
        result.append(-np.log(transmission))
    a_low, a_high = result
    if smooth_sigma > 0:
        a_low = ndimage.gaussian_filter(a_low, smooth_sigma, mode="reflect")
        a_high = ndimage.gaussian_filter(a_high, smooth_sigma, mode="reflect")
    return a_low, a_high, np.exp(-a_high)


def _ratio(a_low, a_high, min_attenuation):
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = a_low / a_high
    return np.where(a_high >= min_attenuation, ratio, np.float32(np.nan)).astype(np.float32)


def material_ratio(
    low,
    high=None,
    *,
    white_level=None,
    dark_level=0.0,
    min_attenuation: float = DEFAULT_MIN_ATTENUATION,
    smooth_sigma: float = 0.0,
) -> np.ndarray:
    """Dual-energy attenuation ratio ``R = ln(I_low / I0) / ln(I_high / I0)``.

    ``R`` is the ratio of low- to high-energy attenuation; it grows with the effective
    atomic number (photo-electric absorption dominates at low energy): roughly
    1.2-1.5 for organics, higher for aluminium/glass, highest for iron/copper.  It also
    drifts with thickness (beam hardening), so thresholds are spectrum dependent.

    Parameters
    ----------
    low, high : array-like
        Two 2-D images of equal shape in counts, or one ``(2, Y, X)`` stack.
    white_level : float, (float, float) or None
        Air level ``I0`` in counts, for both channels or per channel (low, high);
        None estimates each channel's air level (:func:`estimate_white_level`).
    dark_level : float or (float, float)
        Detector offset in counts subtracted first (0 for offset-corrected scans).
    min_attenuation : float
        Pixels whose high-energy log-attenuation ``-ln(T_high)`` is below this are
        air/background and get NaN (the ratio is meaningless there).  0.03 means
        about 3 % of the high-energy beam absorbed.
    smooth_sigma : float
        Gaussian sigma in pixels applied to both log-attenuation maps before the ratio
        (noise reduction for undenoised scans; 0 = none).

    Returns
    -------
    numpy.ndarray
        float32 ``(Y, X)`` ratio map, NaN where attenuation is negligible.
    """
    min_attenuation = _nonnegative_finite(min_attenuation, "min_attenuation")
    a_low, a_high, _ = _attenuations(low, high, white_level, dark_level, smooth_sigma)
    return _ratio(a_low, a_high, min_attenuation)


def _boundary(value, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A ratio boundary as (attenuation breakpoints, ratio breakpoints) arrays."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        ratio = _positive_finite(value, name)
        return np.array([0.0]), np.array([ratio])
    try:
        attenuation, ratio = (np.asarray(v, dtype=np.float64) for v in value)
    except (TypeError, ValueError):
        attenuation = ratio = None
    if (
        attenuation is None
        or attenuation.ndim != 1
        or attenuation.shape != ratio.shape
        or attenuation.size == 0
        or not (np.isfinite(attenuation).all() and np.isfinite(ratio).all())
        or (np.diff(attenuation) <= 0).any()
        or (ratio <= 0).any()
    ):
        raise ValueError(
            f"{name} must be a positive ratio or an (attenuations, ratios) pair of equally "
            "long finite sequences with strictly increasing attenuations."
        )
    return attenuation, ratio


def _classify(a_low, a_high, t_high, organic_max, inorganic_max, min_attenuation, impenetrable):
    organic_att, organic_ratio = _boundary(organic_max, "organic_max")
    inorganic_att, inorganic_ratio = _boundary(inorganic_max, "inorganic_max")
    knots = np.union1d(organic_att, inorganic_att)
    if (
        np.interp(knots, inorganic_att, inorganic_ratio)
        <= np.interp(knots, organic_att, organic_ratio)
    ).any():
        raise ValueError(
            "inorganic_max must be larger than organic_max at every attenuation; the ratio "
            "bands are organic < inorganic < metal."
        )
    min_attenuation = _nonnegative_finite(min_attenuation, "min_attenuation")
    impenetrable = _nonnegative_finite(impenetrable, "impenetrable_transmission")
    ratio = _ratio(a_low, a_high, min_attenuation)
    organic_limit = np.interp(a_high, organic_att, organic_ratio).astype(np.float32)
    inorganic_limit = np.interp(a_high, inorganic_att, inorganic_ratio).astype(np.float32)
    classes = np.full(ratio.shape, MATERIAL_METAL, dtype=np.uint8)
    classes[ratio < inorganic_limit] = MATERIAL_INORGANIC
    classes[ratio < organic_limit] = MATERIAL_ORGANIC
    classes[np.isnan(ratio)] = MATERIAL_BACKGROUND
    classes[t_high < impenetrable] = MATERIAL_IMPENETRABLE
    return classes


def classify_materials(
    low,
    high=None,
    *,
    organic_max=DEFAULT_ORGANIC_MAX_RATIO,
    inorganic_max=DEFAULT_INORGANIC_MAX_RATIO,
    min_attenuation: float = DEFAULT_MIN_ATTENUATION,
    impenetrable_transmission: float = DEFAULT_IMPENETRABLE_TRANSMISSION,
    white_level=None,
    dark_level=0.0,
    smooth_sigma: float = 0.0,
) -> np.ndarray:
    """Classify each pixel by its dual-energy ratio (see :func:`material_ratio`).

    Classes (uint8): :data:`MATERIAL_BACKGROUND` (0) where ``-ln(T_high) <
    min_attenuation``; :data:`MATERIAL_ORGANIC` (1) where ``R < organic_max``;
    :data:`MATERIAL_INORGANIC` (2, mixed / light metals such as aluminium, glass, salt,
    PVC) where ``organic_max <= R < inorganic_max``; :data:`MATERIAL_METAL` (3) where
    ``R >= inorganic_max``; :data:`MATERIAL_IMPENETRABLE` (4) where the high-energy
    transmission is below ``impenetrable_transmission`` (too dark to judge; this
    overrides the ratio).

    Parameters
    ----------
    organic_max, inorganic_max : float or (sequence, sequence)
        Ratio boundaries.  A number is a constant boundary; a pair
        ``(attenuations, ratios)`` is a boundary curve over the high-energy
        log-attenuation ``A = -ln(T_high)`` (strictly increasing breakpoints, linear
        interpolation, constant beyond the ends), as real scanners use, because ``R``
        falls with thickness.  The defaults :data:`DEFAULT_ORGANIC_MAX_RATIO` and
        :data:`DEFAULT_INORGANIC_MAX_RATIO` are curves calibrated on the phantom's
        150 kVp dual-layer scanner (organic boundary from R 1.95 at A 0.03 down to
        1.27 at A 4.2; metal boundary from 3.23 down to 1.37).  They are spectrum
        dependent: recalibrate on scans of known materials for another scanner.
    min_attenuation, impenetrable_transmission : float
        Background limit on ``-ln(T_high)`` and impenetrable limit on ``T_high``.
    white_level, dark_level, smooth_sigma
        As in :func:`material_ratio`.
    """
    a_low, a_high, t_high = _attenuations(low, high, white_level, dark_level, smooth_sigma)
    return _classify(
        a_low,
        a_high,
        t_high,
        organic_max,
        inorganic_max,
        min_attenuation,
        impenetrable_transmission,
    )


def material_colour(
    low,
    high=None,
    *,
    organic_max=DEFAULT_ORGANIC_MAX_RATIO,
    inorganic_max=DEFAULT_INORGANIC_MAX_RATIO,
    min_attenuation: float = DEFAULT_MIN_ATTENUATION,
    impenetrable_transmission: float = DEFAULT_IMPENETRABLE_TRANSMISSION,
    white_level=None,
    dark_level=0.0,
    smooth_sigma: float = 0.0,
    gamma: float = 2.2,
    as_float: bool = False,
) -> np.ndarray:
    """Material-coloured display as on baggage scanners.

    Hue from :func:`classify_materials` (colours in :data:`MATERIAL_COLOURS_RGB01`:
    organic orange, inorganic green, metal blue, impenetrable a constant dark red).
    Brightness follows the high-energy transmission, ``v = T_high ** (1 / gamma)``
    (darker = more attenuation), and the colour saturates with attenuation
    (``s = min(-ln(T_high) / 0.35, 1)``): ``rgb = v * ((1 - s) * white + s * colour)``.
    Air stays white and background pixels (negligible attenuation) stay uncoloured
    grey-white.  Parameters as in :func:`classify_materials`; ``as_float`` returns
    float32 RGB in [0, 1] instead of uint8.

    Returns ``(Y, X, 3)`` RGB, uint8 (or float32 in [0, 1]).
    """
    gamma = _positive_finite(gamma, "gamma")
    a_low, a_high, t_high = _attenuations(low, high, white_level, dark_level, smooth_sigma)
    classes = _classify(
        a_low,
        a_high,
        t_high,
        organic_max,
        inorganic_max,
        min_attenuation,
        impenetrable_transmission,
    )
    palette = np.ones((5, 3), dtype=np.float32)  # background: white (uncoloured)
    for class_id, rgb in MATERIAL_COLOURS_RGB01.items():
        palette[class_id] = rgb
    colour = palette[classes]
    value = np.power(t_high, np.float32(1.0 / gamma))[..., None]
    sat = np.clip(a_high / np.float32(_FULL_COLOUR_ATTENUATION), 0.0, 1.0)[..., None]
    sat = np.where(classes[..., None] == MATERIAL_BACKGROUND, np.float32(0.0), sat)
    rgb01 = value * ((1.0 - sat) + sat * colour)
    impenetrable = classes == MATERIAL_IMPENETRABLE
    rgb01[impenetrable] = palette[MATERIAL_IMPENETRABLE]
    return _to_output(rgb01, as_float)
