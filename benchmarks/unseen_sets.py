"""Scans the default model's training never drew from: photon-starved dense objects and
detectors with offsets, gains and read noise it was not told about.

Two roles, kept apart (``docs/benchmarks.md`` says which set decided what):

- **validation** (decisions: whether a training stage is kept, the fine-tune rule):
  ``dark_validation`` (``synth.dense_electronics`` scenes with validation seeds, the
  generator the dark training stage samples) and ``detector_validation`` (validation
  phantom bags 5000+), both scanned by detectors V1/V2;
- **test** (looked at once per shipped model, in ``bench_default.py``): ``electronics``,
  photon-starved scenes from *other* generators (unseen phantom bags 900+ seen through a
  laptop-like slab; the held-apart ``skimage`` photographs as thick depth maps, 0.5-10%
  transmission), scanned by the two detectors of issue 24's outside test (A: 8 ADU per
  quantum, read noise 25 ADU, offset 200, doses 500 and 2000; B: 3 ADU, 6 ADU, offset 60,
  14-bit, doses 300 and 3000); and ``detectors``, ordinary scenes (the same photographs and
  bags) by three detectors at the edges of the range (C: 0.7 ADU/quantum, read 2, offset
  1000; D: 15 ADU, read 80, offset 100; E: 1.5 ADU, read 3, offset 50, 12-bit).

Every scan is ``(name, noisy (2, Y, X), clean (2, Y, X), code_max)`` as in
``bench_default.SETS``; ``TRUE_NOISE[name]`` holds its two channels' noise laws (raw
counts), which BM3D + GAT gets (the strongest baseline). The high energy is
``t ** 0.55`` of the low one at 0.28x its dose.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_xray_denoise import noise, synth
from napari_xray_denoise.phantom import make_bag

#: detectors: gain (ADU per quantum), read noise (ADU std), offset (ADU), top code
DETECTORS = {
    "V1": (5.0, 15.0, 120.0, 65535.0),
    "V2": (2.0, 4.0, 40.0, 16383.0),
    "A": (8.0, 25.0, 200.0, 65535.0),
    "B": (3.0, 6.0, 60.0, 16383.0),
    "C": (0.7, 2.0, 1000.0, 65535.0),
    "D": (15.0, 80.0, 100.0, 65535.0),
    "E": (1.5, 3.0, 50.0, 4095.0),
}
SHAPE = (320, 480)
TRUE_NOISE: dict[str, list[noise.NoiseModel]] = {}


def _scan(name: str, transmission_low: np.ndarray, detector: str, dose: float, rng):
    gain, read, offset, top = DETECTORS[detector]
    noisy, clean, laws = [], [], []
    for t, d in ((transmission_low, dose), (np.power(transmission_low, 0.55), 0.28 * dose)):
        s = synth.scan_detector(
            t, rng, dose=d, gain=gain, read_noise=read, offset=offset, code_max=top
        )
        noisy.append(s.noisy)
        clean.append(s.clean)
        laws.append(noise.NoiseModel(s.a, s.b))
    TRUE_NOISE[name] = laws
    return (name, np.stack(noisy), np.stack(clean), top)


def photo(name: str, shape=SHAPE) -> np.ndarray:
    """A held-apart ``skimage`` photograph as grey levels in [0, 1], cropped to ``shape``
    (``bench_default``'s set (b) takes 512x512)."""
    from skimage import color, data

    img = getattr(data, name)()
    if img.ndim == 3:
        img = color.rgb2gray(img[..., :3])
    img = np.asarray(img, np.float64)
    img = img / 255.0 if img.max() > 1.5 else img
    return img[: shape[0], : shape[1]]


def _bag_transmission(seed: int) -> np.ndarray:
    bag = make_bag(SHAPE, dose=1000.0, seed=seed, gain_streak_std=0.0)
    return np.asarray(bag.transmission[0], np.float64)


def _dark_bag(seed: int, rng) -> np.ndarray:
    """An unseen phantom bag behind a laptop-like slab (optical depth 2.4-3.2, with a
    gap of open air at one side now and then)."""
    t = _bag_transmission(seed) * np.exp(-rng.uniform(2.4, 3.2))
    return np.clip(t, 1e-6, 1.0)


def _dark_photo(name: str) -> np.ndarray:
    g = photo(name)
    return ndimage.gaussian_filter(np.exp(-(2.3 + 2.3 * (1.0 - g))), 0.6)


def _normal_photo(name: str) -> np.ndarray:
    g = photo(name)
    return ndimage.gaussian_filter(np.exp(-(3.0 * (1.0 - g) + 0.05)), 0.6)


def dark_validation():
    """Validation: photon-starved ``synth.dense_electronics`` scenes (seeds 7000+, which
    no training run draws: training draws from a running generator seeded by step)."""
    out = []
    for i, (det, dose) in enumerate(
        (("V1", 1000.0), ("V2", 500.0), ("V1", 3000.0), ("V2", 2000.0))
    ):
        rng = np.random.default_rng([7000, i])
        t = np.asarray(synth.dense_electronics(SHAPE, rng), np.float64)
        out.append(_scan(f"electronics {i} {det} dose {dose:g}", t, det, dose, rng))
    return out


def detector_validation():
    """Validation: validation phantom bags (5000+) by detectors V1 and V2."""
    out = []
    for i, (det, dose) in enumerate((("V1", 4000.0), ("V2", 3000.0))):
        rng = np.random.default_rng([7100, i])
        out.append(
            _scan(
                f"bag {5000 + i} {det} dose {dose:g}", _bag_transmission(5000 + i), det, dose, rng
            )
        )
    return out


def electronics_scans():
    """Test: photon-starved scenes from generators the dark training stage never used."""
    out = []
    scenes = [
        ("bag 910", lambda rng: _dark_bag(910, rng)),
        ("bag 911", lambda rng: _dark_bag(911, rng)),
        ("camera", lambda rng: _dark_photo("camera")),
        ("brick", lambda rng: _dark_photo("brick")),
    ]
    for j, (scene, make) in enumerate(scenes):
        for k, (det, dose) in enumerate((("A", 500.0), ("A", 2000.0), ("B", 300.0), ("B", 3000.0))):
            rng = np.random.default_rng([4343, j, k])
            out.append(_scan(f"dark {scene} {det} dose {dose:g}", make(rng), det, dose, rng))
    return out


def detector_scans():
    """Test: ordinary scenes by detectors at the edges of the range (C, D, E)."""
    out = []
    scenes = [
        ("bag 912", lambda: _bag_transmission(912)),
        ("astronaut", lambda: _normal_photo("astronaut")),
        ("coffee", lambda: _normal_photo("coffee")),
        ("rocket", lambda: _normal_photo("rocket")),
    ]
    for j, (scene, make) in enumerate(scenes):
        for k, (det, dose) in enumerate((("C", 20000.0), ("D", 3000.0), ("E", 2000.0))):
            rng = np.random.default_rng([4444, j, k])
            out.append(_scan(f"{scene} {det} dose {dose:g}", make(), det, dose, rng))
    return out


VALIDATION = {"dark validation": dark_validation, "detector validation": detector_validation}
TEST = {"electronics": electronics_scans, "detectors": detector_scans}


def line_shares(denoised, clean) -> tuple[float, float]:
    """(column, row) shares of the squared error (``fidelity.line_error_share``)."""
    from napari_xray_denoise.fidelity import line_error_share

    return tuple(float(v) for v in line_error_share(denoised, clean))
