"""The strongest classical baseline, offered to users: BM3D in the stabilised domain.

``bm3d_denoise(scan)``: per channel, column flat-field (``flatfield``), the
Poisson-Gaussian law fitted on the scan (or given), generalized Anscombe transform,
BM3D (Dabov et al. 2007; the ``bm3d`` package, both stages, ``sigma_psd = 1``), exact
unbiased inverse (Makitalo & Foi 2013), streaks put back. Saturated pixels are
denoised like the others, not copied back (copying them back costs up to 7 dB at low
dose: their true level is usually below the clip). About 15x slower than the default
network; here so a user can compare the two side by side.

Needs the optional ``bm3d`` package (``pip install "napari-xray-denoise[bm3d]"``);
without it :func:`bm3d_denoise` raises one clear ``ImportError``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from . import noise as noise_mod
from .flatfield import FlatField

__all__ = ["bm3d_available", "bm3d_denoise"]

MISSING = (
    "BM3D needs the optional 'bm3d' package, which is not installed; "
    'install it with: pip install "napari-xray-denoise[bm3d]"'
)


def bm3d_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("bm3d") is not None


def _bm3d_channel(
    counts: np.ndarray, model, flatfield, dark, flat, profile
) -> tuple[np.ndarray, dict]:
    import bm3d

    from .vst import code_range

    width = counts.shape[1]
    if dark is not None or flat is not None:
        ff = FlatField.from_frames(width, dark=dark, flat=flat)
    elif isinstance(flatfield, FlatField):
        ff = flatfield
    elif flatfield == "auto":
        ff = FlatField.estimate(counts)
    elif flatfield in (None, "none"):
        ff = FlatField.identity(width)
    else:
        raise ValueError(f"flatfield must be 'auto', 'none' or a FlatField, got {flatfield!r}.")
    y = ff.apply(counts)
    if isinstance(model, noise_mod.NoiseModel):
        law, how = model, "given (calibrated)"
    else:
        fit = noise_mod.fit_noise_levels(y)
        law, how = fit.model, f"fitted on this scan ({fit.note})"
    if law.a <= 0:
        raise ValueError(
            "this scan's noise has no photon part (a = 0); pass calibrated noise parameters."
        )
    z = noise_mod.generalized_anscombe(y, law.a, law.b)
    z_hat = bm3d.bm3d(z, sigma_psd=1.0, profile=profile, stage_arg=bm3d.BM3DStages.ALL_STAGES)
    out = ff.undo(noise_mod.inverse_generalized_anscombe(z_hat, law.a, law.b, method="exact"))
    code_max = code_range(counts)
    record = {
        "model": "affine",
        "how": how,
        "a_counts": law.a,
        "b_counts": law.b,
        "code_max": code_max,
        "flatfield": ff.describe(),
    }
    return np.clip(out, 0, code_max).astype(np.float32), record


def bm3d_denoise(
    scan,
    *,
    noise="auto",
    flatfield="auto",
    dark=None,
    flat=None,
    profile: str = "np",
    on_progress: Callable[[int, int], None] | None = None,
    records: list | None = None,
) -> np.ndarray:
    """BM3D + GAT on a ``(Y, X)`` or ``(C, Y, X)`` scan of counts; float32 counts back.

    noise: ``"auto"`` (fit per channel) or a ``noise.NoiseModel`` (or one per channel).
    flatfield / dark / flat: as in ``SinglePassDenoiser.denoise``. ``records``: a list
    that receives one dict per channel (noise law used, flat-field).
    """
    if not bm3d_available():
        raise ImportError(MISSING)
    arr = np.asarray(scan)
    if arr.ndim not in (2, 3) or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(
            f"expected a real (Y, X) scan or a (C, Y, X) stack of counts, got {arr.dtype} {arr.shape}."
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("the scan holds NaN or infinite values; BM3D needs finite counts.")
    channels = arr[None] if arr.ndim == 2 else arr
    n = len(channels)
    models = noise if isinstance(noise, Sequence) and not isinstance(noise, str) else [noise] * n
    if len(models) != n:
        raise ValueError(
            f"got {len(models)} noise models for {n} channel(s); give one per channel."
        )
    outs = []
    for i, (c, m) in enumerate(zip(channels, models, strict=True)):
        out, record = _bm3d_channel(c.astype(np.float64), m, flatfield, dark, flat, profile)
        outs.append(out)
        if records is not None:
            records.append(record)
        if on_progress is not None:
            on_progress(i + 1, n)
    stack = np.stack(outs)
    return stack[0] if arr.ndim == 2 else stack
