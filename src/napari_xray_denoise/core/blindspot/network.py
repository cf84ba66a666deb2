"""The Laine et al. (2019) blind-spot network and the Khademi et al. (2021) noise modes.

Network (channels-last, x01 input ``(B, Y, X, C)``, Y and X divisible by ``2**levels``):
a *vertical* U-Net whose every output row sees only input rows strictly above it
(shifted 3x3 convs, shifted 2x2 max-pools, a final one-row shift), applied with shared
weights to the input rotated by 0/90/180/270 degrees; the four results are rotated back
and concatenated, so together they see every pixel except the centre one. A 1x1 head
gives per channel the prior mean ``loc`` and prior std ``std``. ``loc`` is the mean of the
8 neighbours plus the head's (zero-initialised) residual: a blind-spot-safe start that
spares the CPU the first few hundred steps of learning the signal level (not in the
source).

Dual energy (C = 2): ``joint="blind"`` -- one head, the centre pixel is blind in both
channels; ``joint="cross"`` -- the head's first 1x1 layer is shared, then each output
channel gets its own rest of the head plus a 1x1 term from the *other* channels' raw
centre values, never its own (valid when the detectors' noise is independent).
The prior is diagonal: one ``loc``/``std`` and one noise model per channel, no
cross-channel covariance.

Model output: float32 ``(B, Y, X, 3C)`` = ``[loc_0..loc_C-1, std_0.., noise_var_0..]`` in
x01 units (noise_var is 0 for modes ``mse`` and ``uncalib``).

``mode="supervised"`` builds the same network with the raw centre values of every
channel concatenated to the head's input: not blind, for training on noisy -> clean
pairs; ``loc`` is then the estimate itself (the upper bound of the benchmarks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from .._backend import keras
from ..layers import ChannelScale, NoiseVariance, RingMean, Rot90, SelectChannels, ShiftDown
from ..registry import BLINDSPOT_MODES

ops = keras.ops

MODES = BLINDSPOT_MODES  # the blind-spot noise modes, listed once in core.registry
#: not a blind-spot mode: the same network whose head also sees the centre pixel of every
#: channel, trained on noisy -> clean pairs (the benchmark's supervised upper bound)
SUPERVISED = "supervised"
ALL_MODES = (*MODES, SUPERVISED)
CALIBRATED_MODES = ("gaussian", "poisson", "poissongaussian")
JOINT_VARIANTS = ("single", "blind", "cross")

#: uncalib total-variance floor, relative to the noise variance unit of the channel
UNCALIB_EPS_REL = 1e-3
#: noise-variance floor, relative to the noise variance unit of the channel
VAR_FLOOR_REL = 1e-4


@contextlib.contextmanager
def _dtype_policy(name: str):
    """Temporarily set Keras' global dtype policy (layers keep it in their config)."""
    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(old)


def _shifted_conv(x, filters: int, name: str):
    """3x3 conv whose output row i sees input rows i-2..i (pad 2 top, 0 bottom), LeakyReLU 0.1."""
    x = keras.layers.ZeroPadding2D(((2, 0), (1, 1)), name=f"{name}_pad")(x)
    x = keras.layers.Conv2D(filters, 3, padding="valid", kernel_initializer="he_normal", name=name)(
        x
    )
    return keras.layers.LeakyReLU(negative_slope=0.1, name=f"{name}_act")(x)


def _shifted_pool(x, name: str):
    """2x2 max-pool after a one-row shift down, so pooled rows never look below themselves."""
    x = ShiftDown(1, name=f"{name}_shift")(x)
    return keras.layers.MaxPooling2D(2, name=name)(x)


def build_vertical_unet(
    channels: int, enc_filters: int, dec_filters: int, levels: int
) -> keras.Model:
    """The vertical blind-spot U-Net: output row i depends only on input rows < i."""
    inp = keras.Input((None, None, channels), name="rotated_x01")
    skips = [inp]
    x = _shifted_conv(inp, enc_filters, "enc0")
    x = _shifted_conv(x, enc_filters, "enc1")
    for level in range(1, levels + 1):
        x = _shifted_pool(x, f"pool{level}")
        if level < levels:
            skips.append(x)
        x = _shifted_conv(x, enc_filters, f"enc{level + 1}")
    for level in range(levels, 0, -1):
        x = keras.layers.UpSampling2D(2, name=f"up{level}")(x)
        x = keras.layers.Concatenate(name=f"skip{level}")([x, skips[level - 1]])
        x = _shifted_conv(x, dec_filters, f"dec{level}a")
        x = _shifted_conv(x, dec_filters, f"dec{level}b")
    x = ShiftDown(1, name="final_shift")(x)
    return keras.Model(inp, x, name="vertical_unet")


def _head_tail(x, out_channels: int, width: int, name: str):
    """Rest of the 1x1 head after its first layer: -> width -> (loc, raw std), float32."""
    x = keras.layers.Conv2D(width, 1, kernel_initializer="he_normal", name=f"{name}_2")(x)
    x = keras.layers.LeakyReLU(negative_slope=0.1, name=f"{name}_2_act")(x)
    loc = keras.layers.Conv2D(out_channels, 1, kernel_initializer="zeros", name=f"{name}_loc")(x)
    std = keras.layers.Conv2D(out_channels, 1, kernel_initializer="he_normal", name=f"{name}_std")(
        x
    )
    return loc, std


def noise_layer_kwargs(mode: str, noise_init: Sequence[dict], gain: float = 10.0) -> dict:
    """Arguments of :class:`NoiseVariance` from per-channel noise estimates.

    ``noise_init[c]`` has ``a``, ``b``, ``mean_ref``, ``var_ref`` (x01 units, see
    :class:`napari_xray_denoise.core.blindspot.noisefit.AffineNoise`).
    """
    var_unit = [max(float(n["var_ref"]), 1e-30) for n in noise_init]
    mean_ref = [max(float(n["mean_ref"]), 1e-6) for n in noise_init]
    if mode == "poisson":
        alpha_unit = [v / m for v, m in zip(var_unit, mean_ref, strict=True)]
    else:
        alpha_unit = [
            max(float(n["a"]), 0.05 * v / m)
            for n, v, m in zip(noise_init, var_unit, mean_ref, strict=True)
        ]
    init_b = [0.0] * len(var_unit)
    if mode == "poissongaussian":
        init_b = [float(n["b"]) / (gain * v) for n, v in zip(noise_init, var_unit, strict=True)]
    return {
        "mode": {
            "gaussian": "gaussian",
            "poisson": "poisson",
            "poissongaussian": "poissongaussian",
        }.get(mode, "none"),
        "channels": len(var_unit),
        "alpha_unit": alpha_unit,
        "beta_unit": var_unit,
        "init_a": [0.0] * len(var_unit),
        "init_b": init_b,
        "gain": gain,
        "var_floor": [VAR_FLOOR_REL * v for v in var_unit],
    }


def build_blindspot_model(
    *,
    channels: int = 1,
    joint: str = "single",
    mode: str = "poissongaussian",
    enc_filters: int = 32,
    dec_filters: int = 64,
    levels: int = 3,
    noise_init: Sequence[dict] | None = None,
    noise_gain: float = 10.0,
    mixed_bfloat16: bool = False,
) -> keras.Model:
    """Build the blind-spot model (see module docstring for inputs and outputs).

    ``noise_init``: per-channel noise estimates (x01 units) that set the units of ``std``
    and of the noise parameters; default: unit variance. ``mixed_bfloat16`` runs the
    vertical U-Net in bfloat16 (the head and the outputs stay float32).
    Raises ``ValueError`` for an unknown mode/joint variant or bad sizes.
    """
    if mode not in ALL_MODES:
        raise ValueError(f"Unknown mode {mode!r}; choose one of {ALL_MODES}.")
    if mode == SUPERVISED and joint == "cross":
        raise ValueError(
            "mode 'supervised' sees every centre pixel already: use joint 'blind' or 'single'."
        )
    if joint not in JOINT_VARIANTS:
        raise ValueError(f"Unknown joint variant {joint!r}; choose one of {JOINT_VARIANTS}.")
    if (
        channels < 1
        or (joint == "single" and channels != 1)
        or (joint != "single" and channels < 2)
    ):
        raise ValueError(
            f"joint={joint!r} does not fit {channels} channel(s): use 'single' for 1, 'blind' or 'cross' for 2+."
        )
    if levels < 1 or enc_filters < 1 or dec_filters < 1:
        raise ValueError("levels, enc_filters and dec_filters must all be positive.")
    if noise_init is None:
        noise_init = [{"a": 0.0, "b": 1.0, "mean_ref": 0.5, "var_ref": 1.0}] * channels
    if len(noise_init) != channels:
        raise ValueError(f"noise_init has {len(noise_init)} entries for {channels} channel(s).")
    std_unit = [max(float(n["var_ref"]), 1e-30) ** 0.5 for n in noise_init]

    with _dtype_policy("mixed_bfloat16" if mixed_bfloat16 else "float32"):
        branch = build_vertical_unet(channels, enc_filters, dec_filters, levels)
    inp = keras.Input((None, None, channels), name="x01")
    feats = [
        Rot90((4 - k) % 4, name=f"unrot{k}")(branch(Rot90(k, name=f"rot{k}")(inp)))
        for k in range(4)
    ]
    feats = keras.layers.Concatenate(name="rotations")(feats)
    if mode == SUPERVISED:  # not blind: the head also sees the centre pixels
        feats = keras.layers.Concatenate(name="with_centre")([feats, inp])
    if joint == "cross":
        # shared first head layer on the blind features, plus per output channel a 1x1
        # term from the *other* channels' raw centre values (never its own)
        shared = keras.layers.Conv2D(
            4 * dec_filters, 1, kernel_initializer="he_normal", name="head_1"
        )(feats)
        locs, stds = [], []
        for c in range(channels):
            others = [o for o in range(channels) if o != c]
            centre = SelectChannels(others, name=f"other_centre{c}")(inp)
            centre_term = keras.layers.Conv2D(
                4 * dec_filters,
                1,
                use_bias=False,
                kernel_initializer="he_normal",
                name=f"head{c}_cross",
            )(centre)
            h = keras.layers.Add(name=f"head{c}_1")([shared, centre_term])
            h = keras.layers.LeakyReLU(negative_slope=0.1, name=f"head{c}_1_act")(h)
            loc_c, std_c = _head_tail(h, 1, dec_filters, f"head{c}")
            locs.append(loc_c)
            stds.append(std_c)
        loc = keras.layers.Concatenate(name="loc")(locs)
        std_raw = keras.layers.Concatenate(name="std_raw")(stds)
    else:
        h = keras.layers.Conv2D(4 * dec_filters, 1, kernel_initializer="he_normal", name="head_1")(
            feats
        )
        h = keras.layers.LeakyReLU(negative_slope=0.1, name="head_1_act")(h)
        loc, std_raw = _head_tail(h, channels, dec_filters, "head")
    loc = keras.layers.Add(name="loc_plus_ring_mean")([loc, RingMean(name="ring_mean")(inp)])
    std = ChannelScale(std_unit, name="std")(std_raw)
    noise_var = NoiseVariance(**noise_layer_kwargs(mode, noise_init, noise_gain), name="noise_var")(
        loc
    )
    out = keras.layers.Concatenate(name="loc_std_noisevar", dtype="float32")([loc, std, noise_var])
    return keras.Model(inp, out, name=f"blindspot_{mode}_{joint}")


def make_blindspot_loss(
    mode: str,
    channels: int,
    var_unit: Sequence[float],
    reg: float = 0.0,
    *,
    per_scan_noise: bool = False,
):
    """Loss ``loss_fn(targets, outputs)`` of a blind-spot model (a float32 scalar).

    ``targets``: ``(B, Y, X, 2C)`` = noisy x01 values then a 0/1 validity mask (0 for
    saturated pixels, which are left out). ``outputs``: the model's ``(B, Y, X, 3C)``.
    ``per_scan_noise`` (calibrated modes): ``targets`` carry 2C more channels, the noise
    law ``n^2 = a * mu + b`` (x01 units) fitted on the scan each crop came from, used
    instead of the model's own noise output (training scans of different doses); for
    ``supervised`` it weights each pixel's squared error by ``1 / n^2`` at the clean
    value, so low-dose scans do not dominate the loss.
    Per pixel (``t`` a total variance, variances divided by the channel's ``var_unit``
    so values are O(1)):

    - ``mse``: (y - mu)^2; ``supervised``: the same with ``y`` the clean values
    - ``uncalib``: (y - mu)^2 / t + log t,  t = s^2 + 1e-3 (relative floor)
    - calibrated: (y - mu)^2 / t + log t + reg * |s| / s_unit,  t = s^2 + n^2
    """
    if mode not in ALL_MODES:
        raise ValueError(f"Unknown mode {mode!r}; choose one of {ALL_MODES}.")
    if per_scan_noise and mode not in (*CALIBRATED_MODES, SUPERVISED):
        raise ValueError(
            f"Per-scan noise needs a calibrated mode {CALIBRATED_MODES} or supervised, got {mode!r}."
        )
    var_unit_t = ops.convert_to_tensor([float(v) for v in var_unit], dtype="float32")
    std_unit_t = ops.sqrt(var_unit_t)
    var_floor_t = var_unit_t * VAR_FLOOR_REL
    c = channels

    def loss_fn(targets, outputs):
        targets = ops.cast(targets, "float32")
        outputs = ops.cast(outputs, "float32")
        y, valid = targets[..., :c], targets[..., c : 2 * c]
        mu, s, n2 = outputs[..., :c], outputs[..., c : 2 * c], outputs[..., 2 * c : 3 * c]
        if per_scan_noise:  # supervised: the noise variance at the clean value y
            a, b = targets[..., 2 * c : 3 * c], targets[..., 3 * c : 4 * c]
            level = y if mode == SUPERVISED else mu
            n2 = ops.maximum(a * ops.maximum(level, 0.0) + b, var_floor_t)
        err2 = ops.square(y - mu) / var_unit_t
        if mode == SUPERVISED and per_scan_noise:  # each scan's error in its own noise units
            per_pixel = ops.square(y - mu) / n2
        elif mode in ("mse", SUPERVISED):
            per_pixel = err2
        else:
            total = ops.square(s) / var_unit_t + (UNCALIB_EPS_REL if mode == "uncalib" else 0.0)
            if mode != "uncalib":
                total = total + n2 / var_unit_t
            total = ops.maximum(total, 1e-6)
            per_pixel = err2 / total + ops.log(total)
            if mode != "uncalib" and reg:
                per_pixel = per_pixel + reg * ops.abs(s) / std_unit_t
        return ops.sum(per_pixel * valid) / ops.maximum(ops.sum(valid), 1.0)

    return loss_fn
