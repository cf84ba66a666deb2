"""How the fine-tuning check's per-channel statistics predict the true change.

Fine-tunes the shipped default model on set (b) of ``bench_default.py`` (the held-apart
photographs) for MINUTES, as the benchmark does, then for every blend of start and tuned
weights prints each channel's held-back paired statistic (``gain_z``) and SURE gains
(held-back pixels, whole crops) beside its true PSNR change (one pass) against the
start, writes them to OUT (JSON) and the start and tuned weights beside it (OUT with
``.npz``, to try other scores offline). For choosing
the acceptance rule of ``core.singlepass.finetune`` from evidence, not for ``make bench``:

    python benchmarks/finetune_check.py 10 /tmp/finetune_check.json
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_default import photo_scans  # noqa: E402

from napari_xray_denoise import metrics  # noqa: E402
from napari_xray_denoise.core import load_model  # noqa: E402
from napari_xray_denoise.core.singlepass.finetune import (  # noqa: E402
    BLENDS,
    FinetuneConfig,
    finetune_singlepass,
)

scans = photo_scans()
start = load_model()
t0 = time.time()
r = finetune_singlepass(start, [s[1] for s in scans], FinetuneConfig(minutes=float(sys.argv[1])))
print(
    "steps",
    r.steps,
    "kept",
    r.kept_start,
    "blend",
    None if r.kept_start else r.denoiser.metadata["finetune"]["blend"],
    "secs",
    time.time() - t0,
    flush=True,
)


def psnrs(den):
    out = []
    for _name, noisy, clean, code in [s[:4] for s in scans]:
        d = den.denoise(noisy, self_ensemble=1)
        out += [metrics.psnr(d[c].astype(np.float64), clean[c], data_range=code) for c in range(2)]
    return np.array(out)


base = psnrs(start)
res = {"steps": r.steps, "blends_tried": r.blends_tried, "z": {}, "dpsnr": {}}
if r.tuned_weights is not None:
    # the start and tuned weights beside OUT, to try other acceptance scores offline
    np.savez(
        Path(sys.argv[2]).with_suffix(".npz"),
        *[np.asarray(w) for w in start.model.get_weights()],
        *[np.asarray(w) for w in r.tuned_weights],
    )
    begin = [np.array(w) for w in start.model.get_weights()]
    from napari_xray_denoise.core._backend import keras
    from napari_xray_denoise.core.singlepass.denoiser import SinglePassDenoiser

    m = keras.models.clone_model(start.model)
    den = SinglePassDenoiser(m, dict(start.metadata))
    for t in BLENDS:
        m.set_weights([b + t * (w - b) for b, w in zip(begin, r.tuned_weights, strict=True)])
        d = psnrs(den) - base
        z = np.array(r.blends_channel_gain_z[t])
        res["z"][t] = z.tolist()
        res["dpsnr"][t] = d.tolist()
        res.setdefault("sure_db", {})[t] = r.blends_sure_db[t]
        for where, v in r.blends_sure_db[t].items():
            v = np.array(v, dtype=float)
            ok = np.isfinite(v)
            print(
                f"t={t}: SURE ({where}) min {np.nanmin(v):+.3f}, channels down {(v < 0).sum()}, "
                f"corr with dPSNR {np.corrcoef(v[ok], d[ok])[0, 1]:+.2f}",
                flush=True,
            )
        print(
            f"t={t}: dPSNR median {np.median(d):+.3f} min {d.min():+.3f} losers {(d < 0).sum()} | z min {z.min():+.2f} (ch {z.argmin()}, dPSNR {d[z.argmin()]:+.3f}) | z<0: {(z < 0).sum()} z<-1: {(z < -1).sum()} z<-2: {(z < -2).sum()} | corr {np.corrcoef(z, d)[0, 1]:+.2f}",
            flush=True,
        )
Path(sys.argv[2]).write_text(json.dumps(res))
