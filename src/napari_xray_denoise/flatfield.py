"""Detector column flat-field: per-column gain (streaks) and offset, numpy only.

A line-scan baggage scanner records each image column with one detector element; the
elements differ in gain by about 1%, which shows as streaks along the belt (axis 0).
The streaks are part of what the scanner recorded, so denoisers must neither learn nor
smear them: divide each column by its relative gain before denoising and multiply it
back after (:class:`FlatField`).

Where the gains come from:

- :func:`estimate_column_gain` (default): from the scan itself, using its air pixels
  (transmission near 1: within a few percent of the air level, not clipped). Columns
  with too few air pixels get gain 1.
- :meth:`FlatField.from_frames`: from a dark frame (detector offset, no X-rays) and a
  flat frame (air, no object) when the user has them; each may be 2-D (rows averaged) or
  one value per column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FlatField", "estimate_column_gain"]


def _as_columns(frame, width: int, name: str) -> np.ndarray:
    arr = np.asarray(frame, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr.mean(axis=0)
    if arr.ndim != 1 or arr.size != width:
        raise ValueError(
            f"the {name} frame must have {width} columns like the scan (a 2-D frame or one "
            f"value per column), got shape {np.shape(frame)}."
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"the {name} frame holds NaN or infinite values.")
    return arr


def estimate_column_gain(
    counts_2d,
    *,
    air_fraction: float = 0.97,
    window: int | tuple[int, int] = (25, 3),
    min_air_pixels: int = 16,
) -> np.ndarray:
    """Relative gain of each column (float64, shape (X,), median 1) from the scan's air.

    counts_2d: (Y, X) counts. Air is where the ``window`` (rows, columns) local mean is above
    ``air_fraction`` of the air level (the 99th percentile of the local means), so noise
    does not decide which pixels count as air. Each column's gain is the mean of its air
    pixels (clipped ones included: a median only needs their rank) over the median of all
    air pixels; columns with fewer than ``min_air_pixels`` air pixels, or a scan without
    air, get gain 1.
    """
    from scipy import ndimage

    y = np.asarray(counts_2d, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"column gains need a (Y, X) image, got shape {y.shape}.")
    local = ndimage.uniform_filter(y, window, mode="nearest")
    air_level = float(np.percentile(local, 99))
    if not air_level > 0:
        return np.ones(y.shape[1])
    air = local > air_fraction * air_level
    n_air = np.count_nonzero(air, axis=0)
    ok = n_air >= min_air_pixels
    if not ok.any():
        return np.ones(y.shape[1])
    col = np.full(y.shape[1], np.nan)
    se = np.full(y.shape[1], np.nan)
    for x in np.flatnonzero(ok):  # one median per column (a loop over columns, not pixels)
        values = y[air[:, x], x]
        col[x] = values.mean()
        se[x] = values.std() / np.sqrt(values.size)
    ref = float(np.median(col[ok]))
    raw = col[ok] / ref
    err_var = np.square(se[ok] / ref)
    # Empirical-Bayes shrinkage towards 1: keep the part of each column's deviation that
    # stands above its own sampling noise (low-dose scans have few quanta per air pixel).
    true_var = max(float(np.var(raw)) - float(np.mean(err_var)), 0.0)
    gain = np.ones(y.shape[1])
    if true_var > 0:
        gain[ok] = 1.0 + (raw - 1.0) * true_var / (true_var + err_var)
    return gain


@dataclass(frozen=True)
class FlatField:
    """Per-column ``gain`` (relative, ~1) and ``offset`` (counts), shape (X,) each.

    ``apply(counts)`` -> ``(counts - offset) / gain`` (float64); ``undo`` is its inverse.
    ``source`` says where the gains came from (JSON-able, for the processing history).
    """

    gain: np.ndarray
    offset: np.ndarray
    source: str = "estimated from air"

    def __post_init__(self):
        gain = np.asarray(self.gain, dtype=np.float64)
        offset = np.asarray(self.offset, dtype=np.float64)
        if gain.ndim != 1 or gain.shape != offset.shape:
            raise ValueError("flat-field gain and offset must be 1-D arrays of the same length.")
        if not np.all(np.isfinite(gain)) or np.any(gain <= 0):
            raise ValueError("flat-field gains must be finite and positive; check the flat frame.")
        object.__setattr__(self, "gain", gain)
        object.__setattr__(self, "offset", offset)

    @classmethod
    def identity(cls, width: int) -> FlatField:
        return cls(np.ones(width), np.zeros(width), "none")

    @classmethod
    def estimate(cls, counts_2d, **kwargs) -> FlatField:
        """Gains from the scan's own air (:func:`estimate_column_gain`), offset 0."""
        gain = estimate_column_gain(counts_2d, **kwargs)
        return cls(gain, np.zeros_like(gain), "estimated from the scan's air")

    @classmethod
    def from_frames(cls, width: int, *, dark=None, flat=None) -> FlatField:
        """From a dark frame (offset) and/or a flat (air) frame; see the module docstring."""
        offset = np.zeros(width) if dark is None else _as_columns(dark, width, "dark")
        if flat is None:
            return cls(np.ones(width), offset, "dark frame" if dark is not None else "none")
        signal = _as_columns(flat, width, "flat") - offset
        if np.any(signal <= 0):
            raise ValueError(
                "the flat frame must be brighter than the dark frame in every column; "
                "was it recorded with the X-rays on and nothing in the beam?"
            )
        source = "dark and flat frames" if dark is not None else "flat frame"
        return cls(signal / float(np.median(signal)), offset, source)

    def apply(self, counts_2d) -> np.ndarray:
        y = np.asarray(counts_2d, dtype=np.float64)
        if y.shape[-1] != self.gain.size:
            raise ValueError(
                f"the flat-field has {self.gain.size} columns, the scan {y.shape[-1]}."
            )
        return (y - self.offset) / self.gain

    def undo(self, flat_counts) -> np.ndarray:
        return np.asarray(flat_counts, dtype=np.float64) * self.gain + self.offset

    def describe(self) -> dict:
        return {
            "source": self.source,
            "gain_std": float(np.std(self.gain)),
            "gain_range": [float(self.gain.min()), float(self.gain.max())],
        }
