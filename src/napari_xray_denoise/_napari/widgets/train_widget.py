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

from ... import io, options
from ..._worker import compute as _compute
from ...progress import TrainingProgress
from ..session import REGISTRY
from ._common import (
    JobWidgetMixin,
    notify_error,
    notify_info,
    scan_array,
    scans_in_viewer,
    while_alive,
)
from .loss_plot import LossPlot

# network size label -> name in options.NETWORK_SIZES (CPU default first)
PRESETS = {label: name for name, (label, *_) in options.NETWORK_SIZES.items()}


class TrainWidget(JobWidgetMixin, Container):
    _run_button_name = "train_button"
    _stop_button_name = "stop_button"

    def __init__(self, viewer: napari.Viewer):
        super().__init__()
        self._viewer = viewer
        self._worker = None
        self._job = None
        self._pbar = None
        self._make_data_controls()
        self._make_network_controls()
        self._make_schedule_controls()
        self._make_run_controls()
        self._lay_out()
        self._connect_signals()
        self.last_model = None
        self._run = TrainingProgress(self.steps.value)

    # -- building -----------------------------------------------------------------------
    def _make_data_controls(self):
        """The method, and the scans (open ones or a folder) it learns from."""
        self.method = ComboBox(
            choices=options.labelled(options.TRAIN_METHODS, options.METHOD_LABELS),
            value=options.DEFAULT_METHOD,
            label="method",
            tooltip=options.METHOD_HELP,
        )
        self.source = RadioButtons(
            choices=["open scans", "folder"],
            value="open scans",
            label="train on",
            orientation="horizontal",
        )
        self.scans = Select(
            choices=self._scan_choices,
            label="scans",
            tooltip="open scans to learn from (dual-energy pairs are trained jointly)",
        )
        self.folder = FileEdit(
            mode="d", label="folder", tooltip="a folder of TIFF scans", visible=False
        )

    def _make_network_controls(self):
        """The blind-spot network's dual-energy variant and size."""
        self.joint = ComboBox(
            choices=options.labelled(options.JOINT_VARIANTS, options.JOINT_LABELS),
            value="auto",
            label="dual-energy",
            tooltip=options.JOINT_HELP,
        )
        self.preset = ComboBox(choices=list(PRESETS), label="network size")

    def _make_schedule_controls(self):
        """Steps, time budget, crops, batch, learning rate and seed (the shared defaults)."""
        defaults = options.TRAIN_DEFAULTS
        self.steps = SpinBox(
            value=defaults["steps"], min=10, max=1_000_000, step=100, label="steps"
        )
        self.crop = SpinBox(
            value=defaults["crop_size"], min=32, max=512, step=32, label="crop size"
        )
        self.batch = SpinBox(value=defaults["batch_size"], min=1, max=128, label="batch size")
        self.lr = FloatSpinBox(
            value=defaults["learning_rate"], min=1e-6, max=1e-1, step=1e-4, label="learning rate"
        )
        self.minutes = FloatSpinBox(
            value=0.0,
            min=0.0,
            max=10_000.0,
            step=1.0,
            label="time budget (min)",
            tooltip="stop after this many minutes (0: no limit); the learning rate "
            "decays to the end of whichever of steps or time runs out first",
        )
        self.seed = SpinBox(value=defaults["seed"], min=0, max=2**31 - 1, label="seed")

    def _make_run_controls(self):
        """Train / Stop, progress, status, and saving the model."""
        self.train_button = PushButton(text="Train")
        self.stop_button = PushButton(
            text="Stop",
            enabled=False,
            tooltip="stop after the current step and keep the best model so far",
        )
        self.save_button = PushButton(text="Save model...", enabled=False)
        self.save_path = FileEdit(mode="w", filter="*.keras", label="save as", value="model.keras")
        self.bar = ProgressBar(value=0, min=0, max=100, label="progress")
        self.status = Label(value="")

    def _lay_out(self):
        self.extend(
            [
                self.method,
                self.source,
                self.scans,
                self.folder,
                self.joint,
                self.preset,
                self.steps,
                self.minutes,
                self.crop,
                self.batch,
                self.lr,
                self.seed,
                self.train_button,
                self.stop_button,
                self.bar,
                self.status,
                self.save_path,
                self.save_button,
            ]
        )
        self.plot = LossPlot()
        self.native.layout().addWidget(self.plot)

    def _connect_signals(self):
        self.source.changed.connect(self._on_source)
        self.method.changed.connect(self._on_method)
        self._on_method(self.method.value)
        self.train_button.changed.connect(self.start)
        self.stop_button.changed.connect(self.stop)
        self.save_button.changed.connect(self.save)

    # -- choices --------------------------------------------------------------------
    def _scan_choices(self, _widget=None):
        return list(scans_in_viewer(self._viewer))

    def _on_method(self, value):
        """Fine-tuning starts from its own rate and crop size (and a 10-minute budget);
        the other methods from the shared training defaults. Blind-spot options hide."""
        tune = value == "finetune"
        defaults = {**options.TRAIN_DEFAULTS, "minutes": 0.0}
        if tune:
            defaults.update(options.FINETUNE_DEFAULTS)
        self.lr.value, self.crop.value, self.minutes.value = (
            defaults["learning_rate"],
            defaults["crop_size"],
            defaults["minutes"],
        )
        for w in (self.joint, self.preset):
            w.visible = value not in ("finetune", "amssd")

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
                raise ValueError(
                    "Select at least one open scan to train on (or train on a folder)."
                )
            scans = [scan_array(available[n]) for n in chosen]
        channels = {s.shape[0] for s in scans}
        if len(channels) > 1:
            raise ValueError(
                "The selected scans mix single- and dual-energy images; train on one kind at a time."
            )
        return scans

    def config(self) -> dict:
        """Training options; core.registry keeps those the method's kind takes (no joint for AMSSD)."""
        return {
            "steps": self.steps.value,
            "crop_size": self.crop.value,
            "batch_size": self.batch.value,
            "learning_rate": self.lr.value,
            "seed": self.seed.value,
            "minutes": self.minutes.value if self.minutes.value > 0 else None,
            "joint": self.joint.value,
            **options.network_size(PRESETS[self.preset.value]),
        }

    # -- running ----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._worker is not None

    def start(self):
        if self.running or _compute.lane("train").busy:
            notify_error(
                "A training run is already in progress; stop it or wait for it to finish first."
            )
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
        self._run = TrainingProgress(
            config["steps"], config["minutes"]
        )  # the budget's clock starts now
        self._launch(
            "train",
            "train",
            desc=f"Training {method} (%)",
            on_done=self._on_done,
            method=method,
            scans=scans,
            config=config,
            save_path=save_path,
        )
        return self._worker

    def stop(self):
        if self._job is not None:
            self._job.cancel()
            self.status.value = "stopping after the current step..."

    @while_alive
    def _on_progress(self, info: dict):
        step, total = info.get("step", 0), info.get("total", 1)
        self.plot.add(step, info.get("loss"), info.get("val_loss"), total)
        self._run.update(
            step, total
        )  # under a time budget, progress and time left follow the clock
        percent = int(100 * self._run.fraction)
        self.bar.value = percent
        val = info.get("val_loss")
        self.status.value = f"{self._run.describe()}  loss {info.get('loss', float('nan')):.4g}" + (
            f"  validation {val:.4g}" if val is not None else ""
        )
        if self._pbar is not None:
            self._pbar.n = percent
            self._pbar.refresh()

    @while_alive
    def _on_done(self, result: dict):
        meta = result["metadata"]
        training = meta.get("training", {})
        name = f"{meta.get('method', 'blindspot')} {meta.get('mode', '')}".strip()
        self.last_model = REGISTRY.add(name, result["model_path"], meta)
        self.save_button.enabled = True
        how = "stopped early" if training.get("cancelled") else "finished"
        verdict = options.finetune_verdict(meta)
        self.status.value = (
            f"{how}: model '{self.last_model.name}' is ready in the Denoise widget"
            + (f" ({verdict})" if verdict else "")
        )
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
