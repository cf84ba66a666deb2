"""The Aggregated Multiscale Self-Supervised Denoising (AMSSD) network, loss and optimiser.

Adapted from the source thesis (3-channel 8-bit images) to 1- or 2-channel 16-bit scans.
The network is fully convolutional (no pooling: any input size), channels-last: input
and output are float32 ``(B, Y, X, C)`` holding ``x01`` values (counts divided by the
model's ``scale``, see ``data.choose_scale``), ``C`` = 1 or 2 (low, high energy).

Architecture (``f = width``, the source uses 64)::

    stem   : 3x3 conv dilation 2 (f) -> 1x1 (f/2) -> 1x1 (f/4)
    stage k: concat(den(x), runt(x)) -> 1x1 conv to C channels      (k = 1, 2)
    den    : 5x5 -> 3x3 -> 1x1 convs (f), then three parallel branches
             - activation mix: relu 3x3, swish 5x5, mish 7x7 convs (7 filters each),
               concatenated, 3x3 conv (f)
             - residual: three parallel pairs of residual blocks (3x3 convs with
               dilation 1, 2 and 3: our choice, the description does not say how the
               pairs differ), summed
             - dense residual: a residual dense block (3 densely connected 3x3 convs of
               f/2 filters, 1x1 fusion to f, residual add)
             concatenated with x, final 3x3 conv dilation 2 (f)
    runt   : funnel 3x3 (f) -> 5x5 (f/2) -> 3x3 (f/4) -> 5x5 (f/8), back up with 1x1 convs
             on concatenations (f/4, f/2, f), plus a residual add of the first funnel conv

Stage 1 reads the stem features, stage 2 the C-channel image made by stage 1. With
``residual=True`` (default, not in the source) each stage *adds* its 1x1 output to its
image input (the network input for stage 1), and that 1x1 conv starts at zero, so a new
model is the identity: on 16-bit scans, where noise is ~0.1-1 % of the range, the network
then only has to learn a small correction instead of rebuilding the signal level.

Loss: ``0.25 MAE + 0.85 (1 - SSIM) + 0.3 (100 - PSNR) / 100`` on [0, 1] images, PSNR
capped at 100 dB. Optimiser: Adam with gradient centralisation. Only plain Keras layers
are used, so ``.keras`` files need no custom objects except the registered optimiser.
"""

from __future__ import annotations

import numpy as np

from .._backend import REGISTER_PACKAGE, keras, tf
from ..blindspot.denoiser import Denoiser

layers = keras.layers

#: filters of each conv of the activation-mix branch (source value, independent of width)
MIX_FILTERS = 7
#: dilations of the three parallel pairs of residual blocks in ``den``
RESIDUAL_DILATIONS = (1, 2, 3)
#: loss weights of the source: MAE, 1 - SSIM, (100 - PSNR) / 100
LOSS_WEIGHTS = (0.25, 0.85, 0.3)
#: the MSE floor of the PSNR term, i.e. PSNR is capped at 100 dB (identical images: loss 0)
PSNR_MSE_FLOOR = 1e-10
#: receptive-field radius (pixels) of the network: tiles should overlap by about twice this
RECEPTIVE_RADIUS = 36


# ----------------------------------------------------------------------------- network
# ``dt`` is the dtype policy of the body layers: "float32", or "mixed_bfloat16" (bfloat16
# compute, float32 weights). Heads and residual adds always run in float32.


def _conv(
    x, filters: int, kernel: int, name: str, dt: str, *, dilation: int = 1, activation="relu"
):
    return layers.Conv2D(
        filters,
        kernel,
        padding="same",
        dilation_rate=dilation,
        activation=activation,
        kernel_initializer="he_normal" if activation == "relu" else "glorot_uniform",
        name=name,
        dtype=dt,
    )(x)


def _residual_block(x, filters: int, dilation: int, name: str, dt: str):
    """Two 3x3 convs (dilated) with a skip connection, ReLU after the add."""
    y = _conv(x, filters, 3, f"{name}_a", dt, dilation=dilation)
    y = _conv(y, filters, 3, f"{name}_b", dt, dilation=dilation, activation=None)
    y = layers.Add(name=f"{name}_add", dtype=dt)([x, y])
    return layers.Activation("relu", name=f"{name}_act", dtype=dt)(y)


def _dense_residual_block(x, filters: int, growth: int, name: str, dt: str):
    """Residual dense block: 3 densely connected 3x3 convs, 1x1 fusion, residual add."""
    features = [x]
    for i in range(3):
        inp = (
            features[0] if i == 0 else layers.Concatenate(name=f"{name}_cat{i}", dtype=dt)(features)
        )
        features.append(_conv(inp, growth, 3, f"{name}_conv{i}", dt))
    cat = layers.Concatenate(name=f"{name}_cat3", dtype=dt)(features)
    fused = _conv(cat, filters, 1, f"{name}_fuse", dt, activation=None)
    return layers.Add(name=f"{name}_add", dtype=dt)([x, fused])


def _den(x, f: int, name: str, dt: str):
    """The ``den`` block: 5x5/3x3/1x1 convs, three parallel branches, dilated 3x3 conv."""
    a = _conv(x, f, 5, f"{name}_c5", dt)
    a = _conv(a, f, 3, f"{name}_c3", dt)
    a = _conv(a, f, 1, f"{name}_c1", dt)
    mix = [
        _conv(a, MIX_FILTERS, k, f"{name}_mix_{act}", dt, activation=act)
        for act, k in (("relu", 3), ("silu", 5), ("mish", 7))
    ]
    mix = _conv(
        layers.Concatenate(name=f"{name}_mix_cat", dtype=dt)(mix), f, 3, f"{name}_mix_out", dt
    )
    pairs = []
    for d in RESIDUAL_DILATIONS:
        r = _residual_block(a, f, d, f"{name}_res{d}_1", dt)
        pairs.append(_residual_block(r, f, d, f"{name}_res{d}_2", dt))
    res = layers.Add(name=f"{name}_res_sum", dtype=dt)(pairs)
    dense = _dense_residual_block(a, f, max(2, f // 2), f"{name}_dense", dt)
    cat = layers.Concatenate(name=f"{name}_cat", dtype=dt)([x, mix, res, dense])
    return _conv(cat, f, 3, f"{name}_out", dt, dilation=2)


def _runt(x, f: int, name: str, dt: str):
    """The ``runt`` block: a 3x3/5x5 funnel f..f/8 and back up with 1x1 convs, residual add."""
    sizes = [f, max(2, f // 2), max(2, f // 4), max(2, f // 8)]
    down = []
    y = x
    for i, (filters, k) in enumerate(zip(sizes, (3, 5, 3, 5), strict=True)):
        y = _conv(y, filters, k, f"{name}_down{i}", dt)
        down.append(y)
    for i in (2, 1, 0):  # back up: f/4, f/2, f
        y = layers.Concatenate(name=f"{name}_cat{i}", dtype=dt)([y, down[i]])
        y = _conv(y, sizes[i], 1, f"{name}_up{i}", dt)
    return layers.Add(name=f"{name}_add", dtype=dt)([y, down[0]])


def _stage(features, image, channels: int, f: int, residual: bool, name: str, dt: str):
    """concat(den, runt) -> 1x1 conv to ``channels``; added to ``image`` when residual."""
    cat = layers.Concatenate(name=f"{name}_cat", dtype=dt)(
        [_den(features, f, f"{name}_den", dt), _runt(features, f, f"{name}_runt", dt)]
    )
    out = layers.Conv2D(
        channels,
        1,
        name=f"{name}_head",
        kernel_initializer="zeros" if residual else "glorot_uniform",
        dtype="float32",
    )(cat)
    return layers.Add(name=f"{name}_residual", dtype="float32")([image, out]) if residual else out


def build_amssd_model(
    channels: int = 1,
    width: int = 24,
    *,
    residual: bool = True,
    mixed_bfloat16: bool = False,
    name: str = "amssd",
) -> keras.Model:
    """The AMSSD network for ``channels`` (1 or 2) image channels and base width ``width``.

    Input and output: float32 ``(B, Y, X, channels)`` x01 images of any size ``Y, X``.
    ``width`` = f of the module docstring (source: 64; 16-32 for a CPU). ``residual``: each
    stage predicts a correction added to its image input (identity at start).
    ``mixed_bfloat16``: the body computes in bfloat16 (faster on CPUs with AMX/AVX512-BF16);
    the 1x1 heads and the residual adds stay float32, so 16-bit detail of the input is not
    rounded away. Weights are float32 and interchangeable between the two variants.
    Raises ``ValueError`` for other channel counts or a width below 8.
    """
    if channels not in (1, 2):
        raise ValueError(f"AMSSD models take 1 or 2 channels (low, high energy), got {channels}.")
    if int(width) < 8:
        raise ValueError(f"width must be at least 8 filters, got {width}.")
    f = int(width)
    dt = "mixed_bfloat16" if mixed_bfloat16 else "float32"
    inp = keras.Input((None, None, channels), name="x01")
    stem = _conv(inp, f, 3, "stem_dil", dt, dilation=2)
    stem = _conv(stem, max(2, f // 2), 1, "stem_1x1a", dt)
    stem = _conv(stem, max(2, f // 4), 1, "stem_1x1b", dt)
    image = _stage(stem, inp, channels, f, residual, "stage1", dt)
    image = _stage(image, image, channels, f, residual, "stage2", dt)
    return keras.Model(inp, image, name=name)


# -------------------------------------------------------------------------------- loss
@keras.saving.register_keras_serializable(package=REGISTER_PACKAGE)
def amssd_loss(y_true, y_pred):
    """The source's loss on x01 images ``(B, Y, X, C)`` (Y, X >= 11): a scalar tensor.

    ``0.25 * MAE + 0.85 * (1 - SSIM) + 0.3 * (100 - PSNR) / 100`` with SSIM from
    ``tf.image.ssim`` (max_val 1, 11x11 Gaussian window, averaged over channels and the
    batch) and PSNR per image ``-10 log10(MSE + 1e-10)`` (capped at 100 dB, so identical
    images give 0 and the gradient stays finite), averaged over the batch.
    """
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    diff = y_pred - y_true
    mae = tf.reduce_mean(tf.abs(diff))
    ssim = tf.reduce_mean(tf.image.ssim(y_true, y_pred, max_val=1.0))
    mse = tf.reduce_mean(tf.square(diff), axis=[1, 2, 3])
    psnr = tf.reduce_mean(-10.0 * tf.math.log(mse + PSNR_MSE_FLOOR) / tf.math.log(10.0))
    w_mae, w_ssim, w_psnr = LOSS_WEIGHTS
    return w_mae * mae + w_ssim * (1.0 - ssim) + w_psnr * (100.0 - psnr) / 100.0


# --------------------------------------------------------------------------- optimiser
def centralize_gradient(grad):
    """Gradient centralisation: subtract the mean over all axes but the last (rank > 1).

    For a conv kernel ``(kh, kw, c_in, c_out)`` every output filter's gradient gets zero
    mean; biases and other rank-1 (or scalar) gradients, and ``None``, pass unchanged.
    """
    if grad is None or len(grad.shape) <= 1:
        return grad
    axes = list(range(len(grad.shape) - 1))
    return grad - tf.reduce_mean(grad, axis=axes, keepdims=True)


@keras.saving.register_keras_serializable(package=REGISTER_PACKAGE)
class GradientCentralizedAdam(keras.optimizers.Adam):
    """Adam whose gradients are centralised (:func:`centralize_gradient`) before each update.

    Works with ``apply``/``apply_gradients`` and ``model.fit``; the config is Adam's.
    """

    def apply(self, grads, trainable_variables=None):
        return super().apply([centralize_gradient(g) for g in grads], trainable_variables)


def make_amssd_optimizer(learning_rate: float = 1e-4) -> GradientCentralizedAdam:
    """Adam with gradient centralisation at ``learning_rate`` (source: 1e-4)."""
    return GradientCentralizedAdam(learning_rate=learning_rate)


# --------------------------------------------------------------------------- inference
class AmssdDenoiser(Denoiser):
    """A :class:`Denoiser` whose network output is the denoised image (no posterior step).

    ``metadata["method"] == "amssd"``; ``denoise`` is the inherited tiled inference
    (counts -> x01 -> network -> counts, saturated pixels passed through).
    """

    METHOD = "amssd"

    def _bfloat16_twin(self) -> keras.Model:
        """The same network with a mixed-bfloat16 body, sharing the weights' values."""
        if self._twin is None:
            arch = self.metadata["architecture"]
            twin = build_amssd_model(
                self.channels, arch["width"], residual=arch["residual"], mixed_bfloat16=True
            )
            twin.set_weights(self.model.get_weights())
            self._twin = twin
        return self._twin

    def posterior(
        self, y: np.ndarray, raw: np.ndarray, valid: np.ndarray, noise: str
    ) -> np.ndarray:
        c = y.shape[-1]
        self.last_noise.extend({"model": "none"} for _ in range(c))
        return raw[..., :c]


__all__ = [
    "AmssdDenoiser",
    "GradientCentralizedAdam",
    "amssd_loss",
    "build_amssd_model",
    "centralize_gradient",
    "make_amssd_optimizer",
]
