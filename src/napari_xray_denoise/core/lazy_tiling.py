"""Tiled inference on a lazy dask array with ``map_overlap`` (numpy + dask, no TensorFlow).

The same tiles, in the same order, with the same blending as :func:`.tiling.predict_tiled`,
so the result is identical (bit for bit, for a ``predict_batch`` whose output for a tile
does not depend on the other tiles of its batch, e.g. ``batch_size=1``, the CPU default),
while only a few tiles' worth of image is in memory at a time.

How: the image is padded exactly as the in-memory path pads it (numpy's ``reflect``),
by gathering rows and columns, and cut into chunks whose edges fall on the tile grid
(``chunk_tiles`` tile strides per chunk). ``map_overlap`` gives each chunk a halo of one
stride, enough for every tile that touches the chunk; the chunk runs those tiles (global
positions, row-major as in memory) and keeps their blended sum over its own pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .tiling import blend_ramp, tile_starts


def _grid_chunks(n_tiles: int, stride: int, overlap: int, chunk_tiles: int) -> tuple[int, ...]:
    """Chunk sizes along one padded axis: ``chunk_tiles`` strides each; the last one also
    holds the final ``overlap`` (and at least one stride, so a one-stride halo fits)."""
    sizes = []
    start = 0
    while start < n_tiles:
        rows = min(chunk_tiles, n_tiles - start)
        sizes.append(rows * stride)
        start += rows
    sizes[-1] += overlap
    return tuple(sizes)


def _tiles_touching(core0: int, core1: int, stride: int, tile: int, n_tiles: int) -> list[int]:
    """Tile starts (padded coordinates) of the tiles that overlap ``[core0, core1)``."""
    first = max(0, -(-(core0 - tile + 1) // stride))
    return [i * stride for i in range(first, n_tiles) if i * stride < core1]


def predict_tiled_lazy(
    image_hwc,
    predict_batch: Callable[[np.ndarray], np.ndarray],
    *,
    tile: int = 256,
    overlap: int = 32,
    batch_size: int = 4,
    channels_out: int | None = None,
    chunk_tiles: int = 4,
):
    """Lazy counterpart of :func:`.tiling.predict_tiled`: a dask array ``(Y, X, C_out)``.

    ``image_hwc``: float32 ``(Y, X, C_in)``, a dask or numpy array. ``predict_batch`` maps
    float32 ``(batch_size, tile, tile, C_in)`` to ``(batch_size, tile, tile, C_out)``;
    ``channels_out`` is ``C_out`` (None: found by one call on a batch of zeros).
    ``chunk_tiles``: tile strides per chunk side; peak memory per chunk is about
    ``((chunk_tiles + 2) * stride)^2 * (C_in + C_out)`` floats plus one batch.
    Nothing runs until the result is computed or stored.
    """
    import dask.array as da

    if image_hwc.ndim != 3:
        raise ValueError(f"Tiled inference needs a (Y, X, C) image, got shape {image_hwc.shape}.")
    if tile <= 0 or overlap < 0 or overlap >= tile // 2 or batch_size < 1 or chunk_tiles < 1:
        raise ValueError(
            f"Need tile > 0, 0 <= overlap < tile/2, batch_size >= 1 and chunk_tiles >= 1; got tile={tile}, "
            f"overlap={overlap}, batch_size={batch_size}, chunk_tiles={chunk_tiles}."
        )
    image = da.asarray(image_hwc).astype(np.float32)
    h, w, c_in = image.shape
    stride = tile - overlap
    ys, pad_y, len_y = tile_starts(h, tile, overlap)
    xs, pad_x, len_x = tile_starts(w, tile, overlap)
    mode = "reflect" if min(h, w) > 1 else "edge"
    rows = np.pad(
        np.arange(h), (pad_y, len_y - h - pad_y), mode=mode
    )  # numpy's own padding indices
    cols = np.pad(np.arange(w), (pad_x, len_x - w - pad_x), mode=mode)
    chunks_y = _grid_chunks(len(ys), stride, overlap, chunk_tiles)
    chunks_x = _grid_chunks(len(xs), stride, overlap, chunk_tiles)
    padded = image[rows][:, cols].rechunk((chunks_y, chunks_x, c_in))
    if channels_out is None:
        probe = np.asarray(predict_batch(np.zeros((batch_size, tile, tile, c_in), np.float32)))
        channels_out = int(probe.shape[-1])
    edges_y = np.concatenate([[0], np.cumsum(chunks_y)])
    edges_x = np.concatenate([[0], np.cumsum(chunks_x)])
    depth = stride if max(len(chunks_y), len(chunks_x)) > 1 else 0
    ramp = blend_ramp(tile, overlap).astype(np.float32)
    weight_2d = ramp[:, None] * ramp[None, :]

    def run_chunk(block: np.ndarray, block_info=None) -> np.ndarray:
        iy, ix = block_info[0]["chunk-location"][:2]
        cy0, cy1 = int(edges_y[iy]), int(edges_y[iy + 1])
        cx0, cx1 = int(edges_x[ix]), int(edges_x[ix + 1])
        oy = cy0 - (depth if iy > 0 and len(chunks_y) > 1 else 0)  # block origin, padded coords
        ox = cx0 - (depth if ix > 0 and len(chunks_x) > 1 else 0)
        positions = [
            (y0, x0)
            for y0 in _tiles_touching(cy0, cy1, stride, tile, len(ys))
            for x0 in _tiles_touching(cx0, cx1, stride, tile, len(xs))
        ]
        out = np.zeros((cy1 - cy0, cx1 - cx0, channels_out), np.float32)
        weight_sum = np.zeros((cy1 - cy0, cx1 - cx0), np.float32)
        batch = np.zeros((batch_size, tile, tile, c_in), np.float32)
        for b in range(0, len(positions), batch_size):
            chunk = positions[b : b + batch_size]
            batch[len(chunk) :] = 0.0
            for i, (y0, x0) in enumerate(chunk):
                batch[i] = block[y0 - oy : y0 - oy + tile, x0 - ox : x0 - ox + tile]
            pred = np.asarray(predict_batch(batch), dtype=np.float32)
            if pred.shape[:3] != (batch_size, tile, tile):
                raise ValueError(
                    f"predict_batch returned shape {pred.shape}, expected ({batch_size}, {tile}, {tile}, C)."
                )
            for i, (y0, x0) in enumerate(chunk):
                ty0, ty1 = max(y0, cy0), min(y0 + tile, cy1)  # the tile's part inside this chunk
                tx0, tx1 = max(x0, cx0), min(x0 + tile, cx1)
                weighted = pred[i] * weight_2d[..., None]
                out[ty0 - cy0 : ty1 - cy0, tx0 - cx0 : tx1 - cx0] += weighted[
                    ty0 - y0 : ty1 - y0, tx0 - x0 : tx1 - x0
                ]
                weight_sum[ty0 - cy0 : ty1 - cy0, tx0 - cx0 : tx1 - cx0] += weight_2d[
                    ty0 - y0 : ty1 - y0, tx0 - x0 : tx1 - x0
                ]
        out /= np.maximum(weight_sum, 1e-12)[..., None]
        return out

    stitched = padded.map_overlap(
        run_chunk,
        depth={0: depth, 1: depth, 2: 0},
        boundary="none",
        trim=False,
        chunks=(chunks_y, chunks_x, (channels_out,)),
        dtype=np.float32,
        meta=np.empty((0, 0, 0), np.float32),
    )
    return stitched[pad_y : pad_y + h, pad_x : pad_x + w]
