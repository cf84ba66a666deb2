"""Train and Denoise widgets end to end: real canvas, training in the worker process."""

import time

import numpy as np
import pytest
from qtpy.QtCore import QElapsedTimer, QTimer

from napari_xray_denoise._napari.session import REGISTRY
from napari_xray_denoise._napari.widgets import denoise_widget
from napari_xray_denoise._napari.widgets.denoise_widget import DenoiseWidget
from napari_xray_denoise._napari.widgets.train_widget import TrainWidget
from napari_xray_denoise._worker import compute as _compute

TINY = "quick look (16/32 filters, 2 levels)"


@pytest.fixture
def viewer(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-xray-denoise", "high_dose_bag")
    yield viewer
    _compute.shutdown_all()


def _draw(viewer):
    viewer.window._qt_viewer.canvas.native.update()
    return viewer.screenshot(canvas_only=True, flash=False)


def _train_widget(viewer, steps, method="poissongaussian"):
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.reset_choices()
    assert "bag_high_dose (low+high)" in widget.scans.choices
    widget.scans.value = ["bag_high_dose (low+high)"]
    widget.method.value = method
    widget.preset.value = TINY
    widget.steps.value = steps
    widget.crop.value = 64
    widget.batch.value = 4
    return widget


def test_train_stop_then_denoise_and_compare(viewer, qtbot):
    assert "tensorflow" not in __import__("sys").modules
    _draw(viewer)
    widget = _train_widget(viewer, steps=100_000)
    n_models = len(REGISTRY.models)

    # the event loop keeps answering while training runs
    clock, gaps = QElapsedTimer(), []
    timer = QTimer()
    timer.setInterval(50)
    timer.timeout.connect(lambda: gaps.append(clock.restart()))
    clock.start()
    timer.start()

    worker = widget.start()
    assert worker is not None
    # a second run is refused with a message, not a crash
    assert widget.start() is None
    qtbot.waitUntil(
        lambda: bool(widget.plot.train) and widget.plot.train[-1][0] >= 5, timeout=120_000
    )
    timer.stop()
    assert max(gaps[5:]) < 250, f"event loop blocked for {max(gaps[5:])} ms"

    t_stop = time.monotonic()
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        widget.stop_button.clicked.emit()  # the user clicks Stop
    assert time.monotonic() - t_stop < 10
    assert len(REGISTRY.models) == n_models + 1
    assert widget.last_model.metadata["training"]["cancelled"] is True
    _draw(viewer)

    den = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(den)
    den.reset_choices()
    assert den.model.value == denoise_widget.DEFAULT_MODEL  # the shipped model comes first
    assert widget.last_model.name in den.model.choices  # the model just trained is offered
    den.model.value = widget.last_model.name
    den.scan.value = "bag_high_dose (low+high)"
    den.tile.value = 128
    worker = den.start()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    low = viewer.layers["bag_high_dose low denoised"]
    high = viewer.layers["bag_high_dose high denoised"]
    assert low.data.shape == high.data.shape == (480, 800) and low.data.dtype == np.float32
    assert low.metadata["model"]["method"] == "blindspot"
    assert low.metadata["history"][-1]["operation"] == "denoise"
    used = low.metadata["history"][-1]["parameters"]["noise"]  # the noise fitted on this scan
    assert used == low.metadata["noise"] and used["model"].startswith(("affine", "learnt"))
    assert high.metadata["noise"]["model"] == used["model"] and high.metadata["noise"] != used
    from napari_xray_denoise._napari.widgets.denoise_widget import _grid

    den.toggle_compare()
    assert _grid(viewer).enabled and [lay.name for lay in viewer.layers if lay.visible] == [
        "bag_high_dose low",
        "bag_high_dose low denoised",
    ]
    assert _draw(viewer).std() > 0
    den.toggle_compare()
    assert not _grid(viewer).enabled
    assert "tensorflow" not in __import__("sys").modules


def test_train_to_the_end_then_save(viewer, qtbot, tmp_path):
    widget = _train_widget(viewer, steps=12)
    worker = widget.start()
    with qtbot.waitSignal(worker.finished, timeout=180_000):
        pass
    assert (
        widget.last_model is not None
        and widget.last_model.metadata["training"]["cancelled"] is False
    )
    widget.save_path.value = tmp_path / "mine.keras"
    widget.save()
    assert (tmp_path / "mine.keras").stat().st_size > 10_000


def test_denoise_with_bad_model_file_is_one_message(viewer, qtbot, tmp_path, monkeypatch):
    shown = []
    import napari_xray_denoise._napari.widgets._common as common

    monkeypatch.setattr(common, "show_error", shown.append)
    bogus = tmp_path / "bogus.keras"
    bogus.write_bytes(b"not a model")
    den = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(den)
    den.reset_choices()
    den.model.value = "from file..."
    den.model_file.value = bogus
    den.scan.value = "bag_high_dose (low+high)"
    worker = den.start()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    assert len(shown) == 1 and "bogus.keras" in shown[0] and "not a .keras model" in shown[0]
    assert "bag_high_dose low denoised" not in viewer.layers


def test_finetune_the_shipped_model_then_denoise_with_it(viewer, qtbot):
    """The Train widget's first choice fine-tunes the default model on the open scan; the
    result (or the starting model, if it did not get better) is offered to Denoise."""
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.reset_choices()
    assert widget.method.value == "finetune"
    widget.scans.value = ["bag_high_dose (low+high)"]
    widget.minutes.value = 0.1
    worker = widget.start()
    with qtbot.waitSignal(worker.finished, timeout=180_000):
        pass
    meta = widget.last_model.metadata
    assert meta["method"] == "singlepass" and "kept_start" in meta["finetune"]
    from napari_xray_denoise.options import finetune_verdict

    assert finetune_verdict(meta) in widget.status.value  # what was kept, said
    den = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(den)
    den.reset_choices()
    assert widget.last_model.name in den.model.choices
    den.model.value = widget.last_model.name
    den.scan.value = "bag_high_dose (low+high)"
    worker = den.start()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    low = viewer.layers["bag_high_dose low denoised"]
    assert low.metadata["model"]["method"] == "singlepass"
    assert low.metadata["history"][-1]["parameters"]["noise"]["how"].startswith(
        "fitted on this scan"
    )
    assert "tensorflow" not in __import__("sys").modules
