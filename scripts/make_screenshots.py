"""Screenshots of every dock widget in use, for the README: `xvfb-run -a python scripts/make_screenshots.py`.

Opens the medium-dose sample bag, trains a small blind-spot model for a few steps in
the Train widget (worker process), denoises with it, fuses and colours, makes
multiscale targets and scores; saves one PNG of the whole window per widget under
docs/screenshots/.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


def wait_for(app, condition, timeout=600):
    t0 = time.monotonic()
    while not condition():
        app.processEvents()
        time.sleep(0.05)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("widget did not finish in time")


def settle(app, rounds=10):
    for _ in range(rounds):
        app.processEvents()
        time.sleep(0.05)


def shot(viewer, app, path: Path, dock=None) -> Path:
    """Whole-window PNG with the view reset first (the whole scan, not a zoomed part),
    after the dock widget took its space; then the dock is closed."""
    settle(app)
    viewer.reset_view()
    settle(app, 4)
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    if dock is not None:
        viewer.window.remove_dock_widget(dock)
    return path


def main() -> int:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_xray_denoise._napari.widgets.denoise_widget import DenoiseWidget
    from napari_xray_denoise._napari.widgets.fusion_widget import fuse_colour_widget
    from napari_xray_denoise._napari.widgets.score_widget import ScoreWidget
    from napari_xray_denoise._napari.widgets.targets_widget import targets_widget
    from napari_xray_denoise._napari.widgets.train_widget import TrainWidget
    from napari_xray_denoise._worker import compute as _compute

    OUT.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 950)
    app = QApplication.instance()
    viewer.open_sample("napari-xray-denoise", "medium_dose_bag")

    train = TrainWidget(viewer)
    dock = viewer.window.add_dock_widget(train, name="Train denoiser")
    train.reset_choices()
    train.scans.value = ["bag_medium_dose (low+high)"]
    train.preset.value = "quick look (16/32 filters, 2 levels)"
    train.steps.value = 150
    train.crop.value = 64
    train.batch.value = 4
    train.start()
    wait_for(app, lambda: train.last_model is not None and train._worker is None)
    shot(viewer, app, OUT / "train.png", dock)

    den = DenoiseWidget(viewer)
    dock = viewer.window.add_dock_widget(den, name="Denoise")
    den.reset_choices()
    den.scan.value = "bag_medium_dose (low+high)"
    den.start()
    wait_for(app, lambda: den._worker is None and den.last_layers)
    den.toggle_compare()
    shot(viewer, app, OUT / "denoise_compare.png", dock)
    den.toggle_compare()

    for layer in viewer.layers:
        layer.visible = False
    fuse = fuse_colour_widget()
    dock = viewer.window.add_dock_widget(fuse, name="Fuse & colour")
    fuse.low.value = viewer.layers["bag_medium_dose low denoised"]
    fuse.high.value = viewer.layers["bag_medium_dose high denoised"]
    fuse()
    shot(viewer, app, OUT / "fuse_colour.png", dock)

    targets = targets_widget()
    dock = viewer.window.add_dock_widget(targets, name="Multiscale targets")
    for layer in viewer.layers:
        layer.visible = False
    targets(image=viewer.layers["bag_medium_dose low"])
    shot(viewer, app, OUT / "targets.png", dock)

    score = ScoreWidget(viewer)
    dock = viewer.window.add_dock_widget(score, name="Score")
    for name in ("bag_medium_dose low", "bag_medium_dose low denoised"):
        score.image.value = viewer.layers[name]
        score.reference.value = viewer.layers["bag_medium_dose_clean low"]
        score.score()
    shot(viewer, app, OUT / "score.png", dock)

    _compute.shutdown_all()
    viewer.close()
    print(f"screenshots in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
