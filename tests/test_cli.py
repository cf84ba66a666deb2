"""The xray-denoise command line, run in-process through main()."""

import json

import numpy as np
import pytest
import tifffile

from napari_xray_denoise import cli, io


def test_phantom_then_info_fuse_colour_score(tmp_path, capsys):
    bag, ref = tmp_path / "bag.tif", tmp_path / "ref.tif"
    assert (
        cli.main(
            ["phantom", "-o", str(bag), "--clean", str(ref), "--shape", "96x128", "--dose", "1000"]
        )
        == 0
    )
    scan = io.read_scan(bag)
    assert scan.is_dual and scan.low.dtype == np.uint16 and scan.shape == (96, 128)
    assert scan.meta["history"][0]["operation"] == "phantom"

    assert cli.main(["info", str(bag)]) == 0
    assert "low" in capsys.readouterr().out

    fused = tmp_path / "fused.tif"
    assert cli.main(["fuse", str(bag), "--method", "spatial", "-o", str(fused)]) == 0
    out = io.read_scan(fused)
    assert out.channels["fused"].dtype == np.uint16
    assert [h["operation"] for h in out.meta["history"]] == ["phantom", "spatial fusion"]
    assert cli.main(["fuse", str(bag), "--level", "2", "-o", str(fused)]) == 0

    png = tmp_path / "colour.png"
    assert cli.main(["colour", str(bag), "-o", str(png)]) == 0
    from PIL import Image

    assert np.asarray(Image.open(png)).shape == (96, 128, 3)

    capsys.readouterr()
    assert cli.main(["score", str(bag), "--reference", str(ref), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["channel"] for r in rows] == ["low", "high"]
    assert all(np.isfinite(r["psnr"]) and 0 < r["ssim"] <= 1 for r in rows)


def test_targets_command_writes_16bit_targets(tmp_path, rng):
    scan = rng.integers(1000, 50000, size=(2, 33, 41), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "s.tif", scan)
    assert (
        cli.main(
            [
                "targets",
                str(tmp_path / "s.tif"),
                "-o",
                str(tmp_path / "t"),
                "--scales",
                "2:1.2,3:1.5",
            ]
        )
        == 0
    )
    written = sorted(p.name for p in (tmp_path / "t").iterdir())
    assert written == ["s_target_x2_a1.2.tif", "s_target_x3_a1.5.tif"]
    target = io.read_scan(tmp_path / "t" / "s_target_x3_a1.5.tif")
    assert target.stack().shape == scan.shape and target.low.dtype == np.uint16


def test_errors_are_one_line_and_exit_2(tmp_path, capsys, rng):
    tifffile.imwrite(tmp_path / "single.tif", rng.integers(0, 9, size=(20, 20), dtype=np.uint16))
    assert cli.main(["fuse", str(tmp_path / "single.tif"), "-o", str(tmp_path / "f.tif")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "one energy only" in err
    assert cli.main(["info", str(tmp_path / "missing_low.tif")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert (
        cli.main(
            ["targets", str(tmp_path / "single.tif"), "-o", str(tmp_path), "--scales", "2-1.2"]
        )
        == 2
    )
    assert "factor:a" in capsys.readouterr().err
    assert not (tmp_path / "f.tif").exists()


def test_demo_runs_on_sample_bags(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path)]) == 0
    names = {p.name for p in tmp_path.iterdir()}
    for bag in ("bag_low_dose", "bag_medium_dose", "bag_high_dose"):
        assert f"{bag}_noisy_fused.tif" in names and f"{bag}_noisy_material.png" in names
    fused = io.read_scan(tmp_path / "bag_low_dose_noisy_fused.tif").channels["fused"]
    assert fused.dtype == np.uint16
    assert "brisque" in capsys.readouterr().out


def test_train_then_denoise_commands(tmp_path, capsys):
    bag = tmp_path / "bag.tif"
    assert (
        cli.main(["phantom", "-o", str(bag), "--shape", "96x128", "--dose", "2000", "--seed", "3"])
        == 0
    )
    model = tmp_path / "m.keras"
    assert (
        cli.main(
            [
                "train",
                str(bag),
                "-o",
                str(model),
                "--method",
                "poissongaussian",
                "--steps",
                "4",
                "--batch-size",
                "2",
                "--crop-size",
                "32",
                "--quiet",
            ]
        )
        == 0
    )
    assert "noise parameters" in capsys.readouterr().out
    assert (
        cli.main(
            [
                "denoise",
                str(bag),
                "--model",
                str(model),
                "-o",
                str(tmp_path / "out"),
                "--tile",
                "64",
                "--overlap",
                "8",
                "--quiet",
            ]
        )
        == 0
    )
    out = io.read_scan(tmp_path / "out" / "bag_denoised.tif")
    assert out.is_dual and out.low.dtype == np.uint16 and out.shape == (96, 128)
    assert out.meta["history"][-1]["operation"] == "denoise"
    assert out.meta["history"][-1]["parameters"]["mode"] == "poissongaussian"
    # the history records the noise fitted on this scan, one law per channel, not the training noise
    noise = out.meta["history"][-1]["parameters"]["noise"]
    assert isinstance(noise, list) and len(noise) == 2
    assert all(n["model"] == "affine, fitted on this scan" and n["a_counts"] > 0 for n in noise)
    # a file that is not a model: one line, exit 2
    capsys.readouterr()
    assert cli.main(["denoise", str(bag), "--model", str(bag), "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model" in err[0]
    assert cli.main(["train", str(bag), "-o", str(tmp_path / "m.h5")]) == 2


def test_train_options_reach_the_model_file(tmp_path):
    from napari_xray_denoise.core import load_model

    bag = tmp_path / "bag.tif"
    assert (
        cli.main(["phantom", "-o", str(bag), "--shape", "96x128", "--dose", "2000", "--seed", "5"])
        == 0
    )
    model = tmp_path / "m.keras"
    assert (
        cli.main(
            [
                "train",
                str(bag),
                "-o",
                str(model),
                "--method",
                "poissongaussian",
                "--steps",
                "3",
                "--batch-size",
                "2",
                "--crop-size",
                "32",
                "--minutes",
                "5",
                "--lr-schedule",
                "plateau",
                "--noise",
                "shared",
                "--learning-rate",
                "2e-4",
                "--quiet",
            ]
        )
        == 0
    )
    config = load_model(model).metadata["training"]["config"]
    assert config["minutes"] == 5 and config["lr_schedule"] == "plateau"
    assert config["noise_per_scan"] is False and config["learning_rate"] == 2e-4
    assert load_model(model).metadata["training"]["steps"] == 3  # the step budget ran out first


def test_amssd_train_and_denoise_commands(tmp_path):
    bag = tmp_path / "bag.tif"
    assert (
        cli.main(["phantom", "-o", str(bag), "--shape", "96x128", "--dose", "2000", "--seed", "4"])
        == 0
    )
    model = tmp_path / "a.keras"
    assert (
        cli.main(
            [
                "train",
                str(bag),
                "-o",
                str(model),
                "--method",
                "amssd",
                "--width",
                "8",
                "--steps",
                "3",
                "--batch-size",
                "2",
                "--crop-size",
                "32",
                "--quiet",
            ]
        )
        == 0
    )
    assert (
        cli.main(
            ["denoise", str(bag), "--model", str(model), "-o", str(tmp_path / "out"), "--quiet"]
        )
        == 0
    )
    out = io.read_scan(tmp_path / "out" / "bag_denoised.tif")
    assert out.shape == (96, 128) and out.meta["history"][-1]["parameters"]["method"] == "amssd"


def test_denoise_without_model_uses_the_default_and_records_the_fitted_noise(tmp_path):
    bag = tmp_path / "bag.tif"
    assert cli.main(["phantom", "-o", str(bag), "--shape", "96x128", "--dose", "1000"]) == 0
    assert cli.main(["denoise", str(bag), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    step = io.read_scan(tmp_path / "out" / "bag_denoised.tif").meta["history"][-1]
    assert step["parameters"]["model"] == "default" and step["parameters"]["method"] == "singlepass"
    assert [r["how"].split(" (")[0] for r in step["parameters"]["noise"]] == [
        "fitted on this scan"
    ] * 2


def test_denoise_self_ensemble_is_chosen_and_recorded(tmp_path):
    bag = tmp_path / "bag.tif"
    assert cli.main(["phantom", "-o", str(bag), "--shape", "96x128", "--dose", "1000"]) == 0
    outs = {}
    for passes in ("1", "4"):
        out = tmp_path / passes
        assert (
            cli.main(["denoise", str(bag), "-o", str(out), "--quiet", "--self-ensemble", passes])
            == 0
        )
        scan = io.read_scan(out / "bag_denoised.tif")
        noise = scan.meta["history"][-1]["parameters"]["noise"]
        assert [r["self_ensemble"] for r in noise] == [int(passes)] * 2
        outs[passes] = scan.stack()
    assert not np.array_equal(outs["1"], outs["4"])
    assert (
        cli.main(
            [
                "denoise",
                str(bag),
                "--method",
                "bm3d",
                "--self-ensemble",
                "2",
                "-o",
                str(tmp_path / "b"),
            ]
        )
        == 2
    )


def test_denoise_with_calibrated_noise_records_it(tmp_path):
    bag = tmp_path / "bag.tif"
    assert cli.main(["phantom", "-o", str(bag), "--shape", "96x128", "--dose", "1000"]) == 0
    assert (
        cli.main(
            [
                "denoise",
                str(bag),
                "-o",
                str(tmp_path / "out"),
                "--quiet",
                "--gain",
                "60",
                "--offset",
                "0",
                "--read-noise",
                "25",
            ]
        )
        == 0
    )
    noise = io.read_scan(tmp_path / "out" / "bag_denoised.tif").meta["history"][-1]["parameters"][
        "noise"
    ]
    assert noise[0]["how"] == "given (calibrated)" and noise[0]["a_counts"] == 60.0
    assert cli.main(["denoise", str(bag), "-o", str(tmp_path / "x"), "--offset", "3"]) == 2


def test_denoise_bm3d_method(tmp_path):
    import importlib.util

    if importlib.util.find_spec("bm3d") is None:
        pytest.skip("the optional bm3d package is not installed")
    bag = tmp_path / "bag.tif"
    assert cli.main(["phantom", "-o", str(bag), "--shape", "64x96", "--dose", "1000"]) == 0
    assert (
        cli.main(["denoise", str(bag), "--method", "bm3d", "-o", str(tmp_path / "out"), "--quiet"])
        == 0
    )
    step = io.read_scan(tmp_path / "out" / "bag_denoised.tif").meta["history"][-1]
    assert (
        step["parameters"]["method"] == "bm3d+gat"
        and step["parameters"]["noise"][0]["a_counts"] > 0
    )


def test_train_init_default_fine_tunes(tmp_path, capsys):
    bag = tmp_path / "bag.tif"
    assert cli.main(["phantom", "-o", str(bag), "--shape", "288x160", "--dose", "1000"]) == 0
    model = tmp_path / "ft.keras"
    assert (
        cli.main(
            [
                "train",
                str(bag),
                "-o",
                str(model),
                "--init",
                "default",
                "--minutes",
                "0.05",
                "--quiet",
            ]
        )
        == 0
    )
    assert "wrote" in capsys.readouterr().out and model.exists()
    from napari_xray_denoise.core import load_model

    assert load_model(model).metadata["method"] == "singlepass"
    blind = tmp_path / "blind.keras"
    assert (
        cli.main(
            [
                "train",
                str(bag),
                "-o",
                str(blind),
                "--method",
                "poissongaussian",
                "--steps",
                "2",
                "--crop-size",
                "32",
                "--quiet",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert cli.main(["train", str(bag), "-o", str(tmp_path / "x.keras"), "--init", str(blind)]) == 2
    assert "fine-tuning starts from the default model" in capsys.readouterr().err


def test_train_options_of_each_method_kind():
    """``_train_options``: fine-tuning's own few options and budget; the others' full set."""
    parser = cli.build_parser()
    tune = parser.parse_args(["train", "s.tif", "-o", "m.keras", "--init", "default"])
    assert cli._train_method(tune) == "finetune"
    minutes, opts = cli._train_options("finetune", tune)
    assert minutes == 10.0 and opts == {
        "seed": 0,
        "minutes": 10.0,
        "init": "default",
        "learning_rate": None,
    }
    blind = parser.parse_args(
        ["train", "s.tif", "-o", "m.keras", "--method", "poisson", "--noise", "shared"]
    )
    minutes, opts = cli._train_options(cli._train_method(blind), blind)
    assert minutes is None and opts["noise_per_scan"] is False and opts["enc_filters"] == 32
    bad = parser.parse_args(["train", "s.tif", "-o", "m.keras", "--init", "x", "--method", "mse"])
    with pytest.raises(cli.CliError, match="does not go with --method mse"):
        cli._train_method(bad)
