"""Shared pieces of the blind-spot core tests: tiny networks and synthetic scans."""

from __future__ import annotations

import numpy as np

from napari_xray_denoise import core

TINY = {"enc_filters": 8, "dec_filters": 8, "levels": 2}

NOISE_INIT_1 = [{"a": 1e-4, "b": 1e-5, "mean_ref": 0.45, "var_ref": 5.5e-5}]


def _stripes_x01(shape=(96, 96), seed=0) -> np.ndarray:
    """Noisy x01 image whose 8-neighbour mean is a poor prior (period-2 stripes)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    clean = 0.45 + 0.15 * (-1.0) ** xx + 0.1 * np.sin(yy / 7.0)
    return (clean + rng.normal(size=shape) * np.sqrt(1e-4 * clean + 1e-5)).astype(np.float32)


def _dual_scan(shape=(96, 128), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """(noisy uint16 (2, Y, X), clean float64) Poisson-Gaussian scan, gain 8, read noise 25."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    low = 20000 + 15000 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    clean = np.stack([low, 0.7 * low + 5000])
    noisy = 8 * rng.poisson(clean / 8) + rng.normal(0, 25, clean.shape)
    return np.clip(np.round(noisy), 0, 65535).astype(np.uint16), clean


def _randomise(model, seed=0):
    """Give every weight random values so no path is hidden by a zero initialisation."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(w.dtype) for w in model.get_weights()])


def _tiny_config(**kw) -> core.TrainConfig:
    base = dict(
        TINY, steps=6, batch_size=2, crop_size=32, val_every=3, val_crops=4, tile=64, overlap=16
    )
    base.update(kw)
    return core.TrainConfig(**base)
