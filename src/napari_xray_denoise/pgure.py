"""Poisson-Gaussian unbiased risk estimate (PG-URE) of a denoiser's error, in counts.

For a channel of counts ``y = offset + a * P + n`` (``P`` Poisson with mean ``lam``, ``n``
Gaussian with variance ``s2``; clean ``x = offset + a * lam``) and any denoiser ``F``
(counts -> counts), the identities of Poisson (``E[lam g(P)] = E[P g(P - 1)]``) and of
Stein (``E[n h(n)] = s2 E[h'(n)]``) give, pixel by pixel (Luisier, Blu and Unser, IEEE
TIP 2011),

    E[(F_k(y) - x_k)^2] = E[ F_k(y)^2 - 2 ((y_k - offset) F_k(y - a e_k) + offset F_k(y))
                             + 2 s2 dF_k(y - a e_k)/dy_k + C_k ],
    C_k = y_k^2 - a (y_k - offset) - s2      (the same for every denoiser),

exactly, at any photon count: no variance-stabilising transform, no Gaussian
approximation. This is what decides, at low counts, whether a fine-tuned model is truly
better than the one it started from (``core.singlepass.finetune``): SURE in the stabilised domain
assumes Gaussian noise of a known std there, which fails below about 10 quanta a pixel.

``F(y - a e_k)`` is one denoiser call per pixel; here it is evaluated for a whole lattice
of pixels ``spacing`` apart at once (``y`` minus one quantum at every lattice pixel): a
pixel's output then also feels the shifts of its lattice neighbours, ``spacing`` pixels
away, where the default model's response is a few percent of the pixel's own (24 px:
about 2.5%, measured on a dark board scene). The derivative is a Monte-Carlo one with
random signs over the lattice, so the neighbours' cross terms cancel in expectation.

The noise law ``Var = a * mean + b`` does not tell how ``b`` splits into read noise and
offset (``b = s2 - a * offset``); :func:`split_noise_law` takes the smallest offset that
fits (``b >= 0``: offset 0; ``b < 0``: no read noise) unless the detector's offset is
known. Another split changes the estimate only at second order (``a^2 F''`` per unit of
offset): nothing for a denoiser that is linear at the scale of one quantum, a few percent
of the error for one that is strongly curved there (``tests/test_pgure.py``); in the
difference of two similar networks, less.

Numpy only: ``F`` is any callable, so the estimate runs on any model and backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: lattice spacing of the shifted pixels (see the module docstring)
DEFAULT_SPACING = 24


def split_noise_law(a: float, b: float, offset: float | None = None) -> tuple[float, float]:
    """``(offset, read variance)`` for ``Var = a * mean + b``: with a known ``offset``
    (a calibrated detector), ``b + a * offset`` is the read variance (at least 0);
    otherwise the smallest offset that fits (``b >= 0``: ``(0, b)``; ``b < 0``:
    ``(-b / a, 0)``)."""
    if not (np.isfinite(a) and a > 0 and np.isfinite(b)):
        raise ValueError(f"PG-URE needs a gain a > 0 and a finite b; got a={a}, b={b}.")
    if offset is not None:
        return float(offset), max(float(b) + float(a) * float(offset), 0.0)
    return (0.0, float(b)) if b >= 0 else (-float(b) / float(a), 0.0)


def lattices(shape, mask, n_offsets: int, rng, spacing: int = DEFAULT_SPACING) -> list:
    """``n_offsets`` lattices of pixels ``spacing`` apart, each at a random offset, kept
    where ``mask`` (bool ``shape``, e.g. the held-back pixels) is True: a list of
    ``(rows, cols)`` index arrays (empty lattices dropped)."""
    h, w = shape
    cells = rng.choice(spacing * spacing, size=min(n_offsets, spacing * spacing), replace=False)
    out = []
    for cell in cells:
        oy, ox = divmod(int(cell), spacing)
        rows, cols = np.meshgrid(
            np.arange(oy, h, spacing), np.arange(ox, w, spacing), indexing="ij"
        )
        rows, cols = rows.ravel(), cols.ravel()
        keep = mask[rows, cols] if mask is not None else np.ones(rows.size, bool)
        if keep.any():
            out.append((rows[keep], cols[keep]))
    return out


@dataclass
class Probe:
    """The fixed random parts of one estimate (the same for every denoiser compared, so
    their differences are paired): lattices and signs."""

    lattices: list
    signs: list


def make_probe(shape, mask, n_offsets: int, rng, spacing: int = DEFAULT_SPACING) -> Probe:
    lat = lattices(shape, mask, n_offsets, rng, spacing)
    return Probe(lat, [rng.choice((-1.0, 1.0), size=r.size) for r, _ in lat])


def pgure_terms(
    denoise: Callable[[np.ndarray], np.ndarray],
    y: np.ndarray,
    a: float,
    b: float,
    probe: Probe,
    *,
    eps: float | None = None,
    out: np.ndarray | None = None,
    offset: float | None = None,
) -> np.ndarray:
    """Per lattice pixel, the denoiser-dependent part of PG-URE (module docstring):
    ``F_k^2 - 2 ((y_k - offset) F_k(y - a e) + offset F_k) + 2 s2 dF_k/dy_k``, for the
    pixels of ``probe`` in order (1-D float64). ``denoise``: counts (Y, X) -> counts;
    ``out``: ``denoise(y)`` if already computed; ``offset``: the detector's, when known
    (``split_noise_law``). Calls ``denoise`` once per lattice (twice
    when the law has read noise), plus once for ``out``."""
    y = np.asarray(y, np.float64)
    offset, s2 = split_noise_law(a, b, offset)
    f0 = np.asarray(denoise(y) if out is None else out, np.float64)
    step = eps if eps is not None else 0.5 * float(np.sqrt(max(s2, a * a)))
    terms = []
    for (rows, cols), signs in zip(probe.lattices, probe.signs, strict=True):
        shifted = y.copy()
        shifted[rows, cols] -= a
        f_minus = np.asarray(denoise(shifted), np.float64)[rows, cols]
        t = np.square(f0[rows, cols]) - 2.0 * (
            (y[rows, cols] - offset) * f_minus + offset * f0[rows, cols]
        )
        if s2 > 0:
            shifted[rows, cols] += step * signs
            f_probed = np.asarray(denoise(shifted), np.float64)[rows, cols]
            t += 2.0 * s2 * signs * (f_probed - f_minus) / step
        terms.append(t)
    return np.concatenate(terms) if terms else np.zeros(0)


def constant_terms(y: np.ndarray, a: float, b: float, probe: Probe) -> np.ndarray:
    """The denoiser-independent part ``C_k = y_k^2 - a y_k - b`` at the probe's pixels
    (the same for every split of ``b``): with :func:`pgure_terms`, ``mean(terms + C)``
    estimates the mean squared error in counts."""
    y = np.asarray(y, np.float64)
    parts = [y[r, c] ** 2 - a * y[r, c] - b for r, c in probe.lattices]
    return np.concatenate(parts) if parts else np.zeros(0)


@dataclass(frozen=True)
class RiskChange:
    """A denoiser against a reference on one channel, from paired PG-URE terms."""

    mse_reference: float  #: estimated mean squared error of the reference (counts^2)
    change: float  #: estimated change of the mean squared error (candidate - reference)
    stderr: float  #: its standard error (pixels taken as independent)
    pixels: int

    @property
    def gain_db(self) -> float:
        """Estimated 10 log10(MSE reference / MSE candidate); NaN when not positive."""
        new = self.mse_reference + self.change
        if not (self.mse_reference > 0 and new > 0):
            return float("nan")
        return float(10.0 * np.log10(self.mse_reference / new))

    def upper_db_loss(self, z: float) -> float:
        """The loss in dB at the upper ``z``-standard-error bound of the change (> 0: the
        candidate may be worse by that much)."""
        worst = self.change + z * self.stderr
        if not self.mse_reference > 0:
            return float("inf") if worst > 0 else 0.0
        return float(10.0 * np.log10(max(self.mse_reference + worst, 1e-300) / self.mse_reference))


def risk_change(reference_terms, candidate_terms, constants) -> RiskChange:
    ref = np.asarray(reference_terms, np.float64)
    cand = np.asarray(candidate_terms, np.float64)
    d = cand - ref
    n = int(d.size)
    se = float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    mse = float(np.mean(ref + np.asarray(constants, np.float64))) if n else float("nan")
    return RiskChange(mse, float(d.mean()) if n else float("nan"), se, n)


def sure_terms(
    denoise: Callable[[np.ndarray], np.ndarray],
    y: np.ndarray,
    a: float,
    b: float,
    probe_noise: np.ndarray,
    *,
    eps: float = 0.05,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Per pixel (every pixel, ``(Y, X)``), the first-order Poisson-Gaussian risk estimate
    in counts, denoiser-dependent part: ``F_k^2 - 2 y_k F_k + 2 v_k dF_k/dy_k`` with
    ``v_k = a y_k + b`` (an unbiased estimate of the pixel's noise variance, negative
    values kept), the derivative a Monte-Carlo one along ``probe_noise`` (standard
    normal, ``(Y, X)``, fixed for every denoiser compared), steps of ``eps`` noise std.
    With :func:`sure_constants` its mean estimates the mean squared error in counts; the
    PG-URE of :func:`pgure_terms` minus this is second order (``a^2 F''``), exact at any
    count but far noisier per pixel: this one scores every pixel with two calls."""
    from scipy import ndimage

    y = np.asarray(y, np.float64)
    f0 = np.asarray(denoise(y) if out is None else out, np.float64)
    v = a * y + b
    # steps of ``eps`` local noise std (the law at the smoothed level): one step for the
    # whole scan would be many std in its dark parts; and small, because a network that
    # reads the noise level off its input smooths more when the probe adds noise (steps of
    # 0.5 std put a model 0.3 dB worse in truth 0.6 dB ahead on a dark board with air)
    local = a * ndimage.uniform_filter(y, 5, mode="reflect") + b
    step = eps * np.sqrt(np.maximum(local, a * a / 4.0 + 1e-12))
    f1 = np.asarray(denoise(y + step * probe_noise), np.float64)
    return np.square(f0) - 2.0 * y * f0 + 2.0 * v * probe_noise * (f1 - f0) / step


def sure_constants(y: np.ndarray, a: float, b: float) -> np.ndarray:
    """``y^2 - v``: with :func:`sure_terms`, the per-pixel estimate of the squared error."""
    y = np.asarray(y, np.float64)
    return np.square(y) - (a * y + b)
