"""TensorFlow/Keras 3 part of napari-xray-denoise: networks, training, tiled inference, model files.

Importing this package is cheap: the names below are loaded (and TensorFlow imported)
on first access. Never imports napari or Qt.

Public API::

    TrainConfig, train_blindspot(scans, config, *, on_progress, cancel, checkpoint_path, resume_from)
    Denoiser (.denoise(scan, *, tile, overlap, batch_size, noise, precision, on_progress, cancel),
              .predict_raw, .save, .metadata, .last_noise)
    load_model(path=None) (any kind, chosen by core.registry; None: the shipped default model),
    default_model_path(), make_denoiser(model, metadata),
    train(method, scans, options, ...) (the kind of a method name, from core.registry)
    SinglePassDenoiser (the default model's class), calibrated_noise(gain, offset, read_std),
    ModelFileError (a ValueError), OperationCancelled (denoise cancelled)
    untrained_denoiser(channels, config)  (benchmarks), build_blindspot_model, predict_tiled

The generic pieces for other networks: ``core.training.fit`` (model + loss + sampler),
``core.tiling.predict_tiled`` (any fully convolutional predict function), ``core.model_file``.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "TrainConfig": "blindspot.train",
    "train_blindspot": "blindspot.train",
    "untrained_denoiser": "blindspot.train",
    "Denoiser": "blindspot.denoiser",
    "load_model": "registry",
    "default_model_path": "registry",
    "make_denoiser": "registry",
    "train": "registry",
    "SinglePassDenoiser": "singlepass.denoiser",
    "calibrated_noise": "singlepass.denoiser",
    "build_singlepass_model": "singlepass.network",
    "ModelFileError": "model_file",
    "read_metadata": "model_file",
    "OperationCancelled": "tiling",
    "predict_tiled": "tiling",
    "build_blindspot_model": "blindspot.network",
    "posterior_mean": "blindspot.noisefit",
    "fit_uncalib_noise": "blindspot.noisefit",
    "MODES": "blindspot.network",
    "AmssdConfig": "amssd.train",
    "train_amssd": "amssd.train",
    "build_amssd_model": "amssd.network",
    "amssd_loss": "amssd.network",
    "AmssdDenoiser": "amssd.network",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
