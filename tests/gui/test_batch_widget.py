"""A folder in napari: a lazy stack to browse, and the Denoise widget's batch path (dask
workers import TensorFlow; this process never does)."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from napari_xray_denoise import io
from napari_xray_denoise._napari.widgets.denoise_widget import FROM_FILE, DenoiseWidget


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny untrained model, saved by another process (TensorFlow stays out of this one)."""
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    code = textwrap.dedent(f"""
        from napari_xray_denoise.core import TrainConfig, untrained_denoiser
        untrained_denoiser(1, TrainConfig(enc_filters=4, dec_filters=8, levels=2, tile=64, overlap=8,
                                          joint="separate")).save({str(path)!r})
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300, capture_output=True)
    return path


@pytest.fixture
def scans(tmp_path):
    from napari_xray_denoise.phantom import make_bag

    folder = tmp_path / "scans"
    folder.mkdir()
    for i in range(3):
        io.write_tiff(
            folder / f"bag{i}.tif", make_bag((96, 128), dose=2000, seed=i, n_objects=3).noisy
        )
    return folder


def test_folder_opens_lazy_and_denoises_through_the_batch_path(
    make_napari_viewer, qtbot, scans, tiny_model, tmp_path
):
    import dask.array as da

    viewer = make_napari_viewer(show=True)
    viewer.open(str(scans), plugin="napari-xray-denoise")
    assert [layer.name for layer in viewer.layers] == [
        "scans (3 scans) low",
        "scans (3 scans) high",
    ]
    assert isinstance(viewer.layers[0].data, da.Array) and viewer.layers[0].data.shape == (
        3,
        96,
        128,
    )
    viewer.dims.set_current_step(0, 2)  # browse to the last scan
    np.testing.assert_array_equal(
        np.asarray(viewer.layers[1].data[2]), io.read_scan(scans / "bag2.tif").high
    )

    widget = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.model.value = FROM_FILE
    widget.model_file.value = tiny_model
    panel = widget.folder_batch
    panel.folder.value = scans
    panel.out_folder.value = tmp_path / "out"
    panel.fuse.value = "wavelet"
    panel.workers.value = 2
    worker = panel.start()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=180_000):
        pass
    assert panel.result is not None and panel.result.counts["done"] == 3, panel.status.value
    assert sorted(p.name for p in (tmp_path / "out").glob("*_fused.tif")) == [
        "bag0_fused.tif",
        "bag1_fused.tif",
        "bag2_fused.tif",
    ]
    assert "3 done" in panel.status.value
    assert "tensorflow" not in sys.modules
