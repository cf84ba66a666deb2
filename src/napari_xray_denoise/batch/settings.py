"""What a batch run is set to do: its constants, the per-scan job settings (``BatchJob``)
and the resume hash of the model file and parameters."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "default"
REFERENCE_SUFFIX = "_clean"
FUSE_METHODS = ("wavelet", "spatial")
COLOUR_SCHEMES = ("material",)
#: scans with more pixels per channel than this take the chunked (lazy) path
LAZY_ABOVE_PX = 64 * 1024 * 1024


class BatchError(ValueError):
    """The batch cannot start (bad model, no inputs, bad option); one sentence."""


def default_model_path() -> Path:
    """The model ``--model default`` means: ``core.registry.default_model_path()``
    (TF-free, so this runs in the client, possibly napari's process)."""
    from ..core.registry import default_model_path as shipped

    return shipped()


@dataclass(frozen=True)
class BatchJob:
    """What every scan task needs; small and picklable (sent with each task)."""

    out_dir: str
    model_path: str
    model_sha256: str
    batch_hash: str
    run_id: str
    tile: int | None = None
    overlap: int | None = None
    fuse: str | None = None
    colour: str | None = None
    score: bool = False
    force: bool = False
    lazy_above_px: int = LAZY_ABOVE_PX

    def outputs(self, name: str) -> dict[str, Path]:
        out = Path(self.out_dir)
        paths = {"denoised": out / f"{name}_denoised.tif"}
        if self.fuse:
            paths["fused"] = out / f"{name}_fused.tif"
        if self.colour:
            paths["colour"] = out / f"{name}_{self.colour}.png"
        return paths


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def batch_hash(model_sha256: str, params: dict) -> str:
    """Hash of the model file and every parameter that changes an output (16 hex digits)."""
    text = json.dumps({"model_sha256": model_sha256, **params}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _first_line(exc: BaseException) -> str:
    """An exception's first line (its type's name when it has no text): one sentence."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
