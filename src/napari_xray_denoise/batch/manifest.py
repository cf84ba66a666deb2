"""What a batch run records: the manifest (a CSV row per scan as it finishes, and a JSON
file), the write journal, and the outputs' own record of the run that wrote them (the
resume check)."""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from .. import io
from .settings import BatchJob
from .worker import _worker_name

JOURNAL_NAME = "batch-journal.tsv"
MANIFEST_CSV = "manifest.csv"
MANIFEST_JSON = "manifest.json"
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


def _failed_row(name: str, sources: Sequence, error: str) -> dict:
    return {
        "scan": name,
        "status": "failed",
        "error": error,
        "source": ";".join(map(str, sources)),
        "outputs": "",
        "written": "",
    }


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


# --------------------------------------------------------------------------- journal


def _journal(job: BatchJob, path: Path) -> None:
    """Append one line per completed output write (O_APPEND: lines never interleave)."""
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\t{os.getpid()}\t{_worker_name()}\t{path.name}\t{job.batch_hash}\n"
    fd = os.open(Path(job.out_dir) / JOURNAL_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


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
