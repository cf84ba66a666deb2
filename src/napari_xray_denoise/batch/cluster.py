"""The dask side of a batch run: connect to (or start) a cluster, size and register the
worker plugin, submit one task per scan and record the rows as tasks complete."""

from __future__ import annotations

import os
import time

from .job import process_scan
from .manifest import _failed_row, remove_orphan_temporaries
from .settings import BatchError, BatchJob, _first_line
from .worker import ModelPlugin


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


def _run_on_cluster(
    todo, references, job: BatchJob, record, say, *, workers, scheduler, client, cancel, dashboard
) -> str | None:
    """Submit one task per scan and record results as they complete."""
    own_client = client is None
    cluster = None
    if own_client:
        client, cluster = _connect(scheduler, workers, dashboard)
    link = None
    try:
        link = client.dashboard_link if dashboard else None
        if link:
            say(f"dask dashboard: {link}")
        _register_model(client, job)
        futures = _submit_scans(client, todo, references, job)
        _record_results(client, futures, record, say, cancel)
    finally:
        if own_client:
            client.close()
            if cluster is not None:
                cluster.close()
    if cancel is None or not cancel.is_set():  # no task of this run is still writing
        remove_orphan_temporaries(job.out_dir, [name for _, name in todo])
    return link


def _connect(scheduler: str | None, workers: int | None, dashboard: bool):
    """(client, local cluster or None): a running scheduler's, else a new local cluster
    of ``workers`` processes (default: one per core), one thread each."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="30s"), None
        except OSError as exc:
            raise BatchError(
                f"Cannot reach the dask scheduler at {scheduler} ({_first_line(exc)}); "
                "check the address and that the scheduler runs."
            ) from exc
    n_workers = int(workers) if workers else _local_cores()
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0" if dashboard else None,
    )
    return Client(cluster), cluster


def _register_model(client, job: BatchJob) -> None:
    """The worker plugin: the model loaded once per worker, TensorFlow threads sized."""
    tf_threads = _tf_threads_per_worker(client)
    try:
        client.register_plugin(ModelPlugin(job.model_path, job.model_sha256, tf_threads))
    except Exception as exc:
        raise BatchError(f"The workers cannot load the model: {_first_line(exc)}") from exc


def _submit_scans(client, todo, references, job: BatchJob) -> dict:
    """One task per scan: future key -> (future, group, name)."""
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
    return futures


def _record_results(client, futures: dict, record, say, cancel) -> None:
    """Record each task's row as it completes, until all have or ``cancel`` is set."""
    from distributed import as_completed

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


def _lost_task_message(exc: BaseException | None) -> str:
    if exc is not None and type(exc).__name__ == "KilledWorker":
        return (
            "Workers died every time they ran this scan (out of memory?); give workers more memory or "
            "run the scan alone."
        )
    return f"The task failed outside the scan code ({type(exc).__name__}: {_first_line(exc)})."
