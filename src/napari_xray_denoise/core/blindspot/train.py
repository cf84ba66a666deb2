"""Training the blind-spot denoiser on one or many noisy scans (no clean references).

Random square crops with the 8 rotations/flips, a held-out validation set (whole scans
when there are 2+, else a band of the single scan; see ``data.split_regions``), Adam with
best-validation weights, learning-rate halving on plateau and early stopping (the generic
loop of ``training.py``). After training, ``uncalib`` fits its noise on the validation
crops; calibrated modes report their learnt noise. Everything ends up in the metadata.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ... import __version__
from .._backend import keras
from ..data import (
    CropSampler,
    Region,
    check_training_scans,
    choose_scale,
    saturated_mask,
    saturation_levels,
    split_regions,
)
from ..registry import JOINT_OPTIONS
from ..training import RunSummary, check_schedule_options, fit, make_optimizer, schedule_from_config
from .denoiser import Denoiser
from .network import (
    ALL_MODES,
    CALIBRATED_MODES,
    SUPERVISED,
    UNCALIB_EPS_REL,
    build_blindspot_model,
    make_blindspot_loss,
)
from .noisefit import affine_to_counts, estimate_affine_noise, fit_uncalib_noise


@dataclass
class TrainConfig:
    """All options of :func:`train_blindspot`, with defaults sized for a 2-core CPU.

    Network: ``enc_filters``/``dec_filters``/``levels`` (source: 48/96/5; CPU default
    32/64/3, ~0.5 s per step at batch 8 of 64x64). ``mode``: mse, uncalib, gaussian,
    poisson, poissongaussian. ``joint`` for 2-channel scans: ``"cross"`` (each channel's
    head also sees the other channel's centre pixel), ``"blind"`` (centre blind in both)
    or ``"separate"`` (one 1-channel model for every channel, each training scan's noise
    fitted per channel); ``"auto"`` is ``"separate"``, which gave the best quality per
    CPU-minute of training in the benchmark (1.2-3.0 dB above ``cross`` at 20 minutes). ``reg``: prior-std penalty ``reg * |s| / s_unit``.
    ``scale``: counts per x01 unit (None: the bit depth's full range, see
    ``data.choose_scale``). ``saturation``: "auto", a clip level in counts, or None.
    Patience values count validations (every ``val_every`` steps).
    ``lr_schedule``: ``"cosine"`` (default; warm-up, then decay to ``min_lr`` by the end of
    ``steps`` or of ``minutes``, whichever comes first) or ``"plateau"`` (halve on a
    validation plateau, the source's style). ``minutes``: a training time budget.
    ``noise_per_scan`` (calibrated modes): fit the noise law of every training scan on
    the scan itself and use it in the loss, instead of learning one law for all scans;
    scans of different doses (or gains) then each get their own noise. Both defaults were
    chosen by measurement on the phantom benchmark (docs/benchmarks.md, "Training
    choices"): per-scan noise gained 0.3-3.0 dB over one learnt law at the same
    training time and steps; cosine 1e-3 scored -0.1 to +0.6 dB against plateau 3e-4.
    """

    mode: str = "poissongaussian"
    joint: str = "auto"
    enc_filters: int = 32
    dec_filters: int = 64
    levels: int = 3
    steps: int = 2000
    batch_size: int = 8
    crop_size: int = 64
    learning_rate: float = 1e-3
    reg: float = 0.05
    val_every: int = 50
    val_crops: int = 32
    val_fraction: float = 0.15
    lr_factor: float = 0.5
    lr_patience: int = 5
    min_lr: float = 1e-6
    early_stop_patience: int = 15
    lr_schedule: str = "cosine"
    minutes: float | None = None
    seed: int = 0
    scale: float | None = None
    saturation: str | float | None = "auto"
    noise_gain: float = 10.0
    noise_per_scan: bool = True
    mixed_bfloat16: bool = False
    jit_compile: bool = False
    tile: int = 256
    overlap: int = 32

    def check(self) -> None:
        """Raise ``ValueError`` (one sentence) for an inconsistent configuration."""
        if self.mode not in ALL_MODES:
            raise ValueError(f"mode must be one of {ALL_MODES}, got {self.mode!r}.")
        if self.joint not in JOINT_OPTIONS:
            raise ValueError(f"joint must be one of {JOINT_OPTIONS}, got {self.joint!r}.")
        step = 2**self.levels
        for name in ("crop_size", "tile"):
            if getattr(self, name) % step or getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive multiple of 2**levels = {step}.")
        if not 0 <= self.overlap < self.tile // 2:
            raise ValueError("overlap must be at least 0 and less than half the tile size.")
        for name in (
            "steps",
            "batch_size",
            "val_every",
            "val_crops",
            "enc_filters",
            "dec_filters",
            "levels",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1.")
        if not self.learning_rate > 0:
            raise ValueError("learning_rate must be positive.")
        check_schedule_options(self.lr_schedule, self.minutes)
        if self.scale is not None and not self.scale > 0:
            raise ValueError("scale must be positive (counts per x01 unit) or None for automatic.")


def _resolve_joint(joint: str, n_channels: int, mode: str = "poissongaussian") -> tuple[str, int]:
    """Model joint variant and model channel count for a config value and data channels."""
    if n_channels == 1:
        return "single", 1
    if mode == SUPERVISED and joint in ("cross", "blind"):
        return "blind", n_channels  # the supervised head sees every centre pixel anyway
    if joint == "auto":  # measured best per CPU-minute (docs/benchmarks.md)
        return "single", 1
    if joint == "cross":
        return "cross", n_channels
    if joint == "blind":
        return "blind", n_channels
    return "single", 1  # "separate": one 1-channel model for all channels


def _per_channel(regions: Sequence[Region], n_channels: int) -> list[Region]:
    """Regions of scan ``i`` repeated for its channel images ``i * n_channels + k``."""
    return [
        Region(r.index * n_channels + k, r.y0, r.y1, r.x0, r.x1)
        for r in regions
        for k in range(n_channels)
    ]


def _noise_estimates(
    images: Sequence[np.ndarray], valid: Sequence[np.ndarray], n_ch: int, seed: int
):
    """Per-channel affine noise estimates (x01), the median over up to 8 images."""
    out = []
    for c in range(n_ch):
        ests = [
            estimate_affine_noise(img[c], v[c], max_pixels=500_000, seed=seed)
            for img, v in list(zip(images, valid, strict=True))[:8]
        ]
        a = float(np.median([e.a for e in ests]))
        b = float(np.median([e.b for e in ests]))
        mean_ref = float(np.median([e.mean_ref for e in ests]))
        var_ref = a * mean_ref + b
        if not var_ref > 0:
            var_ref = float(np.median([e.var_ref for e in ests]))
        out.append({"a": a, "b": b, "mean_ref": mean_ref, "var_ref": var_ref})
    return out


def _per_image_noise(
    images: Sequence[np.ndarray],
    valid: Sequence[np.ndarray],
    n_ch: int,
    scale: float,
    mode: str,
    fallback: Sequence[dict],
) -> np.ndarray:
    """``(n_images, 2, n_ch)`` float32: the noise law ``(a, b)`` (x01 units) of each image.

    Fitted on each image itself (``noise.fit_poisson_gaussian``, as the denoiser does at
    inference), then shaped to the mode: ``poisson`` keeps ``a`` only, ``gaussian`` the
    variance at the image's mean level, ``poissongaussian`` both (``b`` clipped at 0). A
    channel whose fit fails gets the shared estimate ``fallback[c]``.
    """
    from ...noise import fit_poisson_gaussian

    out = np.zeros((len(images), 2, n_ch), np.float32)
    for i, (img, ok) in enumerate(zip(images, valid, strict=True)):
        for c in range(n_ch):
            counts = img[c] * np.float32(scale)
            try:
                fit = fit_poisson_gaussian(np.where(ok[c], counts, np.median(counts)))
                a, b = fit.a / scale, max(fit.b, 0.0) / scale**2
            except ValueError:
                a, b = float(fallback[c]["a"]), max(float(fallback[c]["b"]), 0.0)
            if mode == "poisson":
                b = 0.0
            elif mode == "gaussian":
                a, b = 0.0, a * float(np.mean(img[c])) + b
            out[i, :, c] = (a, b)
    return out


def _learnt_noise(model: keras.Model, mode: str, scale: float) -> list[dict]:
    """Noise parameters of the model's NoiseVariance layer, per channel, in counts."""
    layer = model.get_layer("noise_var")
    alpha = np.asarray(layer.alpha()) if mode in ("poisson", "poissongaussian") else None
    beta = np.asarray(layer.beta())
    out = []
    for c in range(layer.channels):
        a = float(alpha[c]) if alpha is not None else 0.0
        a_counts, b_counts = affine_to_counts(a, float(beta[c]), scale)
        out.append({"model": mode, "a_counts": a_counts, "b_counts": b_counts})
    return out


def _uncalib_noise(model, val_batches, n_ch: int, scale: float) -> list[dict]:
    """Fit ``var = a*mu + b`` per channel on the validation crops; counts units."""
    ys, mus, vs = [], [], []
    for x, t in val_batches:
        out = np.asarray(model(x, training=False))
        ys.append(x)
        mus.append(out[..., :n_ch])
        vs.append(t[..., n_ch : 2 * n_ch] > 0.5)
    y, mu, valid = (np.concatenate(a) for a in (ys, mus, vs))
    result = []
    for c in range(n_ch):  # one 2-parameter fit per channel
        a, b = fit_uncalib_noise(y[..., c], mu[..., c], valid=valid[..., c])
        a_counts, b_counts = affine_to_counts(a, b, scale)
        result.append({"model": "affine (uncalib fit)", "a_counts": a_counts, "b_counts": b_counts})
    return result


def _metadata(
    model, *, mode, joint, levels, scale, config, noise_init, noise_gain, mixed_bfloat16
) -> dict:
    """The metadata of a blind-spot model file, before the training summary is added."""
    unet = model.get_layer("vertical_unet")
    return {
        "method": "blindspot",
        "mode": mode,
        "channels": int(model.input_shape[-1]),
        "joint": joint,
        "levels": int(levels),
        "architecture": {
            "enc_filters": int(unet.get_layer("enc0").filters),
            "dec_filters": int(unet.get_layer("dec1b").filters),
            "levels": int(levels),
            "mixed_bfloat16": bool(mixed_bfloat16),
            "noise_gain": float(noise_gain),
            "parameters": int(model.count_params()),
        },
        "scale": float(scale),
        "normalisation": "x01 = counts / scale (float32); outputs are counts (float32)",
        "saturation": config.saturation,
        "tile": int(config.tile),
        "overlap": int(config.overlap),
        "package_version": __version__,
        "keras_version": keras.__version__,
        "noise": {
            "units": "var_counts = a_counts * mean_counts + b_counts",
            "init_estimate_x01": list(noise_init),
            "uncalib_eps": [UNCALIB_EPS_REL * float(n["var_ref"]) for n in noise_init],
            "channels": [],
        },
        "training": {},
    }


def untrained_denoiser(
    channels: int = 2, config: TrainConfig | None = None, *, scale: float = 65535.0, noise_init=None
) -> Denoiser:
    """A freshly initialised (untrained) denoiser, e.g. for speed and memory benchmarks.

    ``noise_init``: per-channel dicts ``a, b, mean_ref, var_ref`` (x01); default: noise of
    a gain-8, read-noise-25 detector at mid range for ``scale``.
    """
    config = TrainConfig() if config is None else config
    config.check()
    joint, model_ch = _resolve_joint(config.joint, channels, config.mode)
    if noise_init is None:
        a, b = 8.0 / scale, 625.0 / scale**2
        noise_init = [{"a": a, "b": b, "mean_ref": 0.5, "var_ref": a * 0.5 + b}] * model_ch
    keras.utils.set_random_seed(config.seed)
    model = build_blindspot_model(
        channels=model_ch,
        joint=joint,
        mode=config.mode,
        enc_filters=config.enc_filters,
        dec_filters=config.dec_filters,
        levels=config.levels,
        noise_init=noise_init,
        noise_gain=config.noise_gain,
        mixed_bfloat16=config.mixed_bfloat16,
    )
    meta = _metadata(
        model,
        mode=config.mode,
        joint=joint,
        levels=config.levels,
        scale=scale,
        config=config,
        noise_init=noise_init,
        noise_gain=config.noise_gain,
        mixed_bfloat16=config.mixed_bfloat16,
    )
    return Denoiser(model, meta)


def _check_clean(clean, counts: Sequence[np.ndarray], crop: int):
    """The checked clean scans (or None); they must match the noisy ones in shape."""
    if clean is None:
        return None
    clean = check_training_scans(clean, crop)
    if len(clean) != len(counts) or any(a.shape != b.shape for a, b in zip(clean, counts)):
        raise ValueError("The clean scans must match the noisy scans one to one, in shape too.")
    return clean


def _model_settings(
    resumed: Denoiser | None, config: TrainConfig, counts, n_data_ch: int, crop: int
) -> tuple[str, str, int, float, int]:
    """Mode, joint variant, model channels, scale and levels: the resumed model's or new."""
    if resumed is None:
        mode = config.mode
        joint, model_ch = _resolve_joint(config.joint, n_data_ch, mode)
        scale = float(config.scale) if config.scale is not None else choose_scale(counts)
        return mode, joint, model_ch, scale, config.levels
    meta0 = resumed.metadata
    mode, joint, model_ch = meta0["mode"], meta0["joint"], int(meta0["channels"])
    scale = float(meta0["scale"])
    if model_ch not in (1, n_data_ch):
        raise ValueError(
            f"The model to resume has {model_ch} channel(s); the scans have {n_data_ch}."
        )
    levels = int(meta0["levels"])
    if crop % 2**levels:
        raise ValueError(f"crop_size must be a multiple of {2**levels} for the model to resume.")
    return mode, joint, model_ch, scale, levels


def _check_supervised(supervised: bool, clean) -> None:
    """Clean scans go with the supervised mode, and only with it."""
    if supervised != (clean is not None):
        raise ValueError(
            "Clean scans go with mode 'supervised' only, and that mode needs them."
            if clean is not None
            else "Mode 'supervised' needs the clean scans (clean=...) matching the noisy ones."
        )


def _training_images(counts, clean, scale: float, saturation, supervised: bool, model_ch: int):
    """The x01 images and their valid (unsaturated) masks: one per scan, or per channel."""
    n_data_ch = counts[0].shape[0]
    images, valid = [], []
    for i, c in enumerate(counts):  # one float32 x01 copy per scan, nothing more
        sat = saturated_mask(c, saturation_levels(c, saturation))
        x01 = np.divide(c, np.float32(scale), dtype=np.float32)
        if supervised:  # noisy then clean channels, so crops and flips stay aligned
            x01 = np.concatenate([x01, np.divide(clean[i], np.float32(scale), dtype=np.float32)])
            sat = np.concatenate([sat, sat])
        if model_ch == 1 and n_data_ch > 1:  # "separate": every channel is its own image
            pick = [[k, k + n_data_ch] if supervised else [k] for k in range(n_data_ch)]
            images.extend(x01[p] for p in pick)
            valid.extend(~sat[p] for p in pick)
        else:
            images.append(x01)
            valid.append(~sat)
    return images, valid


def _model_and_noise_init(
    resumed: Denoiser | None, images, valid, model_ch: int, joint: str, mode: str, config
):
    """The resumed or a new model (compiled with Adam if it has no optimizer), its noise init."""
    if resumed is not None:
        model = resumed.model
        noise_init = resumed.metadata["noise"]["init_estimate_x01"]
    else:
        noise_init = _noise_estimates(images, valid, model_ch, config.seed)
        model = build_blindspot_model(
            channels=model_ch,
            joint=joint,
            mode=mode,
            enc_filters=config.enc_filters,
            dec_filters=config.dec_filters,
            levels=config.levels,
            noise_init=noise_init,
            noise_gain=config.noise_gain,
            mixed_bfloat16=config.mixed_bfloat16,
        )
    if getattr(model, "optimizer", None) is None:
        model.compile(optimizer=make_optimizer(config.learning_rate))
    return model, noise_init


def _crop_samplers(images, valid, shapes, n_data_ch: int, crop: int, rng, config):
    """Training and validation crop samplers, split by scan; and how validation was split."""
    # split by scan (not by channel image), so "separate" keeps both channels in each set
    train_regions, val_regions, val_how = split_regions(
        shapes, crop, rng, val_fraction=config.val_fraction
    )
    if len(images) != len(shapes):  # "separate": scan i, channel k is image i * C + k
        train_regions = _per_channel(train_regions, n_data_ch)
        val_regions = _per_channel(val_regions, n_data_ch)
    sampler = CropSampler(images, valid, train_regions, crop, augment=True)
    val_sampler = CropSampler(images, valid, val_regions, crop, augment=False)
    return sampler, val_sampler, val_how


def _batch_maker(model_ch: int, supervised: bool, image_noise: np.ndarray | None):
    """``(crops, valid, index) -> (inputs, targets)``: the targets the loss expects."""
    per_scan = image_noise is not None

    def to_batch(xvi):
        x, v, index = xvi
        c = model_ch
        if supervised:  # inputs: the noisy channels; targets: the clean ones
            x, parts = x[..., :c], [x[..., c:], v[..., :c]]
        else:
            parts = [x, v]
        if per_scan:  # constant a and b maps of each crop's own scan
            ab = image_noise[index][:, :, None, None, :]  # (B, 2, 1, 1, C)
            parts += [np.broadcast_to(ab[:, k], x.shape) for k in (0, 1)]
        return x, np.concatenate(parts, axis=-1)

    return to_batch


def _validation_batches(val_sampler: CropSampler, to_batch, config: TrainConfig) -> list:
    """The fixed validation batches (``config.val_crops`` crops, its own seed)."""
    val_rng = np.random.default_rng(config.seed + 1)
    n_val_batches = max(1, math.ceil(config.val_crops / config.batch_size))
    return [
        to_batch(val_sampler.sample_with_index(val_rng, config.batch_size))
        for _ in range(n_val_batches)
    ]


def _noise_report(model, val_batches, mode: str, model_ch: int, scale: float) -> list[dict]:
    """The noise per channel for the metadata: learnt, fitted (uncalib) or none."""
    if mode in CALIBRATED_MODES:
        return _learnt_noise(model, mode, scale)
    if mode == "uncalib":
        return _uncalib_noise(model, val_batches, model_ch, scale)
    return []


def _per_scan_counts(image_noise: np.ndarray, model_ch: int, scale: float) -> list:
    """Each training image's fitted noise law per channel, in counts."""
    return [
        [
            {"a_counts": float(ab[0, c]) * scale, "b_counts": float(ab[1, c]) * scale**2}
            for c in range(model_ch)
        ]
        for ab in image_noise
    ]


def _run_metadata(model, resumed, mode, joint, levels, scale, config, noise_init) -> dict:
    """The metadata of this run's model; a resumed model keeps its noise gain and precision."""
    arch0 = resumed.metadata.get("architecture", {}) if resumed is not None else {}
    return _metadata(
        model,
        mode=mode,
        joint=joint,
        levels=levels,
        scale=scale,
        config=config,
        noise_init=noise_init,
        noise_gain=float(arch0.get("noise_gain", config.noise_gain)),
        mixed_bfloat16=bool(arch0.get("mixed_bfloat16", config.mixed_bfloat16)),
    )


def train_blindspot(
    scans: Sequence[np.ndarray] | np.ndarray,
    config: TrainConfig | None = None,
    *,
    on_progress: Callable[[int, int, float, float | None], None] | None = None,
    cancel=None,
    checkpoint_path: str | os.PathLike | None = None,
    resume_from: str | os.PathLike | None = None,
    clean: Sequence[np.ndarray] | np.ndarray | None = None,
) -> Denoiser:
    """Train a blind-spot denoiser on noisy scans; returns the best-validation model.

    ``clean`` (only with ``config.mode == "supervised"``, and then required): the
    noise-free scans matching ``scans`` one to one, for the supervised upper bound (the
    same network, not blind, trained noisy -> clean; phantoms give such pairs).

    ``scans``: one ``(C, Y, X)``/``(Y, X)`` array or a list of them (uint16 or float
    counts, equal channel count, any sizes >= the crop size). ``on_progress(step,
    total_steps, loss, val_loss_or_None)`` after each step. ``cancel.is_set()`` stops
    training before the next step; the best model so far is returned (with
    ``metadata["training"]["cancelled"] = True``), nothing is raised.
    ``checkpoint_path`` (``.keras``): rewritten at every new best validation loss.
    ``resume_from``: a model file to continue training (its architecture, mode, scale and
    optimizer state are used; ``config`` gives the schedule). Deterministic for
    ``config.seed`` up to TensorFlow's CPU kernels (enable op determinism for bit
    equality). Raises ``ValueError`` for bad scans or options.
    """
    config = TrainConfig() if config is None else config
    config.check()
    crop = config.crop_size
    counts = check_training_scans(scans, crop)  # views, no copies
    clean = _check_clean(clean, counts, crop)
    n_data_ch = counts[0].shape[0]
    resumed = Denoiser.from_file(resume_from) if resume_from is not None else None
    mode, joint, model_ch, scale, levels = _model_settings(resumed, config, counts, n_data_ch, crop)
    supervised = mode == SUPERVISED
    _check_supervised(supervised, clean)

    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    shapes = [c.shape[1:] for c in counts]
    images, valid = _training_images(counts, clean, scale, config.saturation, supervised, model_ch)
    n_scans = len(shapes)
    del counts
    model, noise_init = _model_and_noise_init(resumed, images, valid, model_ch, joint, mode, config)
    var_unit = [float(n["var_ref"]) for n in noise_init]

    sampler, val_sampler, val_how = _crop_samplers(
        images, valid, shapes, n_data_ch, crop, rng, config
    )
    per_scan = bool(config.noise_per_scan) and mode in (*CALIBRATED_MODES, SUPERVISED)
    image_noise = (
        _per_image_noise(images, valid, model_ch, scale, mode, noise_init) if per_scan else None
    )
    to_batch = _batch_maker(model_ch, supervised, image_noise)
    val_batches = _validation_batches(val_sampler, to_batch, config)

    prev = resumed.metadata.get("training", {}) if resumed is not None else {}
    metadata = _run_metadata(model, resumed, mode, joint, levels, scale, config, noise_init)
    summary = RunSummary(
        previous=prev, validation=val_how, n_scans=n_scans, config=config, resumed_from=resume_from
    )

    def on_new_best(step: int, val_loss: float) -> None:
        if checkpoint_path is None:
            return
        meta = dict(metadata)
        meta["training"] = summary(steps=step, best_val_loss=val_loss, best_step=step)
        channels = _noise_report(model, val_batches, mode, model_ch, scale)
        meta["noise"] = {**metadata["noise"], "channels": channels}
        Denoiser(model, meta).save(checkpoint_path)

    schedule = schedule_from_config(config)
    loss_fn = make_blindspot_loss(mode, model_ch, var_unit, config.reg, per_scan_noise=per_scan)
    result = fit(
        model,
        loss_fn,
        lambda: to_batch(sampler.sample_with_index(rng, config.batch_size)),
        val_batches,
        schedule,
        optimizer=model.optimizer,
        on_progress=on_progress,
        cancel=cancel,
        on_new_best=on_new_best,
    )
    metadata["training"] = summary.of(result)
    metadata["noise"]["channels"] = _noise_report(model, val_batches, mode, model_ch, scale)
    if per_scan:
        metadata["noise"]["training"] = "fitted on each training scan (per_scan_counts)"
        metadata["noise"]["per_scan_counts"] = _per_scan_counts(image_noise, model_ch, scale)
    denoiser = Denoiser(model, metadata)
    if checkpoint_path is not None:
        denoiser.save(checkpoint_path)
    return denoiser
