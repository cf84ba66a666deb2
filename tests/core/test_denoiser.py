"""Tests of ``napari_xray_denoise.core.blindspot.denoiser``: model files saved and loaded, load errors."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

from blindspot_helpers import TINY, _tiny_config  # noqa: E402

from napari_xray_denoise import core  # noqa: E402


def test_save_load_round_trip_and_resume(trained, dual_scan, tmp_path):
    path = trained.save(tmp_path / "model.keras")
    loaded = core.load_model(path)
    assert loaded.metadata == json.loads(json.dumps(trained.metadata))
    scan = dual_scan[0][:, :80, :100]
    np.testing.assert_array_equal(
        loaded.denoise(scan, tile=64, overlap=16), trained.denoise(scan, tile=64, overlap=16)
    )
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("xray_denoise_meta.json"))
    assert meta["package_version"] and meta["tile"] == 64 and "training" in meta
    resumed = core.train_blindspot([dual_scan[0]], _tiny_config(steps=2), resume_from=path)
    assert resumed.metadata["training"]["steps"] == trained.metadata["training"]["steps"] + 2
    assert resumed.metadata["joint"] == "cross"


def test_load_model_errors(tmp_path):
    import keras

    with pytest.raises(core.ModelFileError, match="does not exist"):
        core.load_model(tmp_path / "missing.keras")
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    with pytest.raises(core.ModelFileError, match="not a .keras"):
        core.load_model(text)
    plain = tmp_path / "plain.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(plain)
    with pytest.raises(core.ModelFileError, match="not one made by napari-xray-denoise"):
        core.load_model(plain)
    # a model file whose weights are damaged
    model = core.build_blindspot_model(**TINY)
    from napari_xray_denoise.core.model_file import save_model_file

    good = save_model_file(
        model,
        {"method": "blindspot", "mode": "mse", "channels": 1, "scale": 1.0},
        tmp_path / "good.keras",
    )
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith(".h5"):
                data = data[: len(data) // 3]
            dst.writestr(item, data)
    with pytest.raises(core.ModelFileError, match="damaged"):
        core.load_model(broken)
    assert issubclass(core.ModelFileError, ValueError)
