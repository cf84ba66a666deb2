"""Whole archives: batch denoise, fuse and score on a dask.distributed cluster.

``run(inputs, out_dir, ...)`` denoises every scan of some folders/globs/files with one
model, optionally fuses both energies and colours them by material, scores the results,
and writes a manifest (CSV and JSON) row by row as scans finish. It runs on a local
cluster (processes, one thread each) or on an existing one (``scheduler="tcp://..."``):
the same code either way. Every scan is one dask task.

Guarantees, and how they are kept:

* **Model loaded once per worker process.** A :class:`ModelPlugin` (a dask
  ``WorkerPlugin``) loads it into a per-process cache when a worker starts (also a worker
  that the nanny restarts), and sizes TensorFlow's thread pools so that the workers of
  one machine share its cores instead of oversubscribing them.
* **Resumable.** Every output carries in its processing history a hash of the model file
  and the parameters (``batch_hash``). A scan whose outputs all carry the current hash is
  skipped (client-side, before any worker starts); ``force=True`` redoes them.
* **Nothing lost, nothing written twice, no partial file.** Outputs are written
  atomically (``io`` writes a temporary file and renames it). A worker that dies mid-scan
  is replaced by its nanny and dask reruns its scan elsewhere; the rerun keeps every
  output the dead worker had already completed for this run (same hash and run id), so
  no output is written twice. Each rename is appended to ``batch-journal.tsv``.
* **Failures are rows, not crashes.** A corrupt file, a lone half of a low/high pair, a
  scan the model cannot take, etc. becomes a ``failed`` row with one sentence; the run
  goes on.

Scans named ``<name>_clean`` are noise-free references, not inputs: beside ``<name>`` they
give PSNR/SSIM in the manifest. Very large scans (more than ``lazy_above_px`` pixels per
channel) go through the chunked, memory-bounded path of :mod:`napari_xray_denoise.large_scan`.

This module imports neither TensorFlow nor napari (workers import TensorFlow).
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, io
from .bands import EdgeBands, apply_inside
from .core.registry import DEFAULT_SELF_ENSEMBLE

DEFAULT_MODEL = "default"
REFERENCE_SUFFIX = "_clean"
JOURNAL_NAME = "batch-journal.tsv"
MANIFEST_CSV = "manifest.csv"
MANIFEST_JSON = "manifest.json"
FUSE_METHODS = ("wavelet", "spatial")
COLOUR_SCHEMES = ("material",)
#: scans with more pixels per channel than this take the chunked (lazy) path
LAZY_ABOVE_PX = 64 * 1024 * 1024
_CHANNELS = ("low", "high", "image")
MANIFEST_COLUMNS = [
    "scan",
    "status",
    "outputs",
    "written",
    "seconds",
    "noise_fit",
    *[f"{m}_{c}" for m in ("brisque", "noise", "psnr", "ssim") for c in _CHANNELS],
    "reference",
    "error",
    "worker",
    "source",
]


class BatchError(ValueError):
    """The batch cannot start (bad model, no inputs, bad option); one sentence."""


def default_model_path() -> Path:
    """The model ``--model default`` means: ``core.registry.default_model_path()``
    (TF-free, so this runs in the client, possibly napari's process)."""
    from .core.registry import default_model_path as shipped

    return shipped()


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class BatchJob:
    """What every scan task needs; small and picklable (sent with each task)."""

    out_dir: str
    model_path: str
    model_sha256: str
    batch_hash: str
    run_id: str
    tile: int | None = None
    overlap: int | None = None
    fuse: str | None = None
    colour: str | None = None
    score: bool = False
    force: bool = False
    lazy_above_px: int = LAZY_ABOVE_PX

    def outputs(self, name: str) -> dict[str, Path]:
        out = Path(self.out_dir)
        paths = {"denoised": out / f"{name}_denoised.tif"}
        if self.fuse:
            paths["fused"] = out / f"{name}_fused.tif"
        if self.colour:
            paths["colour"] = out / f"{name}_{self.colour}.png"
        return paths


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def batch_hash(model_sha256: str, params: dict) -> str:
    """Hash of the model file and every parameter that changes an output (16 hex digits)."""
    text = json.dumps({"model_sha256": model_sha256, **params}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- inputs


def _has_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def group_name(group: Sequence[Path]) -> str:
    """The scan name of a group from :func:`io.scan_paths` (pair base or file stem)."""
    first = Path(group[0])
    if len(group) == 2:
        return io.pair_role(first)[0]
    stem = first.stem
    return stem[: -len(".ome")] if stem.lower().endswith(".ome") else stem


def collect_scans(
    inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike | None = None
) -> tuple[list[list[Path]], dict[str, list[Path]], list[dict]]:
    """``(scan groups, references by scan name, problem rows)`` for folders, globs and files.

    Folders contribute their TIFFs (not recursive); globs are expanded; pairs are joined
    (:func:`io.scan_paths`). Groups named ``<name>_clean`` become references of ``<name>``.
    Files inside ``out_dir`` are left out (a rerun must not take its outputs as inputs).
    A glob that matches nothing is a problem row.
    """
    out = Path(out_dir).resolve() if out_dir is not None else None
    files: list[Path] = []
    problems: list[dict] = []
    for item in inputs:
        text = os.fspath(item)
        p = Path(text)
        if p.is_dir():
            files.extend(
                sorted(
                    f for f in p.iterdir() if f.suffix.lower() in io.TIFF_SUFFIXES and f.is_file()
                )
            )
        elif _has_glob(text) and not p.exists():
            matches = sorted(Path(m) for m in glob.glob(text) if Path(m).is_file())
            if not matches:
                problems.append(
                    _failed_row(text, [text], f"No file matches '{text}'; check the pattern.")
                )
            files.extend(m for m in matches if m.suffix.lower() in io.TIFF_SUFFIXES)
        else:
            files.append(p)
    if out is not None:
        files = [f for f in files if not (f.exists() and f.resolve().parent == out)]
    groups, references = [], {}
    for group in io.scan_paths(files):
        name = group_name(group)
        if name.endswith(REFERENCE_SUFFIX) and len(name) > len(REFERENCE_SUFFIX):
            references[name[: -len(REFERENCE_SUFFIX)]] = list(group)
        else:
            groups.append(list(group))
    return groups, references, problems


# --------------------------------------------------------------------------- outputs


def stored_batch_info(path: str | os.PathLike) -> dict | None:
    """``{"batch_hash", "run_id"}`` recorded in an output this module wrote, or None.

    Reads only the file's description (TIFF) or text chunk (PNG), never the pixels.
    """
    p = Path(path)
    try:
        if p.suffix.lower() == ".png":
            from PIL import Image

            with Image.open(p) as im:
                text = im.text.get("Description") if hasattr(im, "text") else None
        else:
            import tifffile

            with tifffile.TiffFile(p) as tif:
                text = tif.pages.first.description
        meta = json.loads(text) if text else None
    except Exception:  # missing, damaged, not ours: not a finished output
        return None
    if not isinstance(meta, dict):
        return None
    for step in reversed(meta.get("history", [])):
        params = step.get("parameters", {}) if isinstance(step, dict) else {}
        if "batch_hash" in params:
            return {"batch_hash": params["batch_hash"], "run_id": params.get("batch_run")}
    return None


def output_is_current(path: Path, job: BatchJob) -> bool:
    """True when ``path`` exists and was written with this job's hash (and, under
    ``force``, by this very run: so a rescheduled scan does not write it again)."""
    info = stored_batch_info(path)
    if info is None or info["batch_hash"] != job.batch_hash:
        return False
    return not job.force or info["run_id"] == job.run_id


def _journal(job: BatchJob, path: Path) -> None:
    """Append one line per completed output write (O_APPEND: lines never interleave)."""
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\t{os.getpid()}\t{_worker_name()}\t{path.name}\t{job.batch_hash}\n"
    fd = os.open(Path(job.out_dir) / JOURNAL_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def remove_orphan_temporaries(out_dir: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Delete temporary files a killed worker left while writing outputs of ``names``.

    ``io.atomic_write`` writes ``.<output>.<random>.part`` and renames it; a process killed
    in between leaves the temporary (never a partial output). Call when no task runs.
    """
    out = Path(out_dir)
    prefixes = tuple(f".{name}_" for name in names)
    removed = []
    for p in out.glob(".*.part"):
        if p.name.startswith(prefixes):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def read_journal(out_dir: str | os.PathLike) -> list[dict]:
    """The journal's lines as dicts: ``time, pid, worker, output, batch_hash``."""
    path = Path(out_dir) / JOURNAL_NAME
    if not path.exists():
        return []
    keys = ("time", "pid", "worker", "output", "batch_hash")
    return [
        dict(zip(keys, line.rstrip("\n").split("\t")))
        for line in path.read_text().splitlines()
        if line
    ]


# --------------------------------------------------------------------------- workers

_MODELS: dict[str, Any] = {}
_MODEL_LOADS = 0
_MODEL_LOCK = threading.Lock()


def model_load_count() -> int:
    """How many times this process loaded a model file (1 per worker, whatever the scans)."""
    return _MODEL_LOADS


def configure_tensorflow_threads(threads: int) -> None:
    """Size TensorFlow's thread pools (intra-op ``threads``, inter-op 1) before first use."""
    threads = max(1, int(threads))
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran in this process: its pools are fixed
        pass


def tensorflow_threads() -> tuple[int, int]:
    """(intra-op, inter-op) thread pool sizes TensorFlow uses in this process."""
    import tensorflow as tf

    return (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )


def cached_model(model_path: str, model_sha256: str):
    """The model of ``model_path`` for this process, loaded on first use only."""
    global _MODEL_LOADS
    with _MODEL_LOCK:
        if model_sha256 not in _MODELS:
            from .core import load_model

            _MODELS[model_sha256] = load_model(model_path)
            _MODEL_LOADS += 1
        return _MODELS[model_sha256]


try:  # the plugin base class; dask[distributed] is a dependency, but keep imports cheap
    from distributed import WorkerPlugin as _WorkerPluginBase
except ImportError:  # pragma: no cover
    _WorkerPluginBase = object


class ModelPlugin(_WorkerPluginBase):
    """Loads the model once when a worker starts, with TensorFlow threads sized to fit.

    Registered with ``client.register_plugin``; the scheduler also runs it on workers
    that join later (a nanny's replacement for a worker that died).
    """

    idempotent = True

    def __init__(self, model_path: str, model_sha256: str, tf_threads: int):
        self.model_path = model_path
        self.model_sha256 = model_sha256
        self.tf_threads = int(tf_threads)
        self.name = f"xray-denoise-model-{model_sha256[:12]}-t{self.tf_threads}"

    def setup(self, worker=None):
        configure_tensorflow_threads(self.tf_threads)
        cached_model(self.model_path, self.model_sha256)


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _failed_row(name: str, sources: Sequence, error: str) -> dict:
    return {
        "scan": name,
        "status": "failed",
        "error": error,
        "source": ";".join(map(str, sources)),
        "outputs": "",
        "written": "",
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
        from .large_scan import denoise_chunked

        return denoise_chunked(model, images, **kwargs)
    return model.denoise(images, **kwargs)


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
        current = {kind: output_is_current(path, job) for kind, path in outputs.items()}
        # all outputs from this very run: a rerun of a scan whose worker died after writing
        this_run = all(current.values()) and all(
            (stored_batch_info(p) or {}).get("run_id") == job.run_id for p in outputs.values()
        )
        if all(current.values()) and not job.score:
            row.update(
                status="done" if this_run else "skipped",
                written="",
                seconds=round(time.perf_counter() - t0, 3),
            )
            return row
        scan = io.read_group(group)
        needs_pair = job.fuse or job.colour
        if needs_pair and not scan.is_dual:
            raise ValueError(
                f"'{name}' has one energy only; fusion and colouring need both, so give a dual-energy "
                "TIFF or a <name>_low/<name>_high pair (or run without --fuse/--colour)."
            )
        names = ["low", "high"] if scan.is_dual else list(scan.channels)
        edges = EdgeBands.from_dict(scan.meta.get("edge_bands"))  # not image: passed through
        if current["denoised"]:
            denoised = io.read_scan(outputs["denoised"]).images()
            row["noise_fit"] = ""
        else:
            model = cached_model(job.model_path, job.model_sha256)
            images = scan.stack() if scan.is_dual else scan.images()
            if model.channels == 2 and not scan.is_dual:
                raise ValueError(
                    f"The model denoises dual-energy scans but '{name}' has one energy; "
                    "give the low/high pair or use a single-energy model."
                )
            denoised = io.to_uint16(
                np.asarray(
                    apply_inside(lambda inside: _denoise_array(model, inside, job), images, edges)
                )
            )
            noise = getattr(model, "last_noise", None)
            row["noise_fit"] = json.dumps(io._jsonable(noise)) if noise else ""
            meta = getattr(model, "metadata", {})
            io.write_tiff(
                outputs["denoised"],
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
            _journal(job, outputs["denoised"])
            written.append(outputs["denoised"].name)
        if job.fuse and not current["fused"]:
            fuse_params: dict = {}

            def fuse(inside):
                fused, params = _fuse(job.fuse, inside[0], inside[1])
                fuse_params.update(params)
                return fused

            fused = apply_inside(fuse, denoised[:2], edges)
            io.write_tiff(
                outputs["fused"],
                fused,
                channel_names=["fused"],
                history=_history(
                    scan, job, f"{job.fuse} fusion of the denoised scan", **fuse_params
                ),
            )
            _journal(job, outputs["fused"])
            written.append(outputs["fused"].name)
        if job.colour and not current["colour"]:
            from .colour import material_colour

            rgb = apply_inside(  # band pixels black
                lambda inside: material_colour(inside[0], inside[1]), denoised[:2], edges
            )
            io.write_rgb(
                outputs["colour"],
                rgb,
                history=_history(scan, job, "material colour of the denoised scan"),
            )
            _journal(job, outputs["colour"])
            written.append(outputs["colour"].name)
        if job.score:
            row.update(_scores(denoised, names, reference, edges))
        row.update(status="done" if written or this_run else "skipped", written=";".join(written))
    except Exception as exc:  # one scan's failure is one row; the batch goes on
        message = _first_line(exc)
        if not isinstance(exc, (ValueError, OSError)):
            message = f"{type(exc).__name__}: {message}"
        row.update(
            status="failed",
            error=message,
            written=";".join(written),
            outputs=";".join(str(p) for p in outputs.values() if p.name in written or p.exists()),
        )
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def _fuse(method: str, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, dict]:
    """Fused image (float counts) and the parameters used; wavelet levels fit small scans."""
    from . import fusion

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
    from .metrics import score_table

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


# --------------------------------------------------------------------------- manifest


class Manifest:
    """The run's manifest: one CSV row appended per scan as it finishes (flushed), and a
    JSON file rewritten atomically at most every ``json_every_s`` seconds and at the end."""

    def __init__(self, out_dir: Path, run_info: dict, json_every_s: float = 2.0):
        self.csv_path = out_dir / MANIFEST_CSV
        self.json_path = out_dir / MANIFEST_JSON
        self.previous = _previous_rows(self.json_path)
        self.run_info = run_info
        self.rows: list[dict] = []
        self._json_every_s = json_every_s
        self._json_written = 0.0
        self._fh = open(self.csv_path, "w", newline="", encoding="utf-8")
        self._csv = csv.DictWriter(self._fh, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore")
        self._csv.writeheader()
        self._fh.flush()

    def add(self, row: dict) -> None:
        if row.get("status") == "skipped":  # keep the scores of the run that made the outputs
            old = self.previous.get(row["scan"], {})
            for key, value in old.items():
                if key not in ("status", "written", "seconds", "worker", "error") and not row.get(
                    key
                ):
                    row[key] = value
        self.rows.append(row)
        self._csv.writerow(
            {k: ("" if row.get(k) is None else row.get(k)) for k in MANIFEST_COLUMNS}
        )
        self._fh.flush()
        if time.monotonic() - self._json_written >= self._json_every_s:
            self.write_json()

    def summary(self) -> dict:
        counts = {
            s: sum(r.get("status") == s for r in self.rows) for s in ("done", "skipped", "failed")
        }
        return {"total": len(self.rows), **counts}

    def write_json(self, final: bool = False) -> None:
        doc = {
            "run": self.run_info,
            "summary": self.summary(),
            "finished": final,
            "scans": self.rows,
        }
        text = json.dumps(io._jsonable(doc), indent=1)
        io.atomic_write(self.json_path, lambda tmp: tmp.write_text(text), suffix=".json")
        self._json_written = time.monotonic()

    def close(self) -> None:
        self.write_json(final=True)
        self._fh.close()


def _has_scores(row: dict) -> bool:
    return any(row.get(f"brisque_{c}") not in (None, "") for c in _CHANNELS)


def _previous_rows(path: Path) -> dict[str, dict]:
    try:
        doc = json.loads(path.read_text())
        return {
            r["scan"]: r for r in doc.get("scans", []) if r.get("status") in ("done", "skipped")
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


# --------------------------------------------------------------------------- run


@dataclass
class BatchResult:
    """What :func:`run` did: manifest rows and counts."""

    rows: list[dict]
    manifest_csv: Path
    manifest_json: Path
    seconds: float
    dashboard_link: str | None = None
    counts: dict = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)


@dataclass
class Progress:
    """One progress tick: scans finished so far (``done + skipped + failed``) of ``total``."""

    done: int
    skipped: int
    failed: int
    total: int
    elapsed_s: float
    per_second: float
    eta_s: float | None
    last: dict | None = None

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed


def _local_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _tf_threads_per_worker(client) -> int:
    """Cores per worker on the busiest host of the cluster (at least 1)."""
    info = (
        client.scheduler_info(n_workers=-1)
        if _accepts_n_workers(client)
        else client.scheduler_info()
    )
    workers = info.get("workers", {})
    if not workers:
        return 1
    per_host: dict[str, int] = {}
    for w in workers.values():
        host = str(w.get("host", "?"))
        per_host[host] = per_host.get(host, 0) + int(w.get("nthreads", 1))
    cores = client.run(_local_cores)
    min_cores = min(cores.values()) if cores else _local_cores()
    return max(1, min_cores // max(per_host.values()))


def _accepts_n_workers(client) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def run(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    model: str | os.PathLike = DEFAULT_MODEL,
    fuse: str | None = None,
    colour: str | None = None,
    score: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    client=None,
    force: bool = False,
    tile: int | None = None,
    overlap: int | None = None,
    lazy_above_px: int = LAZY_ABOVE_PX,
    on_progress: Callable[[Progress], None] | None = None,
    log: Callable[[str], None] | None = print,
    progress_bar: bool = False,
    cancel=None,
    dashboard: bool = True,
) -> BatchResult:
    """Denoise every scan of ``inputs`` (folders, globs, files) into ``out_dir``.

    ``model``: a ``.keras`` file or ``"default"`` (:func:`default_model_path`). ``fuse``:
    ``"wavelet"``/``"spatial"`` also writes ``<name>_fused.tif`` from the denoised energies;
    ``colour="material"`` writes ``<name>_material.png``; ``score`` adds BRISQUE,
    flat-region noise and (with a ``<name>_clean`` reference beside the scan) PSNR/SSIM
    of the denoised channels to the manifest.

    Cluster: ``client`` (a ``distributed.Client``), else ``scheduler`` (an address), else a
    new ``LocalCluster`` of ``workers`` processes (default: one per core), one thread each.
    ``on_progress(Progress)`` after every scan; ``cancel.is_set()`` stops the run (scans
    not finished are left undone, without partial files). Returns a :class:`BatchResult`;
    raises :class:`BatchError` (one sentence) when the run cannot start.
    """
    t_start = time.perf_counter()
    say = log or (lambda _msg: None)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = list(inputs)
    if fuse not in (None, *FUSE_METHODS):
        raise BatchError(f"Unknown fusion method {fuse!r}; use one of {', '.join(FUSE_METHODS)}.")
    if colour not in (None, *COLOUR_SCHEMES):
        raise BatchError(f"Unknown colour scheme {colour!r}; batch colours by 'material'.")
    if workers is not None and int(workers) < 1:
        raise BatchError(f"Need at least one worker, got {workers}.")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchError(
            f"Cannot create output folder '{out}' ({exc.strerror}); choose another folder."
        ) from exc
    model_path = default_model_path() if str(model) == DEFAULT_MODEL else Path(model)
    if not model_path.is_file():
        raise BatchError(
            f"Model file '{model_path}' does not exist; give a .keras file written by "
            "`xray-denoise train` or 'default'."
        )
    if not _looks_like_keras_file(model_path):
        raise BatchError(
            f"'{model_path.name}' is not a .keras model file (not a zip archive with a Keras "
            "config); give a model written by `xray-denoise train` or 'default'."
        )
    model_sha = file_sha256(model_path)
    params = {"tile": tile, "overlap": overlap, "fuse": fuse, "colour": colour}
    # the default model's passes per channel change its outputs too (not a job field)
    inference = {"self_ensemble": DEFAULT_SELF_ENSEMBLE}
    job = BatchJob(
        out_dir=str(out.resolve()),
        model_path=str(model_path.resolve()),
        model_sha256=model_sha,
        batch_hash=batch_hash(model_sha, {**params, **inference}),
        run_id=uuid.uuid4().hex[:12],
        force=force,
        score=score,
        lazy_above_px=int(lazy_above_px),
        **params,
    )
    groups, references, problems = collect_scans(inputs, out)
    if not groups and not problems:
        raise BatchError("No scans found; give folders of TIFF scans, globs or files.")

    run_info = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "version": __version__,
        "inputs": [os.fspath(i) for i in inputs],
        "out_dir": job.out_dir,
        "model": job.model_path,
        "model_sha256": model_sha,
        "batch_hash": job.batch_hash,
        "run_id": job.run_id,
        "parameters": params,
        "score": score,
        "force": force,
    }
    manifest = Manifest(out, run_info)
    total = len(groups) + len(problems)
    counts = {"done": 0, "skipped": 0, "failed": 0}
    bar = _progress_bar(total) if progress_bar else None

    def record(row: dict) -> None:
        manifest.add(row)
        counts[row["status"]] = counts.get(row["status"], 0) + 1
        finished = sum(counts.values())
        elapsed = time.perf_counter() - t_start
        rate = counts["done"] / elapsed if elapsed > 0 else 0.0
        remaining = total - finished
        eta = remaining / rate if rate > 0 else None
        tick = Progress(
            counts["done"], counts["skipped"], counts["failed"], total, elapsed, rate, eta, row
        )
        if bar is not None:
            bar.update(1)
            bar.set_postfix(done=counts["done"], skipped=counts["skipped"], failed=counts["failed"])
        if on_progress is not None:
            on_progress(tick)

    dashboard_link = None
    try:
        for row in problems:
            record(row)
        todo: list[tuple[list[Path], str]] = []
        seen_names: dict[str, list[Path]] = {}
        for group in groups:
            name = group_name(group)
            if name in seen_names:
                record(
                    _failed_row(
                        name,
                        group,
                        (
                            f"Another scan is also named '{name}' ({seen_names[name][0]}), so both would write the same "
                            "outputs; rename one or run the folders separately."
                        ),
                    )
                )
                continue
            seen_names[name] = group
            scored = not score or _has_scores(manifest.previous.get(name, {}))
            if (
                not force
                and scored
                and all(output_is_current(p, job) for p in job.outputs(name).values())
            ):
                record(
                    {
                        "scan": name,
                        "status": "skipped",
                        "source": ";".join(map(str, group)),
                        "written": "",
                        "outputs": ";".join(str(p) for p in job.outputs(name).values()),
                        "seconds": 0.0,
                    }
                )
                continue
            todo.append((group, name))
        remove_orphan_temporaries(out, [name for _, name in todo])
        if todo:
            dashboard_link = _run_on_cluster(
                todo,
                references,
                job,
                record,
                say,
                workers=workers,
                scheduler=scheduler,
                client=client,
                cancel=cancel,
                dashboard=dashboard,
            )
    finally:
        if bar is not None:
            bar.close()
        manifest.run_info["seconds"] = round(time.perf_counter() - t_start, 3)
        manifest.close()
    summary = manifest.summary()
    say(
        f"{summary['done']} done, {summary['skipped']} skipped, {summary['failed']} failed of {summary['total']} "
        f"scans in {time.perf_counter() - t_start:.1f} s; manifest: {manifest.csv_path}"
    )
    return BatchResult(
        manifest.rows,
        manifest.csv_path,
        manifest.json_path,
        time.perf_counter() - t_start,
        dashboard_link,
        summary,
    )


def _looks_like_keras_file(path: Path) -> bool:
    """A cheap look (no TensorFlow here): a zip holding ``config.json``. Workers check the rest."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return "config.json" in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _progress_bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc="batch", unit="scan", smoothing=0.1)


def _run_on_cluster(
    todo, references, job: BatchJob, record, say, *, workers, scheduler, client, cancel, dashboard
) -> str | None:
    """Submit one task per scan and record results as they complete."""
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    own_client = client is None
    if own_client:
        if scheduler:
            try:
                client = Client(scheduler, timeout="30s")
            except OSError as exc:
                raise BatchError(
                    f"Cannot reach the dask scheduler at {scheduler} ({_first_line(exc)}); "
                    "check the address and that the scheduler runs."
                ) from exc
        else:
            n_workers = int(workers) if workers else _local_cores()
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0" if dashboard else None,
            )
            client = Client(cluster)
    link = None
    try:
        link = client.dashboard_link if dashboard else None
        if link:
            say(f"dask dashboard: {link}")
        tf_threads = _tf_threads_per_worker(client)
        try:
            client.register_plugin(ModelPlugin(job.model_path, job.model_sha256, tf_threads))
        except Exception as exc:
            raise BatchError(f"The workers cannot load the model: {_first_line(exc)}") from exc
        futures = {}
        for i, (group, name) in enumerate(todo):
            ref = references.get(name)
            key = f"xray-denoise-{job.run_id}-{i}-{name}"
            future = client.submit(
                process_scan,
                [str(p) for p in group],
                job,
                [str(p) for p in ref] if ref else None,
                key=key,
                pure=False,
            )
            futures[future.key] = (future, group, name)
        pending = as_completed([f for f, _, _ in futures.values()], with_results=False)
        while not pending.is_empty():
            if cancel is not None and cancel.is_set():
                client.cancel([f for f, _, _ in futures.values()])
                say("cancelled: scans not finished were left undone")
                break
            batch = pending.next_batch(block=False) if pending.has_ready() else []
            if not batch:
                time.sleep(0.05)
                continue
            for future in batch:
                _, group, name = futures.pop(future.key)
                if future.status == "cancelled":
                    continue
                try:
                    row = future.result()
                except Exception as exc:  # the task itself never raises: this is the infrastructure
                    row = _failed_row(name, group, _lost_task_message(exc))
                future.release()  # done: a later worker death must not recompute it
                record(row)
    finally:
        if own_client:
            client.close()
            if cluster is not None:
                cluster.close()
    if cancel is None or not cancel.is_set():  # no task of this run is still writing
        remove_orphan_temporaries(job.out_dir, [name for _, name in todo])
    return link


def _lost_task_message(exc: BaseException | None) -> str:
    if exc is not None and type(exc).__name__ == "KilledWorker":
        return (
            "Workers died every time they ran this scan (out of memory?); give workers more memory or "
            "run the scan alone."
        )
    return f"The task failed outside the scan code ({type(exc).__name__}: {_first_line(exc)})."
