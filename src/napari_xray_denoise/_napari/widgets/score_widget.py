"""Score: BRISQUE, flat-region noise, and PSNR/SSIM against an optional reference layer.

Each click adds one row to the table in the widget; rows stay until cleared.
"""

import napari
import numpy as np
from magicgui.widgets import Container, FloatSpinBox, PushButton, Table, create_widget
from napari.layers import Image

from ... import metrics
from ._common import bands_of, notify_error

HEADERS = ["layer", "brisque", "noise std", "psnr", "ssim"]


class ScoreWidget(Container):
    def __init__(self, viewer: napari.Viewer):
        super().__init__()
        self._viewer = viewer
        self._make_controls()
        self.rows: list[dict] = []
        self.table = Table(value={"data": [], "headers": HEADERS})
        self._lay_out()
        self.score_button.changed.connect(self.score)
        self.clear_button.changed.connect(self.clear)

    def _make_controls(self):
        """The layers to score, the fixed BRISQUE window, and the buttons."""
        self.image = create_widget(
            annotation=Image, label="image", options={"tooltip": "any 2-D grayscale layer (counts)"}
        )
        self.reference = create_widget(
            annotation=Image | None,
            label="reference",
            options={"tooltip": "noise-free reference of the same shape (optional)"},
        )
        self.window_low = FloatSpinBox(
            value=0.0,
            min=0.0,
            max=65535.0,
            label="window low",
            tooltip="fixed BRISQUE window: counts mapped to 0",
        )
        self.window_high = FloatSpinBox(
            value=65535.0,
            min=1.0,
            max=65535.0,
            label="window high",
            tooltip="counts mapped to 255 (4095 for 12-bit scanners)",
        )
        self.score_button = PushButton(text="Score")
        self.clear_button = PushButton(text="Clear table")

    def _lay_out(self):
        self.extend(
            [
                self.image,
                self.reference,
                self.window_low,
                self.window_high,
                self.score_button,
                self.clear_button,
                self.table,
            ]
        )

    def clear(self) -> None:
        self.rows = []
        self.table.value = {"data": [], "headers": HEADERS}

    def score(self) -> dict | None:
        try:
            row = score_layer(
                self.image.value,
                self.reference.value,
                (self.window_low.value, self.window_high.value),
            )
        except ValueError as exc:
            notify_error(exc)
            return None
        self.rows.append(row)
        self.table.value = {
            "data": [[r[h] for h in HEADERS] for r in self.rows],
            "headers": HEADERS,
        }
        return row


def score_layer(image: Image | None, reference: Image | None, window: tuple[float, float]) -> dict:
    """Scores of one layer (BRISQUE with a fixed window, noise, PSNR/SSIM if a reference)."""
    if image is None:
        raise ValueError("Choose an image layer to score.")
    data = np.asarray(image.data)
    if data.ndim != 2 or image.rgb:
        raise ValueError(
            f"Layer '{image.name}' is not a 2-D grayscale image; score each energy layer on its own."
        )
    if window[1] <= window[0]:
        raise ValueError("The BRISQUE window's high end must be above its low end.")
    edges = bands_of(image)  # non-image edge bands are not scored
    data = edges.interior(data)
    row = {
        "layer": image.name,
        "brisque": round(metrics.brisque(data, window=window), 3),
        "noise std": round(metrics.estimate_noise_flat(data), 2),
        "psnr": "",
        "ssim": "",
    }
    if reference is not None:
        ref = np.asarray(reference.data)
        if ref.shape != np.shape(image.data):
            raise ValueError(
                f"Reference '{reference.name}' is {ref.shape} but '{image.name}' is "
                f"{np.shape(image.data)}; choose the reference of the same scan."
            )
        ref = edges.interior(ref)
        row["psnr"] = round(float(metrics.psnr(data, ref)), 3)
        row["ssim"] = round(float(metrics.ssim(data, ref)), 4)
    return row
