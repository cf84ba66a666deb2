"""Train: a self-supervised denoiser on the open scans or a folder, with live loss and Stop.

Training runs in the compute worker process (TensorFlow never enters napari's process,
see ``_worker/compute.py``); a GUI-side thread relays its progress to the progress bar, the
activity dock and the loss plot. Stop asks the trainer to end after the current step;
the best-validation model so far is kept and offered to the Denoise widget at once.
"""

import shutil
from pathlib import Path

import napari
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    RadioButtons,
    Select,
    SpinBox,
)
from napari.utils import progress

from ... import io
from ..._worker import compute as _compute
from ..session import REGISTRY
from ._common import (
    JobWidgetMixin,
    notify_error,
    notify_info,
    relay_job,
    scan_array,
    scans_in_viewer,
    while_alive,
)
from .loss_plot import LossPlot

FINETUNE = "fine-tune the shipped model"
METHODS = [FINETUNE, "poissongaussian", "poisson", "gaussian", "uncalib", "mse", "amssd"]
METHOD_TIPS = (
    "fine-tune the shipped model: start from the default model and learn the open scans' own "
    "look, self-supervised (kept only if it gets better on held-back parts of the scans); "
    "poissongaussian/poisson/gaussian/uncalib/mse: blind-spot modes (learn from noisy scans only); "
    "amssd: multiscale pseudo-target network"
)
PRESETS = {
    # name: blind-spot network size (enc, dec, levels) -- CPU default vs the source's size
    "CPU (32/64 filters, 3 levels)": (32, 64, 3),
    "quick look (16/32 filters, 2 levels)": (16, 32, 2),
    "source (48/96 filters, 5 levels, GPU)": (48, 96, 5),
}


class TrainWidget(JobWidgetMixin, Container):
    _run_button_name = "train_button"
    _stop_button_name = "stop_button"

    def __init__(self, viewer: napari.Viewer):
        super().__init__()
        self._viewer = viewer
        self._worker = None
        self._job = None
        self._pbar = None
        self.method = ComboBox(choices=METHODS, value=FINETUNE, label="method", tooltip=METHOD_TIPS)
        self.source = RadioButtons(choices=["open scans", "folder"], value="open scans", label="train on",
                                   orientation="horizontal")
        self.scans = Select(choices=self._scan_choices, label="scans",
                            tooltip="open scans to learn from (dual-energy pairs are trained jointly)")
        self.folder = FileEdit(mode="d", label="folder", tooltip="a folder of TIFF scans", visible=False)
        self.joint = ComboBox(choices=["auto", "cross", "blind", "separate"], value="auto", label="dual-energy",
                              tooltip="auto = separate (best per CPU-minute in the benchmark); "
                                      "cross: each energy sees the other's centre pixel (independent detectors); "
                                      "blind: centre pixel hidden in both; separate: one single-channel model for each energy in turn")
        self.preset = ComboBox(choices=list(PRESETS), label="network size")
        self.steps = SpinBox(value=2000, min=10, max=1_000_000, step=100, label="steps")
        self.crop = SpinBox(value=64, min=32, max=512, step=32, label="crop size")
        self.batch = SpinBox(value=8, min=1, max=128, label="batch size")
        self.lr = FloatSpinBox(value=1e-3, min=1e-6, max=1e-1, step=1e-4, label="learning rate")
        self.minutes = FloatSpinBox(value=0.0, min=0.0, max=10_000.0, step=1.0, label="time budget (min)",
                                    tooltip="stop after this many minutes (0: no limit); the learning rate "
                                            "decays to the end of whichever of steps or time runs out first")
        self.seed = SpinBox(value=0, min=0, max=2**31 - 1, label="seed")
        self.train_button = PushButton(text="Train")
        self.stop_button = PushButton(text="Stop", enabled=False,
                                      tooltip="stop after the current step and keep the best model so far")
        self.save_button = PushButton(text="Save model...", enabled=False)
        self.save_path = FileEdit(mode="w", filter="*.keras", label="save as", value="model.keras")
        self.bar = ProgressBar(value=0, min=0, max=100, label="progress")
        self.status = Label(value="")
        self.extend([self.method, self.source, self.scans, self.folder, self.joint, self.preset, self.steps,
                     self.minutes, self.crop, self.batch, self.lr, self.seed, self.train_button, self.stop_button,
                     self.bar, self.status, self.save_path, self.save_button])
        self.plot = LossPlot()
        self.native.layout().addWidget(self.plot)
        self.source.changed.connect(self._on_source)
        self.train_button.changed.connect(self.start)
        self.stop_button.changed.connect(self.stop)
        self.save_button.changed.connect(self.save)
        self.last_model = None

    # -- choices --------------------------------------------------------------------
    def _scan_choices(self, _widget=None):
        return list(scans_in_viewer(self._viewer))

    def _on_source(self, value):
        self.scans.visible = value == "open scans"
        self.folder.visible = value == "folder"

    # -- gathering data ---------------------------------------------------------------
    def _training_scans(self):
        if self.source.value == "folder":
            folder = Path(self.folder.value)
            scans = [s.images() for s in io.read_folder(folder)]
        else:
            available = scans_in_viewer(self._viewer)
            chosen = [n for n in self.scans.value if n in available]
            if not chosen:
                raise ValueError("Select at least one open scan to train on (or train on a folder).")
            scans = [scan_array(available[n]) for n in chosen]
        channels = {s.shape[0] for s in scans}
        if len(channels) > 1:
            raise ValueError("The selected scans mix single- and dual-energy images; train on one kind at a time.")
        return scans

    def config(self) -> dict:
        common = {"steps": self.steps.value, "crop_size": self.crop.value, "batch_size": self.batch.value,
                  "learning_rate": self.lr.value, "seed": self.seed.value,
                  "minutes": self.minutes.value if self.minutes.value > 0 else None}
        if self.method.value == FINETUNE:
            return {"steps": self.steps.value, "seed": self.seed.value,
                    "minutes": self.minutes.value if self.minutes.value > 0 else 10.0}
        if self.method.value == "amssd":
            return common
        enc, dec, levels = PRESETS[self.preset.value]
        return {**common, "joint": self.joint.value, "enc_filters": enc, "dec_filters": dec, "levels": levels}

    # -- running ----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._worker is not None

    def start(self):
        if self.running or _compute.lane("train").busy:
            notify_error("A training run is already in progress; stop it or wait for it to finish first.")
            return None
        try:
            scans = self._training_scans()
        except ValueError as exc:
            notify_error(exc)
            return None
        method, config = self.method.value, self.config()
        save_path = REGISTRY.new_model_path(method)
        self.plot.clear()
        self.plot.total_steps = config["steps"]
        self.bar.value = 0
        self.status.value = "starting the compute process..."
        self._pbar = progress(total=config["steps"], desc=f"Training {method}")
        try:
            self._job = _compute.lane("train").submit(
                "train", method=method, scans=scans, config=config, save_path=save_path)
        except _compute.BusyError as exc:
            self._finish()
            notify_error(exc)
            return None
        self._worker = relay_job(self._job, self._on_progress, self._on_done, self._on_error, self._finish)
        self.train_button.enabled = False
        self.stop_button.enabled = True
        return self._worker

    def stop(self):
        if self._job is not None:
            self._job.cancel()
            self.status.value = "stopping after the current step..."

    @while_alive
    def _on_progress(self, info: dict):
        step, total = info.get("step", 0), info.get("total", 1)
        self.plot.add(step, info.get("loss"), info.get("val_loss"), total)
        self.bar.value = int(100 * step / max(total, 1))
        val = info.get("val_loss")
        self.status.value = f"step {step}/{total}  loss {info.get('loss', float('nan')):.4g}" + (
            f"  validation {val:.4g}" if val is not None else "")
        if self._pbar is not None:
            self._pbar.n = step
            self._pbar.refresh()

    @while_alive
    def _on_done(self, result: dict):
        meta = result["metadata"]
        training = meta.get("training", {})
        name = f"{meta.get('method', 'blindspot')} {meta.get('mode', '')}".strip()
        self.last_model = REGISTRY.add(name, result["model_path"], meta)
        self.save_button.enabled = True
        how = "stopped early" if training.get("cancelled") else "finished"
        self.status.value = f"{how}: model '{self.last_model.name}' is ready in the Denoise widget"
        notify_info(f"Training {how}; model '{self.last_model.name}' is ready to denoise.")

    def save(self):
        if self.last_model is None:
            notify_error("Train a model first; there is nothing to save yet.")
            return
        target = Path(self.save_path.value)
        if target.suffix != ".keras":
            target = target.with_suffix(".keras")
        try:
            io.atomic_write(target, lambda tmp: shutil.copyfile(self.last_model.path, tmp))
        except OSError as exc:
            notify_error(exc)
            return
        notify_info(f"Model saved to {target}.")
        self.status.value = f"saved {target}"
