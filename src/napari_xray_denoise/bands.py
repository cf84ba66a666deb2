"""Non-image bands at the edges of a scan: detected, reported, kept out of the maths.

Some scanners write a few rows or columns that are not image: a constant (for example
52685 = 0xCDCD in the four rightmost columns of a 12-bit scan) or values outside the bit
range of the rest. Such a band must not count towards the bit depth, the noise fit or
the normalisation, and must come out of any processing unchanged. Plain numpy.

Columns (rows) at an edge form a band when they are constant at one value that occurs
nowhere else in the image (saturated or empty air occurs elsewhere too) and jumps away
from the image line next to them (by over 5 % of the image's range), or when all
their values lie above the bit range (``2**bits - 1``) of the rest of the image; bands
are searched from each edge inwards, at most ``max(1, min(MAX_BAND, side // 10))`` pixels
deep. Channels of a scan share their bands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

#: the deepest band searched for, in pixels (also at most a tenth of the side)
MAX_BAND = 64
#: scans smaller than this on a side are not searched
MIN_SIDE = 16
#: a constant band differs from the image line next to it by more than this fraction of
#: the image's range (a noise-free image's air is constant too, but continues smoothly)
JUMP_FRACTION = 0.05
_SIDES = ("top", "bottom", "left", "right")


@dataclass(frozen=True)
class EdgeBands:
    """Rows (``top``, ``bottom``) and columns (``left``, ``right``) that are not image."""

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0

    def __bool__(self) -> bool:
        return any(getattr(self, side) for side in _SIDES)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: Mapping[str, int] | None) -> EdgeBands:
        return cls(**{side: int(value.get(side, 0)) for side in _SIDES}) if value else cls()

    def union(self, other: EdgeBands) -> EdgeBands:
        return EdgeBands(*(max(getattr(self, s), getattr(other, s)) for s in _SIDES))

    def interior(self, images: np.ndarray) -> np.ndarray:
        """The image part of ``(..., Y, X)`` (a view)."""
        y, x = images.shape[-2:]
        return images[..., self.top : y - self.bottom, self.left : x - self.right]

    def describe(self) -> str:
        """``"right 4 columns"``, ``"top 2 rows, right 4 columns"``, or ``""``."""
        parts = []
        for side, unit in (
            ("top", "row"),
            ("bottom", "row"),
            ("left", "column"),
            ("right", "column"),
        ):
            n = getattr(self, side)
            if n:
                parts.append(f"{side} {n} {unit}{'s' if n > 1 else ''}")
        return ", ".join(parts)


def _bit_range(top_value: float) -> float:
    return float(2 ** int(np.ceil(np.log2(top_value + 1))) - 1) if top_value > 0 else 1.0


def _depth_from_start(lines: np.ndarray, limit: int) -> int:
    """Band depth at the start of axis 0 of ``lines`` (lines x pixels), at most ``limit``.

    A run of constant lines at one value that occurs nowhere else in the image (a
    scanner's filler, not saturated air), or a run of lines above the bit range of the
    rest of the image.
    """
    if limit <= 0:
        return 0
    line_min = lines[:limit].min(axis=1)
    line_max = lines[:limit].max(axis=1)
    depth = 0
    value = line_min[0]
    while depth < limit and line_min[depth] == line_max[depth] == value:
        depth += 1
    if depth:
        rest = lines[depth:]
        jump = abs(float(value) - float(np.median(rest[0])))
        if np.any(rest == value) or jump <= JUMP_FRACTION * max(float(np.ptp(rest)), 1.0):
            depth = 0  # saturated or empty air, or a smooth noise-free edge: image, not a band
    top = _bit_range(float(lines[limit:].max()))
    out_of_range = 0
    while out_of_range < limit and line_min[out_of_range] > top:
        out_of_range += 1
    return max(depth, out_of_range)


def _find_in_image(image: np.ndarray) -> EdgeBands:
    y, x = image.shape
    if min(y, x) < MIN_SIDE:
        return EdgeBands()
    dy, dx = max(1, min(MAX_BAND, y // 10)), max(1, min(MAX_BAND, x // 10))
    found = EdgeBands()
    for _ in range(4):  # a band on one side can hide one on another (its values set the range)
        inside = found.interior(image)
        more = EdgeBands(
            top=found.top + _depth_from_start(inside, dy - found.top),
            bottom=found.bottom + _depth_from_start(inside[::-1], dy - found.bottom),
            left=found.left + _depth_from_start(inside.T, dx - found.left),
            right=found.right + _depth_from_start(inside.T[::-1], dx - found.right),
        )
        if more == found:
            break
        found = more
    return found


def find_edge_bands(images: np.ndarray | Sequence[np.ndarray]) -> EdgeBands:
    """Bands of a ``(Y, X)`` image, a ``(C, Y, X)`` stack or a list of channels (their union)."""
    channels = [images] if isinstance(images, np.ndarray) and images.ndim == 2 else list(images)
    bands = EdgeBands()
    for image in channels:
        bands = bands.union(_find_in_image(np.asarray(image)))
    return bands


def apply_inside(
    fn: Callable[[np.ndarray], np.ndarray], images: np.ndarray, bands: EdgeBands | None = None
) -> np.ndarray:
    """``fn`` on the image part of ``images`` (``(..., Y, X)``); the result gets the full size.

    ``bands`` None: found with :func:`find_edge_bands`. ``fn`` may keep the shape
    (denoising: band pixels then hold the input values, unchanged), add leading axes
    (``(n, ...)`` targets, one per scale: each passes the bands through), return one
    ``(Y, X)`` image of a stack (fusion: band pixels hold channel 0's values), or return
    ``(Y, X, ...)`` (colour, classes: band pixels are 0). The result has ``fn``'s dtype.
    """
    if bands is None:
        bands = find_edge_bands(images if images.ndim > 2 else images[None])
    if not bands:
        return fn(images)
    inner = np.ascontiguousarray(bands.interior(images))
    processed = np.asarray(fn(inner))
    y, x = images.shape[-2:]
    lead = processed.ndim - inner.ndim
    if processed.shape == inner.shape:  # same shape: the bands pass through
        source = images
    elif lead > 0 and processed.shape[lead:] == inner.shape:  # one result per leading index
        source = np.broadcast_to(images, processed.shape[:lead] + images.shape)
    elif processed.shape == inner.shape[-2:]:  # one image of a stack: channel 0's bands
        source = images.reshape((-1, y, x))[0]
    else:  # (y, x, ...): colour or labels, bands 0
        out = np.zeros((y, x, *processed.shape[2:]), processed.dtype)
        out[bands.top : y - bands.bottom, bands.left : x - bands.right] = processed
        return out
    out = source.astype(processed.dtype, copy=True)
    bands.interior(out)[...] = processed
    return out


def frames_inside(frames: Mapping, bands: EdgeBands, shape: Sequence[int]) -> dict:
    """``frames`` (e.g. ``{"dark": ..., "flat": ...}``) cut like the image part of a scan
    of ``shape`` (``(..., Y, X)``): an array entry as wide as the scan loses the band
    columns, and a 2-D one as tall as the scan the band rows too (a detector's frames
    carry its bands). Other entries are returned as they are."""
    y, x = (int(n) for n in shape[-2:])
    out = dict(frames)
    if not bands:
        return out
    for key, value in frames.items():
        if not isinstance(value, np.ndarray) or value.ndim == 0 or value.shape[-1] != x:
            continue
        value = value[..., bands.left : x - bands.right]
        if value.ndim >= 2 and value.shape[-2] == y:
            value = value[..., bands.top : y - bands.bottom, :]
        out[key] = value
    return out
