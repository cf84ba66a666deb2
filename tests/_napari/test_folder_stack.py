"""A folder of equal-shape scans opens as lazy dask stacks (no viewer needed)."""

import numpy as np
import pytest
import tifffile

from napari_xray_denoise import io
from napari_xray_denoise._napari import folder_stack as _folder_stack
from napari_xray_denoise._napari import reader as _reader


@pytest.fixture
def folder(tmp_path, rng):
    scans = rng.integers(0, 60000, size=(5, 2, 40, 56), dtype=np.uint16)
    for i, scan in enumerate(scans[:3]):
        tifffile.imwrite(tmp_path / f"bag{i}.tif", scan)
    for i, scan in enumerate(scans[3:], start=3):  # pairs stack with the dual files
        tifffile.imwrite(tmp_path / f"bag{i}_low.tif", scan[0])
        tifffile.imwrite(tmp_path / f"bag{i}_high.tif", scan[1])
    return tmp_path, scans


def test_equal_shape_folder_is_a_lazy_stack_per_energy(folder, monkeypatch):
    import dask.array as da

    path, scans = folder
    _folder_stack._read_cached.cache_clear()
    reads = []
    real = io.read_group
    monkeypatch.setattr(io, "read_group", lambda g: reads.append(g) or real(g))
    # layouts differ (dual file vs pair): not one stack
    assert _folder_stack.folder_stack_layers(path) is None
    for p in path.glob("bag[34]_*.tif"):
        p.unlink()
    reads.clear()
    _folder_stack._read_cached.cache_clear()
    layers = _reader.get_reader(str(path))(str(path))
    assert len(reads) == 1  # only the first scan was read to open the folder
    assert [kw["name"] for _, kw, _ in layers] == [
        f"{path.name} (3 scans) low",
        f"{path.name} (3 scans) high",
    ]
    for (data, kw, kind), channel in zip(layers, (0, 1), strict=True):
        assert kind == "image" and isinstance(data, da.Array) and data.shape == (3, 40, 56)
        assert kw["metadata"]["lazy_stack"] and kw["metadata"]["scan_names"] == [
            "bag0",
            "bag1",
            "bag2",
        ]
        np.testing.assert_array_equal(np.asarray(data[2]), scans[2, channel])
    assert len(reads) == 2  # browsing to scan 2 read it once for both energies


def test_damaged_scan_in_a_stack_shows_zeros_with_one_warning(folder):
    path, scans = folder
    for p in path.glob("bag[34]_*.tif"):
        p.unlink()
    good = (path / "bag1.tif").read_bytes()
    (path / "bag1.tif").write_bytes(good[: len(good) // 2])  # header fine, pixels cut
    _folder_stack._read_cached.cache_clear()
    layers = _folder_stack.folder_stack_layers(path)
    assert layers is not None
    with pytest.warns(UserWarning, match="damaged or truncated.*Showing zeros"):
        plane = np.asarray(layers[0][0][1])
    assert not plane.any()
    np.testing.assert_array_equal(np.asarray(layers[0][0][0]), scans[0, 0])


def test_unequal_shapes_open_one_by_one(tmp_path, rng):
    tifffile.imwrite(tmp_path / "a.tif", rng.integers(0, 9, size=(2, 30, 30), dtype=np.uint16))
    tifffile.imwrite(tmp_path / "b.tif", rng.integers(0, 9, size=(2, 30, 31), dtype=np.uint16))
    layers = _reader.get_reader(str(tmp_path))(str(tmp_path))
    assert [kw["name"] for _, kw, _ in layers] == ["a low", "a high", "b low", "b high"]
