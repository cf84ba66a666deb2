"""Install paths: the gpu extra (TensorFlow with CUDA) beside the CPU one, and the README's check."""

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_extra_installs_tensorflow_with_cuda():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    gpu = extras["gpu"]
    assert any(req.startswith("tensorflow[and-cuda]") for req in gpu), gpu
    assert not any("tensorflow-cpu" in req for req in gpu)  # the CPU build would shadow it
    assert any(req.startswith("keras") for req in gpu)
    readme = (ROOT / "README.md").read_text()
    assert "napari-xray-denoise[gpu" in readme and "list_physical_devices('GPU')" in readme


def test_ci_runs_lint_and_tests_and_contributors_get_the_same_hooks():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make lint" in ci and "make test" in ci
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile[makefile.index("\nlint:") :].split("\n\n")[0]
    assert "ruff check" in lint and "ruff format --check" in lint
    hooks = (ROOT / ".pre-commit-config.yaml").read_text()
    assert "ruff-check" in hooks and "ruff-format" in hooks
