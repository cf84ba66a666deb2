"""Material fidelity of a denoised dual-energy scan: what a screener's colours rely on.

A dual-energy scanner colours each pixel by the ratio of its low- to high-energy
attenuation (:func:`napari_xray_denoise.colour.material_ratio`,
:func:`~napari_xray_denoise.colour.classify_materials`). A denoiser that shifts the level
of one channel by a fraction of a percent, smooths a thin wire away or leaves a
column-constant error moves that ratio, and with it the colour. The functions here score
a denoised scan against its clean (noise-free) scan on exactly those points; all take
counts (uint16 or float, same scale) and need nothing but numpy and scipy:

* :func:`flat_region_mask`: the flat pixels of a clean channel, away from edges;
* :func:`level_bias`: relative mean error of each channel over flat regions (target
  ``|bias| < 0.1 %`` of the level), per connected region and pooled;
* :func:`ratio_bias`: the same for the ratio ``R`` (of a region's mean attenuations, or
  per pixel);
* :func:`class_agreement`: share of pixels that keep their material class;
* :func:`line_error_share`: share of the error held by column and by row means;
* :func:`wire_contrast`: kept contrast of a thin wire against its surroundings.

Region statistics are means of a noisy quantity: a region of ``n`` pixels whose error
has relative std ``s`` carries a statistical floor of about ``s / sqrt(n)``, so the
*worst* region of a raw noisy scan can exceed 0.1 % although the scan has no bias.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .colour import (
    DEFAULT_MIN_ATTENUATION,
    MATERIAL_BACKGROUND,
    MATERIAL_NAMES,
    _attenuations,
    classify_materials,
    material_ratio,
)

__all__ = [
    "RATIO_STATISTICS",
    "RegionBias",
    "class_agreement",
    "flat_region_mask",
    "level_bias",
    "line_error_share",
    "ratio_bias",
    "wire_contrast",
]


# --------------------------------------------------------------------------- helpers
def _image(value, name: str) -> np.ndarray:
    """One real 2-D image as float64, or ValueError."""
    array = np.asarray(value)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise ValueError(f"{name} has dtype {array.dtype}; pass real-valued counts.")
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D image (Y, X), got shape {array.shape}.")
    return array.astype(np.float64, copy=False)


def _mask(value, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A boolean mask of ``shape``, or ValueError."""
    array = np.asarray(value)
    if array.shape != tuple(shape):
        raise ValueError(
            f"{name} has shape {array.shape} but the images have shape {tuple(shape)}; "
            "pass a mask of the same size."
        )
    if array.dtype != bool:
        raise ValueError(f"{name} must be a boolean mask, got dtype {array.dtype}.")
    return array


def _same_shape(test: np.ndarray, reference: np.ndarray, names: tuple[str, str]) -> None:
    if test.shape != reference.shape:
        raise ValueError(
            f"{names[0]} has shape {test.shape} but {names[1]} has shape "
            f"{reference.shape}; pass images of the same size."
        )


def _pair(value, name: str) -> np.ndarray:
    """A dual-energy ``(2, Y, X)`` stack, or a ``(low, high)`` pair of 2-D images, as float64."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        low, high = (np.asarray(v) for v in value)
        if low.ndim != 2 or low.shape != high.shape:
            raise ValueError(
                f"{name}: low has shape {low.shape} and high has shape {high.shape}; pass two "
                "2-D images of the same size or one (2, Y, X) stack."
            )
        value = np.stack([low, high])
    array = np.asarray(value)
    if array.ndim != 3 or array.shape[0] != 2 or array.size == 0:
        raise ValueError(
            f"{name} must be a dual-energy (2, Y, X) stack (channel 0 = low energy) or a "
            f"(low, high) pair of equal 2-D images, got shape {array.shape}."
        )
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} has dtype {array.dtype}; pass real-valued counts.")
    return array.astype(np.float64, copy=False)


# --------------------------------------------------------------------------- flat regions
def flat_region_mask(
    clean_channel,
    *,
    sigma: float = 1.0,
    window: int = 7,
    max_relative_gradient: float = 0.005,
    max_relative_std: float = 0.005,
    erosion: int = 2,
    min_level: float = 0.0,
    max_level: float | None = None,
) -> np.ndarray:
    """Flat pixels of one clean (noise-free) channel, eroded away from edges.

    A pixel is flat when the Gaussian gradient magnitude (``sigma`` px) and the standard
    deviation over a ``window`` x ``window`` box are both below the given fractions of
    the local (box-mean) level, and that level lies in ``(min_level, max_level]``
    (``max_level``: e.g. the code where a scan's noise starts to clip, so that clipped
    pixels, whose mean is biased by the clip, are left out; None = no upper limit). The
    mask is then eroded by ``erosion`` pixels (the image border counts as an edge).

    Returns a boolean ``(Y, X)`` mask.
    """
    clean = _image(clean_channel, "clean_channel")
    if not (sigma > 0 and window >= 1 and erosion >= 0):
        raise ValueError(
            f"sigma must be > 0, window >= 1 and erosion >= 0; got sigma={sigma!r}, "
            f"window={window!r}, erosion={erosion!r}."
        )
    if not (max_relative_gradient > 0 and max_relative_std > 0):
        raise ValueError("max_relative_gradient and max_relative_std must be positive.")
    level = ndimage.uniform_filter(clean, int(window), mode="reflect")
    second = ndimage.uniform_filter(clean * clean, int(window), mode="reflect")
    std = np.sqrt(np.maximum(second - level * level, 0.0))
    gradient = ndimage.gaussian_gradient_magnitude(clean, float(sigma), mode="reflect")
    with np.errstate(divide="ignore", invalid="ignore"):
        flat = (
            (level > min_level)
            & (gradient < max_relative_gradient * level)
            & (std < max_relative_std * level)
        )
    if max_level is not None:
        flat &= level <= max_level
    if erosion > 0:
        flat = ndimage.binary_erosion(flat, iterations=int(erosion), border_value=0)
    return flat


# --------------------------------------------------------------------------- level bias
@dataclass(frozen=True)
class RegionBias:
    """Relative bias of a tested quantity against the clean one over flat pixels.

    Each value is ``(S0 / S1) / (S2 / S3) - 1`` of four sums over the pixels concerned:
    for a level ``S0 = sum(denoised)``, ``S1 = sum(clean)``, ``S2 = S3 = n`` (so the bias
    is ``mean(denoised - clean) / mean(clean)``); for the ratio of mean attenuations
    ``S0, S1 = sum(a_low), sum(a_high)`` of the denoised scan and ``S2, S3`` the same of
    the clean scan.

    pooled: over all pixels used (NaN if none). median / worst: median and largest
    magnitude (signed) of the per-region biases over the connected regions of at least
    ``min_pixels`` pixels (NaN if there are none). regions / sizes: those per-region
    biases and pixel counts. n_pixels: pixels used; excluded: mask pixels left out
    because the tested value was undefined there (per-pixel ratio only). sums: the four
    pooled sums, so that :meth:`merge` can pool several scans.
    """

    pooled: float
    median: float
    worst: float
    n_regions: int
    n_pixels: int
    excluded: int = 0
    regions: tuple[float, ...] = field(default=(), repr=False)
    sizes: tuple[int, ...] = field(default=(), repr=False)
    sums: tuple[float, float, float, float] = field(default=(0.0, 0.0, 0.0, 0.0), repr=False)

    @classmethod
    def from_regions(cls, regions, sizes, sums, n_pixels, excluded=0) -> RegionBias:
        """Summarise per-region biases and the pooled ``sums`` (see the class docstring)."""
        regions = tuple(float(r) for r in regions)
        values = np.asarray(regions, dtype=np.float64)
        sums = tuple(float(v) for v in sums)
        return cls(
            pooled=_relative(*sums) if n_pixels else float("nan"),
            median=float(np.median(values)) if values.size else float("nan"),
            worst=float(values[np.argmax(np.abs(values))]) if values.size else float("nan"),
            n_regions=len(regions),
            n_pixels=int(n_pixels),
            excluded=int(excluded),
            regions=regions,
            sizes=tuple(int(v) for v in sizes),
            sums=sums,
        )

    @classmethod
    def merge(cls, items: Sequence[RegionBias]) -> RegionBias:
        """Pool the regions and sums of several scans into one summary."""
        items = list(items)
        return cls.from_regions(
            [r for it in items for r in it.regions],
            [v for it in items for v in it.sizes],
            np.sum([it.sums for it in items], axis=0) if items else (0.0,) * 4,
            sum(it.n_pixels for it in items),
            sum(it.excluded for it in items),
        )

    def to_dict(self) -> dict:
        """The summary (no per-region lists), ready for ``json.dumps``."""
        return {
            "pooled": self.pooled,
            "median": self.median,
            "worst": self.worst,
            "n_regions": self.n_regions,
            "n_pixels": self.n_pixels,
            "excluded": self.excluded,
        }


def _relative(s0, s1, s2, s3):
    """``(s0 / s1) / (s2 / s3) - 1`` (arrays or floats); NaN where undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (np.asarray(s0, np.float64) * s3) / (np.asarray(s1, np.float64) * s2) - 1.0
    value = np.where(np.isfinite(value), value, np.nan)
    return float(value) if value.ndim == 0 else value


def _region_sums(planes, mask, min_pixels: int, excluded: int = 0) -> RegionBias:
    """RegionBias of four per-pixel planes summed per 4-connected region of ``mask``."""
    if min_pixels < 1:
        raise ValueError(f"min_pixels must be >= 1, got {min_pixels!r}.")
    labels, n = ndimage.label(mask)
    idx = labels.ravel()
    used = idx > 0
    lab = idx[used]
    sizes = np.bincount(lab, minlength=n + 1)[1:]
    per_region, pooled = [], []
    for plane in planes:
        values = np.asarray(plane, dtype=np.float64).ravel()[used]
        per_region.append(np.bincount(lab, weights=values, minlength=n + 1)[1:])
        pooled.append(values.sum())
    biases = _relative(*per_region)
    keep = (sizes >= min_pixels) & np.isfinite(biases)
    return RegionBias.from_regions(biases[keep], sizes[keep], pooled, int(used.sum()), excluded)


def _level(test, reference, mask, min_pixels) -> RegionBias:
    ones = np.ones_like(reference)
    return _region_sums((test, reference, ones, ones), mask, min_pixels)


def level_bias(denoised, clean, mask, *, min_pixels: int = 200):
    """Relative level bias of a denoised channel over the flat pixels of its clean scan.

    ``mean(denoised - clean) / mean(clean)`` (a fraction: 0.001 = 0.1 % of the level)
    over each 4-connected region of ``mask`` with at least ``min_pixels`` pixels (median
    and worst region) and over all mask pixels (pooled); see :class:`RegionBias`.

    denoised, clean: 2-D ``(Y, X)`` images, or ``(C, Y, X)`` stacks (then ``mask`` is one
    ``(Y, X)`` mask for every channel or a ``(C, Y, X)`` stack of masks). Returns one
    :class:`RegionBias`, or a tuple of them, one per channel, for a stack.

    Against the clean scan the bias includes the noise realisation's own region means
    (a statistical floor, see the module docstring); pass the noisy input as ``clean``
    (with the clean scan's mask, away from clipped levels) to measure only the shift the
    denoiser itself adds.
    """
    test = np.asarray(denoised, dtype=np.float64)
    ref = np.asarray(clean, dtype=np.float64)
    _same_shape(test, ref, ("denoised", "clean"))
    if test.ndim == 2:
        return _level(test, ref, _mask(mask, ref.shape, "mask"), min_pixels)
    if test.ndim != 3 or test.size == 0:
        raise ValueError(f"expected 2-D images or (C, Y, X) stacks, got shape {test.shape}.")
    masks = np.asarray(mask)
    if masks.ndim == 2:
        masks = np.broadcast_to(_mask(masks, ref.shape[1:], "mask"), ref.shape)
    masks = _mask(masks, ref.shape, "mask")
    return tuple(_level(t, r, m, min_pixels) for t, r, m in zip(test, ref, masks, strict=True))


RATIO_STATISTICS = ("region", "pixel")


def ratio_bias(
    denoised_pair,
    clean_pair,
    mask,
    *,
    white_level=None,
    dark_level=0.0,
    min_attenuation: float = DEFAULT_MIN_ATTENUATION,
    min_pixels: int = 200,
    statistic: str = "region",
) -> RegionBias:
    """Relative bias of the dual-energy ratio ``R = ln(T_low) / ln(T_high)``
    (:func:`~.colour.material_ratio`) over the flat pixels of the clean scan.

    Both scans are converted with the same ``white_level`` / ``dark_level`` (pass the
    known air level: None estimates it on each scan apart). Pixels used: those of the 2-D
    ``mask`` where the clean ``R`` is defined (high-energy log-attenuation at least
    ``min_attenuation``). Per 4-connected region of at least ``min_pixels`` pixels
    (median, worst) and over all those pixels (pooled), as :func:`level_bias`:

    * ``statistic="region"`` (default): ``R`` of the mean per-pixel attenuations,
      ``mean(a_low) / mean(a_high)``, of the denoised scan relative to the clean one: the
      systematic shift a denoiser gives the region's ratio (the colour a screener sees
      for it). Per-pixel noise adds only the small bias of the logarithm.
    * ``statistic="pixel"``: ``mean(R_denoised) / mean(R_clean) - 1`` over the pixels,
      per-pixel ``R`` as ``material_ratio`` gives it. Residual noise makes this
      heavy-tailed where the attenuation is small (``R`` divides by a noisy ``a_high``),
      so it mixes noise with bias. Pixels where the denoised ``R`` is undefined
      (``a_high`` = 0: the pixel reads air level or brighter) are left out and counted in
      ``excluded``.
    """
    if statistic not in RATIO_STATISTICS:
        raise ValueError(f"statistic must be one of {RATIO_STATISTICS}, got {statistic!r}.")
    test = _pair(denoised_pair, "denoised_pair")
    ref = _pair(clean_pair, "clean_pair")
    _same_shape(test, ref, ("denoised_pair", "clean_pair"))
    mask = _mask(mask, ref.shape[1:], "mask")
    r_clean = material_ratio(
        ref, white_level=white_level, dark_level=dark_level, min_attenuation=min_attenuation
    )
    defined = mask & np.isfinite(r_clean)
    if statistic == "region":
        low_t, high_t, _ = _attenuations(test, None, white_level, dark_level, 0.0)
        low_c, high_c, _ = _attenuations(ref, None, white_level, dark_level, 0.0)
        return _region_sums((low_t, high_t, low_c, high_c), defined, min_pixels)
    r_test = material_ratio(
        test, white_level=white_level, dark_level=dark_level, min_attenuation=0.0
    ).astype(np.float64)
    used = defined & np.isfinite(r_test)
    excluded = int(defined.sum() - used.sum())
    ones = np.ones(used.shape)
    return _region_sums(
        (np.where(used, r_test, 0.0), np.where(used, r_clean, 0.0), ones, ones),
        used,
        min_pixels,
        excluded,
    )


# --------------------------------------------------------------------------- classes
def class_agreement(denoised_pair, clean_pair, *, white_level=None, **classify_kwargs) -> dict:
    """Share of pixels whose material class (:func:`~.colour.classify_materials`) in the
    denoised scan equals the clean scan's class.

    Returns ``{"all": ..., "non_background": ..., "per_class": {name: ...}}``: over all
    pixels, over the pixels whose clean class is not background (what a screener looks
    at), and per clean class (recall: the share of that class's clean pixels that keep
    it; None for a class with no pixels). ``white_level`` and ``classify_kwargs``
    (boundaries, ``dark_level``, ...) go to ``classify_materials`` for both scans.
    """
    test = _pair(denoised_pair, "denoised_pair")
    ref = _pair(clean_pair, "clean_pair")
    _same_shape(test, ref, ("denoised_pair", "clean_pair"))
    c_test = classify_materials(test, white_level=white_level, **classify_kwargs)
    c_ref = classify_materials(ref, white_level=white_level, **classify_kwargs)
    same = c_test == c_ref
    fg = c_ref != MATERIAL_BACKGROUND
    per_class = {}
    for cid, name in MATERIAL_NAMES.items():
        sel = c_ref == cid
        per_class[name] = float(same[sel].mean()) if sel.any() else None
    return {
        "all": float(same.mean()),
        "non_background": float(same[fg].mean()) if fg.any() else float("nan"),
        "per_class": per_class,
    }


# --------------------------------------------------------------------------- lines
def line_error_share(denoised, clean) -> tuple[float, float]:
    """``(column_share, row_share)`` of one channel's error ``denoised - clean``.

    column_share: the share of the mean squared error held by the error's column means
    (means over rows, their overall mean taken out), i.e. by column-constant streaks;
    row_share: the same for row means (row-constant bands). Both lie in [0, 1]; a scan
    with no error gives (0.0, 0.0).
    """
    test = _image(denoised, "denoised")
    ref = _image(clean, "clean")
    _same_shape(test, ref, ("denoised", "clean"))
    err = test - ref
    mse = float(np.mean(err**2))
    if mse == 0.0:
        return 0.0, 0.0
    col = err.mean(axis=0)
    col -= col.mean()
    row = err.mean(axis=1)
    row -= row.mean()
    return float(np.mean(col**2) / mse), float(np.mean(row**2) / mse)


# --------------------------------------------------------------------------- wires
def wire_contrast(denoised, clean, wire_mask, background_mask) -> float:
    """Kept contrast of a thin object (wire) against its surroundings, one channel.

    ``(mean(bg) - mean(wire))`` of the denoised image divided by the same of the clean
    image, with ``wire`` = ``wire_mask`` pixels and ``bg`` = ``background_mask`` pixels
    (e.g. a ring a few pixels around the wire). 1.0: contrast kept; below 1: the wire was
    smoothed into its surroundings; above 1: sharpened.
    """
    test = _image(denoised, "denoised")
    ref = _image(clean, "clean")
    _same_shape(test, ref, ("denoised", "clean"))
    wire = _mask(wire_mask, ref.shape, "wire_mask")
    bg = _mask(background_mask, ref.shape, "background_mask")
    if not wire.any() or not bg.any():
        raise ValueError("wire_mask and background_mask must each select at least one pixel.")
    if (wire & bg).any():
        raise ValueError("wire_mask and background_mask overlap; pass disjoint masks.")
    clean_contrast = ref[bg].mean() - ref[wire].mean()
    if not abs(clean_contrast) > 1e-9 * max(abs(ref[bg].mean()), 1.0):
        raise ValueError(
            "the wire has no contrast in the clean image (mean(bg) == mean(wire)); "
            "the kept fraction is undefined."
        )
    return float((test[bg].mean() - test[wire].mean()) / clean_contrast)
