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

This package imports neither TensorFlow nor napari (workers import TensorFlow).

Its modules, by what each holds (each imports only those above it):

* ``settings``: constants, :class:`BatchError`, :class:`BatchJob` and the resume hash;
* ``worker``: the per-process model cache, TensorFlow's thread pools, :class:`ModelPlugin`;
* ``manifest``: the manifest, the write journal and the outputs' record of their run;
* ``inputs``: scan groups and references from folders, globs and files;
* ``job``: one scan's task on a worker (:func:`process_scan`);
* ``cluster``: the dask cluster, the plugin's registration, submitting and collecting tasks;
* ``runner``: :func:`run`, the whole batch from the client's side.
"""

from .cluster import _local_cores as _local_cores  # cores of this machine (the tests ask)
from .inputs import collect_scans, group_name
from .job import process_scan
from .manifest import (
    JOURNAL_NAME,
    MANIFEST_COLUMNS,
    MANIFEST_CSV,
    MANIFEST_JSON,
    Manifest,
    output_is_current,
    read_journal,
    remove_orphan_temporaries,
    stored_batch_info,
)
from .runner import BatchResult, Progress, run
from .settings import (
    COLOUR_SCHEMES,
    DEFAULT_MODEL,
    FUSE_METHODS,
    LAZY_ABOVE_PX,
    REFERENCE_SUFFIX,
    BatchError,
    BatchJob,
    batch_hash,
    default_model_path,
    file_sha256,
)
from .worker import (
    ModelPlugin,
    cached_model,
    configure_tensorflow_threads,
    model_load_count,
    tensorflow_threads,
)

__all__ = [
    "COLOUR_SCHEMES",
    "DEFAULT_MODEL",
    "FUSE_METHODS",
    "JOURNAL_NAME",
    "LAZY_ABOVE_PX",
    "MANIFEST_COLUMNS",
    "MANIFEST_CSV",
    "MANIFEST_JSON",
    "REFERENCE_SUFFIX",
    "BatchError",
    "BatchJob",
    "BatchResult",
    "Manifest",
    "ModelPlugin",
    "Progress",
    "batch_hash",
    "cached_model",
    "collect_scans",
    "configure_tensorflow_threads",
    "default_model_path",
    "file_sha256",
    "group_name",
    "model_load_count",
    "output_is_current",
    "process_scan",
    "read_journal",
    "remove_orphan_temporaries",
    "run",
    "stored_batch_info",
    "tensorflow_threads",
]
