"""Option lists and defaults shared by the command line and the napari widgets (no TensorFlow).

Each list is written once, here; ``cli.py`` builds its ``choices`` and the widgets their
combo boxes from it, and the library functions they call hold the same defaults (a test
checks ``core``'s training configurations against :data:`TRAIN_DEFAULTS`).
"""

from __future__ import annotations

from .core.registry import (
    BLINDSPOT_MODES,
    DEFAULT_METHOD,
    DEFAULT_SELF_ENSEMBLE,
    JOINT_OPTIONS,
    SELF_ENSEMBLES,
    method_names,
)
from .fusion import APPROX_RULES, DETAIL_RULES

__all__ = [
    "BLINDSPOT_MODES",
    "DEFAULT_METHOD",
    "DEFAULT_SELF_ENSEMBLE",
    "SELF_ENSEMBLES",
    "TRAIN_METHODS",
]  # names from core.registry (TF-free)

#: training methods: a blind-spot mode, or ``amssd`` (multiscale pseudo-targets); each
#: is registered in ``core.registry``, which decides the model kind it trains
TRAIN_METHODS = method_names()
METHOD_HELP = (
    "finetune (default): start from the shipped default model and learn these scans' own look, "
    "self-supervised (kept only if it gets better on held-back parts of the scans); "
    "poissongaussian/poisson/gaussian/uncalib/mse: blind-spot modes (learn from noisy scans only); "
    "amssd: multiscale pseudo-target network"
)
#: what fine-tuning starts with in the widgets (FinetuneConfig's own defaults)
FINETUNE_DEFAULTS = {"learning_rate": 1e-4, "crop_size": 128, "minutes": 10.0}


def finetune_verdict(metadata: dict) -> str:
    """One line on what a fine-tuning run kept (``metadata["finetune"]`` of its model):
    the starting model, or the tuned one with its estimated gain; "" if not fine-tuned."""
    tuned = metadata.get("finetune")
    if not tuned:
        return ""
    steps = tuned.get("steps", "?")
    if tuned.get("kept_start"):
        return (
            f"fine-tuned {steps} steps; no significant gain without a channel getting worse "
            "(SURE on the scan, held-back crops): kept the starting model"
        )
    return (
        f"fine-tuned {steps} steps; error down by an estimated "
        f"{tuned.get('gain_db_estimated', float('nan')):.2f} dB (median channel, SURE), no "
        f"channel worse; held-back loss down {tuned.get('gain_z', float('nan')):.1f} standard "
        f"errors; weights start + {tuned.get('blend', 1.0):g} x change"
    )


#: dual-energy variants of the blind-spot network (``auto`` = ``separate``)
JOINT_VARIANTS = JOINT_OPTIONS
JOINT_HELP = (
    "auto = separate (best per CPU-minute in the benchmark); cross: each energy sees the other's "
    "centre pixel (independent detectors); blind: centre pixel hidden in both; separate: one "
    "single-channel model for each energy in turn"
)

#: blind-spot network sizes: name -> (label, encoder filters, decoder filters, levels)
NETWORK_SIZES = {
    "cpu": ("CPU (32/64 filters, 3 levels)", 32, 64, 3),
    "quick": ("quick look (16/32 filters, 2 levels)", 16, 32, 2),
    "source": ("source (48/96 filters, 5 levels, GPU)", 48, 96, 5),
}
DEFAULT_NETWORK_SIZE = "cpu"


def network_size(name: str) -> dict[str, int]:
    """``enc_filters``, ``dec_filters`` and ``levels`` of a network size name."""
    if name not in NETWORK_SIZES:
        raise ValueError(f"Unknown network size {name!r}; use one of {', '.join(NETWORK_SIZES)}.")
    _, enc, dec, levels = NETWORK_SIZES[name]
    return {"enc_filters": enc, "dec_filters": dec, "levels": levels}


#: training defaults of both front ends (and of ``core``'s TrainConfig / AmssdConfig)
TRAIN_DEFAULTS = {"steps": 2000, "batch_size": 8, "crop_size": 64, "learning_rate": 1e-3, "seed": 0}

#: denoising defaults: ``None`` means "the model's own" (tile, overlap: AMSSD 64, blind-spot
#: 32, each at least its receptive radius) and "the library's choice" (batch size: 1 tile
#: per call on a CPU, 8 on a GPU), and for the default model the passes over flipped copies
#: averaged (the model's own: 2)
DENOISE_DEFAULTS = {"tile": None, "overlap": None, "batch_size": None, "self_ensemble": None}
SELF_ENSEMBLE_HELP = (
    "default model only: passes over flipped copies of the scan averaged, 1 (fastest), "
    "2 (the default) or 4 (about +0.06 dB more than 2, twice its time)"
)

#: fusion methods, the wavelet rules, and colour schemes
FUSION_METHODS = ("wavelet", "spatial")
FUSION_APPROX_RULES = APPROX_RULES
FUSION_DETAIL_RULES = DETAIL_RULES
COLOUR_SCHEMES = ("material", "hsv", "hot")
#: the command line's fusion defaults, those of ``fusion.wavelet_fuse`` / ``spatial_fuse``
#: (``threshold`` None: 20/255 of the white level)
FUSION_DEFAULTS = {
    "method": "wavelet",
    "wavelet": "db4",
    "level": 4,
    "approx": "smoothed_mean",
    "detail": "sum",
    "threshold": None,
    "gamma": 2.2,
}
DEFAULT_COLOUR_SCHEME = "material"

#: column flat-field: estimated from the scan's air (``auto``, the default) or none
FLATFIELD_MODES = ("auto", "none")
DEFAULT_FLATFIELD = "auto"
#: learning-rate schedules (None: the configuration's own, cosine for blind-spot)
LR_SCHEDULES = ("cosine", "plateau")
#: calibrated blind-spot modes: fit each training scan's noise, or learn one law for all
TRAIN_NOISE_MODES = ("per-scan", "shared")
DEFAULT_TRAIN_NOISE = "per-scan"

# ---- what the widgets' choice lists show; the value passed to the library stays the name


def labelled(names, labels: dict[str, str]) -> list[tuple[str, str]]:
    """``(label, name)`` choices of a combo box; a name without a label shows as itself."""
    return [(labels.get(name, name), name) for name in names]


#: training methods (a method registered later without a label shows its name)
METHOD_LABELS = {
    "finetune": "Fine-tune the default model",
    "poissongaussian": "Blind-spot, Poisson-Gaussian noise (Laine et al.)",
    "poisson": "Blind-spot, Poisson noise (Laine et al.)",
    "gaussian": "Blind-spot, Gaussian noise (Laine et al.)",
    "uncalib": "Blind-spot, uncalibrated noise (Laine et al.)",
    "mse": "Blind-spot, plain squared error",
    "amssd": "AMSSD (multiscale pseudo-targets)",
}
#: dual-energy variants of the blind-spot network
JOINT_LABELS = {
    "auto": "auto (separate)",
    "separate": "separate: one model per energy",
    "blind": "blind: centre pixel hidden in both",
    "cross": "cross: each energy sees the other's centre",
}
#: fusion methods and the wavelet rules
FUSION_METHOD_LABELS = {
    "wavelet": "wavelet (source rules)",
    "spatial": "spatial (background/detail)",
}
FUSION_RULE_LABELS = {
    "smoothed_mean": "smoothed mean",
    "mean": "mean",
    "weighted": "weighted (low-energy weight)",
    "sum": "sum",
    "max_abs": "largest magnitude",
}
#: colour schemes (``none``: the Fuse & colour widget's fusion only)
COLOUR_SCHEME_LABELS = {
    "material": "material (organic, inorganic, metal)",
    "hsv": "HSV pseudocolour",
    "hot": "hot colormap",
    "none": "none (fusion only)",
}
