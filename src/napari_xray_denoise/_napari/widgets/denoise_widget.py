"""Denoise: a trained model (this session's or a .keras file) applied tile by tile.

Runs in the compute worker process, with a progress bar and Cancel. Results are new
layers named after their source (``<layer> denoised``) carrying the model and noise
parameters in their metadata. Compare shows source and result side by side (grid).
"Denoise folder" sends a whole folder to the batch path (``batch.run``, dask workers).
"""

from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
)

from ... import io, options
from ..session import REGISTRY
from ._common import (
    JobWidgetMixin,
    notify_error,
    notify_info,
    scan_array,
    scans_in_viewer,
    show_image,
    while_alive,
)
from .batch_folder import BatchFolderControls

FROM_FILE = "from file..."
DEFAULT_MODEL = "default model (shipped)"
BM3D = "BM3D + Anscombe (classical, ~15x slower)"
TILE_SIZES = (64, 128, 192, 256, 384, 512, 768, 1024, 2048)
OVERLAPS = (0, 8, 16, 24, 32, 48, 64, 96, 128)


class DenoiseWidget(JobWidgetMixin, Container):
    _run_button_name = "run_button"
    _stop_button_name = "cancel_button"

    def __init__(self, viewer: napari.Viewer):
        super().__init__()
        self._viewer = viewer
        self._worker = None
        self._job = None
        self._pbar = None
        self._compare_state = None
        self._make_input_controls()
        self._make_inference_controls()
        self._make_physics_controls()
        self._make_run_controls()
        self._lay_out()
        self._connect_signals()
        self._on_model(self.model.value)
        self.last_layers: list = []

    # -- building -----------------------------------------------------------------------
    def _make_input_controls(self):
        """The model (this session's, shipped, BM3D or a file) and the scan."""
        self.model = ComboBox(
            choices=self._model_choices,
            label="model",
            tooltip="a model trained in this session, or a .keras file",
        )
        self.model_file = FileEdit(mode="r", filter="*.keras", label="model file")
        self.scan = ComboBox(
            choices=self._scan_choices,
            label="scan",
            tooltip="a dual-energy pair (low+high) or a single layer",
        )

    def _make_inference_controls(self):
        """Tile, overlap and passes; "model's" leaves each to the model."""
        # "model's" (0 / -1) leaves tile and overlap to the model (options.DENOISE_DEFAULTS)
        self.tile = ComboBox(
            choices=[("model's", 0)] + [(str(n), n) for n in TILE_SIZES],
            value=0,
            label="tile",
            tooltip="tile side in pixels; memory grows with tile, not with scan size",
        )
        self.overlap = ComboBox(
            choices=[("model's", -1)] + [(str(n), n) for n in OVERLAPS],
            value=-1,
            label="overlap",
            tooltip="tile overlap in pixels (the model's own is at least its receptive radius)",
        )
        # passes over flipped copies, default model only ("model's" 0: options.DENOISE_DEFAULTS)
        self.self_ensemble = ComboBox(
            choices=[(f"model's ({options.DEFAULT_SELF_ENSEMBLE})", 0)]
            + [(str(n), n) for n in options.SELF_ENSEMBLES],
            value=0,
            label="passes",
            tooltip=options.SELF_ENSEMBLE_HELP,
        )

    def _make_physics_controls(self):
        """Detector physics for the default model and BM3D (empty / 0: estimate from the scan)."""
        self.dark_file = FileEdit(
            mode="r",
            filter="*.tif *.tiff",
            label="dark frame",
            tooltip="optional: a dark frame (detector offset per column)",
        )
        self.flat_file = FileEdit(
            mode="r",
            filter="*.tif *.tiff",
            label="flat frame",
            tooltip="optional: a flat (air) frame (column gains); "
            "without it the gains come from the scan's air",
        )
        self.gain = FloatSpinBox(
            value=0.0,
            min=0.0,
            max=1e6,
            step=0.1,
            label="detector gain",
            tooltip="counts per detected quantum, if calibrated (0: fit the noise on the scan)",
        )
        self.offset = FloatSpinBox(
            value=0.0,
            min=-1e6,
            max=1e6,
            label="detector offset",
            tooltip="counts at zero signal (with a calibrated gain)",
        )
        self.read_noise = FloatSpinBox(
            value=0.0,
            min=0.0,
            max=1e6,
            label="read noise",
            tooltip="read noise std in counts (with a calibrated gain)",
        )

    def _make_run_controls(self):
        """Denoise / Cancel, progress, status and Compare."""
        self.run_button = PushButton(text="Denoise")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.compare_button = PushButton(text="Compare before/after")
        self.bar = ProgressBar(value=0, min=0, max=100, label="progress")
        self.status = Label(value="")

    def _lay_out(self):
        self.extend(
            [
                self.model,
                self.model_file,
                self.scan,
                self.tile,
                self.overlap,
                self.self_ensemble,
                self.dark_file,
                self.flat_file,
                self.gain,
                self.offset,
                self.read_noise,
                self.run_button,
                self.cancel_button,
                self.bar,
                self.status,
                self.compare_button,
            ]
        )
        self.folder_batch = BatchFolderControls(self.model_path)  # a whole folder: the batch path
        self.append(self.folder_batch)

    def _connect_signals(self):
        self.model.changed.connect(self._on_model)
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        self.compare_button.changed.connect(self.toggle_compare)
        REGISTRY.changed.connect(self._refresh_models)

    # -- choices --------------------------------------------------------------------
    def _model_choices(self, _widget=None):
        return [DEFAULT_MODEL] + REGISTRY.names()[::-1] + [BM3D, FROM_FILE]

    def _scan_choices(self, _widget=None):
        return list(scans_in_viewer(self._viewer))

    def _refresh_models(self):
        try:
            self.model.reset_choices()
        except RuntimeError:  # the dock widget was closed and its Qt objects deleted
            REGISTRY.changed.disconnect(self._refresh_models)
            return
        names = REGISTRY.names()
        if names:
            self.model.value = names[-1]

    def _on_model(self, value):
        self.model_file.visible = value == FROM_FILE

    def model_path(self) -> str:
        if self.model.value == FROM_FILE or self.model.value is None:
            path = Path(self.model_file.value)
            if not path.is_file() or path.suffix != ".keras":
                raise ValueError(
                    "Choose a trained .keras model file (or train one in the Train widget)."
                )
            return str(path)
        if self.model.value == DEFAULT_MODEL:
            return "default"
        if self.model.value == BM3D:
            from ...classical import MISSING, bm3d_available

            if not bm3d_available():
                raise ValueError(MISSING)
            return "bm3d"
        return REGISTRY.models[self.model.value].path

    def start(self):
        if self._worker is not None:
            notify_error("Denoising is already running; cancel it or wait for it to finish.")
            return None
        try:
            model_path, layers, image, physics = self._request()
        except ValueError as exc:
            notify_error(exc)
            return None
        if model_path == "bm3d":
            job, kwargs = "denoise_bm3d", {}
        else:
            job, kwargs = "denoise", {"model_path": model_path, **self.denoise_options()}
        worker = self._launch(
            "infer",
            job,
            desc="Denoising",
            on_done=lambda result: self._on_done(result, layers, model_path),
            image=image,
            physics=physics,
            **kwargs,
        )
        if worker is not None:
            self.status.value = "denoising..."
        return worker

    def _request(self):
        """(model path, scan layers, (C, Y, X) image, physics) to denoise; ValueError
        (one sentence) where a choice is missing or does not go with the model."""
        model_path = self.model_path()
        layers = scans_in_viewer(self._viewer).get(self.scan.value)
        if not layers:
            raise ValueError("Choose a scan to denoise; open one first.")
        image = scan_array(layers)
        physics = self.physics_options()
        if model_path == "bm3d" and self.self_ensemble.value:
            raise ValueError(
                "Passes over flipped copies apply to the default model, not to BM3D; "
                "set passes to the model's own."
            )
        return model_path, layers, image, physics

    def physics_options(self) -> dict:
        """Dark/flat frames and calibrated noise the user gave (for the default model and
        BM3D); empty when everything is estimated from the scan."""
        out = {}
        for key, edit in (("dark", self.dark_file), ("flat", self.flat_file)):
            path = Path(str(edit.value)) if edit.value else None
            if path is not None and str(path) not in ("", "."):
                if not path.is_file():
                    raise ValueError(
                        f"The {key} frame '{path}' is not a file; choose a TIFF or clear the field."
                    )
                frames = io.read_scan(path).images()
                out[key] = frames[0] if len(frames) == 1 else frames
        if self.gain.value > 0:
            from ...noise import calibrated_noise

            out["noise"] = calibrated_noise(
                self.gain.value, self.offset.value, self.read_noise.value
            )
        return out

    def denoise_options(self) -> dict:
        """Tile, overlap and batch size; ``None`` where the model's or library's default applies."""
        chosen = {
            "tile": self.tile.value if self.tile.value > 0 else None,
            "overlap": self.overlap.value if self.overlap.value >= 0 else None,
            "self_ensemble": self.self_ensemble.value or None,
        }
        return {**options.DENOISE_DEFAULTS, **{k: v for k, v in chosen.items() if v is not None}}

    def cancel(self):
        if self._job is not None:
            self._job.cancel()

    @while_alive
    def _on_progress(self, info: dict):
        done, total = info.get("done", 0), max(info.get("total", 1), 1)
        self.bar.value = int(100 * done / total)
        if self._pbar is not None:
            self._pbar.n = int(100 * done / total)
            self._pbar.refresh()

    @while_alive
    def _on_done(self, result: dict, layers, model_path: str):
        if result.get("cancelled"):
            self.status.value = "cancelled"
            notify_info("Denoising cancelled; no layer was added.")
            return
        denoised = np.asarray(result["denoised"], dtype=np.float32)
        meta = result["metadata"]
        self.last_layers = []
        noise = result.get("noise")  # the noise the denoiser used, per channel
        if not (isinstance(noise, list) and len(noise) == len(layers)):
            noise = [noise] * len(layers)
        for layer, channel, channel_noise in zip(layers, denoised, noise, strict=True):
            history = list(layer.metadata.get("history", [])) + [
                io.denoise_history_entry(Path(model_path).name, meta, channel_noise)
            ]
            new = show_image(
                self._viewer,
                channel,
                f"{layer.name} denoised",
                source=layer,
                metadata={
                    "count_scale": 1.0,
                    "history": history,
                    "energy": layer.metadata.get("energy"),
                    "model_path": model_path,
                    "model": {k: meta.get(k) for k in ("method", "mode", "joint")},
                    "noise": channel_noise,
                },
            )
            self.last_layers.append((layer, new))
        self.bar.value = 100
        self.status.value = f"done: {len(self.last_layers)} layer(s) added"

    def toggle_compare(self):
        """One click: source and denoised side by side (grid); again: back as before."""
        viewer = self._viewer
        if self._compare_state is not None:
            for layer, visible in self._compare_state.items():
                if layer in viewer.layers:
                    layer.visible = visible
            _grid(viewer).enabled = False
            self._compare_state = None
            return
        if not self.last_layers:
            notify_error("Denoise a scan first; then Compare shows it beside its source.")
            return
        source, result = self.last_layers[0]
        self._compare_state = {layer: layer.visible for layer in viewer.layers}
        for layer in viewer.layers:
            layer.visible = layer is source or layer is result
        grid = _grid(viewer)
        grid.enabled = True
        grid.shape = (1, 2)


def _grid(viewer):
    """The viewer's grid settings (``viewer.canvas.grid`` since napari 0.9)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid
