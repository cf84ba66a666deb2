"""One scan's task on a worker: denoise it (and fuse, colour, score it), write its
outputs atomically, journal each write, and return its manifest row."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from ..bands import EdgeBands, apply_inside
from .inputs import group_name
from .manifest import _journal, output_is_current, stored_batch_info
from .settings import BatchJob, _first_line
from .worker import _worker_name, cached_model


def process_scan(
    group: Sequence[str | os.PathLike], job: BatchJob, reference: Sequence[str] | None = None
) -> dict:
    """Denoise (and fuse, colour, score) one scan; returns its manifest row. Never raises
    for a bad scan: the row says ``failed`` and why, in one sentence."""
    t0 = time.perf_counter()
    group = [Path(p) for p in group]
    name = group_name(group)
    row: dict[str, Any] = {
        "scan": name,
        "source": ";".join(map(str, group)),
        "worker": _worker_name(),
    }
    outputs = job.outputs(name)
    row["outputs"] = ";".join(str(p) for p in outputs.values())
    written: list[str] = []
    try:
        current, this_run = _current_outputs(outputs, job)
        if all(current.values()) and not job.score:
            row.update(
                status="done" if this_run else "skipped",
                written="",
                seconds=round(time.perf_counter() - t0, 3),
            )
            return row
        _make_outputs(group, name, job, reference, outputs, current, row, written)
        row.update(status="done" if written or this_run else "skipped", written=";".join(written))
    except Exception as exc:  # one scan's failure is one row; the batch goes on
        row.update(_failure(exc, written, outputs))
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def _current_outputs(outputs: dict[str, Path], job: BatchJob) -> tuple[dict[str, bool], bool]:
    """(which outputs are up to date, whether all of them come from this very run)."""
    current = {kind: output_is_current(path, job) for kind, path in outputs.items()}
    # all outputs from this very run: a rerun of a scan whose worker died after writing
    this_run = all(current.values()) and all(
        (stored_batch_info(p) or {}).get("run_id") == job.run_id for p in outputs.values()
    )
    return current, this_run


def _make_outputs(
    group: list[Path],
    name: str,
    job: BatchJob,
    reference: Sequence[str] | None,
    outputs: dict[str, Path],
    current: dict[str, bool],
    row: dict,
    written: list[str],
) -> None:
    """Write the outputs not yet up to date (names appended to ``written``) and add the
    noise fit and scores to ``row``."""
    scan = _read_scan(group, name, job)
    names = ["low", "high"] if scan.is_dual else list(scan.channels)
    edges = EdgeBands.from_dict(scan.meta.get("edge_bands"))  # not image: passed through
    if current["denoised"]:
        denoised = io.read_scan(outputs["denoised"]).images()
        row["noise_fit"] = ""
    else:
        denoised = _write_denoised(scan, name, names, edges, outputs["denoised"], job, row)
        written.append(outputs["denoised"].name)
    if job.fuse and not current["fused"]:
        _write_fused(scan, denoised, edges, outputs["fused"], job)
        written.append(outputs["fused"].name)
    if job.colour and not current["colour"]:
        _write_colour(scan, denoised, edges, outputs["colour"], job)
        written.append(outputs["colour"].name)
    if job.score:
        row.update(_scores(denoised, names, reference, edges))


def _read_scan(group: list[Path], name: str, job: BatchJob) -> io.Scan:
    """The scan of ``group``; both energies where the job fuses or colours."""
    scan = io.read_group(group)
    needs_pair = job.fuse or job.colour
    if needs_pair and not scan.is_dual:
        raise ValueError(
            f"'{name}' has one energy only; fusion and colouring need both, so give a dual-energy "
            "TIFF or a <name>_low/<name>_high pair (or run without --fuse/--colour)."
        )
    return scan


def _write_denoised(
    scan: io.Scan,
    name: str,
    names: list[str],
    edges: EdgeBands,
    path: Path,
    job: BatchJob,
    row: dict,
) -> np.ndarray:
    """Denoise the scan with the worker's model, write and journal ``path``; the noise
    fit goes to ``row["noise_fit"]``. Returns the denoised (C, Y, X) uint16 stack."""
    model = cached_model(job.model_path, job.model_sha256)
    images = scan.stack() if scan.is_dual else scan.images()
    if model.channels == 2 and not scan.is_dual:
        raise ValueError(
            f"The model denoises dual-energy scans but '{name}' has one energy; "
            "give the low/high pair or use a single-energy model."
        )
    denoised = io.to_uint16(
        np.asarray(apply_inside(lambda inside: _denoise_array(model, inside, job), images, edges))
    )
    noise = getattr(model, "last_noise", None)
    row["noise_fit"] = json.dumps(io._jsonable(noise)) if noise else ""
    meta = getattr(model, "metadata", {})
    io.write_tiff(
        path,
        list(denoised),
        channel_names=names,
        history=_history(
            scan,
            job,
            "denoise",
            method=meta.get("method"),
            mode=meta.get("mode"),
            tile=job.tile,
            overlap=job.overlap,
            noise=noise,
        ),
    )
    _journal(job, path)
    return denoised


def _write_fused(
    scan: io.Scan, denoised: np.ndarray, edges: EdgeBands, path: Path, job: BatchJob
) -> None:
    """Fuse the denoised energies (``job.fuse``), write and journal ``path``."""
    fuse_params: dict = {}

    def fuse(inside):
        fused, params = _fuse(job.fuse, inside[0], inside[1])
        fuse_params.update(params)
        return fused

    fused = apply_inside(fuse, denoised[:2], edges)
    io.write_tiff(
        path,
        fused,
        channel_names=["fused"],
        history=_history(scan, job, f"{job.fuse} fusion of the denoised scan", **fuse_params),
    )
    _journal(job, path)


def _write_colour(
    scan: io.Scan, denoised: np.ndarray, edges: EdgeBands, path: Path, job: BatchJob
) -> None:
    """Colour the denoised energies by material, write and journal ``path``."""
    from ..colour import material_colour

    rgb = apply_inside(  # band pixels black
        lambda inside: material_colour(inside[0], inside[1]), denoised[:2], edges
    )
    io.write_rgb(
        path,
        rgb,
        history=_history(scan, job, "material colour of the denoised scan"),
    )
    _journal(job, path)


def _failure(exc: Exception, written: list[str], outputs: dict[str, Path]) -> dict:
    """The fields of a failed scan's row: one sentence, and the outputs that exist."""
    message = _first_line(exc)
    if not isinstance(exc, (ValueError, OSError)):
        message = f"{type(exc).__name__}: {message}"
    return {
        "status": "failed",
        "error": message,
        "written": ";".join(written),
        "outputs": ";".join(str(p) for p in outputs.values() if p.name in written or p.exists()),
    }


def _history(scan: io.Scan, job: BatchJob, operation: str, **params) -> list[dict]:
    step = io.history_entry(
        operation,
        **params,
        model=Path(job.model_path).name,
        model_sha256=job.model_sha256,
        batch_hash=job.batch_hash,
        batch_run=job.run_id,
    )
    return list(scan.meta.get("history", [])) + [step]


def _denoise_array(model, images: np.ndarray, job: BatchJob) -> np.ndarray:
    kwargs = {k: v for k, v in (("tile", job.tile), ("overlap", job.overlap)) if v is not None}
    # a blind-spot / AMSSD Denoiser runs in two stages that can go chunk by chunk
    chunkable = hasattr(model, "predict_fn") and hasattr(model, "posterior")
    if images.shape[-1] * images.shape[-2] > job.lazy_above_px and chunkable:
        from ..large_scan import denoise_chunked

        return denoise_chunked(model, images, **kwargs)
    return model.denoise(images, **kwargs)


def _fuse(method: str, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, dict]:
    """Fused image (float counts) and the parameters used; wavelet levels fit small scans."""
    from .. import fusion

    if method == "wavelet":
        import pywt

        level = max(1, min(4, pywt.dwtn_max_level(low.shape, "db4")))
        return fusion.wavelet_fuse(low, high, level=level), {"wavelet": "db4", "level": level}
    return fusion.spatial_fuse(low, high), {}


def _scores(
    denoised: np.ndarray,
    names: Sequence[str],
    reference: Sequence[str] | None,
    edges: EdgeBands | None = None,
) -> dict:
    """Scores of the image part (``edges``: the scan's non-image bands, left out)."""
    from ..metrics import score_table

    ref = None
    out: dict[str, Any] = {}
    if reference:
        ref_scan = io.read_group([Path(p) for p in reference])
        ref = ref_scan.stack() if ref_scan.is_dual else ref_scan.images()
        if ref.shape != denoised.shape:
            out["reference"] = (
                f"ignored: shape {ref.shape} differs from the scan's {denoised.shape}"
            )
            ref = None
        else:
            out["reference"] = ";".join(map(str, reference))
    edges = edges or EdgeBands()
    ref = None if ref is None else edges.interior(ref)
    for row in score_table({"scan": edges.interior(denoised)}, reference=ref):
        channel = names[row["channel"]] if row["channel"] is not None else names[0]
        for metric in ("brisque", "noise", "psnr", "ssim"):
            if metric in row:
                out[f"{metric}_{channel}"] = round(float(row[metric]), 5)
    return out
