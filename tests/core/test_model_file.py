"""Model files are written atomically: a full disk leaves nothing behind and one message."""

import errno

import numpy as np
import pytest

from napari_xray_denoise import io


def test_full_disk_while_saving_model(tmp_path, monkeypatch):
    from napari_xray_denoise.core import TrainConfig, untrained_denoiser

    den = untrained_denoiser(
        1, TrainConfig(enc_filters=4, dec_filters=8, levels=2, tile=64, overlap=8)
    )
    good = tmp_path / "m.keras"
    den.save(good)
    before = good.read_bytes()

    def no_space(self, path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"PK partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    import keras

    monkeypatch.setattr(keras.Model, "save", no_space)
    with pytest.raises(io.ScanWriteError, match="disk space"):
        den.save(good)
    assert good.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]
    assert np.isfinite(den.denoise(np.full((64, 64), 1000, dtype=np.uint16))).all()
