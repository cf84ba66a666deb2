"""Reading and writing scans: every layout, exact round trips, and every bad input."""

import json
import os

import numpy as np
import pytest
import tifffile

from napari_xray_denoise import io


def test_two_page_tiff_reads_low_then_high(tmp_path, dual_u16):
    path = tmp_path / "bag.tif"
    tifffile.imwrite(path, dual_u16[0])
    tifffile.imwrite(path, dual_u16[1], append=True)
    scan = io.read_scan(path)
    assert scan.name == "bag" and scan.is_dual
    assert scan.low.dtype == np.uint16
    np.testing.assert_array_equal(scan.stack(), dual_u16)


def test_stack_series_reads_index0_as_low(tmp_path, dual_u16):
    path = tmp_path / "stack.tiff"
    tifffile.imwrite(path, dual_u16)
    scan = io.read_scan(path)
    np.testing.assert_array_equal(scan.low, dual_u16[0])
    np.testing.assert_array_equal(scan.high, dual_u16[1])
    assert scan.meta["bit_depth"] == 16


@pytest.mark.parametrize("names", [["HE", "LE"], ["High energy", "Low energy"], ["high", "low"]])
def test_ome_channel_names_decide_roles(tmp_path, dual_u16, names):
    path = tmp_path / "scan.ome.tif"
    # file order is high, low: names must win over index order
    tifffile.imwrite(path, dual_u16[::-1], metadata={"axes": "CYX", "Channel": {"Name": names}})
    scan = io.read_scan(path)
    assert scan.name == "scan"
    np.testing.assert_array_equal(scan.low, dual_u16[0])
    np.testing.assert_array_equal(scan.high, dual_u16[1])


@pytest.mark.parametrize(
    ("low_name", "high_name"),
    [
        ("bag_low.tif", "bag_high.tif"),
        ("bag_LE.tiff", "bag_HE.tiff"),
        ("bag_l.TIF", "bag_h.TIF"),
        ("bag_Low.tif", "bag_HIGH.tif"),
    ],
)
def test_pair_read_from_either_file(tmp_path, dual_u16, low_name, high_name):
    tifffile.imwrite(tmp_path / low_name, dual_u16[0])
    tifffile.imwrite(tmp_path / high_name, dual_u16[1])
    for name in (low_name, high_name):
        scan = io.read_scan(tmp_path / name)
        assert scan.name == "bag"
        np.testing.assert_array_equal(scan.stack(), dual_u16)
    groups = io.scan_paths([tmp_path / high_name, tmp_path / low_name])
    assert len(groups) == 1 and groups[0][0].name == low_name


def test_folder_reads_every_scan_once(tmp_path, dual_u16):
    tifffile.imwrite(tmp_path / "a_low.tif", dual_u16[0])
    tifffile.imwrite(tmp_path / "a_high.tif", dual_u16[1])
    tifffile.imwrite(tmp_path / "b.tif", dual_u16)
    tifffile.imwrite(tmp_path / "c.tif", dual_u16[0])
    (tmp_path / "notes.txt").write_text("not a scan")
    scans = io.read_folder(tmp_path)
    assert [s.name for s in scans] == ["a", "b", "c"]
    assert [s.is_dual for s in scans] == [True, True, False]
    assert list(scans[2].channels) == ["image"]


def test_single_energy_is_one_channel(tmp_path, dual_u16):
    tifffile.imwrite(tmp_path / "one.tif", dual_u16[0])
    scan = io.read_scan(tmp_path / "one.tif")
    assert not scan.is_dual
    with pytest.raises(io.ScanReadError, match="single-energy"):
        scan.stack()


def test_effective_bits_of_12_bit_scan(tmp_path, rng):
    data = rng.integers(0, 4096, size=(2, 20, 30), dtype=np.uint16)
    data[0, 0, 0] = 4095
    tifffile.imwrite(tmp_path / "s.tif", data)
    assert io.read_scan(tmp_path / "s.tif").meta["effective_bits"] == 12


def test_write_read_round_trip_is_bit_exact_with_history(tmp_path, dual_u16):
    path = tmp_path / "out.tif"
    hist = [io.history_entry("denoise", mode="poissongaussian", tile=256)]
    io.write_tiff(
        path,
        [dual_u16[0], dual_u16[1], dual_u16[0]],
        channel_names=["low", "high", "low denoised"],
        history=hist,
    )
    scan = io.read_scan(path)
    assert list(scan.channels) == ["low", "high", "low denoised"]
    for got, want in zip(
        scan.channels.values(), [dual_u16[0], dual_u16[1], dual_u16[0]], strict=True
    ):
        assert got.dtype == np.uint16
        np.testing.assert_array_equal(got, want)
    assert scan.meta["history"][0]["operation"] == "denoise"
    assert scan.meta["history"][0]["parameters"] == {"mode": "poissongaussian", "tile": 256}
    assert scan.meta["history"][0]["version"]


def test_float_written_with_rounding_and_clipping(tmp_path):
    image = np.array([[-3.0, 0.4, 0.6, 1000.5], [65534.6, 70000.0, 2.5, 3.49]])
    io.write_tiff(tmp_path / "f.tif", image)
    got = io.read_scan(tmp_path / "f.tif").channels["image"]
    np.testing.assert_array_equal(got, [[0, 0, 1, 1000], [65535, 65535, 2, 3]])
    # a [0, 1] float layer with a recorded scale returns to counts
    x01 = np.array([[0.0, 0.5], [1.0, 0.25]])
    assert io.count_scale_for(x01) == 65535.0
    np.testing.assert_array_equal(
        io.to_uint16(x01, io.count_scale_for(x01)), [[0, 32768], [65535, 16384]]
    )
    assert io.count_scale_for(x01, {"count_scale": 1.0}) == 1.0


def test_rgb_written_as_8bit_png_and_tiff(tmp_path, rng):
    from PIL import Image

    rgb = rng.integers(0, 256, size=(12, 17, 3), dtype=np.uint8)
    io.write_rgb(tmp_path / "c.png", rgb)
    io.write_rgb(tmp_path / "c.tif", rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "c.png")), rgb)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "c.tif"), rgb)


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, dual_u16):
    path = tmp_path / "keep.tif"
    io.write_tiff(path, dual_u16)
    before = path.read_bytes()

    def boom(tmp):
        tmp.write_bytes(b"partial")
        raise OSError(28, "No space left on device")  # ENOSPC

    with pytest.raises(io.ScanWriteError, match="disk space"):
        io.atomic_write(path, boom)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.tif"]

    with pytest.raises(ValueError, match="NaN"):
        io.write_tiff(path, np.full((4, 4), np.nan))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.tif"]


def test_write_to_missing_folder_is_clear(tmp_path, dual_u16):
    with pytest.raises(io.ScanWriteError, match="does not exist"):
        io.write_tiff(tmp_path / "nope" / "x.tif", dual_u16)


# ------------------------------------------------------------------ bad inputs, one sentence each


def _one_sentence(message: str) -> bool:
    return message.count(". ") == 0 and message.endswith(".") and "Traceback" not in message


def test_rgb_tiff_refused(tmp_path, rng):
    path = tmp_path / "colour.tif"
    tifffile.imwrite(
        path, rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8), photometric="rgb"
    )
    with pytest.raises(io.ScanReadError, match="colour") as info:
        io.read_scan(path)
    assert _one_sentence(str(info.value))


def test_palette_tiff_refused(tmp_path, rng):
    path = tmp_path / "pal.tif"
    cmap = np.zeros((3, 256), dtype=np.uint16)
    tifffile.imwrite(
        path,
        rng.integers(0, 256, size=(20, 30), dtype=np.uint8),
        photometric="palette",
        colormap=cmap,
    )
    with pytest.raises(io.ScanReadError, match="colour"):
        io.read_scan(path)


def test_mismatched_pair_names_both_shapes(tmp_path, rng):
    tifffile.imwrite(tmp_path / "x_low.tif", rng.integers(0, 9, size=(20, 30), dtype=np.uint16))
    tifffile.imwrite(tmp_path / "x_high.tif", rng.integers(0, 9, size=(21, 30), dtype=np.uint16))
    with pytest.raises(io.ScanReadError, match=r"\(20, 30\).*\(21, 30\)") as info:
        io.read_scan(tmp_path / "x_low.tif")
    assert _one_sentence(str(info.value))


def test_mismatched_pages_in_one_file(tmp_path, rng):
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, rng.integers(0, 9, size=(20, 30), dtype=np.uint16))
    tifffile.imwrite(path, rng.integers(0, 9, size=(20, 31), dtype=np.uint16), append=True)
    with pytest.raises(io.ScanReadError, match=r"\(20, 30\).*\(20, 31\)"):
        io.read_scan(path)


def test_missing_partner(tmp_path, dual_u16):
    tifffile.imwrite(tmp_path / "bag_HE.tif", dual_u16[1])
    with pytest.raises(io.ScanReadError, match="bag_LE") as info:
        io.read_scan(tmp_path / "bag_HE.tif")
    assert _one_sentence(str(info.value))


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_file(tmp_path, dual_u16, keep):
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, dual_u16)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(io.ScanReadError, match="damaged|truncated") as info:
        io.read_scan(path)
    assert _one_sentence(str(info.value))


def test_corrupt_header(tmp_path, dual_u16):
    path = tmp_path / "c.tif"
    tifffile.imwrite(path, dual_u16)
    data = bytearray(path.read_bytes())
    data[4:8] = b"\xff\xff\xff\x7f"  # first IFD offset points past the end
    path.write_bytes(bytes(data))
    with pytest.raises(io.ScanReadError):
        io.read_scan(path)


def test_not_a_tiff_and_empty(tmp_path):
    (tmp_path / "fake.tif").write_bytes(b"PNG not really")
    (tmp_path / "empty.tif").write_bytes(b"")
    with pytest.raises(io.ScanReadError, match="not a TIFF"):
        io.read_scan(tmp_path / "fake.tif")
    with pytest.raises(io.ScanReadError, match="empty"):
        io.read_scan(tmp_path / "empty.tif")
    with pytest.raises(io.ScanReadError, match="does not exist"):
        io.read_scan(tmp_path / "gone.tif")


def test_zero_size_image(tmp_path):
    path = tmp_path / "z.tif"
    tifffile.imwrite(path, np.zeros((0, 5), dtype=np.uint16))
    with pytest.raises(io.ScanReadError):
        io.read_scan(path)


def test_nan_and_inf_refused(tmp_path):
    img = np.ones((2, 10, 10), dtype=np.float32)
    img[1, 3, 4] = np.nan
    img[0, 0, 0] = np.inf
    tifffile.imwrite(tmp_path / "n.tif", img)
    with pytest.raises(io.ScanReadError, match="NaN or infinite") as info:
        io.read_scan(tmp_path / "n.tif")
    assert _one_sentence(str(info.value))


@pytest.mark.parametrize(
    ("array", "pattern"),
    [
        (np.zeros((10, 10), dtype=np.complex64), "unsupported pixel type"),
        (np.full((10, 10), -5, dtype=np.int16), "outside the 16-bit range"),
        (np.full((10, 10), 70000, dtype=np.uint32), "outside the 16-bit range"),
    ],
)
def test_unsupported_dtypes(tmp_path, array, pattern):
    path = tmp_path / "d.tif"
    tifffile.imwrite(path, array)
    with pytest.raises(io.ScanReadError, match=pattern):
        io.read_scan(path)


def test_in_range_integers_become_uint16(tmp_path):
    tifffile.imwrite(tmp_path / "i.tif", np.arange(100, dtype=np.int32).reshape(10, 10))
    img = io.read_scan(tmp_path / "i.tif").channels["image"]
    assert img.dtype == np.uint16 and int(img[9, 9]) == 99


def test_tags_kept(tmp_path, dual_u16):
    path = tmp_path / "tag.tif"
    tifffile.imwrite(
        path, dual_u16, software="ScannerOS 4.2", description="belt speed 0.2 m/s", metadata=None
    )
    meta = io.read_scan(path).meta
    assert meta["tiff_tags"]["Software"] == "ScannerOS 4.2"
    assert meta["tiff_tags"]["ImageDescription"] == "belt speed 0.2 m/s"
    assert meta["source_paths"] == [str(path)]


def test_description_is_json_with_history(tmp_path, dual_u16):
    path = tmp_path / "j.tif"
    io.write_tiff(path, dual_u16, history=[io.history_entry("fuse", method="wavelet")])
    with tifffile.TiffFile(path) as tif:
        desc = json.loads(tif.pages.first.description)
    assert desc["channels"] == ["low", "high"]
    assert desc["history"][0]["parameters"]["method"] == "wavelet"
    assert not any(name.endswith(".part") for name in os.listdir(tmp_path))


def _huge_header_tiff(path):
    """A 64x64 TIFF whose header claims 200000x200000 pixels (a damaged or foreign file)."""
    import struct

    tifffile.imwrite(path, np.zeros((64, 64), np.uint16))
    with tifffile.TiffFile(path) as tif:
        entries = [
            (tif.pages[0].tags[k].offset, tif.pages[0].tags[k].code)
            for k in ("ImageWidth", "ImageLength")
        ]
    data = bytearray(path.read_bytes())
    for offset, code in entries:
        struct.pack_into("<HHII", data, offset, code, 4, 1, 200_000)  # LONG, 1 value
    path.write_bytes(bytes(data))
    return path


def _run_capped(args, gib=3):
    """The CLI in a child process whose address space is capped at ``gib`` GiB."""
    import resource
    import subprocess
    import sys

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (gib * 2**30, gib * 2**30))

    code = "import sys; from napari_xray_denoise.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=cap,
    )


def test_huge_header_is_refused_before_allocating_and_tifffile_stays_quiet(tmp_path):
    path = _huge_header_tiff(tmp_path / "huge.tif")
    result = _run_capped(["info", str(path)])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, (
        result.stderr
    )  # one sentence; tifffile's own log lines are not on the console
    assert "200000x200000" in lines[0] and "GiB" in lines[0] and "memory available" in lines[0]
    assert "MemoryError" not in lines[0]
    verbose = _run_capped(["--verbose", "info", str(path)])
    assert (
        "tifffile" in verbose.stderr and "StripByteCounts" in verbose.stderr
    )  # routed through logging


def test_available_memory_is_known_here():
    available = io.available_memory_bytes()
    assert available is None or available > 2**20
