"""napari-level smoke tests: a real viewer under Xvfb, canvas drawn."""

import numpy as np
import pytest
import tifffile

from napari_xray_denoise import io


def _draw(viewer):
    """Draw the GL canvas and return the screenshot (fails if the canvas cannot render)."""
    viewer.window._qt_viewer.canvas.native.update()
    return viewer.screenshot(canvas_only=True, flash=False)


def test_open_dual_scan_in_viewer(make_napari_viewer, tmp_path, dual_u16):
    path = tmp_path / "bag.tif"
    tifffile.imwrite(path, dual_u16)
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(path), plugin="napari-xray-denoise")
    assert [layer.name for layer in layers] == ["bag low", "bag high"]
    assert all(layer.data.dtype == np.uint16 for layer in layers)
    assert layers[0].colormap.name == "gray"
    shot = _draw(viewer)
    assert shot.ndim == 3 and shot.std() > 0  # something was drawn


def test_pair_opened_file_by_file_gives_two_layers(make_napari_viewer, tmp_path, dual_u16):
    tifffile.imwrite(tmp_path / "p_low.tif", dual_u16[0])
    tifffile.imwrite(tmp_path / "p_high.tif", dual_u16[1])
    viewer = make_napari_viewer()
    viewer.open(
        [str(tmp_path / "p_low.tif"), str(tmp_path / "p_high.tif")], plugin="napari-xray-denoise"
    )
    assert [layer.name for layer in viewer.layers] == ["p low", "p high"]


def test_sample_bag_opens_and_draws(make_napari_viewer):
    from napari_xray_denoise.samples import sample_paths

    if not sample_paths("low_dose")[0].exists():
        pytest.fail(
            "sample_data/ is missing the shipped bags; run `python scripts/make_sample_data.py`"
        )
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-xray-denoise", "low_dose_bag")
    names = [layer.name for layer in viewer.layers]
    assert "bag_low_dose low" in names and "bag_low_dose high" in names
    shot = _draw(viewer)
    assert shot.std() > 0


def test_writer_from_viewer_round_trip(make_napari_viewer, tmp_path, dual_u16):
    viewer = make_napari_viewer()
    tifffile.imwrite(tmp_path / "w.tif", dual_u16)
    viewer.open(str(tmp_path / "w.tif"), plugin="napari-xray-denoise")
    out = tmp_path / "both.tif"
    viewer.layers.save(str(out), plugin="napari-xray-denoise")
    np.testing.assert_array_equal(io.read_scan(out).stack(), dual_u16)


def test_readme_screenshots_reset_the_view_first(make_napari_viewer, tmp_path, qtbot):
    """scripts/make_screenshots.py shows the whole scan, not the part left zoomed in."""
    import importlib.util
    from pathlib import Path

    from qtpy.QtWidgets import QApplication, QLabel

    script = Path(__file__).resolve().parents[2] / "scripts" / "make_screenshots.py"
    spec = importlib.util.spec_from_file_location("make_screenshots", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-xray-denoise", "low_dose_bag")
    dock = viewer.window.add_dock_widget(QLabel("a widget"), name="w")
    qtbot.wait(50)
    viewer.reset_view()
    whole_zoom, whole_center = viewer.camera.zoom, viewer.camera.center
    viewer.camera.zoom = 8 * whole_zoom  # the state a previous step left behind
    viewer.camera.center = (0, 100, 100)
    path = module.shot(viewer, QApplication.instance(), tmp_path / "shot.png", dock)
    assert path.stat().st_size > 1000
    assert abs(viewer.camera.zoom - whole_zoom) < 0.25 * whole_zoom
    assert np.allclose(viewer.camera.center[-2:], whole_center[-2:], atol=20)
