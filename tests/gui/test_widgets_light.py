"""Fuse & colour, Multiscale targets and Score widgets driven as a user would."""

import numpy as np
import pytest
import tifffile

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
    assert (
        viewer.layers["bag_medium_dose fused"].metadata["history"][-1]["operation"]
        == "spatial fusion"
    )
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


WIDGETS = ["Train denoiser", "Denoise", "Multiscale targets", "Fuse & colour", "Score"]


@pytest.mark.parametrize(
    "sample", ["low_dose_bag", "medium_dose_bag", "high_dose_bag", "small scan"]
)
def test_every_widget_opens_silently_on_a_scan(
    make_napari_viewer, monkeypatch, qtbot, tmp_path, sample
):
    """Opening any widget with a scan open shows no error (the event loop runs, as in napari)."""
    shown = []
    import napari_xray_denoise._napari.widgets._common as common

    monkeypatch.setattr(common, "show_error", shown.append)
    viewer = make_napari_viewer(show=True)
    if sample == "small scan":  # too small for the default 4 wavelet levels
        scan = "small"
        rng = np.random.default_rng(0)
        tifffile.imwrite(
            tmp_path / "small.tif", rng.integers(0, 60000, (2, 64, 80), dtype=np.uint16)
        )
        viewer.open(tmp_path / "small.tif", plugin="napari-xray-denoise")
    else:
        scan = sample.replace("_bag", "").join(("bag_", ""))
        viewer.open_sample("napari-xray-denoise", sample)
    viewer.layers.selection.active = viewer.layers[f"{scan} high"]
    for name in WIDGETS:
        viewer.window.add_plugin_dock_widget("napari-xray-denoise", name)
        qtbot.wait(50)
    _, fuse = viewer.window.add_plugin_dock_widget("napari-xray-denoise", "Fuse & colour")
    qtbot.wait(50)
    assert shown == []
    # Fuse & colour picked the partner before its live preview ran
    assert fuse.low.value is viewer.layers[f"{scan} low"]
    assert fuse.high.value is viewer.layers[f"{scan} high"]
    assert f"{scan} fused" in viewer.layers


def test_fuse_widget_docked_before_the_scan_picks_the_pair(make_napari_viewer, monkeypatch, qtbot):
    shown = []
    import napari_xray_denoise._napari.widgets._common as common

    monkeypatch.setattr(common, "show_error", shown.append)
    viewer = make_napari_viewer(show=True)
    _, fuse = viewer.window.add_plugin_dock_widget("napari-xray-denoise", "Fuse & colour")
    qtbot.wait(50)
    viewer.open_sample("napari-xray-denoise", "high_dose_bag")
    qtbot.wait(50)
    assert fuse.low.value is viewer.layers["bag_high_dose low"]
    assert fuse.high.value is viewer.layers["bag_high_dose high"]
    viewer.layers.remove(viewer.layers["bag_high_dose high"])  # its partner gone: no error either
    qtbot.wait(50)
    assert shown == []


def test_denoise_widget_uses_the_models_defaults(make_napari_viewer, monkeypatch):
    """Unless the user sets them, tile, overlap and batch size are left to the model and
    the library, as on the command line (no overlap of 32 below AMSSD's receptive radius)."""
    from napari_xray_denoise import options
    from napari_xray_denoise._napari.widgets import _common as common
    from napari_xray_denoise._napari.widgets import denoise_widget
    from napari_xray_denoise._napari.widgets.train_widget import TrainWidget
    from napari_xray_denoise._worker import compute

    submitted = {}

    class FakeLane:
        def submit(self, job, **kwargs):
            submitted.update(kwargs)
            raise compute.BusyError("stop here")

    monkeypatch.setattr(compute, "lane", lambda name: FakeLane())
    monkeypatch.setattr(denoise_widget, "notify_error", lambda exc: None)
    monkeypatch.setattr(common, "notify_error", lambda exc: None)
    viewer = make_napari_viewer()
    viewer.open_sample("napari-xray-denoise", "low_dose_bag")
    den = denoise_widget.DenoiseWidget(viewer)
    den.reset_choices()
    den.model.value = denoise_widget.FROM_FILE
    monkeypatch.setattr(denoise_widget.DenoiseWidget, "model_path", lambda self: "m.keras")
    den.scan.value = "bag_low_dose (low+high)"
    den.start()
    assert {
        k: submitted.get(k, "missing") for k in options.DENOISE_DEFAULTS
    } == options.DENOISE_DEFAULTS
    den.tile.value, den.overlap.value = 128, 16
    den.start()
    assert (
        submitted["tile"] == 128 and submitted["overlap"] == 16 and submitted["batch_size"] is None
    )
    den.self_ensemble.value = 4
    den.start()
    assert submitted["self_ensemble"] == 4
    train = TrainWidget(viewer)
    assert train.method.value == options.DEFAULT_METHOD == "finetune"
    assert (train.lr.value, train.crop.value, train.minutes.value) == (
        options.FINETUNE_DEFAULTS["learning_rate"],
        options.FINETUNE_DEFAULTS["crop_size"],
        options.FINETUNE_DEFAULTS["minutes"],
    )
    train.method.value = "poissongaussian"  # the other methods start from the shared defaults
    assert {
        "steps": train.steps.value,
        "batch_size": train.batch.value,
        "crop_size": train.crop.value,
        "learning_rate": train.lr.value,
        "seed": train.seed.value,
    } == options.TRAIN_DEFAULTS


def test_train_widget_progress_follows_the_time_budget(make_napari_viewer):
    """Under a time budget the bar and the status show the clock's progress and time left."""
    from napari_xray_denoise._napari.widgets.train_widget import TrainWidget
    from napari_xray_denoise.progress import TrainingProgress

    now = [0.0]
    widget = TrainWidget(make_napari_viewer())
    widget._run = TrainingProgress(2000, 10, clock=lambda: now[0])
    now[0] = 60.0
    widget._on_progress({"step": 90, "total": 2000, "loss": 0.1})
    assert widget.bar.value == 10  # a tenth of the 10 minutes, not 90/2000 of the steps
    assert "9:00 left" in widget.status.value


def test_result_layers_of_a_scan_with_edge_bands_show_the_image_range(
    make_napari_viewer, tmp_path, qtbot
):
    """A 12-bit scan with a 52685 filler band: its fused layer keeps the band's metadata and
    a display range of the image part (the band would wash the display out)."""
    rng = np.random.default_rng(0)
    clean = np.stack([np.full((120, 160), 4000.0), np.full((120, 160), 4050.0)])
    clean[:, 30:90, 40:120] = [[[1500.0]], [[2500.0]]]  # one object in air
    scan = rng.normal(clean, 20).clip(0, 4095).astype(np.uint16)
    scan[..., -4:] = 52685
    tifffile.imwrite(tmp_path / "banded.tif", scan)
    viewer = make_napari_viewer(show=True)
    viewer.open(tmp_path / "banded.tif", plugin="napari-xray-denoise")
    _, fuse = viewer.window.add_plugin_dock_widget("napari-xray-denoise", "Fuse & colour")
    qtbot.wait(50)
    fused = viewer.layers["banded fused"]
    assert fused.metadata["edge_bands"]["right"] == 4
    assert fused.contrast_limits[1] < 20000  # not the 52685 of the band
    rgb = viewer.layers["banded material colour"].data
    assert (
        rgb[5:25, 5:35].mean() > 230 and (rgb[:, -4:] == 0).all()
    )  # air white (its own white level), band black
    assert viewer.layers["banded low"].contrast_limits[1] <= 4095
    # targets keep the band as it is; scores leave it out (the same as the image part alone)
    targets_widget()(image=viewer.layers["banded low"], scales="2:1.2")
    target = viewer.layers["banded low target x2 a1.2"].data
    assert (target[:, -4:] == 52685).all() and target[:, :-4].max() <= 4095
    from napari_xray_denoise._napari.widgets.score_widget import score_layer

    banded = score_layer(viewer.layers["banded low"], None, (0.0, 4095.0))
    inside = viewer.add_image(np.ascontiguousarray(scan[0, :, :-4]), name="inside")
    plain = score_layer(inside, None, (0.0, 4095.0))
    assert banded["brisque"] == plain["brisque"] and banded["noise std"] == plain["noise std"]


def test_denoise_widget_passes_frames_and_calibrated_noise(
    make_napari_viewer, monkeypatch, tmp_path
):
    """Dark/flat frames and a calibrated detector reach the job; a missing file is one message."""
    import tifffile

    from napari_xray_denoise._napari.widgets import _common as common
    from napari_xray_denoise._napari.widgets import denoise_widget
    from napari_xray_denoise._worker import compute

    submitted, errors = {}, []

    class FakeLane:
        def submit(self, job, **kwargs):
            submitted.update(kwargs, job=job)
            raise compute.BusyError("stop here")

    monkeypatch.setattr(compute, "lane", lambda name: FakeLane())
    monkeypatch.setattr(denoise_widget, "notify_error", errors.append)
    monkeypatch.setattr(common, "notify_error", errors.append)
    viewer = make_napari_viewer()
    viewer.open_sample("napari-xray-denoise", "low_dose_bag")
    den = denoise_widget.DenoiseWidget(viewer)
    den.reset_choices()
    assert den.model.value == denoise_widget.DEFAULT_MODEL
    den.scan.value = "bag_low_dose (low+high)"
    den.start()
    assert submitted["job"] == "denoise" and submitted["model_path"] == "default"
    assert submitted["physics"] == {}
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.full((4, 800), 60000, np.uint16))
    den.flat_file.value = flat
    den.gain.value, den.offset.value, den.read_noise.value = 40.0, 100.0, 20.0
    den.start()
    physics = submitted["physics"]
    assert physics["flat"].shape == (4, 800) and physics["noise"].a == 40.0
    assert physics["noise"].b == 20.0**2 - 40.0 * 100.0
    den.dark_file.value = tmp_path / "missing.tif"
    den.start()
    assert "is not a file" in str(errors[-1])


def test_choice_lists_show_labels_and_pass_the_names(make_napari_viewer, tmp_path):
    """The combo boxes show human labels; what reaches the library is the method's name."""
    from napari_xray_denoise import options
    from napari_xray_denoise._napari.widgets.batch_folder import BatchFolderControls
    from napari_xray_denoise._napari.widgets.train_widget import TrainWidget

    train = TrainWidget(make_napari_viewer())
    shown = [train.method.native.itemText(i) for i in range(train.method.native.count())]
    assert shown[0] == "Fine-tune the default model" and "finetune" not in shown
    assert train.method.value == "finetune" and train.method.choices == options.TRAIN_METHODS
    assert train.method.native.currentText() == "Fine-tune the default model"
    train.method.value = "amssd"
    assert train.method.native.currentText() == "AMSSD (multiscale pseudo-targets)"
    assert not train.joint.visible  # the method handler got the name, not the label
    assert train.joint.value == "auto" and train.joint.native.currentText() == "auto (separate)"

    panel = BatchFolderControls(lambda: "default")
    assert panel.run_options("default")["fuse"] is None
    panel.fuse.value = "spatial"
    assert panel.fuse.native.currentText() == "spatial (background/detail)"
    assert panel.run_options("m.keras") == {
        "model": "m.keras",
        "fuse": "spatial",
        "colour": None,
        "score": False,
        "workers": None,
    }
