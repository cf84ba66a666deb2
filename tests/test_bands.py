"""Non-image edge bands: found, reported, kept out of bit depth, noise and scaling, passed through."""

import json

import numpy as np
import pytest
import tifffile

from napari_xray_denoise import bands, cli, io
from napari_xray_denoise._napari.layer_data import scan_to_layer_data
from napari_xray_denoise.bands import EdgeBands, find_edge_bands


def _twelve_bit_scan_with_band(shape=(2, 120, 160), seed=0):
    """A noisy 12-bit dual scan whose four rightmost columns hold the filler 52685."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    clean = 2500 + 1200 * np.sin(xx / 11.0) * np.cos(yy / 17.0)
    scan = np.clip(rng.normal(clean, 30, shape), 0, 4095).astype(np.uint16)
    scan[..., -4:] = 52685
    return scan


def test_constant_and_out_of_range_bands_are_found():
    scan = _twelve_bit_scan_with_band()
    assert find_edge_bands(scan) == EdgeBands(right=4)
    garbage = scan.copy()
    garbage[:, :2, :-4] = np.random.default_rng(1).integers(
        5000, 65535, (2, 2, 156)
    )  # above 12 bits
    assert find_edge_bands(garbage) == EdgeBands(top=2, right=4)
    assert EdgeBands(top=2, right=4).describe() == "top 2 rows, right 4 columns"


def test_saturated_air_and_noise_free_edges_are_image():
    scan = _twelve_bit_scan_with_band()[..., :-4]
    saturated = scan.copy()
    saturated[..., -4:] = 4095
    saturated[:, 50:60, 50:60] = 4095  # the same value inside: saturated air, not a band
    assert not find_edge_bands(saturated)
    assert not find_edge_bands(np.full((64, 64), 60000, np.uint16))
    for key in ("low_dose", "medium_dose", "high_dose"):
        from napari_xray_denoise.samples import sample_paths

        for path in sample_paths(key):
            assert not find_edge_bands(io.read_scan(path).images()), path.name


def test_reading_reports_bands_and_keeps_them_out_of_the_bit_depth(tmp_path, capsys):
    path = tmp_path / "scan12.tif"
    tifffile.imwrite(path, _twelve_bit_scan_with_band())
    scan = io.read_scan(path)
    assert scan.meta["effective_bits"] == 12
    assert scan.meta["edge_bands"] == {"top": 0, "bottom": 0, "left": 0, "right": 4}
    assert scan.low.dtype == np.uint16 and scan.low[0, -1] == 52685  # the file's data unchanged
    kwargs = scan_to_layer_data(scan)[0][1]
    meta = kwargs["metadata"]
    assert meta["edge_bands"]["right"] == 4 and meta["effective_bits"] == 12
    assert (
        kwargs["contrast_limits"][1] <= 4095
    )  # the display range is the image's, not the filler's
    assert cli.main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        "right 4 columns" in out and " 12 " in out and "52685" not in out
    )  # max of the image part


def test_processing_runs_inside_and_bands_pass_through():
    scan = _twelve_bit_scan_with_band()
    seen = []

    def denoise(inside):
        seen.append(inside.shape)
        assert inside.max() <= 4095  # the band never reaches the scaling or the noise fit
        return inside.astype(np.float32) + 0.5

    out = bands.apply_inside(denoise, scan)
    assert seen == [(2, 120, 156)] and out.shape == scan.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[..., -4:], 52685)
    np.testing.assert_array_equal(out[..., :-4], scan[..., :-4] + 0.5)
    inside = find_edge_bands(scan).interior(scan)
    assert inside.shape == (2, 120, 156) and inside.max() <= 4095
    plain = scan[..., :-4]
    assert bands.apply_inside(lambda x: x * 2, plain) is not None


@pytest.mark.parametrize("bad", [{"right": 4}, None])
def test_from_dict_round_trip(bad):
    assert EdgeBands.from_dict(bad).as_dict()["right"] == (4 if bad else 0)


def _bag_with_band(seed=0):
    """A 12-bit dual scan: air, one object, and the 52685 filler in the four rightmost columns."""
    rng = np.random.default_rng(seed)
    low = np.full((200, 300), 4000.0)
    low[50:150, 80:220] = 1500
    high = np.full((200, 300), 4050.0)
    high[50:150, 80:220] = 2500
    scan = rng.normal(np.stack([low, high]), 20).clip(0, 4095).astype(np.uint16)
    scan[..., -4:] = 52685
    return scan


def test_fuse_and_colour_leave_the_band_out(tmp_path):
    from PIL import Image

    path = tmp_path / "bag12.tif"
    tifffile.imwrite(path, _bag_with_band())
    assert cli.main(["colour", str(path), "-o", str(tmp_path / "c.png")]) == 0
    rgb = np.asarray(Image.open(tmp_path / "c.png"))
    assert rgb[5:40, 5:60].mean() > 230  # air is air: the white level is the image's, not 52685
    assert (rgb[:, -4:] == 0).all()  # the band: black
    assert cli.main(["fuse", str(path), "-o", str(tmp_path / "f.tif")]) == 0
    fused = io.read_scan(tmp_path / "f.tif").channels["fused"]
    assert (fused[:, -4:] == 52685).all()  # passed through
    from napari_xray_denoise.fusion import wavelet_fuse

    inside = _bag_with_band()[..., :-4]
    expected = np.clip(np.rint(wavelet_fuse(inside[0], inside[1])), 0, 65535)
    np.testing.assert_array_equal(fused[:, :-4], expected)  # the band never entered the fusion


def test_results_with_leading_axes_pass_the_bands_through():
    """Targets (one image per scale) keep the bands in every result; frames are cut alike."""
    scan = _twelve_bit_scan_with_band()
    edges = find_edge_bands(scan)
    out = bands.apply_inside(lambda inside: np.stack([inside, inside * 0.5]), scan, edges)
    assert out.shape == (2, *scan.shape)
    np.testing.assert_array_equal(out[..., -4:], 52685)
    np.testing.assert_array_equal(out[1, ..., :-4], scan[..., :-4] * 0.5)
    flat_rows = np.ones((3, 160))
    full_frame = np.ones((120, 160))
    cut = bands.frames_inside(
        {"flat": flat_rows, "dark": full_frame, "noise": "auto"},
        EdgeBands(top=2, right=4),
        (120, 160),
    )
    assert cut["flat"].shape == (3, 156) and cut["dark"].shape == (118, 156)
    assert cut["noise"] == "auto"
    assert bands.frames_inside({"flat": flat_rows}, EdgeBands(), (120, 160))["flat"] is flat_rows


def test_targets_score_and_denoise_keep_the_band_out(tmp_path, capsys):
    """The command line's targets, scores and a denoise with a flat frame on a banded scan."""
    path = tmp_path / "bag12.tif"
    scan = _bag_with_band()
    tifffile.imwrite(path, scan)
    assert cli.main(["targets", str(path), "-o", str(tmp_path / "t"), "--scales", "2:1.2"]) == 0
    target = io.read_scan(tmp_path / "t" / "bag12_target_x2_a1.2.tif").images()
    np.testing.assert_array_equal(target[..., -4:], 52685)
    assert target[..., :-4].max() <= 4095
    capsys.readouterr()
    assert cli.main(["score", str(path), "--reference", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    banded = {r["channel"]: r for r in rows}
    tifffile.imwrite(tmp_path / "inside.tif", np.ascontiguousarray(scan[..., :-4]))
    assert cli.main(["score", str(tmp_path / "inside.tif"), "--json"]) == 0
    inside = {r["channel"]: r for r in json.loads(capsys.readouterr().out)}
    for channel in ("low", "high"):  # the band changes no score
        assert banded[channel]["brisque"] == pytest.approx(inside[channel]["brisque"])
        assert banded[channel]["noise"] == pytest.approx(inside[channel]["noise"])
        assert banded[channel]["psnr"] == float("inf") or banded[channel]["psnr"] > 100
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.full((4, 300), 4000, np.uint16))  # as wide as the whole scan
    out = tmp_path / "d"
    assert cli.main(["denoise", str(path), "-o", str(out), "--flat", str(flat), "--quiet"]) == 0
    denoised = io.read_scan(out / "bag12_denoised.tif").images()
    np.testing.assert_array_equal(denoised[..., -4:], 52685)
    assert denoised[..., :-4].max() <= 4095
