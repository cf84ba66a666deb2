"""core.registry: one place maps method names and model files to their kind."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from napari_xray_denoise import options
from napari_xray_denoise.core import registry


@dataclass
class FakeConfig:
    steps: int = 10
    mode: str = "x"


TRAINED = {}


def fake_train(scans, config, **kwargs):
    TRAINED.update(scans=scans, config=config, kwargs=kwargs)
    return "a denoiser"


@pytest.fixture
def fake_kind():
    kinds = dict(registry._KINDS)
    kind = registry.register(
        registry.ModelKind(
            method="fake",
            methods=("fake-a", "fake-b"),
            denoiser="blindspot.denoiser:Denoiser",
            config="test_registry:FakeConfig",
            train="test_registry:fake_train",
            config_for_method=lambda m: {"mode": m[-1]},
        )
    )
    yield kind
    registry._KINDS.clear()
    registry._KINDS.update(kinds)


def test_method_names_and_kinds():
    assert registry.method_names() == ("finetune", *registry.BLINDSPOT_MODES, "amssd")
    assert registry.kind_for_method(options.DEFAULT_METHOD).method == "singlepass"
    assert options.TRAIN_METHODS == registry.method_names()  # the front ends' list comes from here
    assert registry.kind_for_method("poisson").method == "blindspot"
    assert registry.kind_for_method("supervised").method == "blindspot"  # accepted, not offered
    assert registry.kind_for_method("amssd").method == "amssd"
    with pytest.raises(ValueError, match="Unknown training method 'nope'"):
        registry.kind_for_method("nope")
    with pytest.raises(ValueError, match="cannot run"):
        registry.kind_for_file({"method": "n2v"}, "x.keras")


def test_a_new_method_registers_in_one_place(fake_kind):
    assert registry.method_names()[-2:] == ("fake-a", "fake-b")
    scan = np.random.default_rng(0).integers(0, 4096, (2, 64, 80)).astype(np.uint16)
    scan[..., -3:] = 52685  # a non-image band: training never sees it
    assert (
        registry.train(
            "fake-b", [scan], {"steps": 5, "joint": "cross", "minutes": None}, cancel="c"
        )
        == "a denoiser"
    )
    assert TRAINED["config"] == FakeConfig(
        steps=5, mode="b"
    )  # joint: another kind's option, ignored
    assert TRAINED["scans"][0].shape == (2, 64, 77) and TRAINED["kwargs"]["cancel"] == "c"
    with pytest.raises(ValueError, match="Unknown training option"):
        registry.make_config("fake-a", {"stepz": 5})
    with pytest.raises(ValueError, match="already registered"):
        registry.register(
            registry.ModelKind(method="other", methods=("amssd",), denoiser="", config="", train="")
        )


def test_registry_is_light():
    code = (
        "import sys, napari_xray_denoise.core.registry, napari_xray_denoise.options; "
        "sys.exit(int('tensorflow' in sys.modules or 'keras' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_configs_take_the_front_end_defaults():
    pytest.importorskip("tensorflow")
    blindspot = registry.make_config("uncalib", {"steps": 7, "width": 8, "joint": "blind"})
    assert (blindspot.mode, blindspot.steps, blindspot.joint) == ("uncalib", 7, "blind")
    amssd = registry.make_config(
        "amssd", {"steps": 7, "width": 8, "joint": "blind", "enc_filters": 4}
    )
    assert (amssd.steps, amssd.width) == (7, 8)
    blind = registry.make_config(options.BLINDSPOT_MODES[0])
    size = options.network_size(options.DEFAULT_NETWORK_SIZE)
    assert {k: getattr(blind, k) for k in size} == size
    tune = registry.make_config(
        options.DEFAULT_METHOD, {"minutes": 3, "joint": "cross", "enc_filters": 4}
    )
    assert (tune.minutes, tune.init) == (3, "default")


def test_train_widget_options_make_a_config_for_every_method():
    """The Train widget sends one set of options; the registry turns it into any kind's config."""
    pytest.importorskip("tensorflow")
    widget_options = {
        "steps": 10,
        "crop_size": 32,
        "batch_size": 2,
        "learning_rate": 1e-3,
        "seed": 0,
        "minutes": None,
        "joint": "cross",
        **options.network_size("quick"),
    }
    for method in options.TRAIN_METHODS:
        config = registry.make_config(method, widget_options)
        assert config.steps == 10 and config.crop_size == 32 and config.batch_size == 2
    assert registry.make_config("mse", widget_options).enc_filters == 16
