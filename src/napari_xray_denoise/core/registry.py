"""The one place that decides which kind of model a method name or a model file means.

A *kind* (``ModelKind``) is one network family: its training method names, its model
files' ``metadata["method"]``, its training configuration, training function and
:class:`~.blindspot.denoiser.Denoiser` class. Everything else asks here: the CLI, the worker's
jobs, the benchmarks (training), and model loading (``load_model``). A new method
registers one ``ModelKind`` with :func:`register`; its names then reach the CLI and the
widgets through ``napari_xray_denoise.options``.

Importing this module is cheap: no TensorFlow until a model is made, trained or loaded
(implementations are named ``"module:attribute"`` and imported on first use).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

#: blind-spot noise modes (how the network models the noise of the scans it learns from),
#: the default first
BLINDSPOT_MODES = ("poissongaussian", "poisson", "gaussian", "uncalib", "mse")
#: dual-energy variants of the blind-spot network (``auto`` = ``separate``)
JOINT_OPTIONS = ("auto", "separate", "blind", "cross")
#: the default (single-pass) model's self-ensemble sizes (passes over flipped copies
#: averaged) and its own default (``singlepass.denoiser.SinglePassDenoiser.self_ensemble``)
SELF_ENSEMBLES = (1, 2, 4)
DEFAULT_SELF_ENSEMBLE = 2
#: front-end options that only some kinds take; the others ignore them
KIND_SPECIFIC_OPTIONS = frozenset(
    {"joint", "enc_filters", "dec_filters", "levels", "noise_per_scan", "width", "mode"}
)


@dataclass(frozen=True)
class ModelKind:
    """One family of denoising networks; implementations named ``"module:attribute"``
    (a module of ``core``, e.g. ``"blindspot.train:TrainConfig"``) or
    ``"package.module:attribute"``."""

    method: str  #: ``metadata["method"]`` of this kind's model files
    methods: tuple[str, ...]  #: training method names offered to users (CLI, widgets)
    denoiser: str  #: the Denoiser subclass that runs its model files
    config: str  #: the training configuration dataclass
    train: str  #: ``train(scans, config, *, on_progress, cancel, checkpoint_path, resume_from, **extra)``
    #: extra configuration fields a method name sets (e.g. the blind-spot ``mode``)
    config_for_method: Callable[[str], dict] = field(default=lambda method: {})
    #: method names accepted but not offered (e.g. ``supervised``, benchmarks only)
    hidden_methods: tuple[str, ...] = ()

    def resolve(self, name: str) -> Any:
        """The object a field names: ``"module:attr"`` (a module of ``core`` first, such as
        ``"singlepass.denoiser"``), or ``"pkg.module:attr"``."""
        module, attribute = getattr(self, name).split(":")
        if importlib.util.find_spec(f"{__package__}.{module.split('.')[0]}") is not None:
            module = f"{__package__}.{module}"
        return getattr(importlib.import_module(module), attribute)


_KINDS: dict[str, ModelKind] = {}


def register(kind: ModelKind) -> ModelKind:
    """Add a kind (or replace the one with its ``method``); its method names must be new."""
    taken = {
        m: k.method for k in _KINDS.values() if k.method != kind.method for m in _all_methods(k)
    }
    clash = sorted(set(_all_methods(kind)) & set(taken))
    if clash:
        raise ValueError(f"Method names {clash} are already registered by another model kind.")
    _KINDS[kind.method] = kind
    return kind


def _all_methods(kind: ModelKind) -> tuple[str, ...]:
    return (*kind.methods, *kind.hidden_methods)


# the default model's kind first: its method ('finetune') leads the front ends' lists
register(
    ModelKind(
        method="singlepass",
        methods=("finetune",),
        denoiser="singlepass.denoiser:SinglePassDenoiser",
        config="singlepass.finetune:FinetuneConfig",
        train="singlepass.finetune:train_finetune",
    )
)
register(
    ModelKind(
        method="blindspot",
        methods=BLINDSPOT_MODES,
        hidden_methods=("supervised",),
        denoiser="blindspot.denoiser:Denoiser",
        config="blindspot.train:TrainConfig",
        train="blindspot.train:train_blindspot",
        config_for_method=lambda method: {"mode": method},
    )
)
register(
    ModelKind(
        method="amssd",
        methods=("amssd",),
        denoiser="amssd.network:AmssdDenoiser",
        config="amssd.train:AmssdConfig",
        train="amssd.train:train_amssd",
    )
)


#: the method the front ends offer first: fine-tune the shipped default model
DEFAULT_METHOD = "finetune"


def default_model_path():
    """The shipped default model (single-pass network), inside the package."""
    from importlib.resources import files
    from pathlib import Path

    return Path(str(files("napari_xray_denoise"))) / "data" / "models" / "default.keras"


def default_dark_model_path():
    """The shipped default model's companion for photon-starved scans (the same network
    trained on with dense electronics and detectors with offsets), inside the package;
    ``load_model()`` attaches it to the default model (``SinglePassDenoiser.dark``)."""
    return default_model_path().with_name("default_dark.keras")


def method_names() -> tuple[str, ...]:
    """Training methods offered to users, in registration order."""
    return tuple(m for kind in _KINDS.values() for m in kind.methods)


def kinds() -> tuple[ModelKind, ...]:
    return tuple(_KINDS.values())


def kind_for_method(method: str) -> ModelKind:
    """The kind a training method name makes (ValueError for an unknown name)."""
    for kind in _KINDS.values():
        if method in _all_methods(kind):
            return kind
    raise ValueError(f"Unknown training method {method!r}; use one of {', '.join(method_names())}.")


def kind_for_file(metadata: Mapping[str, Any], name: str = "the model file") -> ModelKind:
    """The kind whose Denoiser runs a model file with this metadata (``ModelFileError`` if none)."""
    from .model_file import ModelFileError

    method = metadata.get("method")
    if method not in _KINDS:
        raise ModelFileError(f"{name!r} holds a {method!r} model, which this version cannot run.")
    return _KINDS[method]


def make_config(method: str, options: Mapping[str, Any] | None = None):
    """The training configuration of ``method`` from front-end ``options``.

    ``None`` values keep the configuration's default; options of other kinds (for example
    ``joint`` for AMSSD) are ignored; any other unknown option is a ``ValueError``.
    """
    kind = kind_for_method(method)
    config_cls = kind.resolve("config")
    known = {f.name for f in fields(config_cls)}
    chosen = {k: v for k, v in dict(options or {}).items() if v is not None}
    unknown = sorted(set(chosen) - known - KIND_SPECIFIC_OPTIONS)
    if unknown:
        raise ValueError(f"Unknown training option(s) {unknown} for method {method!r}.")
    chosen = {k: v for k, v in chosen.items() if k in known}
    return config_cls(**{**chosen, **kind.config_for_method(method)})


def train(
    method: str,
    scans: Sequence,
    options: Mapping[str, Any] | None = None,
    *,
    on_progress: Callable | None = None,
    cancel=None,
    checkpoint_path: str | os.PathLike | None = None,
    resume_from: str | os.PathLike | None = None,
    **extra,
):
    """Train a denoiser of ``method`` on noisy ``(C, Y, X)`` scans; returns its Denoiser.

    Non-image edge bands (``napari_xray_denoise.bands``) are cut off first, so they stay
    out of the scale and the noise fit. ``extra`` goes to the kind's training function
    (e.g. ``clean=`` for the supervised blind-spot bound).
    """
    import numpy as np

    from ..bands import find_edge_bands

    config = make_config(method, options)
    trainer = kind_for_method(method).resolve("train")
    scans = [
        np.asarray(s)
        for s in ([scans] if isinstance(scans, np.ndarray) and scans.ndim == 2 else scans)
    ]
    edges = [find_edge_bands(s if s.ndim == 3 else s[None]) for s in scans]
    scans = [np.ascontiguousarray(e.interior(s)) for e, s in zip(edges, scans, strict=True)]
    if extra.get("clean") is not None:  # reference scans lose the same edges
        extra["clean"] = [
            np.ascontiguousarray(e.interior(np.asarray(c)))
            for e, c in zip(edges, extra["clean"], strict=True)
        ]
    return trainer(
        scans,
        config,
        on_progress=on_progress,
        cancel=cancel,
        checkpoint_path=checkpoint_path,
        resume_from=resume_from,
        **extra,
    )


def make_denoiser(model, metadata: Mapping[str, Any]):
    """The Denoiser of the kind ``metadata["method"]`` names, around a Keras model."""
    return kind_for_file(metadata).resolve("denoiser")(model, dict(metadata))


def load_model(path: str | os.PathLike | None = None):
    """Load a model file of any registered kind as its :class:`~.blindspot.denoiser.Denoiser`;
    ``None`` or ``"default"`` loads the shipped default model, with its companion for
    photon-starved scans (``default_dark_model_path``) when that file is there.

    Raises ``ModelFileError`` (a ``ValueError``) with one sentence for a missing file, a
    file that is not a ``.keras`` zip, a ``.keras`` file from elsewhere (no metadata), a
    kind this version cannot run, or a damaged file.
    """
    from .model_file import read_metadata

    shipped = path is None or str(path) == "default"
    if shipped:
        path = default_model_path()
    kind = kind_for_file(read_metadata(path), os.path.basename(os.fspath(path)))
    model = kind.resolve("denoiser").from_file(path)
    dark = default_dark_model_path()
    if shipped and dark.exists():  # photon-starved scans go to the companion
        model.dark = kind.resolve("denoiser").from_file(dark)
    return model
