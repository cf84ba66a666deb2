"""``run``: a whole batch from the client's side: check the options and the model, skip
the scans already done, send the others to the cluster, keep the manifest and report."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..core.registry import DEFAULT_SELF_ENSEMBLE
from .cluster import _run_on_cluster
from .inputs import collect_scans, group_name
from .manifest import (
    Manifest,
    _failed_row,
    _has_scores,
    output_is_current,
    remove_orphan_temporaries,
)
from .settings import (
    COLOUR_SCHEMES,
    DEFAULT_MODEL,
    FUSE_METHODS,
    LAZY_ABOVE_PX,
    BatchError,
    BatchJob,
    batch_hash,
    default_model_path,
    file_sha256,
)


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
    _check_options(fuse, colour, workers)
    out = _output_folder(out_dir)
    model_path = _model_file(model)
    params = {"tile": tile, "overlap": overlap, "fuse": fuse, "colour": colour}
    job = _make_job(out, model_path, params, force=force, score=score, lazy_above_px=lazy_above_px)
    groups, references, problems = collect_scans(inputs, out)
    if not groups and not problems:
        raise BatchError("No scans found; give folders of TIFF scans, globs or files.")

    manifest = Manifest(out, _run_info(inputs, job, params, score=score, force=force))
    total = len(groups) + len(problems)
    bar = _progress_bar(total) if progress_bar else None
    record = _Recorder(manifest, total, t_start, bar, on_progress)
    dashboard_link = None
    try:
        for row in problems:
            record(row)
        todo = _scans_to_do(groups, job, manifest, record, score=score, force=force)
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
    return _report(manifest, t_start, dashboard_link, say)


# --------------------------------------------------------------------------- before the run


def _check_options(fuse: str | None, colour: str | None, workers: int | None) -> None:
    if fuse not in (None, *FUSE_METHODS):
        raise BatchError(f"Unknown fusion method {fuse!r}; use one of {', '.join(FUSE_METHODS)}.")
    if colour not in (None, *COLOUR_SCHEMES):
        raise BatchError(f"Unknown colour scheme {colour!r}; batch colours by 'material'.")
    if workers is not None and int(workers) < 1:
        raise BatchError(f"Need at least one worker, got {workers}.")


def _output_folder(out_dir: str | os.PathLike) -> Path:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchError(
            f"Cannot create output folder '{out}' ({exc.strerror}); choose another folder."
        ) from exc
    return out


def _model_file(model: str | os.PathLike) -> Path:
    """The model file ``model`` names (``"default"``: the shipped one), checked cheaply."""
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
    return model_path


def _looks_like_keras_file(path: Path) -> bool:
    """A cheap look (no TensorFlow here): a zip holding ``config.json``. Workers check the rest."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return "config.json" in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _make_job(
    out: Path, model_path: Path, params: dict, *, force: bool, score: bool, lazy_above_px: int
) -> BatchJob:
    """The settings every scan task gets, with this run's id and resume hash."""
    model_sha = file_sha256(model_path)
    # the default model's passes per channel change its outputs too (not a job field)
    inference = {"self_ensemble": DEFAULT_SELF_ENSEMBLE}
    return BatchJob(
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


def _run_info(inputs: list, job: BatchJob, params: dict, *, score: bool, force: bool) -> dict:
    """The manifest's ``run`` record."""
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "version": __version__,
        "inputs": [os.fspath(i) for i in inputs],
        "out_dir": job.out_dir,
        "model": job.model_path,
        "model_sha256": job.model_sha256,
        "batch_hash": job.batch_hash,
        "run_id": job.run_id,
        "parameters": params,
        "score": score,
        "force": force,
    }


def _progress_bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc="batch", unit="scan", smoothing=0.1)


# --------------------------------------------------------------------------- during the run


class _Recorder:
    """``record(row)``: the row into the manifest, the counts, the bar and ``on_progress``."""

    def __init__(self, manifest: Manifest, total: int, t_start: float, bar, on_progress):
        self.manifest, self.total, self.t_start = manifest, total, t_start
        self.bar, self.on_progress = bar, on_progress
        self.counts = {"done": 0, "skipped": 0, "failed": 0}

    def __call__(self, row: dict) -> None:
        counts = self.counts
        self.manifest.add(row)
        counts[row["status"]] = counts.get(row["status"], 0) + 1
        finished = sum(counts.values())
        elapsed = time.perf_counter() - self.t_start
        rate = counts["done"] / elapsed if elapsed > 0 else 0.0
        remaining = self.total - finished
        eta = remaining / rate if rate > 0 else None
        tick = Progress(
            counts["done"], counts["skipped"], counts["failed"], self.total, elapsed, rate, eta, row
        )
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                done=counts["done"], skipped=counts["skipped"], failed=counts["failed"]
            )
        if self.on_progress is not None:
            self.on_progress(tick)


def _scans_to_do(
    groups: list[list[Path]], job: BatchJob, manifest: Manifest, record, *, score: bool, force: bool
) -> list[tuple[list[Path], str]]:
    """(group, name) of the scans to send to the cluster; a second scan of the same name
    is recorded as failed, one whose outputs are all up to date as skipped."""
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
            record(_skipped_row(name, group, job))
            continue
        todo.append((group, name))
    return todo


def _skipped_row(name: str, group: list[Path], job: BatchJob) -> dict:
    return {
        "scan": name,
        "status": "skipped",
        "source": ";".join(map(str, group)),
        "written": "",
        "outputs": ";".join(str(p) for p in job.outputs(name).values()),
        "seconds": 0.0,
    }


# --------------------------------------------------------------------------- after the run


def _report(manifest: Manifest, t_start: float, dashboard_link: str | None, say) -> BatchResult:
    """Say the summary line and return the run's :class:`BatchResult`."""
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
