"""Scenes and scanner noise for training and testing denoisers with exact ground truth.

Two parts, numpy only (no TensorFlow):

- **Scenes**: clean *transmission maps* in (0, 1] that the phantom does not make:
  dead-leaves clutter with textured fills, circuit boards (traces, pads, vias, pin rows),
  cables and coils, dense small objects, periodic meshes, fractal (1/f) organic clutter.
  Objects are drawn as attenuation (optical depth) and combined by Beer-Lambert,
  ``T = exp(-sum of attenuations)``, so overlapping objects multiply as in a real scan.
  :func:`random_scene` picks a mix. :func:`photo_scene` adds natural-image texture: a
  photograph used as a depth map (random crop, scale, orientation, tone), alone or stacked
  with one procedural kind. Its photographs are two of PyWavelets' sample images and the
  images shipped in ``data/textures`` (:func:`training_photographs`: photographs of
  textures, objects and landscapes, CT and MRI slices, a book page, satellite views,
  a terrain map, each with its permissive licence in SOURCE.txt); the held-apart test scenes
  (natural photographs from ``skimage.data``, see ``benchmarks/``) never enter training.
- **Scanner**: :func:`scan_transmission` turns a transmission map into 16-bit detector
  counts with every trait of a line-scan baggage scanner named in the design notes:
  Poisson photon noise + Gaussian read noise (``Var = a * mean + b``), air at a white
  level below the code range, 12/13/16-bit code ranges in 16-bit files, clipping at the
  top of the range, rounding, hot and dead pixels, per-column gain streaks.

Axes: images are ``(Y, X)``, axis 0 the belt direction, columns the detector elements.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

__all__ = [
    "SCENE_KINDS",
    "ScannedChannel",
    "cables",
    "circuit_board",
    "dead_leaves",
    "dense_electronics",
    "fractal_clutter",
    "mesh",
    "photo_scene",
    "random_scene",
    "scan_detector",
    "scan_transmission",
    "small_objects",
    "training_photographs",
]


# ------------------------------------------------------------------ helpers
def _grid(shape):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return yy.astype(np.float32), xx.astype(np.float32)


def _fractal(shape, rng, beta: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian field with a 1/f^beta power spectrum (float32)."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    f = np.sqrt(fy * fy + fx * fx)
    f[0, 0] = 1.0
    spectrum = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f ** (beta / 2)
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=shape).astype(np.float32)
    std = float(field.std())
    return field / std if std > 0 else field


def _texture(shape, rng) -> np.ndarray:
    """A fill texture in [0, 1]: flat, ramp, fractal, stripes or speckle."""
    kind = rng.integers(5)
    if kind == 0:
        return np.ones(shape, np.float32)
    yy, xx = _grid(shape)
    if kind == 1:
        angle = rng.uniform(0, np.pi)
        ramp = np.cos(angle) * yy + np.sin(angle) * xx
        ramp -= ramp.min()
        return 0.5 + 0.5 * ramp / max(float(ramp.max()), 1.0)
    if kind == 2:
        return np.clip(0.6 + 0.25 * _fractal(shape, rng, rng.uniform(1.5, 3.0)), 0, 1)
    if kind == 3:
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(2.5, 12.0)
        phase = (np.cos(angle) * yy + np.sin(angle) * xx) * (2 * np.pi / period)
        return (0.6 + 0.4 * np.sign(np.sin(phase))).astype(np.float32)
    return np.clip(0.7 + 0.3 * rng.standard_normal(shape).astype(np.float32), 0, 1.5)


def _disk_mask(shape, cy, cx, r):
    yy, xx = np.ogrid[0 : shape[0], 0 : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _polygon_mask(shape, cy, cx, r, n, rng):
    """A random star-shaped polygon (n vertices) of radius about r."""
    yy, xx = _grid(shape)
    ang = np.arctan2(yy - cy, xx - cx)
    dist = np.hypot(yy - cy, xx - cx)
    radii = r * rng.uniform(0.5, 1.0, n)
    knots = np.linspace(-np.pi, np.pi, n, endpoint=False)
    radius_at = np.interp(ang, np.concatenate([knots, [np.pi]]), np.concatenate([radii, radii[:1]]))
    return dist <= radius_at


def _rect_mask(shape, cy, cx, hy, hx, angle):
    yy, xx = _grid(shape)
    c, s = np.cos(angle), np.sin(angle)
    u = (yy - cy) * c + (xx - cx) * s
    v = -(yy - cy) * s + (xx - cx) * c
    return (np.abs(u) <= hy) & (np.abs(v) <= hx)


def _random_rect(shape, rng, size: tuple[float, float], angle=None) -> np.ndarray:
    """A rectangle mask at a random centre, half-sides ``size`` (fractions, drawn for each
    axis) of the image's sides, at ``angle`` (None: a random one, drawn last)."""
    h, w = shape
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    hy, hx = rng.uniform(*size) * h, rng.uniform(*size) * w
    return _rect_mask(shape, cy, cx, hy, hx, rng.uniform(0, np.pi) if angle is None else angle)


def _soft(mask: np.ndarray, sigma: float = 0.5) -> np.ndarray:
    """Antialiased float32 coverage of a boolean mask."""
    m = mask.astype(np.float32)
    return ndimage.gaussian_filter(m, sigma) if sigma > 0 else m


# ------------------------------------------------------------------ scene generators
# Each returns float32 attenuation (optical depth, >= 0) of the given shape.
def dead_leaves(shape, rng, *, n: int | None = None, max_depth: float = 2.5) -> np.ndarray:
    """Occluding random shapes (disks, polygons, rotated boxes) with power-law sizes and
    textured fills, the dead-leaves model of natural-image statistics."""
    out = np.zeros(shape, np.float32)
    size = min(shape)
    n = int(rng.integers(15, 80)) if n is None else n
    r_min, r_max = 1.5, size / 2.5
    for _ in range(n):
        # radius density ~ r^-3 between r_min and r_max (scale invariance)
        u = rng.uniform()
        r = 1.0 / np.sqrt(u / r_max**2 + (1 - u) / r_min**2)
        cy, cx = rng.uniform(-r, shape[0] + r), rng.uniform(-r, shape[1] + r)
        kind = rng.integers(3)
        if kind == 0:
            mask = _disk_mask(shape, cy, cx, r)
        elif kind == 1:
            mask = _polygon_mask(shape, cy, cx, r, int(rng.integers(3, 9)), rng)
        else:
            mask = _rect_mask(shape, cy, cx, r, r * rng.uniform(0.2, 1.0), rng.uniform(0, np.pi))
        if not mask.any():
            continue
        depth = rng.uniform(0.02, max_depth) * _texture(shape, rng)
        cover = _soft(mask, rng.uniform(0, 0.8))
        if rng.uniform() < 0.6:  # occluding leaf (a flat object lying on top)
            out = out * (1 - cover) + depth * cover
        else:  # transparent overlap (objects stacked along the beam)
            out += depth * cover
    return out.astype(np.float32)


def fractal_clutter(shape, rng) -> np.ndarray:
    """Smooth organic clutter (clothes, food): thresholded and plain 1/f fields."""
    field = _fractal(shape, rng, rng.uniform(2.0, 3.5))
    out = rng.uniform(0.1, 1.2) * np.clip(field + rng.uniform(-0.5, 1.0), 0, None)
    if rng.uniform() < 0.5:  # folds: thin ridges where a second field crosses zero
        ridge = np.exp(-np.square(_fractal(shape, rng, 3.0) * rng.uniform(4, 12)))
        out += rng.uniform(0.1, 0.6) * ridge
    return out.astype(np.float32)


def circuit_board(shape, rng) -> np.ndarray:
    """A printed circuit board: substrate, axis-aligned copper traces, pads, vias, and
    chips with periodic pin rows (the fine periodic patterns no phantom object has)."""
    h, w = shape
    out = np.full(shape, rng.uniform(0.1, 0.5), np.float32)
    out += 0.05 * _fractal(shape, rng, 2.0)
    copper = rng.uniform(0.3, 1.5)
    # traces: runs along rows or columns, some with one right-angle bend
    for _ in range(int(rng.integers(10, 60))):
        width = int(rng.integers(1, 5))
        if rng.uniform() < 0.5:
            y = int(rng.integers(0, h))
            x0, x1 = sorted(rng.integers(0, w, 2))
            out[y : y + width, x0:x1] += copper
            if rng.uniform() < 0.4:
                y1 = int(rng.integers(0, h))
                out[min(y, y1) : max(y, y1), x1 : x1 + width] += copper
        else:
            x = int(rng.integers(0, w))
            y0, y1 = sorted(rng.integers(0, h, 2))
            out[y0:y1, x : x + width] += copper
    # chips: a package body with pins at a fixed pitch along two or four sides
    for _ in range(int(rng.integers(0, 4))):
        ch, cw = int(rng.integers(8, max(9, h // 2))), int(rng.integers(8, max(9, w // 2)))
        y0, x0 = int(rng.integers(-ch // 2, h)), int(rng.integers(-cw // 2, w))
        out[max(y0, 0) : y0 + ch, max(x0, 0) : x0 + cw] += rng.uniform(0.5, 2.0)
        pitch, pin_w = int(rng.integers(2, 7)), 1 + int(rng.integers(0, 2))
        pin_len = int(rng.integers(2, 6))
        for x in range(max(x0, 0), min(x0 + cw, w), pitch):
            out[max(y0 - pin_len, 0) : max(y0, 0), x : x + pin_w] += copper * 1.5
            out[max(y0 + ch, 0) : max(y0 + ch + pin_len, 0), x : x + pin_w] += copper * 1.5
        if rng.uniform() < 0.5:
            for y in range(max(y0, 0), min(y0 + ch, h), pitch):
                out[y : y + pin_w, max(x0 - pin_len, 0) : max(x0, 0)] += copper * 1.5
                out[y : y + pin_w, max(x0 + cw, 0) : max(x0 + cw + pin_len, 0)] += copper * 1.5
    # pads and vias
    for _ in range(int(rng.integers(5, 40))):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(1.0, 4.0)
        pad = _soft(_disk_mask(shape, cy, cx, r), 0.4)
        hole = _soft(_disk_mask(shape, cy, cx, r * 0.45), 0.4) if rng.uniform() < 0.5 else 0.0
        out += copper * 1.2 * (pad - hole)
    # a regular grid of solder balls (BGA)
    if rng.uniform() < 0.4:
        pitch = rng.uniform(3.0, 9.0)
        yy, xx = _grid(shape)
        d2 = np.square(np.mod(yy, pitch) - pitch / 2) + np.square(np.mod(xx, pitch) - pitch / 2)
        region = _rect_mask(shape, rng.uniform(0, h), rng.uniform(0, w), h / 4, w / 4, 0.0)
        out += 2.0 * ((d2 <= (pitch * rng.uniform(0.2, 0.4)) ** 2) & region)
    if h == w and rng.uniform() < 0.5:  # traces along the belt or across it
        out = np.ascontiguousarray(out.T)
    return np.maximum(out, 0).astype(np.float32)


def _curve_points(shape, rng, n: int = 400):
    """Points of a smooth random curve (a random walk of the heading)."""
    y, x = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
    heading = rng.uniform(0, 2 * np.pi)
    turn = np.cumsum(rng.normal(0, rng.uniform(0.02, 0.25), n))
    step = max(shape) / n * rng.uniform(1.0, 3.0)
    ys = y + np.cumsum(step * np.sin(heading + turn))
    xs = x + np.cumsum(step * np.cos(heading + turn))
    return ys, xs


def _stroke(shape, ys, xs, radius: float) -> np.ndarray:
    """Distance-based coverage of a polyline of thickness 2*radius (float32)."""
    mask = np.zeros(shape, bool)
    inside = (ys >= 0) & (ys < shape[0] - 0.5) & (xs >= 0) & (xs < shape[1] - 0.5)
    mask[np.rint(ys[inside]).astype(int), np.rint(xs[inside]).astype(int)] = True
    if not mask.any():
        return np.zeros(shape, np.float32)
    dist = ndimage.distance_transform_edt(~mask).astype(np.float32)
    return np.clip(radius + 0.5 - dist, 0, 1)


def cables(shape, rng) -> np.ndarray:
    """Cables and wires: insulated copper cores along smooth curves, some as tight coils."""
    out = np.zeros(shape, np.float32)
    for _ in range(int(rng.integers(1, 8))):
        ys, xs = _curve_points(shape, rng, int(rng.integers(100, 800)))
        if rng.uniform() < 0.25:  # coil: add a circular wiggle
            t = np.arange(ys.size)
            r, period = rng.uniform(2, 10), rng.uniform(4, 15)
            ys = ys + r * np.sin(2 * np.pi * t / period)
            xs = xs + r * np.cos(2 * np.pi * t / period)
        outer = rng.uniform(1.0, 6.0)
        core = outer * rng.uniform(0.2, 0.6)
        out += rng.uniform(0.1, 0.5) * _stroke(shape, ys, xs, outer)
        out += rng.uniform(0.5, 3.0) * _stroke(shape, ys, xs, core)
    return out


def small_objects(shape, rng) -> np.ndarray:
    """Dense small objects: coins, screws, batteries, pills, keys (high-contrast blobs)."""
    out = np.zeros(shape, np.float32)
    area = shape[0] * shape[1]
    for _ in range(int(rng.integers(5, max(6, area // 300)))):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        r = rng.uniform(1.0, 9.0)
        kind = rng.integers(3)
        if kind == 0:
            mask = _disk_mask(shape, cy, cx, r)
        elif kind == 1:
            mask = _rect_mask(shape, cy, cx, r, r * rng.uniform(0.2, 0.6), rng.uniform(0, np.pi))
        else:
            mask = _polygon_mask(shape, cy, cx, r, 6, rng)
        depth = rng.uniform(0.2, 4.0)
        if rng.uniform() < 0.3:  # a ring (coin edge, washer)
            mask &= ~_disk_mask(shape, cy, cx, r * rng.uniform(0.3, 0.8))
        out += depth * _soft(mask, rng.uniform(0.2, 0.7))
    return out


def mesh(shape, rng) -> np.ndarray:
    """Periodic structures: wire meshes, zippers, gratings at a random pitch and angle."""
    yy, xx = _grid(shape)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(2.2, 16.0)
    u = (np.cos(angle) * yy + np.sin(angle) * xx) * (2 * np.pi / period)
    pattern = np.maximum(np.sin(u), 0) ** rng.uniform(0.5, 4)
    if rng.uniform() < 0.5:  # crossed mesh
        period2 = period * rng.uniform(0.7, 1.4)
        v = (-np.sin(angle) * yy + np.cos(angle) * xx) * (2 * np.pi / period2)
        pattern = np.maximum(pattern, np.maximum(np.sin(v), 0) ** 2)
    region = _soft(_random_rect(shape, rng, (0.2, 0.8)), 1.0)
    return (rng.uniform(0.2, 2.0) * pattern * region).astype(np.float32)


def dense_electronics(shape, rng, *, blur: tuple[float, float] = (0.3, 1.0)) -> np.ndarray:
    """A photon-starved scene (transmission map in (0, 1], float32): a laptop, a power
    bank or stacked metal, where most pixels pass 0.5-10% of the air level.

    A thick base (battery cells as blocks, a chassis plate, or stacked plates: optical
    depth 2.3-5, i.e. 10% to 0.7% transmission) under a circuit board, screws and cells
    (``small_objects``) and cables; now and then an open-air margin or a gap between
    objects, so air and near-black sit side by side as at the edge of a laptop."""
    shape = (int(shape[0]), int(shape[1]))
    h, w = shape
    depth = np.full(shape, rng.uniform(2.3, 4.0), np.float32)
    kind = int(rng.integers(3))
    if kind == 0:  # battery cells: rows of rounded blocks
        n = int(rng.integers(2, 7))
        for i in range(n):
            cy = (i + 0.5) * h / n + rng.normal(0, 2)
            mask = _rect_mask(shape, cy, w / 2, h / n * 0.42, w * rng.uniform(0.3, 0.5), 0.0)
            depth += rng.uniform(0.3, 1.5) * _soft(mask, 1.5)
    elif kind == 1:  # stacked plates at random angles
        for _ in range(int(rng.integers(2, 6))):
            mask = _random_rect(shape, rng, (0.2, 0.7))
            depth += rng.uniform(0.2, 1.2) * _soft(mask, 1.0)
    depth += 0.3 * np.abs(_fractal(shape, rng, 2.5))
    depth += rng.uniform(0.3, 1.0) * circuit_board(shape, rng)
    if rng.uniform() < 0.6:
        depth += rng.uniform(0.3, 1.0) * small_objects(shape, rng)
    if rng.uniform() < 0.5:
        depth += cables(shape, rng)
    if rng.uniform() < 0.35:  # air at the edge of the device, or a gap
        depth *= _soft(_random_rect(shape, rng, (0.3, 1.0), angle=0.0), 1.5)
    sigma = rng.uniform(*blur)
    if sigma > 0:
        depth = ndimage.gaussian_filter(depth, sigma)
    return np.exp(-np.clip(depth, 0, 12)).astype(np.float32)


SCENE_KINDS = {
    "dead_leaves": dead_leaves,
    "fractal_clutter": fractal_clutter,
    "circuit_board": circuit_board,
    "cables": cables,
    "small_objects": small_objects,
    "mesh": mesh,
}


def random_scene(shape, rng, *, blur: tuple[float, float] = (0.3, 1.0)) -> np.ndarray:
    """A transmission map in (0, 1] (float32): 1-3 scene kinds stacked by Beer-Lambert,
    plus an air margin now and then, blurred by a detector point-spread of random width."""
    shape = (int(shape[0]), int(shape[1]))
    names = list(SCENE_KINDS)
    k = int(rng.integers(1, 4))
    depth = np.zeros(shape, np.float32)
    for name in rng.choice(names, size=k, replace=False):
        depth += SCENE_KINDS[str(name)](shape, rng)
    return _transmission(depth, rng, blur)


def _transmission(depth: np.ndarray, rng, blur: tuple[float, float]) -> np.ndarray:
    """Optical depth to transmission: an open-air margin now and then, a random overall
    thickness, a detector point-spread of random width, Beer-Lambert."""
    shape = depth.shape
    if rng.uniform() < 0.3:  # part of the view is open air (outside the bag)
        depth *= _soft(_random_rect(shape, rng, (0.2, 1.0), angle=0.0), 2.0)
    depth *= rng.uniform(0.3, 2.0)  # overall thickness / energy
    sigma = rng.uniform(*blur)
    if sigma > 0:
        depth = ndimage.gaussian_filter(depth, sigma)
    return np.exp(-np.clip(depth, 0, 12)).astype(np.float32)


TEXTURES = Path(__file__).parent / "data" / "textures"


def _normalised(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img, np.float64)
    lo, hi = np.percentile(img, (0.5, 99.5))
    return np.clip((img - lo) / max(hi - lo, 1e-12), 0.0, 1.0).astype(np.float32)


# The training textures shipped in ``data/textures`` (sources and licences in SOURCE.txt
# there), in the fixed order in which :func:`training_photographs` returns them (after
# PyWavelets' two): 8-bit files are scaled by 1/255, anything else (16-bit scans, colour,
# the elevation map) is stretched by :func:`_normalised`.
TEXTURE_FILES = (
    "grace_hopper.jpg",  # portrait
    "jacksboro_fault_dem.npz",  # terrain elevation map (the "elevation" array)
    "ct_head_slice.png",  # CT, axial slice of a head (16-bit)
    "mri_head_sagittal.png",  # MRI, sagittal slice of a head (16-bit)
    "mri_brain_t1_coronal.png",  # MRI, T1 coronal slice of a brain (16-bit)
    "mri_abdomen_fat.png",  # MRI, axial slice of an abdomen
    "raccoon_face.png",  # fur, palm leaves
    "dogs_wooden_cabin.png",  # wooden planks, fur, curtain
    "paint_brushes.png",  # bristles, metal ferrules, wood
    "living_room_clutter.png",  # man-made clutter: furniture, bottle, drum, fabric
    "fig_plate_concrete.png",  # fruit on a plate, weathered concrete
    "rocky_stream_forest.png",  # stones, water, bare trees
    "mountain_rocks_meadow.png",  # rock faces, turf, snow, cloud
    "mountain_landscape.png",  # forest, grass, mountains
    "dandelions_meadow.png",  # seed heads, grass, out-of-focus background
    "dahlia_flower.png",  # petals, smooth background
    "summer_palace_china.png",  # tiled pagoda, foliage, haze
    "book_page_huckleberry_finn.png",  # printed text and an engraving
    "hurricane_miriam_modis.png",  # satellite view: clouds, sea, coast
    "blue_marble_asia.png",  # satellite mosaic: mountains, deserts, coast
)


def _load_texture(name: str) -> np.ndarray:
    path = TEXTURES / name
    if path.suffix == ".npz":
        with np.load(path) as arrays:
            return _normalised(arrays["elevation"])
    import imageio.v3 as iio
    from skimage.color import rgb2gray

    img = np.asarray(iio.imread(path))
    if img.ndim == 3:
        return _normalised(rgb2gray(img[..., :3]))
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    return _normalised(img)


@lru_cache(maxsize=1)
def training_photographs() -> tuple[np.ndarray, ...]:
    """Greyscale images in [0, 1] (float32, 2-D) for :func:`photo_scene`, all shipped or
    installed with the package (nothing is downloaded), in a fixed order: the aerial view
    ``aero`` and the staircase ``ascent`` of PyWavelets, then the files of
    :data:`TEXTURE_FILES` in ``data/textures`` (see SOURCE.txt there for sources and
    licences): a portrait and a terrain elevation map from matplotlib's sample data,
    medical scans (a CT and three MRI slices), textured photographs (fur, wood, bristles,
    stone, rock, foliage, grass, concrete, fabric, household clutter, a pagoda), smooth
    ones (a flower against a blurred background), a printed book page, and two satellite
    views. Not PyWavelets' ``camera``: that is ``skimage.data``'s cameraman, a held-apart
    test scene; nothing here is from ``skimage.data``."""
    import pywt.data

    photos = [np.asarray(f(), np.float32) / 255.0 for f in (pywt.data.aero, pywt.data.ascent)]
    photos.extend(_load_texture(name) for name in TEXTURE_FILES)
    return tuple(photos)


def photo_layer(shape, rng) -> np.ndarray:
    """Optical depth (float32, ``shape``) from a random crop of a training photograph:
    scaled 0.5-2x (within what the photograph holds), rotated/flipped, tone-curved
    (gamma 0.5-2), either polarity (bright = thin or thick), depth up to 0.5-4."""
    shape = (int(shape[0]), int(shape[1]))
    photos = training_photographs()
    img = photos[int(rng.integers(len(photos)))]
    if rng.uniform() < 0.5:
        img = img.T
    smallest = max(shape) / (min(img.shape) - 2)  # the zoom at which the crop fills it
    scale = max(float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))), smallest)
    need = [int(np.ceil(n / scale)) + 1 for n in shape]
    y = int(rng.integers(0, img.shape[0] - need[0] + 1))
    x = int(rng.integers(0, img.shape[1] - need[1] + 1))
    crop = img[y : y + need[0], x : x + need[1]]
    if scale != 1.0:
        crop = ndimage.zoom(crop, scale, order=1, grid_mode=True, mode="nearest")
    g = np.rot90(crop[: shape[0], : shape[1]], int(rng.integers(4)) if shape[0] == shape[1] else 0)
    g = np.clip(g, 0.0, 1.0) ** float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    if rng.uniform() < 0.5:
        g = 1.0 - g
    return (rng.uniform(0.5, 4.0) * (1.0 - g) + rng.uniform(0.0, 0.3)).astype(np.float32)


def photo_scene(shape, rng, *, blur: tuple[float, float] = (0.3, 1.0)) -> np.ndarray:
    """A transmission map in (0, 1] (float32) with natural-image texture: a
    :func:`photo_layer`, half the time stacked with one procedural scene kind, then as
    :func:`random_scene` (air margin, thickness, point-spread, Beer-Lambert)."""
    shape = (int(shape[0]), int(shape[1]))
    depth = photo_layer(shape, rng)
    if rng.uniform() < 0.5:
        depth = depth + SCENE_KINDS[str(rng.choice(list(SCENE_KINDS)))](shape, rng)
    return _transmission(depth, rng, blur)


# ------------------------------------------------------------------ scanner
@dataclass(frozen=True)
class ScannedChannel:
    """One simulated channel: ``noisy`` counts (float64 holding whole numbers 0..code_max,
    as read from a uint16 file), ``clean`` expected counts (float64, not clipped), and the
    affine noise law ``Var = a * mean + b`` (counts, ``b`` includes rounding)."""

    noisy: np.ndarray
    clean: np.ndarray
    a: float
    b: float
    code_max: float


def scan_transmission(
    transmission: np.ndarray,
    rng: np.random.Generator,
    *,
    dose: float,
    code_max: float = 65535.0,
    white_fraction: float = 0.92,
    read_std_fraction: float = 3e-4,
    column_gain_std: float = 0.0,
    defect_fraction: float = 0.0,
) -> ScannedChannel:
    """Scan a transmission map (Y, X) in (0, 1]: detector counts with Poisson-Gaussian noise.

    dose: detected quanta per air pixel. code_max: top of the code range (4095, 8191,
    65535: 12/13/16-bit scanners all write 16-bit files); air maps to ``white_fraction *
    code_max`` counts, noise can push it over the top, where it clips. read_std_fraction:
    Gaussian read noise std as a fraction of ``code_max``. column_gain_std: relative std of
    per-column detector gain (streaks along the belt; part of the clean scan, as a scanner
    records them). defect_fraction: fraction of pixels stuck at 0 or ``code_max`` (noisy
    scan only).
    """
    t = np.asarray(transmission, dtype=np.float64)
    white = white_fraction * code_max
    gain = white / dose
    if column_gain_std > 0:
        t = t * (1.0 + column_gain_std * rng.standard_normal(t.shape[1]))[None, :]
    quanta = np.clip(t, 0, None) * dose
    clean = quanta * gain
    read = read_std_fraction * code_max
    noisy = rng.poisson(quanta).astype(np.float64) * gain
    noisy += rng.standard_normal(t.shape) * read
    noisy = np.clip(np.rint(noisy), 0, code_max)
    if defect_fraction > 0:
        n = rng.binomial(t.size, defect_fraction)
        idx = rng.integers(0, t.size, n)
        noisy.flat[idx] = np.where(rng.uniform(size=n) < 0.5, 0.0, code_max)
    return ScannedChannel(
        noisy, clean, float(gain), float(read * read + 1.0 / 12.0), float(code_max)
    )


def scan_detector(
    transmission: np.ndarray,
    rng: np.random.Generator,
    *,
    dose: float,
    gain: float,
    read_noise: float,
    offset: float = 0.0,
    code_max: float = 65535.0,
    column_gain_std: float = 0.0,
    defect_fraction: float = 0.0,
) -> ScannedChannel:
    """Scan a transmission map with a detector described as a camera is: ``gain`` ADU per
    quantum, Gaussian ``read_noise`` (ADU std), a dark ``offset`` (ADU) and the top code
    ``code_max``: counts = offset + gain * Poisson(t * dose) + read noise, rounded and
    clipped to 0..code_max. The noise law is ``Var = gain * (mean - offset) + read^2``,
    i.e. ``a = gain``, ``b = read^2 + 1/12 - gain * offset`` (``b`` < 0 for an offset).
    Other arguments as :func:`scan_transmission`."""
    t = np.asarray(transmission, dtype=np.float64)
    if column_gain_std > 0:
        t = t * (1.0 + column_gain_std * rng.standard_normal(t.shape[1]))[None, :]
    quanta = np.clip(t, 0, None) * dose
    clean = offset + quanta * gain
    noisy = offset + rng.poisson(quanta).astype(np.float64) * gain
    noisy += rng.standard_normal(t.shape) * read_noise
    noisy = np.clip(np.rint(noisy), 0, code_max)
    if defect_fraction > 0:
        n = rng.binomial(t.size, defect_fraction)
        idx = rng.integers(0, t.size, n)
        noisy.flat[idx] = np.where(rng.uniform(size=n) < 0.5, 0.0, code_max)
    b = read_noise * read_noise + 1.0 / 12.0 - gain * offset
    return ScannedChannel(noisy, clean, float(gain), float(b), float(code_max))
