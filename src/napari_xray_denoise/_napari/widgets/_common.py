"""Helpers shared by the dock widgets: layer lookup, showing results, user-facing errors."""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image
from napari.utils.notifications import show_error, show_info

from ... import io
from ...bands import EdgeBands, find_edge_bands
from ..layer_data import contrast_limits


def while_alive(method):
    """Decorate a widget callback that may fire after its Qt widget was deleted
    (a worker finishing after the dock or viewer closed): then it does nothing."""
    import functools

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except RuntimeError as exc:
            if "has been deleted" not in str(exc):
                raise
            return None

    return wrapper


def relay_job(job, on_progress, on_done, on_error, on_finished):
    """A started napari thread worker that relays a compute job's progress to the GUI.

    ``on_progress(info)`` per progress message, then ``on_done(result)`` or
    ``on_error(exc)``, then ``on_finished()``; all on the GUI thread.
    """
    from napari.qt.threading import thread_worker

    @thread_worker(start_thread=False, ignore_errors=True)  # errors go to on_error
    def _relay():
        for info in job.events():
            if info:
                yield info
        return job.result

    worker = _relay()
    worker.yielded.connect(on_progress)
    worker.returned.connect(on_done)
    worker.errored.connect(on_error)
    worker.finished.connect(on_finished)
    worker.start()
    return worker


def notify_error(exc: BaseException | str) -> None:
    """One sentence in a napari notification, never a traceback."""
    show_error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def notify_info(message: str) -> None:
    show_info(message)


def scan_name_of(layer: Image) -> str:
    return layer.metadata.get("scan_name") or layer.name


def partner_layer(viewer, layer: Image | None, energy: str) -> Image | None:
    """The layer of the same scan with the given energy (``"low"``/``"high"``), if open."""
    if layer is None:
        return None
    other_energy = "high" if energy == "high" else "low"
    this_energy = "low" if energy == "high" else "high"
    twin = layer.name.replace(f" {this_energy}", f" {other_energy}", 1)
    if twin != layer.name and twin in viewer.layers and isinstance(viewer.layers[twin], Image):
        return viewer.layers[twin]  # "<scan> low denoised" -> "<scan> high denoised"
    name = scan_name_of(layer)
    for other in viewer.layers:
        if (
            isinstance(other, Image)
            and other is not layer
            and other.metadata.get("energy") == energy
            and scan_name_of(other) == name
            and not other.metadata.get("reference")
        ):
            return other
    return None


def pair_arrays(low: Image | None, high: Image | None) -> tuple[np.ndarray, np.ndarray]:
    """Low/high layer data as a validated pair of equal-shape 2-D arrays."""
    if low is None or high is None:
        raise ValueError(
            "Choose both a low-energy and a high-energy layer; open a dual-energy scan first."
        )
    if low is high:
        raise ValueError(
            "The low and high layers are the same layer; choose the other energy for one of them."
        )
    a, b = np.asarray(low.data), np.asarray(high.data)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"Both layers must be 2-D scans; got shapes {a.shape} and {b.shape}.")
    if a.shape != b.shape:
        raise ValueError(
            f"Low layer '{low.name}' is {a.shape} but high layer '{high.name}' is {b.shape}; "
            "choose the two energies of the same scan."
        )
    return a, b


def bands_of(layer: Image) -> EdgeBands:
    """The non-image edge bands of a layer's scan: as read from its file (kept in the
    metadata of every result made from it), else found in its data."""
    if layer.metadata.get("edge_bands") is not None:
        return EdgeBands.from_dict(layer.metadata["edge_bands"])
    data = np.asarray(layer.data)
    return find_edge_bands(data) if data.ndim == 2 else EdgeBands()


def history_of(*layers: Image) -> list[dict]:
    for layer in layers:
        if layer is not None and layer.metadata.get("history"):
            return list(layer.metadata["history"])
    return []


def show_image(
    viewer,
    data: np.ndarray,
    name: str,
    *,
    source: Image | None = None,
    metadata: dict[str, Any] | None = None,
    **kwargs,
) -> Image:
    """Add ``data`` as an image layer, or replace the data of the layer of that name."""
    meta = {}
    if source is not None:
        meta.update(
            {
                k: source.metadata.get(k)
                for k in ("scan_name", "source_paths", "bit_depth", "edge_bands")
                if k in source.metadata
            }
        )
    meta.update(metadata or {})
    rgb = data.ndim == 3 and data.shape[-1] in (3, 4)
    inside = (
        data if rgb else EdgeBands.from_dict(meta.get("edge_bands")).interior(data)
    )  # display range
    if (
        name in viewer.layers
        and isinstance(viewer.layers[name], Image)
        and viewer.layers[name].rgb == rgb
    ):
        layer = viewer.layers[name]
        layer.data = data
        layer.metadata.update(meta)
        if not rgb:
            layer.contrast_limits = contrast_limits(inside)
        return layer
    if not rgb:
        kwargs.setdefault("colormap", "gray")
        kwargs.setdefault("contrast_limits", contrast_limits(inside))
    return viewer.add_image(data, name=name, metadata=meta, rgb=rgb, **kwargs)


def layer_history_entry(operation: str, **params) -> dict:
    return io.history_entry(operation, **params)


def scans_in_viewer(viewer) -> dict[str, list[Image]]:
    """Scans open in the viewer: name -> [low, high] layers for pairs, [layer] otherwise.

    Reference (clean) layers and colour layers are left out; result layers (denoised,
    fused, targets) are offered as single-channel scans.
    """
    scans: dict[str, list[Image]] = {}
    pairs: dict[str, dict[str, Image]] = {}
    for layer in viewer.layers:
        if not isinstance(layer, Image) or layer.rgb or np.ndim(layer.data) != 2:
            continue
        if layer.metadata.get("reference"):
            continue
        energy = layer.metadata.get("energy")
        if (
            energy in ("low", "high")
            and "denoised" not in layer.name
            and "target" not in layer.name
        ):
            pairs.setdefault(scan_name_of(layer), {})[energy] = layer
        else:
            scans[layer.name] = [layer]
    for name, roles in pairs.items():
        if set(roles) == {"low", "high"} and roles["low"].data.shape == roles["high"].data.shape:
            scans[f"{name} (low+high)"] = [roles["low"], roles["high"]]
        else:
            for layer in roles.values():
                scans[layer.name] = [layer]
    return scans


def scan_array(layers: list[Image]) -> np.ndarray:
    """(C, Y, X) array of a scan's layers (C = 1 or 2)."""
    return np.stack([np.asarray(layer.data) for layer in layers])


class JobWidgetMixin:
    """Shared end-of-job handling for widgets that run a compute job.

    The widget has ``status`` (Label), ``_worker``/``_job``/``_pbar`` and the two buttons
    named by ``_run_button_name`` (enabled when idle) and ``_stop_button_name``.
    """

    _run_button_name = "run_button"
    _stop_button_name = "cancel_button"

    def _launch(self, lane: str, job: str, *, desc: str, on_done, **kwargs):
        """Submit ``job`` to the compute process's ``lane``, relay its progress to
        ``self._on_progress`` and its result to ``on_done``; the run button is off until
        it ends. Returns the relaying worker, or ``None`` (told) if the lane is busy."""
        from napari.utils import progress

        from ..._worker import compute

        try:
            self._job = compute.lane(lane).submit(job, **kwargs)
        except compute.BusyError as exc:
            self._finish()
            notify_error(exc)
            return None
        self._pbar = progress(total=100, desc=desc)
        self._worker = relay_job(
            self._job, self._on_progress, on_done, self._on_error, self._finish
        )
        getattr(self, self._run_button_name).enabled = False
        getattr(self, self._stop_button_name).enabled = True
        return self._worker

    @while_alive
    def _on_error(self, exc: Exception):
        notify_error(exc)
        self.status.value = f"failed: {str(exc).splitlines()[0]}"

    @while_alive
    def _finish(self):
        self._worker = None
        self._job = None
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        getattr(self, self._run_button_name).enabled = True
        getattr(self, self._stop_button_name).enabled = False
