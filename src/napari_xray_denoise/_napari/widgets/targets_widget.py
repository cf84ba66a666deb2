"""Multiscale targets: the AMSSD pseudo-clean targets of a layer, one result layer per scale."""

import napari
import numpy as np
from magicgui import magic_factory
from napari.layers import Image

from ... import targets
from ...bands import apply_inside
from ._common import bands_of, layer_history_entry, notify_error, show_image


def parse_scales(text: str) -> list[tuple[int, float]]:
    """'2:1.2, 3:1.5' -> [(2, 1.2), (3, 1.5)], with a clear error for anything else."""
    scales = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            factor, a = part.split(":")
            scales.append((int(factor), float(a)))
        except ValueError:
            raise ValueError(
                f"Bad scale '{part}'; write factor:a pairs such as 2:1.2, 3:1.5."
            ) from None
    if not scales:
        raise ValueError("Give at least one scale as factor:a, e.g. 2:1.2.")
    return scales


@magic_factory(
    image={"tooltip": "noisy scan layer (16-bit counts)"},
    scales={"tooltip": "downsampling factor : bicubic kernel parameter a, comma separated"},
    call_button="Make targets",
)
def targets_widget(
    viewer: napari.Viewer, image: Image, scales: str = "2:1.2, 3:1.5, 2:1.8"
) -> None:
    try:
        if image is None:
            raise ValueError("Choose a scan layer.")
        data = np.asarray(image.data)
        if data.ndim != 2 or image.rgb:
            raise ValueError(f"Layer '{image.name}' is not a 2-D grayscale scan.")
        parsed = parse_scales(scales)
        made = apply_inside(  # non-image edge bands pass through unchanged
            lambda inside: targets.make_targets(inside, parsed), data, bands_of(image)
        )
        for (factor, a), target in zip(parsed, made, strict=True):
            history = list(image.metadata.get("history", [])) + [
                layer_history_entry("multiscale target", factor=factor, a=a)
            ]
            show_image(
                viewer,
                target,
                f"{image.name} target x{factor} a{a:g}",
                source=image,
                metadata={
                    "count_scale": 1.0,
                    "history": history,
                    "energy": image.metadata.get("energy"),
                },
            )
    except ValueError as exc:
        notify_error(exc)
