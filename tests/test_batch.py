"""Batch denoise/fuse/score of folders on a real dask LocalCluster (processes, 2 workers).

Small phantom scans and a tiny untrained blind-spot model keep each test well under a
minute on 2 cores; the cluster is shared by the tests of this module.
"""

import json
import os
import signal
import time

import numpy as np
import pytest
import tifffile

from napari_xray_denoise import batch, cli, io
from napari_xray_denoise.phantom import make_bag

distributed = pytest.importorskip("distributed")

SHAPE = (96, 128)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from napari_xray_denoise.core import TrainConfig, untrained_denoiser

    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    untrained_denoiser(
        1, TrainConfig(enc_filters=4, dec_filters=8, levels=2, tile=64, overlap=8, joint="separate")
    ).save(path)
    return path


def _write_bags(folder, n, *, seed0=0, shape=SHAPE, reference_for=()):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        bag = make_bag(shape, dose=2000, seed=seed0 + i, n_objects=4)
        io.write_tiff(
            folder / f"bag{i:02d}.tif",
            bag.noisy,
            history=[io.history_entry("phantom", seed=seed0 + i)],
        )
        if i in reference_for:
            io.write_tiff(folder / f"bag{i:02d}_clean.tif", bag.clean)
    return folder


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """4 good dual-energy bags (one with its clean reference) and 4 bad inputs."""
    folder = _write_bags(tmp_path_factory.mktemp("archive") / "scans", 4, reference_for=(0,))
    good = folder / "bag00.tif"
    (folder / "corrupt.tif").write_bytes(good.read_bytes()[:3000])  # truncated mid-image
    tifffile.imwrite(folder / "lonely_low.tif", np.full(SHAPE, 1000, np.uint16))  # no _high partner
    tifffile.imwrite(
        folder / "odd_low.tif", np.full(SHAPE, 1000, np.uint16)
    )  # halves of unequal shape
    tifffile.imwrite(folder / "odd_high.tif", np.full((SHAPE[0], SHAPE[1] - 8), 900, np.uint16))
    tifffile.imwrite(
        folder / "single.tif", np.full(SHAPE, 1000, np.uint16)
    )  # one energy, but --fuse
    return folder


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as lc:
        yield lc


def _no_temporaries(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".part")]


# --------------------------------------------------------------------------- no cluster


def test_collect_scans_groups_pairs_references_and_globs(tmp_path):
    folder = _write_bags(tmp_path / "in", 2, reference_for=(1,))
    tifffile.imwrite(folder / "p_low.tif", np.ones(SHAPE, np.uint16))
    tifffile.imwrite(folder / "p_high.tif", np.ones(SHAPE, np.uint16))
    out = folder  # outputs inside the input folder are never taken as inputs
    io.write_tiff(folder / "bag00_denoised.tif", np.ones(SHAPE, np.uint16))
    groups, refs, problems = batch.collect_scans([folder], out_dir=tmp_path / "elsewhere")
    assert sorted(batch.group_name(g) for g in groups) == ["bag00", "bag00_denoised", "bag01", "p"]
    assert list(refs) == ["bag01"] and not problems
    groups, _, _ = batch.collect_scans([folder], out_dir=out)
    assert "bag00_denoised" not in [batch.group_name(g) for g in groups]
    groups, _, problems = batch.collect_scans(
        [str(folder / "bag*.tif"), str(tmp_path / "nothing*.tif")]
    )
    assert sorted(batch.group_name(g) for g in groups) == ["bag00", "bag00_denoised", "bag01"]
    assert len(problems) == 1 and "No file matches" in problems[0]["error"]


def test_process_scan_is_idempotent_and_records_hash(tmp_path, tiny_model):
    """The task itself, in this process: a second call (a rescheduled task) writes nothing."""
    folder = _write_bags(tmp_path / "in", 1)
    out = tmp_path / "out"
    out.mkdir()
    sha = batch.file_sha256(tiny_model)
    job = batch.BatchJob(
        out_dir=str(out),
        model_path=str(tiny_model),
        model_sha256=sha,
        batch_hash=batch.batch_hash(sha, {"fuse": "spatial"}),
        run_id="r1",
        fuse="spatial",
    )
    row = batch.process_scan([folder / "bag00.tif"], job)
    assert row["status"] == "done" and row["written"] == "bag00_denoised.tif;bag00_fused.tif"
    again = batch.process_scan([folder / "bag00.tif"], job)
    assert again["status"] == "done" and again["written"] == ""  # same run: done, not rewritten
    assert [j["output"] for j in batch.read_journal(out)] == [
        "bag00_denoised.tif",
        "bag00_fused.tif",
    ]
    assert batch.stored_batch_info(out / "bag00_fused.tif") == {
        "batch_hash": job.batch_hash,
        "run_id": "r1",
    }
    history = io.read_scan(out / "bag00_denoised.tif").meta["history"]
    assert [h["operation"] for h in history] == ["phantom", "denoise"]
    # a different parameter set is a different hash: the outputs are no longer current
    other = batch.BatchJob(
        **{**job.__dict__, "batch_hash": batch.batch_hash(sha, {"fuse": "wavelet"})}
    )
    assert not batch.output_is_current(out / "bag00_denoised.tif", other)
    # a killed writer's temporary is removed, a foreign file is not
    (out / ".bag00_denoised.tif.abc123.part").write_bytes(b"half")
    (out / ".notes.part").write_bytes(b"mine")
    assert [p.name for p in batch.remove_orphan_temporaries(out, ["bag00"])] == [
        ".bag00_denoised.tif.abc123.part"
    ]
    assert (out / ".notes.part").exists()


def test_process_scan_keeps_edge_bands_out(tmp_path, tiny_model):
    """A 12-bit scan with a filler band: denoised, fused and coloured inside it only; the
    band passes through (black in colour) and changes no score."""
    rng = np.random.default_rng(3)
    low = np.full(SHAPE, 3000.0)
    low[30:70, 40:90] = 1200
    scan = rng.normal(np.stack([low, low * 1.05]), 25).clip(0, 4095).astype(np.uint16)
    scan[..., -4:] = 52685
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "banded.tif", scan)
    tifffile.imwrite(tmp_path / "in" / "inside.tif", np.ascontiguousarray(scan[..., :-4]))
    out = tmp_path / "out"
    out.mkdir()
    sha = batch.file_sha256(tiny_model)
    job = batch.BatchJob(
        out_dir=str(out),
        model_path=str(tiny_model),
        model_sha256=sha,
        batch_hash=batch.batch_hash(sha, {"fuse": "spatial"}),
        run_id="r1",
        fuse="spatial",
        colour="material",
        score=True,
    )
    row = batch.process_scan([tmp_path / "in" / "banded.tif"], job)
    inside = batch.process_scan([tmp_path / "in" / "inside.tif"], job)
    assert row["status"] == inside["status"] == "done", (row, inside)
    from PIL import Image

    for kind in ("denoised.tif", "fused.tif", "material.png"):
        if kind.endswith(".png"):
            banded, plain = (
                np.asarray(Image.open(out / f"{n}_{kind}")) for n in ("banded", "inside")
            )
            assert (banded[:, -4:] == 0).all()  # the band: black
        else:
            banded, plain = (
                io.read_scan(out / f"{n}_{kind}").images() for n in ("banded", "inside")
            )
            np.testing.assert_array_equal(banded[..., -4:], 52685)  # passed through
        np.testing.assert_array_equal(
            banded[..., :-4, :] if kind.endswith(".png") else banded[..., :-4], plain
        )
    for key in ("brisque_low", "noise_high"):  # the band changes no score
        assert row[key] == pytest.approx(inside[key], rel=1e-3)


def test_run_refuses_bad_setup_in_one_sentence(tmp_path, capsys, tiny_model):
    folder = _write_bags(tmp_path / "in", 1)
    with pytest.raises(batch.BatchError, match="does not exist"):
        batch.run([folder], tmp_path / "out", model=tmp_path / "missing.keras", log=None)
    with pytest.raises(batch.BatchError, match="No scans found"):
        batch.run([tmp_path / "out"], tmp_path / "out2", model=tiny_model, log=None)
    assert (
        cli.main(
            ["batch", str(folder), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "m.keras")]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    with pytest.raises(batch.BatchError, match="not a .keras model file"):
        batch.run([folder], tmp_path / "out", model=folder / "bag00.tif", log=None)
    with pytest.raises(batch.BatchError, match="Unknown fusion"):
        batch.run([folder], tmp_path / "out", model=tiny_model, fuse="median", log=None)


# --------------------------------------------------------------------------- cluster


def test_folder_with_bad_files_then_rerun_skips_everything(archive, tiny_model, cluster, tmp_path):
    from napari_xray_denoise.core import load_model

    out = tmp_path / "out"
    ticks = []
    result = batch.run(
        [archive],
        out,
        model=tiny_model,
        fuse="wavelet",
        colour="material",
        score=True,
        scheduler=cluster.scheduler_address,
        on_progress=ticks.append,
        log=None,
        dashboard=False,
    )
    rows = {r["scan"]: r for r in result.rows}
    assert set(rows) == {
        "bag00",
        "bag01",
        "bag02",
        "bag03",
        "corrupt",
        "lonely_low",
        "odd",
        "single",
    }
    assert result.counts == {"total": 8, "done": 4, "skipped": 0, "failed": 4}
    assert "damaged or truncated" in rows["corrupt"]["error"]
    assert "partner" in rows["lonely_low"]["error"]
    assert "differ in shape" in rows["odd"]["error"]
    assert "one energy only" in rows["single"]["error"]
    for r in rows.values():
        if r["status"] == "failed":
            assert r["error"].count("\n") == 0 and r["outputs"] == ""
    assert [t.finished for t in ticks] == list(range(1, 9)) and ticks[-1].total == 8

    # the outputs are what the model computes, 16-bit, with the run's hash in their history
    model = load_model(tiny_model)
    noisy = io.read_scan(archive / "bag01.tif").stack()
    expected = io.to_uint16(model.denoise(noisy))
    denoised = io.read_scan(out / "bag01_denoised.tif")
    np.testing.assert_array_equal(denoised.stack(), expected)
    assert (
        denoised.meta["history"][-1]["parameters"]["batch_hash"]
        == batch.stored_batch_info(out / "bag01_fused.tif")["batch_hash"]
    )
    assert io.read_scan(out / "bag01_fused.tif").channels["fused"].dtype == np.uint16
    assert (out / "bag01_material.png").stat().st_size > 0

    # manifest: CSV and JSON agree; scores, fitted noise, PSNR/SSIM beside the reference only
    import csv

    with open(out / "manifest.csv", newline="") as fh:
        csv_rows = {r["scan"]: r for r in csv.DictReader(fh)}
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["finished"] and doc["summary"]["failed"] == 4
    assert {r["scan"]: r["status"] for r in doc["scans"]} == {
        k: r["status"] for k, r in csv_rows.items()
    }
    assert (
        0 < float(csv_rows["bag00"]["ssim_low"]) <= 1 and float(csv_rows["bag00"]["psnr_high"]) > 10
    )
    assert csv_rows["bag01"]["psnr_low"] == "" and float(csv_rows["bag01"]["brisque_high"]) > 0
    assert json.loads(csv_rows["bag01"]["noise_fit"])[0]["a_counts"] > 0
    # each worker process loaded the model once, however many scans it ran
    with distributed.Client(cluster.scheduler_address) as client:
        assert set(client.run(batch.model_load_count).values()) == {1}
        # TensorFlow's pools split the machine's cores between the 2 workers
        cores = batch._local_cores()
        assert set(client.run(batch.tensorflow_threads).values()) == {(max(1, cores // 2), 1)}
    journal = [j["output"] for j in batch.read_journal(out)]
    assert len(journal) == 12 == len(set(journal))
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("bag*")}

    # rerun through the CLI: every finished scan is skipped, nothing rewritten, exit = failures
    code = cli.main(
        [
            "batch",
            str(archive),
            "-o",
            str(out),
            "--model",
            str(tiny_model),
            "--fuse",
            "wavelet",
            "--colour",
            "material",
            "--score",
            "--scheduler",
            cluster.scheduler_address,
            "--quiet",
        ]
    )
    assert code == 4
    doc = json.loads((out / "manifest.json").read_text())
    statuses = {r["scan"]: r["status"] for r in doc["scans"]}
    assert [statuses[f"bag0{i}"] for i in range(4)] == ["skipped"] * 4
    assert {r["scan"]: r.get("psnr_low") for r in doc["scans"]}["bag00"] == pytest.approx(
        float(csv_rows["bag00"]["psnr_low"])
    )  # scores carried over from the run that made them
    assert len(batch.read_journal(out)) == 12
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("bag*")} == mtimes

    # --force redoes them (and only them: the failures fail again)
    forced = batch.run(
        [archive],
        out,
        model=tiny_model,
        fuse="wavelet",
        colour="material",
        force=True,
        scheduler=cluster.scheduler_address,
        log=None,
        dashboard=False,
    )
    assert forced.counts["done"] == 4 and len(batch.read_journal(out)) == 24
    assert _no_temporaries(out) == []


def test_worker_killed_mid_run_loses_nothing_and_writes_nothing_twice(
    tiny_model, cluster, tmp_path
):
    folder = _write_bags(tmp_path / "in", 10, seed0=20, shape=(192, 256))
    out = tmp_path / "out"
    killed = {}
    client = distributed.Client(cluster.scheduler_address)
    try:

        def kill_a_busy_worker(tick):
            if killed or tick.done < 2:
                return
            processing = client.processing()
            busy = [addr for addr, keys in processing.items() if keys]
            if not busy:
                return
            pids = client.run(os.getpid, workers=[busy[0]])
            killed.update(address=busy[0], pid=pids[busy[0]], had=list(processing[busy[0]]))
            os.kill(pids[busy[0]], signal.SIGKILL)

        t0 = time.monotonic()
        result = batch.run(
            [folder],
            out,
            model=tiny_model,
            fuse="spatial",
            scheduler=cluster.scheduler_address,
            on_progress=kill_a_busy_worker,
            log=None,
            dashboard=False,
        )
        assert time.monotonic() - t0 < 120
    finally:
        client.close()
    assert killed and killed["had"], "the test must kill a worker while it runs a scan"
    names = [r["scan"] for r in result.rows]
    assert sorted(names) == [f"bag{i:02d}" for i in range(10)]  # every scan once in the manifest
    assert all(r["status"] == "done" for r in result.rows), [r.get("error") for r in result.rows]
    journal = [j["output"] for j in batch.read_journal(out)]
    assert sorted(journal) == sorted(
        f"bag{i:02d}_{k}.tif" for i in range(10) for k in ("denoised", "fused")
    )
    assert _no_temporaries(out) == []
    for i in range(10):
        assert io.read_scan(out / f"bag{i:02d}_denoised.tif").stack().shape == (2, 192, 256)


def test_own_local_cluster_two_workers(tiny_model, tmp_path):
    """The default path: run() starts (and stops) its own LocalCluster."""
    folder = _write_bags(tmp_path / "in", 3, seed0=40)
    messages = []
    result = batch.run(folder, tmp_path / "out", model=tiny_model, workers=2, log=messages.append)
    assert result.counts["done"] == 3 and result.failed == 0
    assert result.dashboard_link and any("dask dashboard: http" in m for m in messages)
    assert sorted(p.name for p in (tmp_path / "out").glob("*_denoised.tif")) == [
        "bag00_denoised.tif",
        "bag01_denoised.tif",
        "bag02_denoised.tif",
    ]


def test_large_scans_take_the_chunked_path_with_the_same_output(tmp_path, tiny_model):
    folder = _write_bags(tmp_path / "in", 1, shape=(160, 200))
    sha = batch.file_sha256(tiny_model)
    outputs = {}
    for threshold in (batch.LAZY_ABOVE_PX, 1):  # 1: every scan counts as very large
        out = tmp_path / f"out{threshold}"
        out.mkdir()
        job = batch.BatchJob(
            out_dir=str(out),
            model_path=str(tiny_model),
            model_sha256=sha,
            batch_hash=batch.batch_hash(sha, {}),
            run_id="r",
            lazy_above_px=threshold,
        )
        assert batch.process_scan([folder / "bag00.tif"], job)["status"] == "done"
        outputs[threshold] = io.read_scan(out / "bag00_denoised.tif").stack()
    np.testing.assert_array_equal(outputs[1], outputs[batch.LAZY_ABOVE_PX])


def test_batch_modules_do_not_import_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys\nimport napari_xray_denoise.batch, napari_xray_denoise.large_scan\n"
        "import napari_xray_denoise._napari.folder_stack, napari_xray_denoise.core.lazy_tiling\n"
        "bad = sorted(k for k in ('tensorflow', 'keras') if k in sys.modules)\nassert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_tasks_pickle_by_reference_from_the_batch_modules(tiny_model):
    """dask sends the task function and the worker plugin by reference: both must load
    back from their module (``batch.job``, ``batch.worker``) in a worker process."""
    import pickle

    assert pickle.loads(pickle.dumps(batch.process_scan)) is batch.process_scan
    assert batch.process_scan.__module__ == "napari_xray_denoise.batch.job"
    plugin = batch.ModelPlugin(str(tiny_model), "0" * 64, 2)
    again = pickle.loads(pickle.dumps(plugin))
    assert type(again) is batch.ModelPlugin and again.name == plugin.name
    job = batch.BatchJob(str(tiny_model.parent), str(tiny_model), "0" * 64, "h", "r")
    assert pickle.loads(pickle.dumps(job)) == job
