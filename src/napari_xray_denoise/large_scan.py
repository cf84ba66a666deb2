"""Very large scans: blind-spot denoising with the network run chunk by chunk (dask).

:func:`denoise_chunked` gives the same result as ``Denoiser.denoise`` (identical, for
the CPU default of one tile per network call) but never holds the network's whole-scan
outputs: the tiled network (:func:`core.lazy_tiling.predict_tiled_lazy`, ``map_overlap``)
and the Bayesian posterior run one chunk at a time, straight into the float32 result.
Peak memory is the scan, the result and a few chunks, instead of the scan, the padded
scan and ``3 C`` full-size network outputs. The per-scan statistics that the in-memory
path takes from the whole scan (saturation levels, the scan's own noise fit) are taken
from the whole scan here too, so nothing changes in the output.

Modes whose posterior needs the whole network output (``uncalib``: the noise is fitted
on the network's prior mean) compute that output chunk by chunk into one array first.

This module imports no TensorFlow itself: it drives a loaded model's own network.
"""

from __future__ import annotations

import numpy as np

#: modes whose posterior is pixel-local once the scan's noise law is known
_LOCAL_MODES = ("poissongaussian", "poisson", "gaussian", "mse", "supervised")


def _scan_noise_override(
    model, x01: np.ndarray, valid: np.ndarray
) -> list[tuple[float, float] | None]:
    """Per channel ``(a01, b01)`` of this scan's Poisson-Gaussian fit, as the in-memory path
    fits it (``Denoiser._scan_noise_variance``), or None where the fit fails."""
    from .noise import fit_poisson_gaussian

    fits = []
    for k in range(x01.shape[-1]):
        counts = x01[..., k] * model.scale
        try:
            fit = fit_poisson_gaussian(np.where(valid[..., k], counts, np.median(counts)))
        except ValueError:
            model.last_noise.append({"model": "learnt (scan fit failed)"})
            fits.append(None)
            continue
        fits.append((fit.a / model.scale, max(fit.b, 0.0) / model.scale**2))
        model.last_noise.append(
            {
                "model": "affine, fitted on this scan",
                "a_counts": float(fit.a),
                "b_counts": float(max(fit.b, 0.0)),
            }
        )
    return fits


def denoise_chunked(
    model,
    scan: np.ndarray,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    precision: str = "auto",
    noise: str = "auto",
    chunk_tiles: int = 4,
) -> np.ndarray:
    """Denoise a scan of counts like ``model.denoise`` (a blind-spot ``Denoiser``), chunk by chunk.

    ``scan``: ``(C, Y, X)`` or ``(Y, X)`` counts. Returns float32 counts of the same shape
    and sets ``model.last_noise``. ``chunk_tiles`` tile strides per chunk side bound the
    working memory. Raises ``ValueError`` (one sentence) for a scan the model cannot take.
    """
    import dask
    import dask.array as da

    from .core.blindspot.denoiser import resolve_batch_size, resolve_precision
    from .core.data import as_chw_counts, saturated_mask, saturation_levels
    from .core.lazy_tiling import predict_tiled_lazy

    if noise not in ("auto", "refit", "stored"):
        raise ValueError(f"noise must be 'auto', 'refit' or 'stored', got {noise!r}.")
    squeeze = np.ndim(scan) == 2
    counts = as_chw_counts(scan)
    n_ch = counts.shape[0]
    if model.channels == 1:
        groups = [[c] for c in range(n_ch)]
    elif n_ch == model.channels:
        groups = [list(range(n_ch))]
    else:
        raise ValueError(
            f"This model denoises {model.channels}-channel scans, got {n_ch} channel(s); "
            "pass a (C, Y, X) array with the channels it was trained on."
        )
    meta = model.metadata
    tile = int(tile or meta.get("tile", 256))
    overlap = int(meta.get("overlap", 32) if overlap is None else overlap)
    if tile % 2 ** int(meta.get("levels", 0)):
        raise ValueError(
            f"The tile size must be a multiple of {2 ** int(meta.get('levels', 0))} for this "
            f"model, got {tile}."
        )
    batch_size = resolve_batch_size(batch_size)
    precision = resolve_precision(precision)
    saturated = saturated_mask(counts, saturation_levels(counts, meta.get("saturation", "auto")))
    local = meta.get("method") == "blindspot" and model.mode in _LOCAL_MODES
    out = np.empty_like(counts)
    model.last_noise = []
    for chans in groups:
        c = len(chans)
        x01 = np.ascontiguousarray((counts[chans] / model.scale).transpose(1, 2, 0))
        valid = ~saturated[chans].transpose(1, 2, 0)
        predict = model.predict_fn(tile, batch_size, c, precision)
        raw = predict_tiled_lazy(
            x01,
            predict,
            tile=tile,
            overlap=overlap,
            batch_size=batch_size,
            channels_out=3 * c,
            chunk_tiles=chunk_tiles,
        )
        if not local:  # the posterior needs the whole network output
            with dask.config.set(scheduler="synchronous"):
                raw_full = raw.compute()
            x_hat = model.posterior(x01, raw_full, valid, noise)
        else:
            first = len(model.last_noise)
            fits = None
            if noise != "stored" and model.mode not in ("mse", "supervised"):
                fits = _scan_noise_override(model, x01, valid)
            if model.mode in ("mse", "supervised"):
                records = [{"model": "none"}] * c
            elif fits is not None:
                records = list(model.last_noise[first:])
            else:
                stored = meta.get("noise", {}).get("channels", [])
                records = list(stored[:c]) if len(stored) >= c else [{}] * c

            def posterior(y_blk, raw_blk, valid_blk, fits=fits, c=c):
                raw_blk = np.array(raw_blk, copy=True)
                for k, fit in enumerate(fits or []):
                    if fit is not None:  # this scan's noise law, as the in-memory path uses it
                        a01, b01 = fit
                        raw_blk[..., 2 * c + k] = np.maximum(a01 * raw_blk[..., k] + b01, 1e-12)
                return model.posterior(y_blk, raw_blk, valid_blk, "stored")

            chunks = raw.chunks[:2]
            y_d = da.from_array(x01, chunks=chunks + ((c,),))
            v_d = da.from_array(valid, chunks=chunks + ((c,),))
            x_hat = np.empty((*x01.shape[:2], c), np.float32)
            with dask.config.set(scheduler="synchronous"):
                da.store(
                    da.map_blocks(
                        posterior, y_d, raw, v_d, dtype=np.float32, chunks=chunks + ((c,),)
                    ),
                    x_hat,
                    lock=False,
                )
            del model.last_noise[
                first:
            ]  # posterior recorded once per chunk: once per channel instead
            model.last_noise.extend(records)
        out[chans] = x_hat.transpose(2, 0, 1) * model.scale
    out[saturated] = counts[saturated]
    return out[0] if squeeze else out
