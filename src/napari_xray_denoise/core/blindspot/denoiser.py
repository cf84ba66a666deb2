"""``Denoiser``: a trained blind-spot network plus its metadata, applied to whole scans.

``denoise`` works on scans of any size and aspect (no resizing): counts -> x01 -> tiled
network at one fixed tile shape -> per-pixel prior mean/std and noise variance ->
Bayesian posterior mean -> counts. Saturated pixels pass through unchanged.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .._backend import keras, tf
from ..data import as_chw_counts, saturated_mask, saturation_levels
from ..model_file import read_model_file_of, save_model_file
from ..tiling import predict_tiled
from .noisefit import affine_to_counts, fit_uncalib_noise, posterior_mean

PRECISIONS = ("auto", "float32", "bfloat16")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bfloat16() -> bool:
    """True on Linux CPUs with AMX-BF16 or AVX512-BF16 (bfloat16 convolutions ~2x faster)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_batch_size(batch_size: int | None) -> int:
    """``None``: 1 tile per batch on CPU (same speed, a third of the memory of 4), 8 on GPU."""
    if batch_size is None:
        return 8 if tf.config.list_logical_devices("GPU") else 1
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    return int(batch_size)


def resolve_precision(precision: str) -> str:
    """``"auto"``: bfloat16 on a CPU-only machine with native bfloat16, else float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if precision != "auto":
        return precision
    if tf.config.list_logical_devices("GPU"):
        return "float32"
    return "bfloat16" if cpu_has_native_bfloat16() else "float32"


#: the uncalib prior-variance floor, relative to the fitted noise variance at the mean level
_UNCALIB_PRIOR_FLOOR_REL = 1e-4


class Denoiser:
    """A trained model (``keras.Model``) and its ``metadata`` dict (JSON-able).

    ``metadata["method"] == "blindspot"``; keys used here: ``mode``, ``channels``,
    ``scale`` (counts per x01 unit), ``saturation``, ``noise``, ``tile``, ``overlap``,
    ``levels``. After :meth:`denoise`, ``last_noise`` holds the noise model used per
    channel in counts units (``var_counts = a_counts * mean_counts + b_counts``).
    """

    #: ``metadata["method"]`` of the model files this class runs (see ``core.registry``)
    METHOD = "blindspot"

    def __init__(self, model: keras.Model, metadata: dict):
        self.model = model
        self.metadata = dict(metadata)
        self.last_noise: list[dict] | None = None
        self._predict_fns: dict[tuple, Callable] = {}
        self._twin: keras.Model | None = None

    # -- properties ---------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.metadata["mode"]

    @property
    def channels(self) -> int:
        return int(self.metadata["channels"])

    @property
    def scale(self) -> float:
        return float(self.metadata["scale"])

    # -- network ------------------------------------------------------------------
    def _bfloat16_twin(self) -> keras.Model:
        """The same network built with a mixed bfloat16 backbone, sharing the weights' values."""
        if self._twin is None:
            from .network import build_blindspot_model

            arch, noise = self.metadata["architecture"], self.metadata["noise"]
            twin = build_blindspot_model(
                channels=self.channels,
                joint=self.metadata["joint"],
                mode=self.mode,
                enc_filters=arch["enc_filters"],
                dec_filters=arch["dec_filters"],
                levels=arch["levels"],
                noise_init=noise["init_estimate_x01"],
                noise_gain=arch.get("noise_gain", 10.0),
                mixed_bfloat16=True,
            )
            twin.set_weights(self.model.get_weights())
            self._twin = twin
        return self._twin

    def predict_fn(self, tile: int, batch_size: int, c_in: int, precision: str) -> Callable:
        """The network as a function of one fixed ``(batch_size, tile, tile, c_in)`` batch
        (traced once, cached): stage one of :meth:`denoise`, public so a caller can run
        the two stages apart (``large_scan.denoise_chunked``)."""
        key = (tile, batch_size, c_in, precision)
        if key not in self._predict_fns:
            bf16 = precision == "bfloat16" and "architecture" in self.metadata
            model = self._bfloat16_twin() if bf16 else self.model
            spec = tf.TensorSpec((batch_size, tile, tile, c_in), tf.float32)

            @tf.function(input_signature=[spec], autograph=False)
            def traced(x):
                return model(x, training=False)

            def predict(batch: np.ndarray) -> np.ndarray:
                return traced(batch).numpy()

            self._predict_fns[key] = predict
        return self._predict_fns[key]

    def predict_raw(
        self,
        x01_hwc: np.ndarray,
        *,
        tile: int | None = None,
        overlap: int | None = None,
        batch_size: int | None = None,
        precision: str = "auto",
        on_progress: Callable[[int, int], None] | None = None,
        cancel=None,
    ) -> np.ndarray:
        """Network outputs for a float32 ``(Y, X, C)`` x01 image: ``(Y, X, 3C)`` float32.

        Channels ``[loc.., std.., noise_var..]`` in x01 units (see ``blindspot``). Tiled
        at ``tile`` (divisible by ``2**levels``) with ``overlap`` pixels of overlap,
        ``batch_size`` tiles per network call (None: 1 on CPU, 8 on GPU; peak memory grows
        with it: ~1.0 / 1.4 / 2.1 GB at 1 / 2 / 4 tiles of 256x256 for the default net).
        ``precision="bfloat16"`` runs the U-Net backbone in bfloat16 (about 2x faster on
        CPUs with AMX/AVX512-BF16; head, prior mean baseline and outputs stay float32;
        on phantom bags the PSNR changed by < 0.01 dB); ``"auto"`` picks it on such CPUs
        when no GPU is visible, else float32.
        """
        precision = resolve_precision(precision)
        batch_size = resolve_batch_size(batch_size)
        tile = int(tile or self.metadata.get("tile", 256))
        overlap = int(self.metadata.get("overlap", 32) if overlap is None else overlap)
        step = 2 ** int(self.metadata.get("levels", 0))
        if tile % step:
            raise ValueError(
                f"The tile size must be a multiple of {step} for this model, got {tile}."
            )
        c_in = x01_hwc.shape[-1]
        if x01_hwc.ndim != 3 or c_in != self.channels:
            raise ValueError(
                f"predict_raw needs a (Y, X, {self.channels}) x01 image for this model, got {x01_hwc.shape}."
            )
        return predict_tiled(
            x01_hwc,
            self.predict_fn(tile, batch_size, c_in, precision),
            tile=tile,
            overlap=overlap,
            batch_size=batch_size,
            on_progress=on_progress,
            cancel=cancel,
        )

    # -- denoising ----------------------------------------------------------------
    def denoise(
        self,
        scan: np.ndarray,
        *,
        tile: int | None = None,
        overlap: int | None = None,
        batch_size: int | None = None,
        noise: str = "auto",
        precision: str = "auto",
        on_progress: Callable[[int, int], None] | None = None,
        cancel=None,
    ) -> np.ndarray:
        """Denoise a scan of counts; returns float32 counts of the same shape.

        ``scan``: ``(C, Y, X)`` or ``(Y, X)``, uint16 or float counts, any size. A
        1-channel model denoises each channel of a multi-channel scan on its own.
        ``noise``: ``"auto"``/``"refit"`` fits the noise of this scan (per channel; for
        ``uncalib`` as in the source, for the calibrated modes with
        ``noise.fit_poisson_gaussian``, so a scan of another dose than the training scans
        gets its own noise level: +0.3 to +2.8 dB on the sample bags); ``"stored"`` uses
        the values learnt or fitted in training. ``precision``: ``"auto"``, ``"float32"`` or ``"bfloat16"`` (see :meth:`predict_raw`).
        ``on_progress(done, total)`` per batch of tiles; ``cancel.is_set()`` is checked
        between batches and raises ``OperationCancelled``. Callers round and clip for uint16. Raises ``ValueError`` for a scan whose channels do not fit.
        """
        squeeze = np.ndim(scan) == 2
        counts = as_chw_counts(scan)
        n_ch = counts.shape[0]
        if self.channels == 1:
            groups = [[c] for c in range(n_ch)]
        elif n_ch == self.channels:
            groups = [list(range(n_ch))]
        else:
            raise ValueError(
                f"This model denoises {self.channels}-channel scans, got {n_ch} channel(s); "
                "pass a (C, Y, X) array with the channels it was trained on."
            )
        if noise not in ("auto", "refit", "stored"):
            raise ValueError(f"noise must be 'auto', 'refit' or 'stored', got {noise!r}.")
        levels = saturation_levels(counts, self.metadata.get("saturation", "auto"))
        saturated = saturated_mask(counts, levels)

        n_tiles_done = [0]
        per_group_total = [1]

        def progress(done, total):
            per_group_total[0] = total
            if on_progress is not None:
                on_progress(n_tiles_done[0] + done, total * len(groups))

        out = np.empty_like(counts)
        self.last_noise = []
        for chans in groups:  # one pass per channel group, each pass vectorised
            x01 = np.ascontiguousarray((counts[chans] / self.scale).transpose(1, 2, 0))
            raw = self.predict_raw(
                x01,
                tile=tile,
                overlap=overlap,
                batch_size=batch_size,
                precision=precision,
                on_progress=progress,
                cancel=cancel,
            )
            n_tiles_done[0] += per_group_total[0]
            x_hat = self.posterior(x01, raw, ~saturated[chans].transpose(1, 2, 0), noise)
            out[chans] = x_hat.transpose(2, 0, 1) * self.scale
        out[saturated] = counts[saturated]
        return out[0] if squeeze else out

    def posterior(
        self, y: np.ndarray, raw: np.ndarray, valid: np.ndarray, noise: str
    ) -> np.ndarray:
        """Stage two of :meth:`denoise`: the posterior mean (x01, ``(Y, X, c)``) from the
        network outputs ``raw`` of scan ``y``; records ``last_noise``."""
        c = y.shape[-1]
        mu, std, noise_var = raw[..., :c], raw[..., c : 2 * c], raw[..., 2 * c : 3 * c]
        if self.mode in ("mse", "supervised"):
            self.last_noise.extend({"model": "none"} for _ in range(c))
            return mu
        if self.mode != "uncalib":
            stored = self.metadata.get("noise", {}).get("channels", [])
            if noise != "stored":  # auto/refit: the noise of this scan, whatever its dose
                noise_var = self._scan_noise_variance(y, mu, valid, noise_var)
            else:
                self.last_noise.extend(stored[:c] if len(stored) >= c else [{}] * c)
            return posterior_mean(y, mu, np.square(std), noise_var).astype(np.float32, copy=False)
        x_hat = np.empty_like(y)
        stored = self.metadata.get("noise", {}).get("channels", [])
        for k in range(c):  # per channel: one 2-parameter fit each
            if noise == "stored" and k < len(stored):
                a = stored[k]["a_counts"] / self.scale
                b = stored[k]["b_counts"] / self.scale**2
            else:
                a, b = fit_uncalib_noise(y[..., k], mu[..., k], valid=valid[..., k])
            a_c, b_c = affine_to_counts(a, b, self.scale)
            self.last_noise.append({"model": "affine", "a_counts": a_c, "b_counts": b_c})
            eps = float(self.metadata.get("noise", {}).get("uncalib_eps", [0.0] * c)[k])
            total = np.square(std[..., k]) + eps
            ref_var = max(a * float(np.mean(mu[..., k])) + b, 1e-30)
            noise_var_k = np.maximum(a * mu[..., k] + b, 1e-3 * ref_var)
            prior_var = np.maximum(total - noise_var_k, _UNCALIB_PRIOR_FLOOR_REL * ref_var)
            x_hat[..., k] = posterior_mean(y[..., k], mu[..., k], prior_var, noise_var_k)
        return x_hat

    def _scan_noise_variance(self, y, mu, valid, learnt_var):
        """Noise variance from this scan's own Poisson-Gaussian fit (``noise.py``), per channel.

        For scans whose dose differs from the training scans': the learnt (a, b) describe
        the training data. The read variance b is clipped at 0 (air-normalised data has
        no offset); a channel whose fit fails keeps the learnt variance.
        """
        from ...noise import fit_poisson_gaussian

        out = np.array(learnt_var, copy=True)
        for k in range(y.shape[-1]):
            counts = y[..., k] * self.scale
            try:
                model = fit_poisson_gaussian(np.where(valid[..., k], counts, np.median(counts)))
            except ValueError:
                self.last_noise.append({"model": "learnt (scan fit failed)"})
                continue
            a01, b01 = model.a / self.scale, max(model.b, 0.0) / self.scale**2
            out[..., k] = np.maximum(a01 * mu[..., k] + b01, 1e-12)
            self.last_noise.append(
                {
                    "model": "affine, fitted on this scan",
                    "a_counts": float(model.a),
                    "b_counts": float(max(model.b, 0.0)),
                }
            )
        return out

    # -- files --------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Denoiser:
        """Load a model file of this class's kind (``core.registry.load_model`` picks the class).

        Raises :class:`ModelFileError` (a ``ValueError``) with one sentence for a missing
        file, a file that is not a ``.keras`` zip, a ``.keras`` file from elsewhere, a model
        of another kind, or a damaged file.
        """
        return cls(*read_model_file_of(path, cls.METHOD))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model and metadata to one ``.keras`` file; returns its path."""
        return save_model_file(self.model, self.metadata, path)

    def __repr__(self) -> str:
        return (
            f"Denoiser(method={self.metadata.get('method')!r}, mode={self.mode!r}, "
            f"channels={self.channels}, joint={self.metadata.get('joint')!r})"
        )
