"""Scan handling for training and inference (numpy only, no TensorFlow).

Scans are ``(C, Y, X)`` (or ``(Y, X)``) arrays of detector counts, normally ``uint16``;
channel 0 = low energy, channel 1 = high energy. The network sees ``x01 = counts / scale``
(float32). Saturated pixels (clipped at the top of the range) carry no noise information:
they are left out of the loss and passed through unchanged by the denoiser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: a pixel is saturated when counts >= SATURATION_FRACTION * the channel's clip level
SATURATION_FRACTION = 0.999


def as_chw(scan: np.ndarray, *, name: str = "scan") -> np.ndarray:
    """Return ``scan`` viewed as ``(C, Y, X)`` (2-D input gets C = 1), dtype unchanged.

    Raises ``ValueError`` for other ranks, empty, non-numeric or non-finite data.
    """
    arr = np.asarray(scan)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3 or arr.size == 0:
        raise ValueError(
            f"The {name} must be a (Y, X) or (C, Y, X) array of counts, got shape {np.shape(scan)}."
        )
    if arr.dtype.kind not in "uif":
        raise ValueError(f"The {name} must hold numbers (counts), got dtype {arr.dtype}.")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"The {name} contains NaN or infinite values; replace them first.")
    return arr


def as_chw_counts(scan: np.ndarray, *, name: str = "scan") -> np.ndarray:
    """Return ``scan`` as a float32 ``(C, Y, X)`` array of counts (see :func:`as_chw`)."""
    return as_chw(scan, name=name).astype(np.float32, copy=False)


def check_training_scans(scans, crop: int, *, convert=as_chw) -> list[np.ndarray]:
    """The training scans as a list of ``(C, Y, X)`` arrays (``convert`` of each one).

    Raises ``ValueError`` (one sentence) for no scans, unequal channel counts, more than 2
    channels, or a scan smaller than ``crop`` x ``crop``.
    """
    if isinstance(scans, np.ndarray):
        scans = [scans]
    if len(scans) == 0:
        raise ValueError("Training needs at least one scan.")
    counts = [convert(s, name=f"scan {i}") for i, s in enumerate(scans)]
    n_ch = counts[0].shape[0]
    if any(c.shape[0] != n_ch for c in counts):
        raise ValueError("All training scans must have the same number of channels.")
    if n_ch > 2:
        raise ValueError(f"Scans must have 1 or 2 channels (low, high energy), got {n_ch}.")
    if any(min(c.shape[1:]) < crop for c in counts):
        raise ValueError(f"Every scan must be at least {crop}x{crop} pixels; lower crop_size.")
    return counts


def choose_scale(scans: Sequence[np.ndarray]) -> float:
    """The normalisation ``scale`` for counts: the full range of the bit depth in use.

    ``2**bits - 1`` for the smallest ``bits`` in 8..16 whose range holds the 99.99th
    percentile of every scan (a 12-bit scanner gives 4095, a clipped 16-bit one 65535),
    so a few hot pixels do not change it. Float data above 65535 gives its own maximum.
    """
    top = max(float(np.percentile(s, 99.99)) for s in scans)
    for bits in range(8, 17):
        if top <= 2**bits - 1:
            return float(2**bits - 1)
    return float(max(float(np.max(s)) for s in scans))


def saturation_levels(
    counts_chw: np.ndarray, saturation: str | float | None = "auto"
) -> np.ndarray:
    """Clip level (counts) per channel; ``inf`` where nothing counts as saturated.

    ``"auto"``: a channel is clipped when at least ``max(16, 1e-4 * n_pixels)`` pixels sit
    exactly at its maximum (a histogram spike that clipping makes, noise does not); its
    level is then that maximum. A number: that clip level for every channel (e.g. 65535).
    ``None``: no saturation handling.
    """
    n_ch = counts_chw.shape[0]
    if saturation is None:
        return np.full(n_ch, np.inf)
    if not isinstance(saturation, str):
        return np.full(n_ch, float(saturation))
    if saturation != "auto":
        raise ValueError(
            f"saturation must be 'auto', a clip level in counts or None, got {saturation!r}."
        )
    levels = np.full(n_ch, np.inf)
    for c in range(n_ch):  # per channel, vectorised inside
        top = counts_chw[c].max()
        n_top = np.count_nonzero(counts_chw[c] == top)
        if n_top >= max(16, 1e-4 * counts_chw[c].size):
            levels[c] = float(top)
    return levels


def saturated_mask(counts_chw: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Bool ``(C, Y, X)``: True where counts >= SATURATION_FRACTION * level of the channel."""
    thresholds = SATURATION_FRACTION * np.asarray(levels, dtype=np.float64)
    return counts_chw >= thresholds.astype(np.float32)[:, None, None]


def dihedral(arr: np.ndarray, k: int, axes: tuple[int, int]) -> np.ndarray:
    """One of the 8 rotations/flips of ``arr`` in the plane ``axes`` (k in 0..7)."""
    out = np.rot90(arr, k % 4, axes=axes)
    return np.flip(out, axis=axes[1]) if k >= 4 else out


@dataclass
class Region:
    """A rectangle ``[y0, y1) x [x0, x1)`` of scan ``index``."""

    index: int
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def area(self) -> int:
        return max(0, self.y1 - self.y0) * max(0, self.x1 - self.x0)


def usable_regions(regions: Sequence[Region], crop: int) -> tuple[list[Region], np.ndarray]:
    """Regions that hold a ``crop`` x ``crop`` window, and their sampling probabilities
    (proportional to the number of window positions). Raises ``ValueError`` if none."""
    kept = [r for r in regions if r.y1 - r.y0 >= crop and r.x1 - r.x0 >= crop]
    if not kept:
        raise ValueError(
            f"No scan region is at least {crop}x{crop} pixels; use a smaller crop size."
        )
    weights = np.array([(r.y1 - r.y0 - crop + 1) * (r.x1 - r.x0 - crop + 1) for r in kept], float)
    return kept, weights / weights.sum()


def pick_window(
    rng: np.random.Generator, region: Region, crop: int, augment: bool
) -> tuple[int, int, int]:
    """Top-left corner of a random window in ``region`` and a dihedral index (0 if not ``augment``)."""
    y0 = int(rng.integers(region.y0, region.y1 - crop + 1))
    x0 = int(rng.integers(region.x0, region.x1 - crop + 1))
    k = int(rng.integers(8)) if augment else 0
    return y0, x0, k


class CropSampler:
    """Random square crops from regions of in-memory scans, as channels-last batches.

    ``images`` are float32 ``(C, Y, X)`` x01 arrays, ``valid`` the matching bool masks
    (False = saturated). A batch is ``(x, valid)``, both float32 ``(B, s, s, C)``.
    Crops are drawn with probability proportional to the usable area of each region and
    get a random one of the 8 rotations/flips when ``augment`` is True.
    """

    def __init__(
        self, images, valid, regions: Sequence[Region], crop: int, *, augment: bool = True
    ):
        self.images, self.valid, self.crop, self.augment = images, valid, int(crop), augment
        self.regions, self.weights = usable_regions(regions, crop)

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        x, v, _ = self.sample_with_index(rng, batch)
        return x, v

    def sample_with_index(
        self, rng: np.random.Generator, batch: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x, valid, index)``: a batch and, per crop, the index of the image it came from."""
        s = self.crop
        picks = rng.choice(len(self.regions), size=batch, p=self.weights)
        xs, vs = [], []
        index = np.array([self.regions[i].index for i in picks], dtype=np.int64)
        for i in picks:  # one slice per crop in the batch, not per pixel
            r = self.regions[i]
            y0, x0, k = pick_window(rng, r, s, self.augment)
            xs.append(dihedral(self.images[r.index][:, y0 : y0 + s, x0 : x0 + s], k, (1, 2)))
            vs.append(dihedral(self.valid[r.index][:, y0 : y0 + s, x0 : x0 + s], k, (1, 2)))
        x = np.ascontiguousarray(np.stack(xs).transpose(0, 2, 3, 1), dtype=np.float32)
        v = np.ascontiguousarray(np.stack(vs).transpose(0, 2, 3, 1), dtype=np.float32)
        return x, v, index


def split_regions(
    shapes: Sequence[tuple[int, int]],
    crop: int,
    rng: np.random.Generator,
    *,
    val_fraction: float = 0.15,
) -> tuple[list[Region], list[Region], str]:
    """Split scans into training and validation regions; returns ``(train, val, how)``.

    - 2 or more scans: ``max(1, round(val_fraction * n))`` whole scans (chosen at random)
      are held out for validation, the rest train.
    - 1 scan: a band of columns at the right edge (``val_fraction`` of the width, at
      least one crop wide) is held out; if the scan is too narrow, a band of rows at the
      bottom; if it is smaller than two crops both ways, validation uses the training
      region (``how`` says so).
    """
    n = len(shapes)
    if n >= 2:
        n_val = min(n - 1, max(1, round(val_fraction * n)))
        val_idx = set(rng.permutation(n)[:n_val].tolist())
        train = [Region(i, 0, h, 0, w) for i, (h, w) in enumerate(shapes) if i not in val_idx]
        val = [Region(i, 0, h, 0, w) for i, (h, w) in enumerate(shapes) if i in val_idx]
        return train, val, f"{n_val} of {n} scans held out"
    h, w = shapes[0]
    band_w = max(crop, int(round(val_fraction * w)))
    if w - band_w >= crop:
        return (
            [Region(0, 0, h, 0, w - band_w)],
            [Region(0, 0, h, w - band_w, w)],
            (f"right {band_w} columns of the single scan held out"),
        )
    band_h = max(crop, int(round(val_fraction * h)))
    if h - band_h >= crop:
        return (
            [Region(0, 0, h - band_h, 0, w)],
            [Region(0, h - band_h, h, 0, w)],
            (f"bottom {band_h} rows of the single scan held out"),
        )
    whole = [Region(0, 0, h, 0, w)]
    return whole, whole, "scan too small to hold out a region: validation on training data"
