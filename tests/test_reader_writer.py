"""The npe2 reader and writer contributions (no viewer needed)."""

import numpy as np
import pytest
import tifffile

from napari_xray_denoise import _reader, _writer, io


@pytest.fixture
def errors(monkeypatch):
    """Messages the reader/writer would show as napari notifications."""
    shown = []
    import napari.utils.notifications as notifications

    monkeypatch.setattr(notifications, "show_error", shown.append)
    return shown


def test_get_reader_declines_what_is_not_a_tiff_scan(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG....")
    (tmp_path / "b.tif").write_bytes(b"hello world")
    (tmp_path / "empty").mkdir()
    assert _reader.get_reader(str(tmp_path / "a.png")) is None
    assert _reader.get_reader(str(tmp_path / "b.tif")) is None
    assert _reader.get_reader(str(tmp_path / "missing.tif")) is None
    assert _reader.get_reader(str(tmp_path / "empty")) is None


def test_dual_file_gives_named_gray_16bit_layers(tmp_path, dual_u16):
    path = tmp_path / "bag7.tif"
    tifffile.imwrite(path, dual_u16)
    reader = _reader.get_reader(str(path))
    assert callable(reader)
    layers = reader(str(path))
    assert [kw["name"] for _, kw, _ in layers] == ["bag7 low", "bag7 high"]
    for (data, kw, kind), want in zip(layers, dual_u16, strict=True):
        assert kind == "image" and kw["colormap"] == "gray"
        assert data.dtype == np.uint16
        np.testing.assert_array_equal(data, want)
        lo, hi = kw["contrast_limits"]
        assert 0 <= lo < hi <= 65535
        assert kw["metadata"]["bit_depth"] == 16
        assert kw["metadata"]["source_paths"] == [str(path)]
    assert [kw["metadata"]["energy"] for _, kw, _ in layers] == ["low", "high"]


def test_pair_selected_together_is_read_once(tmp_path, dual_u16):
    tifffile.imwrite(tmp_path / "s_le.tif", dual_u16[0])
    tifffile.imwrite(tmp_path / "s_he.tif", dual_u16[1])
    paths = [str(tmp_path / "s_he.tif"), str(tmp_path / "s_le.tif")]
    layers = _reader.get_reader(paths)(paths)
    assert [kw["name"] for _, kw, _ in layers] == ["s low", "s high"]


def test_folder_opens_every_scan(tmp_path, dual_u16):
    tifffile.imwrite(tmp_path / "one.tif", dual_u16)
    tifffile.imwrite(tmp_path / "two.tif", dual_u16[1])
    layers = _reader.get_reader(str(tmp_path))(str(tmp_path))
    assert [kw["name"] for _, kw, _ in layers] == ["one low", "one high", "two"]


def test_broken_scan_becomes_one_notification(tmp_path, dual_u16, errors):
    path = tmp_path / "broken.tif"
    tifffile.imwrite(path, dual_u16)
    path.write_bytes(path.read_bytes()[:300])
    reader = _reader.get_reader(str(path))
    assert callable(reader)  # it is a TIFF, so it is ours to explain
    assert reader(str(path)) == [(None,)]
    assert len(errors) == 1 and "damaged or truncated" in errors[0]


def test_writer_single_layer_round_trip(tmp_path, dual_u16):
    meta = {"name": "bag low", "metadata": {"channel": "low", "history": [io.history_entry("open")]}}
    out = _writer.write_layer(str(tmp_path / "x.tif"), dual_u16[0], meta)
    assert out == [str(tmp_path / "x.tif")]
    scan = io.read_scan(out[0])
    np.testing.assert_array_equal(scan.channels["low"], dual_u16[0])
    assert [h["operation"] for h in scan.meta["history"]] == ["open", "export"]


def test_writer_float_layer_uses_count_scale(tmp_path):
    x01 = np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32)
    _writer.write_layer(str(tmp_path / "f.tif"), x01, {"name": "d", "metadata": {"count_scale": 65535.0}})
    np.testing.assert_array_equal(io.read_scan(tmp_path / "f.tif").channels["d"], [[0, 32768], [65535, 16384]])
    counts = np.array([[0.4, 12000.6]], dtype=np.float32)
    _writer.write_layer(str(tmp_path / "g.tif"), counts, {"name": "d", "metadata": {"count_scale": 1.0}})
    np.testing.assert_array_equal(io.read_scan(tmp_path / "g.tif").channels["d"], [[0, 12001]])


def test_writer_multiple_layers_with_names_read_back(tmp_path, dual_u16):
    layer_data = [
        (dual_u16[0], {"name": "bag low", "metadata": {}}, "image"),
        (dual_u16[1], {"name": "bag high", "metadata": {}}, "image"),
        (dual_u16[0] / 65535.0, {"name": "bag low denoised", "metadata": {"count_scale": 65535.0}}, "image"),
    ]
    out = _writer.write_layers(str(tmp_path / "all.tif"), layer_data)
    scan = io.read_scan(out[0])
    assert list(scan.channels) == ["low", "high", "bag low denoised"]
    np.testing.assert_array_equal(scan.channels["bag low denoised"], dual_u16[0])
    np.testing.assert_array_equal(scan.stack(), dual_u16)


def test_writer_rgb_layer_to_png(tmp_path, rng):
    from PIL import Image

    rgb = rng.integers(0, 256, size=(9, 11, 3), dtype=np.uint8)
    out = _writer.write_layer(str(tmp_path / "c.png"), rgb, {"name": "colour", "rgb": True, "metadata": {}})
    np.testing.assert_array_equal(np.asarray(Image.open(out[0])), rgb)


def test_writer_errors_are_notifications_not_files(tmp_path, dual_u16, errors):
    assert _writer.write_layer(str(tmp_path / "g.png"), dual_u16[0], {"name": "g", "metadata": {}}) == []
    layer_data = [(dual_u16[0], {"name": "a"}, "image"), (dual_u16[0][:5], {"name": "b"}, "image")]
    assert _writer.write_layers(str(tmp_path / "m.tif"), layer_data) == []
    assert _writer.write_layer(str(tmp_path / "n.tif"), np.full((3, 3), np.nan), {"name": "n", "metadata": {}}) == []
    assert len(errors) == 3
    assert list(tmp_path.iterdir()) == []
