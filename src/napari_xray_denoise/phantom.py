"""Physics-based dual-energy X-ray baggage phantom with exact noise-free ground truth.

``make_bag`` draws a bag of objects (clothing, books, food, bottles of liquid, plastics,
a laptop, steel tools, cables, coins and, by default, an explosive-like organic block)
as per-material path-length maps, sends a polychromatic tube spectrum through them
(Beer-Lambert with tabulated mass attenuation, 10-160 keV), records the result in a
low- and a high-energy detector channel and adds the noise and artefacts of a
line-scan scanner.

Geometry and axes
    Arrays are ``(channel, y, x)``; channel 0 is the low-energy, channel 1 the
    high-energy detector. Axis 0 (y, rows) is the belt / scan direction: each row is
    one read-out of the detector line. Axis 1 (x, columns) runs along the detector
    line, one column per detector element, so per-element gain differences show as
    stripes that run along axis 0. A 640 x 1000 image spans 51 x 80 cm (0.08 cm
    pixels); any other shape covers the same area, with pixel pitch
    0.08 cm * sqrt(640 * 1000 / (Y * X)) (``params["pixel_size_cm"]``), so one image
    always shows one whole bag.

Spectra (``ScannerModel``)
    Kramers tube spectrum N(E) ~ (kVp - E) / E at 150 kVp behind 2.5 mm aluminium;
    low channel: thin 0.3 mm CsI front scintillator; high channel: 0.5 mm copper and a
    4 mm CsI scintillator behind it. Both are energy-integrating: S_c(E) is
    E * N(E) * absorbed fraction, on 2 keV bins. Transmission per channel is
    T_c = sum_E S_c(E) exp(-sum_m mu_m(E) t_m) / sum_E S_c(E). Photon noise is
    counted in detected quanta (Swank factor taken as 1); by default the high channel
    gets the physical ratio of absorbed photons, about 0.28 times the low-channel dose.

Signal and noise model (channel c, pixel (y, x))
    q  = dose_c * s_c[x] * T_c[y, x]           expected detected quanta
    clean = g_c * q = white_level * s_c[x] * T_c[y, x]     (counts, float64)
    noisy = clip(round(g_c * Poisson(q) + Normal(0, read_noise_c**2)), 0, 65535)
    with g_c = white_level / dose_c (air normalisation: unobstructed air maps to
    ``white_level`` counts), s_c the per-element efficiency streaks (mean 1) and T_c
    the detector-blurred polychromatic transmission (1 in air). The streaks scale
    the quanta, not the gain, so one affine Poisson-Gaussian law (Foi et al. 2008)
    holds at every pixel that is not clipped::

        E[noisy_c] = clean_c,   Var[noisy_c] = gain_c * clean_c + read_std_c**2

    where ``scan.noise[c] = NoiseParams(gain_c, read_std_c)`` and read_std_c**2 =
    read_noise_c**2 + 1/12 includes the rounding to integers.

Attenuation data come from the shipped table ``data/attenuation.npz`` (Elam tables via
xraydb, see ``data/attenuation_source.txt``); this module never imports xraydb.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np
from scipy import ndimage

__all__ = [
    "MATERIAL_CLASSES",
    "MATERIAL_CLASS_OF",
    "AttenuationTable",
    "NoiseParams",
    "PhantomScan",
    "ScannerModel",
    "DetectorSpectra",
    "load_attenuation_table",
    "detector_spectra",
    "polychromatic_transmission",
    "make_bag",
    "noise_free_uint16",
]

#: Class ids of ``PhantomScan.labels`` (uint8) and their names.
MATERIAL_CLASSES: dict[int, str] = {
    0: "air",
    1: "organic",
    2: "liquid",
    3: "plastic",
    4: "explosive",
    5: "aluminium",
    6: "copper",
    7: "steel",
}

#: Material (key of ``PhantomScan.thickness``) -> class id in ``MATERIAL_CLASSES``.
MATERIAL_CLASS_OF: dict[str, int] = {
    "nylon": 1,  # bag fabric
    "cellulose": 1,  # clothing, paper
    "sucrose": 1,  # food
    "water": 2,
    "ethanol": 2,
    "polyethylene": 3,
    "pvc": 3,
    "pet": 3,
    "tnt": 4,
    "rdx": 4,
    "aluminium": 5,
    "copper": 6,
    "steel": 7,
}

UINT16_MAX = 65535
_REFERENCE_SHAPE = (640, 1000)
_REFERENCE_PITCH_CM = 0.08
_LABEL_ENERGY_KEV = 60.0
_AIR_ATTENUATION = 0.02  # mu*t at 60 keV below which a pixel is labelled air


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class AttenuationTable:
    """Mass attenuation mu/rho (cm^2/g, shape (materials, energies)) at ``energies_kev``."""

    energies_kev: np.ndarray
    names: tuple[str, ...]
    densities_g_cm3: np.ndarray
    mu_rho_cm2_g: np.ndarray
    source: str

    def linear_mu(self, name: str) -> np.ndarray:
        """Linear attenuation (1/cm) of ``name`` at its tabulated density, per energy."""
        i = self.names.index(name)
        return self.mu_rho_cm2_g[i] * self.densities_g_cm3[i]


@lru_cache(maxsize=1)
def load_attenuation_table() -> AttenuationTable:
    """Load the shipped table ``napari_xray_denoise/data/attenuation.npz``."""
    ref = resources.files("napari_xray_denoise").joinpath("data", "attenuation.npz")
    with ref.open("rb") as fh, np.load(fh, allow_pickle=False) as data:
        return AttenuationTable(
            energies_kev=np.asarray(data["energies_kev"], dtype=np.float64),
            names=tuple(str(n) for n in data["names"]),
            densities_g_cm3=np.asarray(data["densities_g_cm3"], dtype=np.float64),
            mu_rho_cm2_g=np.asarray(data["mu_rho_cm2_g"], dtype=np.float64),
            source=str(data["source"]),
        )


# ------------------------------------------------------------------- spectra
@dataclass(frozen=True)
class ScannerModel:
    """Tube and detector stack of a dual-energy line scanner (lengths in cm)."""

    kvp: float = 150.0  #: tube voltage; Kramers spectrum N(E) ~ (kvp - E) / E
    tube_filter_al_cm: float = 0.25  #: inherent + added aluminium filtration
    low_csi_cm: float = 0.03  #: thin front CsI scintillator (low-energy channel)
    high_filter_cu_cm: float = 0.05  #: copper between the two scintillators
    high_csi_cm: float = 0.4  #: thick rear CsI scintillator (high-energy channel)
    energy_step_kev: int = 2  #: spacing of the energy bins taken from the 1 keV table


@dataclass(frozen=True)
class DetectorSpectra:
    """Normalised detector response weights S_c(E) of both channels.

    ``weights`` (2, E) sums to 1 per channel: energy-integrating response
    E * N(E) * absorbed fraction. ``quanta_high_per_low`` is the ratio of absorbed
    photons high/low in air (sets the high channel's dose).
    """

    energies_kev: np.ndarray
    weights: np.ndarray
    material_mu: dict[str, np.ndarray]  #: linear attenuation (1/cm) on ``energies_kev``
    quanta_high_per_low: float


def detector_spectra(
    model: ScannerModel | None = None, table: AttenuationTable | None = None
) -> DetectorSpectra:
    """Compute the low/high channel response weights for ``model`` (default ScannerModel())."""
    model = model or ScannerModel()
    table = table or load_attenuation_table()
    if not 20.0 <= model.kvp <= float(table.energies_kev[-1]):
        raise ValueError(f"kvp must be between 20 and {table.energies_kev[-1]:g} kV.")
    keep = np.zeros(table.energies_kev.size, dtype=bool)
    keep[:: max(int(model.energy_step_kev), 1)] = True
    keep &= table.energies_kev < model.kvp
    energies = table.energies_kev[keep]
    mu = {name: table.linear_mu(name)[keep] for name in table.names}
    photons = (model.kvp - energies) / energies * np.exp(-mu["aluminium"] * model.tube_filter_al_cm)
    absorbed_low = 1.0 - np.exp(-mu["csi"] * model.low_csi_cm)
    to_high = np.exp(-mu["csi"] * model.low_csi_cm - mu["copper"] * model.high_filter_cu_cm)
    absorbed_high = to_high * (1.0 - np.exp(-mu["csi"] * model.high_csi_cm))
    quanta = np.stack([photons * absorbed_low, photons * absorbed_high])
    weights = quanta * energies
    weights /= weights.sum(axis=1, keepdims=True)
    used = weights.max(axis=0) > 1e-5 * weights.max()
    weights = weights[:, used] / weights[:, used].sum(axis=1, keepdims=True)
    return DetectorSpectra(
        energies_kev=energies[used],
        weights=weights,
        material_mu={name: m[used] for name, m in mu.items()},
        quanta_high_per_low=float(quanta[1].sum() / quanta[0].sum()),
    )


def polychromatic_transmission(
    thickness_cm: Mapping[str, np.ndarray], spectra: DetectorSpectra, chunk: int = 1 << 16
) -> np.ndarray:
    """Air-normalised transmission sum_E S_c(E) exp(-sum_m mu_m(E) t_m), shape (2, *t.shape).

    ``thickness_cm`` maps material names to equally shaped path-length maps (cm, >= 0).
    Returns float64 values in (0, 1]; exactly 1 where every thickness is 0. The energy
    sum of the absorbed fraction runs in float32 (absolute error below 1e-6), one matrix
    product per chunk of pixels.
    """
    names = [n for n, t in thickness_cm.items() if np.any(t)]
    shape = next(iter(thickness_cm.values())).shape
    out = np.ones((2, *shape))
    if not names:
        return out
    mu = np.stack([spectra.material_mu[n] for n in names], axis=1).astype(np.float32)  # (E, M)
    t = np.stack([np.asarray(thickness_cm[n], np.float32).ravel() for n in names])  # (M, P)
    w = spectra.weights.astype(np.float32)
    flat = out.reshape(2, -1)
    for start in range(0, t.shape[1], chunk):
        att = mu @ t[:, start : start + chunk]  # (E, chunk) optical depth
        np.expm1(-att, out=att)  # -(absorbed fraction): exact 0 in air, precise when thin
        flat[:, start : start + chunk] += w @ att
    return out


# ------------------------------------------------------------------ drawing
class _Canvas:
    """Per-material path-length maps (cm, float32) and shape primitives in pixel units."""

    def __init__(self, shape: tuple[int, int], pitch_cm: float, rng: np.random.Generator):
        self.shape = shape
        self.pitch = pitch_cm
        self.t = {name: np.zeros(shape, np.float32) for name in MATERIAL_CLASS_OF}
        # folds and wrinkles: smooth random field with 8 cm and 2 cm features
        coarse, fine = (
            _smooth_field(shape, 8.0 / pitch_cm, rng),
            _smooth_field(shape, 2.0 / pitch_cm, rng),
        )
        self.texture = (0.8 * coarse + 0.6 * fine).astype(np.float32)

    def px(self, cm: float) -> float:
        return cm / self.pitch

    def window(self, cy: float, cx: float, radius: float):
        """Slices around (cy, cx) and the pixel offsets (yy, xx) from it, or None if off-image."""
        y0, y1 = max(int(cy - radius) - 2, 0), min(int(cy + radius) + 3, self.shape[0])
        x0, x1 = max(int(cx - radius) - 2, 0), min(int(cx + radius) + 3, self.shape[1])
        if y0 >= y1 or x0 >= x1:
            return None
        yy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
        xx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
        return (slice(y0, y1), slice(x0, x1)), yy, xx

    def add(self, material: str, region, values_cm) -> None:
        if region is not None:
            self.t[material][region] += values_cm

    # Shapes return (region, values) with values in [0, 1] (coverage/profile) or in cm.
    def box(self, cy, cx, a, b, angle=0.0, corner=0.0, inset=None, ramp=1.0):
        """Coverage of a rounded rectangle, half-sizes a (along angle) and b, in pixels.

        ``ramp`` (px) widens the edge from 0 to full coverage (soft objects). With
        ``inset`` (px) also returns the coverage of the same box shrunk by ``inset`` on
        the same region: (region, outer, inner), e.g. for hollow shells.
        """
        win = self.window(cy, cx, math.hypot(a, b))
        if win is None:
            return (None, 0.0) if inset is None else (None, 0.0, 0.0)
        region, yy, xx = win
        u, v = _rotate(yy, xx, angle)
        outer = _box_coverage(u, v, a, b, corner, ramp)
        if inset is None:
            return region, outer
        return region, outer, _box_coverage(u, v, a - inset, b - inset, corner, ramp)

    def ellipsoid(self, cy, cx, a, b, angle=0.0):
        """Normalised path length sqrt(1 - r^2) through an ellipsoid, half-axes a, b (px)."""
        win = self.window(cy, cx, max(a, b))
        if win is None:
            return None, 0.0
        region, yy, xx = win
        u, v = _rotate(yy, xx, angle)
        return region, np.sqrt(np.clip(1.0 - (u / a) ** 2 - (v / b) ** 2, 0.0, None))

    def tube(self, points, radius, inner_radius=None):
        """Chord length (cm) through a round tube of ``radius`` px along a polyline (y, x).

        With ``inner_radius`` returns (region, wall_cm, core_cm) for a hollow tube.
        """
        pts = np.asarray(points, dtype=np.float64)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        centre = (lo + hi) / 2
        win = self.window(centre[0], centre[1], float(np.max(hi - lo)) / 2 + radius)
        if win is None:
            return (None, 0.0) if inner_radius is None else (None, 0.0, 0.0)
        region, yy, xx = win
        rel = (pts - centre).astype(np.float32)
        dist2 = np.full(np.broadcast_shapes(yy.shape, xx.shape), np.inf, np.float32)
        for (y0, x0), (y1, x1) in zip(rel[:-1], rel[1:], strict=True):
            dy, dx = y1 - y0, x1 - x0
            frac = np.clip(((yy - y0) * dy + (xx - x0) * dx) / max(dy * dy + dx * dx, 1e-9), 0, 1)
            np.minimum(dist2, (yy - y0 - frac * dy) ** 2 + (xx - x0 - frac * dx) ** 2, out=dist2)
        outer = _chord_cm(dist2, radius, self.pitch)
        if inner_radius is None:
            return region, outer
        core = _chord_cm(dist2, inner_radius, self.pitch)
        return region, np.clip(outer - core, 0.0, None), core

    def ring(self, cy, cx, ry, rx, radius, angle=0.0, n=24):
        """Chord (cm) through an elliptical ring of tube ``radius``; rx along ``angle`` (px)."""
        phi = np.linspace(0, 2 * np.pi, n + 1)
        u, v = rx * np.cos(phi), ry * np.sin(phi)
        c, s = math.cos(angle), math.sin(angle)
        return self.tube(np.stack([cy + u * s + v * c, cx + u * c - v * s], axis=1), radius)


def _box_coverage(u, v, a, b, corner, ramp=1.0):
    """Anti-aliased coverage in [0, 1] of a rounded box from its signed distance (px).

    Coverage rises linearly over ``ramp`` px across the edge (1 px: plain anti-aliasing).
    """
    a, b = max(a, 0.0), max(b, 0.0)
    corner = min(corner, a, b)
    qu, qv = np.abs(u) - (a - corner), np.abs(v) - (b - corner)
    dist = np.hypot(np.maximum(qu, 0), np.maximum(qv, 0)) + np.minimum(np.maximum(qu, qv), 0)
    ramp = max(ramp, 1.0)
    return np.clip((0.5 * ramp - (dist - corner)) / ramp, 0.0, 1.0)


def _chord_cm(dist2, radius, pitch_cm):
    """Chord (cm) through a cylinder of ``radius`` px at squared distance ``dist2`` (px^2).

    Wires thinner than a pixel are widened to 1 px with the same cross-section area.
    """
    width = max(radius, 1.0)
    scale = (radius / width) ** 2 * pitch_cm
    return 2.0 * scale * np.sqrt(np.clip(width**2 - dist2, 0.0, None))


def _rotate(yy, xx, angle):
    """Local coordinates: u along the direction ``angle`` (radians from +x), v across."""
    c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    return xx * c + yy * s, yy * c - xx * s


def _along(cy, cx, angle, dist):
    """Point ``dist`` px from (cy, cx) along ``angle``."""
    return cy + dist * math.sin(angle), cx + dist * math.cos(angle)


def _smooth_field(shape, scale_px, rng):
    """Zero-mean, unit-std smooth random field (float32) with features ~``scale_px`` wide."""
    step = max(int(scale_px / 2), 1)
    coarse = rng.standard_normal((shape[0] // step + 3, shape[1] // step + 3))
    coarse = ndimage.gaussian_filter(coarse, 1.0, mode="wrap")
    zoomed = ndimage.zoom(coarse, step, order=1)[: shape[0], : shape[1]].astype(np.float32)
    return (zoomed - zoomed.mean()) / max(float(zoomed.std()), 1e-6)


# ------------------------------------------------------------------ objects
# Each object draws itself around (cy, cx) px; ``bag`` gives the bag's half-sizes (px)
# and angle. Sizes are in cm (converted with cv.px), path lengths in cm of solid material.
@dataclass(frozen=True)
class _Bag:
    cy: float
    cx: float
    hy: float
    hx: float
    angle: float

    @property
    def long_angle(self) -> float:
        """Direction of the bag's long side (radians from +x)."""
        return self.angle if self.hx >= self.hy else self.angle + np.pi / 2


def _clothing(cv: _Canvas, cy, cx, rng, bag: _Bag):
    size = min(bag.hy, bag.hx)
    a, b = size * rng.uniform(0.45, 0.8), size * rng.uniform(0.3, 0.6)
    region, cover = cv.box(cy, cx, a, b, rng.uniform(0, np.pi), corner=0.3 * b, ramp=0.3 * b)
    if region is not None:
        stack_cm = rng.uniform(4, 10) * rng.uniform(0.15, 0.3)  # folded fabric, mostly air
        folds = np.clip(1.0 + 0.4 * cv.texture[region], 0.2, None)
        cv.add("cellulose", region, stack_cm * np.sqrt(cover) * folds)


def _book(cv, cy, cx, rng, bag):
    a, b = cv.px(rng.uniform(9, 15)), cv.px(rng.uniform(7, 11))
    region, cover = cv.box(cy, cx, a, b, rng.uniform(0, np.pi), corner=1)
    cv.add("cellulose", region, cover * rng.uniform(1.5, 4) * 0.6)


def _food(cv, cy, cx, rng, bag):
    a, b = cv.px(rng.uniform(4, 10)), cv.px(rng.uniform(3, 7))
    region, prof = cv.ellipsoid(cy, cx, a, b, rng.uniform(0, np.pi))
    cv.add("sucrose", region, prof * rng.uniform(3, 7) * rng.uniform(0.5, 0.8))


def _bottle(cv, cy, cx, rng, bag):
    angle, half, radius = (
        rng.uniform(0, np.pi),
        cv.px(rng.uniform(9, 14)),
        cv.px(rng.uniform(3, 4.5)),
    )
    ends = [_along(cy, cx, angle, -half), _along(cy, cx, angle, half)]
    region, wall, liquid = cv.tube(ends, radius, radius - cv.px(0.04))
    cv.add("pet", region, wall)
    cv.add(str(rng.choice(["water", "water", "ethanol"])), region, liquid)
    cap = _along(cy, cx, angle, half + radius + cv.px(1))
    region, cover = cv.box(*cap, cv.px(1.2), cv.px(1.5), angle)
    cv.add("polyethylene", region, 2.0 * cover)


def _plastic_box(cv, cy, cx, rng, bag):
    a, b, angle = cv.px(rng.uniform(6, 12)), cv.px(rng.uniform(4, 8)), rng.uniform(0, np.pi)
    region, outer, inner = cv.box(cy, cx, a, b, angle, corner=cv.px(1), inset=1.5)
    material = str(rng.choice(["polyethylene", "pvc"]))
    cv.add(material, region, 0.4 * outer + rng.uniform(2, 5) * (outer - inner))  # walls edge-on


def _laptop(cv, cy, cx, rng, bag):
    a = min(cv.px(rng.uniform(15, 18)), 0.8 * max(bag.hy, bag.hx))
    b = min(cv.px(rng.uniform(10.5, 12.5)), 0.8 * min(bag.hy, bag.hx))
    angle = bag.long_angle + rng.normal(0, 0.15)
    region, shell, inner = cv.box(cy, cx, a, b, angle, corner=cv.px(1.2), inset=1.0)
    cv.add("aluminium", region, 0.25 * shell + 0.8 * (shell - inner))  # chassis, side walls
    cv.add("polyethylene", region, 0.3 * inner)  # keyboard and plastics

    def at(du, dv):  # point at fractions (du, dv) of the half-sizes
        return (
            cy + du * a * math.sin(angle) + dv * b * math.cos(angle),
            cx + du * a * math.cos(angle) - dv * b * math.sin(angle),
        )

    def part(du, dv, fa, fb):
        return cv.box(*at(du, dv), fa * a, fb * b, angle, corner=1)

    region, cover = part(0.0, 0.55, 0.7, 0.35)  # battery: Al/Cu foils, cobalt-rich cathode
    cv.add("aluminium", region, 0.35 * cover)
    cv.add("copper", region, 0.07 * cover)
    region, cover = part(-0.1, -0.45, 0.6, 0.35)  # main board
    cv.add("copper", region, 0.025 * cover)
    region, cover = part(0.2, -0.5, 0.12, 0.15)  # heat sink
    cv.add("copper", region, 0.25 * cover)
    for du in (-0.8, 0.8):
        region, cover = part(du, 0.0, 0.06, 0.1)  # speaker magnets
        cv.add("steel", region, 0.4 * cover)
        region, cover = part(du * 0.7, -0.95, 0.12, 0.04)  # hinges
        cv.add("steel", region, 0.5 * cover)
    for du in (-0.95, 0.0, 0.95):  # screws
        for dv in (-0.92, 0.92):
            region, prof = cv.ellipsoid(*at(du, dv), cv.px(0.3), cv.px(0.3))
            cv.add("steel", region, 0.4 * prof)


def _steel_tool(cv, cy, cx, rng, bag):
    kind, angle = int(rng.integers(4)), rng.uniform(0, np.pi)
    handle_material = str(rng.choice(["polyethylene", "pvc"]))
    if kind == 0:  # screwdriver
        tip, hilt = _along(cy, cx, angle, cv.px(-10)), _along(cy, cx, angle, cv.px(2))
        cv.add("steel", *cv.tube([tip, hilt], cv.px(0.3)))
        cv.add(handle_material, *cv.tube([hilt, _along(cy, cx, angle, cv.px(12))], cv.px(1.4)))
    elif kind == 1:  # spanner with ring ends
        length = cv.px(rng.uniform(7, 10))
        region, cover = cv.box(cy, cx, length, cv.px(0.8), angle, corner=cv.px(0.3))
        cv.add("steel", region, 0.5 * cover)
        for sign in (-1, 1):
            end = _along(cy, cx, angle, sign * length)
            cv.add("steel", *cv.ring(*end, cv.px(1.1), cv.px(1.1), cv.px(0.45)))
    elif kind == 2:  # knife: tapered blade, tang and a plastic handle
        length = cv.px(rng.uniform(8, 11))
        win = cv.window(*_along(cy, cx, angle, length / 2), length / 2 + 2)
        if win is not None:
            region, yy, xx = win
            u, v = _rotate(yy, xx, angle)
            u = u + length / 2  # 0 at the handle end, ``length`` at the tip
            half_width = cv.px(1.3) * np.clip((length - u) / length, 0, 1) + 0.5
            blade = np.clip(half_width - np.abs(v), 0, 1) * np.clip(u + 0.5, 0, 1)
            cv.add("steel", region, 0.2 * blade * (u < length))
        handle = _along(cy, cx, angle, cv.px(-5))
        cv.add(handle_material, *cv.box(*handle, cv.px(5), cv.px(1.2), angle, corner=cv.px(0.5)))
        cv.add("steel", *cv.tube([handle, (cy, cx)], cv.px(0.25)))
    else:  # scissors: two crossed blades, a pivot screw and plastic finger loops
        for sign in (-1, 1):
            blade_angle = angle + sign * 0.18
            tip, back = (
                _along(cy, cx, blade_angle, cv.px(10)),
                _along(cy, cx, blade_angle, cv.px(-3)),
            )
            cv.add("steel", *cv.tube([back, tip], cv.px(0.5)))
            loop = _along(cy, cx, angle - sign * 0.35, cv.px(-6))
            cv.add(handle_material, *cv.ring(*loop, cv.px(1.6), cv.px(2.2), cv.px(0.4), angle))
        region, prof = cv.ellipsoid(cy, cx, cv.px(0.5), cv.px(0.5))
        cv.add("steel", region, 0.5 * prof)


def _cable(cv, cy, cx, rng, bag):
    n = int(rng.integers(12, 24))
    heading = np.cumsum(rng.normal(0, 0.5, n)) + rng.uniform(0, 2 * np.pi)
    step = cv.px(rng.uniform(2, 3.5))
    pts = np.cumsum(np.stack([np.sin(heading), np.cos(heading)], axis=1) * step, axis=0)
    pts += np.array([cy, cx]) - pts.mean(axis=0)
    lo, hi = (
        np.array([bag.cy - bag.hy, bag.cx - bag.hx]),
        np.array([bag.cy + bag.hy, bag.cx + bag.hx]),
    )
    pts = np.clip(pts, lo + cv.px(4), hi - cv.px(4))
    region, jacket, core = cv.tube(pts, cv.px(0.25), cv.px(0.08))
    cv.add("pvc", region, jacket)
    cv.add("copper", region, core)
    # charger brick at one end: plastic case, copper windings, steel transformer core
    region, cover = cv.box(*pts[-1], cv.px(3.5), cv.px(2.5), heading[-1], corner=cv.px(0.5))
    cv.add("polyethylene", region, 0.6 * cover)
    region, cover = cv.box(*pts[-1], cv.px(1.2), cv.px(1.2), heading[-1])
    cv.add("copper", region, 0.25 * cover)
    cv.add("steel", region, 0.5 * cover)


def _coins(cv, cy, cx, rng, bag):
    for _ in range(int(rng.integers(3, 8))):
        r = cv.px(rng.uniform(0.9, 1.3))
        region, cover = cv.box(
            cy + rng.normal(0, cv.px(2)), cx + rng.normal(0, cv.px(2)), r, r, corner=r
        )
        cv.add(str(rng.choice(["copper", "steel"])), region, rng.uniform(0.15, 0.22) * cover)


def _explosive(cv, cy, cx, rng, bag):
    """Explosive-like organic block with a detonator-like tube, leads and a 9 V battery."""
    a, b, angle = cv.px(rng.uniform(5, 9)), cv.px(rng.uniform(3, 5)), rng.uniform(0, np.pi)
    region, cover = cv.box(cy, cx, a, b, angle, corner=cv.px(0.5))
    cv.add(str(rng.choice(["rdx", "tnt"])), region, cover * rng.uniform(2.5, 5.0))
    det = _along(cy, cx, angle, 0.5 * a)
    tip = _along(*det, angle + np.pi / 2, cv.px(3))
    region, wall, core = cv.tube([det, tip], cv.px(0.35), cv.px(0.3))
    cv.add("aluminium", region, wall)
    cv.add("copper", region, 0.3 * core)
    battery = _along(cy, cx, angle, -a - cv.px(4))
    region, shell, inner = cv.box(
        *battery, cv.px(2.4), cv.px(1.3), angle, corner=cv.px(0.2), inset=1
    )
    cv.add("steel", region, 0.1 * shell + 0.6 * (shell - inner))
    for off in (-0.4, 0.4):
        start = _along(*battery, angle + np.pi / 2, cv.px(off))
        bend = _along(*det, angle + np.pi / 2, cv.px(off + 1.5 * rng.normal()))
        cv.add("copper", *cv.tube([start, bend, tip], cv.px(0.05)))


_OBJECTS = {
    "clothing": (_clothing, 3.0),
    "book": (_book, 1.0),
    "food": (_food, 1.0),
    "bottle": (_bottle, 1.5),
    "plastic_box": (_plastic_box, 1.0),
    "steel_tool": (_steel_tool, 1.5),
    "cable": (_cable, 1.0),
    "coins": (_coins, 0.7),
    "laptop": (_laptop, 0.0),
    "explosive": (_explosive, 0.0),
}
#: Rough half-extent (cm) of the items whose centre must stay away from the bag edge.
_REACH_CM = {"laptop": 15.0, "explosive": 12.0, "bottle": 9.0, "steel_tool": 9.0, "book": 10.0}
_ALWAYS = ("clothing", "laptop", "bottle", "steel_tool", "explosive", "clothing", "cable", "book")


def _draw_shell(cv: _Canvas, rng, bag: _Bag) -> np.ndarray:
    """Fabric panels, seams, zip and trolley rails; return the bag interior coverage (Y, X)."""
    corner = 0.15 * min(bag.hy, bag.hx)
    region, yy, xx = cv.window(bag.cy, bag.cx, math.hypot(bag.hy, bag.hx))
    u, v = _rotate(yy, xx, bag.angle)

    def rim(shrink_cm):  # coverage of the bag outline shrunk by ``shrink_cm``
        return _box_coverage(u, v, bag.hx - cv.px(shrink_cm), bag.hy - cv.px(shrink_cm), corner)

    interior = rim(0.0)
    panels = 0.25 * (1 + 0.1 * cv.texture[region])  # top and bottom fabric, cm of nylon
    cv.add("nylon", region, interior * panels + 2.0 * (interior - rim(0.25)))  # walls edge-on
    zip_material = str(rng.choice(["steel", "polyethylene"]))
    zip_cm = 0.05 if zip_material == "steel" else 0.3
    cv.add(zip_material, region, zip_cm * (rim(1.5) - rim(2.1)))
    if rng.random() < 0.7:  # trolley: two hollow aluminium rails along the long side
        long_half, short_half = max(bag.hy, bag.hx), min(bag.hy, bag.hx)
        for frac in (-0.35, 0.35):
            centre = _along(bag.cy, bag.cx, bag.long_angle + np.pi / 2, frac * short_half)
            ends = [_along(*centre, bag.long_angle, s * 0.9 * long_half) for s in (-1, 1)]
            cv.add("aluminium", *cv.tube(ends, cv.px(0.9), cv.px(0.75))[:2])
    full = np.zeros(cv.shape, np.float32)
    full[region] = interior
    return full


def _draw_bag(cv: _Canvas, rng, n_objects: int, threat: bool) -> tuple[np.ndarray, list]:
    """Draw the bag and its contents; return the interior coverage and a log of the objects."""
    ny, nx = cv.shape
    bag = _Bag(
        cy=ny / 2 + rng.normal(0, 0.01 * ny),
        cx=nx / 2 + rng.normal(0, 0.01 * nx),
        hy=ny * rng.uniform(0.40, 0.46),
        hx=nx * rng.uniform(0.40, 0.46),
        angle=rng.normal(0, 0.03),
    )
    interior = _draw_shell(cv, rng, bag)
    kinds = [k for k in _ALWAYS if threat or k != "explosive"][:n_objects]
    names = [k for k, (_, w) in _OBJECTS.items() if w > 0]
    weights = np.array([_OBJECTS[k][1] for k in names])
    kinds += [
        str(k) for k in rng.choice(names, size=n_objects - len(kinds), p=weights / weights.sum())
    ]
    log = []
    for kind in kinds:
        reach = cv.px(_REACH_CM.get(kind, 5.0))  # keep large items inside the bag
        oy = bag.cy + rng.uniform(-1, 1) * float(np.clip(bag.hy - reach, 0, 0.6 * bag.hy))
        ox = bag.cx + rng.uniform(-1, 1) * float(np.clip(bag.hx - reach, 0, 0.6 * bag.hx))
        _OBJECTS[kind][0](cv, oy, ox, rng, bag)
        log.append({"kind": kind, "center_yx": (round(float(oy), 1), round(float(ox), 1))})
    return interior, log


# ------------------------------------------------------------------ outputs
@dataclass(frozen=True)
class NoiseParams:
    """Affine Poisson-Gaussian law of one channel, in output counts: Var = gain*mean + read_std**2."""

    gain: float  #: output counts per detected quantum (= white_level / dose of the channel)
    read_std: float  #: Gaussian read noise std incl. rounding, in counts

    def variance(self, mean_counts):
        """Noise variance (counts^2) at expected level ``mean_counts``."""
        return self.gain * np.asarray(mean_counts) + self.read_std**2


@dataclass
class PhantomScan:
    """One simulated dual-energy scan with exact ground truth.

    noisy: (2, Y, X) uint16 counts as a scanner writes them (0..65535).
    clean: (2, Y, X) float64 expected counts, E[noisy] = clean where nothing clips.
    labels: (Y, X) uint8 dominant material class, see ``MATERIAL_CLASSES``.
    thickness: material -> (Y, X) float32 path length in cm at the tabulated density.
    transmission: (2, Y, X) float64 blurred air-normalised transmission in (0, 1].
    streak_gain: (2, X) float64 per-detector-element efficiency (mean 1).
    noise: (low, high) ``NoiseParams``; params: every setting used.
    """

    noisy: np.ndarray
    clean: np.ndarray
    labels: np.ndarray
    thickness: dict[str, np.ndarray]
    transmission: np.ndarray
    streak_gain: np.ndarray
    noise: tuple[NoiseParams, NoiseParams]
    params: dict = field(default_factory=dict)


def noise_free_uint16(scan: PhantomScan) -> np.ndarray:
    """The clean reference as uint16 counts: ``scan.clean`` rounded and clipped to 0..65535."""
    return np.clip(np.rint(scan.clean), 0, UINT16_MAX).astype(np.uint16)


def _pair(value, name: str) -> tuple[float, float]:
    low, high = (value, value) if np.isscalar(value) else tuple(value)
    if not (np.isfinite(low) and np.isfinite(high) and low >= 0 and high >= 0):
        raise ValueError(f"{name} must be a non-negative number or a (low, high) pair of them.")
    return float(low), float(high)


def _seed(value, name: str) -> int:
    try:
        seed = operator.index(value)
    except TypeError:
        seed = -1
    if seed < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
    return seed


def _labels(thickness: Mapping[str, np.ndarray], spectra: DetectorSpectra) -> np.ndarray:
    """Class whose materials attenuate most at 60 keV; air where the total is negligible."""
    k = int(np.argmin(np.abs(spectra.energies_kev - _LABEL_ENERGY_KEV)))
    per_class = np.zeros((len(MATERIAL_CLASSES), *next(iter(thickness.values())).shape), np.float32)
    for name, t in thickness.items():
        per_class[MATERIAL_CLASS_OF[name]] += spectra.material_mu[name][k] * t
    labels = np.argmax(per_class, axis=0).astype(np.uint8)
    labels[per_class.sum(axis=0) < _AIR_ATTENUATION] = 0
    return labels


def make_bag(
    shape: tuple[int, int] = _REFERENCE_SHAPE,
    *,
    dose: float = 3000.0,
    seed: int = 0,
    noise_seed: int | None = None,
    gain_streak_std: float = 0.01,
    read_noise: float | tuple[float, float] = 25.0,
    blur_sigma: float = 0.6,
    white_level: float = 60000.0,
    n_objects: int = 14,
    hot_pixels: int = 0,
    threat: bool = True,
    high_dose: float | None = None,
    scanner: ScannerModel | None = None,
) -> PhantomScan:
    """Simulate one dual-energy scan of a randomly packed bag.

    shape: (Y, X) pixels, each >= 32; axis 0 is the belt direction.
    dose: expected detected quanta per air pixel in the low channel (> 0).
    seed: scene seed (bag, objects, streaks, defects); same seed -> same clean scan.
    noise_seed: seed of the photon/read noise; None uses ``seed``.
    gain_streak_std: relative std of the per-detector-element efficiency (columns).
    read_noise: Gaussian read noise std in output counts, one value or (low, high).
    blur_sigma: detector blur (Gaussian std, pixels) applied to the expected signal.
    white_level: counts that unobstructed air maps to (0 < white_level <= 65535).
    n_objects: number of items in the bag (>= 0); the first ones always include
        clothing, a laptop, a bottle, a steel tool, an explosive-like block (if ``threat``),
        a cable and a book, the rest are drawn at random.
    hot_pixels: number of defective pixels (half stuck at 65535, half at 0) put in
        ``noisy`` only; their positions are in ``params["defects"]``.
    high_dose: quanta per air pixel in the high channel; None takes the physical ratio
        of absorbed photons, ``dose * spectra.quanta_high_per_low`` (about 0.28).
    scanner: tube and detector model; None uses ``ScannerModel()`` (150 kVp).
    """
    settings = _checked_settings(
        shape,
        dose=dose,
        seed=seed,
        noise_seed=noise_seed,
        gain_streak_std=gain_streak_std,
        read_noise=read_noise,
        blur_sigma=blur_sigma,
        white_level=white_level,
        n_objects=n_objects,
        hot_pixels=hot_pixels,
        threat=threat,
        high_dose=high_dose,
        scanner=scanner,
    )
    # one scene generator, in this order: the bag, the detector streaks, the defects
    scene_rng = np.random.default_rng([settings.seed, 0])
    thickness, objects = _draw_scene(settings, scene_rng)
    transmission = _blurred_transmission(thickness, settings.spectra, settings.blur_sigma)
    streak_gain = _streak_gain(scene_rng, settings.shape[1], settings.gain_streak_std)
    gains = tuple(settings.white_level / d for d in settings.doses)
    clean, noisy = _record(transmission, streak_gain, gains, settings)
    defects = _add_defects(noisy, scene_rng, int(settings.hot_pixels))
    noise = tuple(
        NoiseParams(g, math.sqrt(r * r + 1.0 / 12.0))
        for g, r in zip(gains, settings.read, strict=True)
    )
    return PhantomScan(
        noisy=noisy,
        clean=clean,
        labels=_labels(thickness, settings.spectra),
        thickness=thickness,
        transmission=transmission,
        streak_gain=streak_gain,
        noise=noise,
        params=_bag_params(settings, objects, defects),
    )


@dataclass(frozen=True)
class _BagSettings:
    """``make_bag``'s arguments once checked, defaults settled (the others as given)."""

    shape: tuple[int, int]
    seed: int
    noise_seed: int
    doses: tuple[float, float]  #: quanta per air pixel, low and high channel
    read: tuple[float, float]  #: read noise std per channel, counts
    scanner: ScannerModel
    spectra: DetectorSpectra
    gain_streak_std: float
    blur_sigma: float
    white_level: float
    n_objects: int
    hot_pixels: int
    threat: bool

    @property
    def pitch_cm(self) -> float:
        """Pixel pitch: any shape covers the reference shape's area (one whole bag)."""
        return _REFERENCE_PITCH_CM * math.sqrt(math.prod(_REFERENCE_SHAPE) / math.prod(self.shape))


def _checked_settings(
    shape,
    *,
    dose,
    seed,
    noise_seed,
    gain_streak_std,
    read_noise,
    blur_sigma,
    white_level,
    n_objects,
    hot_pixels,
    threat,
    high_dose,
    scanner,
) -> _BagSettings:
    """Check ``make_bag``'s arguments (ValueError, one sentence) and settle the defaults."""
    if len(shape) != 2 or min(int(s) for s in shape) < 32:
        raise ValueError(f"shape must be two sizes of at least 32 pixels, got {shape}.")
    shape = (int(shape[0]), int(shape[1]))
    if not (np.isfinite(dose) and dose > 0):
        raise ValueError(f"dose must be a positive number of quanta per pixel, got {dose}.")
    if not 0 < white_level <= UINT16_MAX:
        raise ValueError(f"white_level must be in (0, 65535] counts, got {white_level}.")
    if not 0 <= gain_streak_std <= 0.2:
        raise ValueError(f"gain_streak_std must be between 0 and 0.2, got {gain_streak_std}.")
    if blur_sigma < 0 or n_objects < 0 or hot_pixels < 0:
        raise ValueError("blur_sigma, n_objects and hot_pixels must be >= 0.")
    seed = _seed(seed, "seed")
    noise_seed = seed if noise_seed is None else _seed(noise_seed, "noise_seed")
    read = _pair(read_noise, "read_noise")
    scanner = scanner or ScannerModel()
    spectra = detector_spectra(scanner)
    if high_dose is None:
        high_dose = dose * spectra.quanta_high_per_low
    if not (np.isfinite(high_dose) and high_dose > 0):
        raise ValueError(f"high_dose must be a positive number of quanta, got {high_dose}.")
    return _BagSettings(
        shape=shape,
        seed=seed,
        noise_seed=noise_seed,
        doses=(float(dose), float(high_dose)),
        read=read,
        scanner=scanner,
        spectra=spectra,
        gain_streak_std=gain_streak_std,
        blur_sigma=blur_sigma,
        white_level=white_level,
        n_objects=n_objects,
        hot_pixels=hot_pixels,
        threat=threat,
    )


def _draw_scene(settings: _BagSettings, rng) -> tuple[dict[str, np.ndarray], list]:
    """(path length per material, objects drawn) of a packed bag; nothing outside the bag
    but its nylon shell."""
    canvas = _Canvas(settings.shape, settings.pitch_cm, rng)
    interior, objects = _draw_bag(canvas, rng, int(settings.n_objects), bool(settings.threat))
    thickness = canvas.t
    for name, t in thickness.items():
        if name != "nylon":
            t *= interior  # nothing sticks out of the bag
        np.maximum(t, 0, out=t)
    return thickness, objects


def _blurred_transmission(thickness, spectra: DetectorSpectra, blur_sigma: float) -> np.ndarray:
    """(2, Y, X) polychromatic transmission, with the detector blur."""
    transmission = polychromatic_transmission(thickness, spectra)
    if blur_sigma > 0:
        for c in range(2):
            transmission[c] = ndimage.gaussian_filter(transmission[c], blur_sigma, mode="nearest")
    return transmission


def _streak_gain(rng, width: int, gain_streak_std: float) -> np.ndarray:
    """(2, X) per-detector-element efficiency: element noise plus 32-element boards."""
    streaks = rng.standard_normal((2, width))
    boards = np.repeat(rng.standard_normal((2, width // 32 + 1)), 32, axis=1)[:, :width]
    return 1.0 + gain_streak_std * (0.8 * streaks + 0.6 * boards)


def _record(transmission, streak_gain, gains, settings: _BagSettings):
    """(clean float64 counts, noisy uint16 counts): photon and read noise, rounded, clipped."""
    quanta = transmission * (np.array(settings.doses)[:, None, None] * streak_gain[:, None, :])
    clean = quanta * np.array(gains)[:, None, None]
    noise_rng = np.random.default_rng([settings.noise_seed, 1])
    counts = noise_rng.poisson(quanta).astype(np.float64)
    counts *= np.array(gains)[:, None, None]
    counts += noise_rng.standard_normal(counts.shape) * np.array(settings.read)[:, None, None]
    return clean, np.clip(np.rint(counts), 0, UINT16_MAX).astype(np.uint16)


def _add_defects(noisy: np.ndarray, rng, hot_pixels: int) -> list[tuple[int, int, int, int]]:
    """Set ``hot_pixels`` defective pixels of ``noisy`` (in place; half stuck at 65535,
    half at 0); returns their (channel, y, x, value)."""
    if not hot_pixels:
        return []
    _, height, width = noisy.shape
    where = rng.integers(0, [2, height, width], size=(hot_pixels, 3))
    values = np.where(np.arange(hot_pixels) % 2 == 0, UINT16_MAX, 0)
    noisy[where[:, 0], where[:, 1], where[:, 2]] = values
    return [(int(c), int(y), int(x), int(v)) for (c, y, x), v in zip(where, values, strict=True)]


def _bag_params(settings: _BagSettings, objects: list, defects: list) -> dict:
    """``PhantomScan.params``: every setting used, the objects drawn and the defects."""
    spectra, doses = settings.spectra, settings.doses
    return {
        "shape": settings.shape,
        "seed": settings.seed,
        "noise_seed": settings.noise_seed,
        "dose": doses[0],
        "dose_high": doses[1],
        "gain_streak_std": float(settings.gain_streak_std),
        "read_noise": settings.read,
        "blur_sigma": float(settings.blur_sigma),
        "white_level": float(settings.white_level),
        "n_objects": int(settings.n_objects),
        "hot_pixels": int(settings.hot_pixels),
        "threat": bool(settings.threat),
        "scanner": dataclasses.asdict(settings.scanner),
        "pixel_size_cm": settings.pitch_cm,
        "belt_axis": 0,
        "energies_kev": (
            float(spectra.energies_kev[0]),
            float(spectra.energies_kev[-1]),
            int(spectra.energies_kev.size),
        ),
        "attenuation_source": load_attenuation_table().source,
        "objects": objects,
        "defects": defects,
    }
