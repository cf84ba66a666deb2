"""Model files: a Keras 3 ``.keras`` zip with this package's metadata inside.

The metadata (method, mode, channels, normalisation scale, noise parameters in counts,
training summary, package version, tile size...) is a JSON file ``xray_denoise_meta.json``
appended to the ``.keras`` archive after Keras wrote it, so one file carries everything
and Keras itself still loads it. Files are written to a temporary name and renamed, so a
checkpoint is never left half-written.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path

from ..io import atomic_write
from ._keras import keras
from .layers import custom_objects

META_NAME = "xray_denoise_meta.json"
FORMAT_NAME = "napari-xray-denoise model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file is missing, not a ``.keras`` file, not ours, or damaged."""


def _jsonable(obj):
    """Convert numpy scalars/arrays and tuples inside ``obj`` to plain JSON types."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, float) and obj != obj:  # NaN is not valid JSON
        return None
    if isinstance(obj, float) and obj in (float("inf"), float("-inf")):
        return None
    return obj


def save_model_file(model: keras.Model, metadata: dict, path: str | os.PathLike) -> Path:
    """Write ``model`` and ``metadata`` to ``path`` (must end in ``.keras``); returns the path.

    Raises ``ValueError`` for another suffix.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"Model files must end in '.keras', got {path.name!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **_jsonable(metadata)}

    def _write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.save(str(tmp))
        with zipfile.ZipFile(tmp, "a", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(META_NAME, json.dumps(meta, indent=1, allow_nan=False))

    atomic_write(path, _write, suffix=".keras")  # no partial file on failure, disk-full message
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata dict of a model file, without loading the network.

    Raises :class:`ModelFileError` (one sentence) for a missing file, a file that is not a
    ``.keras`` zip, a ``.keras`` file without this package's metadata, or bad metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"Model file {str(path)!r} does not exist.")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path.name!r} is not a .keras model file (it is not a zip archive).")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "config.json" not in names:
                raise ModelFileError(
                    f"{path.name!r} is a zip archive but not a Keras .keras model file."
                )
            if META_NAME not in names:
                raise ModelFileError(
                    f"{path.name!r} is a Keras model but not one made by napari-xray-denoise "
                    "(it has no xray_denoise_meta.json); train or export it with this package."
                )
            meta = json.loads(zf.read(META_NAME).decode("utf-8"))
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(
            f"Model file {path.name!r} is damaged and cannot be read ({exc})."
        ) from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path.name!r} has metadata this package does not recognise.")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path.name!r} was written by a newer napari-xray-denoise (format "
            f"{meta.get('format_version')}); upgrade the package to read it."
        )
    return meta


def read_model_file(path: str | os.PathLike, *, compile: bool = True) -> tuple[keras.Model, dict]:
    """Load ``(model, metadata)`` from a model file; see :func:`read_metadata` for errors.

    ``compile=True`` also restores the saved optimizer state (for resuming training).
    Damaged weights or config raise :class:`ModelFileError`.
    """
    meta = read_metadata(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = keras.saving.load_model(
                str(path), custom_objects=custom_objects(), compile=compile, safe_mode=True
            )
    except Exception as exc:  # Keras raises many types for damaged archives
        raise ModelFileError(
            f"Model file {Path(path).name!r} is damaged or incompatible and cannot be loaded ({exc})."
        ) from exc
    return model, meta


def read_model_file_of(path: str | os.PathLike, method: str) -> tuple[keras.Model, dict]:
    """:func:`read_model_file` for one kind: the model and its metadata without the file
    format keys; ``ModelFileError`` when the file holds another ``metadata["method"]``."""
    model, meta = read_model_file(path)
    if meta.get("method") != method:
        raise ModelFileError(
            f"{Path(path).name!r} holds a {meta.get('method')!r} model, not a {method!r} one."
        )
    return model, {k: v for k, v in meta.items() if k not in ("format", "format_version")}
