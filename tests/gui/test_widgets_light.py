"""Fuse & colour, Multiscale targets and Score widgets driven as a user would."""

import numpy as np
import pytest

from napari_xray_denoise._napari.widgets.fusion_widget import fuse_colour_widget
from napari_xray_denoise._napari.widgets.score_widget import ScoreWidget
from napari_xray_denoise._napari.widgets.targets_widget import parse_scales, targets_widget


@pytest.fixture
def viewer_with_bag(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-xray-denoise", "medium_dose_bag")
    return viewer


def test_fuse_colour_widget_pairs_and_previews(viewer_with_bag, qtbot):
    viewer = viewer_with_bag
    widget = fuse_colour_widget()
    viewer.window.add_dock_widget(widget)
    widget.low.value = viewer.layers["bag_medium_dose low"]
    assert widget.high.value is viewer.layers["bag_medium_dose high"]  # partner picked for the user
    widget()
    fused = viewer.layers["bag_medium_dose fused"]
    assert fused.data.dtype == np.float32 and fused.data.shape == (480, 800)
    assert len(np.unique(np.rint(fused.data[200:260, 300:360]))) > 256  # 16-bit precision kept
    colour = viewer.layers["bag_medium_dose material colour"]
    assert colour.rgb and colour.data.shape == (480, 800, 3)
    # live preview: changing a parameter replaces the layer's data, no new layer
    n_layers = len(viewer.layers)
    before = fused.data.copy()
    widget.method.value = "spatial"
    assert len(viewer.layers) == n_layers
    assert not np.array_equal(viewer.layers["bag_medium_dose fused"].data, before)
    assert viewer.layers["bag_medium_dose fused"].metadata["history"][-1]["operation"] == "spatial fusion"
    viewer.window._qt_viewer.canvas.native.update()
    assert viewer.screenshot(canvas_only=True, flash=False).std() > 0


def test_fuse_widget_refuses_mismatched_layers(viewer_with_bag, monkeypatch):
    shown = []
    import napari_xray_denoise._napari.widgets._common as common

    monkeypatch.setattr(common, "show_error", shown.append)
    viewer = viewer_with_bag
    viewer.add_image(np.zeros((10, 12), dtype=np.uint16), name="small")
    widget = fuse_colour_widget()
    viewer.window.add_dock_widget(widget)
    widget(low=viewer.layers["bag_medium_dose low"], high=viewer.layers["small"])
    assert shown and "(480, 800)" in shown[-1] and "(10, 12)" in shown[-1]


def test_targets_widget_adds_one_layer_per_scale(viewer_with_bag):
    viewer = viewer_with_bag
    widget = targets_widget()
    viewer.window.add_dock_widget(widget)
    widget(image=viewer.layers["bag_medium_dose low"], scales="2:1.2, 3:1.5")
    target = viewer.layers["bag_medium_dose low target x3 a1.5"]
    assert target.data.shape == (480, 800)
    assert "bag_medium_dose low target x2 a1.2" in viewer.layers
    with pytest.raises(ValueError, match="factor:a"):
        parse_scales("2-1.2")


def test_score_widget_rows(viewer_with_bag):
    viewer = viewer_with_bag
    widget = ScoreWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image.value = viewer.layers["bag_medium_dose low"]
    widget.reference.value = viewer.layers["bag_medium_dose_clean low"]
    row = widget.score()
    assert row["brisque"] > 0 and 20 < row["psnr"] < 80 and 0 < row["ssim"] < 1
    widget.reference.value = None
    widget.score()
    assert len(widget.rows) == 2 and widget.table.shape[0] == 2
    assert widget.rows[1]["psnr"] == ""  # no reference, no PSNR
