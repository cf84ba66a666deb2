"""The fine-tuning check against the truth on photon-starved scans, blend by blend.

Fine-tunes the shipped default model (or MODEL) for MINUTES on the dark validation scans
of ``unseen_sets.py`` (``dark_validation``: ``synth.dense_electronics`` scenes, validation
seeds, two detectors with offsets), then for every blend of start and tuned weights
prints each channel's true PSNR change (one pass, against the clean scan) beside the
count-domain estimate the check uses (``core.singlepass.finetune._CountCheck``: gain and
upper-bound loss) and the exact PG-URE on lattices of held-back pixels, and counts the blends a rule
would keep although some channel truly got worse. Writes OUT (JSON). For choosing the
acceptance rule from evidence, not for ``make bench``:

    python benchmarks/finetune_check_counts.py 6 docs/dark_finetune_check.json [MODEL]
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from unseen_sets import dark_validation  # noqa: E402

from napari_xray_denoise import metrics, pgure  # noqa: E402
from napari_xray_denoise.core import load_model  # noqa: E402
from napari_xray_denoise.core._backend import keras  # noqa: E402
from napari_xray_denoise.core.singlepass.denoiser import SinglePassDenoiser  # noqa: E402
from napari_xray_denoise.core.singlepass.finetune import (  # noqa: E402
    BLENDS,
    FinetuneConfig,
    _count_verdict,
    _CountCheck,
    _prepare,
    finetune_singlepass,
)


def main(minutes: float, out: str, model: str | None = None) -> None:
    scans = dark_validation()
    start = load_model(model)
    config = FinetuneConfig(minutes=minutes)
    weights = Path(out).with_suffix(".npz")
    res = {"minutes": minutes, "blends": {}}
    if weights.exists():  # the tuned weights of an earlier run: only the scores again
        tuned_weights = list(np.load(weights).values())
    else:
        t0 = time.time()
        r = finetune_singlepass(start, [s[1] for s in scans], config)
        print(f"steps {r.steps} kept_start {r.kept_start} ({time.time() - t0:.0f} s)", flush=True)
        res.update(steps=r.steps, kept_start=r.kept_start)
        res["kept_blend"] = None if r.kept_start else r.denoiser.metadata["finetune"]["blend"]
        res["count_check_tried"] = {str(k): v for k, v in r.blends_count_check.items()}
        res["sure_db"] = {str(k): v for k, v in r.blends_sure_db.items()}
        tuned_weights = r.tuned_weights
        if tuned_weights is None:
            Path(out).write_text(json.dumps(res, indent=1))
            return
        np.savez(weights, *[np.asarray(w) for w in tuned_weights])

    def psnrs(den):
        vals = []
        for _name, noisy, clean, code in scans:
            d = den.denoise(noisy, self_ensemble=1)
            vals += [
                metrics.psnr(d[c].astype(np.float64), clean[c], data_range=code) for c in (0, 1)
            ]
        return np.array(vals)

    m = keras.models.clone_model(start.model)
    m.set_weights(start.model.get_weights())
    den = SinglePassDenoiser(m, dict(start.metadata))
    base = psnrs(den)
    channels = _prepare(
        [s[1] for s in scans], config.crop_size, config.val_fraction, config.val_block, config.seed
    )
    check = _CountCheck(channels, config, start.guided, np.random.default_rng(config.seed + 3))
    start_terms = check.terms(m)
    begin = [np.array(w) for w in start.model.get_weights()]
    # beside it, the exact PG-URE (``pgure.pgure_terms``: one-quantum shifts on lattices
    # of held-back pixels; unbiased at any count, far noisier)
    prng = np.random.default_rng(config.seed + 4)
    probes = [pgure.make_probe(ch.counts.shape, ch.held, 8, prng) for ch in channels]
    consts = [
        pgure.constant_terms(ch.counts, ch.law.a, ch.law.b, p)
        for ch, p in zip(channels, probes, strict=True)
    ]

    def lattice(model_now):
        return [
            pgure.pgure_terms(
                check._denoiser(model_now, i), ch.counts, ch.law.a, ch.law.b, probes[i]
            )
            for i, ch in enumerate(channels)
        ]

    start_lattice = lattice(m)
    wrong = 0
    for t in BLENDS:
        m.set_weights([b + t * (w - b) for b, w in zip(begin, tuned_weights, strict=True)])
        true = psnrs(den) - base
        ok, median, records = _count_verdict(check.changes(start_terms, check.terms(m)), config)
        now = lattice(m)
        exact = [
            pgure.risk_change(start_lattice[i], now[i], consts[i]) for i in range(len(channels))
        ]
        res["blends"][str(t)] = {
            "true_db": true.tolist(),
            "count": records,
            "count_passes": ok,
            "count_median_db": median,
            "exact_lattice_gain_db": [c.gain_db for c in exact],
        }
        worse = bool((true < 0).any())
        wrong += ok and worse
        print(
            f"t={t}: true {np.round(true, 3).tolist()} | count check gain "
            f"{[round(c['gain_db'], 3) for c in records]} upper loss "
            f"{[round(c['upper_loss_db'], 3) for c in records]} passes {ok} | exact lattice "
            f"{[round(c.gain_db, 3) for c in exact]}",
            flush=True,
        )
    res["passes_while_truly_worse"] = int(wrong)
    print("blends the count check passes although a channel is truly worse:", wrong)
    Path(out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main(float(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
