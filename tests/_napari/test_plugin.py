"""Manifest validity and the no-TensorFlow-at-import rule."""

import subprocess
import sys

import pytest


def test_manifest_validates_with_imports():
    npe2 = pytest.importorskip("npe2")
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-xray-denoise")
    manifest.validate_imports()
    assert {c.id.split(".")[-1] for c in manifest.contributions.commands} >= {
        "get_reader",
        "write_layer",
        "write_layers",
    }
    assert npe2 is not None


def test_npe2_cli_validate():
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "--imports", "napari-xray-denoise"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


LIGHT_MODULES = [
    "napari_xray_denoise",
    "napari_xray_denoise.io",
    "napari_xray_denoise._napari.reader",
    "napari_xray_denoise._napari.writer",
    "napari_xray_denoise._napari.sample_data",
    "napari_xray_denoise.cli",
    "napari_xray_denoise.demo",
    "napari_xray_denoise._worker.compute",
    "napari_xray_denoise._worker.jobs",
    "napari_xray_denoise.options",
    "napari_xray_denoise.progress",
    "napari_xray_denoise.bands",
    "napari_xray_denoise.core.registry",
    "napari_xray_denoise._napari.layer_data",
    "napari_xray_denoise._napari.session",
    "napari_xray_denoise._napari.widgets.fusion_widget",
    "napari_xray_denoise._napari.widgets.score_widget",
    "napari_xray_denoise._napari.widgets.targets_widget",
    "napari_xray_denoise._napari.widgets.train_widget",
    "napari_xray_denoise._napari.widgets.denoise_widget",
]


def test_light_modules_do_not_import_tensorflow():
    code = (
        "import importlib, sys\n"
        f"for m in {LIGHT_MODULES!r}:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except ModuleNotFoundError as e:\n"
        "        if e.name != m: raise\n"
        "bad = sorted(k for k in ('tensorflow', 'keras') if k in sys.modules)\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_core_never_imports_napari_or_qt():
    """core/ is the TensorFlow side: it must run in a worker process without any GUI."""
    import ast
    from pathlib import Path

    import napari_xray_denoise

    core = Path(napari_xray_denoise.__file__).parent / "core"
    banned = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt")
    offenders = []
    for file in core.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{file.name}: {n}" for n in names if n.split(".")[0] in banned]
    assert not offenders, offenders
