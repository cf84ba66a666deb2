"""Models trained or loaded in this napari session, shared by the Train and Denoise widgets."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from psygnal import Signal


@dataclass
class SessionModel:
    name: str
    path: str
    metadata: dict = field(default_factory=dict)


class ModelRegistry:
    """Evented list of usable model files (trained ones live in a session temp folder)."""

    changed = Signal()

    def __init__(self):
        self.models: dict[str, SessionModel] = {}
        self._tmp = None

    def new_model_path(self, stem: str) -> str:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="xray-denoise-models-")
        folder = Path(self._tmp.name)
        n = len(list(folder.glob("*.keras"))) + 1
        return str(folder / f"{stem}-{n}.keras")

    def add(self, name: str, path: str, metadata: dict | None = None) -> SessionModel:
        base, i = name, 2
        while name in self.models and self.models[name].path != path:
            name, i = f"{base} ({i})", i + 1
        model = SessionModel(name, str(path), dict(metadata or {}))
        self.models[name] = model
        self.changed.emit()
        return model

    def names(self) -> list[str]:
        return list(self.models)


REGISTRY = ModelRegistry()
