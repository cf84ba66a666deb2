"""One source of option lists and defaults for the command line and the widgets."""

import inspect

from napari_xray_denoise import cli, fusion, options
from napari_xray_denoise._worker import jobs


def _subparser(name):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[name]


def _defaults(sub):
    return {a.dest: a.default for a in sub._actions}


def _choices(sub, dest):
    return next(a.choices for a in sub._actions if a.dest == dest)


def test_cli_denoise_defaults_are_the_models_own():
    defaults = _defaults(_subparser("denoise"))
    assert {k: defaults[k] for k in options.DENOISE_DEFAULTS} == options.DENOISE_DEFAULTS
    assert options.DENOISE_DEFAULTS == {
        "tile": None,
        "overlap": None,
        "batch_size": None,
        "self_ensemble": None,
    }
    assert list(_choices(_subparser("denoise"), "self_ensemble")) == list(options.SELF_ENSEMBLES)


def test_self_ensemble_sizes_are_the_models_own():
    from napari_xray_denoise.core.singlepass.denoiser import SELF_ENSEMBLES, SinglePassDenoiser

    assert options.SELF_ENSEMBLES == SELF_ENSEMBLES
    assert SinglePassDenoiser.self_ensemble == options.DEFAULT_SELF_ENSEMBLE


def test_worker_denoise_job_leaves_batch_size_to_the_library():
    params = inspect.signature(jobs.denoise).parameters
    assert {k: params[k].default for k in options.DENOISE_DEFAULTS} == options.DENOISE_DEFAULTS


def test_cli_train_defaults_and_choices_come_from_options():
    train = _subparser("train")
    defaults = _defaults(train)
    assert {k: defaults[k] for k in ("steps", "batch_size", "crop_size", "seed")} == {
        k: options.TRAIN_DEFAULTS[k] for k in ("steps", "batch_size", "crop_size", "seed")
    }
    assert list(_choices(train, "method")) == list(options.TRAIN_METHODS)
    assert list(_choices(train, "joint")) == list(options.JOINT_VARIANTS)
    assert list(_choices(train, "size")) == list(options.NETWORK_SIZES)
    fuse = _subparser("fuse")
    assert tuple(_choices(fuse, "approx")) == fusion.APPROX_RULES
    assert tuple(_choices(fuse, "detail")) == fusion.DETAIL_RULES
    assert tuple(_choices(_subparser("colour"), "scheme")) == options.COLOUR_SCHEMES


def test_network_size_names():
    assert options.network_size("cpu") == {"enc_filters": 32, "dec_filters": 64, "levels": 3}
    try:
        options.network_size("huge")
    except ValueError as exc:
        assert "huge" in str(exc) and "cpu" in str(exc)
    else:
        raise AssertionError("an unknown size must be refused")


def test_finetune_verdict_says_what_was_kept():
    assert options.finetune_verdict({"method": "singlepass"}) == ""
    kept = options.finetune_verdict({"finetune": {"kept_start": True, "steps": 40}})
    assert "kept the starting model" in kept and "40 steps" in kept
    tuned = options.finetune_verdict(
        {
            "finetune": {
                "kept_start": False,
                "steps": 900,
                "gain_db_estimated": 0.234,
                "gain_z": 7.0,
                "blend": 0.375,
            }
        }
    )
    assert "0.23 dB" in tuned and "7.0 standard errors" in tuned and "0.375" in tuned


def test_cli_fusion_defaults_are_the_fusion_functions_own():
    wavelet = inspect.signature(fusion.wavelet_fuse).parameters
    spatial = inspect.signature(fusion.spatial_fuse).parameters
    defaults = options.FUSION_DEFAULTS
    for name in ("wavelet", "level", "approx", "detail"):
        assert wavelet[name].default == defaults[name], name
    for name in ("threshold", "gamma"):
        assert spatial[name].default == defaults[name], name
    assert defaults["method"] in options.FUSION_METHODS
    fuse = _defaults(_subparser("fuse"))
    assert {k: fuse[k] for k in defaults} == defaults
    assert _defaults(_subparser("colour"))["scheme"] == options.DEFAULT_COLOUR_SCHEME


def test_shared_option_groups_are_the_same_in_every_subcommand():
    """An option group written once (cli._add_*_options) reads the same wherever it is used."""

    def action(sub, dest):
        a = next(a for a in _subparser(sub)._actions if a.dest == dest)
        return (a.option_strings, a.default, a.type, a.help)

    assert action("denoise", "tile") == action("batch", "tile")
    assert action("denoise", "output")[0] == action("batch", "output")[0] == ["-o", "--output"]
    assert _defaults(_subparser("denoise"))["flatfield"] == options.DEFAULT_FLATFIELD
    assert list(_choices(_subparser("denoise"), "flatfield")) == list(options.FLATFIELD_MODES)
    assert list(_choices(_subparser("batch"), "fuse")) == list(options.FUSION_METHODS)
    train = _subparser("train")
    assert list(_choices(train, "noise")) == list(options.TRAIN_NOISE_MODES)
    assert _defaults(train)["noise"] == options.DEFAULT_TRAIN_NOISE
    assert list(_choices(train, "lr_schedule")) == list(options.LR_SCHEDULES)


def test_widget_choice_labels_are_human_and_values_stay_the_names():
    methods = options.labelled(options.TRAIN_METHODS, options.METHOD_LABELS)
    assert [value for _, value in methods] == list(options.TRAIN_METHODS)
    assert set(options.METHOD_LABELS) == set(options.TRAIN_METHODS)  # every method labelled
    assert dict(methods)["Fine-tune the default model"] == "finetune"
    for names, labels in (
        (options.TRAIN_METHODS, options.METHOD_LABELS),
        (options.JOINT_VARIANTS, options.JOINT_LABELS),
        (options.FUSION_METHODS, options.FUSION_METHOD_LABELS),
        (options.FUSION_APPROX_RULES, options.FUSION_RULE_LABELS),
        (options.FUSION_DETAIL_RULES, options.FUSION_RULE_LABELS),
        ((*options.COLOUR_SCHEMES, "none"), options.COLOUR_SCHEME_LABELS),
    ):
        shown = [label for label, _ in options.labelled(names, labels)]
        assert len(set(shown)) == len(shown) and all(n in labels for n in names), names
    assert options.labelled(["new"], {}) == [("new", "new")]  # unlabelled: the name
