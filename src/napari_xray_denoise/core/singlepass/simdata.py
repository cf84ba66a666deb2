"""Training pairs with exact ground truth for the single-pass network (numpy only).

Each sample is a crop of a clean transmission map, from a phantom bag (``phantom``,
either energy) or a procedural scene (``synth.random_scene``: clutter, circuit boards,
cables, dense small objects, meshes; or with ``photo_fraction`` a ``synth.photo_scene``,
natural-image texture from training photographs), scanned by
``synth.scan_transmission`` with random scanner settings covering what real scanners
write:

- dose 100..30000 quanta per air pixel (log-uniform; the high-energy channel of a
  200..20000 scan sees about 0.28x the low one),
- 12, 13 or 16-bit code ranges in 16-bit files, air at 75-100% of the range, clipping,
- read noise 1e-5..2e-3 of the range, rounding, hot/dead pixels now and then,
- column gain streaks of 0-1.5% (what flat-fielding leaves, or the detector's whole gain
  pattern when a scan has no air to estimate it from; part of the scene, as a scanner
  records it: the network must keep them, not smooth them as noise).

With ``SimSettings.dark_fraction`` a share of the crops are photon-starved scenes
(``synth.dense_electronics``: laptops, boards, batteries, stacked metal, most pixels at
0.5-50 quanta), and with ``detector_fraction`` a share of the scans are made by a detector
described as a camera is (``synth.scan_detector``: gain 0.5-20 ADU per quantum, read
noise 1-100 ADU, offset 0-2000 ADU, 12-, 14- or 16-bit), so the network meets the dark
offsets and read noise of detectors no one told it about.

Inputs are ``(u_noisy, sigma_u)`` in the network domain (``vst``) computed with the
noise law jittered by a few percent (a fitted law is never exact); targets are the clean
scan in the same domain. For the guided network (``guided=True``) the other energy of the
same scene follows, scanned by the same detector with its own dose and independent
noise: ``(u, sigma_u, g, sigma_g)`` (the phantom's two energies; for a procedural scene
``t ** k`` with ``k`` 0.35-0.8 varying smoothly, as attenuation ratios vary with the
material), and with probability ``no_partner_fraction`` no partner (``g = sigma_g = 0``:
a single-energy scan). Scene seeds: phantom bags 2000+ (training) and 5000+
(validation); the shipped sample bags (101, 202, 303) and the benchmark bags (900+) are
never used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import synth, vst
from ...phantom import make_bag

TRAIN_SEED_BASE = 2000
VAL_SEED_BASE = 5000
_CODE_MAXES = (4095.0, 8191.0, 65535.0)
_CODE_WEIGHTS = (0.25, 0.15, 0.6)
#: crops must fit the network's 2x2x2 downsampling (``singlepass.SIZE_MULTIPLE``)
_SIZE_MULTIPLE = 8
_BAG_SHAPES = ((400, 640), (480, 800), (640, 1000), (800, 1280))


@dataclass
class SimSettings:
    """Ranges of the scanner simulation (see the module docstring)."""

    dose: tuple[float, float] = (100.0, 30000.0)
    white_fraction: tuple[float, float] = (0.75, 1.0)
    read_std_fraction: tuple[float, float] = (1e-5, 2e-3)
    defect_probability: float = 0.3
    defect_fraction: float = 2e-4
    #: per-column gain std, uniform in 0..this: up to 0.3% until 2026-11-30, when a model
    #: so trained smoothed away the 1% streaks of scans without air (the benchmark's set
    #: (b)) as noise: 2-59% of its error there (median 12%) was column-constant
    residual_streak_std: float = 0.015
    noise_law_jitter: float = 0.08
    phantom_fraction: float = 0.5
    partner_dose_ratio: tuple[float, float] = (0.25, 4.0)
    no_partner_fraction: float = 0.15
    #: of the non-phantom crops, the fraction that are ``synth.photo_scene`` (natural-image
    #: texture) rather than ``synth.random_scene``
    photo_fraction: float = 0.0
    #: of all crops, the fraction that are photon-starved ``synth.dense_electronics``
    dark_fraction: float = 0.0
    #: of all scans, the fraction made by a camera-style detector (``synth.scan_detector``)
    detector_fraction: float = 0.0
    detector_gain: tuple[float, float] = (0.5, 20.0)
    detector_read_noise: tuple[float, float] = (1.0, 100.0)
    detector_offset: tuple[float, float] = (0.0, 2000.0)


def phantom_transmissions(seeds, rng) -> list[np.ndarray]:
    """Clean transmission maps (both energies as separate images) of phantom bags."""
    out = []
    for seed in seeds:
        shape = _BAG_SHAPES[int(rng.integers(len(_BAG_SHAPES)))]
        bag = make_bag(shape, dose=1000.0, seed=int(seed), gain_streak_std=0.0)
        out.extend(np.asarray(bag.transmission[c], np.float32) for c in range(2))
    return out


def _log_uniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _scan(transmission, rng, settings: SimSettings, scanner: dict, dose: float):
    """Noisy and clean network-domain images and the noise level of one energy."""
    code_max = scanner["code_max"]
    if "gain" in scanner:
        scanned = synth.scan_detector(transmission, rng, dose=dose, **scanner)
        # the denoiser takes a scan's range from its pixels (``vst.code_range``): a dark
        # scan from a 16-bit detector is normalised as a 10- or 12-bit one; a crop's own
        # range and the detector's bound what the whole scan's can be
        if rng.uniform() < 0.5:
            code_max = vst.code_range(scanned.noisy)
    else:
        scanned = synth.scan_transmission(transmission, rng, dose=dose, **scanner)
    j = settings.noise_law_jitter
    a_fit = scanned.a * float(np.exp(rng.uniform(-j, j)))
    b_fit = scanned.b * float(np.exp(rng.uniform(-3 * j, 3 * j)))
    u = vst.to_network(scanned.noisy, a_fit, b_fit, code_max)
    target = vst.to_network(scanned.clean, a_fit, b_fit, code_max)
    return u, target, vst.noise_level(a_fit, b_fit, code_max)


_DETECTOR_CODE_MAXES = (4095.0, 16383.0, 65535.0)


def _detector(rng, settings: SimSettings) -> tuple[dict, float]:
    """A camera-style detector (gain, read noise, offset, bit depth) and a dose whose air
    level fits its range: ``(scanner keywords, dose)``."""
    for _ in range(100):
        code_max = float(rng.choice(_DETECTOR_CODE_MAXES))
        gain = _log_uniform(rng, *settings.detector_gain)
        offset = float(rng.uniform(*settings.detector_offset)) * code_max / 65535.0
        top = (rng.uniform(*settings.white_fraction) * code_max - offset) / gain
        if top >= 2 * settings.dose[0]:
            break
    dose = _log_uniform(rng, settings.dose[0], max(min(settings.dose[1], top), settings.dose[0]))
    scanner = {
        "code_max": code_max,
        "gain": gain,
        "read_noise": _log_uniform(rng, *settings.detector_read_noise),
        "offset": offset,
        "column_gain_std": rng.uniform(0, settings.residual_streak_std),
        "defect_fraction": settings.defect_fraction
        if rng.uniform() < settings.defect_probability
        else 0.0,
    }
    return scanner, dose


def _scanner(rng, settings: SimSettings) -> dict:
    return {
        "code_max": float(rng.choice(_CODE_MAXES, p=_CODE_WEIGHTS)),
        "white_fraction": rng.uniform(*settings.white_fraction),
        "read_std_fraction": _log_uniform(rng, *settings.read_std_fraction),
        "column_gain_std": rng.uniform(0, settings.residual_streak_std),
        "defect_fraction": settings.defect_fraction
        if rng.uniform() < settings.defect_probability
        else 0.0,
    }


def simulate_pair(transmission: np.ndarray, rng, settings: SimSettings, partner=None):
    """One (input (Y, X, 2), target (Y, X, 1)) float32 pair from a clean transmission crop;
    with ``partner`` (the other energy's transmission, or ``False`` for none) the input is
    the guided network's ``(Y, X, 4)``."""
    if settings.detector_fraction > 0 and rng.uniform() < settings.detector_fraction:
        scanner, dose = _detector(rng, settings)
    else:
        scanner = _scanner(rng, settings)
        dose = _log_uniform(rng, *settings.dose)
    u, target, sigma = _scan(transmission, rng, settings, scanner, dose)
    channels = [u, np.full_like(u, sigma)]
    if partner is False:
        channels += [np.zeros_like(u), np.zeros_like(u)]
    elif partner is not None:
        ratio = _log_uniform(rng, *settings.partner_dose_ratio)
        g, _, sigma_g = _scan(partner, rng, settings, scanner, dose * ratio)
        channels += [g, np.full_like(g, sigma_g)]
    return np.stack(channels, -1), target[..., None]


def partner_energy(transmission: np.ndarray, rng) -> np.ndarray:
    """The other energy of a procedural scene: ``t ** k``, ``k`` in 0.35-0.8 varying
    smoothly over the scene (materials attenuate the two energies in different ratios)."""
    k = rng.uniform(0.35, 0.8) * (1.0 + 0.15 * synth._fractal(transmission.shape, rng, 4.0))
    return np.power(np.clip(transmission, 1e-6, 1.0), np.clip(k, 0.2, 1.0)).astype(np.float32)


class PairSampler:
    """Endless batches of simulated pairs; the phantom pool is refreshed as it goes.

    ``pool``: clean transmission maps to crop from (phantom bags); ``crop``: square crop
    size (a multiple of 8). ``refresh()`` replaces the oldest pool bag by a new one (new
    seed), so over a long run the network never sees the same bag twice for long.
    """

    def __init__(
        self,
        pool,
        rng,
        *,
        crop: int = 128,
        settings: SimSettings | None = None,
        next_seed: int = TRAIN_SEED_BASE,
        guided: bool = False,
    ):
        if crop % _SIZE_MULTIPLE != 0:
            raise ValueError(f"crop must be a multiple of {_SIZE_MULTIPLE}, got {crop}.")
        self.pool = list(pool)
        self.rng = rng
        self.crop = int(crop)
        self.settings = settings or SimSettings()
        self.next_seed = int(next_seed)
        self.guided = bool(guided)

    def refresh(self) -> None:
        self.pool = self.pool[2:] + phantom_transmissions([self.next_seed], self.rng)
        self.next_seed += 1

    def _crop(self) -> tuple[np.ndarray, np.ndarray]:
        """A crop of one energy and the same crop of the other (a phantom bag's two
        energies sit side by side in the pool; a procedural scene gets a made-up one)."""
        c = self.crop
        if self.settings.dark_fraction > 0 and self.rng.uniform() < self.settings.dark_fraction:
            out = synth.dense_electronics((c, c), self.rng)
            partner = partner_energy(out, self.rng) if self.guided else out
        elif self.pool and self.rng.uniform() < self.settings.phantom_fraction:
            i = int(self.rng.integers(len(self.pool)))
            img, other = self.pool[i], self.pool[i ^ 1] if (i ^ 1) < len(self.pool) else None
            if other is None or other.shape != img.shape:
                other = partner_energy(img, self.rng)
            y = int(self.rng.integers(0, img.shape[0] - c + 1))
            x = int(self.rng.integers(0, img.shape[1] - c + 1))
            out, partner = img[y : y + c, x : x + c], other[y : y + c, x : x + c]
        else:
            photo = self.settings.photo_fraction > 0 and (
                self.rng.uniform() < self.settings.photo_fraction
            )
            out = (synth.photo_scene if photo else synth.random_scene)((c, c), self.rng)
            partner = partner_energy(out, self.rng) if self.guided else out
        k = int(self.rng.integers(4))
        flip = self.rng.uniform() < 0.5

        def augment(a):
            a = np.rot90(a, k)
            return np.ascontiguousarray(a[:, ::-1] if flip else a)

        return augment(out), augment(partner)

    def _sample(self):
        own, partner = self._crop()
        if not self.guided:
            return simulate_pair(own, self.rng, self.settings)
        if self.rng.uniform() < self.settings.no_partner_fraction:
            partner = False
        return simulate_pair(own, self.rng, self.settings, partner)

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self._sample() for _ in range(n)]
        return (
            np.stack([p[0] for p in pairs]).astype(np.float32),
            np.stack([p[1] for p in pairs]).astype(np.float32),
        )


def validation_set(
    n_bags: int = 3,
    n_scenes: int = 48,
    crop: int = 128,
    seed: int = 777,
    *,
    guided: bool = False,
    dark_fraction: float = 0.0,
    detector_fraction: float = 0.0,
):
    """A fixed validation set (same seed, same crops every call): ``n_scenes`` crops of
    validation phantom bags (seeds 5000+) and procedural scenes at random scanner
    settings, with the exact noise law; ``dark_fraction`` and ``detector_fraction`` as in
    ``SimSettings``. Returns (inputs, targets) as ``PairSampler.batch``."""
    rng = np.random.default_rng(seed)
    pool = phantom_transmissions(range(VAL_SEED_BASE, VAL_SEED_BASE + n_bags), rng)
    sampler = PairSampler(
        pool,
        rng,
        crop=crop,
        settings=SimSettings(
            noise_law_jitter=0.0,
            phantom_fraction=0.5,
            dark_fraction=dark_fraction,
            detector_fraction=detector_fraction,
        ),
        guided=guided,
    )
    xs, ts = sampler.batch(n_scenes)
    return xs, ts
