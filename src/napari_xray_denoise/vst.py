"""The network domain of the single-pass denoiser: normalised generalized Anscombe (numpy).

A channel of counts ``y`` with noise law ``Var = a * mean + b`` and top code ``code_max``
(4095, 8191, 65535...) maps to

    u = GAT(y) / GAT(code_max),   GAT(y) = 2 * sqrt(max(y / a + 3/8 + b / a^2, 0)),

so ``u`` lies in about [0, 1] whatever the bit depth and dose, and its noise is close to
Gaussian with one standard deviation everywhere, ``sigma_u = 1 / GAT(code_max)`` (the
*noise level* the network is told). The inverse is algebraic: the network is trained to
output ``GAT(clean) / GAT(code_max)`` itself, so no bias correction is needed.

No TensorFlow here: the training sampler, the benchmarks and the tests use it too.
"""

from __future__ import annotations

import numpy as np


def _check(a: float, b: float, code_max: float) -> tuple[float, float, float]:
    a, b, code_max = float(a), float(b), float(code_max)
    if not (np.isfinite(a) and a > 0 and np.isfinite(b) and np.isfinite(code_max) and code_max > 0):
        raise ValueError(
            f"the network domain needs a gain a > 0, a finite b and code_max > 0; got a={a}, "
            f"b={b}, code_max={code_max}."
        )
    return a, b, code_max


def gat_reference(a: float, b: float, code_max: float) -> float:
    """GAT value of the top code, ``GAT(code_max)`` (> 0)."""
    a, b, code_max = _check(a, b, code_max)
    return float(2.0 * np.sqrt(max(code_max / a + 0.375 + b / (a * a), 1e-12)))


def noise_level(a: float, b: float, code_max: float) -> float:
    """Noise std of ``u`` (the value given to the network): ``1 / GAT(code_max)``."""
    return 1.0 / gat_reference(a, b, code_max)


def to_network(counts, a: float, b: float, code_max: float) -> np.ndarray:
    """Counts (any shape) -> ``u`` (float32), see the module docstring."""
    a, b, code_max = _check(a, b, code_max)
    ref = gat_reference(a, b, code_max)
    y = np.asarray(counts, dtype=np.float64)
    z = 2.0 * np.sqrt(np.maximum(y / a + 0.375 + b / (a * a), 0.0))
    return (z / ref).astype(np.float32)


def from_network(u, a: float, b: float, code_max: float) -> np.ndarray:
    """Inverse of :func:`to_network` (algebraic; float64 counts, >= 0)."""
    a, b, code_max = _check(a, b, code_max)
    ref = gat_reference(a, b, code_max)
    z = np.maximum(np.asarray(u, dtype=np.float64), 0.0) * ref
    return np.maximum(a * (0.25 * z * z - 0.375 - b / (a * a)), 0.0)


def code_range(counts, *, quantile: float = 99.9) -> float:
    """Top code of the scanner that wrote ``counts``: ``2**k - 1`` for the smallest ``k``
    (8..16) that holds the ``quantile`` percentile of the pixels, so a 12-bit scan in a
    16-bit file gives 4095 even with a few hot pixels at 65535."""
    arr = np.asarray(counts)
    top = float(np.percentile(arr, quantile)) if arr.size else 0.0
    for bits in range(8, 17):
        if top <= 2**bits - 1:
            return float(2**bits - 1)
    return float(max(top, 65535.0))
