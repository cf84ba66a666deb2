"""Tiled inference for fully convolutional networks, at one fixed tile shape (numpy only).

The image is reflect-padded, cut into square tiles of one shape that overlap by
``overlap`` pixels, run through ``predict_batch`` in batches of exactly ``batch_size``
tiles (the last batch is zero-padded, so a traced model never re-traces), and blended
with weights that form a partition of unity: in each overlap zone a raised-cosine ramp,
and a hard margin of ``overlap // 4`` pixels at every tile edge gets weight 0 so border
effects of the network never reach the result. Peak memory is the padded image plus the
stitched output, and one batch of tiles -- not a whole-scan network activation.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


class OperationCancelled(RuntimeError):
    """Raised when a cancel flag stops a long operation (e.g. tiled inference) part-way."""


def blend_ramp(tile: int, overlap: int) -> np.ndarray:
    """1-D tile weights (float64, length ``tile``) whose shifted copies sum to 1.

    ``w(d)`` for distance ``d`` from the nearer tile edge: 0 for ``d < m`` (``m =
    overlap // 4``), ``sin^2(pi/2 * (d - m + 0.5) / (overlap - 2m))`` across the rest of the
    overlap zone, 1 beyond. Tiles placed ``tile - overlap`` apart therefore add up to 1.
    """
    if overlap <= 0:
        return np.ones(tile)
    margin = overlap // 4
    ramp_len = overlap - 2 * margin
    d = np.minimum(np.arange(tile), np.arange(tile)[::-1]).astype(np.float64)
    u = np.clip((d - margin + 0.5) / ramp_len, 0.0, 1.0)
    w = np.sin(0.5 * np.pi * u) ** 2
    w[d < margin] = 0.0
    w[d >= overlap - margin] = 1.0
    return w


def tile_starts(length: int, tile: int, overlap: int) -> tuple[list[int], int, int]:
    """Tile start offsets along one axis of the padded image, and the padding used.

    Returns ``(starts, pad_before, padded_length)``: the image is padded by ``pad_before``
    = ``overlap // 2`` in front (>= the zero-weight margin) and at the end up to
    ``padded_length`` so every tile fits and every image pixel gets a full weight sum.
    """
    stride = tile - overlap
    pad_before = overlap // 2
    needed = length + 2 * pad_before
    n_tiles = max(1, math.ceil((needed - overlap) / stride))
    padded_length = n_tiles * stride + overlap
    return [i * stride for i in range(n_tiles)], pad_before, padded_length


def predict_tiled(
    image_hwc: np.ndarray,
    predict_batch: Callable[[np.ndarray], np.ndarray],
    *,
    tile: int = 256,
    overlap: int = 32,
    batch_size: int = 4,
    on_progress: Callable[[int, int], None] | None = None,
    cancel=None,
) -> np.ndarray:
    """Run ``predict_batch`` over an image of any size in fixed-shape tiles; stitch the result.

    ``image_hwc``: float32 ``(Y, X, C_in)``. ``predict_batch`` maps float32
    ``(batch_size, tile, tile, C_in)`` to ``(batch_size, tile, tile, C_out)``.
    ``on_progress(done_batches, total_batches)`` is called after each batch; ``cancel``
    (anything with ``is_set()``) is checked before each batch and raises
    :class:`OperationCancelled`. Returns float32 ``(Y, X, C_out)``, exactly the input's
    ``Y, X`` (a view into the padded stitching buffer). Raises ``ValueError`` for a bad tile/overlap/batch size.
    """
    if image_hwc.ndim != 3:
        raise ValueError(f"Tiled inference needs a (Y, X, C) image, got shape {image_hwc.shape}.")
    if tile <= 0 or overlap < 0 or overlap >= tile // 2 or batch_size < 1:
        raise ValueError(
            f"Need tile > 0, 0 <= overlap < tile/2 and batch_size >= 1; got tile={tile}, "
            f"overlap={overlap}, batch_size={batch_size}."
        )
    h, w, c_in = image_hwc.shape
    ys, pad_y, len_y = tile_starts(h, tile, overlap)
    xs, pad_x, len_x = tile_starts(w, tile, overlap)
    padded = np.pad(
        np.asarray(image_hwc, dtype=np.float32),
        ((pad_y, len_y - h - pad_y), (pad_x, len_x - w - pad_x), (0, 0)),
        mode="reflect" if min(h, w) > 1 else "edge",
    )
    ramp = blend_ramp(tile, overlap).astype(np.float32)
    weight_2d = ramp[:, None] * ramp[None, :]
    positions = [(y0, x0) for y0 in ys for x0 in xs]
    n_batches = math.ceil(len(positions) / batch_size)

    out = None
    weight_sum = np.zeros((len_y, len_x), np.float32)
    batch = np.zeros((batch_size, tile, tile, c_in), np.float32)
    for b in range(n_batches):
        if cancel is not None and cancel.is_set():
            raise OperationCancelled("Tiled inference was cancelled.")
        chunk = positions[b * batch_size : (b + 1) * batch_size]
        batch[len(chunk) :] = 0.0
        for i, (y0, x0) in enumerate(chunk):
            batch[i] = padded[y0 : y0 + tile, x0 : x0 + tile]
        pred = np.asarray(predict_batch(batch), dtype=np.float32)
        if pred.shape[:3] != (batch_size, tile, tile):
            raise ValueError(
                f"predict_batch returned shape {pred.shape}, expected ({batch_size}, {tile}, {tile}, C)."
            )
        if out is None:
            out = np.zeros((len_y, len_x, pred.shape[-1]), np.float32)
        for i, (y0, x0) in enumerate(chunk):
            out[y0 : y0 + tile, x0 : x0 + tile] += pred[i] * weight_2d[..., None]
            weight_sum[y0 : y0 + tile, x0 : x0 + tile] += weight_2d
        if on_progress is not None:
            on_progress(b + 1, n_batches)
    result = out[pad_y : pad_y + h, pad_x : pad_x + w]  # a view: no second full-size copy
    result /= np.maximum(weight_sum[pad_y : pad_y + h, pad_x : pad_x + w], 1e-12)[..., None]
    return result
