"""The ``xray-denoise`` command line: the same library functions the napari widgets use.

Every subcommand reads scans with :mod:`napari_xray_denoise.io` and writes 16-bit TIFFs
whose description carries the processing history. Errors print one sentence on stderr
and exit with status 2. TensorFlow is imported only by ``train`` and ``denoise``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import __version__, bands, io, options
from .progress import ProgressBar as _Bar
from .tables import print_table


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


# --------------------------------------------------------------------------- helpers


def _out_dir(path: str | Path) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(
            f"Cannot create output folder '{out}' ({exc.strerror}); choose another folder."
        ) from exc
    return out


def _parse_scales(text: str) -> list[tuple[int, float]]:
    """'2:1.2,3:1.5,2:1.8' -> [(2, 1.2), (3, 1.5), (2, 1.8)]."""
    scales = []
    for part in text.split(","):
        try:
            factor, a = part.split(":")
            scales.append((int(factor), float(a)))
        except ValueError as exc:
            raise CliError(
                f"Bad scale '{part}'; write scales as factor:a pairs, e.g. 2:1.2,3:1.5."
            ) from exc
    return scales


# --------------------------------------------------------------------------- commands


def cmd_info(args) -> int:
    from .metrics import estimate_noise_flat

    rows = []
    for scan in io.read_scans(args.scans):
        edges = bands.EdgeBands.from_dict(scan.meta.get("edge_bands"))
        for channel, image in scan.channels.items():
            inside = edges.interior(image)  # min, max and noise of the image part only
            rows.append(
                {
                    "scan": scan.name,
                    "channel": channel,
                    "shape": "x".join(map(str, image.shape)),
                    "dtype": str(image.dtype),
                    "bits used": scan.meta.get("effective_bits"),
                    "min": int(inside.min()),
                    "max": int(inside.max()),
                    "noise std": estimate_noise_flat(inside),
                    "edge bands": edges.describe() or "-",
                }
            )
    print_table(
        rows,
        ["scan", "channel", "shape", "dtype", "bits used", "min", "max", "noise std", "edge bands"],
    )
    return 0


def cmd_phantom(args) -> int:
    from .phantom import make_bag

    shape = tuple(int(v) for v in args.shape.lower().split("x"))
    bag = make_bag(shape, dose=args.dose, seed=args.seed)
    history = [io.history_entry("phantom", shape=shape, dose=args.dose, seed=args.seed)]
    io.write_tiff(args.output, bag.noisy, history=history, compress=args.compress)
    if args.clean:
        io.write_tiff(
            args.clean,
            bag.clean,
            history=history + [io.history_entry("noise-free reference")],
            compress=args.compress,
        )
    print(f"wrote {args.output}" + (f" and {args.clean}" if args.clean else ""))
    return 0


def cmd_targets(args) -> int:
    from .targets import DEFAULT_SCALES, make_targets

    scales = _parse_scales(args.scales) if args.scales else list(DEFAULT_SCALES)
    out = _out_dir(args.output)
    for scan in io.read_scans(args.scans):
        names = list(scan.channels)
        stack = np.stack([scan.channels[n] for n in names])
        targets = bands.apply_inside(  # (n_scales, C, Y, X) float32 counts; bands unchanged
            lambda inside: make_targets(inside, scales),
            stack,
            bands.EdgeBands.from_dict(scan.meta.get("edge_bands")),
        )
        for (factor, a), target in zip(scales, targets, strict=True):
            path = out / f"{scan.name}_target_x{factor}_a{a:g}.tif"
            io.write_tiff(
                path,
                list(target),
                channel_names=names,
                history=list(scan.meta.get("history", []))
                + [io.history_entry("multiscale target", factor=factor, a=a)],
            )
            print(f"wrote {path}")
    return 0


def cmd_score(args) -> int:
    from .metrics import score_table

    reference = None
    if args.reference:
        reference = io.read_scan(args.reference).images()
    window = tuple(args.window) if args.window else None
    rows = []
    for scan in io.read_scans(args.images):
        images = scan.images()
        ref = reference
        if ref is not None and ref.shape != images.shape:
            raise CliError(
                f"'{scan.name}' has shape {images.shape} but the reference has {ref.shape}; "
                "score against the reference of the same scan."
            )
        edges = bands.EdgeBands.from_dict(scan.meta.get("edge_bands"))  # not image: not scored
        images = edges.interior(images)
        ref = None if ref is None else edges.interior(ref)
        for row in score_table({scan.name: images}, reference=ref, window=window):
            names = list(scan.channels) if scan.is_dual is False else ["low", "high"]
            if row.get("channel") is not None:
                row["channel"] = (
                    names[row["channel"]] if row["channel"] < len(names) else row["channel"]
                )
            rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2, default=float))
    else:
        columns = ["name", "channel", "brisque", "noise"] + (
            ["psnr", "ssim"] if reference is not None else []
        )
        print_table(rows, columns)
    return 0


def _pair_of(scan: io.Scan) -> tuple[np.ndarray, np.ndarray]:
    if not scan.is_dual:
        raise CliError(
            f"'{scan.name}' has one energy only; fusion and colouring need both, so open a "
            "dual-energy TIFF or a <name>_low/<name>_high pair."
        )
    return scan.low, scan.high


def cmd_fuse(args) -> int:
    from . import fusion

    scan = io.read_scan(args.scan)
    pair = np.stack(_pair_of(scan))
    if args.method == "wavelet":
        params = {
            "wavelet": args.wavelet,
            "level": args.level,
            "approx": args.approx,
            "detail": args.detail,
        }
        fuse = fusion.wavelet_fuse
    else:
        params = {"threshold": args.threshold, "gamma": args.gamma}
        fuse = fusion.spatial_fuse
    # on the image part: a non-image edge band would set the white level; it passes through
    fused = bands.apply_inside(lambda inside: fuse(inside[0], inside[1], **params), pair)
    step = io.history_entry(f"{args.method} fusion", **params)
    io.write_tiff(
        args.output,
        fused,
        channel_names=["fused"],
        history=list(scan.meta.get("history", [])) + [step],
    )
    print(f"wrote {args.output}")
    return 0


def cmd_colour(args) -> int:
    from . import colour, fusion

    scan = io.read_scan(args.scan)
    pair = np.stack(_pair_of(scan))
    if args.scheme == "material":
        params = {"smooth_sigma": args.smooth}
        if args.white_level:
            params["white_level"] = args.white_level

        def paint(inside):
            return colour.material_colour(inside[0], inside[1], **params)
    else:
        params = {"fusion": "wavelet"}
        scheme = colour.hsv_pseudocolour if args.scheme == "hsv" else colour.hot_colormap

        def paint(inside):
            return scheme(fusion.wavelet_fuse(inside[0], inside[1]))

    rgb = bands.apply_inside(paint, pair)  # on the image part; edge bands black
    step = io.history_entry(f"{args.scheme} colour", **params)
    io.write_rgb(args.output, rgb, history=list(scan.meta.get("history", [])) + [step])
    print(f"wrote {args.output}")
    return 0


def _training_scans(paths) -> list[np.ndarray]:
    scans = io.read_scans(paths)
    if not scans:
        raise CliError("No scans found; give TIFF files, low/high pairs or folders.")
    return [s.images() for s in scans]


def _train_method(args) -> str:
    """The method to train: ``finetune`` with ``--init``, else ``--method``."""
    if args.init is not None and args.method not in ("finetune", options.DEFAULT_METHOD):
        raise CliError(
            f"--init fine-tunes the default model; it does not go with --method {args.method}."
        )
    return "finetune" if args.init is not None else args.method


def _train_options(method: str, args) -> tuple[float | None, dict]:
    """(time budget in minutes, training options) of ``method`` from the arguments."""
    if method == "finetune":
        # fine-tuning keeps its own sizes and rate (FinetuneConfig) unless given; --minutes bounds it
        minutes = 10.0 if args.minutes is None else args.minutes
        return minutes, {
            "seed": args.seed,
            "minutes": minutes,
            "init": args.init,
            "learning_rate": args.learning_rate,
        }
    # None keeps the configuration's default; options of other kinds are ignored (core.registry)
    return args.minutes, {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "crop_size": args.crop_size,
        "seed": args.seed,
        "mixed_bfloat16": args.bf16,
        "jit_compile": args.xla,
        "learning_rate": args.learning_rate,
        "minutes": args.minutes,
        "lr_schedule": args.lr_schedule,
        "width": args.width or None,
        "joint": args.joint,
        "noise_per_scan": args.noise == "per-scan",
        **options.network_size(args.size),
    }


def _print_trained(output: Path, method: str, model) -> None:
    """The one line (two with a noise fit) on what ``train`` wrote."""
    tuned = model.metadata.get("finetune")
    if method == "finetune" and tuned:
        print(f"wrote {output} ({options.finetune_verdict(model.metadata)})")
        return
    training = model.metadata.get("training", {})
    print(
        f"wrote {output} ({training.get('steps', '?')} steps, best validation loss "
        f"{training.get('best_val_loss', float('nan')):.5g})"
    )
    noise = model.metadata.get("noise")
    if noise:
        print(f"noise parameters (counts): {json.dumps(noise)}")


def cmd_train(args) -> int:
    scans = _training_scans(args.scans)
    output = Path(args.output)
    if output.suffix != ".keras":
        raise CliError(f"Model files end in .keras; got '{output.name}'.")
    method = _train_method(args)
    minutes, train_options = _train_options(method, args)
    bar = _Bar(f"train {method}", disable=args.quiet, minutes=minutes)
    try:
        from .core import ModelFileError, train

        model = train(
            method,
            scans,
            train_options,
            on_progress=bar,
            resume_from=args.resume,
            checkpoint_path=args.checkpoint,
        )
    except ModelFileError as exc:
        raise CliError(str(exc)) from exc
    finally:
        bar.close()
    model.save(output)
    _print_trained(output, method, model)
    return 0


def _calibrated_noise(args):
    """A NoiseModel from --gain/--offset/--read-noise, or "auto" (fit each scan)."""
    given = [v is not None for v in (args.gain, args.offset, args.read_noise)]
    if not any(given):
        return "auto"
    if args.gain is None:
        raise CliError("--offset and --read-noise need --gain (counts per detected quantum) too.")
    from .noise import calibrated_noise

    try:
        return calibrated_noise(args.gain, args.offset or 0.0, args.read_noise or 0.0)
    except ValueError as exc:
        raise CliError(f"--gain/--offset/--read-noise: {exc}") from exc


def _frame(path):
    """A dark or flat frame file: (C, Y, X) -> one per channel, or (Y, X)."""
    if path is None:
        return None
    frames = io.read_scan(path).images()
    return frames[0] if len(frames) == 1 else frames


def _load_denoiser(args):
    if args.method == "bm3d":
        from .classical import MISSING, bm3d_available

        if not bm3d_available():
            raise CliError(MISSING)
        return None
    from .core import ModelFileError, load_model

    try:
        return load_model(args.model)
    except ModelFileError as exc:
        raise CliError(str(exc)) from exc


def _physics_options(args, model) -> tuple[dict, dict]:
    """(detector physics, passes) for ``model`` (None: BM3D); CliError where an option
    does not apply to it."""
    noise = _calibrated_noise(args)
    dark, flat = _frame(args.dark), _frame(args.flat)
    physics = {"noise": noise, "flatfield": args.flatfield, "dark": dark, "flat": flat}
    if model is not None and getattr(model, "method", None) != "singlepass":
        if noise != "auto" or dark is not None or flat is not None or args.flatfield != "auto":
            raise CliError(
                "Calibrated noise, dark/flat frames and --flatfield apply to the default "
                "model and to --method bm3d, not to blind-spot or AMSSD model files."
            )
        physics = {}
    if args.self_ensemble is not None and getattr(model, "method", None) != "singlepass":
        raise CliError(
            "--self-ensemble applies to the default model (and models fine-tuned from it), "
            "not to --method bm3d or blind-spot/AMSSD model files."
        )
    passes = {} if args.self_ensemble is None else {"self_ensemble": args.self_ensemble}
    return physics, passes


def _denoiser_name(args, model) -> str:
    """The model's name in the history: bm3d, default, or the model file's name."""
    if model is None:
        return "bm3d"
    return "default" if args.model in (None, "default") else Path(args.model).name


def _channels_to_denoise(scan: io.Scan, model) -> tuple[list[str], np.ndarray]:
    """(channel names, (C, Y, X) stack) of ``scan`` as ``model`` takes it."""
    names = list(scan.channels)
    images = np.stack([scan.channels[n] for n in names])
    if model is not None and model.channels == 2:
        if not scan.is_dual:
            raise CliError(
                f"The model denoises dual-energy scans but '{scan.name}' has one energy; "
                "give the low/high pair or a single-energy model."
            )
        names, images = ["low", "high"], scan.stack()
    return names, images


def _denoise_images(scan_name: str, images, model, physics: dict, passes: dict, args):
    """(denoised stack, noise records) of one scan; non-image edge bands unchanged."""
    bar = _Bar(f"denoise {scan_name}", disable=args.quiet)
    edges = bands.find_edge_bands(images)
    physics_in = bands.frames_inside(physics, edges, images.shape)  # cut like the scan
    try:
        if model is None:
            records: list = []
            run = functools.partial(bm3d_denoise_scan, physics=physics_in, bar=bar, records=records)
        else:
            run = functools.partial(
                model.denoise,
                tile=args.tile,
                overlap=args.overlap,
                batch_size=args.batch_size,
                on_progress=bar,
                **physics_in,
                **passes,
            )
        denoised = bands.apply_inside(run, images, edges)  # non-image edge bands unchanged
        if model is not None:
            records = (
                model.last_noise if model.last_noise is not None else model.metadata.get("noise")
            )
    except ValueError as exc:
        raise CliError(f"'{scan_name}': {exc}") from exc
    finally:
        bar.close()
    return denoised, records


def cmd_denoise(args) -> int:
    model = _load_denoiser(args)
    physics, passes = _physics_options(args, model)
    model_name = _denoiser_name(args, model)
    out = _out_dir(args.output)
    for scan in io.read_scans(args.scans):
        names, images = _channels_to_denoise(scan, model)
        denoised, records = _denoise_images(scan.name, images, model, physics, passes, args)
        meta = {"method": "bm3d+gat"} if model is None else model.metadata
        step = io.denoise_history_entry(model_name, meta, records)
        path = out / f"{scan.name}_denoised.tif"
        io.write_tiff(
            path,
            list(denoised),
            channel_names=names,
            history=list(scan.meta.get("history", [])) + [step],
        )
        print(f"wrote {path}")
    return 0


def bm3d_denoise_scan(images, physics: dict, bar, records: list):
    from .classical import bm3d_denoise

    return bm3d_denoise(images, on_progress=bar, records=records, **physics)


def cmd_batch(args) -> int:
    """Whole folders on a dask cluster; exit status = number of failed scans (at most 100)."""
    from .batch import BatchError, run

    try:
        result = run(
            args.inputs,
            args.output,
            model=args.model,
            fuse=args.fuse,
            colour=args.colour,
            score=args.score,
            workers=args.workers,
            scheduler=args.scheduler,
            force=args.force,
            tile=args.tile,
            overlap=args.overlap,
            progress_bar=not args.quiet,
            log=lambda msg: print(msg, file=sys.stderr),
        )
    except BatchError as exc:
        raise CliError(str(exc)) from exc
    for row in result.rows:
        if row["status"] == "failed":
            print(f"failed: {row['scan']}: {row.get('error')}", file=sys.stderr)
    return min(result.failed, 100)


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(Path(args.out))
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The ``xray-denoise`` parser: global options, then one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="xray-denoise",
        description="Denoise, fuse and score dual-energy 16-bit X-ray scans.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show debug log lines (for example tifffile's remarks on damaged files)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add_command in _COMMAND_PARSERS:
        add_command(sub)
    return parser


# ---- option groups: each written once, used by every subcommand that takes it


def _add_output(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("-o", "--output", required=True, help=help)


def _add_quiet(p: argparse.ArgumentParser, help: str | None = None) -> None:
    p.add_argument("--quiet", action="store_true", help=help)


def _add_network_options(p: argparse.ArgumentParser) -> None:
    """What to train: the method, and the blind-spot / AMSSD network's variant and size."""
    p.add_argument(
        "--method",
        default=options.DEFAULT_METHOD,
        choices=options.TRAIN_METHODS,
        help=options.METHOD_HELP,
    )
    p.add_argument(
        "--joint",
        default="auto",
        choices=options.JOINT_VARIANTS,
        help="dual-energy variant of the blind-spot network: " + options.JOINT_HELP,
    )
    p.add_argument(
        "--size",
        default=options.DEFAULT_NETWORK_SIZE,
        choices=list(options.NETWORK_SIZES),
        help="blind-spot network size: "
        + "; ".join(f"{k}: {v[0]}" for k, v in options.NETWORK_SIZES.items()),
    )
    p.add_argument("--width", type=int, default=None, help="AMSSD base filter count (source 64)")


def _add_training_schedule_options(p: argparse.ArgumentParser) -> None:
    """How long and how to train: steps, crops, learning rate, time budget, noise, seed."""
    defaults = options.TRAIN_DEFAULTS
    p.add_argument("--steps", type=int, default=defaults["steps"])
    p.add_argument("--batch-size", type=int, default=defaults["batch_size"])
    p.add_argument("--crop-size", type=int, default=defaults["crop_size"])
    p.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="peak learning rate (default 1e-3 blind-spot, 1e-3 AMSSD)",
    )
    p.add_argument(
        "--lr-schedule",
        default=None,
        choices=list(options.LR_SCHEDULES),
        help="cosine decay to the end of the run (blind-spot default) or halving on plateaus",
    )
    p.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="time budget: stop after this many minutes (or --steps, whichever comes first)",
    )
    p.add_argument(
        "--noise",
        default=options.DEFAULT_TRAIN_NOISE,
        choices=list(options.TRAIN_NOISE_MODES),
        help="calibrated modes: fit each training scan's noise (default) or learn one law for all",
    )
    p.add_argument("--seed", type=int, default=defaults["seed"])


def _add_starting_model_options(p: argparse.ArgumentParser) -> None:
    """Where training starts and what it rewrites: fine-tuning, resuming, checkpoints."""
    p.add_argument(
        "--init",
        default=None,
        help="fine-tune this model on the scans, self-supervised: 'default' (the shipped "
        "model) or a .keras file fine-tuned from it; --minutes (default 10) bounds it",
    )
    p.add_argument("--resume", help="continue training from this .keras model")
    p.add_argument(
        "--checkpoint", help="rewrite this .keras file at every new best validation loss"
    )


def _add_training_speed_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bf16", action="store_true", help="mixed bfloat16 (faster on CPUs with AVX512-BF16/AMX)"
    )
    p.add_argument("--xla", action="store_true", help="compile the training step with XLA")


def _add_flatfield_options(p: argparse.ArgumentParser) -> None:
    """Column flat-field: estimated from the scan's air, or dark/flat frames."""
    p.add_argument(
        "--flatfield",
        choices=list(options.FLATFIELD_MODES),
        default=options.DEFAULT_FLATFIELD,
        help="column flat-field from the scan's air (auto, default) or none",
    )
    p.add_argument(
        "--dark", help="dark frame TIFF (detector offset per column), replaces the estimate"
    )
    p.add_argument("--flat", help="flat (air) frame TIFF (column gains), replaces the estimate")


def _add_noise_options(p: argparse.ArgumentParser) -> None:
    """A calibrated detector noise law instead of the fit on each scan."""
    p.add_argument(
        "--gain",
        type=float,
        default=None,
        help="calibrated detector gain, counts per detected quantum (instead of the noise fit)",
    )
    p.add_argument("--offset", type=float, default=None, help="calibrated detector offset, counts")
    p.add_argument(
        "--read-noise", type=float, default=None, help="calibrated read noise std, counts"
    )


def _add_tile_options(p: argparse.ArgumentParser, overlap_help: str | None = None) -> None:
    """Tile side and overlap of tiled inference (None: the model's own)."""
    p.add_argument(
        "--tile",
        type=int,
        default=options.DENOISE_DEFAULTS["tile"],
        help="tile side (default: the model's)",
    )
    p.add_argument(
        "--overlap", type=int, default=options.DENOISE_DEFAULTS["overlap"], help=overlap_help
    )


def _add_inference_options(p: argparse.ArgumentParser) -> None:
    """Tiling, tiles per network call and the default model's passes."""
    _add_tile_options(
        p,
        overlap_help="tile overlap in pixels (default: the model's, at least its receptive radius)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=options.DENOISE_DEFAULTS["batch_size"],
        help="tiles per network call (default: 1 on a CPU, 8 on a GPU)",
    )
    p.add_argument(
        "--self-ensemble",
        type=int,
        choices=options.SELF_ENSEMBLES,
        default=options.DENOISE_DEFAULTS["self_ensemble"],
        help=options.SELF_ENSEMBLE_HELP,
    )


def _add_fusion_options(p: argparse.ArgumentParser) -> None:
    """Fusion method and its parameters (wavelet rules; spatial threshold and gamma)."""
    defaults = options.FUSION_DEFAULTS
    p.add_argument("--method", choices=options.FUSION_METHODS, default=defaults["method"])
    p.add_argument(
        "--wavelet",
        default=defaults["wavelet"],
        help="any discrete PyWavelets wavelet (wavelet method)",
    )
    p.add_argument(
        "--level", type=int, default=defaults["level"], help="decomposition levels (wavelet method)"
    )
    p.add_argument("--approx", choices=options.FUSION_APPROX_RULES, default=defaults["approx"])
    p.add_argument("--detail", choices=options.FUSION_DETAIL_RULES, default=defaults["detail"])
    p.add_argument(
        "--threshold",
        type=float,
        default=defaults["threshold"],
        help="background/detail threshold in counts (spatial method; default 20/255 of white)",
    )
    p.add_argument(
        "--gamma", type=float, default=defaults["gamma"], help="display gamma (spatial method)"
    )


def _add_cluster_options(p: argparse.ArgumentParser) -> None:
    """Where batch tasks run, and whether finished scans are redone."""
    p.add_argument(
        "--workers", type=int, default=None, help="local worker processes (default: one per core)"
    )
    p.add_argument(
        "--scheduler", default=None, help="use a running dask cluster, e.g. tcp://host:8786"
    )
    p.add_argument(
        "--force", action="store_true", help="redo scans whose outputs are already up to date"
    )


# ---- subcommands, in the order ``xray-denoise --help`` lists them


def _add_info_parser(sub) -> None:
    p = sub.add_parser("info", help="describe scans: shape, bits used, noise level")
    p.add_argument("scans", nargs="+", help="TIFF files, low/high pairs or folders")
    p.set_defaults(func=cmd_info)


def _add_phantom_parser(sub) -> None:
    p = sub.add_parser(
        "phantom", help="simulate a dual-energy bag scan with its noise-free reference"
    )
    _add_output(p, "noisy scan TIFF to write")
    p.add_argument("--clean", help="also write the noise-free reference here")
    p.add_argument("--shape", default="640x1000", help="YxX in pixels (default 640x1000)")
    p.add_argument(
        "--dose", type=float, default=3000.0, help="photons per pixel in air, low channel"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compress", action="store_true", help="zlib-compress the TIFFs")
    p.set_defaults(func=cmd_phantom)


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a self-supervised denoiser on noisy scans")
    p.add_argument(
        "scans",
        nargs="+",
        help="TIFF files, low/high pairs or folders (dual-energy trains jointly)",
    )
    _add_output(p, "model file to write (.keras)")
    _add_network_options(p)
    _add_training_schedule_options(p)
    _add_starting_model_options(p)
    _add_training_speed_options(p)
    _add_quiet(p, "no progress bar")
    p.set_defaults(func=cmd_train)


def _add_denoise_parser(sub) -> None:
    p = sub.add_parser(
        "denoise", help="denoise scans with the default model, a trained model or BM3D"
    )
    p.add_argument("scans", nargs="+")
    p.add_argument(
        "--model",
        default=None,
        help="'default' (the shipped model, used when omitted) or a .keras file from `xray-denoise train`",
    )
    p.add_argument(
        "--method",
        choices=["model", "bm3d"],
        default="model",
        help="'model' (default) or 'bm3d': BM3D + generalized Anscombe, ~15x slower (needs the bm3d extra)",
    )
    _add_flatfield_options(p)
    _add_noise_options(p)
    _add_output(p, "output folder")
    _add_inference_options(p)
    _add_quiet(p)
    p.set_defaults(func=cmd_denoise)


def _add_targets_parser(sub) -> None:
    p = sub.add_parser("targets", help="multiscale pseudo-clean targets (AMSSD) as 16-bit TIFFs")
    p.add_argument("scans", nargs="+")
    _add_output(p, "output folder")
    p.add_argument("--scales", help="factor:a pairs, default 2:1.2,3:1.5,2:1.8")
    p.set_defaults(func=cmd_targets)


def _add_score_parser(sub) -> None:
    p = sub.add_parser(
        "score", help="BRISQUE, flat-region noise, and PSNR/SSIM against a reference"
    )
    p.add_argument("images", nargs="+")
    p.add_argument("--reference", help="noise-free reference scan for PSNR/SSIM")
    p.add_argument(
        "--window",
        nargs=2,
        type=float,
        metavar=("LOW", "HIGH"),
        help="fixed count window mapped to 0..255 for BRISQUE (default 0 65535)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_score)


def _add_fuse_parser(sub) -> None:
    p = sub.add_parser("fuse", help="fuse low and high energy into one 16-bit image")
    p.add_argument("scan", help="a dual-energy TIFF or one half of a low/high pair")
    _add_output(p, "output TIFF")
    _add_fusion_options(p)
    p.set_defaults(func=cmd_fuse)


def _add_colour_parser(sub) -> None:
    p = sub.add_parser(
        "colour", aliases=["color"], help="colour a dual-energy scan (material, hsv or hot)"
    )
    p.add_argument("scan")
    _add_output(p, "output .png or .tif (8-bit RGB)")
    p.add_argument(
        "--scheme", choices=options.COLOUR_SCHEMES, default=options.DEFAULT_COLOUR_SCHEME
    )
    p.add_argument(
        "--smooth",
        type=float,
        default=0.0,
        help="Gaussian sigma (px) before material classification",
    )
    p.add_argument(
        "--white-level", type=float, default=None, help="air level in counts (default: estimated)"
    )
    p.set_defaults(func=cmd_colour)


def _add_batch_parser(sub) -> None:
    p = sub.add_parser(
        "batch", help="denoise (fuse, colour, score) whole folders on a dask cluster, resumable"
    )
    p.add_argument(
        "inputs",
        nargs="+",
        help="folders, globs (quoted) or TIFF files; <name>_clean scans are references",
    )
    _add_output(p, "output folder (outputs, manifest.csv/json, journal)")
    p.add_argument(
        "--model", default="default", help=".keras model file, or 'default' (the shipped model)"
    )
    p.add_argument(
        "--fuse",
        choices=list(options.FUSION_METHODS),
        default=None,
        help="also fuse the denoised energies",
    )
    p.add_argument(
        "--colour",
        "--color",
        choices=["material"],
        default=None,
        help="also write a material-coloured PNG of the denoised scan",
    )
    p.add_argument(
        "--score",
        action="store_true",
        help="BRISQUE, flat-region noise, PSNR/SSIM beside a reference",
    )
    _add_cluster_options(p)
    _add_tile_options(p)
    _add_quiet(p, "no progress bar")
    p.set_defaults(func=cmd_batch)


def _add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="the main job on the shipped sample bags, outputs under --out")
    p.add_argument("--out", default="outputs")
    p.set_defaults(func=cmd_demo)


_COMMAND_PARSERS = (
    _add_info_parser,
    _add_phantom_parser,
    _add_train_parser,
    _add_denoise_parser,
    _add_targets_parser,
    _add_score_parser,
    _add_fuse_parser,
    _add_colour_parser,
    _add_batch_parser,
    _add_demo_parser,
)


def _configure_logging(verbose: bool) -> None:
    """Warnings only by default; ``--verbose``: this package's debug lines too."""
    import logging

    logging.basicConfig(format="%(name)s: %(message)s", level=logging.WARNING)
    logging.getLogger("napari_xray_denoise").setLevel(logging.DEBUG if verbose else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except (CliError, io.ScanReadError, io.ScanWriteError, ValueError) as exc:
        print(f"xray-denoise {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"xray-denoise {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
