"""Material fidelity: does denoising keep what a dual-energy screener's colours are made of?

Test scenes never used in training: phantom bags (``phantom.make_bag``, scene seeds
920-923, 320x480; training uses bags 2000+, validation 5000+), their clean air-normalised
transmissions ``bag.transmission`` with thin copper-like wires drawn in (per bag one
straight and one curved wire 1 px wide and the same 2 px wide, low-energy optical depth
0.3-0.8, high-energy depth a third of it, so their ratio is metal-like), scanned in
simulation (``synth.scan_transmission``, 16-bit, air at 0.92 x 65535, read noise 4e-4 of
the range) at a low-energy dose of 2000 and 8000 quanta per air pixel (high channel 0.28x).

Methods: the noisy scan; BM3D + GAT with the true noise laws; the shipped default model;
optionally another model file (``--model PATH --label NAME``). Per method and dose, over
the four bags:

* PSNR and SSIM (range 65535);
* the level bias per channel over flat regions of the clean scan
  (``fidelity.level_bias``: median and worst region of >= 400 px and pooled, in % of the
  level; target |bias| < 0.1 %), against the clean scan and against the noisy input (the
  shift the method itself adds, free of the noise realisation's own region means);
* the same for the ratio R (``fidelity.ratio_bias``: R of each region's mean
  attenuations), over all flat regions and over objects only (high-energy
  log-attenuation >= 0.1: most flat regions are bag fabric absorbing ~5 %, where a
  0.1 % level shift moves R by ~2 %); the mean of the per-pixel R, heavy-tailed on thin
  material, is in the JSON only;
* the share of pixels that keep their material class (all, non-background; the known
  air level 0.92 x 65535 for both channels);
* the kept contrast of the 1-px and 2-px wires (``fidelity.wire_contrast``, against a
  ring 3-4 px around them);
* the share of the squared error held by column and by row means
  (``fidelity.line_error_share``).

Flat regions leave out air and near-air (transmission > 0.97, where R is undefined) and
levels whose noise reaches within 3 std of the top code (clipped means are biased).
About 5 minutes on 2 busy cores, most of it BM3D (``--no-bm3d`` skips it).

    python benchmarks/bench_material.py --out docs/bench_material.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _util import machine  # noqa: E402

from napari_xray_denoise import fidelity, metrics, synth  # noqa: E402
from napari_xray_denoise.noise import NoiseModel  # noqa: E402
from napari_xray_denoise.phantom import make_bag  # noqa: E402

SEEDS = (920, 921, 922, 923)
SHAPE = (320, 480)
DOSES = (2000.0, 8000.0)
HIGH_PER_LOW = 0.28
CODE_MAX = 65535.0
WHITE_FRACTION = 0.92
READ_STD_FRACTION = 4e-4
WHITE = WHITE_FRACTION * CODE_MAX
WIRE_DEPTH = (0.3, 0.8)
HIGH_DEPTH_FRACTION = 1.0 / 3.0
MIN_REGION_PX = 400
AIR_TRANSMISSION = 0.97  # flat regions: clean transmission at most this (no air)
THICK_ATTENUATION = 0.1  # ratio also over objects only: clean -ln(T_high) at least this
CLIP_SIGMAS = 3.0  # flat regions: level + this many noise std below the top code (the
# clip then biases the noisy mean by < 2e-5 of the level)


# --------------------------------------------------------------------------- scenes
def _polyline(shape, rng, curved: bool) -> np.ndarray:
    """Integer vertices (N, 2) of a straight or wavy line across the bag's middle."""
    ny, nx = shape
    cy, cx = rng.uniform(0.3, 0.7) * ny, rng.uniform(0.3, 0.7) * nx
    angle = rng.uniform(0, np.pi)
    length = rng.uniform(0.45, 0.7) * min(ny, nx)
    s = np.linspace(-length / 2, length / 2, max(int(length / 3), 2))
    off = np.zeros_like(s)
    if curved:
        amp = rng.uniform(0.03, 0.06) * min(ny, nx)
        waves = rng.uniform(1.0, 2.0)
        off = amp * np.sin(2 * np.pi * waves * (s / length) + rng.uniform(0, 2 * np.pi))
    u = np.array([np.sin(angle), np.cos(angle)])  # (dy, dx) along
    v = np.array([np.cos(angle), -np.sin(angle)])  # across
    pts = np.array([cy, cx]) + s[:, None] * u + off[:, None] * v
    pts = np.rint(pts).astype(int)
    pts[:, 0] = np.clip(pts[:, 0], 2, ny - 3)
    pts[:, 1] = np.clip(pts[:, 1], 2, nx - 3)
    return pts


def _raster(shape, vertices: np.ndarray, width: int) -> np.ndarray:
    """Pixels of a polyline, 1 px wide (8-connected Bresenham segments) or 2 px wide (the
    pixel next to each one across the segment's main direction added)."""
    from skimage.draw import line

    mask = np.zeros(shape, bool)
    for (y0, x0), (y1, x1) in zip(vertices[:-1], vertices[1:], strict=True):
        rr, cc = line(int(y0), int(x0), int(y1), int(x1))
        mask[rr, cc] = True
        if width == 2:
            if abs(x1 - x0) >= abs(y1 - y0):  # mostly horizontal: thicken down
                mask[rr + 1, cc] = True
            else:
                mask[rr, cc + 1] = True
    return mask


def wired_scene(seed: int, shape=SHAPE):
    """Clean transmissions (2, Y, X) of bag ``seed`` with wires drawn in, and per wire
    width (1, 2) the wire mask and its background ring."""
    bag = make_bag(tuple(shape), seed=seed)
    t = np.array(bag.transmission, dtype=np.float64)
    rng = np.random.default_rng([seed, 17])
    wires = {1: np.zeros(t.shape[1:], bool), 2: np.zeros(t.shape[1:], bool)}
    for width in (1, 2):
        for curved in (False, True):
            wire = _raster(t.shape[1:], _polyline(t.shape[1:], rng, curved), width)
            depth = rng.uniform(*WIRE_DEPTH)
            t[0][wire] *= np.exp(-depth)
            t[1][wire] *= np.exp(-depth * HIGH_DEPTH_FRACTION)
            wires[width] |= wire
    anywire = ndimage.binary_dilation(wires[1] | wires[2], iterations=2)
    masks = {}
    for width, wire in wires.items():
        ring = ndimage.binary_dilation(wire, iterations=4) & ~anywire
        masks[width] = (wire, ring)
    return t, masks


def scan_pair(t: np.ndarray, seed: int, dose: float):
    """Noisy and clean (2, Y, X) counts and the true noise law of each channel."""
    rng = np.random.default_rng([seed, int(dose), 3])
    chans = [
        synth.scan_transmission(
            t[c],
            rng,
            dose=d,
            code_max=CODE_MAX,
            white_fraction=WHITE_FRACTION,
            read_std_fraction=READ_STD_FRACTION,
        )
        for c, d in enumerate((dose, dose * HIGH_PER_LOW))
    ]
    noisy = np.stack([s.noisy for s in chans]).astype(np.uint16)
    clean = np.stack([s.clean for s in chans])
    return noisy, clean, [NoiseModel(s.a, s.b) for s in chans]


def flat_masks(t: np.ndarray, clean: np.ndarray, laws) -> np.ndarray:
    """Per channel, the flat pixels of the clean scan that are not air and not near the clip."""
    masks = []
    for c, law in enumerate(laws):
        top = CODE_MAX
        for _ in range(3):  # the level whose mean + CLIP_SIGMAS std is the top code
            top = CODE_MAX - CLIP_SIGMAS * float(law.std(top))
        mask = fidelity.flat_region_mask(clean[c], max_level=top)
        masks.append(mask & (t[1] <= AIR_TRANSMISSION) & (t[0] <= AIR_TRANSMISSION))
    return np.stack(masks)


# --------------------------------------------------------------------------- scoring
def score_scan(out: np.ndarray, case: dict) -> dict:
    clean, masks = case["clean"], case["flat"]
    out = np.asarray(out, dtype=np.float64)
    return {
        "psnr": metrics.psnr(out, clean, data_range=CODE_MAX),
        "ssim": metrics.ssim(out, clean, data_range=CODE_MAX),
        "level": fidelity.level_bias(out, clean, masks, min_pixels=MIN_REGION_PX),
        # against the noisy input: the shift the method itself adds, free of the noise
        # realisation's own region means (the statistical floor of the bias vs clean)
        "shift": fidelity.level_bias(
            out, case["noisy"].astype(np.float64), masks, min_pixels=MIN_REGION_PX
        ),
        "ratio": fidelity.ratio_bias(
            out, clean, masks[0] & masks[1], white_level=WHITE, min_pixels=MIN_REGION_PX
        ),
        "ratio_thick": fidelity.ratio_bias(
            out,
            clean,
            masks[0] & masks[1] & case["thick"],
            white_level=WHITE,
            min_pixels=MIN_REGION_PX,
        ),
        "ratio_pixel": fidelity.ratio_bias(
            out,
            clean,
            masks[0] & masks[1],
            white_level=WHITE,
            min_pixels=MIN_REGION_PX,
            statistic="pixel",
        ),
        "wire": {
            w: [fidelity.wire_contrast(out[c], clean[c], wire, ring) for c in range(2)]
            for w, (wire, ring) in case["wires"].items()
        },
        "lines": [fidelity.line_error_share(out[c], clean[c]) for c in range(2)],
    }


def region_noise_floor(cases) -> list[float]:
    """Per channel, the median over flat regions (>= MIN_REGION_PX px) of the relative
    std of a region's mean in the noisy scan: the statistical floor of the level bias."""
    floors = []
    for c in range(2):
        values = []
        for case in cases:
            labels, n = ndimage.label(case["flat"][c])
            clean, law = case["clean"][c], case["laws"][c]
            idx = labels.ravel()
            sizes = np.bincount(idx, minlength=n + 1)[1:]
            var = np.bincount(idx, weights=law.variance(clean).ravel(), minlength=n + 1)[1:]
            level = np.bincount(idx, weights=clean.ravel(), minlength=n + 1)[1:]
            keep = sizes >= MIN_REGION_PX
            values += list(np.sqrt(var[keep]) / level[keep])
        floors.append(float(np.median(values)) if values else float("nan"))
    return floors


def summarise(method: str, dose: float, outs, cases, seconds: float) -> dict:
    scores = [score_scan(o, c) for o, c in zip(outs, cases, strict=True)]
    # classes are per pixel: pool the bags side by side for exact pooled fractions
    classes = fidelity.class_agreement(
        np.concatenate([np.asarray(o, np.float64) for o in outs], axis=2),
        np.concatenate([c["clean"] for c in cases], axis=2),
        white_level=WHITE,
    )
    level = [fidelity.RegionBias.merge([s["level"][c] for s in scores]) for c in range(2)]
    shift = [fidelity.RegionBias.merge([s["shift"][c] for s in scores]) for c in range(2)]
    ratio = fidelity.RegionBias.merge([s["ratio"] for s in scores])
    ratio_pixel = fidelity.RegionBias.merge([s["ratio_pixel"] for s in scores])
    ratio_thick = fidelity.RegionBias.merge([s["ratio_thick"] for s in scores])
    wires = {
        f"{w}px": {
            "mean": [float(np.mean([s["wire"][w][c] for s in scores])) for c in range(2)],
            "min": [float(np.min([s["wire"][w][c] for s in scores])) for c in range(2)],
        }
        for w in (1, 2)
    }
    lines = np.array([s["lines"] for s in scores])  # (scan, channel, (col, row))
    return {
        "method": method,
        "dose": dose,
        "psnr": np.mean([s["psnr"] for s in scores], axis=0).tolist(),
        "ssim": np.mean([s["ssim"] for s in scores], axis=0).tolist(),
        "level_bias": [b.to_dict() for b in level],
        "level_shift_vs_input": [b.to_dict() for b in shift],
        "region_noise_floor": region_noise_floor(cases),
        "ratio_bias": ratio.to_dict(),
        "ratio_bias_thick": ratio_thick.to_dict(),
        "ratio_bias_per_pixel": ratio_pixel.to_dict(),
        "class_agreement": classes,
        "wire_contrast": wires,
        "column_share": lines[:, :, 0].mean(axis=0).tolist(),
        "row_share": lines[:, :, 1].mean(axis=0).tolist(),
        "seconds": seconds,
    }


# --------------------------------------------------------------------------- report
def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:+.3f}"


def report(rows) -> str:
    lines = [
        "Quality, classes and wires (L/H = low/high channel; class agreement in %; "
        "wire contrast = kept fraction, mean over bags):",
        "",
        "| dose | method | PSNR L/H dB | SSIM L/H | classes all / non-bg % "
        "| wire 1 px L/H | wire 2 px L/H |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        w1, w2 = r["wire_contrast"]["1px"]["mean"], r["wire_contrast"]["2px"]["mean"]
        ca = r["class_agreement"]
        lines.append(
            f"| {r['dose']:g} | {r['method']} | {r['psnr'][0]:.2f} / {r['psnr'][1]:.2f} "
            f"| {r['ssim'][0]:.4f} / {r['ssim'][1]:.4f} "
            f"| {100 * ca['all']:.2f} / {100 * ca['non_background']:.2f} "
            f"| {w1[0]:.3f} / {w1[1]:.3f} | {w2[0]:.3f} / {w2[1]:.3f} |"
        )
    lines += [
        "",
        "Level bias over flat regions (% of the level, target |bias| < 0.1 %): median and "
        f"worst region of >= {MIN_REGION_PX} px and pooled, against the clean scan; and the "
        "shift against the noisy input (what the method itself adds):",
        "",
        "| dose | method | vs clean L median / worst | vs clean H median / worst "
        "| pooled L/H | shift vs input L median / worst | shift vs input H median / worst |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["level_bias"]
        slo, shi = r["level_shift_vs_input"]
        lines.append(
            f"| {r['dose']:g} | {r['method']} | {_pct(lo['median'])} / {_pct(lo['worst'])} "
            f"| {_pct(hi['median'])} / {_pct(hi['worst'])} "
            f"| {_pct(lo['pooled'])} / {_pct(hi['pooled'])} "
            f"| {_pct(slo['median'])} / {_pct(slo['worst'])} "
            f"| {_pct(shi['median'])} / {_pct(shi['worst'])} |"
        )
    for dose in dict.fromkeys(r["dose"] for r in rows):
        floor = next(r["region_noise_floor"] for r in rows if r["dose"] == dose)
        lines.append(
            f"\nDose {dose:g}: a flat region's mean in the noisy scan has a relative std of "
            f"{100 * floor[0]:.3f} % / {100 * floor[1]:.3f} % (L/H, median region): the "
            "floor of the bias against the clean scan."
        )
    lines += [
        "",
        "Ratio R of each flat region's mean attenuations against the clean scan (%: median "
        "/ worst region / pooled), over all flat regions (most are bag fabric absorbing "
        f"about 5 %) and over objects only (-ln(T_high) >= {THICK_ATTENUATION:g}); line "
        "errors (share of the MSE held by column / row means):",
        "",
        "| dose | method | ratio R all regions | ratio R objects | column share L/H "
        "| row share L/H |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ra, rt = r["ratio_bias"], r["ratio_bias_thick"]
        lines.append(
            f"| {r['dose']:g} | {r['method']} "
            f"| {_pct(ra['median'])} / {_pct(ra['worst'])} / {_pct(ra['pooled'])} "
            f"| {_pct(rt['median'])} / {_pct(rt['worst'])} / {_pct(rt['pooled'])} "
            f"| {r['column_share'][0]:.3f} / {r['column_share'][1]:.3f} "
            f"| {r['row_share'][0]:.3f} / {r['row_share'][1]:.3f} |"
        )
    if rows:
        r0 = rows[0]
        lines.append(
            f"\nFlat regions per channel: {r0['level_bias'][0]['n_regions']} / "
            f"{r0['level_bias'][1]['n_regions']} of >= {MIN_REGION_PX} px "
            f"({r0['level_bias'][0]['n_pixels']} / {r0['level_bias'][1]['n_pixels']} px) "
            f"at dose {r0['dose']:g}; ratio: {r0['ratio_bias']['n_regions']} regions, "
            f"{r0['ratio_bias_thick']['n_regions']} of them objects."
        )
    return "\n".join(lines)


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_material.json"))
    parser.add_argument("--model", help="also score this .keras model file")
    parser.add_argument("--label", default=None, help="method name of --model's rows")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--shape", type=int, nargs=2, default=list(SHAPE), metavar=("Y", "X"))
    parser.add_argument("--doses", type=float, nargs="+", default=list(DOSES))
    parser.add_argument("--no-bm3d", action="store_true", help="skip BM3D + GAT")
    parser.add_argument("--no-default", action="store_true", help="skip the default model")
    args = parser.parse_args(argv)

    from napari_xray_denoise.classical import bm3d_available, bm3d_denoise

    t0 = time.perf_counter()
    scenes = {s: wired_scene(s, tuple(args.shape)) for s in args.seeds}
    print(f"scenes: {time.perf_counter() - t0:.1f} s", flush=True)
    models = []
    if not args.no_default or args.model:
        from napari_xray_denoise.core import load_model

        if not args.no_default:
            models.append(("default model", load_model()))
        if args.model:
            models.append((args.label or Path(args.model).stem, load_model(args.model)))

    rows = []
    for dose in args.doses:
        cases = []
        for seed, (t, wires) in scenes.items():
            noisy, clean, laws = scan_pair(t, seed, dose)
            cases.append(
                {
                    "seed": seed,
                    "noisy": noisy,
                    "clean": clean,
                    "laws": laws,
                    "flat": flat_masks(t, clean, laws),
                    "thick": t[1] <= np.exp(-THICK_ATTENUATION),
                    "wires": wires,
                }
            )
        methods = [("noisy", lambda c: c["noisy"].astype(np.float64))]
        if not args.no_bm3d and bm3d_available():
            methods.append(("BM3D + GAT", lambda c: bm3d_denoise(c["noisy"], noise=c["laws"])))
        for label, model in models:
            methods.append((label, lambda c, m=model: m.denoise(c["noisy"])))
        for name, fn in methods:
            t1 = time.perf_counter()
            outs = [fn(c) for c in cases]
            seconds = time.perf_counter() - t1
            rows.append(summarise(name, dose, outs, cases, seconds))
            print(
                f"dose {dose:g} {name}: PSNR {rows[-1]['psnr'][0]:.2f} / "
                f"{rows[-1]['psnr'][1]:.2f} dB, {seconds:.1f} s",
                flush=True,
            )

    result = {
        "benchmark": "bench_material",
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/bench_material.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": {
            "seeds": list(args.seeds),
            "shape": list(args.shape),
            "doses_low": list(args.doses),
            "high_per_low": HIGH_PER_LOW,
            "code_max": CODE_MAX,
            "white_level": WHITE,
            "read_std_fraction": READ_STD_FRACTION,
            "wire_depth_low": list(WIRE_DEPTH),
            "wire_high_depth_fraction": HIGH_DEPTH_FRACTION,
            "min_region_px": MIN_REGION_PX,
            "flat_max_transmission": AIR_TRANSMISSION,
            "flat_clip_sigmas": CLIP_SIGMAS,
        },
        "results": rows,
        "seconds_total": time.perf_counter() - t0,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_json_ready(result), indent=1) + "\n")
    print(report(rows))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
