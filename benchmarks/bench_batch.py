"""Batch throughput and fault tolerance on a local dask cluster (``napari_xray_denoise.batch``).

40 phantom dual-energy scans of 640x1000 (noisy only) are denoised, wavelet-fused and
material-coloured by ``batch.run``:

1. with 1 and with 2 local worker processes (one thread each): scans per minute (the run
   on a started cluster, model loading included) and peak resident memory per worker;
2. the fault run: 2 workers, one worker process killed (SIGKILL) when half the scans are
   done, while it runs a scan: scans lost (must be 0), outputs written twice (must be 0,
   from the write journal), temporary files left (must be 0);
3. a rerun of the finished fault run: the time to skip all 40.

``--model small`` (default) is an untrained blind-spot network of 8/16 filters and 3
levels: the speed of a small CPU model (weights do not change the cost); ``--model
default`` is the shipped default model (``batch.default_model_path()``), or give a
``.keras`` file.

    python benchmarks/bench_batch.py [--n 40] [--shape 640x1000] [--model small|default|m.keras]
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

from _util import machine

from napari_xray_denoise import batch, io
from napari_xray_denoise.phantom import make_bag


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _small_model(path: Path) -> Path:
    from napari_xray_denoise.core import TrainConfig, untrained_denoiser

    untrained_denoiser(
        1,
        TrainConfig(
            enc_filters=8, dec_filters=16, levels=3, tile=256, overlap=32, joint="separate"
        ),
    ).save(path)
    return path


def _make_scans(folder: Path, n: int, shape: tuple[int, int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        bag = make_bag(shape, dose=3000, seed=500 + i)
        io.write_tiff(folder / f"bag{i:03d}.tif", bag.noisy)


def _cluster(n_workers: int):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    return cluster, Client(cluster)


def _timed_run(scans: Path, out: Path, model: Path, n_workers: int, on_progress=None, client=None):
    """(result, run seconds, steady scans per minute, peak RSS MB per worker)."""
    own = client is None
    if own:
        cluster, client = _cluster(n_workers)
    stamps = []

    def tick(progress):
        stamps.append(time.perf_counter())
        if on_progress is not None:
            on_progress(progress)

    try:
        t0 = time.perf_counter()
        result = batch.run(
            [scans],
            out,
            model=model,
            fuse="wavelet",
            colour="material",
            client=client,
            on_progress=tick,
            log=None,
            dashboard=False,
        )
        seconds = time.perf_counter() - t0
        peaks = client.run(_peak_rss_mb)
    finally:
        if own:
            client.close()
            cluster.close()
    # steady rate: from the first finished scan to the last (model loading excluded)
    steady = 60 * (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
    return result, seconds, steady, peaks


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--shape", default="640x1000")
    parser.add_argument("--model", default="small", help="small, default, or a .keras file")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split("x"))
    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        tmp = Path(tmp)
        if args.model == "small":
            model = _small_model(tmp / "small.keras")
        elif args.model == "default":
            model = batch.default_model_path()
        else:
            model = Path(args.model)
        print(
            f"model: {args.model} ({model.name}); {args.n} scans of {shape[0]}x{shape[1]}, "
            "denoise + wavelet fusion + material colour"
        )
        t0 = time.perf_counter()
        _make_scans(tmp / "scans", args.n, shape)
        print(f"made the scans in {time.perf_counter() - t0:.0f} s", flush=True)

        print(
            "| workers | scans done | run s (model loading included) | scans per minute, whole run | "
            "scans per minute, first to last scan | peak RSS per worker (MB) | load average after |"
        )
        print("|---|---|---|---|---|---|---|")
        for n_workers in args.workers:
            result, seconds, steady, peaks = _timed_run(
                tmp / "scans", tmp / f"out{n_workers}", model, n_workers
            )
            rss = ", ".join(f"{v:.0f}" for v in peaks.values())
            print(
                f"| {n_workers} | {result.counts['done']} | {seconds:.1f} | {60 * result.counts['done'] / seconds:.1f} "
                f"| {steady:.1f} | {rss} | {os.getloadavg()[0]:.2f} |",
                flush=True,
            )

        # the fault run: kill one busy worker when half the scans are done
        cluster, client = _cluster(2)
        killed = {}

        def kill_halfway(tick):
            if killed or tick.done < args.n // 2:
                return
            busy = [addr for addr, keys in client.processing().items() if keys]
            if busy:
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.update(pid=pid, at=tick.done, t=time.perf_counter())

        out = tmp / "fault"
        try:
            result, seconds, _, _ = _timed_run(
                tmp / "scans", out, model, 2, on_progress=kill_halfway, client=client
            )
        finally:
            client.close()
            cluster.close()
        journal = [j["output"] for j in batch.read_journal(out)]
        done = {r["scan"] for r in result.rows if r["status"] == "done"}
        lost = args.n - len(done)
        twice = len(journal) - len(set(journal))
        temps = len(list(out.glob(".*.part")))
        print(
            f"\nfault run (2 workers, worker pid {killed.get('pid')} killed after {killed.get('at')} scans): "
            f"{len(done)} of {args.n} done in {seconds:.1f} s; scans lost {lost}; outputs written twice {twice}; "
            f"temporary files left {temps}; journal lines {len(journal)} for {3 * args.n} outputs"
        )

        t0 = time.perf_counter()
        rerun = batch.run(
            [tmp / "scans"], out, model=model, fuse="wavelet", colour="material", log=None
        )
        print(
            f"rerun of the finished run: {rerun.counts['skipped']} of {args.n} skipped in "
            f"{time.perf_counter() - t0:.2f} s (no cluster started)"
        )
        ok = not killed or (lost == 0 and twice == 0 and temps == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
