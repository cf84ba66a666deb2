"""Multiscale pseudo-clean targets from noisy scans (AMSSD target creation), vectorised.

Each noisy scan is blurred at several scales: area downsampling by an integer factor
``f`` (mean over ``f x f`` blocks) followed by bicubic upsampling by ``f`` back to the
exact original size, with the kernel parameter ``a`` of the source thesis (AMSSD):

    u(s) = (a+2)|s|^3 - (a+3)|s|^2 + 1          for |s| <= 1
           a|s|^3 - 5a|s|^2 + 8a|s| - 4a         for 1 < |s| <= 2
           0                                     otherwise

This is the Keys cubic-convolution family; the usual sharpening choice is a = -0.5, the
source uses positive a (1.2, 1.5, 1.8), which gives positive outer lobes, i.e. blur. For any
a the four tap weights sum to exactly 1 (partition of unity), so no normalisation is
applied and a constant image stays constant. The inner weights can be negative for some
sub-pixel phases, so results may overshoot the input range slightly near edges: float
outputs are returned as computed, 16-bit outputs are rounded and clipped to [0, 65535].

Conventions
-----------
* Images are arrays whose last two axes are (y, x): ``(Y, X)``, a dual-energy stack
  ``(2, Y, X)`` (channel 0 = low energy) or a batch ``(N, C, Y, X)``. Every leading slice
  is processed independently (channels never mix).
* Values are detector counts (uint16 0..65535, or float counts); nothing is rescaled.
* Borders are edge-replicated: for area downsampling a side that is not a multiple of
  ``f`` is padded with copies of its last row/column up to the next multiple; for
  upsampling tap indices outside the image are clamped to the nearest edge pixel. Hence
  every input size (odd sizes, 1 x 1) gives an output of exactly the input size.
* Pixel alignment: ``alignment="centre"`` (default) maps output pixel centres to input
  coordinates with ``x_in = (x_out + 0.5) / f - 0.5``, so the blurred target is not shifted
  against the noisy scan. ``alignment="corner"`` reproduces the source's per-pixel loop,
  ``x_in = x_out / f``, which shifts the content of the blurred version by ``(f - 1) / 2``
  pixels towards the origin (top-left) against the scan: 0.5 px for f = 2, 1 px for f = 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = [
    "DEFAULT_SCALES",
    "aggregated_set",
    "area_downsample",
    "bicubic_kernel",
    "bicubic_upsample",
    "blurred_version",
    "make_targets",
]

#: (downsampling factor, bicubic kernel parameter a) of the three blurred versions of
#: the source: 1/2 with a = 1.2, 1/3 with a = 1.5, 1/2 with a = 1.8.
DEFAULT_SCALES: tuple[tuple[int, float], ...] = ((2, 1.2), (3, 1.5), (2, 1.8))

Alignment = Literal["centre", "corner"]
_UINT16_MAX = 65535


def bicubic_kernel(s: np.ndarray | float, a: float) -> np.ndarray:
    """Evaluate the source's bicubic kernel ``u(s)`` (see module docstring) elementwise.

    ``s`` is a distance in input pixels (any shape, any sign); returns float64 weights
    of the same shape, 0 for ``|s| > 2``.
    """
    s_abs = np.abs(np.asarray(s, dtype=np.float64))
    inner = (a + 2.0) * s_abs**3 - (a + 3.0) * s_abs**2 + 1.0
    outer = a * s_abs**3 - 5.0 * a * s_abs**2 + 8.0 * a * s_abs - 4.0 * a
    return np.where(s_abs <= 1.0, inner, np.where(s_abs <= 2.0, outer, 0.0))


def area_downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor x factor`` blocks of the last two axes (area downsampling).

    ``image``: counts, any real dtype, shape ``(..., Y, X)``. Sides that are not a multiple
    of ``factor`` are first padded by edge replication to the next multiple, so no pixel is
    dropped. Returns float64 of shape ``(..., ceil(Y / factor), ceil(X / factor))``, in the
    units of the input.
    """
    image = _as_float_image(image)
    factor = _check_factor(factor)
    ny, nx = image.shape[-2:]
    pad_y, pad_x = (-ny) % factor, (-nx) % factor
    if pad_y or pad_x:
        pad = [(0, 0)] * (image.ndim - 2) + [(0, pad_y), (0, pad_x)]
        image = np.pad(image, pad, mode="edge")
    my, mx = image.shape[-2] // factor, image.shape[-1] // factor
    blocks = image.reshape(*image.shape[:-2], my, factor, mx, factor)
    return blocks.mean(axis=(-3, -1))


def bicubic_upsample(
    image: np.ndarray,
    factor: int,
    a: float,
    out_shape: tuple[int, int] | None = None,
    alignment: Alignment = "centre",
) -> np.ndarray:
    """Upsample the last two axes by ``factor`` with the source's bicubic kernel.

    Separable: 4 taps per axis, tap indices clamped to the image (edge replication), tap
    weights ``bicubic_kernel(distance, a)`` without normalisation (they sum to 1).
    ``out_shape`` ``(Y_out, X_out)`` defaults to ``factor`` times the input size; output
    pixel ``i`` samples input coordinate ``(i + 0.5) / factor - 0.5`` (``alignment="centre"``)
    or ``i / factor`` (``"corner"``, the source's loop). Returns float64 ``(..., Y_out, X_out)``.
    """
    image = _as_float_image(image)
    factor = _check_factor(factor)
    a = _check_a(a)
    ny, nx = image.shape[-2:]
    if out_shape is None:
        out_shape = (ny * factor, nx * factor)
    out_y, out_x = (int(n) for n in out_shape)
    if out_y < 1 or out_x < 1:
        raise ValueError(f"out_shape must be two positive sizes, got {out_shape}.")
    idx_x, w_x = _taps(nx, out_x, factor, a, alignment)
    idx_y, w_y = _taps(ny, out_y, factor, a, alignment)
    along_x = sum(w_x[:, k] * image[..., idx_x[:, k]] for k in range(4))
    return sum(w_y[:, k, None] * along_x[..., idx_y[:, k], :] for k in range(4))


def blurred_version(
    image: np.ndarray, factor: int, a: float, alignment: Alignment = "centre"
) -> np.ndarray:
    """One blurred version: area downsampling by ``factor``, bicubic upsampling back.

    Returns float64 counts with exactly the shape of ``image`` (``(..., Y, X)``).
    """
    small = area_downsample(image, factor)
    return bicubic_upsample(small, factor, a, out_shape=np.shape(image)[-2:], alignment=alignment)


def make_targets(
    counts: np.ndarray,
    scales: Sequence[tuple[int, float]] = DEFAULT_SCALES,
    dtype: type | np.dtype = np.float32,
    alignment: Alignment = "centre",
) -> np.ndarray:
    """Blurred versions of a noisy scan, one per ``(factor, a)`` in ``scales``.

    ``counts``: noisy scan in detector counts, uint16 (or float/int counts), shape
    ``(Y, X)``, ``(C, Y, X)`` (dual energy: ``(2, Y, X)``) or ``(N, C, Y, X)``; channels are
    processed independently. ``dtype``: float32 or float64 (counts, not clipped; may
    overshoot the input range slightly) or uint16 (rounded, clipped to 0..65535).
    Returns shape ``(len(scales), *counts.shape)``, version ``k`` made with ``scales[k]``.
    """
    out_dtype = _check_dtype(dtype)
    scales = _check_scales(scales)
    image = _as_float_image(counts)
    out = np.empty((len(scales), *image.shape), dtype=out_dtype)
    for k, (factor, a) in enumerate(scales):
        out[k] = _cast(blurred_version(image, factor, a, alignment), out_dtype)
    return out


def aggregated_set(
    noisy_counts: np.ndarray,
    scales: Sequence[tuple[int, float]] = DEFAULT_SCALES,
    dtype: type | np.dtype = np.float32,
    alignment: Alignment = "centre",
) -> tuple[np.ndarray, np.ndarray]:
    """The source's aggregated training set for one noisy scan: input and target groups.

    Interpretation of the source ("these blurred versions and the original noisy images
    are combined together to create a single set", four groups): group 0 pairs the noisy
    scan with itself, group ``k >= 1`` pairs it with the blurred version made with
    ``scales[k - 1]``. Returns ``(inputs, targets)``, both of shape
    ``(1 + len(scales), *noisy_counts.shape)`` and ``dtype`` (see :func:`make_targets`);
    ``inputs`` is a read-only broadcast view of the noisy scan (no copies; use
    ``np.array(inputs)`` for a writable array).
    """
    out_dtype = _check_dtype(dtype)
    noisy = _cast(_as_float_image(noisy_counts), out_dtype)
    blurred = make_targets(noisy_counts, scales, out_dtype, alignment)
    targets = np.concatenate([noisy[None], blurred], axis=0)
    inputs = np.broadcast_to(noisy, targets.shape)
    return inputs, targets


# --------------------------------------------------------------------------- helpers


def _taps(
    n_in: int, n_out: int, factor: int, a: float, alignment: Alignment
) -> tuple[np.ndarray, np.ndarray]:
    """Clamped tap indices (n_out, 4) int and kernel weights (n_out, 4) float64 for one axis."""
    out_pos = np.arange(n_out, dtype=np.float64)
    if alignment == "centre":
        x_in = (out_pos + 0.5) / factor - 0.5
    elif alignment == "corner":
        x_in = out_pos / factor
    else:
        raise ValueError(f"alignment must be 'centre' or 'corner', got {alignment!r}.")
    base = np.floor(x_in)
    offsets = np.arange(-1, 3, dtype=np.float64)  # taps at base-1, base, base+1, base+2
    tap_pos = base[:, None] + offsets[None, :]
    weights = bicubic_kernel(x_in[:, None] - tap_pos, a)
    indices = np.clip(tap_pos, 0, n_in - 1).astype(np.intp)
    return indices, weights


def _as_float_image(image: np.ndarray) -> np.ndarray:
    """Validate an image (real dtype, >= 2-D, non-empty, finite) and return it as float64."""
    arr = np.asarray(image)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(
            f"Image dtype {arr.dtype} is not supported; pass uint16 counts or a float array."
        )
    if arr.ndim < 2 or arr.shape[-1] == 0 or arr.shape[-2] == 0 or arr.size == 0:
        raise ValueError(
            f"Image of shape {arr.shape} is not an image; pass a non-empty (Y, X) or "
            "(C, Y, X) array."
        )
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            "Image contains NaN or infinite values; replace them before making targets."
        )
    return arr


def _check_factor(factor: int) -> int:
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"Scale factor must be a positive integer, got {factor!r}.")
    return int(factor)


def _check_a(a: float) -> float:
    try:
        a_float = float(a)
    except (TypeError, ValueError):
        a_float = float("nan")
    if not np.isfinite(a_float):
        raise ValueError(f"Kernel parameter a must be a finite number, got {a!r}.")
    return a_float


def _check_scales(scales: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    try:
        pairs = [tuple(pair) for pair in scales]
    except TypeError:
        pairs = [()]
    if not pairs or any(len(pair) != 2 for pair in pairs):
        raise ValueError(
            f"scales must be a non-empty sequence of (factor, a) pairs, got {scales!r}."
        )
    return [(_check_factor(f), _check_a(a)) for f, a in pairs]


def _check_dtype(dtype: type | np.dtype) -> np.dtype:
    out = np.dtype(dtype)
    if out not in (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.uint16)):
        raise ValueError(f"Output dtype must be float32, float64 or uint16, got {out}.")
    return out


def _cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float counts to ``dtype``; uint16 is rounded to nearest and clipped to 0..65535."""
    if dtype == np.uint16:
        return np.clip(np.rint(values), 0, _UINT16_MAX).astype(np.uint16)
    return values.astype(dtype, copy=False)
