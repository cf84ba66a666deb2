"""npe2 reader contribution: dual-energy and single-energy TIFF scans, pairs and folders.

``get_reader`` decides from the file name and the 4-byte TIFF header only, and returns
None for anything that is not a TIFF, so other readers get their turn. For a TIFF that
is a scan but broken, the user sees one sentence in a napari notification.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .. import io
from .layer_data import scan_to_layer_data

_NULL_LAYER = [(None,)]  # napari's "read fine, nothing to add" sentinel


def get_reader(path: str | Sequence[str]):
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        return None
    for p in paths:
        p = Path(p)
        if p.is_dir():
            if not any(f.suffix.lower() in io.TIFF_SUFFIXES for f in p.iterdir()):
                return None
        elif not io.is_tiff_file(p):
            return None
    return read_paths


def read_paths(path: str | Sequence[str]):
    """Layer data for every scan in ``path`` (file, list of files, or folder).

    A folder of scans that all have the same shape opens as lazy stacks (``folder_stack``).

    A low/high pair already open in the current viewer is not added twice (napari
    calls the reader once per selected file).
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if len(paths) == 1 and Path(paths[0]).is_dir():  # equal-shape scans: one lazy stack per energy
        from .folder_stack import folder_stack_layers

        stack = folder_stack_layers(paths[0])
        if stack:
            return stack
    layers = []
    errors = []
    open_sources = _sources_open_in_viewer()
    for group in io.scan_paths(paths):
        if len(group) == 2 and frozenset(str(g) for g in group) in open_sources:
            continue
        try:
            scan = io.read_group(group)
        except io.ScanReadError as exc:
            errors.append(str(exc))
            continue
        layers.extend(scan_to_layer_data(scan))
    for message in errors:
        _notify_error(message)
    return layers or _NULL_LAYER


def _sources_open_in_viewer() -> set[frozenset[str]]:
    try:
        import napari

        viewer = napari.current_viewer()
    except Exception:  # no napari / no viewer: nothing is open
        return set()
    if viewer is None:
        return set()
    return {
        frozenset(layer.metadata.get("source_paths", []))
        for layer in viewer.layers
        if len(layer.metadata.get("source_paths", [])) == 2
    }


def _notify_error(message: str) -> None:
    try:
        from napari.utils.notifications import show_error
    except ImportError:  # used outside napari
        raise io.ScanReadError(message) from None
    show_error(message)
