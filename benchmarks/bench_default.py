"""The default model against the strongest classical baseline, on scans it never saw.

Three test sets, none used in training (training: phantom bags 2000+, procedural scenes
of ``synth`` and, from the photo-scene stage on, ``synth.photo_scene`` crops of
PyWavelets' ``aero`` and ``ascent`` and, from the textures stage on, two matplotlib
sample images (``synth.training_photographs``); validation: bags 5000+):

(a) ``phantom``: unseen phantom bags (scene seeds 900+, 480x800) at doses 500/2000/8000;
(b) ``photos``: ten natural photographs from ``skimage.data`` (a source no training
    scene comes from) used as dual-energy transmission maps (high energy attenuated
    0.55x as much as low), 1% column streaks, scanned in simulation at two doses: 1000
    quanta/air pixel in a 16-bit range and 8000 in a 12-bit range (4095);
(c) ``samples``: the three shipped sample bags;
(d) ``electronics``: photon-starved scenes (0.5-50 quanta a pixel over most of the scan)
    from generators the dark training stage never used, by two detectors with offsets
    (``unseen_sets.py``);
(e) ``detectors``: ordinary scenes by three detectors at the edges of the gain, read
    noise, offset and bit-depth range (``unseen_sets.py``).

BM3D + GAT gets the scan's true noise law where the set knows it (``bm3d+gat true
noise``: (a), (b), (d), (e); the strongest baseline), and the law fitted on the scan
(``bm3d+gat``: every set, as a user without calibration runs it); margins are taken
against the stronger of the two per channel.

Per set and channel, PSNR/SSIM (range 65535, or 4095 for 12-bit scans) against the
noise-free scan for: noisy; BM3D + GAT (``classical.bm3d_denoise``: the same column
flat-field, saturated pixels denoised, noise fitted on the scan: the strongest honest
version); the default model (its default self-ensemble of 2 passes, and 1 pass); the
default model fine-tuned for ``--finetune-minutes`` CPU-minutes on that set's noisy scans (``core.singlepass.finetune``); the shipped blind-spot model.
Also: seconds per 640x1000 pair for the default model and BM3D + GAT in the same run,
and peak memory (640x1000 pair, 4096x4096 channel) in fresh processes.

Stages cache their rows in a JSON file so slow parts need not be redone:

    python benchmarks/bench_default.py --stage bm3d            # BM3D rows (model-independent)
    python benchmarks/bench_default.py --stage models          # noisy/default/fine-tuned/blind-spot
    python benchmarks/bench_default.py --stage speed memory    # on an idle machine
    python benchmarks/bench_default.py --report                # markdown tables from the JSON
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _util import machine  # noqa: E402
from unseen_sets import TRUE_NOISE, detector_scans, electronics_scans, photo  # noqa: E402

from napari_xray_denoise import io, metrics, noise, synth  # noqa: E402
from napari_xray_denoise.phantom import make_bag  # noqa: E402

RESULTS = ROOT / "docs" / "bench_default.json"
BLINDSPOT = ROOT / "src" / "napari_xray_denoise" / "data" / "models" / "blindspot_phantom.keras"
PHOTOS = (
    "camera",
    "astronaut",
    "coffee",
    "rocket",
    "coins",
    "moon",
    "brick",
    "gravel",
    "clock",
    "cell",
)
PHOTO_DOSES = ((1000.0, 65535.0), (8000.0, 4095.0))


# ------------------------------------------------------------------ test sets
def photo_scans():
    """(name, noisy (2, Y, X), clean (2, Y, X), code_max) for the held-apart photographs."""
    out = []
    for i, name in enumerate(PHOTOS):
        g = photo(name, (512, 512))
        depth = 3.0 * (1.0 - g) + 0.05
        from scipy import ndimage

        trans = [ndimage.gaussian_filter(np.exp(-k * depth), 0.6) for k in (1.0, 0.55)]
        rng = np.random.default_rng([4242, i])
        streaks = 1.0 + 0.01 * rng.standard_normal((2, g.shape[1]))
        for dose, code in PHOTO_DOSES:
            noisy, clean, laws = [], [], []
            for c, high_ratio in enumerate((1.0, 0.28)):
                s = synth.scan_transmission(
                    trans[c] * streaks[c][None, :],
                    rng,
                    dose=dose * high_ratio,
                    code_max=code,
                    white_fraction=0.92,
                    read_std_fraction=4e-4,
                )
                noisy.append(s.noisy)
                clean.append(s.clean)
                laws.append(noise.NoiseModel(s.a, s.b))
            scan_name = f"{name} dose {dose:g} ({int(np.log2(code + 1))}-bit)"
            TRUE_NOISE[scan_name] = laws
            out.append(
                (
                    scan_name,
                    np.stack(noisy),
                    np.stack(clean),
                    code,
                )
            )
    return out


def phantom_scans():
    out = []
    for i, d in enumerate((500.0, 2000.0, 8000.0)):
        b = make_bag((480, 800), dose=d, seed=900 + i)
        TRUE_NOISE[f"bag dose {d:g}"] = [noise.NoiseModel(p.gain, p.read_std**2) for p in b.noise]
        out.append((f"bag dose {d:g}", b.noisy.astype(np.float64), b.clean, 65535.0))
    return out


def sample_scans():
    from napari_xray_denoise.samples import SAMPLES, sample_paths

    out = []
    for key in SAMPLES:
        noisy_path, clean_path = sample_paths(key)
        out.append(
            (
                key,
                io.read_scan(noisy_path).stack().astype(np.float64),
                io.read_scan(clean_path).stack().astype(np.float64),
                65535.0,
            )
        )
    return out


SETS = {
    "phantom": phantom_scans,
    "photos": photo_scans,
    "samples": sample_scans,
    "electronics": electronics_scans,
    "detectors": detector_scans,
}
#: the strongest baseline: BM3D + GAT with the true noise law where the set knows it
BM3D_TRUE = "bm3d+gat true noise"


# ------------------------------------------------------------------ results file
def load_results() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {"rows": [], "runs": {}}


def save_results(results: dict) -> None:
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, RESULTS)


def _scores(method: str, set_name: str, scan: str, out, clean, code) -> list[dict]:
    rows = []
    for c in range(out.shape[0]):
        rows.append(
            {
                "set": set_name,
                "scan": scan,
                "channel": ("low", "high")[c],
                "method": method,
                "psnr": metrics.psnr(np.asarray(out[c], np.float64), clean[c], data_range=code),
                "ssim": metrics.ssim(np.asarray(out[c], np.float64), clean[c], data_range=code),
            }
        )
    return rows


def _replace_rows(results: dict, rows: list[dict]) -> None:
    keys = {(r["set"], r["scan"], r["channel"], r["method"]) for r in rows}
    results["rows"] = [
        r for r in results["rows"] if (r["set"], r["scan"], r["channel"], r["method"]) not in keys
    ]
    results["rows"].extend(rows)


# ------------------------------------------------------------------ stages
def stage_bm3d(results: dict, sets) -> None:
    from napari_xray_denoise.classical import bm3d_denoise

    have = {(r["set"], r["scan"], r["method"]) for r in results["rows"]}
    for set_name in sets:
        for name, noisy, clean, code in SETS[set_name]():
            t0 = time.perf_counter()
            rows = []
            if (set_name, name, "bm3d+gat") not in have:  # BM3D's rows do not age
                out = bm3d_denoise(noisy)
                rows += _scores("bm3d+gat", set_name, name, out, clean, code)
                rows += _scores("noisy", set_name, name, noisy, clean, code)
            if name in TRUE_NOISE and (set_name, name, BM3D_TRUE) not in have:
                out = bm3d_denoise(noisy, noise=TRUE_NOISE[name])
                rows += _scores(BM3D_TRUE, set_name, name, out, clean, code)
            _replace_rows(results, rows)
            save_results(results)
            print(
                f"bm3d {set_name} {name}: {[(r['method'], round(r['psnr'], 2)) for r in rows]} "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )


def stage_models(
    results: dict,
    sets,
    finetune_minutes: float,
    *,
    model: str | None = None,
    label: str = "default",
    blindspot: bool = True,
) -> None:
    """Rows of ``model`` (the shipped default when None) labelled ``label``, of it
    fine-tuned on each set, and of the shipped blind-spot model (``blindspot``)."""
    from napari_xray_denoise.core import load_model
    from napari_xray_denoise.core.singlepass.finetune import FinetuneConfig, finetune_singlepass

    default = load_model(model)
    blind = load_model(BLINDSPOT) if blindspot and BLINDSPOT.exists() else None
    results["runs"][f"{label}_model"] = {
        "training": default.metadata.get("training", {}),
        "joint": default.metadata.get("joint", "separate"),
    }
    for set_name in sets:
        scans = SETS[set_name]()
        tuned = None
        if finetune_minutes > 0:
            t0 = time.perf_counter()
            # the network these scans are denoised with (the dark companion for a set of
            # photon-starved scans), as ``train --init default`` starts
            start = default.for_scans([s[1] for s in scans])
            ft = finetune_singlepass(
                start, [s[1] for s in scans], FinetuneConfig(minutes=finetune_minutes)
            )
            tuned = ft.denoiser
            results["runs"][f"finetune_{label}_{set_name}"] = {
                "minutes": finetune_minutes,
                "steps": ft.steps,
                "seconds": round(time.perf_counter() - t0, 1),
                "kept_start": ft.kept_start,
                "start": "dark companion" if start is not default else "default",
                "blends_count_check": {str(k): v for k, v in ft.blends_count_check.items()},
                "val_loss_start": ft.val_loss_start,
                "val_loss_best": ft.val_loss_best,
                "blend": None if ft.kept_start else tuned.metadata["finetune"].get("blend"),
                "gain_z": ft.gain_z,
                "gain_db_estimated": ft.gain_db,
                "blends_tried": ft.blends_tried,
                "channel_losses": ft.channel_losses,
                "channel_gain_z": ft.channel_gain_z,
                "blends_channel_gain_z": ft.blends_channel_gain_z,
                "blends_sure_db": ft.blends_sure_db,
            }
            print(
                f"fine-tuned on {set_name}: {results['runs'][f'finetune_{label}_{set_name}']}",
                flush=True,
            )
        for name, noisy, clean, code in scans:
            rows = _scores(label, set_name, name, default.denoise(noisy), clean, code)
            rows += _scores(  # without the self-ensemble: one pass, half the time
                f"{label}, 1 pass",
                set_name,
                name,
                default.denoise(noisy, self_ensemble=1),
                clean,
                code,
            )
            if tuned is not None:
                rows += _scores(
                    f"{label} + {finetune_minutes:g} min fine-tune",
                    set_name,
                    name,
                    tuned.denoise(noisy),
                    clean,
                    code,
                )
            if blind is not None:
                rows += _scores(
                    "blind-spot (shipped before)", set_name, name, blind.denoise(noisy), clean, code
                )
            _replace_rows(results, rows)
            save_results(results)
            print(
                f"models {set_name} {name}: "
                + ", ".join(
                    f"{r['method']} {r['psnr']:.2f}" for r in rows if r["channel"] == "low"
                ),
                flush=True,
            )


def stage_speed(results: dict) -> None:
    from napari_xray_denoise.classical import bm3d_denoise
    from napari_xray_denoise.core import load_model

    bag = make_bag((640, 1000), dose=2000.0, seed=990)
    default = load_model()
    default.denoise(bag.noisy)  # trace once
    times, one_pass = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        default.denoise(bag.noisy)
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        default.denoise(bag.noisy, self_ensemble=1)
        one_pass.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    bm3d_denoise(bag.noisy)
    t_bm3d = time.perf_counter() - t0
    results["runs"]["speed"] = {
        "default_s": min(times),
        "default_all_s": times,
        "bm3d_s": t_bm3d,
        "ratio": t_bm3d / min(times),
        "self_ensemble": default.self_ensemble,
        "default_1pass_s": min(one_pass),
        "default_1pass_all_s": one_pass,
        "ratio_1pass": t_bm3d / min(one_pass),
        "shape": "2x640x1000",
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(results["runs"]["speed"], flush=True)


def _rss_child(shape: str) -> None:
    """Run in a fresh process: load the default model, denoise one scan, print peak RSS (MB)."""
    from napari_xray_denoise.core import load_model

    dims = tuple(int(s) for s in shape.split("x"))
    rng = np.random.default_rng(0)
    model = load_model()
    if len(dims) == 3 and dims[1] * dims[2] <= 2048 * 2048:
        scan = make_bag(dims[1:], dose=2000.0, seed=991).noisy
    else:  # a large scan: a procedural scene tiled; two energies when asked
        t = np.tile(synth.random_scene((512, 512), rng), (dims[-2] // 512, dims[-1] // 512))
        energies = (1.0, 0.55)[: dims[0] if len(dims) == 3 else 1]
        scan = np.stack([synth.scan_transmission(t**k, rng, dose=2000.0).noisy for k in energies])
        scan = scan if len(dims) == 3 else scan[0]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    model.denoise(scan.astype(np.uint16))
    print(
        json.dumps(
            {
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "before_mb": base,
                "seconds": time.perf_counter() - t0,
            }
        )
    )


def stage_memory(results: dict) -> None:
    out = {}
    for shape in ("2x640x1000", "4096x4096", "2x4096x4096"):
        proc = subprocess.run(
            [sys.executable, __file__, "--rss-child", shape],
            capture_output=True,
            text=True,
            check=True,
        )
        out[shape] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(shape, out[shape], flush=True)
    results["runs"]["memory"] = out


# ------------------------------------------------------------------ report
def _strongest_bm3d(cell: dict) -> float | None:
    """The better PSNR of BM3D + GAT with fitted and with true noise, of one channel's
    rows by method (None without either)."""
    vals = [cell[m]["psnr"] for m in ("bm3d+gat", BM3D_TRUE) if m in cell]
    return max(vals) if vals else None


def report(results: dict) -> str:
    rows = results["rows"]
    lines = []
    blind_label = "blind-spot (shipped before)"
    fixed = ["noisy", "bm3d+gat", BM3D_TRUE, "default"]
    others = sorted(
        {r["method"] for r in rows}
        - set(fixed)
        - {blind_label}
        - {r["method"] for r in rows if "fine-tune" in r["method"]}
    )
    methods = (
        fixed
        + others
        + sorted({r["method"] for r in rows if "fine-tune" in r["method"]})
        + [blind_label]
    )
    for set_name in SETS:
        sel = [r for r in rows if r["set"] == set_name]
        if not sel:
            continue
        lines.append(f"\n### Set {set_name}: PSNR / SSIM per channel\n")
        present = [m for m in methods if any(r["method"] == m for r in sel)]
        lines.append("| scan | ch | " + " | ".join(present) + " | default - strongest BM3D (dB) |")
        lines.append("|---|---|" + "---|" * (len(present) + 1))
        margins = []
        for scan in dict.fromkeys(r["scan"] for r in sel):
            for ch in ("low", "high"):
                cell = {r["method"]: r for r in sel if r["scan"] == scan and r["channel"] == ch}
                vals = [
                    f"{cell[m]['psnr']:.2f} / {cell[m]['ssim']:.3f}" if m in cell else "-"
                    for m in present
                ]
                base = _strongest_bm3d(cell)
                margin = (
                    cell["default"]["psnr"] - base
                    if "default" in cell and base is not None
                    else None
                )
                if margin is not None:
                    margins.append(margin)
                lines.append(
                    f"| {scan} | {ch} | "
                    + " | ".join(vals)
                    + f" | {'-' if margin is None else f'{margin:+.2f}'} |"
                )
        if margins:
            lines.append(
                f"\nDefault model minus the strongest BM3D + GAT: median {np.median(margins):+.2f} dB, "
                f"worst {min(margins):+.2f} dB, best {max(margins):+.2f} dB over {len(margins)} channels."
            )
        for m in others:
            if m == BM3D_TRUE:
                continue
            other = []
            for a in sel:
                if a["method"] != m:
                    continue
                cell = {
                    r["method"]: r
                    for r in sel
                    if (r["scan"], r["channel"]) == (a["scan"], a["channel"])
                }
                base = _strongest_bm3d(cell)
                if base is not None:
                    other.append(a["psnr"] - base)
            if other:
                lines.append(
                    f"{m} minus BM3D + GAT: median {np.median(other):+.2f} dB, "
                    f"worst {min(other):+.2f} dB, best {max(other):+.2f} dB."
                )
        # "X + n min fine-tune" compares with X, the model it started from
        for m in present:
            start = m.rsplit(" + ", 1)[0]
            if "fine-tune" in m:
                gains = [
                    a["psnr"] - b["psnr"]
                    for a in sel
                    if a["method"] == m
                    for b in sel
                    if b["method"] == start
                    and b["scan"] == a["scan"]
                    and b["channel"] == a["channel"]
                ]
                if gains:
                    lines.append(
                        f"Fine-tuning gain over the model it started from ({start}): median {np.median(gains):+.2f} dB, "
                        f"worst {min(gains):+.2f} dB."
                    )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stage", nargs="*", default=[], choices=["bm3d", "models", "speed", "memory"]
    )
    parser.add_argument("--sets", nargs="*", default=list(SETS), choices=list(SETS))
    parser.add_argument("--finetune-minutes", type=float, default=10.0)
    parser.add_argument(
        "--model", help="models stage: this .keras file instead of the shipped default model"
    )
    parser.add_argument("--label", default="default", help="models stage: the rows' method name")
    parser.add_argument(
        "--no-blindspot", action="store_true", help="models stage: skip the blind-spot rows"
    )
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        _rss_child(args.rss_child)
        return 0
    results = load_results()
    results.setdefault("runs", {})["machine"] = machine()
    for stage in args.stage:
        if stage == "bm3d":
            stage_bm3d(results, args.sets)
        elif stage == "models":
            stage_models(
                results,
                args.sets,
                args.finetune_minutes,
                model=args.model,
                label=args.label,
                blindspot=not args.no_blindspot,
            )
        elif stage == "speed":
            stage_speed(results)
        elif stage == "memory":
            stage_memory(results)
        save_results(results)
    if args.report or not args.stage:
        print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
