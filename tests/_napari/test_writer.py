"""The npe2 writer contributions (no viewer needed)."""

import numpy as np

from napari_xray_denoise import io
from napari_xray_denoise._napari import writer as _writer


def test_writer_single_layer_round_trip(tmp_path, dual_u16):
    meta = {
        "name": "bag low",
        "metadata": {"channel": "low", "history": [io.history_entry("open")]},
    }
    out = _writer.write_layer(str(tmp_path / "x.tif"), dual_u16[0], meta)
    assert out == [str(tmp_path / "x.tif")]
    scan = io.read_scan(out[0])
    np.testing.assert_array_equal(scan.channels["low"], dual_u16[0])
    assert [h["operation"] for h in scan.meta["history"]] == ["open", "export"]


def test_writer_float_layer_uses_count_scale(tmp_path):
    x01 = np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32)
    _writer.write_layer(
        str(tmp_path / "f.tif"), x01, {"name": "d", "metadata": {"count_scale": 65535.0}}
    )
    np.testing.assert_array_equal(
        io.read_scan(tmp_path / "f.tif").channels["d"], [[0, 32768], [65535, 16384]]
    )
    counts = np.array([[0.4, 12000.6]], dtype=np.float32)
    _writer.write_layer(
        str(tmp_path / "g.tif"), counts, {"name": "d", "metadata": {"count_scale": 1.0}}
    )
    np.testing.assert_array_equal(io.read_scan(tmp_path / "g.tif").channels["d"], [[0, 12001]])


def test_writer_multiple_layers_with_names_read_back(tmp_path, dual_u16):
    layer_data = [
        (dual_u16[0], {"name": "bag low", "metadata": {}}, "image"),
        (dual_u16[1], {"name": "bag high", "metadata": {}}, "image"),
        (
            dual_u16[0] / 65535.0,
            {"name": "bag low denoised", "metadata": {"count_scale": 65535.0}},
            "image",
        ),
    ]
    out = _writer.write_layers(str(tmp_path / "all.tif"), layer_data)
    scan = io.read_scan(out[0])
    assert list(scan.channels) == ["low", "high", "bag low denoised"]
    np.testing.assert_array_equal(scan.channels["bag low denoised"], dual_u16[0])
    np.testing.assert_array_equal(scan.stack(), dual_u16)


def test_writer_rgb_layer_to_png(tmp_path, rng):
    from PIL import Image

    rgb = rng.integers(0, 256, size=(9, 11, 3), dtype=np.uint8)
    out = _writer.write_layer(
        str(tmp_path / "c.png"), rgb, {"name": "colour", "rgb": True, "metadata": {}}
    )
    np.testing.assert_array_equal(np.asarray(Image.open(out[0])), rgb)


def test_writer_errors_are_notifications_not_files(tmp_path, dual_u16, errors):
    assert (
        _writer.write_layer(str(tmp_path / "g.png"), dual_u16[0], {"name": "g", "metadata": {}})
        == []
    )
    layer_data = [(dual_u16[0], {"name": "a"}, "image"), (dual_u16[0][:5], {"name": "b"}, "image")]
    assert _writer.write_layers(str(tmp_path / "m.tif"), layer_data) == []
    assert (
        _writer.write_layer(
            str(tmp_path / "n.tif"), np.full((3, 3), np.nan), {"name": "n", "metadata": {}}
        )
        == []
    )
    assert len(errors) == 3
    assert list(tmp_path.iterdir()) == []
