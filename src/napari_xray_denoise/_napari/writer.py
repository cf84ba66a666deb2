"""npe2 writer contributions: 16-bit TIFFs for image layers, 8-bit RGB TIFF/PNG for colour.

Float layers go back to the scan's 16-bit count scale (``count_scale`` in the layer
metadata) with rounding and clipping. Every write is atomic. Errors reach the user as
one-sentence napari notifications and the writer returns no paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import io


def _history(meta: dict[str, Any], operation: str, **params: Any) -> list[dict]:
    layer_meta = meta.get("metadata") or {}
    return list(layer_meta.get("history", [])) + [io.history_entry(operation, **params)]


def _is_rgb(data: np.ndarray, meta: dict[str, Any]) -> bool:
    return bool(meta.get("rgb")) or (
        np.ndim(data) == 3 and np.shape(data)[-1] in (3, 4) and np.asarray(data).dtype == np.uint8
    )


def write_layer(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """One image layer: grayscale -> 16-bit TIFF; colour -> 8-bit RGB TIFF or PNG."""
    try:
        data = np.asarray(data)
        name = meta.get("name", Path(path).stem)
        if _is_rgb(data, meta):
            out = io.write_rgb(path, data, history=_history(meta, "export", layer=name))
        else:
            if Path(path).suffix.lower() not in io.TIFF_SUFFIXES:
                raise ValueError(
                    f"Grayscale scans are saved as 16-bit .tif, not '{Path(path).suffix}'; "
                    "choose a .tif name (PNG is for colour layers)."
                )
            if data.ndim != 2:
                raise ValueError(
                    f"Layer '{name}' has shape {data.shape}; only 2-D images can be saved as a scan."
                )
            scale = io.count_scale_for(data, meta.get("metadata"))
            out = io.write_tiff(
                path,
                [data],
                channel_names=[(meta.get("metadata") or {}).get("channel", name)],
                history=_history(meta, "export", layer=name, count_scale=scale),
                count_scale=scale,
            )
    except (ValueError, OSError) as exc:
        _notify_error(str(exc))
        return []
    return [str(out)]


def write_layers(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """Several image layers (low, high, results) -> one multi-page 16-bit TIFF with names."""
    try:
        if Path(path).suffix.lower() not in io.TIFF_SUFFIXES:
            raise ValueError(
                "Several layers are saved together as one .tif file; choose a .tif name."
            )
        images, names, scales, history = [], [], [], []
        for data, meta, _kind in layer_data:
            data = np.asarray(data)
            if _is_rgb(data, meta):
                raise ValueError(
                    f"Layer '{meta.get('name')}' is a colour image; save colour layers on their own as .png or .tif."
                )
            images.append(data)
            names.append(meta.get("name", f"channel {len(names)}"))
            scales.append(io.count_scale_for(data, meta.get("metadata")))
            history.extend((meta.get("metadata") or {}).get("history", []))
        history.append(io.history_entry("export", layers=names, count_scales=scales))
        out = io.write_tiff(path, images, channel_names=names, history=history, count_scale=scales)
    except (ValueError, OSError) as exc:
        _notify_error(str(exc))
        return []
    return [str(out)]


def _notify_error(message: str) -> None:
    try:
        from napari.utils.notifications import show_error
    except ImportError:
        raise ValueError(message) from None
    show_error(message)
