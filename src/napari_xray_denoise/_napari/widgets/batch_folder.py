"""Denoise a whole folder from the Denoise widget: the batch path (``batch.run``) on a
local dask cluster, with a progress bar in napari's activity dock and Cancel.

The cluster's worker processes import TensorFlow; this (GUI) process never does.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, PushButton, SpinBox
from napari.utils import progress

from ... import options
from ._common import notify_error, notify_info, while_alive

NO_FUSION = "no fusion"


class BatchFolderControls(Container):
    """Folder in, folder out, options, Run/Cancel; ``model_path()`` comes from the Denoise widget."""

    def __init__(self, model_path: Callable[[], str]):
        super().__init__(label="whole folder")
        self._model_path = model_path
        self._worker = None
        self._cancel = threading.Event()
        self._pbar = None
        self.result = None
        self._make_controls()
        self._lay_out()
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)

    def _make_controls(self):
        self.folder = FileEdit(
            mode="d", label="folder", tooltip="a folder of scans (low/high pairs or dual TIFFs)"
        )
        self.out_folder = FileEdit(mode="d", label="output folder")
        self.fuse = ComboBox(
            choices=[(NO_FUSION, NO_FUSION)]
            + options.labelled(options.FUSION_METHODS, options.FUSION_METHOD_LABELS),
            value=NO_FUSION,
            label="fuse",
        )
        self.colour = CheckBox(value=False, text="material colour PNG")
        self.score = CheckBox(value=False, text="score (BRISQUE, noise, PSNR/SSIM)")
        self.workers = SpinBox(value=0, min=0, max=256, label="workers", tooltip="0: one per core")
        self.run_button = PushButton(text="Denoise folder")
        self.cancel_button = PushButton(text="Cancel folder", enabled=False)
        self.status = Label(value="")

    def _lay_out(self):
        self.extend(
            [
                self.folder,
                self.out_folder,
                self.fuse,
                self.colour,
                self.score,
                self.workers,
                self.run_button,
                self.cancel_button,
                self.status,
            ]
        )

    def start(self):
        """Start the batch in a thread; returns the napari worker (or None with a message)."""
        if self._worker is not None:
            notify_error("A folder is already being denoised; cancel it or wait for it to finish.")
            return None
        try:
            model, folder, out, total = self._request()
        except ValueError as exc:
            notify_error(exc)
            return None
        self._cancel.clear()
        self._pbar = progress(total=total, desc="Denoising folder")
        self.status.value = f"starting {total} scans..."
        self._worker = self._relay(folder, out, self.run_options(model))
        self._worker.yielded.connect(self._on_progress)
        self._worker.returned.connect(self._on_done)
        self._worker.errored.connect(self._on_error)
        self._worker.finished.connect(self._finish)
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self._worker.start()
        return self._worker

    def _request(self) -> tuple[str, Path, Path, int]:
        """(model, scans' folder, output folder, number of scans); ValueError (one
        sentence) where a choice is missing or the folder holds no scans."""
        from ... import batch

        model = self._model_path()
        if model == "bm3d":
            raise ValueError(
                "Folders run through a neural model; choose the default model or a .keras file."
            )
        folder, out = Path(self.folder.value), Path(self.out_folder.value)
        if not folder.is_dir():
            raise ValueError("Choose the folder of scans to denoise.")
        if str(self.out_folder.value) in ("", ".") or out.resolve() == folder.resolve():
            raise ValueError("Choose an output folder other than the scans' folder.")
        groups, _, problems = batch.collect_scans([folder], out)
        total = len(groups) + len(problems)
        if not total:
            raise ValueError(f"'{folder}' holds no TIFF scans; choose a folder of scans.")
        return model, folder, out, total

    def run_options(self, model: str) -> dict:
        """``batch.run``'s options from the controls."""
        return {
            "model": model,
            "fuse": None if self.fuse.value == NO_FUSION else self.fuse.value,
            "colour": "material" if self.colour.value else None,
            "score": bool(self.score.value),
            "workers": self.workers.value or None,
        }

    def _relay(self, folder: Path, out: Path, run_options: dict):
        """A napari worker (not started) that runs ``batch.run`` in a thread and yields
        its progress ticks and log lines; it returns the result, or raises one sentence."""
        from napari.qt.threading import thread_worker

        from ... import batch

        @thread_worker(start_thread=False, ignore_errors=True)
        def _relay():
            messages: queue.Queue = queue.Queue()
            outcome = {}

            def target():
                try:
                    outcome["result"] = batch.run(
                        [folder],
                        out,
                        on_progress=messages.put,
                        log=messages.put,
                        cancel=self._cancel,
                        **run_options,
                    )
                except Exception as exc:  # reported as one sentence on the GUI thread
                    outcome["error"] = exc
                finally:
                    messages.put(None)

            threading.Thread(target=target, name="xray-denoise-batch", daemon=True).start()
            while (item := messages.get()) is not None:
                yield item
            if "error" in outcome:
                raise ValueError(str(outcome["error"]).splitlines()[0])
            return outcome["result"]

        return _relay()

    def cancel(self):
        self._cancel.set()

    @while_alive
    def _on_progress(self, item):
        if isinstance(item, str):  # a log line, e.g. the dask dashboard link
            self.status.value = item
            return
        if self._pbar is not None:
            self._pbar.n = item.finished
            self._pbar.set_description(f"Denoising folder: {item.done} done, {item.failed} failed")
            self._pbar.refresh()
        eta = f", about {item.eta_s:.0f} s left" if item.eta_s is not None else ""
        self.status.value = (
            f"{item.finished}/{item.total}: {item.done} done, {item.skipped} skipped, "
            f"{item.failed} failed, {item.per_second * 60:.1f} scans/min{eta}"
        )

    @while_alive
    def _on_done(self, result):
        self.result = result
        c = result.counts
        self.status.value = (
            f"{c['done']} done, {c['skipped']} skipped, {c['failed']} failed; "
            f"manifest: {result.manifest_csv}"
        )
        if c["failed"]:
            notify_error(
                f"{c['failed']} scan(s) failed; the manifest ({result.manifest_csv.name}) says why."
            )
        else:
            notify_info(f"Folder denoised: {c['done']} done, {c['skipped']} already up to date.")

    @while_alive
    def _on_error(self, exc):
        notify_error(exc)
        self.status.value = f"failed: {str(exc).splitlines()[0]}"

    @while_alive
    def _finish(self):
        self._worker = None
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False
