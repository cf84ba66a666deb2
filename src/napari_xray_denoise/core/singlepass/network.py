"""The single-pass denoising network (the default model): a noise-conditioned U-Net.

Input ``(B, Y, X, 2)``: channel 0 the scan in the network domain ``u`` (normalised
generalized Anscombe, see ``vst``), channel 1 its noise level ``sigma_u`` as a map
(FFDNet-style conditioning: one network for every dose and bit depth). The network sees
``u``, the local detail in noise units ``(u - mean5x5(u)) / sigma_u`` and ``sigma_u``, and
predicts a correction in noise units: output ``(B, Y, X, 1)`` = ``u + sigma_u * r``. Both
make the task the same at every dose (at high dose the noise is 0.3% of ``u``).

Guided variant (``guided=True``, one model for both energies that also sees the other
one): input ``(B, Y, X, 4)`` = ``[u, sigma_u, g, sigma_g]``, ``g`` the partner energy
of the same scan in its own network domain (its noise is independent: edges both
energies share stand out of the noise twice); ``g = sigma_g = 0`` when a scan has one
energy. :func:`guided_from` turns a trained single-energy model into a guided one that
starts out computing exactly the same thing (the guide's weights start at zero).

Body (after FFDNet, Zhang et al. 2018, and the U-Net): a 2x2 stride-2 convolution packs
each 2x2 block into features (the pixel-unshuffle of FFDNet, a quarter of the positions),
a three-level U-Net with stride-2 downsampling and transposed-convolution upsampling, and
a transposed convolution back to full resolution. ``Y`` and ``X`` must be multiples of 8
(:func:`pad_to_multiple`). One pass per image: no rotations, no blind spot.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._keras import keras
from ..layers import NoiseNormalise, ScaledResidual

#: multiple that input height and width must have
SIZE_MULTIPLE = 8
DEFAULT_WIDTHS = (32, 64, 128)
#: the training loss's pixel weights are ``LOSS_WEIGHT_FLOOR + level^2`` (``weighted_loss``)
LOSS_WEIGHT_FLOOR = 0.05


def _block(x, filters: int, n: int, name: str, dtype):
    for i in range(n):
        x = keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu", name=f"{name}_conv{i}", dtype=dtype
        )(x)
    return x


def build_singlepass_model(
    widths: Sequence[int] = DEFAULT_WIDTHS,
    *,
    convs_per_level: int = 2,
    mixed_bfloat16: bool = False,
    guided: bool = False,
) -> keras.Model:
    """The noise-conditioned U-Net; ``widths`` are the feature counts at 1/2, 1/4, 1/8
    resolution; ``guided``: a second input pair, the partner energy (module docstring)."""
    if len(widths) != 3 or min(int(w) for w in widths) < 1:
        raise ValueError(f"widths must be three positive feature counts, got {tuple(widths)}.")
    w1, w2, w3 = (int(w) for w in widths)
    dt = "mixed_bfloat16" if mixed_bfloat16 else "float32"
    inp = keras.Input((None, None, 4 if guided else 2), name="u_and_sigma")
    feats = NoiseNormalise(name="noise_normalise")(inp)
    x = keras.layers.Conv2D(w1, 2, strides=2, activation="relu", name="unshuffle", dtype=dt)(feats)
    s1 = _block(x, w1, convs_per_level, "enc1", dt)
    x = keras.layers.Conv2D(w2, 2, strides=2, activation="relu", name="down2", dtype=dt)(s1)
    s2 = _block(x, w2, convs_per_level, "enc2", dt)
    x = keras.layers.Conv2D(w3, 2, strides=2, activation="relu", name="down3", dtype=dt)(s2)
    x = _block(x, w3, convs_per_level + 1, "mid", dt)
    x = keras.layers.Conv2DTranspose(w2, 2, strides=2, name="up2", dtype=dt)(x)
    x = keras.layers.Add(name="skip2", dtype=dt)([x, s2])
    x = _block(x, w2, convs_per_level, "dec2", dt)
    x = keras.layers.Conv2DTranspose(w1, 2, strides=2, name="up1", dtype=dt)(x)
    x = keras.layers.Add(name="skip1", dtype=dt)([x, s1])
    x = _block(x, w1, convs_per_level, "dec1", dt)
    residual = keras.layers.Conv2DTranspose(
        1, 2, strides=2, name="shuffle", dtype=dt, kernel_initializer="zeros"
    )(x)
    out = ScaledResidual(name="u_denoised", dtype="float32")([inp, residual])
    return keras.Model(inp, out, name="singlepass_unet")


def weighted_loss(inputs, targets, outputs):
    """The training loss on simulated pairs (any Keras backend): the mean over samples of
    log(per-sample mean of (out - target)^2 / sigma^2 * (0.05 + target^2)).

    Dividing by the noise variance makes every dose weigh the same; ``0.05 + target^2``
    follows the squared error in counts (``d counts ~ u du``; the floor keeps dark regions
    in the objective); the log of the per-crop mean is the mean PSNR gain, so crops where
    the network can gain 15 dB (smooth, low dose) count as much as those where it can gain
    3 dB (a plain mean let textured high-dose crops drown them: phantom bags stayed 3-4 dB
    under BM3D after 4600 steps)."""
    ops = keras.ops
    sigma = inputs[..., 1:2]
    err = ops.cast(outputs, "float32") - targets
    weights = LOSS_WEIGHT_FLOOR + ops.square(targets)
    per_sample = ops.mean(ops.square(err / sigma) * weights, axis=(1, 2, 3))
    return ops.mean(ops.log(per_sample + 1e-6))


def gain_db(inputs: np.ndarray, targets: np.ndarray, outputs: np.ndarray) -> float:
    """Median over samples of 10 log10(MSE noisy / MSE denoised) in the network domain."""
    noisy = np.mean(np.square(inputs[..., :1] - targets), axis=(1, 2, 3))
    den = np.mean(np.square(outputs - targets), axis=(1, 2, 3))
    return float(np.median(10 * np.log10(noisy / np.maximum(den, 1e-20))))


def is_guided(model: keras.Model) -> bool:
    """Whether ``model`` takes the partner energy as a guide (four input channels)."""
    return int(model.inputs[0].shape[-1]) == 4


def guided_from(model: keras.Model) -> keras.Model:
    """A guided network with ``model``'s weights (same widths): the guide's input weights
    are zero, so it computes what ``model`` does until training teaches it the guide."""
    if is_guided(model):
        raise ValueError("the model is guided already.")
    widths = [int(model.get_layer(n).filters) for n in ("unshuffle", "down2", "down3")]
    convs = sum(1 for layer in model.layers if layer.name.startswith("enc1_conv"))
    guided = build_singlepass_model(widths, convs_per_level=convs, guided=True)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        target = guided.get_layer(layer.name)
        if layer.name == "unshuffle":
            kernel = np.zeros(target.get_weights()[0].shape, np.float32)
            kernel[:, :, : weights[0].shape[2], :] = weights[0]
            weights = [kernel, *weights[1:]]
        target.set_weights(weights)
    return guided
