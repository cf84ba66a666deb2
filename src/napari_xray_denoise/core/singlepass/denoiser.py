"""``SinglePassDenoiser``: the default model applied to whole scans, detector physics first.

Per channel of a scan (any size, any bit depth in a 16-bit file):

1. column flat-field (``flatfield``): divide each detector column by its gain, from the
   scan's own air, or from dark/flat frames; streaks are put back at the end;
2. the noise law ``Var = a * mean + b``: fitted on the scan (``noise.fit_poisson_gaussian``,
   the default) or given (calibrated: gain, offset, read noise);
3. the network domain (``vst``): normalised generalized Anscombe and its noise level;
4. one pass of the noise-conditioned network (whole image up to ``whole_limit`` pixels,
   else overlapping tiles blended as in ``core.tiling``), or the mean of
   ``self_ensemble`` passes over flipped copies (1, 2 or 4: the "self-ensemble" of Lim
   et al. 2017; flips only, never transposes, so detector columns stay columns);
   2 by default: +0.09 dB median (+0.05..+0.19) on the held-apart photographs and
   +0.2 dB on phantom bags for twice the network time (4: +0.06 dB more than 2,
   measured on the 5.73 h model);
5. back to counts (algebraic inverse), streaks back, clipped to the code range.

Photon-starved scans (laptops, boards, batteries, stacked metal) go to a second network
when the model has one (``dark``: the shipped default's companion, ``default_dark.keras``,
attached by ``core.load_model()``): a scan is photon-starved when at least
``dark_share`` (20%) of its first channel's pixels hold fewer than ``DARK_QUANTA`` (50)
quanta by its noise law (``is_photon_starved``). Both energies then use it. The share was
chosen on the validation scans of ``benchmarks/unseen_sets.py`` (dark scenes: 29-100% of
pixels under 50 quanta; validation bags 0.4-11%), where the companion gained +0.04 to
+0.83 dB on the dark scans and lost up to 0.19 dB on the bags
(``docs/validation_dark.json``).

Saturated (clipped) pixels go through the network like every other pixel: it was trained
with clipping and estimates their true level from their surroundings.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ... import noise as noise_mod
from ... import vst
from ...flatfield import FlatField
from ...noise import calibrated_noise  # noqa: F401  (re-exported by core)
from .._backend import keras, tf
from ..data import as_chw_counts
from ..model_file import read_model_file_of, save_model_file
from ..registry import DEFAULT_SELF_ENSEMBLE, SELF_ENSEMBLES
from ..tiling import OperationCancelled, predict_tiled
from .network import SIZE_MULTIPLE, build_singlepass_model, is_guided

NoiseSpec = str | noise_mod.NoiseModel | Sequence[noise_mod.NoiseModel] | None

#: a pixel under this many quanta (by the scan's noise law) is photon-starved
DARK_QUANTA = 50.0


def photon_starved_share(counts, law: noise_mod.NoiseModel) -> float:
    """The share of pixels of one channel (counts, the noise law's domain) holding fewer
    than ``DARK_QUANTA`` quanta: ``(counts - offset) / a``, the offset the smallest that
    fits the law (``pgure.split_noise_law``)."""
    from ...pgure import split_noise_law

    offset, _ = split_noise_law(law.a, law.b)
    quanta = (np.asarray(counts, np.float64) - offset) / law.a
    return float(np.mean(quanta < DARK_QUANTA)) if quanta.size else 0.0


#: the flips (rows, columns) of each self-ensemble size: 1 pass, 2 (+ the belt direction
#: reversed), 4 (+ the detector reversed, + both)
_FLIPS = ((False, False), (True, False), (False, True), (True, True))


def check_self_ensemble(n) -> int:
    """``n`` as a valid self-ensemble size, else ``ValueError`` saying what is allowed."""
    if isinstance(n, bool) or n not in SELF_ENSEMBLES:
        raise ValueError(
            f"self-ensemble must be one of {', '.join(map(str, SELF_ENSEMBLES))} passes, got {n!r}."
        )
    return int(n)


def pad_to_multiple(image_hw: np.ndarray, multiple: int = SIZE_MULTIPLE):
    """Reflect-pad a (Y, X, ...) array at the bottom/right to multiples of ``multiple``."""
    h, w = image_hw.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return image_hw
    pad = [(0, ph), (0, pw)] + [(0, 0)] * (image_hw.ndim - 2)
    mode = "reflect" if h > ph and w > pw else "symmetric"
    return np.pad(image_hw, pad, mode=mode)


def _per_channel(value, n: int, name: str) -> list:
    if value is None or isinstance(value, (str, noise_mod.NoiseModel, FlatField)):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ValueError(f"got {len(values)} {name} for {n} channel(s); give one per channel.")
    return values


def _frames(frame, n: int, name: str) -> list:
    """One frame for every channel, or one per channel (a list or a (C, Y, X) array)."""
    if frame is None:
        return [None] * n
    if isinstance(frame, (list, tuple)) or np.ndim(frame) == 3:
        frames = list(frame)
        if len(frames) != n:
            raise ValueError(
                f"got {len(frames)} {name} frames for {n} channel(s); give one per channel or one for all."
            )
        return frames
    return [frame] * n


class SinglePassDenoiser:
    """A trained single-pass network (``keras.Model``) and its ``metadata`` (JSON-able).

    ``denoise(scan)`` works on ``(Y, X)`` or ``(C, Y, X)`` scans, each channel on its own
    (one model for both energies); a guided model (``guided``) also sees the other energy
    of a two-channel scan while it denoises each one. After a call, ``last_noise`` holds per channel the
    noise law used (counts), how it was obtained, the flat-field and the code range.
    """

    #: pixels up to which a channel runs through the network in one piece
    whole_limit = 2048 * 2048
    #: passes averaged at inference by default (``SELF_ENSEMBLES``)
    self_ensemble = DEFAULT_SELF_ENSEMBLE
    tile = 1024
    overlap = 64
    #: a scan is photon-starved (and goes to ``dark``) when this share of its first
    #: channel's pixels is under ``DARK_QUANTA`` quanta
    dark_share = 0.2

    def __init__(self, model: keras.Model, metadata: dict):
        self.model = model
        self.metadata = dict(metadata)
        self.last_noise: list[dict] | None = None
        #: the network for photon-starved scans (None: this one for every scan)
        self.dark: SinglePassDenoiser | None = None
        self._whole_fn = None
        self._tile_fn = None

    channels = 1

    @property
    def method(self) -> str:
        return "singlepass"

    @property
    def mode(self) -> str:  # shown where blind-spot models show their noise mode
        return "noise-conditioned"

    @property
    def guided(self) -> bool:
        """Whether the network also takes the other energy of the scan (``singlepass``)."""
        return is_guided(self.model)

    @property
    def _inputs(self) -> int:
        return 4 if self.guided else 2

    # -- network ------------------------------------------------------------------
    def _whole(self):
        if self._whole_fn is None:
            spec = tf.TensorSpec((1, None, None, self._inputs), tf.float32)
            self._whole_fn = tf.function(
                lambda x: self.model(x, training=False), input_signature=[spec]
            )
        return self._whole_fn

    def _tiled(self):
        if self._tile_fn is None:
            spec = tf.TensorSpec((1, self.tile, self.tile, self._inputs), tf.float32)
            fn = tf.function(lambda x: self.model(x, training=False), input_signature=[spec])
            self._tile_fn = lambda batch: fn(batch).numpy()
        return self._tile_fn

    def predict_u(
        self,
        u: np.ndarray,
        sigma: float,
        *,
        guide=None,
        on_progress=None,
        cancel=None,
        self_ensemble: int | None = None,
    ) -> np.ndarray:
        """Network output for one channel in the network domain: float32 (Y, X).
        ``guide``: ``(g, sigma_g)``, the other energy in its network domain (guided
        models; ignored by the others), or None (a single-energy scan).
        ``self_ensemble``: passes over flipped copies averaged (None: ``self_ensemble``)."""
        n = check_self_ensemble(self.self_ensemble if self_ensemble is None else self_ensemble)
        total = None
        for k, (fy, fx) in enumerate(_FLIPS[:n]):

            def flip(a, fy=fy, fx=fx):
                return np.ascontiguousarray(a[:: -1 if fy else 1, :: -1 if fx else 1])

            def progress(done, of, k=k):
                if on_progress is not None:
                    on_progress(k * of + done, n * of)

            g = None if guide is None else (flip(guide[0]), guide[1])
            out = flip(self._predict_once(flip(u), sigma, g, progress, cancel))
            total = out if total is None else total + out
        return total / n if n > 1 else total

    def _predict_once(self, u, sigma, guide, on_progress, cancel) -> np.ndarray:
        h, w = u.shape
        channels = [u, np.full_like(u, sigma)]
        if self.guided:
            g, s_g = guide if guide is not None else (np.zeros_like(u), 0.0)
            channels += [g, np.full_like(u, s_g)]
        x = np.stack(channels, -1).astype(np.float32)
        if h * w <= self.whole_limit:
            if cancel is not None and cancel.is_set():
                raise OperationCancelled("Denoising was cancelled.")
            out = self._whole()(pad_to_multiple(x)[None]).numpy()[0, :h, :w, 0]
            if on_progress is not None:
                on_progress(1, 1)
            return out
        return predict_tiled(
            x,
            self._tiled(),
            tile=self.tile,
            overlap=self.overlap,
            batch_size=1,
            on_progress=on_progress,
            cancel=cancel,
        )[..., 0]

    # -- physics ------------------------------------------------------------------
    @staticmethod
    def _flatfield(counts: np.ndarray, spec, dark, flat) -> FlatField:
        width = counts.shape[1]
        if dark is not None or flat is not None:
            return FlatField.from_frames(width, dark=dark, flat=flat)
        if spec is None or spec == "none":
            return FlatField.identity(width)
        if isinstance(spec, FlatField):
            return spec
        if spec == "auto":
            return FlatField.estimate(counts)
        raise ValueError(f"flatfield must be 'auto', 'none' or a FlatField, got {spec!r}.")

    @staticmethod
    def _noise(flat_counts: np.ndarray, spec, ff: FlatField) -> tuple[noise_mod.NoiseModel, str]:
        if isinstance(spec, noise_mod.NoiseModel):
            # given for raw counts; an offset removed by the dark frame moves it into b
            offset = float(np.mean(ff.offset))
            return noise_mod.NoiseModel(spec.a, spec.b + spec.a * offset), "given (calibrated)"
        if spec not in (None, "auto", "refit"):
            raise ValueError(f"noise must be 'auto' or a NoiseModel, got {spec!r}.")
        fit = noise_mod.fit_noise_levels(flat_counts)
        return fit.model, f"fitted on this scan ({fit.note})"

    # -- denoising ----------------------------------------------------------------
    def denoise(
        self,
        scan: np.ndarray,
        *,
        noise: NoiseSpec = "auto",
        flatfield="auto",
        dark=None,
        flat=None,
        on_progress: Callable[[int, int], None] | None = None,
        cancel=None,
        self_ensemble: int | None = None,
        **_ignored,
    ) -> np.ndarray:
        """Denoise a scan of counts; returns float32 counts of the same shape.

        scan: ``(Y, X)`` or ``(C, Y, X)``, uint16 or float counts. noise: ``"auto"`` (fit
        each channel), a ``noise.NoiseModel`` for every channel or one per channel (in raw
        counts; see :func:`calibrated_noise`). flatfield: ``"auto"`` (column gains from the
        scan's air), ``"none"``, or a ``flatfield.FlatField``; ``dark``/``flat``: frames
        (2-D, or one value per column; a single frame for every channel or one per
        channel) that replace the estimate. ``on_progress(done, total)`` per channel (or
        tile); ``cancel.is_set()`` raises ``OperationCancelled``. ``self_ensemble``: 1, 2
        or 4 passes over flipped copies averaged (None: the class default, 2). Other
        keywords of the blind-spot ``Denoiser.denoise`` (tile, batch size, precision) are accepted and
        ignored. Raises ``ValueError`` with one sentence for unusable input.
        """
        passes = check_self_ensemble(self.self_ensemble if self_ensemble is None else self_ensemble)
        squeeze = np.ndim(scan) == 2
        counts = as_chw_counts(scan)
        n = counts.shape[0]
        noises = _per_channel(noise, n, "noise models")
        ffs = _per_channel(flatfield, n, "flat-fields")
        darks, flats = _frames(dark, n, "dark"), _frames(flat, n, "flat")
        out = np.empty(counts.shape, np.float32)
        prepared = [
            self._prepare(counts[c], noises[c], ffs[c], darks[c], flats[c]) for c in range(n)
        ]
        net = self._network_for(prepared[0])
        self.last_noise = []
        for c, channel in enumerate(prepared):

            def progress(done, total, c=c):
                if on_progress is not None:
                    on_progress(c * total + done, n * total)

            partner = prepared[1 - c] if n == 2 else None
            guide = None if partner is None else (partner["u"], partner["sigma"])
            out[c] = net._finish(channel, guide, progress, cancel, passes)
            record = dict(channel["record"], self_ensemble=passes)
            record["network"] = "default" if net is self else "photon-starved (dark) companion"
            if self.guided:
                record["guide"] = "the other energy" if guide is not None else "none"
            self.last_noise.append(record)
        return out[0] if squeeze else out

    def _network_for(self, first_channel: dict) -> SinglePassDenoiser:
        """``dark`` for a photon-starved scan (judged on its first channel), else self."""
        if self.dark is None:
            return self
        share = photon_starved_share(first_channel["y"], first_channel["law"])
        first_channel["record"]["photon_starved_share"] = round(share, 4)
        return self.dark if share >= self.dark_share else self

    def for_scans(self, scans) -> SinglePassDenoiser:
        """The network these scans would be denoised with: ``dark`` when every one is
        photon-starved (fine-tuning starts from it then), else self."""
        if self.dark is None or not scans:
            return self
        for scan in scans:
            first = as_chw_counts(scan)[0]
            channel = self._prepare(first, "auto", "auto", None, None)
            if self._network_for(channel) is self:
                return self
        return self.dark

    def denoise_channel(
        self,
        counts_2d,
        *,
        noise="auto",
        flatfield="auto",
        dark=None,
        flat=None,
        on_progress=None,
        cancel=None,
        self_ensemble: int | None = None,
    ) -> tuple[np.ndarray, dict]:
        """One (Y, X) channel -> (float32 denoised counts, record of what was used); a
        guided model denoises it without a guide."""
        channel = self._prepare(counts_2d, noise, flatfield, dark, flat)
        out = self._finish(channel, None, on_progress, cancel, self_ensemble)
        return out, channel["record"]

    def _prepare(self, counts_2d, noise, flatfield, dark, flat) -> dict:
        """Flat-field, noise law and network domain of one channel."""
        counts = np.asarray(counts_2d, dtype=np.float64)
        if min(counts.shape) < 16:
            raise ValueError(f"a scan channel must be at least 16x16 pixels, got {counts.shape}.")
        code_max = vst.code_range(counts)
        ff = self._flatfield(counts, flatfield, dark, flat)
        y = ff.apply(counts)
        model, how = self._noise(y, noise, ff)
        if model.a <= 0:
            raise ValueError(
                "this scan's noise shows no photon (Poisson) part; the default model needs a "
                "gain a > 0: pass calibrated noise parameters (gain, offset, read noise)."
            )
        record = {
            "model": "affine",
            "how": how,
            "a_counts": model.a,
            "b_counts": model.b,
            "code_max": code_max,
            "flatfield": ff.describe(),
        }
        return {
            "y": y,
            "u": vst.to_network(y, model.a, model.b, code_max),
            "sigma": vst.noise_level(model.a, model.b, code_max),
            "law": model,
            "code_max": code_max,
            "flatfield": ff,
            "record": record,
        }

    def _finish(self, channel: dict, guide, on_progress, cancel, self_ensemble) -> np.ndarray:
        """The network, then back to counts: float32 (Y, X)."""
        u_hat = self.predict_u(
            channel["u"],
            channel["sigma"],
            guide=guide,
            on_progress=on_progress,
            cancel=cancel,
            self_ensemble=self_ensemble,
        )
        law, code_max = channel["law"], channel["code_max"]
        den = channel["flatfield"].undo(vst.from_network(u_hat, law.a, law.b, code_max))
        return np.clip(den, 0, code_max).astype(np.float32)

    # -- files --------------------------------------------------------------------
    METHOD = "singlepass"

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> SinglePassDenoiser:
        """Load a single-pass model file (``core.registry.load_model`` picks the class)."""
        return cls(*read_model_file_of(path, cls.METHOD))

    def save(self, path: str | os.PathLike) -> Path:
        return save_model_file(self.model, self.metadata, path)

    def __repr__(self) -> str:
        return f"SinglePassDenoiser(widths={self.metadata.get('architecture', {}).get('widths')})"


def untrained_singlepass(widths=(8, 8, 8), *, guided: bool = False) -> SinglePassDenoiser:
    """A small untrained network (identity at start: the output layer starts at zero)."""
    from .train import LongRunConfig, singlepass_metadata

    cfg = LongRunConfig(widths=tuple(widths), guided=guided)
    return SinglePassDenoiser(
        build_singlepass_model(widths, guided=guided), singlepass_metadata(cfg, 0, 0.0)
    )
