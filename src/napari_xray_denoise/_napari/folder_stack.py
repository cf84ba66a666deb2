"""A folder of equal-shape scans as lazy dask-backed stacks (one image layer per energy).

Thousands of scans browse without loading them all: opening reads the first scan and
only the TIFF headers of the others; a scan's pixels are read when the slider reaches
it (the last few are cached, so the low and high layers share one read). A scan that
turns out to be unreadable shows as zeros with one warning sentence, and browsing goes on.

No napari import (plain layer-data tuples) and no TensorFlow.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from .layer_data import contrast_limits, layer_name


def _file_signature(path: Path) -> tuple | None:
    """Shapes and dtypes of a TIFF's series, from its header only; None if unreadable."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return tuple((tuple(s.shape), str(s.dtype)) for s in tif.series)
    except Exception:  # damaged or not a TIFF: not stackable
        return None


def group_signature(group) -> tuple | None:
    sigs = tuple(_file_signature(Path(p)) for p in group)
    return None if any(s is None for s in sigs) else sigs


@functools.lru_cache(maxsize=4)
def _read_cached(group: tuple[str, ...]) -> io.Scan:
    return io.read_group([Path(p) for p in group])


def _read_channel(
    group: tuple[str, ...], channel: str, shape: tuple[int, int], dtype
) -> np.ndarray:
    try:
        image = _read_cached(group).channels[channel]
        if image.shape != shape:
            raise io.ScanReadError(
                f"'{Path(group[0]).name}' is {image.shape}, not {shape} like the others."
            )
        return np.asarray(image, dtype=dtype)
    except (io.ScanReadError, KeyError) as exc:
        message = (
            str(exc)
            if isinstance(exc, io.ScanReadError)
            else (
                f"'{Path(group[0]).name}' has no '{channel}' channel like the first scan of the folder."
            )
        )
        warnings.warn(f"{message} Showing zeros for it.", stacklevel=2)
        return np.zeros(shape, dtype)


def folder_stack_layers(
    folder: str | os.PathLike, *, min_scans: int = 2
) -> list[tuple[Any, dict, str]] | None:
    """Layer data of a lazy ``(n_scans, Y, X)`` stack per channel, or None when the folder's
    scans do not all have the first scan's layout (shape, dtype, files per scan) or there
    are fewer than ``min_scans``; the caller then opens them one by one."""
    import dask
    import dask.array as da

    folder = Path(folder)
    groups = [tuple(str(p) for p in g) for g in io.scan_paths([folder])]
    if len(groups) < min_scans:
        return None
    signature = group_signature(groups[0])
    if signature is None or any(group_signature(g) != signature for g in groups[1:]):
        return None
    try:
        first = _read_cached(groups[0])
    except io.ScanReadError:
        return None
    shape = first.shape
    names = [io.pair_role(g[0])[0] if len(g) == 2 else Path(g[0]).stem for g in groups]
    layers = []
    for channel, image in first.channels.items():
        planes = [
            da.from_delayed(
                dask.delayed(_read_channel)(g, channel, shape, image.dtype),
                shape=shape,
                dtype=image.dtype,
            )
            for g in groups
        ]
        stack = da.stack(planes)
        meta = {
            "scan_name": folder.name,
            "scan_names": names,
            "energy": channel if channel in ("low", "high") else None,
            "channel": channel,
            "source_paths": [list(g) for g in groups],
            "source_folder": str(folder),
            "lazy_stack": True,
            "bit_depth": first.meta.get("bit_depth"),
            "count_scale": 1.0,
            "history": [],
        }
        kwargs = {
            "name": layer_name(f"{folder.name} ({len(groups)} scans)", channel),
            "colormap": "gray",
            "contrast_limits": contrast_limits(image),
            "metadata": meta,
        }
        layers.append((stack, kwargs, "image"))
    return layers
