"""The npe2 reader contribution (no viewer needed)."""

import numpy as np
import tifffile

from napari_xray_denoise._napari import reader as _reader


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
