"""Training the AMSSD denoiser on noisy scans: noisy -> multiscale pseudo-clean targets.

Each scan gives the source's aggregated set (``targets.aggregated_set``): group 0 pairs
the noisy scan with itself, groups 1..3 with its blurred versions. Training draws random
aligned crops (the same window and the same one of the 8 rotations/flips on input and
target) from a random group, holds out a validation set (whole scans when there are 2+,
else a band of the single scan; ``data.split_regions``), and runs the generic loop of
``training.py`` (best-validation weights, learning-rate reduction on plateau, early
stopping, progress, cancel) with the AMSSD loss and Adam with gradient centralisation.
Saturated pixels get their own (clipped) value as target and pass through at inference.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ... import __version__
from ...targets import DEFAULT_SCALES, aggregated_set
from .._backend import keras
from ..blindspot.denoiser import Denoiser
from ..data import (
    Region,
    as_chw_counts,
    check_training_scans,
    choose_scale,
    dihedral,
    pick_window,
    saturated_mask,
    saturation_levels,
    split_regions,
    usable_regions,
)
from ..model_file import read_metadata
from ..training import RunSummary, check_schedule_options, fit, schedule_from_config
from .network import (
    LOSS_WEIGHTS,
    AmssdDenoiser,
    amssd_loss,
    build_amssd_model,
    make_amssd_optimizer,
)

#: the four groups of the aggregated set: 0 = noisy -> noisy, k >= 1 = noisy -> blurred k
ALL_GROUPS = (0, 1, 2, 3)


@dataclass
class AmssdConfig:
    """All options of :func:`train_amssd`, with defaults sized for a 2-core CPU.

    ``width``: base filter count (source 64; CPU default 24). ``residual``: each stage
    adds a correction to its input image (see ``amssd``). ``crop_size`` (source: 128x128
    resized images; here crops, never resizing) and ``batch_size`` (source 8).
    ``learning_rate``: 1e-3 (the source's 1e-4 barely moves the residual network away
    from the identity in the few hundred steps a CPU affords; lower it for long runs).
    ``scales``: ``(factor, a)`` of the blurred versions (``targets.DEFAULT_SCALES``);
    ``groups``: which groups of the aggregated set to train on (0 = noisy -> noisy,
    1..n = noisy -> blurred version n). ``separate_channels``: for 2-channel scans, train
    one 1-channel model on every channel instead of a joint one.
    ``scale``: counts per x01 unit (None: the bit depth's full range, see
    ``data.choose_scale``). ``saturation``: "auto", a clip level in counts, or None.
    ``mixed_bfloat16``: train the network body in bfloat16 (heads and residual adds stay
    float32; faster on CPUs with AMX/AVX512-BF16). ``tile``/``overlap``: inference tiling
    (the receptive-field radius is 36 pixels).
    Patience values count validations (every ``val_every`` steps).
    """

    width: int = 24
    residual: bool = True
    steps: int = 2000
    batch_size: int = 8
    crop_size: int = 64
    learning_rate: float = 1e-3
    val_every: int = 50
    val_crops: int = 32
    val_fraction: float = 0.15
    lr_factor: float = 0.5
    lr_patience: int = 5
    min_lr: float = 1e-6
    early_stop_patience: int = 15
    lr_schedule: str = "plateau"
    minutes: float | None = None
    seed: int = 0
    scales: Sequence[tuple[int, float]] = field(default_factory=lambda: list(DEFAULT_SCALES))
    groups: Sequence[int] = ALL_GROUPS
    separate_channels: bool = False
    scale: float | None = None
    saturation: str | float | None = "auto"
    mixed_bfloat16: bool = False
    jit_compile: bool = False
    tile: int = 256
    overlap: int = 64

    def check(self) -> None:
        """Raise ``ValueError`` (one sentence) for an inconsistent configuration."""
        for name in ("steps", "batch_size", "val_every", "val_crops"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1.")
        if int(self.width) < 8:
            raise ValueError(f"width must be at least 8 filters, got {self.width}.")
        if int(self.crop_size) < 16:
            raise ValueError(
                f"crop_size must be at least 16 pixels (SSIM window), got {self.crop_size}."
            )
        if not 0 <= self.overlap < self.tile // 2:
            raise ValueError("overlap must be at least 0 and less than half the tile size.")
        if not self.learning_rate > 0:
            raise ValueError("learning_rate must be positive.")
        check_schedule_options(self.lr_schedule, self.minutes)
        if self.scale is not None and not self.scale > 0:
            raise ValueError("scale must be positive (counts per x01 unit) or None for automatic.")
        n_groups = 1 + len(self.scales)
        if not self.groups or any(not 0 <= int(g) < n_groups for g in self.groups):
            raise ValueError(f"groups must be a non-empty list of group numbers 0..{n_groups - 1}.")


class PairedCropSampler:
    """Aligned random crops of (input, target) pairs as channels-last float32 batches.

    ``inputs[i]`` is a float32 ``(C, Y, X)`` x01 scan, ``targets[i]`` its ``(G, C, Y, X)``
    target groups. A crop picks a region (probability ~ usable area), a group from
    ``groups``, a window, and (``augment``) one of the 8 rotations/flips; the same window
    and transform are applied to input and target. ``sample`` returns ``(x, t)``, both
    ``(B, s, s, C)`` float32.
    """

    def __init__(
        self,
        inputs,
        targets,
        regions: Sequence[Region],
        crop: int,
        groups: Sequence[int],
        *,
        augment: bool = True,
    ):
        self.inputs, self.targets, self.crop, self.augment = inputs, targets, int(crop), augment
        self.groups = np.asarray(groups, dtype=int)
        self.regions, self.weights = usable_regions(regions, crop)

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.crop
        picks = rng.choice(len(self.regions), size=batch, p=self.weights)
        xs, ts = [], []
        for i in picks:  # one slice per crop in the batch, not per pixel
            r = self.regions[i]
            g = int(rng.choice(self.groups))
            y0, x0, k = pick_window(rng, r, s, self.augment)
            xs.append(dihedral(self.inputs[r.index][:, y0 : y0 + s, x0 : x0 + s], k, (1, 2)))
            ts.append(dihedral(self.targets[r.index][g, :, y0 : y0 + s, x0 : x0 + s], k, (1, 2)))
        x = np.ascontiguousarray(np.stack(xs).transpose(0, 2, 3, 1), dtype=np.float32)
        t = np.ascontiguousarray(np.stack(ts).transpose(0, 2, 3, 1), dtype=np.float32)
        return x, t


def _pairs_x01(
    counts_chw: np.ndarray, scale: float, scales, saturation
) -> tuple[np.ndarray, np.ndarray]:
    """(input ``(C, Y, X)``, targets ``(G, C, Y, X)``) float32 x01 for one scan.

    Saturated pixels keep their own value in every target group.
    """
    inputs, targets = aggregated_set(counts_chw, scales)
    targets = np.asarray(targets, dtype=np.float32)  # a fresh array (concatenated), writable
    sat = saturated_mask(counts_chw, saturation_levels(counts_chw, saturation))
    if sat.any():
        targets[:, sat] = counts_chw[sat]
    x01 = np.asarray(inputs[0], dtype=np.float32) / np.float32(scale)
    targets /= np.float32(scale)
    return x01, targets


def _resume_or_new(
    resume_from: str | os.PathLike | None, config: AmssdConfig, counts, n_data_ch: int
) -> tuple[AmssdDenoiser | None, int, float]:
    """The model to resume (or None), the model's channel count and the scale."""
    if resume_from is None:
        model_ch = 1 if config.separate_channels else n_data_ch
        scale = float(config.scale) if config.scale is not None else choose_scale(counts)
        return None, model_ch, scale
    if read_metadata(resume_from).get("method") != AmssdDenoiser.METHOD:
        raise ValueError(
            "resume_from must be an AMSSD model file; this one holds another kind of model."
        )
    resumed = AmssdDenoiser.from_file(resume_from)
    model_ch, scale = int(resumed.metadata["channels"]), float(resumed.metadata["scale"])
    if model_ch not in (1, n_data_ch):
        raise ValueError(
            f"The model to resume has {model_ch} channel(s); the scans have {n_data_ch}."
        )
    return resumed, model_ch, scale


def _training_pairs(
    counts, model_ch: int, n_data_ch: int, scale: float, config: AmssdConfig
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The x01 input images and their target stacks (one image per channel if separate)."""
    inputs, targets = [], []
    for c in counts:
        x01, t01 = _pairs_x01(c, scale, config.scales, config.saturation)
        if model_ch == 1 and n_data_ch > 1:  # every channel is its own image
            inputs.extend(x01[k : k + 1] for k in range(n_data_ch))
            targets.extend(t01[:, k : k + 1] for k in range(n_data_ch))
        else:
            inputs.append(x01)
            targets.append(t01)
    return inputs, targets


def _model_with_optimizer(resumed: AmssdDenoiser | None, model_ch: int, config: AmssdConfig):
    """The resumed model or a new one, compiled with the AMSSD optimizer if it has none."""
    if resumed is not None:
        model = resumed.model
    else:
        model = build_amssd_model(
            model_ch, config.width, residual=config.residual, mixed_bfloat16=config.mixed_bfloat16
        )
    if getattr(model, "optimizer", None) is None:
        model.compile(optimizer=make_amssd_optimizer(config.learning_rate))
    return model


def _data_source(inputs, targets, crop: int, rng, config: AmssdConfig):
    """The training sampler, the fixed validation batches and how validation was split."""
    train_regions, val_regions, val_how = split_regions(
        [im.shape[1:] for im in inputs], crop, rng, val_fraction=config.val_fraction
    )
    sampler = PairedCropSampler(inputs, targets, train_regions, crop, config.groups, augment=True)
    val_sampler = PairedCropSampler(
        inputs, targets, val_regions, crop, config.groups, augment=False
    )
    val_rng = np.random.default_rng(config.seed + 1)
    n_val_batches = max(1, math.ceil(config.val_crops / config.batch_size))
    val_batches = [val_sampler.sample(val_rng, config.batch_size) for _ in range(n_val_batches)]
    return sampler, val_batches, val_how


def _metadata(
    model, resumed: AmssdDenoiser | None, model_ch: int, scale: float, config: AmssdConfig
) -> dict:
    """The metadata of an AMSSD model file, before the training summary is added."""
    arch = (
        resumed.metadata["architecture"]
        if resumed is not None
        else {
            "width": int(config.width),
            "residual": bool(config.residual),
            "mixed_bfloat16": bool(config.mixed_bfloat16),
        }
    )
    return {
        "method": "amssd",
        "mode": "direct",
        "channels": model_ch,
        "levels": 0,
        "architecture": {**arch, "parameters": int(model.count_params())},
        "scale": scale,
        "normalisation": "x01 = counts / scale (float32); outputs are counts (float32)",
        "saturation": config.saturation,
        "tile": int(config.tile),
        "overlap": int(config.overlap),
        "package_version": __version__,
        "keras_version": keras.__version__,
        "targets": {
            "scales": [[int(f), float(a)] for f, a in config.scales],
            "groups": [int(g) for g in config.groups],
            "alignment": "centre",
        },
        "loss": {
            "mae": LOSS_WEIGHTS[0],
            "one_minus_ssim": LOSS_WEIGHTS[1],
            "psnr_term": LOSS_WEIGHTS[2],
        },
        "optimizer": "Adam with gradient centralisation",
        "training": {},
    }


def train_amssd(
    scans: Sequence[np.ndarray] | np.ndarray,
    config: AmssdConfig | None = None,
    *,
    on_progress: Callable[[int, int, float, float | None], None] | None = None,
    cancel=None,
    checkpoint_path: str | os.PathLike | None = None,
    resume_from: str | os.PathLike | None = None,
) -> Denoiser:
    """Train an AMSSD denoiser on noisy scans; returns the best-validation model.

    ``scans``: one ``(C, Y, X)``/``(Y, X)`` array or a list of them (uint16 or float
    counts, C = 1 or 2, equal channel count, any sizes >= the crop size).
    ``on_progress(step, total_steps, loss, val_loss_or_None)`` after each step.
    ``cancel.is_set()`` stops training before the next step; the best model so far is
    returned (``metadata["training"]["cancelled"] = True``), nothing is raised.
    ``checkpoint_path`` (``.keras``): rewritten at every new best validation loss.
    ``resume_from``: an AMSSD model file to continue training (its architecture, scale
    and optimizer state are used; ``config`` gives the schedule and data options).
    Deterministic for ``config.seed`` up to TensorFlow's CPU kernels (enable op
    determinism for bit equality). The returned :class:`Denoiser` has
    ``metadata["method"] == "amssd"``; ``.denoise(scan)`` is a tiled forward pass.
    Raises ``ValueError`` for bad scans or options.
    """
    config = AmssdConfig() if config is None else config
    config.check()
    crop = int(config.crop_size)
    counts = check_training_scans(scans, crop, convert=as_chw_counts)
    n_scans, n_data_ch = len(counts), counts[0].shape[0]
    resumed, model_ch, scale = _resume_or_new(resume_from, config, counts, n_data_ch)

    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    inputs, targets = _training_pairs(counts, model_ch, n_data_ch, scale, config)
    del counts
    model = _model_with_optimizer(resumed, model_ch, config)
    sampler, val_batches, val_how = _data_source(inputs, targets, crop, rng, config)

    prev = resumed.metadata.get("training", {}) if resumed is not None else {}
    metadata = _metadata(model, resumed, model_ch, scale, config)
    summary = RunSummary(
        previous=prev, validation=val_how, n_scans=n_scans, config=config, resumed_from=resume_from
    )

    def on_new_best(step: int, val_loss: float) -> None:
        if checkpoint_path is not None:
            meta = {
                **metadata,
                "training": summary(steps=step, best_val_loss=val_loss, best_step=step),
            }
            AmssdDenoiser(model, meta).save(checkpoint_path)

    schedule = schedule_from_config(config)
    result = fit(
        model,
        amssd_loss,
        lambda: sampler.sample(rng, config.batch_size),
        val_batches,
        schedule,
        optimizer=model.optimizer,
        on_progress=on_progress,
        cancel=cancel,
        on_new_best=on_new_best,
    )
    metadata["training"] = summary.of(result)
    denoiser = AmssdDenoiser(model, metadata)
    if checkpoint_path is not None:
        denoiser.save(checkpoint_path)
    return denoiser


__all__ = ["ALL_GROUPS", "AmssdConfig", "PairedCropSampler", "train_amssd"]
