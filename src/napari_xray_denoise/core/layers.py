"""Keras 3 layers of the blind-spot network: rotations, the one-row shift, channel
scaling and the learnable noise-variance layer.

All tensors are channels-last ``(batch, y, x, channel)`` float tensors holding ``x01``
values (counts divided by the model's ``scale``). Every custom layer is registered with
``keras.saving.register_keras_serializable`` so ``.keras`` files load without extra code.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._keras import REGISTER_PACKAGE, keras

ops = keras.ops

NOISE_MODES = ("none", "gaussian", "poisson", "poissongaussian")


def _floats(values: float | Sequence[float], n: int) -> list[float]:
    """Return ``values`` as a list of ``n`` Python floats (a scalar is repeated)."""
    if isinstance(values, (int, float)):
        return [float(values)] * n
    out = [float(v) for v in values]
    if len(out) != n:
        raise ValueError(f"Expected {n} per-channel values, got {len(out)}.")
    return out


@keras.saving.register_keras_serializable(package=REGISTER_PACKAGE)
class Rot90(keras.layers.Layer):
    """Rotate a ``(B, Y, X, C)`` tensor by ``k`` quarter turns, like ``np.rot90(a, k, axes=(1, 2))``."""

    def __init__(self, k: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.k = int(k) % 4

    def call(self, x):
        for _ in range(self.k):
            x = ops.flip(ops.transpose(x, (0, 2, 1, 3)), axis=1)
        return x

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, w, h, c) if self.k % 2 else (b, h, w, c)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


@keras.saving.register_keras_serializable(package=REGISTER_PACKAGE)
class ShiftDown(keras.layers.Layer):
    """Shift a ``(B, Y, X, C)`` tensor down by ``rows``: zero rows on top, bottom rows cropped.

    After the shift, output row ``i`` holds what was computed for row ``i - rows``; this is
    how the blind-spot network moves its receptive field strictly above each pixel.
    """

    def __init__(self, rows: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.rows = int(rows)

    def call(self, x):
        padded = ops.pad(x, ((0, 0), (self.rows, 0), (0, 0), (0, 0)))
        return padded[:, : ops.shape(x)[1], :, :]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rows": self.rows}


@keras.saving.register_keras_serializable(package=REGISTER_PACKAGE)
class ChannelScale(keras.layers.Layer):
    """Multiply each channel by a fixed factor (non-trainable); used to give ``std`` units."""

    def __init__(self, factors: Sequence[float] = (1.0,), **kwargs):
        super().__init__(**kwargs)
        self.factors = [float(f) for f in factors]

    def call(self, x):
        return x * ops.convert_to_tensor(self.factors, dtype=x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "factors": self.factors}


@keras.saving.register_keras_serializable(package=REGISTER_PACKAGE)
class SelectChannels(keras.layers.Layer):
    """Keep the listed channels of a ``(B, Y, X, C)`` tensor, in the given order."""

    def __init__(self, indices: Sequence[int] = (0,), **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(i) for i in indices]

    def call(self, x):
        return ops.take(x, self.indices, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], len(self.indices))

    def get_config(self):
        return {**super().get_config(), "indices": self.indices}


@keras.saving.register_keras_serializable(package=REGISTER_PACKAGE)
class RingMean(keras.layers.Layer):
    """Per channel, the mean of the 8 neighbours of each pixel (the centre excluded).

    A blind-spot-safe baseline for the prior mean: the network only learns the residual.
    At image borders only the neighbours inside the image are averaged (normalised
    convolution), so there is no dark rim.
    """

    def call(self, x):
        x = ops.cast(x, "float32")
        kernel = ops.convert_to_tensor(
            [[1.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0]], dtype="float32"
        )[:, :, None, None]
        channels = [x[..., c : c + 1] for c in range(x.shape[-1])]
        sums = [ops.conv(ch, kernel, padding="same") for ch in channels]
        counts = ops.conv(ops.ones_like(channels[0]), kernel, padding="same")
        return ops.concatenate(sums, axis=-1) / counts

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=REGISTER_PACKAGE)
class NoiseVariance(keras.layers.Layer):
    """Per-pixel noise variance ``n^2`` (x01 units squared) from the prior mean ``loc``.

    One set of learnable parameters per channel (a diagonal noise model):

    - ``gaussian``:        n^2 = beta_unit * exp(g * p_b)
    - ``poisson``:         n^2 = max(loc, mu_floor) * alpha_unit * exp(g * p_a)
    - ``poissongaussian``: n^2 = max(max(loc, mu_floor) * alpha_unit * exp(g * p_a)
                                     + beta_unit * g * p_b, var_floor)
    - ``none``:            n^2 = 0 (modes ``mse`` and ``uncalib``)

    ``alpha_unit`` / ``beta_unit`` come from a noise estimate on the training data, so the
    raw parameters start near 0 (resp. ``beta0 / (g * beta_unit)``) and are O(1). The gain
    ``g`` (default 10) lets Adam move them ~10x faster than the network weights: with the
    source's parametrisation (softplus(a - 4) + 1e-3 in x01 units) a 16-bit scan's noise
    (variance ~1e-7) sits far below the 1e-3 floor and would need ~10^4 steps to reach.
    """

    def __init__(
        self,
        mode: str = "none",
        channels: int = 1,
        alpha_unit: float | Sequence[float] = 1.0,
        beta_unit: float | Sequence[float] = 1.0,
        init_a: float | Sequence[float] = 0.0,
        init_b: float | Sequence[float] = 0.0,
        gain: float = 10.0,
        mu_floor: float = 1e-4,
        var_floor: float | Sequence[float] = 1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mode not in NOISE_MODES:
            raise ValueError(f"Unknown noise mode {mode!r}; choose one of {NOISE_MODES}.")
        self.mode = mode
        self.channels = int(channels)
        self.alpha_unit = _floats(alpha_unit, self.channels)
        self.beta_unit = _floats(beta_unit, self.channels)
        self.init_a = _floats(init_a, self.channels)
        self.init_b = _floats(init_b, self.channels)
        self.gain = float(gain)
        self.mu_floor = float(mu_floor)
        self.var_floor = _floats(var_floor, self.channels)

    def build(self, input_shape):
        const = keras.initializers.Constant
        self.p_a = self.add_weight(
            name="p_a",
            shape=(self.channels,),
            initializer=const(self.init_a),
            trainable=self.mode in ("poisson", "poissongaussian"),
            dtype="float32",
        )
        self.p_b = self.add_weight(
            name="p_b",
            shape=(self.channels,),
            initializer=const(self.init_b),
            trainable=self.mode in ("gaussian", "poissongaussian"),
            dtype="float32",
        )

    def alpha(self):
        """Poisson factor per channel (x01 units): var = alpha * mean."""
        return ops.convert_to_tensor(self.alpha_unit) * ops.exp(
            ops.clip(self.gain * self.p_a, -40.0, 40.0)
        )

    def beta(self):
        """Signal-independent variance per channel (x01 units squared)."""
        if self.mode == "gaussian":
            return ops.convert_to_tensor(self.beta_unit) * ops.exp(
                ops.clip(self.gain * self.p_b, -40.0, 40.0)
            )
        if self.mode == "poissongaussian":
            return ops.convert_to_tensor(self.beta_unit) * self.gain * self.p_b
        return ops.zeros((self.channels,))

    def call(self, loc):
        loc = ops.cast(loc, "float32")
        if self.mode == "none":
            return ops.zeros_like(loc)
        if self.mode == "gaussian":
            return ops.zeros_like(loc) + self.beta()
        mean = ops.maximum(loc, self.mu_floor)
        var = mean * self.alpha()
        if self.mode == "poissongaussian":
            var = var + self.beta()
        return ops.maximum(var, ops.convert_to_tensor(self.var_floor))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "mode": self.mode,
            "channels": self.channels,
            "alpha_unit": self.alpha_unit,
            "beta_unit": self.beta_unit,
            "init_a": self.init_a,
            "init_b": self.init_b,
            "gain": self.gain,
            "mu_floor": self.mu_floor,
            "var_floor": self.var_floor,
        }


@keras.saving.register_keras_serializable(package=REGISTER_PACKAGE)
class NoiseNormalise(keras.layers.Layer):
    """``[u, s]`` -> ``[u, (u - local mean of u) / s, s]``: the middle channel is the
    detail in units of the noise, O(1) for noise at every dose, so the network sees
    noise at one scale whether ``s`` is 0.003 (high dose) or 0.07 (low dose).

    With a guide (the other energy of the same scan, ``[u, s, g, s_g]``) the guide's
    level, detail in its own noise units and noise level follow: ``[..., g, (g - local
    mean of g) / s_g, s_g]``; a missing guide (``g = s_g = 0``) gives zeros."""

    def __init__(self, window: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.window = int(window)

    def call(self, x):
        u, s = x[..., :1], x[..., 1:2]
        mean = ops.average_pool(u, self.window, 1, "same")  # "same" excludes the padding
        feats = [u, (u - mean) / s, s]
        if x.shape[-1] == 4:
            g, s_g = x[..., 2:3], x[..., 3:4]
            g_mean = ops.average_pool(g, self.window, 1, "same")
            feats += [g, ops.divide_no_nan(g - g_mean, s_g), s_g]
        return ops.concatenate(feats, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 6 if input_shape[-1] == 4 else 3)

    def get_config(self):
        return {**super().get_config(), "window": self.window}


@keras.saving.register_keras_serializable(package=REGISTER_PACKAGE)
class ScaledResidual(keras.layers.Layer):
    """``([u, s], r)`` -> ``u + s * r``: the network predicts the correction in noise units."""

    def call(self, inputs):
        x, r = inputs
        return x[..., :1] + x[..., 1:2] * ops.cast(r, x.dtype)

    def compute_output_shape(self, input_shapes):
        return (*input_shapes[0][:-1], 1)


def custom_objects() -> dict[str, type]:
    """The custom layer classes of this module, by class name."""
    return {
        cls.__name__: cls
        for cls in (
            Rot90,
            ShiftDown,
            ChannelScale,
            SelectChannels,
            RingMean,
            NoiseVariance,
            NoiseNormalise,
            ScaledResidual,
        )
    }
