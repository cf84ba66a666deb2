"""Fine-tuning the single-pass model on the user's own noisy scans, no clean data.

Loss: recorrupted-to-recorrupted (Pang et al., CVPR 2021) in the network domain, where
the noise is close to Gaussian with a known std ``s`` (``vst``): for a noisy crop
``y`` and fresh ``z ~ N(0, 1)``,

    input  y_hat = y + alpha * s * z   (noise level told to the network: s * sqrt(1 + alpha^2))
    target y_bar = y - s * z / alpha

the noises of ``y_hat`` and ``y_bar`` are independent, so ``E|f(y_hat) - y_bar|^2`` is the
error against the clean scan plus a constant: a single-pass network learns without a
blind spot and without clean images. ``alpha`` is drawn per crop in [0.3, 1] so the
network keeps working at every level near the scan's own. Half of each batch is
simulated pairs (``core.singlepass.simdata``, the scene mix the model was trained on) with their
exact targets, so what the model knew is not forgotten. Both halves use the weights of
the default training (``(out - target)^2 / s^2 * (0.05 + input^2)``).

Never worse than the start: in every channel, blocks of ``val_block`` pixels scattered
over the whole scan (``val_fraction`` of it, chosen at random) are held back: they stay
in the network's input but are masked out of the training loss. Training picks its best
weights by the R2R loss on validation crops around them (fixed ``z``, ``alpha`` in
[0.25, 0.5]: near the scan's own noise level; only held-back pixels scored). The best
weights and their blends with the start (``start + t * (tuned - start)``, ``t`` = 1,
7/8, ..., 1/8: weight-space ensembling, Wortsman et al. 2022) are then checked on the
raw scan, at its own noise, with Monte-Carlo SURE (``mc_sure``: Stein's unbiased
estimate of the squared error against the clean scan, from the noisy one, in the network
domain where the noise is close to Gaussian with a known std): a blend qualifies when no
channel's (each energy of each scan) SURE error went up, neither over its held-back
pixels nor over whole crops around them; the qualifying blend with the largest median
SURE gain is kept only if that gain is at least ``min_gain_db`` and the held-back R2R
loss fell significantly (the paired crop-by-crop differences: mean above
``significance`` standard errors, ``gain_z``), else the starting model is returned
unchanged (``FinetuneResult.kept_start``).

At low photon counts SURE in the stabilised domain is biased (there the noise is far
from a Gaussian of known std, and an error that is small in that domain can be large in
counts): a model truly 0.73 dB worse in one channel of a dark circuit board passed it. So
a blend must also pass the count-domain check (``count_check``, ``_CountCheck``): the
Poisson-Gaussian risk estimate (``pgure.sure_terms``) of each channel's squared error in
counts, as PSNR scores it, with every pixel's own noise variance, over its held-back
pixels, whole channels through the network. A blend passes when in every channel the
upper bound (``count_check_z`` standard errors) of its error change is below zero; the
qualifying blends are tried largest SURE gain first, at most
``count_check_tries`` of them (``FinetuneResult.blends_count_check``), and the median
channel's count-domain gain is then what must reach ``min_gain_db``.

Why SURE (measured on set (b) of ``benchmarks/bench_default.py``, ten photographs at two
doses, 2026-11-30; ``benchmarks/finetune_check.py``): the per-channel R2R held-back
statistic correlated +0.34..+0.51 with the true per-channel PSNR change over the blends
and blocked every blend (a channel that truly gained showed a small rise); per-channel
SURE over whole channels correlated +0.93..+0.97. SURE can still be optimistic where the
noise is not what it assumes (two channels that truly lost 0.08 and 0.38 dB at ``t`` = 1
showed SURE gains or smaller losses, likely residual column streaks: correlated noise
neither R2R nor SURE sees); requiring the held-back pixels to agree as well chose
``t`` = 3/8 there, where every channel gained (median +0.22 dB). On unseen phantom bags
(set (a)) a blend with a median SURE gain of +0.056 dB was kept with a threshold of
0.02 dB and lost up to 0.12 dB in truth: hence ``min_gain_db`` = 0.1. Earlier, with none of
these checks: the median channel gained 0.5 dB, but 4 of 40 lost up to 0.8 dB. The
statistics of every blend are recorded (``FinetuneResult.blends_sure_db``,
``blends_channel_gain_z``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ... import noise as noise_mod
from ... import pgure, vst
from ...flatfield import FlatField
from .._backend import keras, tf
from ..data import as_chw_counts
from ..training import FitSchedule, fit
from .denoiser import SinglePassDenoiser
from .network import LOSS_WEIGHT_FLOOR, is_guided
from .simdata import PairSampler, SimSettings, phantom_transmissions


@dataclass
class FinetuneConfig:
    #: wall-clock budget of the whole fine-tune: preparation, training and the checks
    #: after it (their time, measured on the start before training, is set aside)
    minutes: float = 10.0
    steps: int = 100_000
    crop_size: int = 128
    batch_size: int = 8
    init: str = "default"  #: the model to start from: 'default' or a .keras file (train_finetune)
    learning_rate: float = 1e-4
    alpha: tuple[float, float] = (0.3, 1.0)
    #: the held-back crops' ``alpha``: small, so they score the model near the scan's own
    #: noise level (``s * sqrt(1 + alpha^2)``), where it will be used
    val_alpha: tuple[float, float] = (0.25, 0.5)
    simulated_fraction: float = 0.5
    #: of the simulated non-phantom crops, the fraction with natural-image texture
    #: (``SimSettings.photo_fraction``); None: as the starting model was trained
    photo_fraction: float | None = None
    #: the share of every channel held back for validation, in blocks of ``val_block``
    #: pixels (at most half a crop) scattered over the scan
    val_fraction: float = 0.15
    val_block: int = 32
    val_crops: int = 24
    val_crops_per_channel: int = 6
    #: kept only when the held-back gain exceeds this many standard errors (paired crops)
    significance: float = 2.0
    #: ... and the median channel's SURE error falls by at least this many dB (SURE can
    #: be optimistic by a few hundredths of a dB and more: on unseen phantom bags an
    #: estimate of +0.056 dB came with true changes of -0.12..+0.07 dB, 2026-11-30)
    min_gain_db: float = 0.1
    val_every: int = 100
    seed: int = 0
    #: pixel weights of the held-back R2R statistic (``gain_z``, ``blends_tried``),
    #: ``val_weight_floor + input^2``: 0 weighs the squared error as PSNR does, in counts
    #: (``d counts ~ u du``); the training's floor, 0.05, gives dark regions a share PSNR
    #: does not
    val_weight_floor: float = 0.0
    #: crops per channel (around held-back blocks) the SURE check scores (``mc_sure``)
    sure_crops_per_channel: int = 16
    #: the count-domain check (``pgure.sure_terms``) that a blend must pass too: the
    #: standard errors its upper bound adds, and how many qualifying blends it tries
    #: (largest SURE gain first)
    count_check: bool = True
    count_check_z: float = 2.0
    count_check_tries: int = 3


#: the blends of start and tuned weights tried, ``start + t * (tuned - start)``
BLENDS = (1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125)


def gain_z(start: np.ndarray, tuned: np.ndarray) -> float:
    """How many standard errors the mean paired difference ``start - tuned`` (per-crop
    losses on the same crops and noise) lies above zero: the statistic of a one-sided
    paired test. Under 2 crops there is no spread to measure: 0."""
    d = np.asarray(start, np.float64) - np.asarray(tuned, np.float64)
    if d.size < 2:
        return 0.0
    mean, se = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(d.size)
    if se == 0.0:
        return math.copysign(math.inf, mean) if mean else 0.0
    return mean / se


def mc_sure(
    out: np.ndarray,
    out_probed: np.ndarray,
    noisy: np.ndarray,
    sigma,
    probe: np.ndarray,
    eps,
) -> np.ndarray:
    """Per-pixel Monte-Carlo SURE (Stein's unbiased risk estimate; Ramani et al. 2008):
    ``(out - noisy)^2 - sigma^2 + 2 sigma^2 div``, the divergence estimated with one
    probe: ``div ~ probe * (out_probed - out) / eps``, ``out_probed`` the output for
    ``noisy + eps * probe``. Its mean over pixels estimates the mean squared error of
    ``out`` against the clean image when the noise is Gaussian, independent, of std
    ``sigma`` (the network domain's, by construction of ``vst``), from the noisy image
    alone. ``sigma`` and ``eps`` broadcast against the images."""
    out = np.asarray(out, np.float64)
    sigma2 = np.square(np.asarray(sigma, np.float64))
    div = probe * (np.asarray(out_probed, np.float64) - out) / eps
    return np.square(out - noisy) - sigma2 + 2.0 * sigma2 * div


@dataclass
class FinetuneResult:
    denoiser: SinglePassDenoiser
    steps: int = 0
    seconds: float = 0.0
    val_loss_start: float = math.nan
    val_loss_best: float = math.nan
    kept_start: bool = False
    history: list = field(default_factory=list)
    #: per channel (each energy of each scan, in order), the SURE errors of the start and
    #: of the blend kept, over held-back pixels and over whole crops
    channel_losses: dict = field(default_factory=dict)
    #: the mean held-back (R2R) loss of every blend tried, by ``t``
    blends_tried: dict = field(default_factory=dict)
    #: the best qualifying blend's gain in standard errors (``gain_z``); None: none qualified
    gain_z: float | None = None
    #: ... and its median SURE gain over the channels (whole crops), dB
    gain_db: float | None = None
    #: per channel, the paired statistic (``gain_z``) of the best qualifying blend
    channel_gain_z: list = field(default_factory=list)
    #: per blend tried (by ``t``), each channel's paired statistic: how every channel
    #: moved, also when no blend qualified
    blends_channel_gain_z: dict = field(default_factory=dict)
    #: per blend tried (by ``t``), each channel's SURE gain in dB over the start
    #: (``{"held": [...], "all": [...]}``: over its held-back pixels, over whole crops)
    blends_sure_db: dict = field(default_factory=dict)
    #: the tuned weights (``fit``'s best by validation) the blends were made from, kept
    #: or not (for diagnosis); None when fitting never beat the start
    tuned_weights: list | None = None
    #: per blend the count-domain check scored (by ``t``): passed or not, the median
    #: channel's estimated gain (dB) and per channel its gain and upper-bound loss (dB)
    blends_count_check: dict = field(default_factory=dict)


@dataclass
class _Channel:
    u: np.ndarray  # (Y, X) network domain
    sigma: float
    held: np.ndarray  # bool (Y, X): pixels held back for validation, not in the training loss
    windows: list  # top-left corners of the validation crops, one around each held block
    partner: int = -1  # index of the other energy of the same scan (guided models), or -1
    counts: np.ndarray | None = None  # (Y, X) flat-fielded counts (the count-domain check)
    law: noise_mod.NoiseModel | None = None
    code_max: float = 65535.0


def held_back_blocks(shape, crop: int, block: int, fraction: float, rng):
    """Blocks held back for validation in an image of ``shape`` (Y, X): of the grid of
    ``block`` x ``block`` cells, ``fraction`` (at least one) chosen at random, spread over
    the whole image. Returns the (Y, X) bool mask and, for each held block, the top-left
    corner of the ``crop`` x ``crop`` window centred on it (shifted inside the image)."""
    h, w = shape
    ny, nx = h // block, w // block
    cells = rng.choice(ny * nx, size=max(1, int(round(fraction * ny * nx))), replace=False)
    held = np.zeros((h, w), bool)
    windows = []
    for cell in np.sort(cells):
        cy, cx = divmod(int(cell), nx)
        held[cy * block : (cy + 1) * block, cx * block : (cx + 1) * block] = True
        y0 = min(max(cy * block + (block - crop) // 2, 0), h - crop)
        x0 = min(max(cx * block + (block - crop) // 2, 0), w - crop)
        windows.append((y0, x0))
    order = rng.permutation(len(windows))  # validation crops cycle through them in this order
    return held, [windows[i] for i in order]


def _prepare(
    scans, crop: int, val_fraction: float, val_block: int = 32, seed: int = 0
) -> list[_Channel]:
    """Flat-field, fit the noise and map every channel of every scan to the network
    domain; hold back scattered blocks of each (``held_back_blocks``)."""
    out = []
    block = max(1, min(int(val_block), crop // 2))
    for i, scan in enumerate(scans):
        counts = as_chw_counts(scan, name=f"scan {i + 1}")
        first = len(out)
        for c in counts:
            if c.shape[0] < 2 * crop or c.shape[1] < crop:
                raise ValueError(
                    f"scan {i + 1} is {c.shape[0]}x{c.shape[1]} pixels; fine-tuning needs scans of at "
                    f"least {2 * crop}x{crop} (rows x columns)."
                )
            ff = FlatField.estimate(c)
            y = ff.apply(c.astype(np.float64))
            law = noise_mod.fit_poisson_gaussian(y)
            if law.a <= 0:
                raise ValueError(
                    f"scan {i + 1} shows no photon noise; fine-tuning needs raw, noisy scans."
                )
            code_max = vst.code_range(c)
            held, windows = held_back_blocks(
                c.shape, crop, block, val_fraction, np.random.default_rng([seed, len(out)])
            )
            out.append(
                _Channel(
                    vst.to_network(y, law.a, law.b, code_max),
                    vst.noise_level(law.a, law.b, code_max),
                    held,
                    windows,
                    counts=y,
                    law=law,
                    code_max=code_max,
                )
            )
        if len(counts) == 2:  # a dual-energy scan: each energy guides the other
            out[first].partner, out[first + 1].partner = first + 1, first
    return out


def _photo_fraction(start: SinglePassDenoiser, config: FinetuneConfig) -> float:
    """The simulated half's share of natural-image scenes: the config's, else the one
    the starting model was trained with (so fine-tuning does not unlearn them)."""
    if config.photo_fraction is not None:
        return float(config.photo_fraction)
    trained = start.metadata.get("training", {}).get("config", {})
    value = trained.get("photo_fraction", 0.0) if isinstance(trained, dict) else 0.0
    return float(value) if isinstance(value, (int, float)) else 0.0


def _network_input(u: np.ndarray, level: float, guide) -> np.ndarray:
    """The network's input for a crop ``u`` told the noise ``level``; ``guide``:
    ``(g_crop, sigma_g)`` of the other energy, ``False`` for a guided model's missing
    guide, None for an unguided model."""
    planes = [u, np.full_like(u, level)]
    if guide is False:
        planes += [np.zeros_like(u), np.zeros_like(u)]
    elif guide is not None:
        planes += [guide[0], np.full_like(u, guide[1])]
    return np.stack(planes, -1)


def _r2r_pair(
    u_crop: np.ndarray, sigma: float, rng, alpha_range, guide=None
) -> tuple[np.ndarray, np.ndarray]:
    """An R2R (input, target) pair; ``guide``: ``(g_crop, sigma_g)`` of the other energy,
    as it is (its noise is independent of both), or ``False`` for a guided model's
    missing guide, or None for an unguided model."""
    alpha = rng.uniform(*alpha_range)
    z = rng.standard_normal(u_crop.shape).astype(np.float32)
    y_hat = u_crop + alpha * sigma * z
    y_bar = u_crop - sigma * z / alpha
    # the network is told the input's own noise level; the loss divides by it too, and the
    # target's extra noise (std s / alpha) only adds a constant to the expected loss
    level = sigma * math.sqrt(1 + alpha * alpha)
    return _network_input(y_hat, level, guide), y_bar[..., None]


def _crop(channels: list[_Channel], i: int, rng, crop: int, val: int | None, guided: bool):
    """An R2R-ready crop of channel ``i``, its loss mask (float32, 1 where the loss
    scores) and, for a guided model, the guide: the same crop of its partner energy (or
    ``False`` when it has none), else None. ``val``: None for a training crop (anywhere;
    the mask leaves out the held-back pixels), else the number of the validation crop
    (the window around one held block; the mask is the held-back pixels in it)."""
    ch = channels[i]
    h, w = ch.u.shape
    if val is None:
        y0, x0 = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    else:
        y0, x0 = ch.windows[val % len(ch.windows)]
    k, flip = int(rng.integers(4)), rng.uniform() < 0.5

    def cut(u):
        out = np.rot90(u[y0 : y0 + crop, x0 : x0 + crop], k)
        return np.ascontiguousarray(out[:, ::-1] if flip else out)

    guide = None
    if guided:
        partner = channels[ch.partner] if ch.partner >= 0 else None
        guide = False if partner is None else (cut(partner.u), partner.sigma)
    mask = ch.held if val is not None else ~ch.held
    return cut(ch.u), cut(mask).astype(np.float32), guide


def _db(start: np.ndarray, tuned: np.ndarray) -> np.ndarray:
    """Per channel, 10 log10(start / tuned) of error estimates; NaN where either is not
    positive (a SURE estimate of a tiny error can be)."""
    start, tuned = np.asarray(start, np.float64), np.asarray(tuned, np.float64)
    ok = (start > 0) & (tuned > 0)
    out = np.full(start.shape, np.nan)
    out[ok] = 10.0 * np.log10(start[ok] / tuned[ok])
    return out


class _SureSet:
    """The raw scan (no recorruption) in crops around held-back blocks, up to
    ``config.sure_crops_per_channel`` per channel, each with a fixed probe: ``errors``
    gives every channel's mean SURE (``mc_sure``) over its held-back pixels and over the
    crops' interiors (16 pixels from the edges left out), for the model's weights now."""

    BORDER = 16

    def __init__(self, channels: list[_Channel], config: FinetuneConfig, guided: bool, rng):
        c = config.crop_size
        xs, chan, held = [], [], []
        for i, ch in enumerate(channels):
            partner = channels[ch.partner] if guided and ch.partner >= 0 else None
            for y0, x0 in ch.windows[: max(1, config.sure_crops_per_channel)]:
                guide = False if guided else None
                if partner is not None:
                    guide = (partner.u[y0 : y0 + c, x0 : x0 + c], partner.sigma)
                xs.append(_network_input(ch.u[y0 : y0 + c, x0 : x0 + c], ch.sigma, guide))
                held.append(ch.held[y0 : y0 + c, x0 : x0 + c])
                chan.append(i)
        self.x = np.stack(xs).astype(np.float32)
        self.held = np.stack(held)
        self.interior = np.zeros_like(self.held)
        b = min(self.BORDER, c // 4)
        self.interior[:, b : c - b, b : c - b] = True
        self.channel = np.array(chan)
        self.n = len(channels)
        self.sigma = np.array([channels[i].sigma for i in chan])[:, None, None]
        self.eps = 0.1 * self.sigma
        self.probe = rng.standard_normal(self.x.shape[:3]).astype(np.float32)

    def errors(self, model) -> tuple[np.ndarray, np.ndarray]:
        sums = np.zeros((2, self.n))
        counts = np.zeros((2, self.n))
        for i in range(0, len(self.x), 8):
            x = self.x[i : i + 8]
            probed = x.copy()
            probed[..., 0] += (self.eps[i : i + 8] * self.probe[i : i + 8]).astype(np.float32)
            out = np.asarray(model(x, training=False))[..., 0]
            out_probed = np.asarray(model(probed, training=False))[..., 0]
            per_pixel = mc_sure(
                out,
                out_probed,
                x[..., 0],
                self.sigma[i : i + 8],
                self.probe[i : i + 8],
                self.eps[i : i + 8],
            )
            for k, mask in enumerate((self.held[i : i + 8], self.interior[i : i + 8])):
                np.add.at(sums[k], self.channel[i : i + 8], (per_pixel * mask).sum(axis=(1, 2)))
                np.add.at(counts[k], self.channel[i : i + 8], mask.sum(axis=(1, 2)))
        means = sums / np.maximum(counts, 1.0)
        return means[0], means[1]


class _CountCheck:
    """The count-domain check: per channel, the Poisson-Gaussian risk estimate in counts
    (``pgure.sure_terms``: the noise variance ``a y + b`` of every pixel, a Monte-Carlo
    derivative with steps of 0.05 noise std) over the held-back pixels, the whole
    channel through the network (one pass) and back to counts, so the error is scored as
    PSNR scores it. ``terms(model)`` gives each channel's per-pixel terms for the model's
    weights now; ``changes`` compares a blend with the start channel by channel
    (``pgure.RiskChange``)."""

    def __init__(self, channels: list[_Channel], config: FinetuneConfig, guided: bool, rng):
        self.channels = channels
        self.guided = guided
        self._wrapped: dict = {}  # one wrapper per model: its traced function is reused
        self.probes = [rng.standard_normal(ch.counts.shape) for ch in channels]
        self.constants = [
            pgure.sure_constants(ch.counts, ch.law.a, ch.law.b)[ch.held] for ch in channels
        ]

    def _denoiser(self, model, i: int):
        ch = self.channels[i]
        wrapped = self._wrapped.setdefault(id(model), SinglePassDenoiser(model, {}))
        partner = self.channels[ch.partner] if self.guided and ch.partner >= 0 else None
        guide = None if partner is None else (partner.u, partner.sigma)
        a, b, top = ch.law.a, ch.law.b, ch.code_max

        def denoise(counts):
            u_hat = wrapped.predict_u(
                vst.to_network(counts, a, b, top), ch.sigma, guide=guide, self_ensemble=1
            )
            return vst.from_network(u_hat, a, b, top)

        return denoise

    def terms(self, model) -> list[np.ndarray]:
        return [
            pgure.sure_terms(self._denoiser(model, i), ch.counts, ch.law.a, ch.law.b, probe)[
                ch.held
            ]
            for i, (ch, probe) in enumerate(zip(self.channels, self.probes, strict=True))
        ]

    def changes(self, start_terms, terms) -> list[pgure.RiskChange]:
        return [
            pgure.risk_change(s, t, c)
            for s, t, c in zip(start_terms, terms, self.constants, strict=True)
        ]


def _count_verdict(changes, config: FinetuneConfig) -> tuple[bool, float, list]:
    """Whether a blend passes the count-domain check: in every channel the upper bound
    (``count_check_z`` standard errors) of its change of squared error is below zero
    (counts^2: no estimate of the error itself needed, which in bright air is far
    noisier than the change). Returns (passes, the median channel's estimated gain in dB
    (channels whose own error estimate is not positive left out), per-channel records)."""
    z = config.count_check_z
    records = [
        {
            "gain_db": c.gain_db,
            "upper_loss_db": c.upper_db_loss(z) if c.mse_reference > 0 else float("nan"),
            "change": c.change,
            "stderr": c.stderr,
            "pixels": c.pixels,
        }
        for c in changes
    ]
    gains = np.array([r["gain_db"] for r in records], np.float64)
    median = float(np.nanmedian(gains)) if np.isfinite(gains).any() else -math.inf
    safe = all(c.change + z * c.stderr < 0.0 for c in changes)
    return safe, median, records


def _pack(x, t):
    """Targets for ``fit``'s ``loss_fn(targets, outputs)``: the target and its mask, then
    the noise level and the input the weights need."""
    return x, np.concatenate([t, x[..., 1:2], x[..., :1]], axis=-1)


def _crop_losses(packed, out, weight_floor=LOSS_WEIGHT_FLOOR):
    """Each crop's loss: the mean over the pixels its mask scores."""
    t, mask = packed[..., :1], packed[..., 1:2]
    sigma, inp = packed[..., 2:3], packed[..., 3:4]
    err = tf.square((out - t) / sigma) * (weight_floor + tf.square(inp)) * mask
    scored = tf.maximum(tf.reduce_sum(mask, axis=[1, 2, 3]), 1.0)
    return tf.reduce_sum(err, axis=[1, 2, 3]) / scored


def _loss(packed, out):
    """The training loss: crops are all one size, so the mean of the crops' means."""
    return tf.reduce_mean(_crop_losses(packed, out))


@dataclass
class _Checks:
    """What the blends are scored on after training, and the start's scores: the
    held-back R2R loss per validation crop, SURE per channel (held-back pixels, whole
    crops) and, with ``count_check``, the count-domain terms."""

    val_crop_losses: Callable[[float], np.ndarray]  # with the model's weights now
    val_channel: np.ndarray  # the channel of each validation crop
    n_channels: int
    sure: _SureSet
    counts: _CountCheck | None
    start_crops: np.ndarray
    start_held: np.ndarray
    start_all: np.ndarray
    start_count_terms: list | None


def _score_blends(model, set_blend, checks: _Checks, config, result) -> list:
    """Every blend on the held-back R2R loss and SURE (recorded in ``result``); those
    under which no channel's SURE error rose, largest median SURE gain first, as
    ``(median SURE gain dB, t, R2R crop losses, channel losses)``."""
    qualifying = []
    for t in BLENDS:
        set_blend(t)
        crops = checks.val_crop_losses(config.val_weight_floor)
        result.blends_tried[t] = float(crops.mean())
        result.blends_channel_gain_z[t] = [
            gain_z(checks.start_crops[checks.val_channel == c], crops[checks.val_channel == c])
            for c in range(checks.n_channels)
        ]
        held, whole = checks.sure.errors(model)
        db = {"held": _db(checks.start_held, held), "all": _db(checks.start_all, whole)}
        result.blends_sure_db[t] = {k: v.tolist() for k, v in db.items()}
        median_db = float(np.nanmedian(db["all"])) if np.isfinite(db["all"]).any() else -math.inf
        if np.all(held <= checks.start_held) and np.all(whole <= checks.start_all):
            losses = {
                "start_held": checks.start_held.tolist(),
                "tuned_held": held.tolist(),
                "start_all": checks.start_all.tolist(),
                "tuned_all": whole.tolist(),
            }
            qualifying.append((median_db, t, crops, losses))
    return sorted(qualifying, key=lambda q: -q[0])


def _count_checked(model, set_blend, qualifying: list, checks: _Checks, config, result) -> list:
    """The first of ``qualifying`` (at most ``count_check_tries``) that passes the
    count-domain check, as a one-item list (empty: none passed); all of them without
    the check. Each verdict is recorded in ``result.blends_count_check``."""
    if checks.counts is None:
        return qualifying
    for item in qualifying[: max(config.count_check_tries, 0)]:
        t = item[1]
        set_blend(t)
        changes = checks.counts.changes(checks.start_count_terms, checks.counts.terms(model))
        ok, count_db, records = _count_verdict(changes, config)
        result.blends_count_check[t] = {
            "passed": ok,
            "median_gain_db": count_db,
            "channels": records,
        }
        if ok:
            return [item]
    return []


def _tuned_metadata(start: SinglePassDenoiser, n_scans: int, result, blend, config) -> dict:
    meta = dict(start.metadata)
    meta["finetune"] = {
        "scans": n_scans,
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "val_loss_start": result.val_loss_start,
        "val_loss_best": result.val_loss_best,
        "blend": blend,
        "gain_z": round(result.gain_z, 2),
        "gain_db_estimated": round(result.gain_db, 3),
        "loss": "recorrupted-to-recorrupted (+ simulated pairs)",
        "check": "per-channel Monte-Carlo SURE: held-back pixels and whole crops"
        + ("; count-domain PG-URE on held-back pixels" if config.count_check else ""),
    }
    if blend in result.blends_count_check:
        meta["finetune"]["count_gain_db_estimated"] = round(
            result.blends_count_check[blend]["median_gain_db"], 3
        )
    return meta


def _training_data(channels: list[_Channel], start: SinglePassDenoiser, config, rng):
    """``(batch, val_batches, val_channel)``: a function returning one packed training
    batch (R2R pairs of the scans' crops, their loss masks, and the simulated half), the
    fixed validation batches (R2R pairs with fixed noise on crops around the held-back
    blocks, batches of 8) and the channel of each validation crop."""
    guided = start.guided

    def r2r(i, rng, val=None):
        """(input, target + mask): the R2R pair of a crop, its loss mask after the target."""
        u, mask, guide = _crop(channels, i, rng, config.crop_size, val, guided)
        alpha = config.val_alpha if val is not None else config.alpha
        x, t = _r2r_pair(u, channels[i].sigma, rng, alpha, guide)
        return x, np.concatenate([t, mask[..., None]], axis=-1)

    vrng = np.random.default_rng(config.seed + 1)
    n_val = max(config.val_crops, config.val_crops_per_channel * len(channels))
    val_channel = np.arange(n_val) % len(channels)
    val = [r2r(int(c), vrng, j // len(channels)) for j, c in enumerate(val_channel)]
    val_x = np.stack([v[0] for v in val])
    val_t = np.stack([v[1] for v in val])
    val_batches = [_pack(val_x[i : i + 8], val_t[i : i + 8]) for i in range(0, len(val_x), 8)]

    n_sim = int(round(config.batch_size * config.simulated_fraction))
    sampler = (
        PairSampler(
            phantom_transmissions([int(rng.integers(10_000, 20_000))], rng),
            rng,
            crop=config.crop_size,
            settings=SimSettings(photo_fraction=_photo_fraction(start, config)),
            guided=guided,
        )
        if n_sim
        else None
    )

    def batch():
        own = [r2r(int(rng.integers(len(channels))), rng) for _ in range(config.batch_size - n_sim)]
        xs = [p[0] for p in own]
        ts = [p[1] for p in own]
        if n_sim:  # simulated pairs: exact targets, every pixel scored
            sx, st = sampler.batch(n_sim)
            xs.extend(sx)
            ts.extend(np.concatenate([t, np.ones_like(t)], axis=-1) for t in st)
        return _pack(np.stack(xs).astype(np.float32), np.stack(ts).astype(np.float32))

    return batch, val_batches, val_channel


def _start_checks(model, channels, config, val_crop_losses, val_channel) -> tuple:
    """The checks of the blends (``_Checks``) with the starting model's scores, and how
    long scoring every blend will take (seconds, measured on the start)."""
    guided = is_guided(model)
    t0 = time.perf_counter()
    start_crops = val_crop_losses(config.val_weight_floor)
    sure = _SureSet(channels, config, guided, np.random.default_rng(config.seed + 2))
    start_held, start_all = sure.errors(model)
    seconds = len(BLENDS) * (time.perf_counter() - t0)
    counts = start_terms = None
    if config.count_check:
        t0 = time.perf_counter()
        counts = _CountCheck(channels, config, guided, np.random.default_rng(config.seed + 3))
        start_terms = counts.terms(model)
        seconds += config.count_check_tries * (time.perf_counter() - t0)
    checks = _Checks(
        val_crop_losses,
        val_channel,
        len(channels),
        sure,
        counts,
        start_crops,
        start_held,
        start_all,
        start_terms,
    )
    return checks, seconds


def finetune_singlepass(
    start: SinglePassDenoiser,
    scans: Sequence[np.ndarray],
    config: FinetuneConfig | None = None,
    *,
    on_progress: Callable[[int, int, float, float | None], None] | None = None,
    cancel=None,
) -> FinetuneResult:
    """Fine-tune a copy of ``start`` on ``scans`` ((C, Y, X) or (Y, X) counts, noisy).

    Trains ``config.steps`` steps or until ``config.minutes`` of wall-clock would be spent
    (preparation and the checks after training included), whichever ends first;
    ``on_progress(step, total, loss, val_loss_or_None)``; ``cancel.is_set()`` stops early
    (the best weights so far are still kept or rejected as usual).
    """
    config = config or FinetuneConfig()
    began = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    channels = _prepare(scans, config.crop_size, config.val_fraction, config.val_block, config.seed)
    model = keras.models.clone_model(start.model)  # the same architecture as the file holds
    model.set_weights(start.model.get_weights())

    batch, val_batches, val_channel = _training_data(channels, start, config, rng)
    val_starts = range(0, 8 * len(val_batches), 8)

    def val_crop_losses(weight_floor: float) -> np.ndarray:
        """The held-back loss of every validation crop with the model's current weights."""
        return np.concatenate(
            [
                _crop_losses(t, model(x, training=False), weight_floor).numpy()
                for x, t in val_batches
            ]
        )

    # the starting model, once, on every check; their time tells what the blends' checks
    # after training will take, which comes out of training's share of ``minutes``
    checks, check_seconds = _start_checks(model, channels, config, val_crop_losses, val_channel)
    # ``fit`` scores its validation with the training's weights, the mean of the batches' means
    start_fit_crops = val_crop_losses(LOSS_WEIGHT_FLOOR)
    start_fit_loss = float(np.mean([start_fit_crops[i : i + 8].mean() for i in val_starts]))
    schedule = FitSchedule(
        steps=config.steps,
        learning_rate=config.learning_rate,
        val_every=config.val_every,
        lr_schedule="cosine",
        max_minutes=max(
            config.minutes - (time.perf_counter() - began + check_seconds) / 60.0,
            0.1 * config.minutes,
        ),
        min_lr=0.0,
        warmup_fraction=0.0,
        early_stop_patience=10**9,  # the time budget ends the run, not a plateau
    )
    fitted = fit(
        model,
        _loss,
        batch,
        val_batches,
        schedule,
        on_progress=on_progress,
        cancel=cancel,
    )
    result = FinetuneResult(start)
    result.steps, result.seconds = fitted.steps_done, fitted.seconds
    result.val_loss_start = result.val_loss_best = float(checks.start_crops.mean())
    result.history = [h for h in fitted.history if "val_loss" in h]
    if not fitted.best_val_loss < start_fit_loss:
        result.kept_start = True
        return result
    # ``fit`` left its best-validation weights in ``model``: now blends, channel by channel
    tuned = [np.array(w) for w in model.get_weights()]
    result.tuned_weights = tuned
    begin = [np.array(w) for w in start.model.get_weights()]

    def set_blend(t: float) -> None:
        model.set_weights([b + t * (w - b) for b, w in zip(begin, tuned, strict=True)])

    qualifying = _score_blends(model, set_blend, checks, config, result)
    qualifying = _count_checked(model, set_blend, qualifying, checks, config, result)
    if not qualifying:
        result.kept_start = True
        return result
    best_db, blend, best, result.channel_losses = qualifying[0]
    result.gain_z = gain_z(checks.start_crops, best)
    # the gain asked for (``min_gain_db``) is the count-domain estimate where it was made
    checked = result.blends_count_check.get(blend)
    result.gain_db = checked["median_gain_db"] if checked else best_db
    result.channel_gain_z = result.blends_channel_gain_z[blend]
    if (
        not result.gain_z > max(config.significance, 0.0)
        or not result.gain_db >= config.min_gain_db
    ):
        result.kept_start = True
        return result
    set_blend(blend)
    result.val_loss_best = float(best.mean())
    meta = _tuned_metadata(start, len(scans), result, blend, config)
    result.denoiser = SinglePassDenoiser(model, meta)
    return result


def train_finetune(
    scans,
    config: FinetuneConfig,
    *,
    on_progress=None,
    cancel=None,
    checkpoint_path=None,
    resume_from=None,
) -> SinglePassDenoiser:
    """The registry's training entry for method ``finetune``: load ``config.init`` (the
    shipped default model unless a file is named; ``resume_from`` overrides it), fine-tune
    on ``scans`` and return the better of the fine-tuned and the starting model (its
    ``metadata["finetune"]`` says which). ``checkpoint_path`` receives the result too."""
    from ..registry import load_model

    start = load_model(resume_from or config.init)
    if not isinstance(start, SinglePassDenoiser):
        from ..model_file import ModelFileError

        raise ModelFileError(
            f"fine-tuning starts from the default model or one fine-tuned from it; "
            f"{config.init!r} is a {start.metadata.get('method')!r} model."
        )
    # photon-starved scans are denoised by the default model's dark companion: start there
    start = start.for_scans(scans)
    result = finetune_singlepass(start, scans, config, on_progress=on_progress, cancel=cancel)
    denoiser = result.denoiser
    if result.kept_start:
        denoiser = SinglePassDenoiser(
            start.model,
            {
                **start.metadata,
                "finetune": {
                    "kept_start": True,
                    "steps": result.steps,
                    "val_loss_start": result.val_loss_start,
                    "val_loss_best": result.val_loss_best,
                },
            },
        )
    else:
        denoiser.metadata["finetune"]["kept_start"] = False
    if checkpoint_path is not None:
        denoiser.save(checkpoint_path)
    return denoiser
