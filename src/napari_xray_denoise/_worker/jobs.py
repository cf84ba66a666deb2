"""Jobs run inside the compute worker process (see ``_worker/compute.py``).

Each job takes ``report(**info)`` (progress back to the GUI) and ``cancel`` (an Event)
plus its own keyword arguments, and returns a picklable result. TensorFlow is imported
here, in the worker, never in the GUI process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

_MODELS: dict[tuple[str, float], Any] = {}


def load(path: str):
    """A model from a .keras file, cached per path and modification time."""
    from ..core import default_model_path, load_model

    if path == "default":
        path = str(default_model_path())
    key = (str(Path(path).resolve()), Path(path).stat().st_mtime if Path(path).exists() else 0.0)
    if key not in _MODELS:
        _MODELS[key] = load_model(path)
    return _MODELS[key]


def train(
    report,
    cancel,
    *,
    method: str,
    scans: list[np.ndarray],
    config: dict,
    save_path: str,
    resume_from: str | None = None,
) -> dict:
    """Train a model of ``method`` (a name of ``core.registry``) and save it."""
    from ..core import train as train_method

    def on_progress(step, total, loss, val_loss=None):
        report(
            step=int(step),
            total=int(total),
            loss=float(loss),
            val_loss=None if val_loss is None else float(val_loss),
        )

    denoiser = train_method(
        method, scans, config, on_progress=on_progress, cancel=cancel, resume_from=resume_from
    )
    denoiser.save(save_path)
    _MODELS.clear()
    return {"model_path": str(save_path), "metadata": dict(denoiser.metadata)}


def denoise_bm3d(report, cancel, *, image: np.ndarray, physics: dict | None = None) -> dict:
    """BM3D + generalized Anscombe (``classical.bm3d_denoise``) of a (C, Y, X) or (Y, X) scan."""
    from ..bands import apply_inside, find_edge_bands, frames_inside
    from ..classical import bm3d_denoise

    records: list = []
    edges = find_edge_bands(image)
    physics = frames_inside(physics or {}, edges, image.shape)  # cut like the scan
    out = apply_inside(  # non-image edge bands pass through unchanged
        lambda inside: bm3d_denoise(
            inside,
            records=records,
            **physics,
            on_progress=lambda done, total: report(done=int(done), total=int(total)),
        ),
        image,
        edges,
    )
    return {"denoised": out, "metadata": {"method": "bm3d+gat"}, "noise": records}


def denoise(
    report,
    cancel,
    *,
    model_path: str,
    image: np.ndarray,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    self_ensemble: int | None = None,
    physics: dict | None = None,
) -> dict:
    """Tiled denoising of a (C, Y, X) or (Y, X) scan; returns float32 counts.

    ``None`` keeps the model's tile, overlap and self-ensemble and the library's batch
    size (as the CLI). ``physics``: dark/flat frames and a calibrated noise law, and
    ``self_ensemble``, for the default (single-pass) model only.
    """
    from ..bands import apply_inside, find_edge_bands, frames_inside
    from ..core import OperationCancelled

    model = load(model_path)
    physics = dict(physics or {})
    if physics and getattr(model, "method", None) != "singlepass":
        raise ValueError(
            "Dark/flat frames and a calibrated detector apply to the default model "
            "and BM3D, not to blind-spot or AMSSD models; clear those fields."
        )
    if self_ensemble is not None and getattr(model, "method", None) != "singlepass":
        raise ValueError(
            "Passes over flipped copies (self-ensemble) apply to the default model; "
            "set that field to the model's own for blind-spot or AMSSD models."
        )
    passes = {} if self_ensemble is None else {"self_ensemble": self_ensemble}
    edges = find_edge_bands(image)
    physics = frames_inside(physics, edges, image.shape)  # cut like the scan
    try:
        out = apply_inside(  # non-image edge bands pass through unchanged
            lambda inside: model.denoise(
                inside,
                tile=tile,
                overlap=overlap,
                batch_size=batch_size,
                cancel=cancel,
                on_progress=lambda done, total: report(done=int(done), total=int(total)),
                **physics,
                **passes,
            ),
            image,
            edges,
        )
    except OperationCancelled:
        return {"cancelled": True}
    return {
        "denoised": out,
        "metadata": dict(model.metadata),
        "noise": getattr(model, "last_noise", None),
    }
